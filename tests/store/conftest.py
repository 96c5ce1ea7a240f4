"""The store contract suite runs against every backend; each test gets a fresh store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

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


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    settings = build_settings({"data": tmp_path / "var"}, env={})
    backend = open_store(settings)
    await backend.open()
    await backend.initialize(AGENCIES)
    try:
        yield backend
    finally:
        await backend.close()
