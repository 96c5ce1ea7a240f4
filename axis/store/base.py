"""The ``Store`` protocol, in the words of the domain.

Backends implement these operations (not a generic ``execute``), each atomic: the state
change and the audit events that record it commit together or not at all. A write
operation returns only once it is durable (fsync'd): callers answer ``201`` after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from axis.audit import Event
from axis.registry import Agency, Registry
from axis.routing import Route

T = TypeVar("T")
Role = Literal["agency", "admin", "auditor"]
MessageKind = Literal["edoc", "status"]
OPEN_STATES = ("queued", "fetched", "retrying", "dead")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token speaks for."""

    token_id: str
    role: Role
    organ_id: str | None

    @property
    def actor(self) -> str:
        """How audit events name this principal."""
        return (
            f"agency:{self.organ_id}" if self.role == "agency" else f"{self.role}:{self.token_id}"
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    role: Role
    organ_id: str | None
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class NewStatus:
    """A status carried by a status packet, filed on one recipient's row of a document."""

    doc_from: str
    document_id: str
    party: str
    code: str
    at: str


@dataclass(frozen=True, slots=True)
class Link:
    """The new message refers to an earlier one: revokes, updates, replaces, status_of, answers."""

    to_message: str
    relation: str


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document as the lifecycle sees it: who sent it and who its parties are."""

    message_id: str  # the message that introduced the DocumentId
    from_id: str
    document_id: str
    recipients: tuple[str, ...]  # every agency it was delivered to (successors included)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A verified package ready to be stored, with its routes and fresh identifiers."""

    id: str
    kind: MessageKind
    from_id: str
    document_id: str
    business_type: int | None
    status_code: str | None
    sha256: str
    size: int
    received_at: str
    body: bytes | None  # inline bytes, or
    body_file: Path | None  # a file already durably placed in the blob directory
    routes: tuple[Route, ...]
    delivery_ids: dict[str, str]  # delivered_to -> delivery id
    actor: str
    replaced_ids: tuple[str, ...] = ()
    signer_sha256: str | None = None
    statuses: tuple[NewStatus, ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusEntry:
    code: str
    at: str
    message_id: str
    received_at: str = ""
    inconsistent: str | None = None  # why this status does not fit the ones before it


@dataclass(frozen=True, slots=True)
class LinkView:
    message_id: str
    relation: str
    kind: str
    document_id: str


@dataclass(frozen=True, slots=True)
class RecipientView:
    organ_id: str
    delivered_to: str
    delivery_id: str
    state: str
    attempts: int
    last_error: str | None
    updated_at: str
    statuses: tuple[StatusEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Acked:
    """Where a delivery stands after its recipient's ack: what the ack's answer shows."""

    delivery_id: str
    state: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A stored message and where each of its deliveries stands."""

    id: str
    kind: MessageKind
    from_id: str
    document_id: str
    business_type: int | None
    status_code: str | None
    sha256: str
    size: int
    received_at: str
    recipients: tuple[RecipientView, ...]
    refers_to: tuple[LinkView, ...] = ()
    referred_by: tuple[LinkView, ...] = ()


@dataclass(frozen=True, slots=True)
class AcceptResult:
    record: MessageRecord
    created: bool  # False: the same sender sent these bytes before; this is the original


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: str
    kind: MessageKind
    from_id: str
    document_id: str
    status_code: str | None
    sha256: str
    size: int
    received_at: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a recipient downloads: the exact bytes, from memory or from a blob file."""

    message_id: str
    kind: MessageKind
    from_id: str
    sha256: str
    size: int
    body: bytes | None
    body_file: Path | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class InitReport:
    created: bool
    agencies_added: int
    schema_version: int
    notes: list[str] = field(default_factory=list)


AckResult = Literal["done", "fail"]


def accepted_events(message: NewMessage) -> list[Event]:
    """The audit events of accepting ``message``, the same on every backend: received, each
    forwarding to a successor, and per delivery its queueing (a status also its relaying)."""

    def event(type_: str, actor: str, to_id: str | None, detail: dict[str, Any]) -> Event:
        return Event(
            type=type_,
            actor=actor,
            message_id=message.id,
            document_id=message.document_id,
            from_id=message.from_id,
            to_id=to_id,
            detail=detail,
        )

    received = {
        "kind": message.kind,
        "sha256": message.sha256,
        "size": message.size,
        "business_type": message.business_type,
        "status_code": message.status_code,
    }
    events = [event("message_received", message.actor, None, received)]
    for route in message.routes:
        if route.forwarded:
            addressed = {"addressed": route.organ_id}
            events.append(event("delivery_forwarded", "axis", route.delivered_to, addressed))
    for delivered_to, delivery_id in message.delivery_ids.items():
        if message.kind == "status":
            code = {"status_code": message.status_code}
            events.append(event("status_relayed", "axis", delivered_to, code))
        queued = {"delivery_id": delivery_id}
        events.append(event("delivery_queued", "axis", delivered_to, queued))
    return events


def accepted_record(message: NewMessage) -> MessageRecord:
    """What a message just accepted looks like: every delivery queued, no links yet shown."""
    recipients = tuple(
        RecipientView(
            organ_id=r.organ_id,
            delivered_to=r.delivered_to,
            delivery_id=message.delivery_ids[r.delivered_to],
            state="queued",
            attempts=0,
            last_error=None,
            updated_at=message.received_at,
        )
        for r in message.routes
    )
    return MessageRecord(
        id=message.id,
        kind=message.kind,
        from_id=message.from_id,
        document_id=message.document_id,
        business_type=message.business_type,
        status_code=message.status_code,
        sha256=message.sha256,
        size=message.size,
        received_at=message.received_at,
        recipients=recipients,
    )


class CoreStore(Protocol):
    """The core: agencies, tokens, sending, receiving, as domain operations."""

    async def open(self) -> None:
        """Connect, check the schema version, start background machinery."""

    async def close(self) -> None:
        """Finish pending writes and release everything."""

    async def check_schema(self) -> int:
        """The schema version in use; raises ``StoreError`` when migrations are missing."""

    async def initialize(self, agencies: Sequence[Agency]) -> InitReport:
        """Create or migrate the schema and add the shipped agencies not yet present.

        Idempotent: running it again changes nothing that exists.
        """

    async def registry(self) -> Registry:
        """A consistent snapshot of all agencies with their certificates."""

    async def registry_version(self) -> int:
        """Bumped by every agency change, so other processes know to reload."""

    async def put_agency(self, agency: Agency, *, actor: str) -> bool:
        """Create or replace one agency (certificates included); True when created."""

    async def issue_token(
        self, token_id: str, token_hash: str, role: Role, organ_id: str | None, *, actor: str
    ) -> None:
        """Record a new token by its hash only."""

    async def principal_for(self, token_hash: str) -> Principal | None:
        """The live principal of a token hash; None when unknown or revoked."""

    async def revoke_token(self, token_id: str, *, actor: str) -> bool:
        """Revoke at once; False when no live token has that id."""

    async def list_tokens(self, organ_id: str | None = None) -> list[TokenInfo]:
        """Token metadata, never secrets."""

    async def find_by_digest(self, from_id: str, sha256: str) -> MessageRecord | None:
        """The message this sender already sent with exactly these bytes, if any."""

    async def document_sent(self, from_id: str, document_id: str) -> str | None:
        """The id of the first message introducing ``document_id`` from this sender, if any."""

    async def find_document(self, from_id: str, document_id: str) -> DocumentInfo | None:
        """The document ``from_id`` introduced as ``document_id``, with all its recipients."""

    async def latest_request(self, doc: DocumentInfo, party: str) -> str | None:
        """The newest take-back request (13) or revocation/update package sent to ``party``."""

    async def accept(self, message: NewMessage) -> AcceptResult:
        """Store the message, one delivery per recipient and its audit events, durably.

        Raises ``DuplicateConflict`` when a new document reuses a DocumentId for other bytes.
        """

    async def message(self, message_id: str) -> MessageRecord | None: ...

    async def outbox(
        self,
        from_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        document_id: str | None,
        cursor: str | None,
        limit: int,
        overdue_before: datetime | None = None,
    ) -> Page[MessageRecord]:
        """The sender's messages, newest first; ``overdue_before``: only documents received
        before it with a recipient that reported no receipt (01, 02 or 03)."""

    async def inbox(
        self, organ_id: str, *, kind: MessageKind | None, cursor: str | None, limit: int
    ) -> Page[InboxItem]:
        """Open deliveries to ``organ_id``, oldest first."""

    async def wait_for_mail(self, organ_id: str, timeout: float) -> None:  # noqa: ASYNC109
        """Return when mail may have arrived for ``organ_id`` or after ``timeout`` seconds."""

    async def fetch(self, message_id: str, organ_id: str, *, actor: str) -> Fetched | None:
        """The message for its recipient (None if it is not one); first fetch → fetched."""

    async def ack(
        self, message_id: str, organ_id: str, result: AckResult, reason: str | None, *, actor: str
    ) -> Acked:
        """Acknowledge; same result again is harmless, another raises ``DuplicateConflict``."""

    async def healthy(self) -> dict[str, Any]:
        """Readiness facts: writable, schema version."""

    def stats(self) -> dict[str, float]:
        """Counters for /metrics: commits (each one fsync) and the writes they carried."""
