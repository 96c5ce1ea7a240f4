"""The audit trail: queries, rejections, checkpoints, verification, retention.

Appending stays one ``INSERT`` per event (the backend's ``Tx.event``): the event table has no
index beyond ``seq`` and ``message_id``. Queries therefore go by ``seq``. Time filters become a
``seq`` range by bisection: event times never go back along the chain (they are taken inside
the write lock, on PostgreSQL the later of the batch's time and the head's). The document
filter goes through the messages of that DocumentId (the index on sender and DocumentId). The
other filters scan a bounded window of ``seq`` per page (``SCAN_WINDOW``). Scans, exports and
verification read one snapshot off the serving connection (``Backend.long_reads``), and the
hashing of verification runs in a worker thread, so requests keep being served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any

from axis import audit, log, timeutil
from axis import cursor as cursors
from axis.audit import Anchor, Checkpoint, Event, StoredEvent, Verdict
from axis.model import AuditFilter, EventType, Page, PurgeReport
from axis.store.backend import Reader, Row, Tx
from axis.store.ops.base import OpsBase
from axis.store.protocol import SCAN_WINDOW

_log = log.get("axis.audit")
VERIFY_PAGE = 5000
PURGE_SCAN = 5000


async def first_from(reader: Reader, table: str, when: str) -> int:
    """The smallest position ``x`` such that every row with ``seq >= x`` has its time
    ``>= when``: bisection over ``seq`` (gaps allowed), valid because times grow with ``seq``.

    ``table``: ``audit`` (events by ``at``) or ``messages`` (by ``received_at``).
    """
    first, last = await reader.one(f"{table}_bounds") or (None, None)
    if first is None or last is None:
        return 1
    lo, hi = int(first), int(last) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if str(await reader.value(f"{table}_time_from", mid)) >= when:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _conditions(where: AuditFilter) -> tuple[list[str], list[Any]]:
    """The named conditions of the auditors' filters, with their arguments in order."""
    names: list[str] = []
    args: list[Any] = []
    if where.message_id is not None:
        names.append("audit_message")
        args.append(where.message_id)
    if where.document_id is not None:
        names.append("audit_document")
        args += [where.document_id, where.document_id]
    if where.organ_id is not None:
        names.append("audit_organ")
        args += [where.organ_id, where.organ_id]
    if where.type is not None:
        names.append("audit_type")
        args.append(where.type)
    if where.since is not None:
        names.append("audit_since")
        args.append(timeutil.fmt(where.since))
    if where.until is not None:
        names.append("audit_until")
        args.append(timeutil.fmt(where.until))
    return names, args


async def page_after(
    reader: Reader, where: AuditFilter, after: int, limit: int, window: int
) -> tuple[list[StoredEvent], int | None]:
    """One page after ``after``: the events and the position to go on from (None: the end)."""
    last = await reader.value("audit_last_seq") or 0
    lo, hi = after, int(last)
    if where.since is not None:
        lo = max(lo, await first_from(reader, "audit", timeutil.fmt(where.since)) - 1)
    if where.until is not None:
        hi = min(hi, await first_from(reader, "audit", timeutil.fmt(where.until)) - 1)
    if lo >= hi:
        return [], None
    indexed = where.message_id is not None or where.document_id is not None
    end = hi if indexed else min(hi, lo + window)
    names, args = _conditions(where)
    rows = await reader.all(("audit_page", *names), lo, end, *args, limit + 1)
    items = [StoredEvent(*row) for row in rows[:limit]]
    if len(rows) > limit:
        return items, items[-1].seq
    return items, end if end < hi else None


def _anchor_checkpoints(
    reader: audit.CheckpointReader, verifier: audit.ChainVerifier, rows: Sequence[Row]
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


def _feed(verifier: audit.ChainVerifier, rows: Sequence[Row]) -> None:
    for row in rows:
        verifier.feed(StoredEvent(*row))
        if verifier.done:
            return


class AuditOps(OpsBase):
    """Audit trail queries, verification, checkpoints, retention."""

    async def audit_events(
        self, where: AuditFilter, *, cursor: str | None, limit: int
    ) -> Page[StoredEvent]:
        after = cursors.after_number(cursor) or 0
        async with self._b.long_reads() as reader:
            items, next_after = await page_after(reader, where, after, limit, SCAN_WINDOW)
        return Page(items, _cursor(next_after))

    async def audit_stream(
        self, where: AuditFilter, *, batch: int = 1000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        async with self._b.long_reads() as reader:
            after: int | None = 0
            while after is not None:
                items, after = await page_after(reader, where, after, batch, SCAN_WINDOW)
                if items:
                    yield items

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._b.read.one("audit_head")
        return (int(row[0]), str(row[1])) if row else None

    async def body_purged_at(self, message_id: str) -> str | None:
        value = await self._b.read.value("message_purged_at", message_id)
        return str(value) if value else None

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
        await self._append(
            Event(type=EventType.MESSAGE_REJECTED, actor=actor, from_id=organ_id, detail=detail)
        )

    async def record_key_change(self, *, actor: str, previous_sha256: str, sha256: str) -> None:
        await self._append(audit.key_change_event(actor, previous_sha256, sha256))

    async def _append(self, event: Event) -> None:
        async def op(tx: Tx) -> None:
            tx.event(event)

        await self._b.write(op)

    # ----------------------------------------------------------------- checkpoints

    async def checkpoint_due(self) -> tuple[int, str] | None:
        last = await self._b.read.value("checkpoint_last_seq") or 0
        if await self._b.read.value("audit_news_since", last, EventType.CHECKPOINT) is None:
            return None
        return await self.audit_head()

    async def add_checkpoint(self, checkpoint: Checkpoint, *, actor: str) -> bool:
        async def op(tx: Tx) -> bool:
            found = await tx.value("audit_hash_at", checkpoint.seq)
            if found is None or found != checkpoint.hash:
                raise ValueError(
                    f"the log has no event {checkpoint.seq} with hash {checkpoint.hash}"
                )
            last = await tx.value("checkpoint_last_seq")
            if last is not None and last >= checkpoint.seq:
                return False
            # two nodes signing the same head: the primary key lets one in, and the other,
            # run again by the writer, finds it above
            await tx.run(
                "checkpoint_insert", checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.xml
            )
            tx.event(checkpoint.event(actor))
            return True

        return await self._b.write(op)

    async def checkpoints(self, *, cursor: str | None, limit: int) -> Page[Checkpoint]:
        after = cursors.after_number(cursor) or 0
        rows = await self._b.read.all("checkpoints_page", after, limit + 1)
        items = [Checkpoint(r[0], r[1], r[2], bytes(r[3])) for r in rows[:limit]]
        return Page(items, _cursor(items[-1].seq) if len(rows) > limit else None)

    async def checkpoint(self, seq: int | None) -> Checkpoint | None:
        if seq is None:
            row = await self._b.read.one("checkpoint_latest")
        else:
            row = await self._b.read.one("checkpoint_at", seq)
        return Checkpoint(row[0], row[1], row[2], bytes(row[3])) if row else None

    # ----------------------------------------------------------------- verification

    async def verify_audit(
        self, certificates: Sequence[bytes], anchors: Sequence[Anchor] = ()
    ) -> Verdict:
        reader = await asyncio.to_thread(audit.CheckpointReader, certificates)
        verifier = audit.ChainVerifier()
        for anchor in sorted(anchors, key=lambda a: a.seq):
            verifier.anchor(anchor)
        async with self._b.long_reads() as snapshot:
            loaded = 0  # checkpoints are loaded up to the top of each page before it is fed

            async def load_checkpoints(upto: int | None) -> None:
                nonlocal loaded
                if upto is None:
                    rows = await snapshot.all("checkpoints_after", loaded)
                else:
                    rows = await snapshot.all("checkpoints_between", loaded, upto)
                if rows:
                    loaded = int(rows[-1][0])
                    await asyncio.to_thread(_anchor_checkpoints, reader, verifier, rows)

            after = 0
            while not verifier.done:
                rows = await snapshot.all("audit_after", after, VERIFY_PAGE)
                if not rows:
                    break
                after = int(rows[-1][0])
                await load_checkpoints(after)
                await asyncio.to_thread(_feed, verifier, rows)
            if not verifier.done:
                await load_checkpoints(None)
            breach = verifier.finish()
            events = await snapshot.value("audit_count")
            head = await snapshot.one("audit_head")
            count = await snapshot.value("checkpoint_count")
            latest = await snapshot.one("checkpoint_latest")
        last_checkpoint = None
        if latest is not None:
            try:
                last_checkpoint = reader.read(bytes(latest[3]))
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
        floor_text = await self._b.read.value("meta_get", "retention_floor")
        floor = int(floor_text) if floor_text else 0
        purged = held = 0
        position = floor
        first_kept: int | None = None
        async with self._b.long_reads() as reader:
            upto = await first_from(reader, "messages", cutoff) - 1
            while position < upto:
                rows = await reader.all("purge_candidates", position, upto, PURGE_SCAN)
                ids: list[str] = []
                for seq, message_id, received_at, still_open in rows:
                    if received_at >= cutoff or still_open:
                        held += bool(still_open and received_at < cutoff)
                        first_kept = seq if first_kept is None else first_kept
                        continue
                    ids.append(message_id)
                position = int(rows[-1][0]) if len(rows) == PURGE_SCAN else upto
                for start in range(0, len(ids), batch):
                    chunk = ids[start : start + batch]
                    purged += await self._b.write(self._purge_op(chunk, cutoff, actor))
        new_floor = first_kept - 1 if first_kept is not None else max(upto, floor)
        if new_floor != floor:

            async def set_floor(tx: Tx) -> None:
                await tx.run("meta_put", "retention_floor", str(new_floor))

            await self._b.write(set_floor)
        files = await self._b.sweep_bodies(grace)
        if purged or files:
            _log.info("bodies_purged", messages=purged, files=files, held=held, before=cutoff)
        return PurgeReport(messages=purged, files=files, held=held)

    def _purge_op(self, ids: Sequence[str], cutoff: str, actor: str) -> Any:
        """Drop the bodies of ``ids`` still eligible now (checked again inside the write)."""

        async def op(tx: Tx) -> int:
            rows = await tx.all("purge_eligible_locked", list(ids), cutoff)
            for message_id, document_id, from_id, sha256, size, received_at, ref in rows:
                await tx.run("message_purge", tx.at, message_id)
                if ref:
                    await self._b.drop_body(tx, message_id, sha256, ref)
                tx.event(
                    Event(
                        type=EventType.BODY_PURGED,
                        actor=actor,
                        message_id=message_id,
                        document_id=document_id,
                        from_id=from_id,
                        detail={
                            "sha256": sha256,
                            "size": size,
                            "received_at": received_at,
                            "before": cutoff,
                            "stored": "file" if ref else "inline",
                        },
                    )
                )
            return len(rows)

        return op


def _cursor(position: int | None) -> str | None:
    return cursors.encode(position) if position is not None else None
