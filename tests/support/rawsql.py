"""Looking into a store's tables from a test, alike on both engines: ``raw_sql(store)``.

Tests that check what is stored (a column, an event row) use SQLite's ``execute(sql, params)``
shape with ``?`` placeholders on either backend. SQLite gets a connection of its own on the
file; PostgreSQL a blocking connection run in a thread of its own (so it may be called from
inside the event loop). Connections are closed after each test (``close_all``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg

from axis.config import Settings
from axis.store.ops import AxisStore
from axis.store.postgres.backend import (
    PostgresBackend,
    Target,
    parse_url,
    qmarks,
    rowcount,
    server_settings,
)
from axis.store.protocol import Store
from axis.store.sqlite.backend import SqliteBackend

T = TypeVar("T")


class Rows(Protocol):
    rowcount: int

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Peek(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...

    def close(self) -> None: ...


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


class SyncSql:
    """A blocking PostgreSQL connection with SQLite's ``execute(sql, params)`` shape."""

    def __init__(self, target: Target) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn = self._call(
            asyncpg.connect(target.dsn, server_settings=server_settings(target, "axis/test"))
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

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._call(self._conn.executemany(qmarks(sql), rows))

    def commit(self) -> None:
        """Every statement commits by itself (as SQLite's autocommit connection does)."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


_open: dict[Any, Peek] = {}


def raw_sql(store: Store) -> Peek:
    """A connection on the tables of ``store`` (kept until ``close_all``)."""
    assert isinstance(store, AxisStore)
    backend = store.backend
    assert isinstance(backend, PostgresBackend | SqliteBackend)
    return settings_sql(backend.settings)


def settings_sql(settings: Settings) -> Peek:
    """A connection on the tables of the store ``settings`` name, as an intruder would have:
    SQLite's file, or the PostgreSQL schema (kept until ``close_all``)."""
    key = (str(settings.data), settings.store)
    peek = _open.get(key)
    if peek is None:
        if settings.uses_postgres:
            peek = SyncSql(parse_url(settings.store))
        else:
            peek = sqlite3.connect(settings.sqlite_path, isolation_level=None, timeout=30)
        _open[key] = peek
    return peek


def close_all() -> None:
    while _open:
        _, peek = _open.popitem()
        peek.close()
