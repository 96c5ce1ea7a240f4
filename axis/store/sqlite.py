"""The embedded store: one SQLite file in WAL mode, writes batched into group commits.

Every write goes through one writer thread that takes whatever requests are waiting, runs each
in its own savepoint inside one transaction, commits once (one fsync for the lot, since
``synchronous=FULL``) and then answers them all. Under load that turns thousands of fsyncs
into tens; an idle axis still commits a lone request at once. Reads run on the event loop's
own connection: WAL readers never wait for the writer, and an indexed lookup costs less than
a hop to a thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import queue
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

from axis import audit, log, timeutil
from axis.audit import Event
from axis.config import Settings
from axis.errors import DuplicateConflict, InvalidRequest, StoreError
from axis.registry import Agency, Certificate, Registry
from axis.store.base import (
    AcceptResult,
    AckResult,
    Fetched,
    InboxItem,
    InitReport,
    MessageKind,
    MessageRecord,
    NewMessage,
    Page,
    Principal,
    RecipientView,
    Role,
    TokenInfo,
)

T = TypeVar("T")
_log = log.get("axis.store")


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("axis.store") / "sql" / "sqlite"
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Tx:
    """What one write operation sees: the connection, the commit time, the audit head."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.at = timeutil.fmt(timeutil.now())
        self._head: tuple[int, str] | None = None

    def event(self, event: Event) -> None:
        """Append an audit event, chained to the last, in this same transaction."""
        if self._head is None:
            row = self.conn.execute(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            self._head = (row[0], row[1]) if row else (0, audit.GENESIS)
        seq = self._head[0] + 1
        content = audit.canonical(seq, self.at, event)
        digest = audit.chain_hash(self._head[1], content)
        self.conn.execute(
            "INSERT INTO audit_events (seq, at, type, actor, message_id, document_id, from_id,"
            " to_id, detail, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                self.at,
                event.type,
                event.actor,
                event.message_id,
                event.document_id,
                event.from_id,
                event.to_id,
                orjson.dumps(event.detail).decode(),
                digest,
            ),
        )
        self._head = (seq, digest)


Op = Callable[[Tx], T]


@dataclass(slots=True)
class _Request:
    op: Callable[[Tx], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupWriter:
    """One thread, one connection, one transaction per batch of waiting requests."""

    def __init__(self, path: Path, max_batch: int) -> None:
        self._path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="axis-sqlite-writer", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self.batches = 0
        self.writes = 0

    def start(self) -> None:
        self._conn = _connect(self._path)
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def submit(self, op: Callable[[Tx], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Request(op, future, loop))
        return future

    def _run(self) -> None:
        assert self._conn is not None
        conn = self._conn
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Request]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = Tx(conn)
            for request in batch:
                head = tx._head
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, request.op(tx)))
                    conn.execute("RELEASE op")
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    tx._head = head
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            _log.error("store_commit_failed", error=str(exc), batch=len(batch))
            error = StoreError(f"the store could not commit: {exc}")
            outcomes = [(False, error)] * len(batch)
        self.batches += 1
        self.writes += len(batch)
        for request, (ok, value) in zip(batch, outcomes, strict=True):
            request.loop.call_soon_threadsafe(_settle, request.future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"s{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(f"cursor: not a cursor this axis gave: {cursor!r}") from None


def place_blob(settings: Settings, spooled: Path, sha256: str) -> Path:
    """Move a spooled body into the content-addressed blob directory, durably.

    Same bytes, same file: a body is stored once however often it is sent.
    """
    folder = settings.blob_dir / sha256[:2]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / sha256
    if target.exists():
        spooled.unlink(missing_ok=True)
        return target
    with spooled.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(spooled, target)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return target


class SqliteStore:
    """The embedded default store."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path = settings.sqlite_path
        self._writer: GroupWriter | None = None
        self._read: sqlite3.Connection | None = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._watch: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        self._settings.data.mkdir(parents=True, exist_ok=True)
        self._read = _connect(self._path)
        self._writer = GroupWriter(self._path, self._settings.group_commit_max)
        self._writer.start()
        self._watch = asyncio.create_task(self._watch_other_processes())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
        if self._read is not None:
            self._read.close()
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    @property
    def _r(self) -> sqlite3.Connection:
        if self._read is None:
            raise StoreError("the store is not open")
        return self._read

    def _write(self, op: Callable[[Tx], T]) -> asyncio.Future[T]:
        if self._writer is None:
            raise StoreError("the store is not open")
        return self._writer.submit(op)

    def _schema_version(self) -> int:
        try:
            row = self._r.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0]) if row else 0

    async def initialize(self, agencies: Sequence[Agency]) -> InitReport:
        before = self._schema_version()
        migrations = _migrations()

        def migrate(tx: Tx) -> int:
            version = before
            for number, sql in migrations:
                if number > version:
                    for statement in _statements(sql):
                        tx.conn.execute(statement)
                    version = number
            tx.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
            added = 0
            for agency in agencies:
                exists = tx.conn.execute(
                    "SELECT 1 FROM agencies WHERE organ_id = ?", (agency.organ_id,)
                ).fetchone()
                if exists is None:
                    _upsert_agency(tx, agency)
                    added += 1
            if added:
                _bump_registry(tx)
                tx.event(
                    Event(
                        type="agency_changed",
                        actor="system:init",
                        detail={"loaded": added, "source": "agencies.yaml"},
                    )
                )
            return added

        added = await self._write(migrate)
        return InitReport(
            created=before == 0,
            agencies_added=added,
            schema_version=migrations[-1][0],
        )

    async def check_schema(self) -> int:
        """The schema version on disk; raises when it is older than this code expects."""
        version = self._schema_version()
        latest = _migrations()[-1][0]
        if version != latest:
            raise StoreError(
                f"schema version {version} on disk, this axis needs {latest}: run `axis init`"
            )
        return version

    async def healthy(self) -> dict[str, Any]:
        def probe(tx: Tx) -> None:
            tx.conn.execute("SELECT 1")

        await self._write(probe)
        return {"store": "sqlite", "path": str(self._path), "schema": self._schema_version()}

    # ----------------------------------------------------------------- agencies

    async def registry(self) -> Registry:
        certs: dict[str, list[Certificate]] = defaultdict(list)
        for organ_id, pem in self._r.execute(
            "SELECT organ_id, pem FROM certificates ORDER BY organ_id, not_before"
        ):
            certs[organ_id].append(Certificate.from_pem(pem))
        agencies = [
            _agency_from_row(row, tuple(certs.get(row[0], ())))
            for row in self._r.execute(_AGENCY_SELECT + " ORDER BY organ_id")
        ]
        return Registry.of(agencies, await self.registry_version())

    async def registry_version(self) -> int:
        row = self._r.execute("SELECT value FROM meta WHERE key='registry_version'").fetchone()
        return int(row[0]) if row else 0

    async def put_agency(self, agency: Agency, *, actor: str) -> bool:
        def op(tx: Tx) -> bool:
            before = tx.conn.execute(
                _AGENCY_SELECT + " WHERE organ_id = ?", (agency.organ_id,)
            ).fetchone()
            _upsert_agency(tx, agency)
            _bump_registry(tx)
            tx.event(
                Event(
                    type="agency_changed",
                    actor=actor,
                    to_id=agency.organ_id,
                    detail={
                        "created": before is None,
                        "status": agency.status,
                        "successor": agency.successor,
                        "endpoint": agency.endpoint,
                        "certificates": [c.sha256 for c in agency.certificates],
                    },
                )
            )
            return before is None

        return await self._write(op)

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
                tx.event(Event(type="token_revoked", actor=actor, detail={"token_id": token_id}))
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
            tx.event(
                Event(
                    type="message_received",
                    actor=message.actor,
                    message_id=message.id,
                    document_id=message.document_id,
                    from_id=message.from_id,
                    detail={
                        "kind": message.kind,
                        "sha256": message.sha256,
                        "size": message.size,
                        "business_type": message.business_type,
                        "status_code": message.status_code,
                    },
                )
            )
            for route in message.routes:
                if route.forwarded:
                    tx.event(
                        Event(
                            type="delivery_forwarded",
                            actor="axis",
                            message_id=message.id,
                            document_id=message.document_id,
                            from_id=message.from_id,
                            to_id=route.delivered_to,
                            detail={"addressed": route.organ_id},
                        )
                    )
            for delivered_to, delivery_id in message.delivery_ids.items():
                tx.conn.execute(
                    "INSERT INTO deliveries (id, message_id, delivered_to, kind, state,"
                    " updated_at) VALUES (?,?,?,?, 'queued', ?)",
                    (delivery_id, message.id, delivered_to, message.kind, tx.at),
                )
                tx.event(
                    Event(
                        type="delivery_queued",
                        actor="axis",
                        message_id=message.id,
                        document_id=message.document_id,
                        from_id=message.from_id,
                        to_id=delivered_to,
                        detail={"delivery_id": delivery_id},
                    )
                )
            return None

        existing_id = await self._write(op)
        if existing_id is not None:
            record = await self.message(existing_id)
            assert record is not None
            return AcceptResult(record, created=False)
        self._wake(message.delivery_ids.keys())
        recipients = tuple(
            RecipientView(
                organ_id=r.organ_id,
                delivered_to=r.delivered_to,
                delivery_id=message.delivery_ids[r.delivered_to],
                state="queued",
                attempts=0,
                last_error=None,
                updated_at=message.received_at,
            )
            for r in message.routes
        )
        record = MessageRecord(
            id=message.id,
            kind=message.kind,
            from_id=message.from_id,
            document_id=message.document_id,
            business_type=message.business_type,
            status_code=message.status_code,
            sha256=message.sha256,
            size=message.size,
            received_at=message.received_at,
            recipients=recipients,
        )
        return AcceptResult(record, created=True)

    async def message(self, message_id: str) -> MessageRecord | None:
        row = self._r.execute(_MESSAGE_SELECT + " WHERE id = ?", (message_id,)).fetchone()
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
    ) -> Page[MessageRecord]:
        clauses = ["from_id = ?"]
        args: list[Any] = [from_id]
        after = decode_cursor(cursor)
        if after is not None:
            clauses.append("seq < ?")
            args.append(after)
        if since is not None:
            clauses.append("received_at >= ?")
            args.append(timeutil.fmt(since))
        if until is not None:
            clauses.append("received_at < ?")
            args.append(timeutil.fmt(until))
        if document_id is not None:
            clauses.append("document_id = ?")
            args.append(document_id)
        where = " AND ".join(clauses)  # fixed clause texts; every value is a parameter
        sql = f"{_OUTBOX_SELECT} WHERE {where} ORDER BY seq DESC LIMIT ?"
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

    async def wait_for_mail(self, organ_id: str, timeout: float) -> None:  # noqa: ASYNC109
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[organ_id].add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(organ_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[organ_id]

    def _wake(self, organ_ids: Any) -> None:
        for organ_id in organ_ids:
            for future in self._waiters.get(organ_id, ()):
                if not future.done():
                    future.set_result(None)

    async def _watch_other_processes(self) -> None:
        """Wake long-polls when another process sharing the file commits.

        ``PRAGMA data_version`` changes only for commits made by other connections, and our own
        writer is one; so this also catches nothing twice that matters: a woken waiter just
        re-reads its inbox.
        """
        last = None
        while True:
            await asyncio.sleep(0.2)
            if not self._waiters or self._read is None:
                continue
            version = self._read.execute("PRAGMA data_version").fetchone()[0]
            if last is not None and version != last:
                self._wake(list(self._waiters))
            last = version

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
    ) -> RecipientView:
        target = "acked" if result == "done" else "failed"

        def op(tx: Tx) -> None:
            row = tx.conn.execute(
                "SELECT d.id, d.state, m.document_id, m.from_id FROM deliveries d"
                " JOIN messages m ON m.id = d.message_id"
                " WHERE d.message_id = ? AND d.delivered_to = ?",
                (message_id, organ_id),
            ).fetchone()
            if row is None:
                raise LookupError(message_id)
            delivery_id, state, document_id, from_id = row
            if state == target:
                return
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

        await self._write(op)
        record = await self.message(message_id)
        assert record is not None
        return next(r for r in record.recipients if r.delivered_to == organ_id)

    # ----------------------------------------------------------------- for tests and tools

    def raw_connection(self) -> sqlite3.Connection:
        """The read connection, for tests and diagnostics only."""
        return self._r

    @contextlib.contextmanager
    def _unused(self) -> Iterator[None]:  # pragma: no cover - keeps contextlib imported
        yield


_AGENCY_SELECT = (
    "SELECT organ_id, name, kind, parent, status, successor, endpoint, push_secret, allow_sha1,"
    " confirmed, source FROM agencies"
)
_OUTBOX_SELECT = (
    "SELECT seq, id, kind, from_id, document_id, business_type, status_code, sha256,"
    " size, received_at, routes FROM messages"
)
_MESSAGE_SELECT = (
    "SELECT id, kind, from_id, document_id, business_type, status_code, sha256, size,"
    " received_at, routes FROM messages"
)


def _agency_from_row(row: tuple[Any, ...], certs: tuple[Certificate, ...]) -> Agency:
    return Agency(
        organ_id=row[0],
        name=row[1],
        kind=row[2],
        parent=row[3],
        status=row[4],
        successor=row[5],
        endpoint=row[6],
        push_secret=row[7],
        allow_sha1=bool(row[8]),
        confirmed=bool(row[9]),
        source=row[10],
        certificates=certs,
    )


def _upsert_agency(tx: Tx, agency: Agency) -> None:
    tx.conn.execute(
        "INSERT INTO agencies (organ_id, name, kind, parent, status, successor, endpoint,"
        " push_secret, allow_sha1, confirmed, source, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (organ_id) DO UPDATE SET"
        " name = excluded.name, kind = excluded.kind, parent = excluded.parent,"
        " status = excluded.status, successor = excluded.successor,"
        " endpoint = excluded.endpoint, push_secret = excluded.push_secret,"
        " allow_sha1 = excluded.allow_sha1, confirmed = excluded.confirmed,"
        " source = excluded.source, updated_at = excluded.updated_at",
        (
            agency.organ_id,
            agency.name,
            agency.kind,
            agency.parent,
            agency.status,
            agency.successor,
            agency.endpoint,
            agency.push_secret,
            int(agency.allow_sha1),
            int(agency.confirmed),
            agency.source,
            tx.at,
        ),
    )
    tx.conn.execute("DELETE FROM certificates WHERE organ_id = ?", (agency.organ_id,))
    for cert in agency.certificates:
        tx.conn.execute(
            "INSERT INTO certificates (organ_id, sha256, pem, not_before, not_after)"
            " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                agency.organ_id,
                cert.sha256,
                cert.pem,
                timeutil.fmt(cert.not_before),
                timeutil.fmt(cert.not_after),
            ),
        )


def _bump_registry(tx: Tx) -> None:
    tx.conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'registry_version'"
    )


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (our files keep one ``;`` per statement end)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
