"""Intake: the way of a document from received bytes to a stored, routed message.

In the order of the contract: parse safely and check the schema, check the sender is the
caller, verify the signature against the sender's pinned certificates, check the business
references, route, store the bytes once with one delivery per recipient. Each step raises its
own problem; nothing is stored unless every step passed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from axis import blobs, edxml, ids, lifecycle, log, routing, signing, timeutil
from axis.config import Settings
from axis.errors import NotAParty, SenderMismatch, UnknownDocument
from axis.model import (
    AcceptResult,
    AuthenticatedBy,
    Body,
    DocumentInfo,
    Link,
    NewMessage,
    NewStatus,
    Principal,
)
from axis.registry import Registry
from axis.store.protocol import Store

_log = log.get("axis.intake")
# Packages larger than this are parsed and verified off the event loop.
OFFLOAD_BYTES = 512 * 1024
# a fan-out package to 128 agencies costs ~60,000 (2,300 tags, 4 namespaces); a crafted one
# with 32 namespaces over 24,000 tags ~25 million (0.3 s of inclusive C14N)
OFFLOAD_C14N_COST = 1_000_000


@dataclass(frozen=True, slots=True)
class Checked:
    """A package that passed parsing, schema, sender and signature checks.

    ``signer`` is None for a package without XML-DSig signature from a connected system
    whose setting is ``signature: optional``: its HMAC vouched for it instead.
    """

    parsed: edxml.Parsed
    signer: signing.Signer | None

    @property
    def authenticated_by(self) -> AuthenticatedBy:
        return "signature" if self.signer is not None else "system"

    @property
    def signer_sha256(self) -> str | None:
        return self.signer.certificate_sha256 if self.signer is not None else None


def parse(body: Body, principal: Principal, expect: str) -> edxml.Parsed:
    """Parse and match the sender: pure CPU, no I/O beyond the spool file."""
    source: bytes | Path = body.data if body.data is not None else body.path  # type: ignore[assignment]
    parsed = edxml.parse(source, expect="edoc" if expect == "edoc" else "status")
    from_id = parsed.packet.from_id
    if from_id != principal.organ_id:
        raise SenderMismatch(
            f"From/OrganId is {from_id}, but the token belongs to {principal.organ_id}"
        )
    return parsed


async def check(body: Body, principal: Principal, registry: Registry, expect: str) -> Checked:
    """Parse, match the sender, verify the signature, off the event loop where it may cost.

    A large body is parsed and verified in a thread; a small one is parsed here, and its
    signature verified here too unless canonicalising it may be slow (many tags under many
    namespaces: libxmlsec1 releases the GIL, so the loop goes on serving meanwhile).
    """
    if body.size > OFFLOAD_BYTES:
        return await asyncio.to_thread(_parse_and_verify, body, principal, registry, expect)
    parsed = parse(body, principal, expect)
    if parsed.c14n_cost > OFFLOAD_C14N_COST:
        return await asyncio.to_thread(verify, parsed, principal, registry)
    return verify(parsed, principal, registry)


def _parse_and_verify(body: Body, principal: Principal, registry: Registry, expect: str) -> Checked:
    return verify(parse(body, principal, expect), principal, registry)


def verify(parsed: edxml.Parsed, principal: Principal, registry: Registry) -> Checked:
    """The signature policy for the parsed package of ``principal``'s agency.

    A connected system with ``signature: optional`` may send a package that carries no
    XML-DSig signature (field software built on VNPT's EdXML102 cannot sign); one that
    carries one is verified as always.
    """
    if principal.signature_optional and not signing.carries_dsig(parsed.tree):
        return Checked(parsed, None)
    from_id = parsed.packet.from_id
    agency = registry.get(from_id)
    trusted = [c.cert for c in agency.certificates] if agency else []
    signer = signing.verify_package(
        parsed.tree,
        trusted=trusted,
        allow_sha1=bool(agency and agency.allow_sha1),
        now=timeutil.now(),
    )
    return Checked(parsed, signer)


class Intake:
    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store

    async def accept_edoc(
        self, body: Body, principal: Principal, registry: Registry
    ) -> AcceptResult:
        assert principal.organ_id is not None
        again = await self._store.find_by_digest(principal.organ_id, body.sha256)
        if again is not None:
            body.discard()
            return AcceptResult(again, created=False)
        checked = await check(body, principal, registry, "edoc")
        packet = checked.parsed.packet
        assert isinstance(packet, edxml.Edoc)
        links = await self._references(packet)
        routes = routing.route(packet.to_ids, registry)
        delivery_ids = {r: ids.new_id("dlv") for r in routing.distinct_recipients(routes)}
        inline = body.data if body.size <= self._settings.inline_max else None
        body_file = None
        if inline is None:
            body_file = await asyncio.to_thread(blobs.persist, self._settings, body)
        message = NewMessage(
            id=ids.new_id("msg"),
            kind="edoc",
            from_id=packet.from_id,
            document_id=packet.document_id,
            business_type=packet.business_type,
            status_code=None,
            sha256=body.sha256,
            size=body.size,
            received_at=timeutil.fmt(timeutil.now()),
            body=inline,
            body_file=body_file,
            routes=routes,
            delivery_ids=delivery_ids,
            actor=principal.actor,
            replaced_ids=packet.replaced_ids,
            signer_sha256=checked.signer_sha256,
            links=links,
            authenticated_by=checked.authenticated_by,
            system_id=principal.system,
            subject=packet.subject,
            notation=packet.notation,
        )
        result = await self._store.accept(message)
        if result.created:
            _log.info(
                "message_accepted",
                message_id=message.id,
                document_id=message.document_id,
                from_id=message.from_id,
                recipients=list(delivery_ids),
                size=message.size,
                authenticated_by=message.authenticated_by,
                system=message.system_id,
            )
        return result

    async def _references(self, packet: edxml.Edoc) -> tuple[Link, ...]:
        """Revocations and updates name a document the sender sent; replacements the replaced.

        Returns the links that tie the new package to the documents it concerns, so both ends
        show the relation.
        """
        if packet.business_type in (1, 2):
            original = await self._store.document_sent(packet.from_id, packet.document_id)
            if original is None:
                raise UnknownDocument(
                    f"DocumentId {packet.document_id}: {packet.from_id} sent no such document"
                    f" to {'revoke' if packet.business_type == 1 else 'update'}"
                )
            return (Link(original, "revokes" if packet.business_type == 1 else "updates"),)
        if packet.business_type == 3:
            links = []
            for replaced in packet.replaced_ids:
                original = await self._store.document_sent(packet.from_id, replaced)
                if original is None:
                    raise UnknownDocument(
                        f"ReplacementInfo/DocumentId {replaced}: {packet.from_id} sent no such"
                        f" document to replace"
                    )
                links.append(Link(original, "replaces"))
            return tuple(links)
        return ()

    async def accept_status(
        self, body: Body, principal: Principal, registry: Registry
    ) -> AcceptResult:
        """A status packet: checked like a document, then filed on the document's timeline."""
        assert principal.organ_id is not None
        again = await self._store.find_by_digest(principal.organ_id, body.sha256)
        if again is not None:
            body.discard()
            return AcceptResult(again, created=False)
        checked = await check(body, principal, registry, "status")
        packet = checked.parsed.packet
        assert isinstance(packet, edxml.Status)
        doc, targets, parties = await self._parties(packet)
        routes = routing.route(targets, registry)
        received_at = timeutil.now()
        at = timeutil.fmt(packet.timestamp) if packet.timestamp else timeutil.fmt(received_at)
        links = [Link(doc.message_id, "status_of")]
        if packet.status_code in ("15", "16"):
            request = await self._store.latest_request(doc, packet.from_id)
            if request is not None:
                links.append(Link(request, "answers"))
        message = NewMessage(
            id=ids.new_id("msg"),
            kind="status",
            from_id=packet.from_id,
            document_id=doc.document_id,
            business_type=None,
            status_code=packet.status_code,
            sha256=body.sha256,
            size=body.size,
            received_at=timeutil.fmt(received_at),
            body=body.data if body.size <= self._settings.inline_max else None,
            body_file=(
                None
                if body.size <= self._settings.inline_max
                else await asyncio.to_thread(blobs.persist, self._settings, body)
            ),
            routes=routes,
            delivery_ids={r: ids.new_id("dlv") for r in routing.distinct_recipients(routes)},
            actor=principal.actor,
            signer_sha256=checked.signer_sha256,
            authenticated_by=checked.authenticated_by,
            system_id=principal.system,
            statuses=tuple(
                NewStatus(doc.from_id, doc.document_id, party, packet.status_code, at)
                for party in parties
            ),
            links=tuple(links),
        )
        result = await self._store.accept(message)
        if result.created:
            _log.info(
                "status_accepted",
                message_id=message.id,
                document_id=doc.document_id,
                from_id=packet.from_id,
                status_code=packet.status_code,
            )
        return result

    async def _parties(
        self, packet: edxml.Status
    ) -> tuple[DocumentInfo, tuple[str, ...], tuple[str, ...]]:
        """The document a status concerns, whom it goes to, and whose rows it is filed on.

        Recipients' codes go to the document's sender and are filed on the recipient's own row;
        a take-back request (13) comes from the sender and goes to, and is filed on, every
        recipient. A document forwarded from a closed code has the successor as its party.
        """
        rf = packet.response_for
        document_id = rf.document_id or ""
        if packet.status_code in lifecycle.SENDER_CODES:
            # field packets name the addressee in ResponseFor/OrganId; the document is the
            # caller's own
            doc = await self._store.find_document(packet.from_id, document_id)
            if doc is None:
                other = await self._store.find_document(rf.organ_id or "", document_id)
                if other is not None:
                    raise NotAParty(
                        f"StatusCode 13: only the sender of {document_id} ({other.from_id})"
                        f" may ask to take it back"
                    )
                raise UnknownDocument(
                    f"ResponseFor/DocumentId {document_id}: {packet.from_id} sent no such document"
                )
            return doc, doc.recipients, doc.recipients
        doc = await self._store.find_document(rf.organ_id or "", document_id)
        if doc is None:
            raise UnknownDocument(
                f"ResponseFor: no document {document_id} from {rf.organ_id} is known"
            )
        if packet.from_id not in doc.recipients:
            raise NotAParty(
                f"StatusCode {packet.status_code}: {packet.from_id} is not a recipient of"
                f" {document_id}"
            )
        return doc, (doc.from_id,), (packet.from_id,)
