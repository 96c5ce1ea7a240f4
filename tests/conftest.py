"""Shared fixtures: a real axis on loopback over a real SQLite file in a temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from axis.config import Settings
from tests.support.datadir import keyed_settings

# CI runs on a loaded 2-core machine, where another suite may hold both cores while a
# strategy draws its first examples: Hypothesis then fails the test as "too slow" although
# nothing is wrong with it, and a deadline fails an example for the same reason. The "ci"
# profile keeps every test's number of examples and drops only these two timing checks.
# CI=true (as .ci/run sets it) selects it; elsewhere, pytest --hypothesis-profile=ci does.
hypothesis_settings.register_profile(
    "ci", suppress_health_check=[HealthCheck.too_slow], deadline=None
)
if os.environ.get("CI", "").lower() == "true":
    hypothesis_settings.load_profile("ci")

if TYPE_CHECKING:
    from tests.support.harness import AxisHarness


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``sqlite_only`` checks what only the embedded engine does (blob files, a
    full disk of its file): its PostgreSQL run is not collected at all."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("store_url") == "postgresql"
        (dropped if on_postgres and item.get_closest_marker("sqlite_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _close_raw_sql() -> Iterator[None]:
    """Connections a test opened on a store's tables are closed after it."""
    yield
    from tests.support.rawsql import close_all

    close_all()


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A command run in this process (``cli.main``) may point the logs at the test's captured
    stderr, which closes with the test: the next tests get structlog's defaults back."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def axis_key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """One axis signing key for the whole run: generating RSA-3072 costs a noticeable time."""
    from axis import signing

    return signing.generate_axis_key("axis-test")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str | None]:
    """Every test of a real axis (the ``axis`` and ``settings`` fixtures) runs on both
    engines: embedded SQLite, and PostgreSQL in a schema of its own, dropped afterwards.
    Command-line processes a test starts inherit the store through ``AXIS_STORE``."""
    if request.param == "sqlite":
        monkeypatch.delenv("AXIS_STORE", raising=False)
        yield None
        return
    from tests.support.pg import drop_schema, fresh_schema, require_postgres, schema_url

    await require_postgres()
    schema = fresh_schema()
    url = schema_url(schema)
    monkeypatch.setenv("AXIS_STORE", url)
    yield url
    await asyncio.shield(drop_schema(schema))


@pytest.fixture
def settings(tmp_path: Path, axis_key_pair: tuple[bytes, bytes], store_url: str | None) -> Settings:
    return keyed_settings(tmp_path / "var", axis_key_pair, store=store_url)


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


@pytest.fixture
def axis_factory(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> Callable[..., contextlib.AbstractAsyncContextManager[AxisHarness]]:
    """``async with axis_factory(AXIS_X="…") as axis``: an axis with its own settings."""
    from tests.support.harness import start_axis

    made = itertools.count()

    def make(**env: str) -> contextlib.AbstractAsyncContextManager[AxisHarness]:
        data = tmp_path / f"axis{next(made)}"
        return start_axis(keyed_settings(data, axis_key_pair, env))

    return make
