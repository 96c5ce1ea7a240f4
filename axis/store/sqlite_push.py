"""SQLite operations.

Push delivery: due deliveries, leases, attempts, dead letters (issue 4).

A claim is one write operation (the group writer serialises them, so two workers never take
the same row); every attempt's outcome and its audit events commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from axis import ids, timeutil
from axis.audit import Event
from axis.errors import DuplicateConflict
from axis.model import Attempt, DeliveryView, Page, PushJob, PushState
from axis.store.sqlite_base import SqliteBase, Tx, decode_cursor, encode_cursor

# Each query repeats the partial index's condition (deliveries_push_due is used only then);
# a list of agencies is one JSON parameter, so every statement is a constant text.
_NEXT_DUE = (
    "SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.delivered_to = ?"
    " AND d.open = 1 AND d.state IN ('queued', 'fetched', 'retrying')"
)
_CLAIM = (
    "SELECT d.id, d.message_id, d.delivered_to, d.kind, m.from_id, m.document_id,"
    " m.size, m.body, m.body_file, d.attempts, d.push_failures, COALESCE(d.push_since, ?)"
    " FROM deliveries d JOIN messages m ON m.id = d.message_id"
    " WHERE d.delivered_to = ? AND d.open = 1 AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?"
)
_HASTEN = (
    "UPDATE deliveries AS d SET next_attempt_at = ?"
    " WHERE d.delivered_to IN (SELECT value FROM json_each(?))"
    " AND d.open = 1 AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at > ? AND d.lease_id IS NULL"
)
# held: due, unleased, pushable deliveries of the agencies
_START_HELD = (
    "UPDATE deliveries AS d SET push_since = ?"
    " WHERE d.delivered_to IN (SELECT value FROM json_each(?))"
    " AND d.open = 1 AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at <= ? AND d.lease_id IS NULL AND d.push_since IS NULL"
)
_EXPIRED_HELD = (
    "SELECT d.id, d.attempts, d.last_error, m.id, m.document_id, m.from_id, d.delivered_to"
    " FROM deliveries d JOIN messages m ON m.id = d.message_id"
    " WHERE d.delivered_to IN (SELECT value FROM json_each(?))"
    " AND d.open = 1 AND d.state IN ('queued', 'fetched', 'retrying')"
    " AND d.next_attempt_at <= ? AND d.lease_id IS NULL AND d.push_since < ?"
)
_VIEW_SELECT = (
    "SELECT d.seq, d.id, d.message_id, d.kind, m.from_id, m.document_id, d.delivered_to,"
    " d.state, d.attempts, d.last_error, d.updated_at, d.push_since, d.next_attempt_at,"
    " d.open FROM deliveries d JOIN messages m ON m.id = d.message_id"
)


def _list(values: Sequence[str]) -> str:
    return orjson.dumps(list(values)).decode()


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


def _event(kind: str, actor: str, row: Sequence[Any], detail: dict[str, Any]) -> Event:
    """An event about one delivery; ``row`` is (message_id, document_id, from_id, to_id)."""
    message_id, document_id, from_id, to_id = row
    return Event(
        type=kind,
        actor=actor,
        message_id=message_id,
        document_id=document_id,
        from_id=from_id,
        to_id=to_id,
        detail=detail,
    )


PUSH_ACTOR = "axis:push"


class SqlitePushOps(SqliteBase):
    """Push delivery: due deliveries, leases, attempts, dead letters (issue 4)."""

    async def next_due(self, organ_ids: Sequence[str]) -> datetime | None:
        if not organ_ids:
            return None
        due = None
        for organ_id in organ_ids:  # one index probe each: MIN over (delivered_to, next_…)
            row = self._r.execute(_NEXT_DUE, (organ_id,)).fetchone()
            if row[0] is not None and (due is None or row[0] < due):
                due = row[0]
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

        def op(tx: Tx) -> list[PushJob]:
            lease_end = timeutil.fmt(
                datetime.fromisoformat(tx.at) + timedelta(seconds=lease_seconds)
            )
            rows: list[Any] = []
            for organ_id in organ_ids:  # one index range each, already in due order
                rows += tx.conn.execute(
                    _CLAIM, (tx.at, organ_id, tx.at, limit - len(rows))
                ).fetchall()
                if len(rows) >= limit:
                    break
            tx.conn.executemany(
                "UPDATE deliveries SET next_attempt_at = ?, lease_id = ?, leased_by = ?,"
                " push_since = COALESCE(push_since, ?) WHERE id = ?",
                [(lease_end, lease_id, worker_id, tx.at, row[0]) for row in rows],
            )
            return [
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
                    body_file=Path(r[8]) if r[8] else None,
                    attempts=r[9],
                    failures=r[10],
                    push_since=r[11],
                )
                for r in rows
            ]

        return await self._write(op)

    async def record_attempt(self, job: PushJob, attempt: Attempt) -> PushState | None:
        def op(tx: Tx) -> PushState | None:
            row = tx.conn.execute(
                "SELECT d.state, d.open, d.lease_id, d.attempts, m.id, m.document_id,"
                " m.from_id, d.delivered_to FROM deliveries d"
                " JOIN messages m ON m.id = d.message_id WHERE d.id = ?",
                (job.delivery_id,),
            ).fetchone()
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
                tx.conn.execute(
                    "UPDATE deliveries SET state = 'acked', open = 0, attempts = ?,"
                    " lease_id = NULL, leased_by = NULL, push_failures = 0, updated_at = ?"
                    " WHERE id = ?",
                    (number, tx.at, job.delivery_id),
                )
                tx.event(_event("delivery_acked", PUSH_ACTOR, who, {**detail, "via": "push"}))
                return "acked"
            if lease_id != job.lease_id:
                return None  # lease lapsed and taken by another worker, or redelivered
            error = attempt.error or f"HTTP {attempt.status}"
            detail["error"] = error
            if attempt.retry_at is None:
                tx.conn.execute(
                    "UPDATE deliveries SET state = 'dead', attempts = ?, last_error = ?,"
                    " lease_id = NULL, leased_by = NULL, push_failures = push_failures + 1,"
                    " updated_at = ? WHERE id = ?",
                    (number, error, tx.at, job.delivery_id),
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
            tx.conn.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, last_error = ?,"
                " next_attempt_at = ?, lease_id = NULL, leased_by = NULL,"
                " push_failures = push_failures + 1, updated_at = ? WHERE id = ?",
                (new_state, number, error, retry_at, tx.at, job.delivery_id),
            )
            tx.event(_event("push_attempt_failed", PUSH_ACTOR, who, detail))
            return new_state

        return await self._write(op)

    async def release(self, jobs: Sequence[PushJob]) -> None:
        if not jobs:
            return

        def op(tx: Tx) -> None:
            tx.conn.executemany(
                "UPDATE deliveries SET next_attempt_at = ?, lease_id = NULL, leased_by = NULL"
                " WHERE id = ? AND lease_id = ?",
                [(tx.at, job.delivery_id, job.lease_id) for job in jobs],
            )

        await self._write(op)

    async def hasten(self, organ_ids: Sequence[str]) -> int:
        if not organ_ids:
            return 0
        to = _list(organ_ids)

        def op(tx: Tx) -> int:
            cur = tx.conn.execute(_HASTEN, (tx.at, to, tx.at))
            return int(cur.rowcount)

        return await self._write(op)

    async def expire_held(
        self, organ_ids: Sequence[str], *, started_before: datetime, reason: str
    ) -> int:
        if not organ_ids:
            return 0
        cutoff = timeutil.fmt(started_before)
        to = _list(organ_ids)

        def op(tx: Tx) -> int:
            tx.conn.execute(_START_HELD, (tx.at, to, tx.at))
            rows = tx.conn.execute(_EXPIRED_HELD, (to, tx.at, cutoff)).fetchall()
            for delivery_id, attempts, last_error, *who in rows:
                error = last_error or reason
                tx.conn.execute(
                    "UPDATE deliveries SET state = 'dead', last_error = ?, updated_at = ?"
                    " WHERE id = ?",
                    (error, tx.at, delivery_id),
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
        clauses = ["d.seq > ?"]
        args: list[Any] = [decode_cursor(cursor) or 0]
        if state is not None:
            clauses.append("d.state = ?")
            args.append(state)
        if organ_id is not None:
            clauses.append("d.delivered_to = ?")
            args.append(organ_id)
        where = " AND ".join(clauses)  # fixed clause texts; every value is a parameter
        rows = self._r.execute(
            f"{_VIEW_SELECT} WHERE {where} ORDER BY d.seq LIMIT ?", (*args, limit + 1)
        ).fetchall()
        items = [_view(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1][0]) if more else None)

    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        row = self._r.execute(f"{_VIEW_SELECT} WHERE d.id = ?", (delivery_id,)).fetchone()
        return _view(row) if row else None

    async def redeliver(self, delivery_id: str, *, actor: str) -> DeliveryView | None:
        def op(tx: Tx) -> str | None:
            row = tx.conn.execute(
                "SELECT d.state, d.open, m.id, m.document_id, m.from_id, d.delivered_to"
                " FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.id = ?",
                (delivery_id,),
            ).fetchone()
            if row is None:
                return None
            state, open_, *who = row
            if not open_ or state in ("acked", "failed"):
                raise DuplicateConflict(
                    f"delivery {delivery_id}: already acknowledged ({state}); nothing to redeliver"
                )
            tx.conn.execute(
                "UPDATE deliveries SET state = 'queued', next_attempt_at = '', lease_id = NULL,"
                " leased_by = NULL, push_since = NULL, push_failures = 0, updated_at = ?"
                " WHERE id = ?",
                (tx.at, delivery_id),
            )
            tx.event(
                _event(
                    "delivery_redelivered",
                    actor,
                    who,
                    {"delivery_id": delivery_id, "previous_state": state},
                )
            )
            return str(who[3])

        organ_id = await self._write(op)
        if organ_id is None:
            return None
        self._wake([organ_id])
        return await self.delivery(delivery_id)
