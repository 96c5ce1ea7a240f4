"""Administration needed by the core (agencies, tokens) and the operations endpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support import pki
from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, start_axis

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


async def test_put_agency_creates_then_replaces(axis: AxisHarness) -> None:
    """PUT creates a level-2 unit under its registered parent (201), then replaces it (200)."""
    ident = pki.identity("rsa2048", common_name="unit signer")
    body = {"name": "Sở Tài chính", "kind": "unit", "certificates": [ident.cert_pem.decode()]}
    async with axis.session.put(
        f"{axis.url}/v1/admin/agencies/000.00.01.H41", json=body, headers=axis.admin
    ) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert created["parent"] == H41
    assert created["certificates"][0]["subject"].startswith("CN=unit signer")
    body["name"] = "Sở Tài chính tỉnh Nghệ An"
    async with axis.session.put(
        f"{axis.url}/v1/admin/agencies/000.00.01.H41", json=body, headers=axis.admin
    ) as resp:
        assert resp.status == 200
    status, shown = await axis.get(axis.admin, "/v1/admin/agencies/000.00.01.H41")
    assert status == 200
    assert shown["name"] == "Sở Tài chính tỉnh Nghệ An"


async def test_put_agency_refuses_bad_codes_and_successors(axis: AxisHarness) -> None:
    """Malformed codes, missing parents and inactive successors are invalid_request."""
    cases = [
        ("000.00.00.h41", {"name": "x"}, "organ_id"),
        ("000.00.07.Z99", {"name": "x"}, "parent"),
        (
            "000.00.00.H41",
            {"name": "x", "status": "closed", "successor": "000.00.00.H22"},
            "successor",
        ),
        ("000.00.00.H41", {"name": "x", "certificates": ["not a pem"]}, "certificates"),
    ]
    for organ_id, body, field in cases:
        async with axis.session.put(
            f"{axis.url}/v1/admin/agencies/{organ_id}", json=body, headers=axis.admin
        ) as resp:
            problem = await resp.json()
            assert resp.status == 400, (organ_id, problem)
            assert problem["code"] == "invalid_request"
            assert field in problem["detail"], problem


async def test_agency_tokens_cannot_administer(axis: AxisHarness) -> None:
    """An agency token on an admin endpoint is 403 forbidden."""
    agency = await axis.register(G22)
    status, problem = await axis.get(agency, "/v1/admin/agencies")
    assert status == 403
    assert problem["code"] == "forbidden"


async def test_revoked_token_is_refused_at_once(axis: AxisHarness) -> None:
    """DELETE /v1/admin/tokens/{id} makes the token 401 on its next request."""
    async with axis.session.post(
        f"{axis.url}/v1/admin/agencies/{G22}/tokens", headers=axis.admin
    ) as resp:
        issued = await resp.json()
    auth = {"Authorization": f"Bearer {issued['token']}"}
    status, _ = await axis.get(auth, "/v1/inbox")
    assert status == 200
    async with axis.session.delete(
        f"{axis.url}/v1/admin/tokens/{issued['token_id']}", headers=axis.admin
    ) as resp:
        assert resp.status == 204
    status, problem = await axis.get(auth, "/v1/inbox")
    assert status == 401
    assert problem["code"] == "unauthorized"


async def test_suspended_agency_tokens_are_refused(axis: AxisHarness) -> None:
    """Suspending an agency refuses its tokens with 403."""
    agency = await axis.register(H41)
    await axis.register(H41, ident=agency.ident, status="suspended")
    status, problem = await axis.get(agency, "/v1/inbox")
    assert status == 403
    assert "suspended" in problem["detail"]


async def test_health_readiness_and_metrics(axis: AxisHarness) -> None:
    """healthz and readyz answer 200 on a working axis; metrics is Prometheus text."""
    status, body = await axis.get({}, "/healthz")
    assert status == 200 and body["ok"] is True
    status, body = await axis.get({}, "/readyz")
    assert status == 200 and body["ok"] is True and body["signing_key"] is True
    assert body["store"]["store"] == ("postgresql" if axis.settings.uses_postgres else "sqlite")
    async with axis.session.get(f"{axis.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    assert "axis_agencies 158" in text
    assert "# TYPE axis_store_commits_total counter" in text
    assert "# HELP axis_certificates_expiring_30d " in text
    # requests are counted by route pattern, never by path
    assert 'axis_http_requests_total{method="GET",route="/readyz",status="200"} 1' in text
    assert 'axis_http_request_duration_seconds_count{method="GET",route="/healthz"} 1' in text


async def test_requests_are_counted_by_route_pattern_and_status(axis: AxisHarness) -> None:
    """Two fetches of different messages and a 404 land on one route label each."""
    sender = await axis.register("000.00.00.G22")
    receiver = await axis.register("000.00.00.H41")
    for _ in range(2):
        _, answer = await axis.send(sender, axis.edoc(sender, ["000.00.00.H41"]))
        assert (await axis.get(receiver, f"/v1/inbox/{answer['id']}"))[0] == 200
    assert (await axis.get(receiver, "/v1/inbox/msg_nothing"))[0] == 404
    assert (await axis.get(receiver, "/nowhere"))[0] == 404
    async with axis.session.get(f"{axis.url}/metrics") as resp:
        text = await resp.text()
    assert 'axis_http_requests_total{method="GET",route="/v1/inbox/{id}",status="200"} 2' in text
    assert 'axis_http_requests_total{method="GET",route="/v1/inbox/{id}",status="404"} 1' in text
    assert 'axis_http_requests_total{method="GET",route="unmatched",status="404"} 1' in text
    assert 'axis_http_requests_total{method="POST",route="/v1/edocs",status="201"} 2' in text


async def test_unknown_route_is_problem_json(axis: AxisHarness) -> None:
    """Even aiohttp's own 404 comes back as problem+json with code not_found."""
    async with axis.session.get(f"{axis.url}/v1/nothing-here") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["code"] == "not_found"


async def test_a_wrong_method_is_405_naming_the_allowed_ones(axis: AxisHarness) -> None:
    """DELETE on the outbox is 405 method_not_allowed with Allow, as problem+json."""
    async with axis.session.delete(f"{axis.url}/v1/outbox", headers=axis.admin) as resp:
        assert resp.status == 405
        assert resp.content_type == "application/problem+json"
        assert "GET" in resp.headers["Allow"]
        problem = await resp.json()
    assert (problem["code"], problem["status"]) == ("method_not_allowed", 405)
    assert "DELETE" in problem["detail"] and "/v1/outbox" in problem["detail"]


async def test_401_names_the_bearer_scheme(axis: AxisHarness) -> None:
    """A 401 carries WWW-Authenticate: Bearer, with invalid_token when a token was sent."""
    async with axis.session.get(f"{axis.url}/v1/outbox") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="axis"'
    bad = {"Authorization": "Bearer axs_not-a-token"}
    async with axis.session.get(f"{axis.url}/v1/outbox", headers=bad) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="axis", error="invalid_token"'


async def test_readiness_fails_when_a_package_might_not_fit_on_disk(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> None:
    """With less than twice AXIS_MAX_BYTES free in the data directory, /readyz is 503."""
    free = shutil.disk_usage(tmp_path).free
    env = {"AXIS_MAX_BYTES": str(free)}  # twice the limit cannot be free
    async with start_axis(keyed_settings(tmp_path / "var", axis_key_pair, env)) as axis:
        status, problem = await axis.get({}, "/readyz")
        assert (status, problem["code"]) == (503, "not_ready")
        assert "disk" in problem["detail"] and problem["disk"]["free_bytes"] > 0
        async with axis.session.get(f"{axis.url}/metrics") as resp:
            assert "axis_disk_free_bytes " in await resp.text()
