"""The PostgreSQL the suites run against: a schema of its own per test, dropped afterwards.

``AXIS_TEST_POSTGRES`` names the database (default ``postgresql://postgres@127.0.0.1:5432/test``).
When that engine cannot be reached the PostgreSQL half of a suite is skipped, with how to get
one, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import secrets

import asyncpg
import pytest

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
