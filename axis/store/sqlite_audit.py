"""SQLite operations.

Audit trail queries, verification, checkpoints, retention (issue 6).

Appending stays one ``INSERT`` per event (``Tx.event``): the event table has no index beyond
``seq`` and ``message_id``. Queries therefore go by ``seq``. Time filters become a ``seq``
range by bisection: event times grow with ``seq`` (they are taken inside the write lock),
barring a step back of the wall clock. The document filter goes through the messages of that
DocumentId (the index on sender and DocumentId, probed once per agency). The other filters
scan a bounded window of ``seq`` per page. Scans, exports and verification run in a worker
thread on a connection of their own, so the event loop's reads never wait behind them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from axis import audit, log, timeutil
from axis.audit import Anchor, Checkpoint, Event, StoredEvent, Verdict
from axis.model import AuditFilter, Page, PurgeReport
from axis.store.protocol import SCAN_WINDOW
from axis.store.sql_common import audit_clauses
from axis.store.sqlite_base import SqliteBase, Tx, decode_cursor, encode_cursor

T = TypeVar("T")
_log = log.get("axis.audit")

_SELECT = (
    "SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"
    " FROM audit_events"
)
# a kept (unpurged) message stores its body in the blob file named by this digest
_BLOB_IN_USE = (
    "SELECT 1 FROM agencies a CROSS JOIN messages m"
    " WHERE m.from_id = a.organ_id AND m.sha256 = ? AND m.body_file IS NOT NULL LIMIT 1"
)
_VERIFY_PAGE = 5000
_PURGE_SCAN = 5000


def _row(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(*row)


def _open_reader(path: Path) -> sqlite3.Connection:
    """A connection for long reads in a worker thread (never writes)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _first_from(conn: sqlite3.Connection, table: str, column: str, when: str) -> int:
    """The smallest position ``x`` such that every row with ``seq >= x`` has ``column >= when``.

    Bisection over ``seq`` (gaps allowed), valid because times grow with ``seq``; ``table`` and
    ``column`` are constants of this module, never input.
    """
    first, last = conn.execute(f"SELECT min(seq), max(seq) FROM {table}").fetchone()  # noqa: S608
    if first is None:
        return 1
    lo, hi = first, last + 1
    probe = f"SELECT {column} FROM {table} WHERE seq >= ? ORDER BY seq LIMIT 1"  # noqa: S608
    while lo < hi:
        mid = (lo + hi) // 2
        if str(conn.execute(probe, (mid,)).fetchone()[0]) >= when:
            hi = mid
        else:
            lo = mid + 1
    return int(lo)


def _page(
    conn: sqlite3.Connection, where: AuditFilter, after: int, limit: int, window: int
) -> tuple[list[StoredEvent], int | None]:
    """One page after ``after``: the events and the position to go on from (None: the end)."""
    last = conn.execute("SELECT max(seq) FROM audit_events").fetchone()[0] or 0
    lo, hi = after, last
    if where.since is not None:
        lo = max(lo, _first_from(conn, "audit_events", "at", timeutil.fmt(where.since)) - 1)
    if where.until is not None:
        hi = min(hi, _first_from(conn, "audit_events", "at", timeutil.fmt(where.until)) - 1)
    if lo >= hi:
        return [], None
    indexed = where.message_id is not None or where.document_id is not None
    end = hi if indexed else min(hi, lo + window)
    clauses, args = audit_clauses(where)
    sql = " AND ".join(["seq > ? AND seq <= ?", *clauses])
    rows = conn.execute(
        f"{_SELECT} WHERE {sql} ORDER BY seq LIMIT ?",
        (lo, end, *args, limit + 1),
    ).fetchall()
    items = [_row(r) for r in rows[:limit]]
    if len(rows) > limit:
        return items, items[-1].seq
    return items, end if end < hi else None


def _verify(
    conn: sqlite3.Connection, certificates: Sequence[bytes], anchors: Sequence[Anchor]
) -> Verdict:
    """The whole verification, on one snapshot of the log (a read transaction)."""
    reader = audit.CheckpointReader(certificates)
    verifier = audit.ChainVerifier()
    for anchor in sorted(anchors, key=lambda a: a.seq):
        verifier.anchor(anchor)
    conn.execute("BEGIN")
    try:
        loaded = 0  # checkpoints are loaded up to the top of each page before it is fed

        def load_checkpoints(upto: int | None) -> None:
            nonlocal loaded
            sql = "SELECT seq, hash, xml FROM audit_checkpoints WHERE seq > ?"
            args: tuple[int, ...] = (loaded,)
            if upto is not None:
                sql += " AND seq <= ?"
                args = (loaded, upto)
            for seq, head_hash, xml in conn.execute(sql + " ORDER BY seq", args):
                loaded = seq
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

        after = 0
        while not verifier.done:
            rows = conn.execute(
                f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, _VERIFY_PAGE),
            ).fetchall()
            if not rows:
                break
            after = rows[-1][0]
            load_checkpoints(after)
            for row in rows:
                verifier.feed(_row(row))
                if verifier.done:
                    break
        if not verifier.done:
            load_checkpoints(None)
        breach = verifier.finish()
        events = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
        head = conn.execute(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        count = conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0]
        latest = conn.execute(
            "SELECT xml FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.execute("COMMIT")
    last_checkpoint = None
    if latest is not None:
        try:
            last_checkpoint = reader.read(bytes(latest[0]))
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


def _purge_candidates(
    conn: sqlite3.Connection, after: int, upto: int, cutoff: str
) -> tuple[list[str], int, int | None, int]:
    """Messages after ``after`` up to ``upto`` whose bodies may go now.

    Returns ``(ids, held, first kept, scanned up to)``: ``held`` counts old bodies kept for
    an open delivery; ``first kept`` is the first unpurged message a later run must look at
    again (the retention floor stays below it).
    """
    ids: list[str] = []
    held = 0
    first_kept: int | None = None
    rows = conn.execute(
        "SELECT m.seq, m.id, m.received_at,"
        " EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.open = 1)"
        " FROM messages m WHERE m.seq > ? AND m.seq <= ? AND m.body_purged_at IS NULL"
        " ORDER BY m.seq LIMIT ?",
        (after, upto, _PURGE_SCAN),
    ).fetchall()
    for seq, message_id, received_at, still_open in rows:
        if received_at >= cutoff or still_open:
            held += bool(still_open and received_at < cutoff)
            first_kept = seq if first_kept is None else first_kept
            continue
        ids.append(message_id)
    scanned = int(rows[-1][0]) if len(rows) == _PURGE_SCAN else upto
    return ids, held, first_kept, scanned


def _blob_path(blob_dir: Path, sha256: str) -> Path:
    return blob_dir / sha256[:2] / sha256


def _sweep(
    conn: sqlite3.Connection, blob_dir: Path, pending: list[str], grace: float, now: float
) -> tuple[list[str], int]:
    """Delete the blob files of purged bodies that no kept message uses: ``(settled, deleted)``.

    A file is renamed aside before the last look, so an intake that finds it (and touches
    it) before the rename is seen by its time, and one that looks after finds no file and
    writes it again; it goes back in place when in doubt and is looked at on a later run.
    """
    settled: list[str] = []
    deleted = 0
    for sha256 in pending:
        path = _blob_path(blob_dir, sha256)
        if conn.execute(_BLOB_IN_USE, (sha256,)).fetchone() or not path.exists():
            settled.append(sha256)
            continue
        aside = path.with_name(f"{path.name}.purging")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            settled.append(sha256)
            continue
        recent = os.stat(aside).st_mtime > now - grace
        if recent or conn.execute(_BLOB_IN_USE, (sha256,)).fetchone():
            os.replace(aside, path)
            if not recent:
                settled.append(sha256)
            continue
        aside.unlink()
        deleted += 1
        settled.append(sha256)
    return settled, deleted


class SqliteAuditOps(SqliteBase):
    """Audit trail queries, verification, checkpoints, retention (issue 6)."""

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = _open_reader(self._path)
            try:
                return fn(conn)
            finally:
                conn.close()

        return await asyncio.to_thread(run)

    # ----------------------------------------------------------------- queries

    async def audit_events(
        self, where: AuditFilter, *, cursor: str | None, limit: int
    ) -> Page[StoredEvent]:
        after = decode_cursor(cursor) or 0
        items, next_after = await self._in_thread(
            lambda conn: _page(conn, where, after, limit, SCAN_WINDOW)
        )
        return Page(items, encode_cursor(next_after) if next_after is not None else None)

    async def audit_stream(
        self, where: AuditFilter, *, batch: int = 1000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        conn = await asyncio.to_thread(_open_reader, self._path)
        try:
            after: int | None = 0
            while after is not None:
                position = after
                items, after = await asyncio.to_thread(
                    _page, conn, where, position, batch, SCAN_WINDOW
                )
                if items:
                    yield items
        finally:
            conn.close()

    async def audit_head(self) -> tuple[int, str] | None:
        row = self._r.execute(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    async def body_purged_at(self, message_id: str) -> str | None:
        row = self._r.execute(
            "SELECT body_purged_at FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        return str(row[0]) if row and row[0] else None

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
        await self._write(lambda tx: tx.event(event))

    async def record_key_change(self, *, actor: str, previous_sha256: str, sha256: str) -> None:
        event = audit.key_change_event(actor, previous_sha256, sha256)
        await self._write(lambda tx: tx.event(event))

    # ----------------------------------------------------------------- checkpoints

    async def checkpoint_due(self) -> tuple[int, str] | None:
        last = self._r.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0] or 0
        news = self._r.execute(
            "SELECT 1 FROM audit_events WHERE seq > ? AND type != ? LIMIT 1",
            (last, audit.CHECKPOINT),
        ).fetchone()
        return await self.audit_head() if news else None

    async def add_checkpoint(self, checkpoint: Checkpoint, *, actor: str) -> bool:
        def op(tx: Tx) -> bool:
            row = tx.conn.execute(
                "SELECT hash FROM audit_events WHERE seq = ?", (checkpoint.seq,)
            ).fetchone()
            if row is None or row[0] != checkpoint.hash:
                raise ValueError(
                    f"the log has no event {checkpoint.seq} with hash {checkpoint.hash}"
                )
            last = tx.conn.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0]
            if last is not None and last >= checkpoint.seq:
                return False
            tx.conn.execute(
                "INSERT INTO audit_checkpoints (seq, hash, at, xml) VALUES (?,?,?,?)",
                (checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.xml),
            )
            tx.event(checkpoint.event(actor))
            return True

        return await self._write(op)

    async def checkpoints(self, *, cursor: str | None, limit: int) -> Page[Checkpoint]:
        after = decode_cursor(cursor) or 0
        rows = self._r.execute(
            "SELECT seq, hash, at, xml FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit + 1),
        ).fetchall()
        items = [Checkpoint(r[0], r[1], r[2], bytes(r[3])) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].seq) if more else None)

    async def checkpoint(self, seq: int | None) -> Checkpoint | None:
        sql = "SELECT seq, hash, at, xml FROM audit_checkpoints"
        row = (
            self._r.execute(sql + " ORDER BY seq DESC LIMIT 1").fetchone()
            if seq is None
            else self._r.execute(sql + " WHERE seq = ?", (seq,)).fetchone()
        )
        return Checkpoint(row[0], row[1], row[2], bytes(row[3])) if row else None

    # ----------------------------------------------------------------- verification

    async def verify_audit(
        self, certificates: Sequence[bytes], anchors: Sequence[Anchor] = ()
    ) -> Verdict:
        return await self._in_thread(lambda conn: _verify(conn, certificates, anchors))

    # ----------------------------------------------------------------- retention

    async def purge_bodies(
        self, before: datetime, *, actor: str, grace: float = 600.0, batch: int = 500
    ) -> PurgeReport:
        cutoff = timeutil.fmt(before)
        row = self._r.execute("SELECT value FROM meta WHERE key = 'retention_floor'").fetchone()
        floor = int(row[0]) if row else 0
        upto = await self._in_thread(
            lambda conn: _first_from(conn, "messages", "received_at", cutoff) - 1
        )
        purged = held = 0
        position = floor
        first_kept: int | None = None
        while position < upto:
            ids, kept, stop, position = await self._in_thread(
                partial(_purge_candidates, after=position, upto=upto, cutoff=cutoff)
            )
            held += kept
            if first_kept is None:
                first_kept = stop
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                purged += await self._write(partial(_purge, ids=chunk, cutoff=cutoff, actor=actor))
        new_floor = first_kept - 1 if first_kept is not None else max(upto, floor)
        if new_floor != floor:
            await self._write(partial(_set_floor, value=new_floor))
        files = await self._sweep_blobs(grace)
        if purged or files:
            _log.info("bodies_purged", messages=purged, files=files, held=held, before=cutoff)
        return PurgeReport(messages=purged, files=files, held=held)

    async def _sweep_blobs(self, grace: float) -> int:
        moment = timeutil.now()
        now = moment.timestamp()
        since = timeutil.fmt(moment - timedelta(seconds=grace))
        pending = [
            r[0]
            for r in self._r.execute(
                "SELECT sha256 FROM purged_blobs WHERE since <= ? ORDER BY since", (since,)
            )
        ]
        if not pending:
            return 0
        blob_dir = self._settings.blob_dir
        settled, deleted = await self._in_thread(
            lambda conn: _sweep(conn, blob_dir, pending, grace, now)
        )
        if settled:

            def forget(tx: Tx) -> None:
                tx.conn.executemany(
                    "DELETE FROM purged_blobs WHERE sha256 = ?", [(s,) for s in settled]
                )

            await self._write(forget)
        return deleted


def _purge(tx: Tx, ids: Sequence[str], cutoff: str, actor: str) -> int:
    """Drop the bodies of ``ids`` still eligible now (checked again inside the write)."""
    done = 0
    for message_id in ids:
        row = tx.conn.execute(
            "SELECT m.document_id, m.from_id, m.sha256, m.size, m.received_at, m.body_file"
            " FROM messages m WHERE m.id = ? AND m.body_purged_at IS NULL AND m.received_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id"
            " AND d.open = 1)",
            (message_id, cutoff),
        ).fetchone()
        if row is None:
            continue
        document_id, from_id, sha256, size, received_at, body_file = row
        tx.conn.execute(
            "UPDATE messages SET body = NULL, body_file = NULL, body_purged_at = ? WHERE id = ?",
            (tx.at, message_id),
        )
        if body_file is not None:
            tx.conn.execute(
                "INSERT INTO purged_blobs (sha256, since) VALUES (?, ?)"
                " ON CONFLICT (sha256) DO UPDATE SET since = excluded.since",
                (sha256, tx.at),
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
                    "stored": "file" if body_file else "inline",
                },
            )
        )
        done += 1
    return done


def _set_floor(tx: Tx, value: int) -> None:
    tx.conn.execute(
        "INSERT INTO meta (key, value) VALUES ('retention_floor', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(value),),
    )
