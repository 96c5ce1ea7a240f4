"""PostgreSQL operations.

Push delivery: due deliveries, leases, attempts, dead letters (issue 4), as in
``sqlite_push``. On a shared engine a claim is ``SELECT … FOR UPDATE SKIP LOCKED`` then an
``UPDATE`` to the end of the lease, in one transaction: two nodes claiming at once skip each
other's rows, and a row another node has just claimed and committed is no longer due. Every
other operation locks the delivery it reads before deciding (``FOR UPDATE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from axis import ids, timeutil
from axis.errors import DuplicateConflict
from axis.model import Attempt, DeliveryView, Page, PushJob, PushState
from axis.store.postgres_base import PgTx, PostgresBase, rowcount
from axis.store.sqlite_base import decode_cursor, encode_cursor
from axis.store.sqlite_push import PUSH_ACTOR, _event

# Each query repeats the partial index's condition (deliveries_push_due is used only then).
_NEXT_DUE = (
    "SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.delivered_to = ANY($1)"
    " AND d.open AND d.state IN ('queued', 'fetched', 'retrying')"
)
_CLAIM = (
    "SELECT d.id, d.message_id, d.delivered_to, d.kind, m.from_id, m.document_id,"
    " m.size, m.body, m.body_parts, m.sha256, d.attempts, d.push_failures,"
    " COALESCE(d.push_since, $1) FROM deliveries d JOIN messages m ON m.id = d.message_id"
    " WHERE d.delivered_to = $2 AND d.open AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at <= $3"
    " ORDER BY d.next_attempt_at LIMIT $4 FOR UPDATE OF d SKIP LOCKED"
)
_HASTEN = (
    "UPDATE deliveries AS d SET next_attempt_at = $1"
    " WHERE d.delivered_to = ANY($2) AND d.open AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at > $3 AND d.lease_id IS NULL"
)
# held: due, unleased, pushable deliveries of the agencies
_START_HELD = (
    "UPDATE deliveries AS d SET push_since = $1"
    " WHERE d.delivered_to = ANY($2) AND d.open AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at <= $3 AND d.lease_id IS NULL AND d.push_since IS NULL"
)
_EXPIRED_HELD = (
    "SELECT d.id, d.attempts, d.last_error, m.id, m.document_id, m.from_id, d.delivered_to"
    " FROM deliveries d JOIN messages m ON m.id = d.message_id"
    " WHERE d.delivered_to = ANY($1) AND d.open AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at <= $2 AND d.lease_id IS NULL AND d.push_since < $3"
    " ORDER BY d.seq FOR UPDATE OF d SKIP LOCKED"
)
_VIEW_SELECT = (
    "SELECT d.seq, d.id, d.message_id, d.kind, m.from_id, m.document_id, d.delivered_to,"
    " d.state, d.attempts, d.last_error, d.updated_at, d.push_since, d.next_attempt_at,"
    " d.open FROM deliveries d JOIN messages m ON m.id = d.message_id"
)
_WHO = (
    "SELECT d.state, d.open, d.lease_id, d.attempts, m.id, m.document_id, m.from_id,"
    " d.delivered_to FROM deliveries d JOIN messages m ON m.id = d.message_id"
    " WHERE d.id = $1 FOR UPDATE OF d"
)


def _view(row: Sequence[Any]) -> DeliveryView:
    (_, did, mid, kind, from_id, doc, to, state, attempts, error, updated, since, due, open_) = row
    pending = bool(open_) and state in ("queued", "fetched", "retrying")
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


class PostgresPushOps(PostgresBase):
    """Push delivery: due deliveries, leases, attempts, dead letters (issue 4)."""

    async def next_due(self, organ_ids: Sequence[str]) -> datetime | None:
        if not organ_ids:
            return None
        due = await self._read("fetchval", _NEXT_DUE, list(organ_ids))
        if due is None:
            return None
        if due == "":
            return datetime.min.replace(tzinfo=UTC)
        return datetime.fromisoformat(due)

    async def claim_due(
        self, organ_ids: Sequence[str], *, limit: int, lease_seconds: float, worker_id: str
    ) -> list[PushJob]:
        if not organ_ids or limit <= 0:
            return []
        lease_id = ids.new_id("lease")

        async def op(tx: PgTx) -> list[Any]:
            lease_end = timeutil.fmt(
                datetime.fromisoformat(tx.at) + timedelta(seconds=lease_seconds)
            )
            rows: list[Any] = []
            for organ_id in organ_ids:  # one index range each, already in due order
                rows += await tx.conn.fetch(_CLAIM, tx.at, organ_id, tx.at, limit - len(rows))
                if len(rows) >= limit:
                    break
            if rows:
                await tx.conn.execute(
                    "UPDATE deliveries SET next_attempt_at = $1, lease_id = $2, leased_by = $3,"
                    " push_since = COALESCE(push_since, $4) WHERE id = ANY($5)",
                    lease_end,
                    lease_id,
                    worker_id,
                    tx.at,
                    [row[0] for row in rows],
                )
            return rows

        rows = await self._write(op)
        jobs = []
        for r in rows:
            parts = r[8]
            body_file = None
            if r[7] is None and parts:
                body_file = await self._body_file(r[1], r[9], parts)
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
                    body=r[7],
                    body_file=body_file,
                    attempts=r[10],
                    failures=r[11],
                    push_since=r[12],
                )
            )
        return jobs

    async def record_attempt(self, job: PushJob, attempt: Attempt) -> PushState | None:
        async def op(tx: PgTx) -> PushState | None:
            row = await tx.conn.fetchrow(_WHO, job.delivery_id)
            if row is None:
                return None
            state, open_, lease_id, attempts, *who = row
            if not open_ or state in ("acked", "failed"):
                return None  # the recipient acknowledged it meanwhile (pull)
            number = attempts + 1
            detail: dict[str, Any] = {
                "delivery_id": job.delivery_id,
                "attempt": number,
                "status": attempt.status,
            }
            if attempt.ok:
                await tx.conn.execute(
                    "UPDATE deliveries SET state = 'acked', open = false, attempts = $1,"
                    " lease_id = NULL, leased_by = NULL, push_failures = 0, updated_at = $2"
                    " WHERE id = $3",
                    number,
                    tx.at,
                    job.delivery_id,
                )
                tx.event(_event("delivery_acked", PUSH_ACTOR, who, {**detail, "via": "push"}))
                return "acked"
            if lease_id != job.lease_id:
                return None  # lease lapsed and taken by another worker, or redelivered
            error = attempt.error or f"HTTP {attempt.status}"
            detail["error"] = error
            if attempt.retry_at is None:
                await tx.conn.execute(
                    "UPDATE deliveries SET state = 'dead', attempts = $1, last_error = $2,"
                    " lease_id = NULL, leased_by = NULL, push_failures = push_failures + 1,"
                    " updated_at = $3 WHERE id = $4",
                    number,
                    error,
                    tx.at,
                    job.delivery_id,
                )
                tx.event(_event("push_attempt_failed", PUSH_ACTOR, who, detail))
                tx.event(
                    _event(
                        "delivery_dead",
                        PUSH_ACTOR,
                        who,
                        {
                            "delivery_id": job.delivery_id,
                            "attempts": number,
                            "reason": attempt.gave_up or error,
                            "error": error,
                        },
                    )
                )
                return "dead"
            retry_at = timeutil.fmt(attempt.retry_at)
            detail["retry_at"] = retry_at
            new_state: PushState = "fetched" if state == "fetched" else "retrying"
            await tx.conn.execute(
                "UPDATE deliveries SET state = $1, attempts = $2, last_error = $3,"
                " next_attempt_at = $4, lease_id = NULL, leased_by = NULL,"
                " push_failures = push_failures + 1, updated_at = $5 WHERE id = $6",
                new_state,
                number,
                error,
                retry_at,
                tx.at,
                job.delivery_id,
            )
            tx.event(_event("push_attempt_failed", PUSH_ACTOR, who, detail))
            return new_state

        return await self._write(op)

    async def release(self, jobs: Sequence[PushJob]) -> None:
        if not jobs:
            return

        async def op(tx: PgTx) -> None:
            await tx.conn.execute(
                "UPDATE deliveries AS d SET next_attempt_at = $1, lease_id = NULL,"
                " leased_by = NULL FROM unnest($2::text[], $3::text[]) AS j (id, lease)"
                " WHERE d.id = j.id AND d.lease_id = j.lease",
                tx.at,
                [job.delivery_id for job in jobs],
                [job.lease_id for job in jobs],
            )

        await self._write(op)

    async def hasten(self, organ_ids: Sequence[str]) -> int:
        if not organ_ids:
            return 0
        to = list(organ_ids)

        async def op(tx: PgTx) -> int:
            return rowcount(await tx.conn.execute(_HASTEN, tx.at, to, tx.at))

        return await self._write(op)

    async def expire_held(
        self, organ_ids: Sequence[str], *, started_before: datetime, reason: str
    ) -> int:
        if not organ_ids:
            return 0
        cutoff = timeutil.fmt(started_before)
        to = list(organ_ids)

        async def op(tx: PgTx) -> int:
            await tx.conn.execute(_START_HELD, tx.at, to, tx.at)
            rows = await tx.conn.fetch(_EXPIRED_HELD, to, tx.at, cutoff)
            for delivery_id, attempts, last_error, *who in rows:
                error = last_error or reason
                await tx.conn.execute(
                    "UPDATE deliveries SET state = 'dead', last_error = $1, updated_at = $2"
                    " WHERE id = $3",
                    error,
                    tx.at,
                    delivery_id,
                )
                tx.event(
                    _event(
                        "delivery_dead",
                        PUSH_ACTOR,
                        who,
                        {
                            "delivery_id": delivery_id,
                            "attempts": attempts,
                            "reason": reason,
                            "error": error,
                        },
                    )
                )
            return len(rows)

        return await self._write(op)

    async def deliveries(
        self,
        *,
        state: str | None,
        organ_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[DeliveryView]:
        rows = await self._read(
            "fetch",
            f"{_VIEW_SELECT} WHERE d.seq > $1 AND ($2::text IS NULL OR d.state = $2)"
            " AND ($3::text IS NULL OR d.delivered_to = $3) ORDER BY d.seq LIMIT $4",
            decode_cursor(cursor) or 0,
            state,
            organ_id,
            limit + 1,
        )
        items = [_view(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1][0]) if more else None)

    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        row = await self._read("fetchrow", f"{_VIEW_SELECT} WHERE d.id = $1", delivery_id)
        return _view(row) if row else None

    async def redeliver(self, delivery_id: str, *, actor: str) -> DeliveryView | None:
        async def op(tx: PgTx) -> str | None:
            row = await tx.conn.fetchrow(_WHO, delivery_id)
            if row is None:
                return None
            state, open_, _lease, _attempts, *who = row
            if not open_ or state in ("acked", "failed"):
                raise DuplicateConflict(
                    f"delivery {delivery_id}: already acknowledged ({state}); nothing to redeliver"
                )
            await tx.conn.execute(
                "UPDATE deliveries SET state = 'queued', next_attempt_at = '', lease_id = NULL,"
                " leased_by = NULL, push_since = NULL, push_failures = 0, updated_at = $1"
                " WHERE id = $2",
                tx.at,
                delivery_id,
            )
            tx.event(
                _event(
                    "delivery_redelivered",
                    actor,
                    who,
                    {"delivery_id": delivery_id, "previous_state": state},
                )
            )
            tx.notify([str(who[3])])
            return str(who[3])

        organ_id = await self._write(op)
        if organ_id is None:
            return None
        self._wake([organ_id])
        return await self.delivery(delivery_id)
