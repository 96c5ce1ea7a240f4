"""The Store protocol, in part:

Audit trail queries, verification, checkpoints, retention (issue 6).

Reading the audit log never slows writing it: there is no index on the event table beyond
its sequence number and the message id, so appending an event costs one ``INSERT``. Filters
other than the message or the document are answered by scanning in ``seq`` order, in bounded
windows (``SCAN_WINDOW`` events per page at most): a page may then hold fewer items than
asked, even none, with a ``next_cursor`` to go on from. Long work (verification, exports,
scans) runs off the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from axis.audit import Anchor, Checkpoint, StoredEvent, Verdict
from axis.store.base import Page

SCAN_WINDOW = 100_000
"""Most events one page request scans when its filters cannot use an index."""


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
