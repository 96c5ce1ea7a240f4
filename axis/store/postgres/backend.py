"""The shared engine: PostgreSQL through asyncpg, for several axis nodes on one database.

What several nodes writing at once require, and only that, lives here; the operations are
``axis.store.ops``' and their SQL ``sql/postgres/*.sql``:

- **One writer per process.** Every write is an async ``op(tx)``; a single writer task takes
  whatever requests are waiting (at most ``min(AXIS_GROUP_COMMIT_MAX, 64)``), runs them inside
  one transaction on one connection, and commits once (``synchronous_commit=on``: one WAL
  flush for the lot). A request is answered only after that COMMIT. Savepoints cost a round
  trip each, so a batch first runs without them; only if one of its operations fails (a 409, a
  race lost) is the whole batch run again with one savepoint per operation, so that the
  failure undoes that operation alone. At most 64 a batch because every savepoint that writes
  takes a subtransaction id, and past 64 in one transaction PostgreSQL's snapshots overflow to
  ``pg_subtrans`` and every reader on the engine slows down.
- **Bulk inserts.** The messages of one batch go in with one statement (each round trip of
  the writer waits for a turn of a busy event loop, so a batch costs a few round trips, not
  one per package).
- **One audit chain across nodes.** Operations append events to ``tx``; they are hashed and
  written at the end of the batch, after locking the one-row ``audit_head`` table
  (``FOR UPDATE``), which is held until COMMIT. Batches of every node therefore append in
  turn and hashes follow commit order, while the operations themselves run in parallel on
  every node. An event's time never goes back along the chain.
- **Races between nodes** are settled by the engine: a unique index that another node's
  transaction fills first raises ``UniqueViolationError`` in the operation, which is then run
  once more in a fresh savepoint and finds the committed row (so a duplicate gets the same
  ``200``/``409`` as on one node); a deadlock or serialisation failure re-runs the whole batch.
  Rows a check reads before it writes are locked (``FOR UPDATE`` in the queries), claims skip
  rows other nodes hold (``SKIP LOCKED``).
- **Long-polls and push workers on every node** learn of new mail by LISTEN/NOTIFY: one
  ``pg_notify`` per batch names the agencies that got mail, delivered by the engine at COMMIT;
  each node listens on one connection.
- **Large bodies** live in the database too (``message_parts``, 1 MiB each), since a node's
  blob directory is not shared between machines; a node keeps a checked copy as a cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson

from axis import audit, log, timeutil
from axis.audit import Event
from axis.config import Settings
from axis.errors import StoreError
from axis.model import DeliveryState, NewMessage
from axis.store.backend import BackendBase, EventSwitch, Op, Queries, QueryKey, Row, Tx
from axis.store.ops.messages import message_columns

T = TypeVar("T")
_log = log.get("axis.store")
DIALECT = "postgres"
CHANNEL = "axis_mail"
MAX_BATCH = 64  # savepoints per transaction before snapshots overflow (see the module doc)
PART_BYTES = 1 << 20  # large bodies are stored and read in parts of this size
_NOTIFY_BYTES = 7000  # a NOTIFY payload must stay under 8000 bytes
_BATCH_RETRIES = 5
_PURGED_KEPT = timedelta(days=7)


# ----------------------------------------------------------------- connection settings


@dataclass(frozen=True, slots=True)
class Target:
    """Where the store lives: a DSN for asyncpg and the schema its tables are in."""

    dsn: str
    schema: str | None

    @property
    def safe(self) -> str:
        """The URL without its password, for logs and ``/readyz``."""
        parts = urllib.parse.urlsplit(self.dsn)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        user = parts.username
        shown = f"{user}@{netloc}" if user else netloc
        text = urllib.parse.urlunsplit((parts.scheme, shown, parts.path, "", ""))
        return text + (f"?schema={self.schema}" if self.schema else "")


def parse_url(url: str) -> Target:
    """Split ``postgresql://user@host:port/db?schema=NAME`` into a DSN and a schema.

    ``schema`` (optional) puts every table of the axis in that schema, created by
    ``axis init``: several axes, or the test suite, can share one database. Other query
    parameters go to asyncpg as they are (``sslmode``, ``connect_timeout``, …).
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value or None
        else:
            kept.append((key, value))
    if schema is not None and not schema.replace("_", "").isalnum():
        raise ValueError(f"AXIS_STORE: schema {schema!r}: use letters, digits and _ only")
    dsn = urllib.parse.urlunsplit(
        ("postgresql", parts.netloc, parts.path, urllib.parse.urlencode(kept), parts.fragment)
    )
    return Target(dsn, schema)


def server_settings(target: Target, name: str = "axis") -> dict[str, str]:
    """Per connection; ``name`` shows in ``pg_stat_activity`` (which node, which role)."""
    settings = {
        "application_name": name,
        # a write is answered only after its commit is on disk: never weaken this
        "synchronous_commit": "on",
        # a node that hangs inside a transaction must not hold the audit chain for long
        "idle_in_transaction_session_timeout": "60000",
    }
    if target.schema:
        settings["search_path"] = f'"{target.schema}"'
    return settings


def qmarks(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, …`` (PostgreSQL's), quoted text left alone."""
    out: list[str] = []
    number = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "?" and not quoted:
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


def rowcount(status: str) -> int:
    """The number of rows an ``UPDATE n`` / ``DELETE n`` / ``INSERT 0 n`` status names."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


# the connection is gone (or going): the client side noticed, or the server said so
LOST = (
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # the protocol lost its footing: a new connection resets it
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    OSError,
)


# ----------------------------------------------------------------- reading


class PgReader:
    """Reads on a pool (each on a free connection) or on one connection (a snapshot)."""

    def __init__(self, conn: Any, queries: Queries) -> None:
        self._conn = conn
        self._q = queries

    async def _call(self, method: str, query: QueryKey, args: Sequence[Any]) -> Any:
        try:
            return await getattr(self._conn, method)(self._q[query], *args)
        except (*LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"the store could not read: {exc}") from exc

    async def one(self, query: QueryKey, *args: Any) -> Row | None:
        row = await self._call("fetchrow", query, args)
        return tuple(row) if row is not None else None

    async def all(self, query: QueryKey, *args: Any) -> list[Row]:
        return [tuple(row) for row in await self._call("fetch", query, args)]

    async def value(self, query: QueryKey, *args: Any) -> Any:
        return await self._call("fetchval", query, args)


# ----------------------------------------------------------------- the write transaction


@dataclass(frozen=True, slots=True)
class _Mark:
    events: int
    written: int
    head: tuple[int, str, str] | None
    notify: int


class PgTx(EventSwitch):
    """What one write operation sees: the connection, the batch's time, the audit chain.

    ``event`` and ``notify`` only note what to write; the batch writes it all at its end
    (``finish``) with the chain head locked.
    """

    def __init__(self, conn: Any, queries: Queries, node: str, *, audit: bool) -> None:
        super().__init__(audit=audit)
        self.conn = conn
        self._q = queries
        self.at = timeutil.fmt(timeutil.now())
        self._node = node
        self._events: list[Event] = []
        self._written = 0
        self._head: tuple[int, str, str] | None = None  # (seq, hash, at) once locked
        self.notified: list[str] = []
        self.prefetched: dict[str, bool] = {}  # message id -> inserted, by the batch's bulk insert

    async def one(self, query: QueryKey, *args: Any) -> Row | None:
        row = await self.conn.fetchrow(self._q[query], *args)
        return tuple(row) if row is not None else None

    async def all(self, query: QueryKey, *args: Any) -> list[Row]:
        return [tuple(row) for row in await self.conn.fetch(self._q[query], *args)]

    async def value(self, query: QueryKey, *args: Any) -> Any:
        return await self.conn.fetchval(self._q[query], *args)

    async def run(self, query: QueryKey, *args: Any) -> int:
        return rowcount(await self.conn.execute(self._q[query], *args))

    async def many(self, query: QueryKey, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.conn.executemany(self._q[query], rows)

    def _append(self, event: Event) -> None:
        self._events.append(event)

    def notify(self, organ_ids: Iterable[str]) -> None:
        self.notified.extend(organ_ids)

    def mark(self) -> _Mark:
        return _Mark(len(self._events), self._written, self._head, len(self.notified))

    def restore(self, mark: _Mark) -> None:
        """Forget what an operation noted, as ``ROLLBACK TO SAVEPOINT`` forgot what it wrote."""
        del self._events[mark.events :]
        del self.notified[mark.notify :]
        self._written = mark.written
        self._head = mark.head

    async def finish(self) -> None:
        """Write what the batch noted: its events with the head locked, its notifications."""
        payloads = _payloads(self._node, self.notified)
        if self._written < len(self._events):
            if self._head is None:
                row = await self.conn.fetchrow(self._q["audit_head_lock"])
                self._head = (int(row[0]), str(row[1]), str(row[2]))
            seq, prev, last_at = self._head
            at = max(self.at, last_at)  # another node's batch may have committed a later time
            columns: list[list[Any]] = [[] for _ in range(10)]
            for event in self._events[self._written :]:
                seq += 1
                prev = audit.chain_hash(prev, audit.canonical(seq, at, event))
                values = (
                    seq,
                    at,
                    event.type,
                    event.actor,
                    event.message_id,
                    event.document_id,
                    event.from_id,
                    event.to_id,
                    orjson.dumps(event.detail).decode(),
                    prev,
                )
                for column, value in zip(columns, values, strict=True):
                    column.append(value)
            await self.conn.fetchval(
                self._q["audit_append"], *columns, seq, prev, at, CHANNEL, payloads
            )
            self._head = (seq, prev, at)
            self._written = len(self._events)
        elif payloads:
            await self.conn.execute(self._q["mail_notify"], CHANNEL, payloads)


def _payloads(node: str, organ_ids: Sequence[str]) -> list[str]:
    """``node:organ,organ,…`` payloads, each under the NOTIFY size limit."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for organ_id in dict.fromkeys(organ_ids):
        if current and size + len(organ_id) + 1 > _NOTIFY_BYTES:
            out.append(f"{node}:{','.join(current)}")
            current, size = [], 0
        current.append(organ_id)
        size += len(organ_id) + 1
    if current:
        out.append(f"{node}:{','.join(current)}")
    return out


# ----------------------------------------------------------------- the writer


@dataclass(slots=True)
class _Request:
    op: Callable[[PgTx], Awaitable[Any]]
    future: asyncio.Future[Any]
    message: NewMessage | None = None


class _Again(Exception):
    """Nothing of the batch was committed and it may simply run again: the engine undid the
    transaction (deadlock, serialisation failure), or the connection went before COMMIT."""

    def __init__(self, cause: BaseException, *, reconnect: bool) -> None:
        super().__init__(str(cause))
        self.reconnect = reconnect


class _Failed(Exception):
    """An operation of a batch run without savepoints failed: run it again with them."""


class PgWriter:
    """One task, one connection, one transaction per batch of waiting requests."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        queries: Queries,
        max_batch: int,
        node: str,
        wake: Callable[[Iterable[str]], None],
        *,
        audit: bool,
    ) -> None:
        self._connect = connect
        self._queries = queries
        self._max_batch = max(1, min(max_batch, MAX_BATCH))
        self._node = node
        self._wake = wake
        self._audit = audit
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue()
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.writes = 0

    async def start(self) -> None:
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="axis-pg-writer")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            await self._task
        if self._conn is not None:
            with contextlib.suppress(*LOST, asyncpg.PostgresError):
                await self._conn.close(timeout=5)
            self._conn = None

    def submit(
        self, op: Callable[[PgTx], Awaitable[T]], message: NewMessage | None = None
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(op, future, message))
        return future

    @property
    def backend_pid(self) -> int | None:
        """The server process of the writer's connection (for diagnostics and tests)."""
        return int(self._conn.get_server_pid()) if self._conn is not None else None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            notified: list[str] = []
            try:
                outcomes, notified = await self._commit(batch)
            except Exception as exc:  # the writer must outlive any one batch
                _log.exception("store_commit_failed", batch=len(batch))
                outcomes = [(False, StoreError(f"the store could not commit: {exc}"))] * len(batch)
            self.batches += 1
            self.writes += len(batch)
            if notified:
                self._wake(dict.fromkeys(notified))
            for request, (ok, value) in zip(batch, outcomes, strict=True):
                if not request.future.done():
                    if ok:
                        request.future.set_result(value)
                    else:
                        request.future.set_exception(value)
            if stopping:
                return

    async def _commit(self, batch: list[_Request]) -> tuple[list[tuple[bool, Any]], list[str]]:
        for attempt in range(_BATCH_RETRIES):
            try:
                return await self._transaction(batch)
            except _Again as again:
                _log.info(
                    "store_batch_retried",
                    batch=len(batch),
                    error=str(again),
                    reconnect=again.reconnect,
                )
                if again.reconnect:
                    self._reset()
                if attempt == _BATCH_RETRIES - 1:
                    error = StoreError(f"the store could not commit: {again}")
                    return [(False, error)] * len(batch), []
                pause = (0.1 if again.reconnect else 0.01) * 2**attempt
                await asyncio.sleep(random.uniform(pause / 2, pause))  # noqa: S311
            except StoreError as exc:  # could not connect
                _log.error("store_commit_failed", error=str(exc), batch=len(batch))
                return [(False, exc)] * len(batch), []
            except (*LOST, asyncpg.PostgresError) as exc:
                # lost during COMMIT: whether it took is unknown, so the callers get an error
                # and may retry (a package sent again is recognised by its digest)
                _log.error("store_commit_failed", error=str(exc), batch=len(batch))
                self._reset()
                return [(False, StoreError(f"the store could not commit: {exc}"))] * len(batch), []
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _transaction(self, batch: list[_Request]) -> tuple[list[tuple[bool, Any]], list[str]]:
        """Run the batch in one transaction; first without savepoints (a round trip each),
        and only when one of its operations fails, all of it again with them."""
        if len(batch) > 1:
            try:
                return await self._attempt(batch, savepoints=False)
            except _Failed:
                pass
        return await self._attempt(batch, savepoints=True)

    async def _attempt(
        self, batch: list[_Request], *, savepoints: bool
    ) -> tuple[list[tuple[bool, Any]], list[str]]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        conn = self._conn
        tx = PgTx(conn, self._queries, self._node, audit=self._audit)
        committing = False
        try:
            await conn.execute("BEGIN; SAVEPOINT op" if savepoints else "BEGIN")
            if not savepoints:
                await self._bulk_insert(tx, batch)
            outcomes = []
            for index, request in enumerate(batch):
                if not savepoints:
                    try:
                        outcomes.append((True, await request.op(tx)))
                    except (*LOST, asyncpg.TransactionRollbackError):
                        raise
                    except Exception as exc:
                        raise _Failed from exc
                    continue
                if index:
                    await conn.execute("RELEASE SAVEPOINT op; SAVEPOINT op")
                outcomes.append(await self._one(conn, tx, request))
            await tx.finish()
            committing = True
            await conn.execute("COMMIT")
        except asyncpg.TransactionRollbackError as exc:
            await self._rollback(conn)
            raise _Again(exc, reconnect=False) from exc
        except LOST as exc:
            if committing:
                raise
            raise _Again(exc, reconnect=True) from exc
        except BaseException:
            await self._rollback(conn)
            raise
        return outcomes, tx.notified

    async def _bulk_insert(self, tx: PgTx, batch: list[_Request]) -> None:
        """The messages of the batch in one statement, when there are several; each
        operation then finds in ``tx.prefetched`` whether its message went in."""
        messages = [r.message for r in batch if r.message is not None]
        if len(messages) < 2:
            return
        columns: list[list[Any]] = [[] for _ in range(17)]
        children: list[list[Any]] = [[] for _ in range(12)]
        for message in messages:
            for column, value in zip(columns, message_columns(message), strict=True):
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
        try:
            stored = {
                row[0]
                for row in await tx.all(
                    "messages_insert_many", *columns, DeliveryState.QUEUED, tx.at, *children
                )
            }
        except (*LOST, asyncpg.TransactionRollbackError):
            raise
        except Exception as exc:
            raise _Failed from exc
        for message in messages:
            tx.prefetched[message.id] = message.id in stored

    async def _rollback(self, conn: Any) -> None:
        if not conn.is_closed() and conn.is_in_transaction():
            with contextlib.suppress(*LOST, asyncpg.PostgresError):
                await conn.execute("ROLLBACK")

    async def _one(self, conn: Any, tx: PgTx, request: _Request) -> tuple[bool, Any]:
        mark = tx.mark()
        for tries in (1, 2):
            try:
                return True, await request.op(tx)
            except (*LOST, asyncpg.TransactionRollbackError):
                raise  # the whole batch is concerned
            except asyncpg.UniqueViolationError as exc:
                # another node committed the same key first: run the operation again, it now
                # sees that row (a repeat, a conflict) and answers as on one node
                await conn.execute("ROLLBACK TO SAVEPOINT op")
                tx.restore(mark)
                if tries == 2:
                    return False, StoreError(f"the store refused a write: {exc}")
            except asyncpg.PostgresError as exc:
                await conn.execute("ROLLBACK TO SAVEPOINT op")
                tx.restore(mark)
                _log.error("store_operation_failed", error=str(exc))
                return False, StoreError(f"the store refused a write: {exc}")
            except Exception as exc:
                await conn.execute("ROLLBACK TO SAVEPOINT op")
                tx.restore(mark)
                return False, exc
        raise AssertionError("unreachable")


# ----------------------------------------------------------------- the backend


async def _keep_session(_conn: Any) -> None:
    """A pool connection goes back as it is (asyncpg still rolls back an open transaction)."""


class PostgresBackend(BackendBase):
    """A PostgreSQL database shared by every node: pool, writer, LISTEN, parts."""

    dialect = DIALECT

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.target = parse_url(settings.store)
        self.node = uuid.uuid4().hex[:12]
        self._queries = Queries(DIALECT, qmarks)
        self._pool: Any = None
        self._reader: PgReader | None = None
        self.writer: PgWriter | None = None
        self._listen: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._init_mail()

    # ----------------------------------------------------------------- lifecycle

    def _name(self, role: str) -> str:
        return f"axis/{self.node}/{role}"

    async def connect(self, role: str = "writer") -> Any:
        try:
            return await asyncpg.connect(
                self.target.dsn,
                server_settings=server_settings(self.target, self._name(role)),
                timeout=10,
            )
        except (*LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot reach PostgreSQL at {self.target.safe}: {exc}") from exc

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.target.dsn,
                min_size=1,
                max_size=10,
                server_settings=server_settings(self.target, self._name("read")),
                timeout=10,
                # reads change no session state (no SET, LISTEN or advisory lock): skip the
                # reset query asyncpg otherwise sends on every release, a round trip each
                reset=_keep_session,
            )
        except (*LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot reach PostgreSQL at {self.target.safe}: {exc}") from exc
        self._reader = PgReader(self._pool, self._queries)
        self.writer = PgWriter(
            self.connect,
            self._queries,
            self.settings.group_commit_max,
            self.node,
            self._wake,
            audit=self.settings.audit_events,
        )
        await self.writer.start()
        self._listen = asyncio.create_task(self._listen_forever(), name="axis-pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10)

    async def close(self) -> None:
        if self._listen is not None:
            self._listen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen
        if self.writer is not None:
            await self.writer.stop()
        if self._pool is not None:
            with contextlib.suppress(*LOST, asyncpg.PostgresError, TimeoutError):
                await asyncio.wait_for(self._pool.close(), 10)
        self._release_waiters()

    @contextlib.asynccontextmanager
    async def long_reads(self) -> AsyncIterator[PgReader]:
        if self._pool is None:
            raise StoreError("the store is not open")
        try:
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                yield PgReader(conn, self._queries)
        except (*LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"the store could not read: {exc}") from exc

    def write(self, op: Op[T], *, message: NewMessage | None = None) -> Awaitable[T]:
        if self.writer is None:
            raise StoreError("the store is not open")
        return self.writer.submit(op, message)

    # ----------------------------------------------------------------- schema

    async def prepare(self) -> None:
        schema = self.target.schema
        if schema and self._pool is not None:
            async with self._pool.acquire() as conn:
                # IF NOT EXISTS is not safe against another node doing it at the same moment
                with contextlib.suppress(
                    asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError
                ):
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')

    async def apply_migration(self, tx: Tx, sql: str) -> None:
        assert isinstance(tx, PgTx)
        await tx.conn.execute(sql)

    # ----------------------------------------------------------------- messages and bodies

    async def insert_message(self, tx: Tx, message: NewMessage) -> bool:
        assert isinstance(tx, PgTx)
        # the whole message in one statement (or in the batch's one); a unique index that
        # refuses it (the same bytes or DocumentId, from this batch, an earlier one or another
        # node's) makes it insert nothing
        stored = tx.prefetched.pop(message.id, None)
        if stored is None:
            deliveries = list(message.delivery_ids.items())
            stored = bool(
                await tx.value(
                    "message_insert_all",
                    *message_columns(message),
                    DeliveryState.QUEUED,
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
            )
        if stored and message.body is None and message.body_file is not None:
            parts = await self._store_parts(tx, message.id, message.body_file)
            await tx.run("message_parts_set", parts, message.id)
        return stored

    async def _store_parts(self, tx: PgTx, message_id: str, path: Path) -> int:
        """Copy a large body into ``message_parts``, one part in memory at a time."""
        try:
            fh = await asyncio.to_thread(path.open, "rb")
        except OSError as exc:  # not the engine's fault: this operation fails, not the batch
            raise StoreError(f"message {message_id}: cannot read its body file: {exc}") from exc
        part = 0
        try:
            while chunk := await asyncio.to_thread(fh.read, PART_BYTES):
                await tx.run("message_part_insert", message_id, part, chunk)
                part += 1
        finally:
            await asyncio.to_thread(fh.close)
        return part

    def _cache_path(self, sha256: str) -> Path:
        return self.settings.blob_dir / sha256[:2] / sha256

    async def body_path(self, message_id: str, sha256: str, ref: Any) -> Path | None:
        """This node's cached copy of a large body, else fetched part by part.

        The copy is checked against its SHA-256 before it is used; it is a cache, safe to
        delete at any time.
        """
        if not ref:
            return None
        target = self._cache_path(sha256)
        if target.exists():
            return target
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.settings.tmp_dir / f"{sha256}.{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for part in range(int(ref)):
                    data = await self.read.value("message_part", message_id, part)
                    if data is None:
                        raise StoreError(f"message {message_id}: body part {part} is missing")
                    digest.update(data)
                    await asyncio.to_thread(out.write, data)
            if digest.hexdigest() != sha256:
                raise StoreError(f"message {message_id}: the stored body does not match its digest")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    async def drop_body(self, tx: Tx, message_id: str, sha256: str, ref: Any) -> None:
        await tx.run("message_parts_delete", message_id)
        await tx.run("purged_blob_insert", sha256, tx.at)

    async def sweep_bodies(self, grace: float) -> int:
        """Delete this node's cached copies of purged large bodies that no kept message has.

        A copy written or used within ``grace`` seconds is left for a later run: an intake
        may be about to store those bytes again.
        """
        moment = timeutil.now()
        deleted = 0
        for (sha256,) in await self.read.all("purged_blobs_unused"):
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

        async def forget(tx: Tx) -> None:
            await tx.run("purged_blobs_forget_before", forget_before)

        await self.write(forget)
        return deleted

    # ----------------------------------------------------------------- waiting for mail

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        node, _, organs = payload.partition(":")
        if node != self.node and organs:  # our own commits woke our waiters already
            self._wake(organs.split(","))

    async def _listen_forever(self) -> None:
        """LISTEN on one connection; after a reconnection wake every waiter (mail may have
        come while nobody listened: a woken long-poll just reads its inbox again)."""
        delay = 0.5
        first = True
        while True:
            conn = None
            try:
                conn = await self.connect("listen")
                lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

                def gone(_c: Any, lost: asyncio.Future[None] = lost) -> None:
                    if not lost.done():
                        lost.set_result(None)

                conn.add_termination_listener(gone)
                await conn.add_listener(CHANNEL, self._on_notify)
                self._listening.set()
                if not first:
                    _log.info("store_listen_resumed")
                    self._wake(list(self._waiters))
                first = False
                delay = 0.5
                while not lost.done():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(lost), 15)
                    if not lost.done():
                        await conn.execute("SELECT 1")  # notices a half-open connection
            except (StoreError, *LOST, asyncpg.PostgresError) as exc:
                self._listening.clear()
                _log.warning("store_listen_lost", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                self._listening.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    # ----------------------------------------------------------------- the rest

    def describe(self) -> dict[str, Any]:
        return {
            "store": "postgresql",
            "url": self.target.safe,
            "where": self.target.safe,
            "listening": self._listening.is_set(),
        }
