"""The embedded default store: SQLite, one file, WAL, group commits (see ``sqlite_base``).

Operations are grouped by area; each area's operations live beside their SQL, and
``SqliteStore`` is their sum.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from axis import lifecycle
from axis.audit import Event
from axis.errors import DuplicateConflict
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
from axis.store.sql_common import outbox_clauses
from axis.store.sqlite_admin import SqliteAdminOps
from axis.store.sqlite_audit import SqliteAuditOps
from axis.store.sqlite_base import (
    AGENCY_SELECT,
    MESSAGE_SELECT,
    OUTBOX_SELECT,
    SqliteBase,
    Tx,
    agency_from_row,
    decode_cursor,
    encode_cursor,
)
from axis.store.sqlite_push import SqlitePushOps


class SqliteStore(SqliteAuditOps, SqlitePushOps, SqliteAdminOps, SqliteBase):
    """The embedded default store."""

    # ----------------------------------------------------------------- agencies

    async def registry(self) -> Registry:
        certs: dict[str, list[Certificate]] = defaultdict(list)
        for organ_id, pem in self._r.execute(
            "SELECT organ_id, pem FROM certificates ORDER BY organ_id, not_before"
        ):
            certs[organ_id].append(Certificate.from_pem(pem))
        agencies = [
            agency_from_row(row, tuple(certs.get(row[0], ())))
            for row in self._r.execute(AGENCY_SELECT + " ORDER BY organ_id")
        ]
        return Registry.of(agencies, await self.registry_version())

    async def registry_version(self) -> int:
        row = self._r.execute("SELECT value FROM meta WHERE key='registry_version'").fetchone()
        return int(row[0]) if row else 0

    async def put_agency(self, agency: Agency, *, actor: str) -> bool:
        """Create or replace one agency, with history and link checks (see ``save_agency``)."""
        return (await self.save_agency(agency, actor=actor)).outcome == "added"

    # ----------------------------------------------------------------- tokens

    async def issue_token(
        self, token_id: str, token_hash: str, role: Role, organ_id: str | None, *, actor: str
    ) -> None:
        def op(tx: Tx) -> None:
            tx.conn.execute(
                "INSERT INTO tokens (token_id, token_hash, role, organ_id, created_at)"
                " VALUES (?,?,?,?,?)",
                (token_id, token_hash, role, organ_id, tx.at),
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
        row = self._r.execute(
            "SELECT token_id, role, organ_id FROM tokens"
            " WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        ).fetchone()
        return Principal(row[0], row[1], row[2]) if row else None

    async def revoke_token(self, token_id: str, *, actor: str) -> bool:
        def op(tx: Tx) -> bool:
            cur = tx.conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                (tx.at, token_id),
            )
            if cur.rowcount:
                owner = tx.conn.execute(
                    "SELECT organ_id FROM tokens WHERE token_id = ?", (token_id,)
                ).fetchone()
                tx.event(
                    Event(
                        type="token_revoked",
                        actor=actor,
                        to_id=owner[0] if owner else None,
                        detail={"token_id": token_id},
                    )
                )
            return cur.rowcount > 0

        return await self._write(op)

    async def list_tokens(self, organ_id: str | None = None) -> list[TokenInfo]:
        sql = "SELECT token_id, role, organ_id, created_at, last_used_at, revoked_at FROM tokens"
        rows = (
            self._r.execute(sql + " WHERE organ_id = ? ORDER BY created_at", (organ_id,))
            if organ_id
            else self._r.execute(sql + " ORDER BY created_at")
        )
        return [TokenInfo(*row) for row in rows]

    # ----------------------------------------------------------------- sending

    async def find_by_digest(self, from_id: str, sha256: str) -> MessageRecord | None:
        row = self._r.execute(
            "SELECT id FROM messages WHERE from_id = ? AND sha256 = ?", (from_id, sha256)
        ).fetchone()
        return await self.message(row[0]) if row else None

    async def document_sent(self, from_id: str, document_id: str) -> str | None:
        row = self._r.execute(
            "SELECT id FROM messages WHERE from_id = ? AND document_id = ? AND kind = 'edoc'"
            " AND business_type IN (0, 3) ORDER BY seq LIMIT 1",
            (from_id, document_id),
        ).fetchone()
        return row[0] if row else None

    async def find_document(self, from_id: str, document_id: str) -> DocumentInfo | None:
        row = self._r.execute(
            "SELECT id FROM messages WHERE from_id = ? AND document_id = ? AND kind = 'edoc'"
            " AND business_type IN (0, 3) ORDER BY seq LIMIT 1",
            (from_id, document_id),
        ).fetchone()
        if row is None:
            return None
        recipients = [
            r[0]
            for r in self._r.execute(
                "SELECT d.delivered_to FROM deliveries d JOIN messages m ON m.id = d.message_id"
                " WHERE m.from_id = ? AND m.document_id = ? AND m.kind = 'edoc' ORDER BY d.seq",
                (from_id, document_id),
            )
        ]
        return DocumentInfo(row[0], from_id, document_id, tuple(dict.fromkeys(recipients)))

    async def latest_request(self, doc: DocumentInfo, party: str) -> str | None:
        row = self._r.execute(
            "SELECT m.id FROM messages m JOIN deliveries d ON d.message_id = m.id"
            " WHERE m.from_id = ? AND m.document_id = ? AND d.delivered_to = ?"
            " AND ((m.kind = 'status' AND m.status_code = '13')"
            " OR (m.kind = 'edoc' AND m.business_type IN (1, 2)))"
            " ORDER BY m.seq DESC LIMIT 1",
            (doc.from_id, doc.document_id, party),
        ).fetchone()
        return str(row[0]) if row else None

    async def accept(self, message: NewMessage) -> AcceptResult:
        routes_json = orjson.dumps([[r.organ_id, r.delivered_to] for r in message.routes])

        def op(tx: Tx) -> str | None:
            existing = tx.conn.execute(
                "SELECT id FROM messages WHERE from_id = ? AND sha256 = ?",
                (message.from_id, message.sha256),
            ).fetchone()
            if existing:
                return str(existing[0])
            if message.kind == "edoc" and message.business_type in (0, 3):
                clash = tx.conn.execute(
                    "SELECT id FROM messages WHERE from_id = ? AND document_id = ?"
                    " AND kind = 'edoc' AND business_type IN (0, 3)",
                    (message.from_id, message.document_id),
                ).fetchone()
                if clash:
                    raise DuplicateConflict(
                        f"DocumentId {message.document_id} was already sent by"
                        f" {message.from_id} with other bytes (message {clash[0]})",
                        original_message_id=clash[0],
                    )
            tx.conn.execute(
                "INSERT INTO messages (id, kind, from_id, document_id, business_type,"
                " status_code, sha256, size, received_at, body, body_file, routes,"
                " replaced_ids, signer_sha256) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
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
                    str(message.body_file) if message.body_file else None,
                    routes_json,
                    orjson.dumps(list(message.replaced_ids)) if message.replaced_ids else None,
                    message.signer_sha256,
                ),
            )
            for event in accepted_events(message):
                tx.event(event)
            tx.conn.executemany(
                "INSERT INTO deliveries (id, message_id, delivered_to, kind, state,"
                " updated_at) VALUES (?,?,?,?, 'queued', ?)",
                [
                    (delivery_id, message.id, delivered_to, message.kind, tx.at)
                    for delivered_to, delivery_id in message.delivery_ids.items()
                ],
            )
            for status in message.statuses:
                tx.conn.execute(
                    "INSERT INTO statuses (message_id, doc_from, document_id, party, code, at,"
                    " received_at) VALUES (?,?,?,?,?,?,?)",
                    (
                        message.id,
                        status.doc_from,
                        status.document_id,
                        status.party,
                        status.code,
                        status.at,
                        message.received_at,
                    ),
                )
            for link in message.links:
                tx.conn.execute(
                    "INSERT OR IGNORE INTO links (from_message, to_message, relation)"
                    " VALUES (?,?,?)",
                    (message.id, link.to_message, link.relation),
                )
            return None

        existing_id = await self._write(op)
        if existing_id is not None:
            record = await self.message(existing_id)
            assert record is not None
            return AcceptResult(record, created=False)
        self._wake(message.delivery_ids.keys())
        return AcceptResult(accepted_record(message), created=True)

    async def message(self, message_id: str) -> MessageRecord | None:
        row = self._r.execute(MESSAGE_SELECT + " WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            return None
        return self._record(row)

    def _record(self, row: sqlite3.Row | tuple[Any, ...]) -> MessageRecord:
        (mid, kind, from_id, document_id, btype, scode, sha, size, received_at, routes) = row
        deliveries = {
            d[0]: d
            for d in self._r.execute(
                "SELECT delivered_to, id, state, attempts, last_error, updated_at"
                " FROM deliveries WHERE message_id = ?",
                (mid,),
            )
        }
        statuses: dict[str, list[StatusEntry]] = defaultdict(list)
        if kind == "edoc":
            for party, code, at, status_id, status_received in self._r.execute(
                "SELECT party, code, at, message_id, received_at FROM statuses"
                " WHERE doc_from = ? AND document_id = ?",
                (from_id, document_id),
            ):
                statuses[party].append(StatusEntry(code, at, status_id, status_received))
        recipients = []
        for organ_id, delivered_to in orjson.loads(routes):
            d = deliveries.get(delivered_to)
            if d is None:
                continue
            recipients.append(
                RecipientView(
                    organ_id=organ_id,
                    delivered_to=delivered_to,
                    delivery_id=d[1],
                    state=d[2],
                    attempts=d[3],
                    last_error=d[4],
                    updated_at=d[5],
                    statuses=lifecycle.ordered(statuses.get(delivered_to, ())),
                )
            )
        refers_to = tuple(
            LinkView(*row)
            for row in self._r.execute(
                "SELECT l.to_message, l.relation, m.kind, m.document_id FROM links l"
                " JOIN messages m ON m.id = l.to_message WHERE l.from_message = ?",
                (mid,),
            )
        )
        referred_by = tuple(
            LinkView(*row)
            for row in self._r.execute(
                "SELECT l.from_message, l.relation, m.kind, m.document_id FROM links l"
                " JOIN messages m ON m.id = l.from_message WHERE l.to_message = ?"
                " ORDER BY m.seq",
                (mid,),
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
            refers_to=refers_to,
            referred_by=referred_by,
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
        where = " AND ".join(clauses)  # fixed clause texts; every value is a parameter
        sql = f"{OUTBOX_SELECT} WHERE {where} ORDER BY seq DESC LIMIT ?"
        rows = self._r.execute(sql, (*args, limit + 1)).fetchall()
        items = [self._record(row[1:]) for row in rows[:limit]]
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
            " WHERE d.delivered_to = ? AND d.open = 1 AND d.seq > ?"
        )
        args: list[Any] = [organ_id, after]
        if kind is not None:
            sql += " AND d.kind = ?"
            args.append(kind)
        rows = self._r.execute(sql + " ORDER BY d.seq LIMIT ?", (*args, limit + 1)).fetchall()
        items = [InboxItem(*row[1:]) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1][0]) if more else None)

    async def fetch(self, message_id: str, organ_id: str, *, actor: str) -> Fetched | None:
        row = self._r.execute(
            "SELECT d.id, d.state, m.kind, m.from_id, m.sha256, m.size, m.body, m.body_file,"
            " m.document_id FROM deliveries d JOIN messages m ON m.id = d.message_id"
            " WHERE d.message_id = ? AND d.delivered_to = ?",
            (message_id, organ_id),
        ).fetchone()
        if row is None:
            return None
        delivery_id, state, kind, from_id, sha, size, body, body_file, document_id = row
        if state in ("queued", "retrying"):

            def op(tx: Tx) -> None:
                cur = tx.conn.execute(
                    "UPDATE deliveries SET state = 'fetched', updated_at = ?"
                    " WHERE id = ? AND state IN ('queued', 'retrying')",
                    (tx.at, delivery_id),
                )
                if cur.rowcount:
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
        return Fetched(
            message_id=message_id,
            kind=kind,
            from_id=from_id,
            sha256=sha,
            size=size,
            body=body,
            body_file=Path(body_file) if body_file else None,
        )

    async def ack(
        self, message_id: str, organ_id: str, result: AckResult, reason: str | None, *, actor: str
    ) -> Acked:
        target = "acked" if result == "done" else "failed"

        def op(tx: Tx) -> Acked:
            row = tx.conn.execute(
                "SELECT d.id, d.state, d.updated_at, m.document_id, m.from_id FROM deliveries d"
                " JOIN messages m ON m.id = d.message_id"
                " WHERE d.message_id = ? AND d.delivered_to = ?",
                (message_id, organ_id),
            ).fetchone()
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
            tx.conn.execute(
                "UPDATE deliveries SET state = ?, open = 0, reason = ?, updated_at = ?,"
                " last_error = CASE WHEN ? = 'failed' THEN ? ELSE last_error END WHERE id = ?",
                (target, reason, tx.at, target, reason, delivery_id),
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
        counts = {
            state: (count, first)
            for state, count, first in self._r.execute(
                "SELECT state, COUNT(*), MIN(seq) FROM deliveries WHERE open = 1 GROUP BY state"
            ).fetchall()
        }
        firsts = [counts[s][1] for s in ("queued", "retrying") if s in counts]
        oldest = None
        if firsts:  # deliveries are numbered as their messages are accepted
            row = self._r.execute(
                "SELECT m.received_at FROM deliveries d JOIN messages m ON m.id = d.message_id"
                " WHERE d.seq = ?",
                (min(firsts),),
            ).fetchone()
            oldest = row[0] if row else None
        return DeliveryGauges(
            queued=counts.get("queued", (0, 0))[0],
            fetched=counts.get("fetched", (0, 0))[0],
            retrying=counts.get("retrying", (0, 0))[0],
            dead=counts.get("dead", (0, 0))[0],
            oldest_undelivered_at=oldest,
        )
