"""The shared engine: PostgreSQL, for several axis nodes on one database (see ``postgres_base``).

Each operation does what its twin in ``sqlite.py`` does, statement for statement, and answers
the same; what differs is what several nodes writing at once require: rows that a check reads
before it writes are locked (``FOR UPDATE``), duplicates that two nodes race to insert are
settled by the unique indexes (the writer runs the losing operation again), and bodies larger
than ``AXIS_INLINE_MAX`` live in the database too (``message_parts``), since a blob directory
is not shared between machines.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from axis import lifecycle
from axis.audit import Event
from axis.errors import DuplicateConflict, StoreError
from axis.model import (
    AcceptResult,
    Acked,
    AckResult,
    DeliveryGauges,
    DocumentInfo,
    Fetched,
    InboxItem,
    LinkView,
    MessageKind,
    MessageRecord,
    NewMessage,
    Page,
    Principal,
    RecipientView,
    Role,
    StatusEntry,
    TokenInfo,
)
from axis.registry import Agency, Certificate, Registry
from axis.store.accepting import accepted_events, accepted_record
from axis.store.postgres_admin import PostgresAdminOps
from axis.store.postgres_audit import PostgresAuditOps
from axis.store.postgres_base import PART_BYTES, Bulk, PgTx, PostgresBase, qmarks, rowcount
from axis.store.postgres_push import PostgresPushOps
from axis.store.sql_common import outbox_clauses
from axis.store.sqlite_base import (
    AGENCY_SELECT,
    MESSAGE_SELECT,
    OUTBOX_SELECT,
    agency_from_row,
    decode_cursor,
    encode_cursor,
)

# A message with its deliveries, statuses and links: one round trip. Nothing is inserted
# when a unique index refuses the message (ON CONFLICT DO NOTHING waits for a transaction
# that holds the same key, and yields if it commits); the count says which it was.
_INSERT_ALL = (
    "WITH m AS (INSERT INTO messages (id, kind, from_id, document_id, business_type,"
    " status_code, sha256, size, received_at, body, routes, replaced_ids, signer_sha256)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT DO NOTHING RETURNING id),"
    " d AS (INSERT INTO deliveries (id, message_id, delivered_to, kind, state, updated_at)"
    " SELECT x.d, m.id, x.t, $2, 'queued', $14 FROM m,"
    " unnest($15::text[], $16::text[]) WITH ORDINALITY AS x (d, t, n) ORDER BY x.n),"
    " s AS (INSERT INTO statuses (message_id, doc_from, document_id, party, code, at,"
    " received_at) SELECT m.id, x.f, x.doc, x.p, x.c, x.a, $9 FROM m,"
    " unnest($17::text[], $18::text[], $19::text[], $20::text[], $21::text[])"
    " WITH ORDINALITY AS x (f, doc, p, c, a, n) ORDER BY x.n),"
    " l AS (INSERT INTO links (from_message, to_message, relation)"
    " SELECT m.id, x.t, x.r FROM m, unnest($22::text[], $23::text[]) AS x (t, r)"
    " ON CONFLICT DO NOTHING)"
    " SELECT count(*) FROM m"
)
# The same for many messages of one batch (``Bulk``): each row of the child tables names its
# message, and only the messages the unique indexes let in get them. Returns their ids.
_INSERT_MANY = (
    "WITH x AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
    " $5::smallint[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::bytea[],"
    " $11::text[], $12::text[], $13::text[]) WITH ORDINALITY AS x (id, kind, from_id,"
    " document_id, business_type, status_code, sha256, size, received_at, body, routes,"
    " replaced_ids, signer_sha256, n)),"
    " m AS (INSERT INTO messages (id, kind, from_id, document_id, business_type, status_code,"
    " sha256, size, received_at, body, routes, replaced_ids, signer_sha256)"
    " SELECT id, kind, from_id, document_id, business_type, status_code, sha256, size,"
    " received_at, body, routes, replaced_ids, signer_sha256 FROM x ORDER BY n"
    " ON CONFLICT DO NOTHING RETURNING id, kind, received_at),"
    " d AS (INSERT INTO deliveries (id, message_id, delivered_to, kind, state, updated_at)"
    " SELECT y.d, m.id, y.t, m.kind, 'queued', $14 FROM"
    " unnest($15::text[], $16::text[], $17::text[]) WITH ORDINALITY AS y (mid, d, t, n)"
    " JOIN m ON m.id = y.mid ORDER BY y.n),"
    " s AS (INSERT INTO statuses (message_id, doc_from, document_id, party, code, at,"
    " received_at) SELECT m.id, y.f, y.doc, y.p, y.c, y.a, m.received_at FROM"
    " unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[])"
    " WITH ORDINALITY AS y (mid, f, doc, p, c, a, n) JOIN m ON m.id = y.mid ORDER BY y.n),"
    " l AS (INSERT INTO links (from_message, to_message, relation)"
    " SELECT m.id, y.t, y.r FROM unnest($24::text[], $25::text[], $26::text[])"
    " AS y (mid, t, r) JOIN m ON m.id = y.mid ON CONFLICT DO NOTHING)"
    " SELECT id FROM m"
)


async def _accept_many(tx: PgTx, messages: list[NewMessage]) -> None:
    """``_INSERT_MANY`` for the messages of a batch; each op then finds whether it went in."""
    columns: list[list[Any]] = [[] for _ in range(13)]
    children: list[list[Any]] = [[] for _ in range(12)]
    for message in messages:
        for column, value in zip(columns, _message_row(message), strict=True):
            column.append(value)
        for delivered_to, delivery_id in message.delivery_ids.items():
            for column, value in zip(
                children[0:3], (message.id, delivery_id, delivered_to), strict=True
            ):
                column.append(value)
        for s in message.statuses:
            for column, value in zip(
                children[3:9],
                (message.id, s.doc_from, s.document_id, s.party, s.code, s.at),
                strict=True,
            ):
                column.append(value)
        for link in message.links:
            for column, value in zip(
                children[9:12], (message.id, link.to_message, link.relation), strict=True
            ):
                column.append(value)
    stored = {row[0] for row in await tx.conn.fetch(_INSERT_MANY, *columns, tx.at, *children)}
    for message in messages:
        tx.prefetched[("accept", message.id)] = message.id in stored


def _message_row(message: NewMessage) -> tuple[Any, ...]:
    """The ``messages`` columns of ``message``, in ``_INSERT_ALL``'s order."""
    return (
        message.id,
        message.kind,
        message.from_id,
        message.document_id,
        message.business_type,
        message.status_code,
        message.sha256,
        message.size,
        message.received_at,
        message.body,
        orjson.dumps([[r.organ_id, r.delivered_to] for r in message.routes]).decode(),
        orjson.dumps(list(message.replaced_ids)).decode() if message.replaced_ids else None,
        message.signer_sha256,
    )


async def _store_parts(tx: PgTx, message_id: str, path: Path) -> int:
    """Copy a large body into ``message_parts``, one part in memory at a time."""
    try:
        fh = await asyncio.to_thread(path.open, "rb")
    except OSError as exc:  # not the engine's fault: this operation fails, not the batch
        raise StoreError(f"message {message_id}: cannot read its body file: {exc}") from exc
    part = 0
    try:
        while chunk := await asyncio.to_thread(fh.read, PART_BYTES):
            await tx.conn.execute(
                "INSERT INTO message_parts (message_id, part, data) VALUES ($1, $2, $3)",
                message_id,
                part,
                chunk,
            )
            part += 1
    finally:
        await asyncio.to_thread(fh.close)
    return part


async def _refused(tx: PgTx, message: NewMessage) -> str:
    """Why a unique index refused ``message``: sent before (its id), or a DocumentId reused."""
    existing = await tx.conn.fetchval(
        "SELECT id FROM messages WHERE from_id = $1 AND sha256 = $2",
        message.from_id,
        message.sha256,
    )
    if existing:
        return str(existing)
    if message.kind == "edoc" and message.business_type in (0, 3):
        clash = await tx.conn.fetchval(
            "SELECT id FROM messages WHERE from_id = $1 AND document_id = $2"
            " AND kind = 'edoc' AND business_type IN (0, 3)",
            message.from_id,
            message.document_id,
        )
        if clash:
            raise DuplicateConflict(
                f"DocumentId {message.document_id} was already sent by"
                f" {message.from_id} with other bytes (message {clash})",
                original_message_id=clash,
            )
    raise StoreError(f"message {message.id}: refused by the store, and not as a duplicate")


class PostgresStore(PostgresAuditOps, PostgresPushOps, PostgresAdminOps, PostgresBase):
    """The shared engine for several nodes."""

    # ----------------------------------------------------------------- agencies

    async def registry(self) -> Registry:
        certs: dict[str, list[Certificate]] = defaultdict(list)
        for organ_id, pem in await self._read(
            "fetch", "SELECT organ_id, pem FROM certificates ORDER BY organ_id, not_before"
        ):
            certs[organ_id].append(Certificate.from_pem(pem))
        agencies = [
            agency_from_row(tuple(row), tuple(certs.get(row[0], ())))
            for row in await self._read("fetch", AGENCY_SELECT + " ORDER BY organ_id")
        ]
        return Registry.of(agencies, await self.registry_version())

    async def registry_version(self) -> int:
        value = await self._read("fetchval", "SELECT value FROM meta WHERE key='registry_version'")
        return int(value) if value is not None else 0

    async def put_agency(self, agency: Agency, *, actor: str) -> bool:
        """Create or replace one agency, with history and link checks (see ``save_agency``)."""
        return (await self.save_agency(agency, actor=actor)).outcome == "added"

    # ----------------------------------------------------------------- tokens

    async def issue_token(
        self, token_id: str, token_hash: str, role: Role, organ_id: str | None, *, actor: str
    ) -> None:
        async def op(tx: PgTx) -> None:
            await tx.conn.execute(
                "INSERT INTO tokens (token_id, token_hash, role, organ_id, created_at)"
                " VALUES ($1,$2,$3,$4,$5)",
                token_id,
                token_hash,
                role,
                organ_id,
                tx.at,
            )
            tx.event(
                Event(
                    type="token_issued",
                    actor=actor,
                    to_id=organ_id,
                    detail={"token_id": token_id, "role": role},
                )
            )

        await self._write(op)

    async def principal_for(self, token_hash: str) -> Principal | None:
        row = await self._read(
            "fetchrow",
            "SELECT token_id, role, organ_id FROM tokens"
            " WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )
        return Principal(row[0], row[1], row[2]) if row else None

    async def revoke_token(self, token_id: str, *, actor: str) -> bool:
        async def op(tx: PgTx) -> bool:
            owner = await tx.conn.fetchrow(
                "UPDATE tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL"
                " RETURNING organ_id",
                tx.at,
                token_id,
            )
            if owner is None:
                return False
            tx.event(
                Event(
                    type="token_revoked",
                    actor=actor,
                    to_id=owner[0],
                    detail={"token_id": token_id},
                )
            )
            return True

        return await self._write(op)

    async def list_tokens(self, organ_id: str | None = None) -> list[TokenInfo]:
        sql = "SELECT token_id, role, organ_id, created_at, last_used_at, revoked_at FROM tokens"
        rows = (
            await self._read("fetch", sql + " WHERE organ_id = $1 ORDER BY created_at", organ_id)
            if organ_id
            else await self._read("fetch", sql + " ORDER BY created_at")
        )
        return [TokenInfo(*row) for row in rows]

    # ----------------------------------------------------------------- sending

    async def find_by_digest(self, from_id: str, sha256: str) -> MessageRecord | None:
        mid = await self._read(
            "fetchval",
            "SELECT id FROM messages WHERE from_id = $1 AND sha256 = $2",
            from_id,
            sha256,
        )
        return await self.message(mid) if mid else None

    async def document_sent(self, from_id: str, document_id: str) -> str | None:
        mid = await self._read(
            "fetchval",
            "SELECT id FROM messages WHERE from_id = $1 AND document_id = $2 AND kind = 'edoc'"
            " AND business_type IN (0, 3) ORDER BY seq LIMIT 1",
            from_id,
            document_id,
        )
        return str(mid) if mid else None

    async def find_document(self, from_id: str, document_id: str) -> DocumentInfo | None:
        mid = await self.document_sent(from_id, document_id)
        if mid is None:
            return None
        rows = await self._read(
            "fetch",
            "SELECT d.delivered_to FROM deliveries d JOIN messages m ON m.id = d.message_id"
            " WHERE m.from_id = $1 AND m.document_id = $2 AND m.kind = 'edoc' ORDER BY d.seq",
            from_id,
            document_id,
        )
        recipients = [r[0] for r in rows]
        return DocumentInfo(mid, from_id, document_id, tuple(dict.fromkeys(recipients)))

    async def latest_request(self, doc: DocumentInfo, party: str) -> str | None:
        mid = await self._read(
            "fetchval",
            "SELECT m.id FROM messages m JOIN deliveries d ON d.message_id = m.id"
            " WHERE m.from_id = $1 AND m.document_id = $2 AND d.delivered_to = $3"
            " AND ((m.kind = 'status' AND m.status_code = '13')"
            " OR (m.kind = 'edoc' AND m.business_type IN (1, 2)))"
            " ORDER BY m.seq DESC LIMIT 1",
            doc.from_id,
            doc.document_id,
            party,
        )
        return str(mid) if mid else None

    async def accept(self, message: NewMessage) -> AcceptResult:
        deliveries = list(message.delivery_ids.items())

        async def op(tx: PgTx) -> str | None:
            # the whole message in one statement (or in the batch's one, see ``Bulk``); a
            # unique index that refuses it (the same bytes or DocumentId, from this batch, an
            # earlier one or another node's) makes it insert nothing, and the checks below
            # say which
            stored = tx.prefetched.pop(("accept", message.id), None)
            if stored is None:
                stored = await tx.conn.fetchval(
                    _INSERT_ALL,
                    *_message_row(message),
                    tx.at,
                    [d for _, d in deliveries],
                    [t for t, _ in deliveries],
                    [s.doc_from for s in message.statuses],
                    [s.document_id for s in message.statuses],
                    [s.party for s in message.statuses],
                    [s.code for s in message.statuses],
                    [s.at for s in message.statuses],
                    [link.to_message for link in message.links],
                    [link.relation for link in message.links],
                )
            if not stored:
                return await _refused(tx, message)
            if message.body is None and message.body_file is not None:
                parts = await _store_parts(tx, message.id, message.body_file)
                await tx.conn.execute(
                    "UPDATE messages SET body_parts = $1 WHERE id = $2", parts, message.id
                )
            for event in accepted_events(message):
                tx.event(event)
            tx.notify(message.delivery_ids)
            return None

        existing_id = await self._write(op, Bulk(_accept_many, message))
        if existing_id is not None:
            record = await self.message(existing_id)
            assert record is not None
            return AcceptResult(record, created=False)
        self._wake(message.delivery_ids.keys())
        return AcceptResult(accepted_record(message), created=True)

    async def message(self, message_id: str) -> MessageRecord | None:
        row = await self._read("fetchrow", MESSAGE_SELECT + " WHERE id = $1", message_id)
        if row is None:
            return None
        return await self._record(tuple(row))

    async def _record(self, row: Sequence[Any]) -> MessageRecord:
        (mid, kind, from_id, document_id, btype, scode, sha, size, received_at, routes) = row
        # one round trip for everything around the message: deliveries, statuses, links
        found = await self._read(
            "fetch",
            "SELECT 'd', delivered_to, id, state, attempts::text, last_error, updated_at, NULL"
            " FROM deliveries WHERE message_id = $1"
            " UNION ALL SELECT 's', party, code, at, message_id, received_at, NULL, NULL"
            " FROM (SELECT * FROM statuses WHERE $2 AND doc_from = $3 AND document_id = $4"
            " ORDER BY seq) s"
            " UNION ALL SELECT 't', l.to_message, l.relation, m.kind, m.document_id, NULL,"
            " NULL, NULL FROM links l JOIN messages m ON m.id = l.to_message"
            " WHERE l.from_message = $1"
            " UNION ALL SELECT 'b', l.from_message, l.relation, m.kind, m.document_id, NULL,"
            " NULL, m.seq::text FROM links l JOIN messages m ON m.id = l.from_message"
            " WHERE l.to_message = $1",
            mid,
            kind == "edoc",
            from_id,
            document_id,
        )
        deliveries: dict[str, Any] = {}
        statuses: dict[str, list[StatusEntry]] = defaultdict(list)
        refers_to: list[LinkView] = []
        referred_by: list[tuple[int, LinkView]] = []
        for what, a, b, c, d, e, f, g in found:
            if what == "d":
                deliveries[a] = (b, c, int(d), e, f)
            elif what == "s":
                statuses[a].append(StatusEntry(b, c, d, e))
            elif what == "t":
                refers_to.append(LinkView(a, b, c, d))
            else:
                referred_by.append((int(g), LinkView(a, b, c, d)))
        recipients = []
        for organ_id, delivered_to in orjson.loads(routes):
            delivery = deliveries.get(delivered_to)
            if delivery is None:
                continue
            delivery_id, state, attempts, last_error, updated_at = delivery
            recipients.append(
                RecipientView(
                    organ_id=organ_id,
                    delivered_to=delivered_to,
                    delivery_id=delivery_id,
                    state=state,
                    attempts=attempts,
                    last_error=last_error,
                    updated_at=updated_at,
                    statuses=lifecycle.ordered(statuses.get(delivered_to, ())),
                )
            )
        return MessageRecord(
            id=mid,
            kind=kind,
            from_id=from_id,
            document_id=document_id,
            business_type=btype,
            status_code=scode,
            sha256=sha,
            size=size,
            received_at=received_at,
            recipients=tuple(recipients),
            refers_to=tuple(sorted(refers_to, key=lambda link: (link.message_id, link.relation))),
            referred_by=tuple(link for _, link in sorted(referred_by, key=lambda x: x[0])),
        )

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
        clauses, args = outbox_clauses(
            from_id,
            after=decode_cursor(cursor),
            since=since,
            until=until,
            document_id=document_id,
            overdue_before=overdue_before,
        )
        where = qmarks(" AND ".join(clauses))  # fixed clause texts; every value a parameter
        sql = f"{OUTBOX_SELECT} WHERE {where} ORDER BY seq DESC LIMIT ${len(args) + 1}"
        rows = await self._read("fetch", sql, *args, limit + 1)
        items = [await self._record(tuple(row)[1:]) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1][0]) if more else None)

    # ----------------------------------------------------------------- receiving

    async def inbox(
        self, organ_id: str, *, kind: MessageKind | None, cursor: str | None, limit: int
    ) -> Page[InboxItem]:
        after = decode_cursor(cursor) or 0
        sql = (
            "SELECT d.seq, m.id, m.kind, m.from_id, m.document_id, m.status_code, m.sha256,"
            " m.size, m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id"
            " WHERE d.delivered_to = $1 AND d.open AND d.seq > $2"
            " AND ($3::text IS NULL OR d.kind = $3) ORDER BY d.seq LIMIT $4"
        )
        rows = await self._read("fetch", sql, organ_id, after, kind, limit + 1)
        items = [InboxItem(*tuple(row)[1:]) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1][0]) if more else None)

    async def fetch(self, message_id: str, organ_id: str, *, actor: str) -> Fetched | None:
        row = await self._read(
            "fetchrow",
            "SELECT d.id, d.state, m.kind, m.from_id, m.sha256, m.size, m.body, m.body_parts,"
            " m.document_id FROM deliveries d JOIN messages m ON m.id = d.message_id"
            " WHERE d.message_id = $1 AND d.delivered_to = $2",
            message_id,
            organ_id,
        )
        if row is None:
            return None
        delivery_id, state, kind, from_id, sha, size, body, parts, document_id = row
        if state in ("queued", "retrying"):

            async def op(tx: PgTx) -> None:
                status = await tx.conn.execute(
                    "UPDATE deliveries SET state = 'fetched', updated_at = $1"
                    " WHERE id = $2 AND state IN ('queued', 'retrying')",
                    tx.at,
                    delivery_id,
                )
                if rowcount(status):
                    tx.event(
                        Event(
                            type="delivery_fetched",
                            actor=actor,
                            message_id=message_id,
                            document_id=document_id,
                            from_id=from_id,
                            to_id=organ_id,
                            detail={"delivery_id": delivery_id},
                        )
                    )

            await self._write(op)
        body_file = None
        if body is None and parts:
            body_file = await self._body_file(message_id, sha, parts)
        return Fetched(
            message_id=message_id,
            kind=kind,
            from_id=from_id,
            sha256=sha,
            size=size,
            body=body,
            body_file=body_file,
        )

    async def ack(
        self, message_id: str, organ_id: str, result: AckResult, reason: str | None, *, actor: str
    ) -> Acked:
        target = "acked" if result == "done" else "failed"

        async def op(tx: PgTx) -> Acked:
            row = await tx.conn.fetchrow(
                "SELECT d.id, d.state, d.updated_at, m.document_id, m.from_id FROM deliveries d"
                " JOIN messages m ON m.id = d.message_id"
                " WHERE d.message_id = $1 AND d.delivered_to = $2 FOR UPDATE OF d",
                message_id,
                organ_id,
            )
            if row is None:
                raise LookupError(message_id)
            delivery_id, state, updated_at, document_id, from_id = row
            if state == target:
                return Acked(delivery_id, state, updated_at)
            if state in ("acked", "failed"):
                raise DuplicateConflict(
                    f"result: the message was already acknowledged as"
                    f" {'done' if state == 'acked' else 'fail'}"
                )
            await tx.conn.execute(
                "UPDATE deliveries SET state = $1, open = false, reason = $2, updated_at = $3,"
                " last_error = CASE WHEN $1 = 'failed' THEN $2 ELSE last_error END WHERE id = $4",
                target,
                reason,
                tx.at,
                delivery_id,
            )
            tx.event(
                Event(
                    type="delivery_acked" if target == "acked" else "delivery_failed",
                    actor=actor,
                    message_id=message_id,
                    document_id=document_id,
                    from_id=from_id,
                    to_id=organ_id,
                    detail={"delivery_id": delivery_id, "reason": reason},
                )
            )
            return Acked(delivery_id, target, tx.at)

        return await self._write(op)

    # ----------------------------------------------------------------- gauges

    async def delivery_gauges(self) -> DeliveryGauges:
        rows = await self._read(
            "fetch",
            "SELECT state, count(*), min(seq) FROM deliveries WHERE open GROUP BY state",
        )
        counts = {state: (count, first) for state, count, first in rows}
        firsts = [counts[s][1] for s in ("queued", "retrying") if s in counts]
        oldest = None
        if firsts:  # deliveries are numbered as their messages are accepted
            oldest = await self._read(
                "fetchval",
                "SELECT m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id"
                " WHERE d.seq = $1",
                min(firsts),
            )
        return DeliveryGauges(
            queued=counts.get("queued", (0, 0))[0],
            fetched=counts.get("fetched", (0, 0))[0],
            retrying=counts.get("retrying", (0, 0))[0],
            dead=counts.get("dead", (0, 0))[0],
            oldest_undelivered_at=oldest,
        )
