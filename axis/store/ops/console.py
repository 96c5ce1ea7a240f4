"""The console's operations: sessions, the overview's counts, searches newest first.

Sessions live in the store (a hash of the session id, as for tokens), so a browser whose
requests reach any process or node is known to all of them; a session's role is its token's,
so revoking the token ends it. Signing in and out are audit events naming the token.

Every page must stay fast on a big store (a million messages, ten million audit events), so
each read goes by an index (``migrations/007_console.sql``) and is bounded: counts over open
deliveries only, the chart over the index on kind and time, failing endpoints by a skip scan
over the retrying deliveries. A search drives from the most selective index its filters allow
(message id, DocumentId, sender, recipient, delivery state, time); filters that index does
not cover are checked on at most ``SEARCH_WINDOW`` sequence numbers per page, and a page cut
short by the window says how far back it looked, with a cursor to go on (as the audit
queries do: ``axis/store/ops/audit.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from axis import audit, timeutil
from axis import cursor as cursors
from axis.audit import Checkpoint, Event, StoredEvent
from axis.model import (
    CLOSED_STATES,
    DELIVERY_STATES,
    AuditFilter,
    ConsoleSession,
    DeliveryCounts,
    DeliveryState,
    DeliveryView,
    EventType,
    FailingEndpoint,
    Fetched,
    MessageFacts,
    MessageQuery,
    MessageRow,
    OverdueRecipient,
    Page,
    Principal,
    ScanPage,
    TailCheck,
)
from axis.store.backend import Reader, Row, Tx
from axis.store.ops.audit import _conditions, first_from
from axis.store.ops.base import OpsBase
from axis.store.ops.push import delivery_view

SEARCH_WINDOW = 20_000
"""Most sequence numbers one search page checks against filters its index does not cover."""
AUDIT_WINDOW = 50_000
"""Most audit events one page checks against a type or agency filter (no index on them)."""
OPEN_STATES = (
    DeliveryState.QUEUED,
    DeliveryState.FETCHED,
    DeliveryState.RETRYING,
    DeliveryState.DEAD,
)
OVERDUE = "overdue"
_EXACT_LIMIT = 1000  # messages of one DocumentId shown at most (a document and its statuses)


def _is_open(state: str) -> bool:
    """Whether deliveries in ``state`` are open (listed in the inbox): all but acknowledged."""
    return state not in CLOSED_STATES


def _session(row: Row) -> ConsoleSession:
    session_hash, token_id, role, organ_id, created_at, last_seen_at = row
    return ConsoleSession(
        session_hash, Principal(token_id, role, organ_id), created_at, last_seen_at
    )


def _session_event(type_: str, session: ConsoleSession, **detail: Any) -> Event:
    who = session.principal
    return Event(
        type=type_,
        actor=who.actor,
        detail={
            "token_id": who.token_id,
            "role": who.role,
            "session": session.session_hash[:16],  # ties a sign-in to its sign-out
            **detail,
        },
    )


def _residual(q: MessageQuery, *, deliveries: bool, covered: str) -> tuple[list[str], list[Any]]:
    """The named conditions for the filters the driving index does not cover.

    ``deliveries``: the rows are deliveries (``d``) joined to their messages (``m``), so a
    state or an overdue check concerns that delivery; otherwise any delivery of the message.
    """
    names: list[str] = []
    args: list[Any] = []
    if q.kind is not None:
        names.append("console_kind")
        args.append(q.kind)
    if q.from_id is not None and covered != "from":
        names.append("console_sent_by")
        args.append(q.from_id)
    if q.to_id is not None and covered != "to":
        names.append("deliveries_to" if deliveries else "console_sent_to")
        args.append(q.to_id)
    if q.state == OVERDUE:
        names.append("console_this_overdue" if deliveries else "console_any_overdue")
    elif q.state is not None and covered != "state":
        names.append("console_this_in_state" if deliveries else "console_any_in_state")
        args.append(q.state)
    return names, args


class ConsoleOps(OpsBase):
    """Sessions, the overview, searches and pages of the console."""

    _session_touched: dict[str, datetime]

    # ----------------------------------------------------------------- sessions

    async def create_session(
        self, session_hash: str, principal: Principal, *, idle: float, lifetime: float
    ) -> ConsoleSession:
        async def op(tx: Tx) -> ConsoleSession:
            now = datetime.fromisoformat(tx.at)
            idle_cutoff = timeutil.fmt(now - timedelta(seconds=idle))
            life_cutoff = timeutil.fmt(now - timedelta(seconds=lifetime))
            await tx.run("console_sessions_expire", idle_cutoff, life_cutoff)
            await tx.run("console_session_insert", session_hash, principal.token_id, tx.at, tx.at)
            session = ConsoleSession(session_hash, principal, tx.at, tx.at)
            tx.event(_session_event(EventType.CONSOLE_SIGNED_IN, session))
            return session

        return await self._b.write(op)

    async def console_session(self, session_hash: str) -> ConsoleSession | None:
        row = await self._b.read.one("console_session_get", session_hash)
        return _session(row) if row else None

    async def touch_session(self, session_hash: str, at: datetime, *, every: float) -> None:
        seen = self.__dict__.setdefault("_session_touched", {})  # per process, made on first use
        last = seen.get(session_hash)
        if last is not None and (at - last).total_seconds() < every:
            return
        seen[session_hash] = at
        stamp = timeutil.fmt(at)

        async def op(tx: Tx) -> None:
            await tx.run("console_session_touch", stamp, session_hash, stamp)

        await self._b.write(op)

    async def end_session(self, session_hash: str, *, reason: str) -> ConsoleSession | None:
        self.__dict__.get("_session_touched", {}).pop(session_hash, None)

        async def op(tx: Tx) -> ConsoleSession | None:
            row = await tx.one("console_session_any", session_hash)
            if row is None:
                return None  # already ended (signed out in another tab, or by another node)
            await tx.run("console_session_delete", session_hash)
            session = _session(row)
            tx.event(_session_event(EventType.CONSOLE_SIGNED_OUT, session, reason=reason))
            return session

        return await self._b.write(op)

    # ----------------------------------------------------------------- the overview

    async def documents_per_hour(self, since: datetime) -> list[tuple[str, int]]:
        rows = await self._b.read.all("console_documents_since", timeutil.fmt(since))
        return [(str(hour), int(n)) for hour, n in rows]

    async def delivery_counts(self) -> DeliveryCounts:
        read = self._b.read
        counts = {str(state): int(n) for state, n in await read.all("console_open_counts")}
        return DeliveryCounts(
            open={s: counts.get(s, 0) for s in OPEN_STATES},
            failed=int(await read.value("console_failed_count") or 0),
            total=int(await read.value("console_deliveries_total") or 0),
        )

    async def overdue_recipients(
        self, *, since: datetime, before: datetime, limit: int
    ) -> list[OverdueRecipient]:
        rows = await self._b.read.all(
            "console_overdue", timeutil.fmt(since), timeutil.fmt(before), limit
        )
        return [OverdueRecipient(*row) for row in rows]

    async def failing_endpoints(self, *, limit: int, cap: int = 10_000) -> list[FailingEndpoint]:
        rows = await self._b.read.all("console_failing_endpoints", cap, limit)
        return [FailingEndpoint(str(o), since, int(n), error) for o, since, n, error in rows]

    async def failing_endpoint(self, organ_id: str) -> FailingEndpoint | None:
        since, waiting = await self._b.read.one("console_failing_endpoint", organ_id) or (None, 0)
        if not waiting:
            return None
        error = await self._b.read.value("console_failing_error", organ_id)
        return FailingEndpoint(organ_id, since, int(waiting), error)

    async def verify_tail(self, certificates: Sequence[bytes], *, limit: int) -> TailCheck:
        async with self._b.long_reads() as r:
            head = await r.one("audit_head")
            head_seq = int(head[0]) if head else 0
            latest = await r.one("checkpoint_latest")
            start, prev, at = 0, audit.GENESIS, None
            if latest is not None:
                seq, head_hash, at, xml = int(latest[0]), str(latest[1]), str(latest[2]), latest[3]
                problem = await asyncio.to_thread(_checkpoint_problem, certificates, seq, xml)
                found = await r.value("audit_hash_at", seq)
                if problem is None and found != head_hash:
                    problem = (
                        f"event {seq}, which the last checkpoint signs, is gone"
                        if found is None
                        else f"the last checkpoint signed hash {head_hash[:16]}… for event"
                        f" {seq}, the log has {str(found)[:16]}…: history was rewritten"
                    )
                if problem is not None:
                    return TailCheck(False, seq, at, 0, head_seq, seq, problem)
                start, prev = seq, head_hash
            rows = await r.all("audit_after", start, limit)
        events = [StoredEvent(*row) for row in rows]
        breach = await asyncio.to_thread(audit.verify_run, start, prev, events)
        if breach is not None:
            return TailCheck(False, start, at, len(events), head_seq, breach.seq, breach.reason)
        return TailCheck(True, start, at, len(events), head_seq)

    # ----------------------------------------------------------------- messages

    async def search_messages(
        self, q: MessageQuery, *, cursor: str | None, limit: int, window: int = SEARCH_WINDOW
    ) -> ScanPage[MessageRow]:
        before = cursors.after_number(cursor)
        if q.message_id is not None or q.document_id is not None:
            return await self._exact(q, before, limit)
        read = self._b.read
        deliveries = True
        covered = ""
        args: list[Any] = []
        if q.from_id is not None:
            base, args, deliveries, covered = "console_from", [q.from_id], False, "from"
        elif q.to_id is not None:
            base, args, covered = "console_to", [q.to_id], "to"
        elif q.state in DELIVERY_STATES:
            base, args, covered = "console_state", [_is_open(q.state), q.state], "state"
        else:
            base, deliveries = "console_latest", False
        table = "deliveries" if deliveries else "messages"
        names, extra = _residual(q, deliveries=deliveries, covered=covered)
        lo, hi = await _bounds(read, table, q, before)
        if lo >= hi:
            return ScanPage([])
        start = max(lo, hi - window) if names else lo
        rows = await read.all((base, *names), *args, start, hi, *extra, limit + 1)
        items = await self._rows(rows[:limit])
        if len(rows) > limit:
            return ScanPage(items, cursors.encode(int(rows[limit - 1][0])))
        if start > lo:
            searched_to = await read.value(f"{table}_time_from", start + 1)
            return ScanPage(items, cursors.encode(start + 1), str(searched_to))
        return ScanPage(items)

    async def _exact(self, q: MessageQuery, before: int | None, limit: int) -> ScanPage[MessageRow]:
        """By message id or DocumentId: a unique index, or one probe per sender."""
        args: list[Any]
        if q.message_id is not None:
            base, args, covered = "console_by_id", [q.message_id], ""
        elif q.from_id is not None:
            base, args, covered = "console_document_from", [q.from_id, q.document_id], "from"
        else:
            base, args, covered = "console_document_any", [q.document_id], ""
        names, extra = _residual(q, deliveries=False, covered=covered)
        if q.message_id is not None and q.document_id is not None:
            names.append("console_document_is")  # both given: the id must carry it
            extra.append(q.document_id)
        if before is not None:
            names.append("console_seq_below")
            extra.append(before)
        if q.since is not None:
            names.append("console_since")
            extra.append(timeutil.fmt(q.since))
        if q.until is not None:
            names.append("console_until")
            extra.append(timeutil.fmt(q.until))
        if q.state == OVERDUE and q.overdue_before is not None:
            names.append("console_until")
            extra.append(timeutil.fmt(q.overdue_before))
        rows = await self._b.read.all((base, *names), *args, *extra, limit + 1)
        items = await self._rows(rows[:limit])
        more = len(rows) > limit
        return ScanPage(items, cursors.encode(int(rows[limit - 1][0])) if more else None)

    async def _rows(self, rows: Sequence[Row]) -> list[MessageRow]:
        """Search rows (one per message, the first kept) with where each delivery stands."""
        seen: dict[str, Row] = {}
        for row in rows:
            seen.setdefault(str(row[1]), row)
        if not seen:
            return []
        states: dict[str, list[tuple[str, str]]] = {mid: [] for mid in seen}
        for mid, delivered_to, state in await self._b.read.all("console_deliveries_of", list(seen)):
            states[str(mid)].append((str(delivered_to), str(state)))
        return [
            MessageRow(
                seq=int(r[0]),
                id=str(r[1]),
                kind=r[2],
                from_id=str(r[3]),
                document_id=str(r[4]),
                business_type=r[5],
                status_code=r[6],
                received_at=str(r[7]),
                deliveries=tuple(states[mid]),
            )
            for mid, r in seen.items()
        ]

    async def message_facts(self, message_id: str) -> MessageFacts | None:
        row = await self._b.read.one("console_message_facts", message_id)
        if row is None:
            return None
        signer, purged, replaced = row
        return MessageFacts(signer, purged, tuple(orjson.loads(replaced)) if replaced else ())

    async def download_body(self, message_id: str, *, actor: str) -> Fetched | None:
        row = await self._b.read.one("console_message_body", message_id)
        if row is None:
            return None
        mid, from_id, document_id, kind, sha256, size, body, ref, purged = row
        if not purged:

            async def op(tx: Tx) -> None:
                tx.event(
                    Event(
                        type=EventType.BODY_DOWNLOADED,
                        actor=actor,
                        message_id=mid,
                        document_id=document_id,
                        from_id=from_id,
                        detail={"sha256": sha256, "size": size},
                    )
                )

            await self._b.write(op)  # recorded before a byte goes out
        body_file = None
        if body is None and not purged:
            body_file = await self._b.body_path(mid, sha256, ref)
        return Fetched(
            message_id=mid,
            kind=kind,
            from_id=from_id,
            sha256=sha256,
            size=int(size),
            body=bytes(body) if body is not None else None,
            body_file=body_file,
        )

    # ----------------------------------------------------------------- deliveries

    async def recent_deliveries(
        self, state: str, *, organ_id: str | None, cursor: str | None, limit: int
    ) -> Page[DeliveryView]:
        before = cursors.after_number(cursor) or cursors.MAX_POSITION
        names = ["deliveries_to"] if organ_id is not None else []
        extra = [organ_id] if organ_id is not None else []
        key = ("console_state_deliveries", *names)
        rows = await self._b.read.all(key, _is_open(state), state, before, *extra, limit + 1)
        items = [delivery_view(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, cursors.encode(int(rows[limit - 1][0])) if more else None)

    # ----------------------------------------------------------------- audit

    async def audit_back(
        self, where: AuditFilter, *, cursor: str | None, limit: int, window: int = AUDIT_WINDOW
    ) -> ScanPage[StoredEvent]:
        before = cursors.after_number(cursor)
        read = self._b.read  # the bisection: indexed point reads, a few dozen
        lo, hi = 0, int(await read.value("audit_last_seq") or 0)
        if where.since is not None:
            lo = await first_from(read, "audit", timeutil.fmt(where.since)) - 1
        if where.until is not None:
            hi = min(hi, await first_from(read, "audit", timeutil.fmt(where.until)) - 1)
        if before is not None:
            hi = min(hi, before - 1)
        if lo >= hi:
            return ScanPage([])
        indexed = where.message_id is not None or where.document_id is not None
        scans = where.type is not None or where.organ_id is not None
        start = max(lo, hi - window) if scans and not indexed else lo
        names, args = _conditions(where)
        async with self._b.long_reads() as r:  # the page itself may scan a window: off the loop
            rows = await r.all(("console_audit_back", *names), start, hi, *args, limit + 1)
            items = [StoredEvent(*row) for row in rows[:limit]]
            if len(rows) > limit:
                return ScanPage(items, cursors.encode(items[-1].seq))
            if start > lo:
                searched_to = await r.value("audit_time_from", start + 1)
                return ScanPage(items, cursors.encode(start + 1), str(searched_to))
        return ScanPage(items)

    async def checkpoints_back(self, *, cursor: str | None, limit: int) -> Page[Checkpoint]:
        before = cursors.after_number(cursor) or cursors.MAX_POSITION
        rows = await self._b.read.all("console_checkpoints_back", before, limit + 1)
        items = [Checkpoint(int(r[0]), r[1], r[2], bytes(r[3])) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, cursors.encode(items[-1].seq) if more else None)


async def _bounds(read: Reader, table: str, q: MessageQuery, before: int | None) -> tuple[int, int]:
    """The range ``(lo, hi]`` of ``table``'s sequence numbers the query's times allow."""
    _, last = await read.one(f"{table}_bounds") or (None, None)
    if last is None:
        return 0, 0
    lo, hi = 0, int(last)
    if q.since is not None:
        lo = await first_from(read, table, timeutil.fmt(q.since)) - 1
    if q.until is not None:
        hi = min(hi, await first_from(read, table, timeutil.fmt(q.until)) - 1)
    if q.state == OVERDUE and q.overdue_before is not None:
        hi = min(hi, await first_from(read, table, timeutil.fmt(q.overdue_before)) - 1)
    if before is not None:
        hi = min(hi, before - 1)
    return lo, hi


def _checkpoint_problem(certificates: Sequence[bytes], seq: int, xml: Any) -> str | None:
    """Why the stored checkpoint of event ``seq`` cannot be trusted, or None."""
    try:
        signed = audit.CheckpointReader(certificates).read(bytes(xml))
    except (audit.CheckpointInvalid, ValueError) as exc:
        return f"the checkpoint of event {seq} does not verify: {exc}"
    if signed.seq != seq:
        return f"the checkpoint row of event {seq} signs event {signed.seq}"
    return None
