"""The console over HTTP: sign-in and sessions, what is recorded, errors as pages, languages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from axis import timeutil
from axis.model import AuditFilter
from tests.support.console import ConsoleClient, signed_in, staff_token
from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, start_axis
from tests.support.rawsql import raw_sql

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
HANOI = "000.00.00.H26"


async def events_of(axis: AxisHarness, type_: str) -> list[tuple[str, dict[str, object]]]:
    page = await axis.store.audit_events(AuditFilter(type=type_), cursor=None, limit=100)
    return [(e.actor, e.detail) for e in page.items]


async def test_signing_in_and_out_are_recorded_naming_the_token(axis: AxisHarness) -> None:
    """The cookie is HttpOnly and SameSite=Strict; sign-in and sign-out are audit events."""
    token_id, token = await staff_token(axis, "auditor")
    client = ConsoleClient(axis.url)
    try:
        proxied = await client.get("/console/signin", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in proxied.headers["Set-Cookie"]  # a TLS proxy in front: Secure
        answer = await client.sign_in(token, "/console/agencies")
        assert answer.status == 303 and answer.location == "/console/agencies"
        cookie = next(
            v for k, v in answer.headers.items() if k == "Set-Cookie" and "axis_console=" in v
        )
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback
        stored = raw_sql(axis.store).execute("SELECT session_hash FROM console_sessions")
        assert client.session_cookie not in str(stored.fetchall())  # only its hash is kept
        [(actor, detail)] = await events_of(axis, "console_signed_in")
        assert actor == f"auditor:{token_id}" and detail["token_id"] == token_id
        out = await client.post("/console/signout")
        assert out.status == 303 and out.location == "/console/signin?signed_out=1"
        [(actor, detail)] = await events_of(axis, "console_signed_out")
        assert actor == f"auditor:{token_id}" and detail["reason"] == "signed_out"
        assert (await client.get("/console/")).status == 303
    finally:
        await client.close()


async def test_only_admin_and_auditor_tokens_sign_in(axis: AxisHarness) -> None:
    """An agency's token is refused with 403, an unknown one with 401; no session is made."""
    agency = await axis.register(G22)
    client = ConsoleClient(axis.url)
    try:
        refused = await client.sign_in(agency.token)
        assert refused.status == 403 and "không phải của quản trị viên" in refused.text
        unknown = await client.sign_in("axs_" + "x" * 43)
        assert unknown.status == 401 and "không tồn tại hoặc đã bị thu hồi" in unknown.text
        assert await events_of(axis, "console_signed_in") == []
        await client.get("/console/signin")
        no_csrf = await client.post("/console/signin", {"token": axis.admin_token}, csrf=False)
        assert no_csrf.status == 403 and "CSRF" in no_csrf.text
    finally:
        await client.close()


async def test_a_session_ends_when_idle_too_long_or_too_old_or_its_token_is_revoked(
    axis: AxisHarness,
) -> None:
    """After 30 minutes idle, 12 hours in all, or a revoked token, the next page is the
    sign-in page, and an expiry is recorded as a sign-out."""
    client, _ = await signed_in(axis, "admin")
    try:
        idle = timeutil.fmt(timeutil.now() - timedelta(minutes=31))
        raw_sql(axis.store).execute("UPDATE console_sessions SET last_seen_at = ?", (idle,))
        answer = await client.get("/console/messages")
        assert answer.status == 303 and "expired=1" in answer.location
        assert "next=%2Fconsole%2Fmessages" in answer.location
        page = await client.get(answer.location)
        assert "Phiên làm việc đã kết thúc" in page.text
        [(_, detail)] = await events_of(axis, "console_signed_out")
        assert detail["reason"] == "expired_idle"
        client2, _ = await signed_in(axis, "admin")
        old = timeutil.fmt(timeutil.now() - timedelta(hours=12, minutes=1))
        raw_sql(axis.store).execute("UPDATE console_sessions SET created_at = ?", (old,))
        assert (await client2.get("/console/")).status == 303
        assert [d["reason"] for _, d in await events_of(axis, "console_signed_out")] == [
            "expired_idle",
            "expired_lifetime",
        ]
        await client2.close()
        client3, token3 = await signed_in(axis, "auditor")
        await axis.store.revoke_token(token3, actor="test")
        assert (await client3.get("/console/")).status == 303
        await client3.close()
    finally:
        await client.close()


@pytest.fixture
async def limited_axis(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> AsyncIterator[AxisHarness]:
    """An axis allowing two sign-in attempts a minute."""
    env = {"AXIS_CONSOLE_SIGNIN_RATE": "2"}
    async with start_axis(keyed_settings(tmp_path / "var", axis_key_pair, env)) as harness:
        yield harness


async def test_sign_in_attempts_are_limited_per_address(limited_axis: AxisHarness) -> None:
    """The third attempt within the minute is 429 with Retry-After, even with a good token."""
    client = ConsoleClient(limited_axis.url)
    try:
        assert (await client.sign_in("axs_wrong")).status == 401
        assert (await client.sign_in(limited_axis.admin_token)).status == 303
        await client.get("/console/signin")
        third = await client.post("/console/signin", {"token": limited_axis.admin_token})
        assert third.status == 429 and third.headers["Retry-After"]
    finally:
        await client.close()


async def test_a_cycle_of_successors_is_refused_with_the_apis_words(axis: AxisHarness) -> None:
    """Closing an agency with a successor that leads back is a 400 page naming the loop, the
    detail the API gives for the same change."""
    await axis.register(G22)
    await axis.register(H41)
    client, _ = await signed_in(axis, "admin")
    try:
        await client.get(f"/console/agencies/{H41}")
        first = await client.post(
            f"/console/agencies/{H41}/status", {"status": "closed", "successor": G22}
        )
        assert first.status == 303
        await client.get(f"/console/agencies/{G22}")
        cycle = await client.post(
            f"/console/agencies/{G22}/status", {"status": "closed", "successor": H41}
        )
        assert cycle.status == 400
        _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{G22}")
        body = {k: shown[k] for k in ("name", "kind", "parent")}
        async with axis.session.put(
            f"{axis.url}/v1/admin/agencies/{G22}",
            json={**body, "status": "closed", "successor": H41},
            headers=axis.admin,
        ) as resp:
            assert resp.status == 400
            problem = await resp.json(content_type=None)
        assert problem["detail"] in cycle.text.replace("&gt;", ">")
        assert "would make a cycle" in problem["detail"]
    finally:
        await client.close()


async def test_downloading_a_body_is_recorded_first(axis: AxisHarness) -> None:
    """An administrator gets the exact bytes; the audit log names the token."""
    sender = await axis.register(G22)
    await axis.register(H41)
    package = axis.edoc(sender, [H41])
    _, sent = await axis.send(sender, package)
    client, token_id = await signed_in(axis, "admin")
    try:
        await client.get(f"/console/messages/{sent['id']}")
        async with client.session.post(
            f"{axis.url}/console/messages/{sent['id']}/body", data={"csrf": client.csrf}
        ) as resp:
            assert resp.status == 200
            assert await resp.read() == package
            assert "attachment" in resp.headers["Content-Disposition"]
        [(actor, detail)] = await events_of(axis, "body_downloaded")
        assert actor == f"admin:{token_id}" and detail["sha256"] == sent["sha256"]
    finally:
        await client.close()


async def test_pages_are_html_with_a_strict_policy_and_their_server_time(
    axis: AxisHarness,
) -> None:
    """Nothing loads from elsewhere, nothing is cached, and each answer says its server time;
    the style and script are the console's own."""
    client, _ = await signed_in(axis, "auditor")
    try:
        page = await client.get("/console/")
        assert page.headers["Content-Type"].startswith("text/html")
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Server-Timing"].startswith("app;dur=")
        assert "<svg" in page.text and "http://" not in page.text.split("<body>")[1]
        for name in ("console.css", "console.js"):
            static = await client.get(f"/console/static/{name}")
            assert static.status == 200 and "max-age" in static.headers["Cache-Control"]
        missing = await client.get("/console/nowhere")
        assert missing.status == 404 and "<html" in missing.text
    finally:
        await client.close()


async def test_the_language_switch_and_vietnamese_search_without_diacritics(
    axis: AxisHarness,
) -> None:
    """Vietnamese first; the switch sets English and comes back to the page; “ha noi” finds
    Hà Nội; the switch never sends anyone off the console."""
    client, _ = await signed_in(axis, "auditor")
    try:
        found = await client.get("/console/agencies?q=ha+noi")
        assert "Hà Nội" in found.text and HANOI in found.text and 'lang="vi"' in found.text
        switch = await client.get("/console/language/en?next=/console/agencies%3Fq%3Dha+noi")
        assert switch.status == 303 and switch.location == "/console/agencies?q=ha%20noi"
        english = await client.get("/console/agencies?q=ha+noi")
        assert 'lang="en"' in english.text and "Agencies" in english.text
        away = await client.get("/console/language/vi?next=https://elsewhere.example/")
        assert away.location == "/console/"
        dated = await client.get("/console/audit")
        assert "giờ Việt Nam" in dated.text
    finally:
        await client.close()


async def test_times_are_shown_in_vietnam_time(axis: AxisHarness) -> None:
    """A message received at 17:30 UTC shows as 00:30 the next day, dd/MM/yyyy."""
    sender = await axis.register(G22)
    await axis.register(H41)
    _, sent = await axis.send(sender, axis.edoc(sender, [H41]))
    raw_sql(axis.store).execute(
        "UPDATE messages SET received_at = ? WHERE id = ?",
        ("2026-11-23T17:30:00.000000+00:00", sent["id"]),
    )
    client, _ = await signed_in(axis, "auditor")
    try:
        page = await client.get(f"/console/messages/{sent['id']}")
        assert "24/11/2026 00:30" in page.text
    finally:
        await client.close()
