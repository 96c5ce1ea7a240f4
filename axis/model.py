"""The domain records: what the core, the store and the web layer pass between them.

Pure values (frozen dataclasses and enums), with no I/O and no imports from the edges, so the
core modules (intake, lifecycle, receipts, push policy) depend on these and never on
``axis.store``. The store protocol speaks in these words; each backend turns rows into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from axis.routing import Route

T = TypeVar("T")
Role = Literal["agency", "admin", "auditor"]
MessageKind = Literal["edoc", "status"]
AckResult = Literal["done", "fail"]
# what vouched for a message: its XML-DSig signature, or the connected system's HMAC (a
# system with ``signature: optional`` sending a package that carries no XML-DSig signature)
AuthenticatedBy = Literal["signature", "system"]
Outcome = Literal["added", "changed", "unchanged"]


class DeliveryState(StrEnum):
    """Where one delivery of a message to one recipient stands."""

    QUEUED = "queued"  # accepted, not yet fetched or pushed
    FETCHED = "fetched"  # the recipient downloaded it, not yet acknowledged
    ACKED = "acked"  # acknowledged done (pull) or pushed with a 2xx answer
    FAILED = "failed"  # acknowledged fail: the recipient could not use it
    RETRYING = "retrying"  # a push failed; another try is scheduled
    DEAD = "dead"  # push gave up; waits in the inbox and for an administrator's redeliver


DELIVERY_STATES: tuple[str, ...] = tuple(DeliveryState)
# acknowledged one way or the other: nothing more happens to the delivery
CLOSED_STATES = frozenset({DeliveryState.ACKED, DeliveryState.FAILED})
# listed in the inbox and neither acknowledged nor given up: the push worker may still post it
PUSHABLE_STATES = (DeliveryState.QUEUED, DeliveryState.FETCHED, DeliveryState.RETRYING)
PushState = Literal["acked", "retrying", "fetched", "dead"]


class EventType(StrEnum):
    """Every kind of audit event, as stored and as auditors filter by it."""

    MESSAGE_RECEIVED = "message_received"
    MESSAGE_REJECTED = "message_rejected"
    DELIVERY_QUEUED = "delivery_queued"
    DELIVERY_FORWARDED = "delivery_forwarded"
    DELIVERY_FETCHED = "delivery_fetched"
    DELIVERY_ACKED = "delivery_acked"
    DELIVERY_FAILED = "delivery_failed"
    PUSH_ATTEMPT_FAILED = "push_attempt_failed"
    DELIVERY_DEAD = "delivery_dead"
    DELIVERY_REDELIVERED = "delivery_redelivered"
    STATUS_RELAYED = "status_relayed"
    AGENCY_CHANGED = "agency_changed"
    TOKEN_ISSUED = "token_issued"  # noqa: S105 (an event name, not a secret)
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    CERTIFICATE_EXPIRING = "certificate_expiring"
    CHECKPOINT = "checkpoint"
    BODY_PURGED = "body_purged"
    AXIS_KEY_ROTATED = "axis_key_rotated"
    DELIVERY_PROCESSING = "delivery_processing"  # the recipient said it is working on it
    SYSTEM_REGISTERED = "system_registered"  # a connected system (VDXP) was added
    SYSTEM_CHANGED = "system_changed"
    SYSTEM_DISABLED = "system_disabled"
    SYSTEM_SECRET_ROTATED = "system_secret_rotated"  # noqa: S105 (an event name)
    # the previous secret stopped working
    SYSTEM_SECRET_RETIRED = "system_secret_retired"  # noqa: S105
    CONSOLE_SIGNED_IN = "console_signed_in"  # an admin or auditor token opened a console session
    CONSOLE_SIGNED_OUT = "console_signed_out"  # … and it ended (signed out, or found expired)
    BODY_DOWNLOADED = "body_downloaded"  # an administrator downloaded a document's body


EVENT_TYPES: tuple[str, ...] = tuple(EventType)


@dataclass(frozen=True, slots=True)
class Body:
    """The exact bytes received: in ``data``, or in the spooled file ``path``."""

    data: bytes | None
    path: Path | None
    sha256: str
    size: int

    def discard(self) -> None:
        """Remove a spooled file that was not kept."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: a bearer token's owner, or a connected system acting for
    one of the agencies it serves (``system`` set; ``token_id`` is then the system's id)."""

    token_id: str
    role: Role
    organ_id: str | None
    system: str | None = None
    signature_optional: bool = False  # the system may send packages without XML-DSig

    @property
    def actor(self) -> str:
        """How audit events name this principal."""
        if self.system is not None:
            return f"system:{self.system}"
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
    authenticated_by: AuthenticatedBy = "signature"
    system_id: str | None = None  # the connected system it came through (VDXP)
    subject: str | None = None  # MessageHeader/Subject of a document
    notation: str | None = None  # CodeNumber/CodeNotation of a document


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
    authenticated_by: AuthenticatedBy = "signature"
    system_id: str | None = None
    subject: str | None = None
    notation: str | None = None


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
    authenticated_by: AuthenticatedBy = "signature"
    system_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """An open delivery as a connected system lists it (VDXP ``getReceivedEdocList``)."""

    message_id: str
    kind: MessageKind
    from_id: str
    delivered_to: str
    received_at: str
    updated_at: str
    state: str
    processing: bool  # fetched, or the recipient said it is working on it


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


@dataclass(frozen=True, slots=True)
class AgencyChange:
    """What saving one agency did: added, changed (which fields) or left it as it was."""

    organ_id: str
    outcome: Outcome
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One registration or change of an agency, as recorded when it was made."""

    at: str
    actor: str
    status: str
    successor: str | None
    changes: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "status": self.status,
            "successor": self.successor,
            "changes": self.changes,
        }


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """The filters of ``GET /v1/audit/events``; every one given must hold (and)."""

    organ_id: str | None = None  # as sender (from) or recipient (to)
    document_id: str | None = None
    message_id: str | None = None
    type: str | None = None
    since: datetime | None = None  # at >= since
    until: datetime | None = None  # at < until


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What one retention run did."""

    messages: int  # bodies purged
    files: int  # blob files deleted (shared files only once no kept message uses them)
    held: int  # old bodies kept because a delivery of theirs is still open


@dataclass(frozen=True, slots=True)
class PushJob:
    """One claimed delivery, with what it takes to post it."""

    delivery_id: str
    lease_id: str  # the claim; only its holder may record a failure
    message_id: str
    delivered_to: str
    kind: MessageKind
    from_id: str
    document_id: str
    size: int
    body: bytes | None  # inline bytes, or
    body_file: Path | None  # the blob file (streamed, not loaded)
    attempts: int  # attempts before this one, all rounds
    failures: int  # failures in a row in this round (since queued or redelivered)
    push_since: str  # when this round's clock started (its first try): max age counts from it


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one push attempt came to.

    ``ok``: the endpoint answered 2xx. Otherwise ``retry_at`` is when to try again, or None
    to give up now (410, or the maximum age is reached): the delivery is then ``dead``.
    """

    ok: bool
    status: int | None = None  # the HTTP status, None when there was no answer
    error: str | None = None
    retry_at: datetime | None = None
    gave_up: str | None = None  # why it is dead, when it is


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery as an administrator sees it."""

    delivery_id: str
    message_id: str
    kind: MessageKind
    from_id: str
    document_id: str
    delivered_to: str
    state: str
    attempts: int
    last_error: str | None
    updated_at: str
    push_since: str | None
    next_attempt_at: str | None  # None: due since queued, or nothing to push (done, dead)


@dataclass(frozen=True, slots=True)
class DeliveryGauges:
    """Where the deliveries not yet acknowledged stand: what an operator alerts on.

    ``oldest_undelivered_at`` is the ``received_at`` of the oldest delivery still ``queued``
    or ``retrying`` (neither fetched nor pushed; dead letters are counted apart), None when
    there is none.
    """

    queued: int
    fetched: int
    retrying: int
    dead: int
    oldest_undelivered_at: str | None


# ----------------------------------------------------------------------- the console


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A browser's signed-in session: a token exchanged at sign-in, known by a hash only."""

    session_hash: str
    principal: Principal
    created_at: str
    last_seen_at: str

    def ended(self, now: datetime, *, idle: float, lifetime: float) -> str | None:
        """Why the session is over at ``now`` (``idle`` or ``lifetime``), or None while live."""
        if (now - datetime.fromisoformat(self.created_at)).total_seconds() >= lifetime:
            return "lifetime"
        if (now - datetime.fromisoformat(self.last_seen_at)).total_seconds() >= idle:
            return "idle"
        return None


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """The console's message search; every criterion given must hold (and).

    Codes are agency codes already resolved from what was typed (a name or a code).
    ``state`` is a delivery state, or ``overdue`` (a recipient past its receipt deadline).
    """

    message_id: str | None = None
    document_id: str | None = None
    from_id: str | None = None
    to_id: str | None = None
    kind: MessageKind | None = None
    state: str | None = None
    since: datetime | None = None  # received_at >= since
    until: datetime | None = None  # received_at < until
    overdue_before: datetime | None = None  # with state overdue: received before this


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One line of a message search: the message and where each delivery stands."""

    seq: int
    id: str
    kind: MessageKind
    from_id: str
    document_id: str
    business_type: int | None
    status_code: str | None
    received_at: str
    deliveries: tuple[tuple[str, str], ...]  # (delivered_to, state), in delivery order


@dataclass(frozen=True, slots=True)
class ScanPage(Generic[T]):
    """A page, newest first, of a search that may scan a window: when it stopped short of a
    full page with more left to look at, ``searched_to`` is the time it looked back to and
    ``next_cursor`` goes on from there."""

    items: list[T]
    next_cursor: str | None = None
    searched_to: str | None = None


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the console shows of a stored message beyond its record."""

    signer_sha256: str | None  # the certificate that signed it; None: vouched for otherwise
    body_purged_at: str | None
    replaced_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """Deliveries by state: the open ones counted exactly, acknowledged ones derived."""

    open: dict[str, int]  # queued, fetched, retrying, dead
    failed: int
    total: int  # every delivery ever made (the highest sequence number)

    @property
    def acked(self) -> int:
        return max(0, self.total - sum(self.open.values()) - self.failed)


@dataclass(frozen=True, slots=True)
class FailingEndpoint:
    """An agency whose pushes are failing: deliveries wait after a failed push (retrying)."""

    organ_id: str
    since: str | None  # when the oldest waiting round started
    waiting: int  # deliveries retrying (counted up to a cap)
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OverdueRecipient:
    """A recipient of a document that reported no receipt (01, 02, 03) by its deadline."""

    message_id: str
    from_id: str
    document_id: str
    received_at: str
    delivered_to: str


@dataclass(frozen=True, slots=True)
class TailCheck:
    """The chain checked from the last signed checkpoint to the head (or to a cap)."""

    ok: bool
    checkpoint_seq: int  # 0: no checkpoint yet, checked from the first event
    checkpoint_at: str | None
    checked: int  # events checked after the checkpoint
    head_seq: int
    first_bad_seq: int | None = None
    reason: str | None = None

    @property
    def unchecked(self) -> int:
        return max(0, self.head_seq - self.checkpoint_seq - self.checked)
