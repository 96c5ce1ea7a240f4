"""``Store``: the whole protocol every backend implements, in the words of the domain.

Backends implement these operations (not a generic ``execute``), each atomic: the state
change and the audit events that record it commit together or not at all. A write
operation returns only once it is durable (fsync'd): callers answer ``201`` after it.
The records they take and give are ``axis.model``'s.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from axis.audit import Anchor, Checkpoint, StoredEvent, Verdict
from axis.model import (
    AcceptResult,
    Acked,
    AckResult,
    AgencyChange,
    Attempt,
    AuditFilter,
    ConsoleSession,
    DeliveryCounts,
    DeliveryGauges,
    DeliveryState,
    DeliveryView,
    DocumentInfo,
    FailingEndpoint,
    Fetched,
    HistoryEntry,
    InboxItem,
    InitReport,
    MessageFacts,
    MessageKind,
    MessageQuery,
    MessageRecord,
    MessageRow,
    NewMessage,
    OverdueRecipient,
    Page,
    Pending,
    Principal,
    PurgeReport,
    PushJob,
    PushState,
    Role,
    ScanPage,
    TailCheck,
    TokenInfo,
)
from axis.registry import Agency, Certificate, ExpiringCertificate, Registry
from axis.systems import ConnectedSystem, Systems

TOUCH_EVERY = timedelta(minutes=1)
"""A token's ``last_used_at`` is written at most this often: it is a hint, not a log."""

SCAN_WINDOW = 100_000
"""Most audit events one page request scans when its filters cannot use an index.

Reading the audit log never slows writing it: there is no index on the event table beyond
its sequence number and the message id, so appending an event costs one ``INSERT``. Filters
other than the message or the document are answered by scanning in ``seq`` order, in bounded
windows of this many events: a page may then hold fewer items than asked, even none, with a
``next_cursor`` to go on from. Long work (verification, exports, scans) runs off the loop.
"""


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

    async def delivery_states(self, message_id: str) -> list[tuple[str, DeliveryState]]:
        """Each recipient of a message with its delivery's state, in delivery order: what a
        connected system's ``docId`` resolves against, without reading the whole record."""

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


class AuditStore(Protocol):
    """Audit trail queries, verification, checkpoints, retention (issue 6)."""

    async def audit_events(
        self, where: AuditFilter, *, cursor: str | None, limit: int
    ) -> Page[StoredEvent]:
        """One page of matching events in ``seq`` order (see the module note on windows)."""

    def audit_stream(
        self, where: AuditFilter, *, batch: int = 1000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        """Every matching event in ``seq`` order, in batches, in constant memory."""

    async def audit_head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the last event; None when the log is empty."""

    async def body_purged_at(self, message_id: str) -> str | None:
        """When the retention policy purged this message's body; None while it is kept."""

    async def record_rejection(
        self,
        *,
        actor: str,
        organ_id: str,
        kind: str,
        code: str,
        reason: str,
        sha256: str | None,
        size: int | None,
        document_id: str | None = None,
    ) -> None:
        """Record a ``message_rejected`` event: an authenticated agency's package refused.

        ``organ_id`` (the caller) is the event's ``from``; ``code`` and ``reason`` are the
        problem's code and detail; ``sha256`` and ``size`` describe the body when it was read
        whole (a body refused for its size or media type was not).
        """

    async def checkpoint_due(self) -> tuple[int, str] | None:
        """The head to sign when something other than checkpoints happened since the last
        checkpoint; None otherwise (an idle axis does not sign the same head again)."""

    async def record_key_change(self, *, actor: str, previous_sha256: str, sha256: str) -> None:
        """Record an ``axis_key_rotated`` event: receipts and checkpoints are signed anew."""

    async def add_checkpoint(self, checkpoint: Checkpoint, *, actor: str) -> bool:
        """Keep a signed checkpoint and record it by a ``checkpoint`` event, atomically.

        False (nothing written) when a checkpoint of this or a later event exists already:
        several processes may race to sign. Raises ``ValueError`` when the log does not have
        that hash at that ``seq``.
        """

    async def checkpoints(self, *, cursor: str | None, limit: int) -> Page[Checkpoint]:
        """Signed checkpoints, oldest first."""

    async def checkpoint(self, seq: int | None) -> Checkpoint | None:
        """The checkpoint of event ``seq``, or the latest when ``seq`` is None."""

    async def verify_audit(
        self, certificates: Sequence[bytes], anchors: Sequence[Anchor] = ()
    ) -> Verdict:
        """Check the whole chain, every checkpoint (signature against ``certificates``, PEM)
        and any outside ``anchors`` (checkpoints an auditor kept); off the event loop."""

    async def purge_bodies(
        self, before: datetime, *, actor: str, grace: float = 600.0, batch: int = 500
    ) -> PurgeReport:
        """Drop the bodies of messages received before ``before`` whose deliveries are all
        closed (acknowledged or failed); digest, metadata and events stay. One ``body_purged``
        event per message. A blob file is deleted once no kept message refers to it and it has
        not been reused for ``grace`` seconds (an intake placing the same bytes right now)."""


class PushStore(Protocol):
    """Push delivery: due deliveries, leases, attempts, dead letters (issue 4)."""

    @property
    def mail_listeners(self) -> list[Callable[[Iterable[str]], None]]:
        """Called on the loop with the agencies that just got deliveries (new or redelivered),
        once they are committed; the push worker adds itself here."""

    async def next_due(self, organ_ids: Sequence[str]) -> datetime | None:
        """When the earliest pushable delivery to ``organ_ids`` falls due (may be past).

        A read, so an idle worker can sleep until then instead of claiming in vain.
        """

    async def claim_due(
        self, organ_ids: Sequence[str], *, limit: int, lease_seconds: float, worker_id: str
    ) -> list[PushJob]:
        """Lease up to ``limit`` due deliveries to ``organ_ids``, oldest due first.

        A leased delivery is not due again until ``lease_seconds`` have passed: if its holder
        dies, another worker takes it then. The round's clock starts at its first claim.
        """

    async def record_attempt(self, job: PushJob, attempt: Attempt) -> PushState | None:
        """Record one attempt and its audit events; the delivery's new state.

        A success acknowledges the delivery even on a lapsed lease (the receiver has the
        bytes); a failure counts only while the lease is still ``job``'s. None when the
        delivery was acknowledged, failed or redelivered meanwhile: nothing recorded.
        """

    async def release(self, jobs: Sequence[PushJob]) -> None:
        """Give claimed deliveries back untried, due at once (shutdown, circuit opened)."""

    async def hasten(self, organ_ids: Sequence[str]) -> int:
        """Make every delivery to ``organ_ids`` waiting out a backoff due now.

        Called when a probe finds an endpoint back: its backlog goes at once, not at the end
        of each delivery's own backoff. Leased deliveries are left to their holders.
        """

    async def expire_held(
        self, organ_ids: Sequence[str], *, started_before: datetime, reason: str
    ) -> int:
        """The endpoint's circuit is open, so due deliveries wait untried: start their clock,
        and give up (``dead``) those whose clock started before ``started_before``."""

    async def deliveries(
        self,
        *,
        state: str | None,
        organ_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[DeliveryView]:
        """Deliveries by state and recipient, oldest first (the dead letters, typically)."""

    async def delivery(self, delivery_id: str) -> DeliveryView | None: ...

    async def redeliver(self, delivery_id: str, *, actor: str) -> DeliveryView | None:
        """Start an open (typically dead) delivery again: queued, due now, a fresh clock.

        None when there is no such delivery; ``DuplicateConflict`` when it was acknowledged.
        """

    async def delivery_gauges(self) -> DeliveryGauges:
        """Open deliveries by state and the oldest undelivered one, for ``/metrics``.

        Cheap enough for every scrape: one grouped count over the open deliveries (the
        inbox's partial index) and one lookup by primary key.
        """


class AdminStore(Protocol):
    """Registry administration: search, history, certificates, token bookkeeping (issue 5)."""

    async def save_agencies(
        self, agencies: Sequence[Agency], *, actor: str, check_links: bool = True
    ) -> list[AgencyChange]:
        """Add or replace agencies in one transaction; unchanged ones are not touched.

        Each added or changed agency gets an ``agency_changed`` audit event naming ``actor``
        and the changed fields, and a history row. With ``check_links`` the parent and
        successor rules (``registry.check_links``) are checked inside the transaction against
        the registry as it will be, raising ``InvalidRequest`` and writing nothing; an import
        that checked the whole file first passes False.
        """

    async def save_agency(self, agency: Agency, *, actor: str) -> AgencyChange:
        """``save_agencies`` for one agency, links checked."""

    async def add_certificate(
        self, organ_id: str, certificate: Certificate, *, actor: str
    ) -> AgencyChange:
        """Pin one more certificate, keeping the others (rotation); ``NotFound`` if no agency."""

    async def remove_certificate(self, organ_id: str, sha256: str, *, actor: str) -> AgencyChange:
        """Unpin one certificate at once; ``NotFound`` if the agency or the pin is not there."""

    async def agency_history(self, organ_id: str) -> list[HistoryEntry]:
        """Every recorded registration or change of ``organ_id``, oldest first."""

    async def touch_token(self, token_id: str, at: datetime) -> None:
        """Note that a token was used at ``at``; cheap to call on every request.

        Writes at most once per ``TOUCH_EVERY`` per token and process (an in-memory check
        answers the other calls without touching the store), and never moves it backwards.
        """

    async def report_expiring(
        self, certificates: Sequence[ExpiringCertificate], *, day: str, actor: str
    ) -> list[ExpiringCertificate]:
        """Record a ``certificate_expiring`` audit event for each certificate not yet reported
        on ``day`` (UTC ``YYYY-MM-DD``); returns those. Several processes may call it: each
        certificate is reported once a day.
        """

    async def expiry_reported(self, day: str) -> set[tuple[str, str]]:
        """``(organ_id, sha256)`` of the certificates already reported as expiring on ``day``."""


class SystemStore(Protocol):
    """Connected systems (VDXP): their description, listed codes and sealed secrets, and the
    reads a system's SDK calls need over every agency it serves."""

    async def systems(self) -> Systems:
        """A snapshot of every system with who serves which code (sealed secrets included)."""

    async def system(self, system_id: str) -> ConnectedSystem | None: ...

    async def add_system(
        self, system: ConnectedSystem, sealed: str, *, actor: str
    ) -> ConnectedSystem:
        """Register a system with its first sealed secret; ``DuplicateConflict`` when the id
        exists or a listed code is listed by another system; ``InvalidRequest`` for a code
        that is not registered."""

    async def put_system(self, system: ConnectedSystem, *, actor: str) -> ConnectedSystem:
        """Replace the description (never the secret); ``NotFound`` when there is none."""

    async def disable_system(self, system_id: str, *, actor: str) -> ConnectedSystem: ...

    async def rotate_system_secret(
        self, system_id: str, sealed: str, *, actor: str
    ) -> ConnectedSystem:
        """Set a new sealed secret; the previous one works until the new one is first used."""

    async def retire_previous_secret(self, system_id: str, *, actor: str, reason: str) -> bool:
        """The previous secret stops working; False when there was none."""

    async def pending(
        self,
        organ_ids: Sequence[str],
        *,
        kind: MessageKind | None,
        since: datetime | None,
        until: datetime | None,
        offset: int,
        limit: int,
    ) -> list[Pending]:
        """Open deliveries to any of ``organ_ids``, oldest first, a page by offset."""

    async def pending_count(
        self,
        organ_ids: Sequence[str],
        *,
        kind: MessageKind | None,
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        """The number of open deliveries to any of ``organ_ids`` (a list's page does not
        count them: counting scans every one, and the SDK asks for the count apart)."""

    async def sent(
        self,
        from_ids: Sequence[str],
        *,
        since: datetime | None,
        until: datetime | None,
        offset: int,
        limit: int,
    ) -> list[MessageRecord]:
        """Messages sent by any of ``from_ids``, newest first, a page by offset."""

    async def mark_processing(self, message_id: str, organ_id: str, *, actor: str) -> str:
        """The recipient is working on it: recorded once; the delivery's state (LookupError
        when ``organ_id`` is not a recipient)."""


class ConsoleStore(Protocol):
    """The console for administrators and auditors (issue 13): sessions, the overview,
    searches newest first. Every read is indexed and bounded (``axis/store/ops/console.py``)."""

    async def create_session(
        self, session_hash: str, principal: Principal, *, idle: float, lifetime: float
    ) -> ConsoleSession:
        """Start a browser session for ``principal`` (an admin or auditor token), known by the
        hash of its id, with a ``console_signed_in`` event naming the token. Sessions idle for
        ``idle`` seconds or older than ``lifetime`` are cleared on the way."""

    async def console_session(self, session_hash: str) -> ConsoleSession | None:
        """The session, while its token is live; None when unknown, ended or revoked. Whether
        it has expired is the caller's to judge (``ConsoleSession.ended``)."""

    async def touch_session(self, session_hash: str, at: datetime, *, every: float) -> None:
        """Note activity for the idle expiry; writes at most once per ``every`` seconds per
        session and process, never moving it backwards."""

    async def end_session(self, session_hash: str, *, reason: str) -> ConsoleSession | None:
        """End a session (signed out, or found expired: ``reason``) with a
        ``console_signed_out`` event; None when it had already ended."""

    async def documents_per_hour(self, since: datetime) -> list[tuple[str, int]]:
        """Documents (edoc) accepted since ``since``, per UTC hour ``YYYY-MM-DDTHH``, in order."""

    async def delivery_counts(self) -> DeliveryCounts:
        """Open deliveries by state, those acknowledged as failed, and how many in all."""

    async def overdue_recipients(
        self, *, since: datetime, before: datetime, limit: int
    ) -> list[OverdueRecipient]:
        """Recipients of documents received in ``[since, before)`` that reported no receipt
        (01, 02, 03), newest first: ``before`` is the deadline's cutoff."""

    async def failing_endpoints(self, *, limit: int, cap: int = 10_000) -> list[FailingEndpoint]:
        """Agencies with deliveries waiting after a failed push (``retrying``), by code; each
        counts its waiting deliveries up to ``cap``."""

    async def failing_endpoint(self, organ_id: str) -> FailingEndpoint | None:
        """``failing_endpoints`` for one agency; None when no push to it is failing."""

    async def verify_tail(self, certificates: Sequence[bytes], *, limit: int) -> TailCheck:
        """Check the latest checkpoint (signature against ``certificates``, its hash in the
        log) and up to ``limit`` events after it: the quick state of the chain. The whole
        chain is ``verify_audit``'s."""

    async def search_messages(
        self, q: MessageQuery, *, cursor: str | None, limit: int, window: int = ...
    ) -> ScanPage[MessageRow]:
        """Messages matching ``q``, newest first. Filters the driving index does not cover
        are checked on at most ``window`` sequence numbers per page (``searched_to``)."""

    async def message_facts(self, message_id: str) -> MessageFacts | None:
        """What vouched for a message (its signer's certificate) and whether its body is kept."""

    async def download_body(self, message_id: str, *, actor: str) -> Fetched | None:
        """A message's exact bytes for an administrator, recorded by a ``body_downloaded``
        event first; ``body`` and ``body_file`` are None when the body was purged."""

    async def recent_deliveries(
        self, state: str, *, organ_id: str | None, cursor: str | None, limit: int
    ) -> Page[DeliveryView]:
        """Deliveries in ``state`` (an open state, or ``failed``), newest first."""

    async def audit_back(
        self, where: AuditFilter, *, cursor: str | None, limit: int, window: int = ...
    ) -> ScanPage[StoredEvent]:
        """Audit events matching ``where``, newest first; type and agency filters check at
        most ``window`` events per page (they have no index, so appending stays cheap)."""

    async def checkpoints_back(self, *, cursor: str | None, limit: int) -> Page[Checkpoint]:
        """Signed checkpoints, newest first."""


class Store(CoreStore, AuditStore, PushStore, AdminStore, SystemStore, ConsoleStore, Protocol):
    """Everything the axis keeps, as domain operations."""
