"""The Store protocol, in part:

Push delivery: due deliveries, leases, attempts, dead letters (issue 4).

The operations map one to one onto a shared engine: ``claim_due`` is PostgreSQL's
``SELECT … FOR UPDATE SKIP LOCKED`` + ``UPDATE`` in one transaction; a lease is just a later
``next_attempt_at`` and a ``lease_id``, so a delivery claimed by a process that died becomes
due again when its lease runs out, with nothing to clean up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from axis.store.base import MessageKind, Page

DELIVERY_STATES = ("queued", "fetched", "acked", "failed", "retrying", "dead")
# a delivery the worker may still push: listed in the inbox and neither acknowledged nor dead
PUSHABLE_STATES = ("queued", "fetched", "retrying")
PushState = Literal["acked", "retrying", "fetched", "dead"]


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


class PushStore(Protocol):
    """Push delivery: due deliveries, leases, attempts, dead letters (issue 4)."""

    # called on the loop with the agencies that just got deliveries (new or redelivered)
    mail_listeners: list[Callable[[Iterable[str]], None]]

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
