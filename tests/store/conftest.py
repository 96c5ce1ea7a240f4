"""The store contract suite runs against every backend; each test gets a fresh store.

PostgreSQL: each test gets a schema of its own (``axis_test_<random>``) in the database named
by ``AXIS_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``), dropped
afterwards. When that engine cannot be reached the PostgreSQL half is skipped, with how to
get one, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from axis.config import build_settings
from axis.registry import Agency
from axis.store import open_store
from axis.store.protocol import Store
from tests.support.pg import (  # noqa: F401  (used by the store suites)
    POSTGRES_URL,
    drop_schema,
    fresh_schema,
    require_postgres,
    schema_url,
)

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
