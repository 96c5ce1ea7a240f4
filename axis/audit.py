"""The audit chain, pure: canonical event content, the hash that links each to the last, the
signed checkpoints of the chain head, and the verification of the lot.

An event's hash covers its canonical JSON and the previous hash, so editing, deleting,
inserting or reordering any stored event breaks every hash after it. The chain alone cannot
tell a history cut back at its end, or one rewritten with freshly computed hashes: that is
what checkpoints are for. The axis signs ``(seq, hash, time)`` of the head at intervals; a
verifier that meets a checkpoint the log no longer agrees with, or that signs an event the
log no longer has, knows history was rewritten or truncated.

Nothing here does I/O: the stores feed rows to ``ChainVerifier`` and the web layer and the
command line format rows with ``jsonl`` and ``csv_rows``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import xmlsec
from lxml import etree

GENESIS = "0" * 64
CHECKPOINT_NS = "urn:axis:audit:checkpoint:1"
CHECKPOINT = "checkpoint"  # the event type that records a signed checkpoint in the chain
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


@dataclass(frozen=True, slots=True)
class Event:
    """One state change or administrative act, as recorded."""

    type: str
    actor: str
    message_id: str | None = None
    document_id: str | None = None
    from_id: str | None = None
    to_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


KEY_ROTATED = "axis_key_rotated"  # the axis signs receipts and checkpoints with a new key


def key_change_event(actor: str, previous_sha256: str, sha256: str) -> Event:
    """The event recording a new axis signing certificate, naming both by their SHA-256."""
    return Event(
        type=KEY_ROTATED, actor=actor, detail={"previous_sha256": previous_sha256, "sha256": sha256}
    )


def canonical(seq: int, at: str, event: Event) -> bytes:
    """Sorted-key compact JSON of everything an auditor sees, the hash excepted."""
    return orjson.dumps(
        {
            "seq": seq,
            "at": at,
            "type": event.type,
            "actor": event.actor,
            "message_id": event.message_id,
            "document_id": event.document_id,
            "from": event.from_id,
            "to": event.to_id,
            "detail": event.detail,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()


# --- stored events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back: its place in the chain, its time, and ``detail`` as stored JSON.

    ``detail_json`` is kept as the stored text: CSV exports pass it through as it is, and the
    hash covers its canonical form, not its spelling.
    """

    seq: int
    at: str
    type: str
    actor: str
    message_id: str | None
    document_id: str | None
    from_id: str | None
    to_id: str | None
    detail_json: str
    hash: str

    @property
    def detail(self) -> dict[str, Any]:
        value = orjson.loads(self.detail_json)
        return value if isinstance(value, dict) else {"value": value}

    def event(self) -> Event:
        return Event(
            type=self.type,
            actor=self.actor,
            message_id=self.message_id,
            document_id=self.document_id,
            from_id=self.from_id,
            to_id=self.to_id,
            detail=self.detail,
        )

    def to_json(self) -> dict[str, Any]:
        """The shape of ``GET /v1/audit/events`` items.

        A ``detail`` that is not JSON (someone edited the file) is shown as the text it is, so
        a tampered log can still be listed and exported; verification names the event.
        """
        try:
            detail: Any = orjson.loads(self.detail_json)
        except orjson.JSONDecodeError:
            detail = self.detail_json
        return {
            "seq": self.seq,
            "at": self.at,
            "type": self.type,
            "actor": self.actor,
            "message_id": self.message_id,
            "document_id": self.document_id,
            "from": self.from_id,
            "to": self.to_id,
            "detail": detail,
            "hash": self.hash,
        }


def expected_hash(prev_hash: str, event: StoredEvent) -> str | None:
    """The hash ``event`` must carry after ``prev_hash``; None when its detail is not JSON."""
    try:
        content = canonical(event.seq, event.at, event.event())
    except (orjson.JSONDecodeError, TypeError):
        return None
    return chain_hash(prev_hash, content)


def build_chain(events: Iterable[tuple[str, Event]], start: int = 1) -> list[StoredEvent]:
    """Stored events for ``(at, event)`` pairs chained from the genesis: the reference chain
    the stores build one transaction at a time (tests and tools use it whole)."""
    out: list[StoredEvent] = []
    prev = GENESIS
    for seq, (at, event) in enumerate(events, start):
        prev = chain_hash(prev, canonical(seq, at, event))
        out.append(
            StoredEvent(
                seq=seq,
                at=at,
                type=event.type,
                actor=event.actor,
                message_id=event.message_id,
                document_id=event.document_id,
                from_id=event.from_id,
                to_id=event.to_id,
                detail_json=orjson.dumps(event.detail).decode(),
                hash=prev,
            )
        )
    return out


# --- formats ------------------------------------------------------------------------------

CSV_COLUMNS = ("seq", "at", "type", "actor", "message_id", "document_id", "from", "to")
CSV_HEADER = (*CSV_COLUMNS, "detail", "hash")


def jsonl(events: Sequence[StoredEvent]) -> bytes:
    """One JSON object per line, the same objects as ``GET /v1/audit/events`` gives."""
    return b"".join(orjson.dumps(e.to_json(), option=orjson.OPT_APPEND_NEWLINE) for e in events)


def csv_rows(events: Sequence[StoredEvent], *, header: bool = False) -> bytes:
    """RFC 4180 rows (CRLF), ``detail`` as its JSON text; the values are exactly as stored.

    No spreadsheet-formula escaping: the export is evidence and must round-trip byte for byte;
    open it in a spreadsheet with the import dialog, not by double-clicking.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_HEADER)
    writer.writerows(
        (
            e.seq,
            e.at,
            e.type,
            e.actor,
            e.message_id or "",
            e.document_id or "",
            e.from_id or "",
            e.to_id or "",
            e.detail_json,
            e.hash,
        )
        for e in events
    )
    return buffer.getvalue().encode("utf-8")


# --- checkpoints --------------------------------------------------------------------------


class CheckpointInvalid(ValueError):
    """A checkpoint document that does not verify, or does not say what a checkpoint says."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The axis's signed statement that event ``seq`` had hash ``hash`` at time ``at``."""

    seq: int
    hash: str
    at: str
    xml: bytes  # the signed document, as served and as verified by xmlsec1

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.xml).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "sha256": self.sha256,
            "url": f"/v1/audit/checkpoints/{self.seq}",
            "xml": self.xml.decode("utf-8"),
        }

    def event(self, actor: str) -> Event:
        """The ``checkpoint`` event that records this checkpoint in the chain itself, so that
        a checkpoint removed from the checkpoint table is missed by the verifier."""
        return Event(
            type=CHECKPOINT,
            actor=actor,
            detail={"seq": self.seq, "hash": self.hash, "at": self.at, "sha256": self.sha256},
        )


def checkpoint_element(seq: int, head_hash: str, at: str, *, issuer: str) -> etree._Element:
    """The unsigned checkpoint document: the axis signs it with ``AxisKey.sign_enveloped``."""
    root = etree.Element(f"{{{CHECKPOINT_NS}}}Checkpoint", nsmap={None: CHECKPOINT_NS})  # type: ignore[dict-item]
    for tag, text in (("Issuer", issuer), ("Seq", str(seq)), ("Hash", head_hash), ("At", at)):
        element = etree.SubElement(root, f"{{{CHECKPOINT_NS}}}{tag}")
        element.text = text
        if tag == "Hash":
            element.set("algorithm", "sha-256")
    return root


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class CheckpointReader:
    """Verifies checkpoint documents against the axis certificates, loaded once.

    Several certificates: the current one and any earlier ones, should the axis key have
    been rotated. The shape is checked as strictly as for a package: one enveloped signature
    over the whole document (``Reference URI=""``), so nothing unsigned is read.
    """

    def __init__(self, cert_pems: Sequence[bytes]) -> None:
        self._keys = [
            xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatCertPem) for pem in cert_pems
        ]
        if not self._keys:
            raise ValueError("no certificate to verify checkpoints with")

    def read(self, xml: bytes) -> Checkpoint:
        try:
            root = etree.fromstring(xml, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise CheckpointInvalid(f"not well-formed XML: {exc}") from None
        if root.tag != f"{{{CHECKPOINT_NS}}}Checkpoint":
            raise CheckpointInvalid(f"root element is {root.tag}, not a checkpoint")
        if next(root.iter(etree.Comment, etree.ProcessingInstruction), None) is not None:
            # the signature does not cover comments: one inside <Seq> would change what is read
            raise CheckpointInvalid("a checkpoint carries no comments or processing instructions")
        signatures = root.findall(f"{{{DSIG_NS}}}Signature")
        if len(signatures) != 1 or len(list(root.iter(f"{{{DSIG_NS}}}Signature"))) != 1:
            raise CheckpointInvalid("a checkpoint carries exactly one signature, under its root")
        signature = signatures[0]
        references = signature.findall(f"{{{DSIG_NS}}}SignedInfo/{{{DSIG_NS}}}Reference")
        if len(references) != 1 or references[0].get("URI") != "":
            raise CheckpointInvalid('the signature must have one Reference, URI=""')
        transforms = [
            t.get("Algorithm")
            for t in references[0].iterfind(f"{{{DSIG_NS}}}Transforms/{{{DSIG_NS}}}Transform")
        ]
        if ENVELOPED not in transforms:
            raise CheckpointInvalid("the signature is not enveloped")
        if not any(self._verifies(signature, key) for key in self._keys):
            raise CheckpointInvalid("the signature does not verify with the axis certificate")
        values = {}
        for tag in ("Seq", "Hash", "At"):
            found = root.findall(f"{{{CHECKPOINT_NS}}}{tag}")
            if len(found) != 1 or not found[0].text:
                raise CheckpointInvalid(f"{tag}: expected exactly one, with a value")
            values[tag] = found[0].text.strip()
        try:
            seq = int(values["Seq"])
        except ValueError:
            raise CheckpointInvalid(f"Seq: not a number: {values['Seq']!r}") from None
        return Checkpoint(seq=seq, hash=values["Hash"], at=values["At"], xml=xml)

    @staticmethod
    def _verifies(signature: etree._Element, key: Any) -> bool:
        context = xmlsec.SignatureContext()
        context.key = key
        try:
            context.verify(signature)
        except xmlsec.Error:
            return False
        return True


# --- verification -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Anchor:
    """A trusted ``(seq, hash)``: a verified checkpoint, or one an auditor kept elsewhere.

    ``recorded`` anchors come from the axis's own checkpoint table, and each must be recorded
    by a ``checkpoint`` event later in the chain; outside ones need not be.
    """

    seq: int
    hash: str
    source: str
    sha256: str | None = None
    recorded: bool = False


@dataclass(frozen=True, slots=True)
class Breach:
    seq: int  # the first sequence number that can no longer be trusted
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``audit verify`` found: the answer of ``GET /v1/audit/verify``."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    checkpoints: int
    last_checkpoint: Checkpoint | None = None
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "checkpoints": self.checkpoints,
            "last_checkpoint": (
                {
                    "seq": self.last_checkpoint.seq,
                    "hash": self.last_checkpoint.hash,
                    "at": self.last_checkpoint.at,
                }
                if self.last_checkpoint
                else None
            ),
        }
        if not self.ok:
            body["first_bad_seq"] = self.first_bad_seq
            body["reason"] = self.reason
        return body


class ChainVerifier:
    """Checks stored events fed in ``seq`` order against the chain and the anchors.

    Anchors must be given before the event they sign is fed (the stores load checkpoints
    ahead of each page of events). Memory stays bounded: anchors are dropped once passed
    and, for recorded ones, once their ``checkpoint`` event is seen.

    The first bad sequence number is the earliest one that cannot be trusted: the event
    whose content or place does not match its hash, the first missing one, or, when the
    hashes were all recomputed, the first event after the last checkpoint that still agrees.
    """

    def __init__(self) -> None:
        self.next_seq = 1
        self.prev_hash = GENESIS
        self.fed = 0
        self._anchors: dict[int, list[Anchor]] = defaultdict(list)
        self._unclaimed: dict[int, Anchor] = {}  # recorded anchors passed, event not yet seen
        self._rejected: dict[int, str] = {}  # checkpoint rows that do not verify, and why
        self._good_anchor = 0
        self._breach: Breach | None = None

    @property
    def breach(self) -> Breach | None:
        return self._breach

    @property
    def done(self) -> bool:
        """Nothing fed from now on can change the verdict."""
        return self._breach is not None and self.next_seq > self._breach.seq

    def fail(self, seq: int, reason: str) -> None:
        """Record a breach found outside the chain (a checkpoint that does not verify)."""
        if self._breach is None or seq < self._breach.seq:
            self._breach = Breach(seq, reason)

    def reject(self, seq: int, reason: str) -> None:
        """A checkpoint row for event ``seq`` that does not verify: its ``checkpoint`` event
        (or, without one, the end of the log) is where the verdict names it."""
        self._rejected[seq] = reason

    def anchor(self, anchor: Anchor) -> None:
        if anchor.seq < self.next_seq and not self.done:
            raise ValueError(f"anchor for event {anchor.seq} given after it was fed")
        self._anchors[anchor.seq].append(anchor)

    def feed(self, event: StoredEvent) -> None:
        if self.done:
            return
        self.fed += 1
        seq = event.seq
        if seq != self.next_seq:
            missing = (
                f"event {self.next_seq} is missing"
                if seq == self.next_seq + 1
                else f"events {self.next_seq} to {seq - 1} are missing"
            )
            self.fail(self.next_seq, f"{missing}: the log goes from {self.next_seq - 1} to {seq}")
            self.next_seq = seq + 1
            return
        self.next_seq = seq + 1
        if expected_hash(self.prev_hash, event) != event.hash:
            self.fail(
                seq,
                f"event {seq} does not match its hash: its content or its place in the log was"
                " changed (edited, inserted or moved)",
            )
            return
        self.prev_hash = event.hash
        for anchor in self._anchors.pop(seq, ()):
            if anchor.hash != event.hash:
                self.fail(
                    self._good_anchor + 1,
                    f"{anchor.source} signed hash {anchor.hash[:16]}… for event {seq}, the log"
                    f" has {event.hash[:16]}…: history after event {self._good_anchor} was"
                    " rewritten",
                )
                return
            self._good_anchor = seq
            if anchor.recorded:
                self._unclaimed[seq] = anchor
        if event.type == CHECKPOINT:
            self._claim(event)

    def _claim(self, event: StoredEvent) -> None:
        """A ``checkpoint`` event must record a checkpoint that is in the table, unchanged."""
        try:
            detail = event.detail
        except orjson.JSONDecodeError:
            detail = {}
        signed = detail.get("seq")
        anchor = self._unclaimed.pop(signed, None) if isinstance(signed, int) else None
        if anchor is None:
            why = self._rejected.pop(signed, None) if isinstance(signed, int) else None
            self.fail(
                event.seq,
                f"event {event.seq} records a checkpoint of event {signed} that "
                + (f"does not verify: {why}" if why else "is missing from the checkpoint table"),
            )
        elif detail.get("hash") != anchor.hash or detail.get("sha256") != anchor.sha256:
            self.fail(
                event.seq,
                f"event {event.seq} records a checkpoint of event {signed} other than the one"
                " in the checkpoint table",
            )

    def finish(self) -> Breach | None:
        """The verdict once every event was fed: anchors beyond the end mean a cut."""
        if self._breach is not None:
            return self._breach
        last = self.next_seq - 1
        beyond = [a for seq, anchors in self._anchors.items() if seq > last for a in anchors]
        if beyond:
            first = min(beyond, key=lambda a: a.seq)
            self.fail(
                last + 1,
                f"history cut back: {first.source} signed event {first.seq}, but the log ends"
                f" at {last}",
            )
        elif self._unclaimed:
            seq = min(self._unclaimed)
            self.fail(
                last + 1,
                f"history cut back: the checkpoint of event {seq} is recorded by no event; the"
                f" log ends at {last}",
            )
        elif self._rejected:
            seq = min(self._rejected)
            self.fail(
                last + 1,
                f"the checkpoint row for event {seq} does not verify ({self._rejected[seq]})"
                " and no event records it",
            )
        return self._breach


def verify_run(after_seq: int, prev_hash: str, events: Iterable[StoredEvent]) -> Breach | None:
    """Check that ``events`` follow on from a trusted ``(after_seq, prev_hash)`` (a verified
    checkpoint): no event missing, each matching its hash. The quick check of the recent
    part of the log; only ``verify_events`` (or ``ChainVerifier``) checks the checkpoints."""
    expected = after_seq + 1
    prev = prev_hash
    for event in events:
        if event.seq != expected:
            return Breach(expected, f"event {expected} is missing: the log goes on at {event.seq}")
        if expected_hash(prev, event) != event.hash:
            return Breach(
                event.seq,
                f"event {event.seq} does not match its hash: its content or its place in the"
                " log was changed (edited, inserted or moved)",
            )
        prev = event.hash
        expected += 1
    return None


def verify_events(events: Iterable[StoredEvent], anchors: Iterable[Anchor] = ()) -> Breach | None:
    """Verify a whole chain held in memory (tests and small tools): the first breach, if any."""
    verifier = ChainVerifier()
    for anchor in sorted(anchors, key=lambda a: a.seq):
        verifier.anchor(anchor)
    for event in events:
        verifier.feed(event)
        if verifier.done:
            break
    return verifier.finish()
