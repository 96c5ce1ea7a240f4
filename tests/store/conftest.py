"""The store contract suite runs against every backend; each test gets a fresh store.

PostgreSQL: each test gets a schema of its own (``axis_test_<random>``) in the database named
by ``AXIS_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``), dropped
afterwards. When that engine cannot be reached the PostgreSQL half is skipped, with how to
get one, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from axis.config import build_settings
from axis.registry import Agency
from axis.store import open_store
from axis.store.protocol import Store

AGENCIES = [
    Agency(organ_id=f"000.00.00.H{n:02d}", name=f"Tỉnh {n}", kind="provincial") for n in range(1, 6)
] + [
    Agency(
        organ_id="000.00.00.H09",
        name="Tỉnh đã sáp nhập",
        kind="provincial",
        status="closed",
        successor="000.00.00.H01",
    )
]

POSTGRES_URL = os.environ.get("AXIS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_reachable: list[str | None] = []  # memo: None when reachable, else why not


async def _probe() -> str | None:
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def require_postgres() -> str:
    """The test database URL; skips (fails in CI) the test when PostgreSQL is not there."""
    if not _reachable:
        _reachable.append(await _probe())
    why = _reachable[0]
    if why is not None:
        message = (
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({why}). Start PostgreSQL 15+ on"
            " 127.0.0.1:5432 with a database `test` the user `postgres` may use without a"
            " password, or point AXIS_TEST_POSTGRES at one."
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def schema_url(schema: str) -> str:
    joiner = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{joiner}schema={schema}"


def fresh_schema() -> str:
    return f"axis_test_{secrets.token_hex(6)}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    flags: dict[str, object] = {"data": tmp_path / "var"}
    schema = None
    if request.param == "postgresql":
        await require_postgres()
        schema = fresh_schema()
        flags["store"] = schema_url(schema)
    settings = build_settings(flags, env={})
    backend = open_store(settings)
    await backend.open()
    try:
        await backend.initialize(AGENCIES)
        yield backend
    finally:
        await backend.close()
        if schema is not None:
            await asyncio.shield(drop_schema(schema))
