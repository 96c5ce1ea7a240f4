"""Push delivery: due deliveries, leases, attempts, dead letters.

A claim is one write: the due deliveries of the lane's agencies, oldest due first, leased to
the worker (a later ``next_attempt_at`` and a ``lease_id``), so a delivery whose holder died
falls due again by itself, with nothing to clean up. On PostgreSQL the claim's select skips
rows another node has locked (``FOR UPDATE SKIP LOCKED``); SQLite's one writer serialises
claims. Every attempt's outcome and its audit events commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from axis import cursor as cursors
from axis import ids, timeutil
from axis.errors import DuplicateConflict
from axis.model import (
    CLOSED_STATES,
    PUSHABLE_STATES,
    Attempt,
    DeliveryGauges,
    DeliveryState,
    DeliveryView,
    EventType,
    Page,
    PushJob,
    PushState,
)
from axis.store.backend import Row, Tx
from axis.store.ops.base import OpsBase, about, page

PUSH_ACTOR = "axis:push"


def delivery_view(row: Row) -> DeliveryView:
    """A ``deliveries_page``-shaped row (sequence number first) as an administrator sees it."""
    (_, did, mid, kind, from_id, doc, to, state, attempts, error, updated, since, due, open_) = row
    pending = bool(open_) and state in PUSHABLE_STATES
    return DeliveryView(
        delivery_id=did,
        message_id=mid,
        kind=kind,
        from_id=from_id,
        document_id=doc,
        delivered_to=to,
        state=state,
        attempts=attempts,
        last_error=error,
        updated_at=updated,
        push_since=since,
        next_attempt_at=(due or None) if pending else None,
    )


def _due(value: str | None) -> datetime | None:
    """A stored ``next_attempt_at``: '' (due since queued) sorts before every time."""
    if value is None:
        return None
    if value == "":
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(value)


class PushOps(OpsBase):
    """Push delivery: due deliveries, leases, attempts, dead letters."""

    async def next_due(self, organ_ids: Sequence[str]) -> datetime | None:
        due: str | None = None
        for organ_id in organ_ids:  # one index probe each: MIN over (delivered_to, next_…)
            value = await self._b.read.value("push_next_due", organ_id)
            if value is not None and (due is None or value < due):
                due = value
        return _due(due)

    async def claim_due(
        self, organ_ids: Sequence[str], *, limit: int, lease_seconds: float, worker_id: str
    ) -> list[PushJob]:
        if not organ_ids or limit <= 0:
            return []
        lease_id = ids.new_id("lease")

        async def op(tx: Tx) -> list[Row]:
            lease_end = timeutil.fmt(
                datetime.fromisoformat(tx.at) + timedelta(seconds=lease_seconds)
            )
            rows: list[Row] = []
            for organ_id in organ_ids:  # one index range each, already in due order
                rows += await tx.all("push_claim", tx.at, organ_id, tx.at, limit - len(rows))
                if len(rows) >= limit:
                    break
            if rows:
                leased = [row[0] for row in rows]
                await tx.run("push_lease", lease_end, lease_id, worker_id, tx.at, leased)
            return rows

        jobs = []
        for r in await self._b.write(op):
            body_file = None if r[7] is not None else await self._b.body_path(r[1], r[9], r[8])
            jobs.append(
                PushJob(
                    delivery_id=r[0],
                    lease_id=lease_id,
                    message_id=r[1],
                    delivered_to=r[2],
                    kind=r[3],
                    from_id=r[4],
                    document_id=r[5],
                    size=r[6],
                    body=bytes(r[7]) if r[7] is not None else None,
                    body_file=body_file,
                    attempts=r[10],
                    failures=r[11],
                    push_since=r[12],
                )
            )
        return jobs

    async def record_attempt(self, job: PushJob, attempt: Attempt) -> PushState | None:
        async def op(tx: Tx) -> PushState | None:
            row = await tx.one("push_delivery_locked", job.delivery_id)
            if row is None:
                return None
            state, open_, lease_id, attempts, *who = row
            if not open_ or state in CLOSED_STATES:
                return None  # the recipient acknowledged it meanwhile (pull)
            number = attempts + 1
            detail: dict[str, Any] = {
                "delivery_id": job.delivery_id,
                "attempt": number,
                "status": attempt.status,
            }
            if attempt.ok:
                await tx.run("push_acked", DeliveryState.ACKED, number, tx.at, job.delivery_id)
                detail["via"] = "push"
                tx.event(about(EventType.DELIVERY_ACKED, PUSH_ACTOR, who, detail))
                return "acked"
            if lease_id != job.lease_id:
                return None  # lease lapsed and taken by another worker, or redelivered
            error = attempt.error or f"HTTP {attempt.status}"
            detail["error"] = error
            if attempt.retry_at is None:
                await tx.run(
                    "push_gave_up", DeliveryState.DEAD, number, error, tx.at, job.delivery_id
                )
                tx.event(about(EventType.PUSH_ATTEMPT_FAILED, PUSH_ACTOR, who, detail))
                dead = {
                    "delivery_id": job.delivery_id,
                    "attempts": number,
                    "reason": attempt.gave_up or error,
                    "error": error,
                }
                tx.event(about(EventType.DELIVERY_DEAD, PUSH_ACTOR, who, dead))
                return "dead"
            retry_at = timeutil.fmt(attempt.retry_at)
            detail["retry_at"] = retry_at
            fetched = state == DeliveryState.FETCHED
            new_state: PushState = "fetched" if fetched else "retrying"
            await tx.run("push_failed", new_state, number, error, retry_at, tx.at, job.delivery_id)
            tx.event(about(EventType.PUSH_ATTEMPT_FAILED, PUSH_ACTOR, who, detail))
            return new_state

        return await self._b.write(op)

    async def release(self, jobs: Sequence[PushJob]) -> None:
        if not jobs:
            return

        async def op(tx: Tx) -> None:
            await tx.many("push_release", [(tx.at, job.delivery_id, job.lease_id) for job in jobs])

        await self._b.write(op)

    async def hasten(self, organ_ids: Sequence[str]) -> int:
        if not organ_ids:
            return 0
        to = list(organ_ids)

        async def op(tx: Tx) -> int:
            return await tx.run("push_hasten", tx.at, to, tx.at)

        return await self._b.write(op)

    async def expire_held(
        self, organ_ids: Sequence[str], *, started_before: datetime, reason: str
    ) -> int:
        if not organ_ids:
            return 0
        cutoff = timeutil.fmt(started_before)
        to = list(organ_ids)

        async def op(tx: Tx) -> int:
            await tx.run("push_start_held", tx.at, to, tx.at)
            rows = await tx.all("push_expired_held", to, tx.at, cutoff)
            for delivery_id, attempts, last_error, *who in rows:
                error = last_error or reason
                await tx.run("push_held_dead", DeliveryState.DEAD, error, tx.at, delivery_id)
                dead = {
                    "delivery_id": delivery_id,
                    "attempts": attempts,
                    "reason": reason,
                    "error": error,
                }
                tx.event(about(EventType.DELIVERY_DEAD, PUSH_ACTOR, who, dead))
            return len(rows)

        return await self._b.write(op)

    async def deliveries(
        self,
        *,
        state: str | None,
        organ_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[DeliveryView]:
        conditions = []
        args: list[Any] = [cursors.after_number(cursor) or 0]
        if state is not None:
            conditions.append("deliveries_state")
            args.append(state)
        if organ_id is not None:
            conditions.append("deliveries_to")
            args.append(organ_id)
        rows = await self._b.read.all(("deliveries_page", *conditions), *args, limit + 1)
        return page([delivery_view(row) for row in rows[:limit]], rows, limit)

    async def delivery_gauges(self) -> DeliveryGauges:
        rows = await self._b.read.all("deliveries_open_by_state")
        counts = {state: (count, first) for state, count, first in rows}
        undelivered = (DeliveryState.QUEUED, DeliveryState.RETRYING)
        firsts = [counts[s][1] for s in undelivered if s in counts]
        oldest = None
        if firsts:  # deliveries are numbered as their messages are accepted
            oldest = await self._b.read.value("delivery_received_at", min(firsts))
        return DeliveryGauges(
            queued=counts.get(DeliveryState.QUEUED, (0, 0))[0],
            fetched=counts.get(DeliveryState.FETCHED, (0, 0))[0],
            retrying=counts.get(DeliveryState.RETRYING, (0, 0))[0],
            dead=counts.get(DeliveryState.DEAD, (0, 0))[0],
            oldest_undelivered_at=oldest,
        )

    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        row = await self._b.read.one("delivery_by_id", delivery_id)
        return delivery_view(row) if row else None

    async def redeliver(self, delivery_id: str, *, actor: str) -> DeliveryView | None:
        async def op(tx: Tx) -> str | None:
            row = await tx.one("push_delivery_locked", delivery_id)
            if row is None:
                return None
            state, open_, _lease, _attempts, *who = row
            if not open_ or state in CLOSED_STATES:
                raise DuplicateConflict(
                    f"delivery {delivery_id}: already acknowledged ({state}); nothing to redeliver"
                )
            await tx.run("push_redeliver", DeliveryState.QUEUED, tx.at, delivery_id)
            detail = {"delivery_id": delivery_id, "previous_state": state}
            tx.event(about(EventType.DELIVERY_REDELIVERED, actor, who, detail))
            tx.notify([str(who[3])])
            return str(who[3])

        if await self._b.write(op) is None:
            return None
        return await self.delivery(delivery_id)
