"""The SQLite backend with ``aiosqlite`` where the shipped one works on the event loop: an A/B.

The shipped ``axis.store.sqlite.backend.SqliteBackend`` reads for requests on a ``sqlite3``
connection on the event loop and runs each group commit's statements on the loop too, sending
only the write lock and the COMMIT (the fsync) to a thread; ``aiosqlite`` serves its long
reads only. Issue 14 asks for aiosqlite to be measured against that on the benchmark's read
and write paths. These are the two other designs, for ``bin/bench --sqlite-driver``:

- ``aiosqlite-reads`` (:class:`AioReadsBackend`): requests' reads go to an ``aiosqlite``
  connection (one worker thread; each read one hop there and back, ``execute_fetchall``);
  writes as shipped.
- ``aiosqlite-all`` (:class:`AioAllBackend`): the reads as above, and the group writer runs
  every statement of a batch (``BEGIN IMMEDIATE``, each savepoint, each operation's
  statements, the audit rows, ``COMMIT``) on an ``aiosqlite`` connection of its own. The
  batching, the savepoints and the cross-process ``flock`` are the shipped writer's; only
  where the statements run differs.

Nothing here is production code: ``bench.variant_server`` serves the app over one of these,
built exactly as ``axis serve`` builds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from axis import audit, log
from axis.config import Settings
from axis.errors import StoreError
from axis.store.backend import Queries, QueryKey, Row, Tx
from axis.store.sqlite.backend import (
    GroupWriter,
    Request,
    SqliteBackend,
    SqliteTx,
    _args,
    _statements,
)

T = TypeVar("T")
_log = log.get("axis.store")
DRIVERS = ("sqlite3", "aiosqlite-reads", "aiosqlite-all")
"""``sqlite3``: the shipped backend; the others as this module's docstring says."""


async def _connect(path: Path, *, query_only: bool) -> aiosqlite.Connection:
    """An ``aiosqlite`` connection set up as ``axis.store.sqlite.backend.connect`` sets up
    its ``sqlite3`` ones (WAL, ``synchronous=FULL``, a busy timeout, foreign keys)."""
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=30.0)
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA busy_timeout=30000",
        "PRAGMA foreign_keys=ON",
    ):
        await conn.execute(pragma)
    if query_only:
        await conn.execute("PRAGMA query_only=ON")
    return conn


class AioReader:
    """Requests' reads on an ``aiosqlite`` connection: one hop to its thread per query."""

    def __init__(self, conn: aiosqlite.Connection, queries: Queries) -> None:
        self._conn = conn
        self._q = queries

    async def all(self, query: QueryKey, *args: Any) -> list[Row]:
        try:
            return list(await self._conn.execute_fetchall(self._q[query], _args(args)))
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the store could not read: {exc}") from exc

    async def one(self, query: QueryKey, *args: Any) -> Row | None:
        rows = await self.all(query, *args)
        return rows[0] if rows else None

    async def value(self, query: QueryKey, *args: Any) -> Any:
        row = await self.one(query, *args)
        return row[0] if row else None


class AioReadsBackend(SqliteBackend):
    """The shipped backend with its serving reader on ``aiosqlite``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._aio_reads: aiosqlite.Connection | None = None

    async def open(self) -> None:
        await super().open()
        self._aio_reads = await _connect(self._path, query_only=True)
        self._reader = AioReader(self._aio_reads, self._queries)  # type: ignore[assignment]

    async def close(self) -> None:
        await super().close()
        if self._aio_reads is not None:
            await self._aio_reads.close()
            self._aio_reads = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "bench_driver": "aiosqlite-reads"}


# --------------------------------------------------------------------- the writer on aiosqlite


class AioTx(SqliteTx):
    """A batch's transaction on an ``aiosqlite`` connection: every statement one hop.

    A ``SqliteTx`` in type (the backend's ``insert_message`` asks for one), with each of its
    statements sent to the connection's thread. ``Tx.event`` is synchronous, so the audit
    chain's head is read once when the batch begins (``prime``) rather than at the first event.
    """

    def __init__(self, conn: aiosqlite.Connection, queries: Queries, *, audit: bool) -> None:
        super().__init__(None, queries, audit=audit)  # type: ignore[arg-type]
        self._aio = conn

    async def prime(self) -> None:
        if not self._audit:
            return
        rows = list(await self._aio.execute_fetchall(self._q["audit_head_at"]))
        row = rows[0] if rows else None
        self._head = (row[0], row[1]) if row else (0, audit.GENESIS)
        if row and row[2] > self.at:  # event times never go back along the chain
            self.at = row[2]

    async def one(self, query: QueryKey, *args: Any) -> Row | None:
        rows = await self.all(query, *args)
        return rows[0] if rows else None

    async def all(self, query: QueryKey, *args: Any) -> list[Row]:
        return list(await self._aio.execute_fetchall(self._q[query], _args(args)))

    async def value(self, query: QueryKey, *args: Any) -> Any:
        row = await self.one(query, *args)
        return row[0] if row else None

    async def run(self, query: QueryKey, *args: Any) -> int:
        cursor = await self._aio.execute(self._q[query], _args(args))
        return int(cursor.rowcount)

    async def many(self, query: QueryKey, rows: Sequence[Sequence[Any]]) -> None:
        await self._aio.executemany(self._q[query], [_args(row) for row in rows])

    def _append(self, event: audit.Event) -> None:
        assert self._head is not None, "prime() reads the chain's head when the batch begins"
        super()._append(event)

    def flush(self) -> None:
        raise AssertionError("AioTx.flush_rows is awaited instead")

    async def flush_rows(self) -> None:
        if self._rows:
            await self._aio.executemany(self._q["audit_insert"], self._rows)
            self._rows.clear()


class AioGroupWriter(GroupWriter):
    """The shipped group writer, its statements on an ``aiosqlite`` connection."""

    def __init__(
        self,
        path: Path,
        queries: Queries,
        max_batch: int,
        wake: Callable[[Iterable[str]], None],
        *,
        audit: bool = True,
    ) -> None:
        super().__init__(path, queries, max_batch, wake, audit=audit)
        self._aio: aiosqlite.Connection | None = None

    async def start_async(self) -> None:
        self._aio = await _connect(self._path, query_only=False)
        self._lock_fd = os.open(f"{self._path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="axis-sqlite-writer-aiosqlite")

    async def stop(self) -> None:
        await super().stop()
        if self._aio is not None:
            await self._aio.close()
            self._aio = None

    async def _commit(self, batch: list[Request]) -> None:
        conn = self._aio
        assert conn is not None
        assert self._lock_fd is not None
        outcomes: list[tuple[bool, Any]] = []
        notified: list[str] = []
        locked = False
        try:
            await asyncio.to_thread(fcntl.flock, self._lock_fd, fcntl.LOCK_EX)
            locked = True
            await conn.execute("BEGIN IMMEDIATE")
            try:
                tx = AioTx(conn, self._queries, audit=self._audit)
                await tx.prime()
                for op, _ in batch:
                    mark = tx.mark()
                    await conn.execute("SAVEPOINT op")
                    try:
                        result = await op(tx)
                        await tx.flush_rows()
                        outcomes.append((True, result))
                        await conn.execute("RELEASE op")
                    except Exception as exc:
                        if isinstance(exc, sqlite3.Error) and not conn.in_transaction:
                            raise
                        await conn.execute("ROLLBACK TO op")
                        await conn.execute("RELEASE op")
                        tx.restore(mark)
                        if isinstance(exc, sqlite3.Error):
                            exc = StoreError(f"the store could not write: {exc}")
                        outcomes.append((False, exc))
                await conn.execute("COMMIT")
                notified = tx.notified
            except BaseException:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            _log.error("store_commit_failed", error=str(exc), batch=len(batch))
            error = StoreError(f"the store could not commit: {exc}")
            outcomes = [(False, error)] * len(batch)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreError(f"the store is closing: {exc!r}"))
            raise
        finally:
            if locked:
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


class AioAllBackend(AioReadsBackend):
    """Reads and the group writer's statements on ``aiosqlite``."""

    async def open(self) -> None:
        await super().open()
        assert self.writer is not None
        await self.writer.stop()  # the shipped writer super() started, idle so far
        writer = AioGroupWriter(
            self._path,
            self._queries,
            self.settings.group_commit_max,
            self._wake,
            audit=self.settings.audit_events,
        )
        await writer.start_async()
        self.writer = writer

    async def apply_migration(self, tx: Tx, sql: str) -> None:
        assert isinstance(tx, AioTx)
        for statement in _statements(sql):
            await tx._aio.execute(statement)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "bench_driver": "aiosqlite-all"}


BACKENDS: dict[str, Callable[[Settings], SqliteBackend]] = {
    "sqlite3": SqliteBackend,
    "aiosqlite-reads": AioReadsBackend,
    "aiosqlite-all": AioAllBackend,
}


def backend(driver: str, settings: Settings) -> SqliteBackend:
    """The backend ``driver`` names (one of ``DRIVERS``)."""
    try:
        return BACKENDS[driver](settings)
    except KeyError:
        raise ValueError(f"unknown SQLite driver {driver!r}; one of {DRIVERS}") from None
