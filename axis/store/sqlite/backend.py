"""The embedded default engine: one SQLite file in WAL mode, writes batched into group commits.

Every write goes through one writer per process that takes whatever requests are waiting,
runs each in its own savepoint inside one transaction, commits once (one fsync for the lot,
since ``synchronous=FULL``) and then answers them all. Under load that turns thousands of
fsyncs into tens; an idle axis still commits a lone request at once.

The statements of a batch run on the event loop's thread: they take microseconds, and running
them there avoids handing the GIL back and forth with a writer thread on every statement
(which cost more than the statements). Only what may wait, taking the write lock (another
process may hold it) and the COMMIT (the fsync), goes to a thread; requests arriving
meanwhile form the next batch. Processes sharing the file (``--workers``, ``axis worker``, the
CLI) queue for the write lock on an ``flock`` of a lock file beside the database before
``BEGIN IMMEDIATE``: the kernel wakes the next writer the moment the lock is released, where
SQLite's own busy handler would have it sleep 1, 2, 5, 10… ms between tries.

Reads for requests run on the event loop's own connection: WAL readers never wait for the
writer, and an indexed lookup costs less than a hop to a thread. Long reads (audit scans,
exports, verification, retention) go to an ``aiosqlite`` connection of their own in a worker
thread, on one snapshot. Large bodies are files in ``blobs/`` (``axis.blobs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
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
DIALECT = "sqlite"


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _args(args: Sequence[Any]) -> tuple[Any, ...]:
    """A list argument is a list parameter: SQLite takes it as JSON (``json_each(?)``)."""
    return tuple(orjson.dumps(a).decode() if isinstance(a, list) else a for a in args)


class SqliteReader:
    """Reads on one connection, on the event loop (short, indexed queries)."""

    def __init__(self, conn: sqlite3.Connection, queries: Queries) -> None:
        self._conn = conn
        self._q = queries

    def _execute(self, query: QueryKey, args: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._conn.execute(self._q[query], _args(args))
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the store could not read: {exc}") from exc

    async def one(self, query: QueryKey, *args: Any) -> Row | None:
        rows = self._execute(query, args).fetchall()
        return rows[0] if rows else None

    async def all(self, query: QueryKey, *args: Any) -> list[Row]:
        return self._execute(query, args).fetchall()

    async def value(self, query: QueryKey, *args: Any) -> Any:
        row = await self.one(query, *args)
        return row[0] if row else None


class SqliteTx(EventSwitch, SqliteReader):
    """What one write operation sees: the connection, the batch's time, the audit head.

    Events are chained as they are appended (the head is read once per batch) and inserted
    by ``flush`` in one statement after each operation (a fan-out has hundreds).
    """

    def __init__(self, conn: sqlite3.Connection, queries: Queries, *, audit: bool) -> None:
        EventSwitch.__init__(self, audit=audit)
        SqliteReader.__init__(self, conn, queries)
        self.at = timeutil.fmt(timeutil.now())
        self._head: tuple[int, str] | None = None
        self._rows: list[tuple[Any, ...]] = []  # events appended, inserted by ``flush``
        self.notified: list[str] = []

    def _execute(self, query: QueryKey, args: Sequence[Any]) -> sqlite3.Cursor:
        return self._conn.execute(self._q[query], _args(args))  # errors go to the writer

    async def run(self, query: QueryKey, *args: Any) -> int:
        return int(self._execute(query, args).rowcount)

    async def many(self, query: QueryKey, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(self._q[query], [_args(row) for row in rows])

    def notify(self, organ_ids: Iterable[str]) -> None:
        self.notified.extend(organ_ids)

    def _append(self, event: Event) -> None:
        if self._head is None:
            row = self._conn.execute(self._q["audit_head_at"]).fetchone()
            self._head = (row[0], row[1]) if row else (0, audit.GENESIS)
            # event times never go back along the chain, even if the clock steps back
            if row and row[2] > self.at:
                self.at = row[2]
        seq = self._head[0] + 1
        content = audit.canonical(seq, self.at, event)
        digest = audit.chain_hash(self._head[1], content)
        self._rows.append(
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
            )
        )
        self._head = (seq, digest)

    def flush(self) -> None:
        """Insert the events appended so far, all in one statement."""
        if self._rows:
            self._conn.executemany(self._q["audit_insert"], self._rows)
            self._rows.clear()

    def mark(self) -> tuple[tuple[int, str] | None, int]:
        return self._head, len(self.notified)

    def restore(self, mark: tuple[tuple[int, str] | None, int]) -> None:
        """Forget what an operation that failed appended, as its savepoint forgot its rows."""
        self._rows.clear()
        self._head, notified = mark
        del self.notified[notified:]


Request = tuple[Callable[[SqliteTx], Awaitable[Any]], asyncio.Future[Any]]


class GroupWriter:
    """One connection, one transaction per batch of waiting requests, one fsync per batch."""

    def __init__(
        self,
        path: Path,
        queries: Queries,
        max_batch: int,
        wake: Callable[[Iterable[str]], None],
        *,
        audit: bool = True,
    ) -> None:
        self._path = path
        self._queries = queries
        self._audit = audit
        self._max_batch = max_batch
        self._wake = wake
        self._pending: list[Request] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._stopping = False
        self.batches = 0
        self.writes = 0

    def start(self) -> None:
        self._conn = connect(self._path)
        self._lock_fd = os.open(f"{self._path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="axis-sqlite-writer")

    async def stop(self) -> None:
        """Commit what is pending, then close."""
        if self._task is not None and self._wakeup is not None:
            # not cancelled: a COMMIT running in a thread must finish before the close
            self._stopping = True
            self._wakeup.set()
            await self._task
            self._task = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def submit(self, op: Callable[[SqliteTx], Awaitable[T]]) -> asyncio.Future[T]:
        if self._wakeup is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush()
        await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._commit(batch)

    def _begin(self) -> None:
        """In a thread: queue for the other processes' writers, then take SQLite's write lock."""
        assert self._conn is not None
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            raise

    async def _commit(self, batch: list[Request]) -> None:
        conn = self._conn
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        notified: list[str] = []
        locked = False
        try:
            await asyncio.to_thread(self._begin)
            locked = True
            try:
                tx = SqliteTx(conn, self._queries, audit=self._audit)
                for op, _ in batch:
                    mark = tx.mark()
                    conn.execute("SAVEPOINT op")
                    try:
                        result = await op(tx)
                        tx.flush()
                        outcomes.append((True, result))
                        conn.execute("RELEASE op")
                    except Exception as exc:
                        if isinstance(exc, sqlite3.Error) and not conn.in_transaction:
                            raise  # SQLite rolled the whole batch back (disk full, I/O error)
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        tx.restore(mark)
                        if isinstance(exc, sqlite3.Error):
                            exc = StoreError(f"the store could not write: {exc}")
                        outcomes.append((False, exc))
                await asyncio.to_thread(conn.execute, "COMMIT")
                notified = tx.notified
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            _log.error("store_commit_failed", error=str(exc), batch=len(batch))
            error = StoreError(f"the store could not commit: {exc}")
            outcomes = [(False, error)] * len(batch)
        except BaseException as exc:
            # cancelled mid-batch (shutdown): the transaction is rolled back, tell the callers
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreError(f"the store is closing: {exc!r}"))
            raise
        finally:
            if locked and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self.batches += 1
        self.writes += len(batch)
        if notified:
            self._wake(dict.fromkeys(notified))
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


class SqliteBackend(BackendBase):
    """One SQLite file in the data directory: the group writer, the readers, the blobs."""

    dialect = DIALECT

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._path = settings.sqlite_path
        self._queries = Queries(DIALECT)
        self.writer: GroupWriter | None = None
        self._reader: SqliteReader | None = None
        self._conn: sqlite3.Connection | None = None
        self._watch: asyncio.Task[None] | None = None
        self._init_mail()

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        self.settings.data.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self._path)
        self._reader = SqliteReader(self._conn, self._queries)
        self.writer = GroupWriter(
            self._path,
            self._queries,
            self.settings.group_commit_max,
            self._wake,
            audit=self.settings.audit_events,
        )
        self.writer.start()
        self._watch = asyncio.create_task(self._watch_other_processes())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.writer is not None:
            await self.writer.stop()
        if self._conn is not None:
            self._conn.close()
        self._release_waiters()

    @contextlib.asynccontextmanager
    async def long_reads(self) -> AsyncIterator[LongReader]:
        try:
            conn = await aiosqlite.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"the store could not read: {exc}") from exc
        try:
            await conn.execute("PRAGMA query_only=ON")
            await conn.execute("PRAGMA busy_timeout=30000")
            await conn.execute("BEGIN")  # one snapshot, from the first read on
            yield LongReader(conn, self._queries)
        finally:
            with contextlib.suppress(sqlite3.Error):
                await conn.execute("COMMIT")
            await conn.close()

    def write(self, op: Op[T], *, message: NewMessage | None = None) -> Awaitable[T]:
        if self.writer is None:
            raise StoreError("the store is not open")
        return self.writer.submit(op)

    # ----------------------------------------------------------------- schema

    async def prepare(self) -> None:
        self.settings.data.mkdir(parents=True, exist_ok=True)

    async def apply_migration(self, tx: Tx, sql: str) -> None:
        assert isinstance(tx, SqliteTx)
        for statement in _statements(sql):
            tx._conn.execute(statement)

    # ----------------------------------------------------------------- messages and bodies

    async def insert_message(self, tx: Tx, message: NewMessage) -> bool:
        assert isinstance(tx, SqliteTx)
        body_file = str(message.body_file) if message.body_file is not None else None
        if not await tx.run("message_insert", *message_columns(message), body_file):
            return False
        await tx.many(
            "delivery_insert",
            [
                (delivery_id, message.id, delivered_to, message.kind, DeliveryState.QUEUED, tx.at)
                for delivered_to, delivery_id in message.delivery_ids.items()
            ],
        )
        if message.statuses:
            await tx.many(
                "status_insert",
                [
                    (
                        message.id,
                        s.doc_from,
                        s.document_id,
                        s.party,
                        s.code,
                        s.at,
                        message.received_at,
                    )
                    for s in message.statuses
                ],
            )
        if message.links:
            await tx.many(
                "link_insert",
                [(message.id, link.to_message, link.relation) for link in message.links],
            )
        return True

    async def body_path(self, message_id: str, sha256: str, ref: Any) -> Path | None:
        return Path(ref) if ref else None

    async def drop_body(self, tx: Tx, message_id: str, sha256: str, ref: Any) -> None:
        await tx.run("purged_blob_insert", sha256, tx.at)

    async def sweep_bodies(self, grace: float) -> int:
        """Delete the blob files of purged bodies that no kept message uses.

        A file is renamed aside before the last look, so an intake that finds it (and touches
        it) before the rename is seen by its time, and one that looks after finds no file and
        writes it again; it goes back in place when in doubt and is looked at on a later run.
        """
        moment = timeutil.now()
        since = timeutil.fmt(moment - timedelta(seconds=grace))
        pending = [r[0] for r in await self.read.all("purged_blobs_due", since)]
        if not pending:
            return 0
        now = moment.timestamp()
        settled: list[str] = []
        deleted = 0
        for sha256 in pending:
            path = self.settings.blob_dir / sha256[:2] / sha256
            if await self.read.one("blob_in_use", sha256) or not path.exists():
                settled.append(sha256)
                continue
            aside = path.with_name(f"{path.name}.purging")
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                settled.append(sha256)
                continue
            recent = os.stat(aside).st_mtime > now - grace
            if recent or await self.read.one("blob_in_use", sha256):
                os.replace(aside, path)
                if not recent:
                    settled.append(sha256)
                continue
            aside.unlink()
            deleted += 1
            settled.append(sha256)
        if settled:

            async def forget(tx: Tx) -> None:
                await tx.many("purged_blob_forget", [(s,) for s in settled])

            await self.write(forget)
        return deleted

    # ----------------------------------------------------------------- the rest

    def describe(self) -> dict[str, Any]:
        return {"store": "sqlite", "path": str(self._path), "where": str(self._path)}

    async def _watch_other_processes(self) -> None:
        """Wake long-polls when another process sharing the file commits.

        ``PRAGMA data_version`` changes only for commits made by other connections, and our own
        writer is one; so this also catches nothing twice that matters: a woken waiter just
        re-reads its inbox.
        """
        last = None
        while True:
            await asyncio.sleep(0.2)
            if not self._waiters or self._conn is None:
                continue
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if last is not None and version != last:
                self._wake(list(self._waiters))
            last = version


class LongReader:
    """Reads on an ``aiosqlite`` connection of their own (a worker thread), one snapshot."""

    def __init__(self, conn: aiosqlite.Connection, queries: Queries) -> None:
        self._conn = conn
        self._q = queries

    async def all(self, query: QueryKey, *args: Any) -> list[Row]:
        try:
            async with self._conn.execute(self._q[query], _args(args)) as cur:
                return list(await cur.fetchall())
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the store could not read: {exc}") from exc

    async def one(self, query: QueryKey, *args: Any) -> Row | None:
        rows = await self.all(query, *args)
        return rows[0] if rows else None

    async def value(self, query: QueryKey, *args: Any) -> Any:
        row = await self.one(query, *args)
        return row[0] if row else None


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (our files keep one ``;`` per statement end)."""
    # our migrations put no "--" or ";" inside string literals, so comments can go first
    bare = re.sub(r"--[^\n]*", "", sql)
    return [s.strip() for s in bare.split(";") if s.strip()]
