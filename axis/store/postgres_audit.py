"""PostgreSQL operations.

Audit trail queries, verification, checkpoints, retention (issue 6), as in ``sqlite_audit``.

Queries go by ``seq``, as there: time filters become a ``seq`` range by bisection, which holds
on the shared engine too because event times never go back along the chain (a batch takes
the later of its own time and the head's, under the head's lock). Verification reads one
snapshot of the log (a ``REPEATABLE READ`` transaction) page by page and hashes each page in a
worker thread, so the event loop keeps serving. Retention drops bodies in the engine; each
node also deletes its cached copies of purged large bodies.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta
from typing import Any

from axis import audit, log, timeutil
from axis.audit import Anchor, Checkpoint, Event, StoredEvent, Verdict
from axis.model import AuditFilter, Page, PurgeReport
from axis.store.postgres_base import PgTx, PostgresBase, qmarks
from axis.store.protocol import SCAN_WINDOW
from axis.store.sql_common import audit_clauses
from axis.store.sqlite_base import decode_cursor, encode_cursor

_log = log.get("axis.audit")

_SELECT = (
    "SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"
    " FROM audit_events"
)
# probes for the bisection over seq (table and column are constants, never input)
_FIRST_AT = "SELECT at FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT 1"
_FIRST_RECEIVED = "SELECT received_at FROM messages WHERE seq >= $1 ORDER BY seq LIMIT 1"
_VERIFY_PAGE = 5000
_PURGE_SCAN = 5000
_PURGED_KEPT = timedelta(days=7)


def _row(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(*row)


async def _first_from(conn: Any, table: str, probe: str, when: str) -> int:
    """The smallest ``x`` such that every row with ``seq >= x`` has its time ``>= when``."""
    first, last = await conn.fetchrow(f"SELECT min(seq), max(seq) FROM {table}")  # noqa: S608
    if first is None:
        return 1
    lo, hi = int(first), int(last) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if str(await conn.fetchval(probe, mid)) >= when:
            hi = mid
        else:
            lo = mid + 1
    return lo


async def _page(
    conn: Any, where: AuditFilter, after: int, limit: int, window: int
) -> tuple[list[StoredEvent], int | None]:
    """One page after ``after``: the events and the position to go on from (None: the end)."""
    last = await conn.fetchval("SELECT max(seq) FROM audit_events") or 0
    lo, hi = after, int(last)
    if where.since is not None:
        first = await _first_from(conn, "audit_events", _FIRST_AT, timeutil.fmt(where.since))
        lo = max(lo, first - 1)
    if where.until is not None:
        first = await _first_from(conn, "audit_events", _FIRST_AT, timeutil.fmt(where.until))
        hi = min(hi, first - 1)
    if lo >= hi:
        return [], None
    indexed = where.message_id is not None or where.document_id is not None
    end = hi if indexed else min(hi, lo + window)
    clauses, args = audit_clauses(where)
    sql = qmarks(" AND ".join(["seq > ? AND seq <= ?", *clauses]))
    rows = await conn.fetch(
        f"{_SELECT} WHERE {sql} ORDER BY seq LIMIT ${len(args) + 3}", lo, end, *args, limit + 1
    )
    items = [_row(r) for r in rows[:limit]]
    if len(rows) > limit:
        return items, items[-1].seq
    return items, end if end < hi else None


def _anchors(
    reader: audit.CheckpointReader,
    verifier: audit.ChainVerifier,
    rows: Sequence[Sequence[Any]],
) -> None:
    """Checkpoint rows become anchors (or rejections), verified against the axis key."""
    for seq, head_hash, xml in rows:
        try:
            signed = reader.read(bytes(xml))
        except audit.CheckpointInvalid as exc:
            verifier.reject(seq, str(exc))
            continue
        if (signed.seq, signed.hash) != (seq, head_hash):
            verifier.reject(seq, "its row differs from what it signs")
            continue
        verifier.anchor(
            Anchor(
                seq,
                signed.hash,
                f"the checkpoint signed at {signed.at}",
                sha256=signed.sha256,
                recorded=True,
            )
        )


def _feed(verifier: audit.ChainVerifier, rows: Sequence[Sequence[Any]]) -> None:
    for row in rows:
        verifier.feed(_row(row))
        if verifier.done:
            return


class PostgresAuditOps(PostgresBase):
    """Audit trail queries, verification, checkpoints, retention (issue 6)."""

    # ----------------------------------------------------------------- queries

    async def audit_events(
        self, where: AuditFilter, *, cursor: str | None, limit: int
    ) -> Page[StoredEvent]:
        after = decode_cursor(cursor) or 0
        async with self._r.acquire() as conn:
            items, next_after = await _page(conn, where, after, limit, SCAN_WINDOW)
        return Page(items, encode_cursor(next_after) if next_after is not None else None)

    async def audit_stream(
        self, where: AuditFilter, *, batch: int = 1000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        async with self._r.acquire() as conn:
            after: int | None = 0
            while after is not None:
                items, after = await _page(conn, where, after, batch, SCAN_WINDOW)
                if items:
                    yield items

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._read(
            "fetchrow", "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        )
        return (int(row[0]), str(row[1])) if row else None

    async def body_purged_at(self, message_id: str) -> str | None:
        value = await self._read(
            "fetchval", "SELECT body_purged_at FROM messages WHERE id = $1", message_id
        )
        return str(value) if value else None

    # ----------------------------------------------------------------- rejections

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
        detail: dict[str, Any] = {
            "kind": kind,
            "code": code,
            "detail": reason,
            "sha256": sha256,
            "size": size,
        }
        if document_id is not None:
            detail["document_id"] = document_id
        event = Event(type="message_rejected", actor=actor, from_id=organ_id, detail=detail)

        async def op(tx: PgTx) -> None:
            tx.event(event)

        await self._write(op)

    async def record_key_change(self, *, actor: str, previous_sha256: str, sha256: str) -> None:
        event = audit.key_change_event(actor, previous_sha256, sha256)

        async def op(tx: PgTx) -> None:
            tx.event(event)

        await self._write(op)

    # ----------------------------------------------------------------- checkpoints

    async def checkpoint_due(self) -> tuple[int, str] | None:
        last = await self._read("fetchval", "SELECT max(seq) FROM audit_checkpoints") or 0
        news = await self._read(
            "fetchval",
            "SELECT 1 FROM audit_events WHERE seq > $1 AND type != $2 LIMIT 1",
            last,
            audit.CHECKPOINT,
        )
        return await self.audit_head() if news else None

    async def add_checkpoint(self, checkpoint: Checkpoint, *, actor: str) -> bool:
        async def op(tx: PgTx) -> bool:
            found = await tx.conn.fetchval(
                "SELECT hash FROM audit_events WHERE seq = $1", checkpoint.seq
            )
            if found is None or found != checkpoint.hash:
                raise ValueError(
                    f"the log has no event {checkpoint.seq} with hash {checkpoint.hash}"
                )
            last = await tx.conn.fetchval("SELECT max(seq) FROM audit_checkpoints")
            if last is not None and last >= checkpoint.seq:
                return False
            # two nodes signing the same head: the primary key lets one in, and the other,
            # run again by the writer, finds it above
            await tx.conn.execute(
                "INSERT INTO audit_checkpoints (seq, hash, at, xml) VALUES ($1,$2,$3,$4)",
                checkpoint.seq,
                checkpoint.hash,
                checkpoint.at,
                checkpoint.xml,
            )
            tx.event(checkpoint.event(actor))
            return True

        return await self._write(op)

    async def checkpoints(self, *, cursor: str | None, limit: int) -> Page[Checkpoint]:
        after = decode_cursor(cursor) or 0
        rows = await self._read(
            "fetch",
            "SELECT seq, hash, at, xml FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit + 1,
        )
        items = [Checkpoint(r[0], r[1], r[2], bytes(r[3])) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].seq) if more else None)

    async def checkpoint(self, seq: int | None) -> Checkpoint | None:
        sql = "SELECT seq, hash, at, xml FROM audit_checkpoints"
        row = (
            await self._read("fetchrow", sql + " ORDER BY seq DESC LIMIT 1")
            if seq is None
            else await self._read("fetchrow", sql + " WHERE seq = $1", seq)
        )
        return Checkpoint(row[0], row[1], row[2], bytes(row[3])) if row else None

    # ----------------------------------------------------------------- verification

    async def verify_audit(
        self, certificates: Sequence[bytes], anchors: Sequence[Anchor] = ()
    ) -> Verdict:
        reader = await asyncio.to_thread(audit.CheckpointReader, certificates)
        verifier = audit.ChainVerifier()
        for anchor in sorted(anchors, key=lambda a: a.seq):
            verifier.anchor(anchor)
        async with (
            self._r.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            loaded = 0  # checkpoints are loaded up to the top of each page before it is fed

            async def load_checkpoints(upto: int | None) -> None:
                nonlocal loaded
                rows = await conn.fetch(
                    "SELECT seq, hash, xml FROM audit_checkpoints WHERE seq > $1"
                    " AND ($2::bigint IS NULL OR seq <= $2) ORDER BY seq",
                    loaded,
                    upto,
                )
                if rows:
                    loaded = int(rows[-1][0])
                    await asyncio.to_thread(_anchors, reader, verifier, rows)

            after = 0
            while not verifier.done:
                rows = await conn.fetch(
                    f"{_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2", after, _VERIFY_PAGE
                )
                if not rows:
                    break
                after = int(rows[-1][0])
                await load_checkpoints(after)
                await asyncio.to_thread(_feed, verifier, rows)
            if not verifier.done:
                await load_checkpoints(None)
            breach = verifier.finish()
            events = await conn.fetchval("SELECT count(*) FROM audit_events")
            head = await conn.fetchrow(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
            )
            count = await conn.fetchval("SELECT count(*) FROM audit_checkpoints")
            latest = await conn.fetchval(
                "SELECT xml FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
            )
        last_checkpoint = None
        if latest is not None:
            try:
                last_checkpoint = reader.read(bytes(latest))
            except audit.CheckpointInvalid:
                last_checkpoint = None
        return Verdict(
            ok=breach is None,
            events=int(events),
            head_seq=int(head[0]) if head else 0,
            head_hash=str(head[1]) if head else audit.GENESIS,
            checkpoints=int(count),
            last_checkpoint=last_checkpoint,
            first_bad_seq=breach.seq if breach else None,
            reason=breach.reason if breach else None,
        )

    # ----------------------------------------------------------------- retention

    async def purge_bodies(
        self, before: datetime, *, actor: str, grace: float = 600.0, batch: int = 500
    ) -> PurgeReport:
        cutoff = timeutil.fmt(before)
        floor_text = await self._read(
            "fetchval", "SELECT value FROM meta WHERE key = 'retention_floor'"
        )
        floor = int(floor_text) if floor_text else 0
        async with self._r.acquire() as conn:
            upto = await _first_from(conn, "messages", _FIRST_RECEIVED, cutoff) - 1
        purged = held = 0
        position = floor
        first_kept: int | None = None
        while position < upto:
            rows = await self._read(
                "fetch",
                "SELECT m.seq, m.id, m.received_at,"
                " EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.open)"
                " FROM messages m WHERE m.seq > $1 AND m.seq <= $2 AND m.body_purged_at IS NULL"
                " ORDER BY m.seq LIMIT $3",
                position,
                upto,
                _PURGE_SCAN,
            )
            ids: list[str] = []
            for seq, message_id, received_at, still_open in rows:
                if received_at >= cutoff or still_open:
                    held += bool(still_open and received_at < cutoff)
                    first_kept = seq if first_kept is None else first_kept
                    continue
                ids.append(message_id)
            position = int(rows[-1][0]) if len(rows) == _PURGE_SCAN else upto
            for start in range(0, len(ids), batch):
                purged += await self._write(_purge_op(ids[start : start + batch], cutoff, actor))
        new_floor = first_kept - 1 if first_kept is not None else max(upto, floor)
        if new_floor != floor:

            async def set_floor(tx: PgTx) -> None:
                await tx.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('retention_floor', $1)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    str(new_floor),
                )

            await self._write(set_floor)
        files = await self._sweep_cache(grace)
        if purged or files:
            _log.info("bodies_purged", messages=purged, files=files, held=held, before=cutoff)
        return PurgeReport(messages=purged, files=files, held=held)

    async def _sweep_cache(self, grace: float) -> int:
        """Delete this node's cached copies of purged large bodies that no kept message has.

        A copy written or used within ``grace`` seconds is left for a later run: an intake
        may be about to store those bytes again.
        """
        moment = timeutil.now()
        rows = await self._read(
            "fetch",
            "SELECT p.sha256 FROM purged_blobs p WHERE NOT EXISTS (SELECT 1 FROM agencies a"
            " CROSS JOIN messages m WHERE m.from_id = a.organ_id AND m.sha256 = p.sha256"
            " AND m.body_parts > 0 AND m.body_purged_at IS NULL)",
        )
        deleted = 0
        for (sha256,) in rows:
            path = self._cache_path(sha256)
            try:
                stat = await asyncio.to_thread(os.stat, path)
            except FileNotFoundError:
                continue
            if stat.st_mtime > moment.timestamp() - grace:
                continue
            await asyncio.to_thread(path.unlink, True)
            deleted += 1
        forget_before = timeutil.fmt(moment - _PURGED_KEPT)

        async def forget(tx: PgTx) -> None:
            await tx.conn.execute("DELETE FROM purged_blobs WHERE since < $1", forget_before)

        await self._write(forget)
        return deleted


def _purge_op(ids: Sequence[str], cutoff: str, actor: str) -> Any:
    """Drop the bodies of ``ids`` still eligible now (checked again inside the write)."""

    async def op(tx: PgTx) -> int:
        done = 0
        rows = await tx.conn.fetch(
            "SELECT m.id, m.document_id, m.from_id, m.sha256, m.size, m.received_at,"
            " m.body_parts FROM messages m WHERE m.id = ANY($1) AND m.body_purged_at IS NULL"
            " AND m.received_at < $2 AND NOT EXISTS (SELECT 1 FROM deliveries d"
            " WHERE d.message_id = m.id AND d.open) ORDER BY m.seq FOR UPDATE OF m",
            list(ids),
            cutoff,
        )
        for message_id, document_id, from_id, sha256, size, received_at, parts in rows:
            await tx.conn.execute(
                "UPDATE messages SET body = NULL, body_parts = 0, body_purged_at = $1"
                " WHERE id = $2",
                tx.at,
                message_id,
            )
            if parts:
                await tx.conn.execute("DELETE FROM message_parts WHERE message_id = $1", message_id)
                await tx.conn.execute(
                    "INSERT INTO purged_blobs (sha256, since) VALUES ($1, $2)"
                    " ON CONFLICT (sha256) DO UPDATE SET since = excluded.since",
                    sha256,
                    tx.at,
                )
            tx.event(
                Event(
                    type="body_purged",
                    actor=actor,
                    message_id=message_id,
                    document_id=document_id,
                    from_id=from_id,
                    detail={
                        "sha256": sha256,
                        "size": size,
                        "received_at": received_at,
                        "before": cutoff,
                        "stored": "file" if parts else "inline",
                    },
                )
            )
            done += 1
        return done

    return op
