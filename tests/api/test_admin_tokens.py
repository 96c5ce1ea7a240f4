"""Tokens over HTTP: issued per agency, listed without secrets, revoked with immediate effect."""

from __future__ import annotations

import aiohttp

from axis import timeutil
from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


async def issue(axis: AxisHarness, organ_id: str) -> dict[str, str]:
    status, issued = await axis.post_json(axis.admin, f"/v1/admin/agencies/{organ_id}/tokens", None)
    assert status == 201, issued
    return dict(issued)


async def revoke(axis: AxisHarness, token_id: str) -> int:
    async with axis.session.delete(
        f"{axis.url}/v1/admin/tokens/{token_id}", headers=axis.admin
    ) as resp:
        return resp.status


async def test_revoking_a_token_mid_session_refuses_its_next_request(axis: AxisHarness) -> None:
    """On one kept-alive connection, the request after the revocation is 401; others live on."""
    sender = await axis.register(G22)
    await axis.register(H41)
    spare = await issue(axis, G22)
    connector = aiohttp.TCPConnector(limit=1)  # one connection, reused for every request
    async with aiohttp.ClientSession(connector=connector) as client:
        headers = {**sender.auth, "Content-Type": "application/xml"}
        for _ in range(3):
            async with client.post(
                f"{axis.url}/v1/edocs", data=axis.edoc(sender, [H41]), headers=headers
            ) as resp:
                assert resp.status == 201
        _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{G22}")
        [first] = [t for t in shown["token_ids"] if t != spare["token_id"]]
        assert await revoke(axis, first) == 204
        async with client.post(
            f"{axis.url}/v1/edocs", data=axis.edoc(sender, [H41]), headers=headers
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "unauthorized"
        async with client.get(f"{axis.url}/v1/outbox", headers=sender.auth) as resp:
            assert resp.status == 401
        other = {"Authorization": f"Bearer {spare['token']}"}
        async with client.get(f"{axis.url}/v1/outbox", headers=other) as resp:
            assert resp.status == 200
            assert len((await resp.json())["items"]) == 3
    assert await revoke(axis, first) == 404  # already revoked


async def test_token_list_shows_metadata_never_secrets(axis: AxisHarness) -> None:
    """GET /v1/admin/tokens: ids, role, agency, created, last used; no token, no hash."""
    await axis.register(G22)
    issued = await issue(axis, G22)
    await axis.store.touch_token(issued["token_id"], timeutil.now())
    status, page = await axis.get(axis.admin, f"/v1/admin/tokens?organ_id={G22}")
    assert status == 200
    assert len(page["items"]) == 2 and page["next_cursor"] is None
    entry = next(t for t in page["items"] if t["token_id"] == issued["token_id"])
    assert entry["role"] == "agency" and entry["organ_id"] == G22
    assert entry["created_at"] and entry["last_used_at"] and entry["revoked_at"] is None
    assert issued["token"] not in str(page)
    _, admins = await axis.get(axis.admin, "/v1/admin/tokens?role=admin")
    assert [t["organ_id"] for t in admins["items"]] == [None]
    assert await revoke(axis, issued["token_id"]) == 204
    _, live = await axis.get(axis.admin, f"/v1/admin/tokens?organ_id={G22}")
    assert issued["token_id"] not in [t["token_id"] for t in live["items"]]
    _, every = await axis.get(axis.admin, f"/v1/admin/tokens?organ_id={G22}&revoked=true")
    [gone] = [t for t in every["items"] if t["token_id"] == issued["token_id"]]
    assert gone["revoked_at"] is not None
    _, one = await axis.get(axis.admin, "/v1/admin/tokens?revoked=true&limit=1")
    assert len(one["items"]) == 1 and one["next_cursor"] is not None


async def test_tokens_are_only_for_registered_agencies_and_admins(axis: AxisHarness) -> None:
    """Issuing for an unknown code is 404; an agency token cannot list or revoke tokens."""
    status, problem = await axis.post_json(
        axis.admin, "/v1/admin/agencies/000.00.00.Z98/tokens", None
    )
    assert (status, problem["code"]) == (404, "not_found")
    agency = await axis.register(G22)
    status, problem = await axis.get(agency, "/v1/admin/tokens")
    assert (status, problem["code"]) == (403, "forbidden")
