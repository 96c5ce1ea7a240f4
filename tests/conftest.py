"""Shared fixtures: a real axis on loopback over a real SQLite file in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from axis.config import Settings
from tests.support.datadir import keyed_settings

if TYPE_CHECKING:
    from tests.support.harness import AxisHarness


@pytest.fixture(autouse=True)
def _close_raw_sql() -> Iterator[None]:
    """Connections a test opened on a store's tables are closed after it."""
    yield
    from tests.support.rawsql import close_all

    close_all()


@pytest.fixture(scope="session")
def axis_key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """One axis signing key for the whole run: generating RSA-3072 costs a noticeable time."""
    from axis import signing

    return signing.generate_axis_key("axis-test")


@pytest.fixture
def settings(tmp_path: Path, axis_key_pair: tuple[bytes, bytes]) -> Settings:
    return keyed_settings(tmp_path / "var", axis_key_pair)


@pytest.fixture
async def axis(settings: Settings) -> AsyncIterator[AxisHarness]:
    from tests.support.harness import start_axis

    async with start_axis(settings) as harness:
        yield harness


@pytest.fixture
async def settings_small_limit_axis(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> AsyncIterator[AxisHarness]:
    """An axis whose body limit is 64 KiB."""
    small = keyed_settings(tmp_path / "small", axis_key_pair, {"AXIS_MAX_BYTES": "65536"})
    from tests.support.harness import start_axis

    async with start_axis(small) as harness:
        yield harness


@pytest.fixture
async def overdue_axis(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> AsyncIterator[AxisHarness]:
    """An axis whose recipients must report receipt within one second."""
    from tests.support.harness import start_axis

    quick = keyed_settings(tmp_path / "overdue", axis_key_pair, {"AXIS_RECEIPT_DEADLINE": "1"})
    async with start_axis(quick) as harness:
        yield harness
