"""The PostgreSQL store on its own: its URL, its schema version, surviving lost connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from axis.config import build_settings
from axis.errors import StoreError
from axis.store import open_store
from axis.store.ops import AxisStore
from axis.store.postgres.backend import parse_url, qmarks
from tests.store.conftest import (
    AGENCIES,
    POSTGRES_URL,
    drop_schema,
    fresh_schema,
    require_postgres,
    schema_url,
)
from tests.store.test_contract import message
from tests.support.rawsql import raw_sql

H02, H03 = AGENCIES[1].organ_id, AGENCIES[2].organ_id


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[AxisStore]:
    await require_postgres()
    schema = fresh_schema()
    store = open_store(build_settings({"data": tmp_path, "store": schema_url(schema)}, env={}))
    await store.open()
    try:
        await store.initialize(AGENCIES)
        yield store
    finally:
        await store.close()
        await drop_schema(schema)


async def terminate(pid: int) -> None:
    """What a restarting or failing-over engine does to a connection."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


def test_the_url_may_name_a_schema_and_keeps_other_parameters() -> None:
    """``?schema=`` selects the schema; other parameters reach the driver; no password shown."""
    target = parse_url(
        "postgresql://axis:s3cret@db.example:5433/axis?schema=node_a&sslmode=require"
    )
    assert target.schema == "node_a"
    assert target.dsn == "postgresql://axis:s3cret@db.example:5433/axis?sslmode=require"
    assert "s3cret" not in target.safe and "node_a" in target.safe
    assert parse_url("postgres://h/db").schema is None
    with pytest.raises(ValueError, match="schema"):
        parse_url("postgresql://h/db?schema=x;drop")


def test_question_marks_in_quotes_are_not_parameters() -> None:
    """The tests' SQLite-style SQL becomes PostgreSQL's numbered parameters."""
    assert qmarks("SELECT '?' WHERE a = ? AND b = ?") == "SELECT '?' WHERE a = $1 AND b = $2"


async def test_an_unreachable_engine_is_a_store_error(tmp_path: Path) -> None:
    """No engine at the URL: opening says so plainly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        url = f"postgresql://postgres@127.0.0.1:{port}/test"
        store = open_store(build_settings({"data": tmp_path, "store": url}, env={}))
        with pytest.raises(StoreError, match="cannot reach PostgreSQL"):
            await store.open()
        await store.close()


async def test_writes_go_on_after_the_engine_drops_the_writer(pg: AxisStore) -> None:
    """A lost connection before COMMIT: the batch runs again on a new one, nothing is lost."""
    assert pg.backend.writer is not None
    pid = pg.backend.writer.backend_pid
    assert pid is not None
    await terminate(pid)
    sent = await pg.accept(message(to=(H02,)))
    assert sent.created
    assert pg.backend.writer.backend_pid != pid
    assert (await pg.message(sent.record.id)) is not None


async def test_waiters_are_woken_after_the_listener_reconnects(
    pg: AxisStore, tmp_path: Path
) -> None:
    """A dropped LISTEN connection comes back; waiters re-read meanwhile; NOTIFY works again."""
    other = open_store(build_settings({"data": tmp_path / "b", "store": pg.backend.settings.store}))
    await other.open()
    try:
        rows = raw_sql(pg).execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name IN (?, ?)",
            (pg.backend._name("listen"), other.backend._name("listen")),
        )
        waiter = asyncio.create_task(pg.wait_for_mail(H02, 30))
        await asyncio.sleep(0.05)
        before = {pid for (pid,) in rows}
        assert len(before) == 2
        for pid in before:
            await terminate(pid)  # every node's listener: the engine restarted
        await asyncio.wait_for(waiter, 10)  # woken on reconnection, to read its inbox again
        for _ in range(100):
            if pg.backend._listening.is_set() and other.backend._listening.is_set():
                break
            await asyncio.sleep(0.05)
        later = asyncio.create_task(pg.wait_for_mail(H03, 30))
        await asyncio.sleep(0.05)
        await other.accept(message(to=(H03,)))
        await asyncio.wait_for(later, 5)
    finally:
        await other.close()
