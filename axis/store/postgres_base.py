"""The shared engine's machinery: asyncpg connections, batched writes, one audit chain, NOTIFY.

It mirrors ``sqlite_base`` so that the operations read alike in both backends:

- **One writer per process.** Every write is an async function ``op(tx)``; a single writer
  task takes whatever requests are waiting (at most ``min(AXIS_GROUP_COMMIT_MAX, 64)``), runs
  them inside one transaction on one connection, and commits once (``synchronous_commit=on``:
  one WAL flush for the lot). A request is answered only after that COMMIT. Savepoints cost a
  round trip each, so a batch first runs without them; only if one of its operations fails
  (a 409, a race lost) is the whole batch run again with one savepoint per operation, so
  that the failure undoes that operation alone. At most 64 a batch because every savepoint
  that writes takes a subtransaction id, and past 64 in one transaction PostgreSQL's
  snapshots overflow to ``pg_subtrans`` and every reader on the engine slows down.
- **One audit chain across nodes.** Operations append events to ``tx``; they are hashed and
  written at the end of the batch, after locking the one-row ``audit_head`` table
  (``FOR UPDATE``), which is held until COMMIT. Batches of every node therefore append in
  turn and hashes follow commit order, while the operations themselves (the costly part) run
  in parallel on every node. An event's time never goes back along the chain.
- **Races between nodes** are settled by the engine: a unique index that another node's
  transaction fills first raises ``UniqueViolationError`` in the operation, which is then run
  once more in a fresh savepoint and finds the committed row (so a duplicate gets the same
  ``200``/``409`` as on one node); a deadlock or serialisation failure re-runs the whole batch.
- **Long-polls and push workers on every node** learn of new mail by LISTEN/NOTIFY: an
  operation names the agencies that got mail (``tx.notify``), one ``pg_notify`` per batch
  carries them, delivered by the engine at COMMIT; each node listens on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import threading
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson

from axis import audit, log, timeutil
from axis.audit import Event
from axis.config import Settings
from axis.errors import StoreError
from axis.model import InitReport
from axis.registry import Agency
from axis.store.mail import MailWaiting

T = TypeVar("T")
_log = log.get("axis.store")

CHANNEL = "axis_mail"
MAX_BATCH = 64  # savepoints per transaction before snapshots overflow (see the module doc)
PART_BYTES = 1 << 20  # large bodies are stored and read in parts of this size
_NOTIFY_BYTES = 7000  # a NOTIFY payload must stay under 8000 bytes
_BATCH_RETRIES = 5


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
        (
            "postgresql",
            parts.netloc,
            parts.path,
            urllib.parse.urlencode(kept),
            parts.fragment,
        )
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


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("axis.store") / "sql" / "postgres"
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def rowcount(status: str) -> int:
    """The number of rows an ``UPDATE n`` / ``DELETE n`` / ``INSERT 0 n`` status names."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


# ----------------------------------------------------------------- the write transaction


@dataclass(frozen=True, slots=True)
class _Mark:
    events: int
    written: int
    head: tuple[int, str, str] | None
    notify: int


_WRITE_EVENTS = (
    "WITH ev AS (INSERT INTO audit_events (seq, at, type, actor, message_id, document_id,"
    " from_id, to_id, detail, hash) SELECT * FROM unnest($1::bigint[], $2::text[],"
    " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
    " $10::text[])), hd AS (UPDATE audit_head SET seq = $11, hash = $12, at = $13"
    " WHERE id = 1) SELECT count(pg_notify($14, p)) FROM unnest($15::text[]) AS p"
)


class PgTx:
    """What one write operation sees: the connection, the batch's time, the audit chain.

    ``event`` and ``notify`` only note what to write; the batch writes it all at its end
    (``finish``) with the chain head locked. ``head`` writes what is noted so far and
    returns the head, for an operation that must know it (a checkpoint).
    """

    def __init__(self, conn: Any, node: str) -> None:
        self.conn = conn
        self.at = timeutil.fmt(timeutil.now())
        self._node = node
        self._events: list[Event] = []
        self._written = 0
        self._head: tuple[int, str, str] | None = None  # (seq, hash, at) once locked
        self._notify: list[str] = []
        self.prefetched: dict[Any, Any] = {}  # results of ``Bulk`` statements, by key

    def event(self, event: Event) -> None:
        """Append an audit event, chained to the last, in this same transaction."""
        self._events.append(event)

    def notify(self, organ_ids: Iterable[str]) -> None:
        """Tell every node, at COMMIT, that these agencies got mail."""
        self._notify.extend(organ_ids)

    async def head(self) -> tuple[int, str]:
        """The chain's head with every event noted so far written (locks the head)."""
        await self._flush(notify=False)
        assert self._head is not None
        return self._head[0], self._head[1]

    def mark(self) -> _Mark:
        return _Mark(len(self._events), self._written, self._head, len(self._notify))

    def restore(self, mark: _Mark) -> None:
        """Forget what an operation noted, as ``ROLLBACK TO SAVEPOINT`` forgot what it wrote."""
        del self._events[mark.events :]
        del self._notify[mark.notify :]
        self._written = mark.written
        self._head = mark.head

    async def finish(self) -> None:
        """Write what the batch noted: its events with the head locked, its notifications."""
        if self._written < len(self._events):
            await self._flush(notify=True)
        elif self._notify:
            await self.conn.execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                CHANNEL,
                _payloads(self._node, self._notify),
            )

    async def _flush(self, *, notify: bool) -> None:
        if self._head is None:
            row = await self.conn.fetchrow(
                "SELECT seq, hash, at FROM audit_head WHERE id = 1 FOR UPDATE"
            )
            self._head = (int(row[0]), str(row[1]), str(row[2]))
        seq, prev, last_at = self._head
        at = max(self.at, last_at)  # another node's batch may have committed a later time
        columns: list[list[Any]] = [[] for _ in range(10)]
        for event in self._events[self._written :]:
            seq += 1
            content = audit.canonical(seq, at, event)
            prev = audit.chain_hash(prev, content)
            for column, value in zip(
                columns,
                (
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
                ),
                strict=True,
            ):
                column.append(value)
        payloads = _payloads(self._node, self._notify) if notify else []
        await self.conn.fetchval(_WRITE_EVENTS, *columns, seq, prev, at, CHANNEL, payloads)
        self._head = (seq, prev, at)
        self._written = len(self._events)
        if notify:
            self._notify.clear()


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


PgOp = Callable[[PgTx], Awaitable[T]]


@dataclass(slots=True)
class _Request:
    op: Callable[[PgTx], Awaitable[Any]]
    future: asyncio.Future[Any]
    bulk: Bulk | None = None


@dataclass(frozen=True, slots=True)
class Bulk:
    """One statement that does the main work of many operations of a batch in one round trip.

    Every operation of a batch costs at least one round trip, and on a busy node each one
    waits for a turn of the event loop (a loop turn that verifies signatures lasts
    milliseconds). Operations that carry a ``Bulk`` with the same ``run`` are handed to it
    together, before the batch's operations run: ``run(tx, items)`` leaves each item's result
    in ``tx.prefetched``, where the operation finds it instead of doing its own statement. In
    a batch run again with savepoints (one of its operations failed) every operation does its
    own statement.
    """

    run: Callable[[PgTx, list[Any]], Awaitable[None]]
    item: Any


class _Again(Exception):
    """Nothing of the batch was committed and it may simply run again: the engine undid the
    transaction (deadlock, serialisation failure), or the connection went before COMMIT."""

    def __init__(self, cause: BaseException, *, reconnect: bool) -> None:
        super().__init__(str(cause))
        self.reconnect = reconnect


class _Failed(Exception):
    """An operation of a batch run without savepoints failed: run it again with them."""


async def _run_bulks(tx: PgTx, batch: list[_Request]) -> None:
    """Run the batch's ``Bulk`` statements, one per kind shared by two operations or more."""
    groups: dict[Any, list[Any]] = defaultdict(list)
    for request in batch:
        if request.bulk is not None:
            groups[request.bulk.run].append(request.bulk.item)
    for run, items in groups.items():
        if len(items) < 2:
            continue
        try:
            await run(tx, items)
        except (*_LOST, asyncpg.TransactionRollbackError):
            raise
        except Exception as exc:
            raise _Failed from exc


# the connection is gone (or going): the client side noticed, or the server said so
_LOST = (
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # the protocol lost its footing: a new connection resets it
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    OSError,
)


class PgWriter:
    """One task, one connection, one transaction per batch of waiting requests."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], max_batch: int, node: str) -> None:
        self._connect = connect
        self._max_batch = max(1, min(max_batch, MAX_BATCH))
        self._node = node
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
            with contextlib.suppress(*_LOST, asyncpg.PostgresError):
                await self._conn.close(timeout=5)
            self._conn = None

    def submit(
        self, op: Callable[[PgTx], Awaitable[T]], bulk: Bulk | None = None
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(op, future, bulk))
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
            try:
                outcomes = await self._commit(batch)
            except Exception as exc:  # the writer must outlive any one batch
                _log.exception("store_commit_failed", batch=len(batch))
                outcomes = [(False, StoreError(f"the store could not commit: {exc}"))] * len(batch)
            self.batches += 1
            self.writes += len(batch)
            for request, (ok, value) in zip(batch, outcomes, strict=True):
                if not request.future.done():
                    if ok:
                        request.future.set_result(value)
                    else:
                        request.future.set_exception(value)
            if stopping:
                return

    async def _commit(self, batch: list[_Request]) -> list[tuple[bool, Any]]:
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
                    return [(False, StoreError(f"the store could not commit: {again}"))] * len(
                        batch
                    )
                pause = (0.1 if again.reconnect else 0.01) * 2**attempt
                await asyncio.sleep(random.uniform(pause / 2, pause))  # noqa: S311
            except StoreError as exc:  # could not connect
                _log.error("store_commit_failed", error=str(exc), batch=len(batch))
                return [(False, exc)] * len(batch)
            except (*_LOST, asyncpg.PostgresError) as exc:
                # lost during COMMIT: whether it took is unknown, so the callers get an error
                # and may retry (a package sent again is recognised by its digest)
                _log.error("store_commit_failed", error=str(exc), batch=len(batch))
                self._reset()
                return [(False, StoreError(f"the store could not commit: {exc}"))] * len(batch)
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _transaction(self, batch: list[_Request]) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction; first without savepoints (a round trip each),
        and only when one of its operations fails, all of it again with them."""
        if len(batch) > 1:
            try:
                return await self._attempt(batch, savepoints=False)
            except _Failed:
                pass
        return await self._attempt(batch, savepoints=True)

    async def _attempt(self, batch: list[_Request], *, savepoints: bool) -> list[tuple[bool, Any]]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        conn = self._conn
        tx = PgTx(conn, self._node)
        committing = False
        try:
            await conn.execute("BEGIN; SAVEPOINT op" if savepoints else "BEGIN")
            if not savepoints:
                await _run_bulks(tx, batch)
            outcomes = []
            for index, request in enumerate(batch):
                if not savepoints:
                    try:
                        outcomes.append((True, await request.op(tx)))
                    except (*_LOST, asyncpg.TransactionRollbackError):
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
        except _LOST as exc:
            if committing:
                raise
            raise _Again(exc, reconnect=True) from exc
        except BaseException:
            await self._rollback(conn)
            raise
        return outcomes

    async def _rollback(self, conn: Any) -> None:
        if not conn.is_closed() and conn.is_in_transaction():
            with contextlib.suppress(*_LOST, asyncpg.PostgresError):
                await conn.execute("ROLLBACK")

    async def _one(self, conn: Any, tx: PgTx, request: _Request) -> tuple[bool, Any]:
        mark = tx.mark()
        for tries in (1, 2):
            try:
                return True, await request.op(tx)
            except (*_LOST, asyncpg.TransactionRollbackError):
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


# ----------------------------------------------------------------- blocking SQL for tests


class _Rows:
    """What ``SyncSql.execute`` returns: a cursor-like list of tuples."""

    def __init__(self, rows: list[tuple[Any, ...]], count: int) -> None:
        self._rows = rows
        self.rowcount = count

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


def qmarks(sql: str) -> str:
    """``?`` placeholders (SQLite's) as ``$1, $2, …`` (PostgreSQL's), quoted text left alone."""
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


class SyncSql:
    """A blocking connection with SQLite's ``execute(sql, params)`` shape: tests only.

    The shared store contract tests look into the tables with ``store.raw_connection()``;
    this gives them the same calls on PostgreSQL, run on a connection of its own in a thread
    of its own (so it may be called from inside the event loop).
    """

    def __init__(self, target: Target) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn = self._call(
            asyncpg.connect(target.dsn, server_settings=server_settings(target))
        )

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        text = qmarks(sql)
        if text.lstrip().upper().startswith(("SELECT", "WITH", "VALUES")):
            rows = self._call(self._conn.fetch(text, *params))
            return _Rows([tuple(row) for row in rows], len(rows))
        status = self._call(self._conn.execute(text, *params))
        return _Rows([], rowcount(status))

    def commit(self) -> None:
        """Every statement commits by itself (as SQLite's autocommit connection does)."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


# ----------------------------------------------------------------- the base of the store


async def _keep_session(_conn: Any) -> None:
    """A pool connection goes back as it is (asyncpg still rolls back an open transaction)."""


class PostgresBase(MailWaiting):
    """Connections, the writer, migrations, NOTIFY and waiters: what every operation builds on."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._target = parse_url(settings.store)
        self._node = uuid.uuid4().hex[:12]
        self._pool: Any = None
        self._writer: PgWriter | None = None
        self._init_mail()
        self._listen: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._sync: SyncSql | None = None

    # ----------------------------------------------------------------- lifecycle

    def _name(self, role: str) -> str:
        return f"axis/{self._node}/{role}"

    async def _connect(self, role: str = "writer") -> Any:
        try:
            return await asyncpg.connect(
                self._target.dsn,
                server_settings=server_settings(self._target, self._name(role)),
                timeout=10,
            )
        except (*_LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot reach PostgreSQL at {self._target.safe}: {exc}") from exc

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._target.dsn,
                min_size=1,
                max_size=10,
                server_settings=server_settings(self._target, self._name("read")),
                timeout=10,
                # reads change no session state (no SET, LISTEN or advisory lock): skip the
                # reset query asyncpg otherwise sends on every release, a round trip each
                reset=_keep_session,
            )
        except (*_LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot reach PostgreSQL at {self._target.safe}: {exc}") from exc
        self._writer = PgWriter(self._connect, self._settings.group_commit_max, self._node)
        await self._writer.start()
        self._listen = asyncio.create_task(self._listen_forever(), name="axis-pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10)

    async def close(self) -> None:
        if self._listen is not None:
            self._listen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen
        if self._writer is not None:
            await self._writer.stop()
        if self._pool is not None:
            with contextlib.suppress(*_LOST, asyncpg.PostgresError, TimeoutError):
                await asyncio.wait_for(self._pool.close(), 10)
        if self._sync is not None:
            await asyncio.to_thread(self._sync.close)
        self._release_waiters()

    @property
    def _r(self) -> Any:
        """The read pool (``fetch``, ``fetchrow``, ``fetchval`` each on a free connection)."""
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    def _write(
        self, op: Callable[[PgTx], Awaitable[T]], bulk: Bulk | None = None
    ) -> asyncio.Future[T]:
        if self._writer is None:
            raise StoreError("the store is not open")
        return self._writer.submit(op, bulk)

    async def _read(self, method: str, sql: str, *args: Any) -> Any:
        """One read on the pool, with driver errors translated at the boundary."""
        try:
            return await getattr(self._r, method)(sql, *args)
        except (*_LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"the store could not read: {exc}") from exc

    async def _schema_version(self) -> int:
        try:
            value = await self._r.fetchval("SELECT value FROM meta WHERE key='schema_version'")
        except asyncpg.UndefinedTableError:
            return 0
        except (*_LOST, asyncpg.PostgresError) as exc:
            raise StoreError(f"the store could not read: {exc}") from exc
        return int(value) if value is not None else 0

    async def initialize(self, agencies: Sequence[Agency]) -> InitReport:
        migrations = _migrations()
        schema = self._target.schema
        if schema:
            async with self._r.acquire() as conn:
                # IF NOT EXISTS is not safe against another node doing it at the same moment
                with contextlib.suppress(
                    asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError
                ):
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        before_box: list[int] = []

        async def migrate(tx: PgTx) -> int:
            # one node migrates at a time; the others wait, then find nothing left to do
            await tx.conn.execute("SELECT pg_advisory_xact_lock(hashtext('axis_migrate'))")
            exists = await tx.conn.fetchval("SELECT to_regclass('meta') IS NOT NULL")
            version = 0
            if exists:
                raw = await tx.conn.fetchval("SELECT value FROM meta WHERE key='schema_version'")
                version = int(raw) if raw is not None else 0
            before_box.append(version)
            for number, sql in migrations:
                if number > version:
                    await tx.conn.execute(sql)
                    version = number
            await tx.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', $1)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(version),
            )
            present = {row[0] for row in await tx.conn.fetch("SELECT organ_id FROM agencies")}
            added = 0
            for agency in agencies:
                if agency.organ_id not in present:
                    await upsert_agency(tx, agency)
                    present.add(agency.organ_id)
                    added += 1
            if added:
                await bump_registry(tx)
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
            created=bool(before_box) and before_box[-1] == 0,
            agencies_added=added,
            schema_version=migrations[-1][0],
        )

    async def check_schema(self) -> int:
        """The schema version in the engine; raises when it is older than this code expects."""
        version = await self._schema_version()
        latest = _migrations()[-1][0]
        if version != latest:
            raise StoreError(
                f"schema version {version} in {self._target.safe}, this axis needs {latest}:"
                " run `axis init --store …`"
            )
        return version

    def stats(self) -> dict[str, float]:
        writer = self._writer
        return {
            "axis_store_commits_total": float(writer.batches if writer else 0),
            "axis_store_writes_total": float(writer.writes if writer else 0),
        }

    async def healthy(self) -> dict[str, Any]:
        async def probe(tx: PgTx) -> None:
            await tx.conn.execute("SELECT 1")

        await self._write(probe)
        return {
            "store": "postgresql",
            "url": self._target.safe,
            "schema": await self._schema_version(),
            "listening": self._listening.is_set(),
        }

    # ----------------------------------------------------------------- waiting for mail

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        node, _, organs = payload.partition(":")
        if node != self._node and organs:  # our own accepts woke our waiters already
            self._wake(organs.split(","))

    async def _listen_forever(self) -> None:
        """LISTEN on one connection; after a reconnection wake every waiter (mail may have
        come while nobody listened: a woken long-poll just reads its inbox again)."""
        delay = 0.5
        first = True
        while True:
            conn = None
            try:
                conn = await self._connect("listen")
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
            except (StoreError, *_LOST, asyncpg.PostgresError) as exc:
                self._listening.clear()
                _log.warning("store_listen_lost", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                self._listening.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    # ----------------------------------------------------------------- large bodies

    def _cache_path(self, sha256: str) -> Path:
        return self._settings.blob_dir / sha256[:2] / sha256

    async def _body_file(self, message_id: str, sha256: str, parts: int) -> Path:
        """A local file with a large body: this node's cached copy, else fetched part by part.

        The copy is checked against its SHA-256 before it is used; it is a cache, safe to
        delete at any time.
        """
        target = self._cache_path(sha256)
        if target.exists():
            return target
        self._settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._settings.tmp_dir / f"{sha256}.{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for part in range(parts):
                    data = await self._read(
                        "fetchval",
                        "SELECT data FROM message_parts WHERE message_id = $1 AND part = $2",
                        message_id,
                        part,
                    )
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

    # ----------------------------------------------------------------- for tests and tools

    def raw_connection(self) -> SyncSql:
        """A blocking connection on the same tables, for tests and diagnostics only."""
        if self._sync is None:
            self._sync = SyncSql(self._target)
        return self._sync


# ----------------------------------------------------------------- shared by the areas


async def upsert_agency(tx: PgTx, agency: Agency) -> None:
    """Write one agency and exactly its certificates (as ``sqlite_base.upsert_agency``)."""
    await tx.conn.execute(
        "INSERT INTO agencies (organ_id, name, kind, parent, status, successor, endpoint,"
        " push_secret, allow_sha1, confirmed, source, updated_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (organ_id) DO UPDATE SET"
        " name = excluded.name, kind = excluded.kind, parent = excluded.parent,"
        " status = excluded.status, successor = excluded.successor,"
        " endpoint = excluded.endpoint, push_secret = excluded.push_secret,"
        " allow_sha1 = excluded.allow_sha1, confirmed = excluded.confirmed,"
        " source = excluded.source, updated_at = excluded.updated_at",
        agency.organ_id,
        agency.name,
        agency.kind,
        agency.parent,
        agency.status,
        agency.successor,
        agency.endpoint,
        agency.push_secret,
        agency.allow_sha1,
        agency.confirmed,
        agency.source,
        tx.at,
    )
    await tx.conn.execute("DELETE FROM certificates WHERE organ_id = $1", agency.organ_id)
    if agency.certificates:
        await tx.conn.executemany(
            "INSERT INTO certificates (organ_id, sha256, pem, not_before, not_after)"
            " VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
            [
                (
                    agency.organ_id,
                    cert.sha256,
                    cert.pem,
                    timeutil.fmt(cert.not_before),
                    timeutil.fmt(cert.not_after),
                )
                for cert in agency.certificates
            ],
        )


async def bump_registry(tx: PgTx) -> None:
    await tx.conn.execute(
        "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'registry_version'"
    )


async def lock_registry(tx: PgTx) -> None:
    """Serialise registry changes across nodes: link checks then see every committed change."""
    await tx.conn.execute("SELECT 1 FROM meta WHERE key = 'registry_version' FOR UPDATE")
