"""AXIS_RATE_LIMIT: an agency over its rate gets 429 rate_limited; nothing else is slowed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, start_axis

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


@pytest.fixture
async def limited(tmp_path: Path, axis_key_pair: tuple[bytes, bytes]) -> AsyncIterator[AxisHarness]:
    """An axis allowing each agency 3 requests at once, refilled one per 100 s."""
    env = {"AXIS_RATE_LIMIT": "0.01", "AXIS_RATE_BURST": "3"}
    async with start_axis(keyed_settings(tmp_path / "limited", axis_key_pair, env)) as harness:
        yield harness


async def test_an_agency_over_its_rate_is_refused_with_retry_after(limited: AxisHarness) -> None:
    """The fourth request is 429 rate_limited with Retry-After; another agency is unaffected."""
    sender = await limited.register(G22)
    other = await limited.register(H41)
    for _ in range(3):
        status, _ = await limited.get(sender, "/v1/inbox")
        assert status == 200
    async with limited.session.get(f"{limited.url}/v1/inbox", headers=sender.auth) as resp:
        assert resp.status == 429
        assert resp.content_type == "application/problem+json"
        problem = await resp.json(content_type=None)
        assert 1 <= int(resp.headers["Retry-After"]) <= 100
    assert problem["code"] == "rate_limited" and problem["status"] == 429
    assert G22 in problem["detail"]
    status, _ = await limited.get(other, "/v1/inbox")
    assert status == 200
    for _ in range(5):
        status, _ = await limited.get(limited.admin, "/v1/admin/agencies")
        assert status == 200


async def test_a_limited_send_stores_nothing(limited: AxisHarness) -> None:
    """A package refused for rate is not accepted: the recipient's inbox holds only the first."""
    sender = await limited.register(G22)
    receiver = await limited.register(H41)
    status, first = await limited.send(sender, limited.edoc(sender, [H41]))
    assert status == 201
    for _ in range(2):
        assert (await limited.get(sender, "/v1/outbox"))[0] == 200
    status, problem = await limited.send(sender, limited.edoc(sender, [H41]))
    assert (status, problem["code"]) == (429, "rate_limited")
    status, inbox = await limited.get(receiver, "/v1/inbox")
    assert status == 200
    assert [m["id"] for m in inbox["items"]] == [first["id"]]
