"""Who may use which console route: without a session, signed in as an auditor, as an admin.

Every route of the console is in the tables below (a test checks that none is left out), and
each is tried in all three ways over a real server, on both engines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import cast

import pytest
from aiohttp.test_utils import TestServer

from axis import bootstrap, jobs
from axis.config import Settings
from axis.model import AuditFilter
from axis.signing import AxisKey
from axis.store import open_store
from axis.web.app import create_app
from tests.support import pki
from tests.support.console import ConsoleClient, signed_in
from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"

# pages anyone signed in reads
READS = [
    "/console/",
    "/console/messages",
    "/console/messages?q={document_id}",
    "/console/messages?sender=ha+noi&state=queued",
    "/console/messages/{id}",
    "/console/messages/{id}/receipt",
    "/console/deliveries",
    "/console/deliveries?state=failed",
    "/console/agencies",
    "/console/agencies?q=ha+noi",
    "/console/agencies?parent=000.00.00.G22",
    "/console/agencies/{organ_id}",
    "/console/audit",
    "/console/audit?type=message_received&organ=000.00.00.H41",
    "/console/audit/verify",
    "/console/audit/checkpoints",
    "/console/audit/checkpoints/{seq}",
    "/console/audit/export?format=csv",
    "/console/audit/export?format=jsonl&message_id={id}",
]
# pages only administrators see (a confirmation before an action)
ADMIN_READS = ["/console/deliveries/{delivery_id}/redeliver"]
# actions, in an order that leaves each next one possible; what an admin gets back
ACTIONS: list[tuple[str, dict[str, str], int]] = [
    ("/console/messages/{id}/body", {}, 200),
    ("/console/deliveries/{delivery_id}/redeliver", {"back": "dead"}, 303),
    ("/console/agencies/{organ_id}/tokens", {}, 201),
    ("/console/tokens/{token_id}/revoke", {"organ_id": H41}, 303),
    ("/console/agencies/{organ_id}/certificates", {"pem": "{new_pem}"}, 303),
    ("/console/agencies/{organ_id}/certificates/{sha256}/remove", {}, 303),
    ("/console/agencies/{organ_id}/status", {"status": "suspended"}, 303),
]
# open to anyone: the way in, the language, the style, the not-found page
PUBLIC = {
    "/console",
    "/console/signin",
    "/console/language/{lang}",
    "/console/static/{name}",
    "/console/{tail}",
    "/console/signout",  # signed in or not, it ends at the sign-in page
}


@dataclass
class World:
    """What the routes are tried on: a message, its delivery, an agency with a pin, a token."""

    values: dict[str, str]

    def fill(self, template: str) -> str:
        return template.format(**self.values)


async def world(axis: AxisHarness) -> World:
    sender = await axis.register(G22)
    recipient = await axis.register(H41)
    status, sent = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201, sent
    _, issued = await axis.post_json(axis.admin, f"/v1/admin/agencies/{H41}/tokens", None)
    checkpoint = await jobs.make_checkpoint(
        axis.store, bootstrap.load_key(axis.settings), actor="test"
    )
    assert checkpoint is not None
    return World(
        {
            "id": sent["id"],
            "document_id": sent["document_id"],
            "delivery_id": sent["recipients"][0]["delivery_id"],
            "organ_id": H41,
            "sha256": hashlib.sha256(recipient.ident.cert_der).hexdigest(),
            "token_id": issued["token_id"],
            "seq": str(checkpoint.seq),
            "new_pem": pki.identity("rsa2048", common_name="new H41").cert_pem.decode(),
        }
    )


async def agency_state(axis: AxisHarness) -> tuple[str, int, bool]:
    """H41's status, pinned certificates, and whether the agency token is still live."""
    _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{H41}")
    return shown["status"], len(shown["certificates"]), bool(shown["token_ids"])


def test_every_console_route_is_in_the_tables(settings: Settings) -> None:
    """A route added to the console without its access rules fails here."""

    class _NoKey:
        cert_pem = b""

    app = create_app(settings, open_store(settings), cast(AxisKey, _NoKey()), own_store=False)
    served = {
        route.resource.canonical
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/console")
    }
    listed = {t.split("?")[0] for t in READS + ADMIN_READS} | {a[0] for a in ACTIONS} | PUBLIC
    assert served == listed, {"untested": served - listed, "gone": listed - served}


async def test_without_a_session_every_page_and_action_goes_to_sign_in(axis: AxisHarness) -> None:
    """Nothing is shown and nothing done before signing in; the page asked for is kept."""
    w = await world(axis)
    before = await agency_state(axis)
    client = ConsoleClient(axis.url)
    try:
        for template in READS + ADMIN_READS:
            answer = await client.get(w.fill(template))
            assert answer.status == 303, template
            assert answer.location.startswith("/console/signin?next="), template
        for template, data, _ in ACTIONS:
            form = {k: w.fill(v) for k, v in data.items()}
            answer = await client.post(w.fill(template), form, csrf=False)
            assert answer.status == 303 and "/console/signin" in answer.location, template
        assert await agency_state(axis) == before
    finally:
        await client.close()


async def test_an_auditor_reads_everything_and_changes_nothing(axis: AxisHarness) -> None:
    """Every page opens; every action, even with the session's own CSRF token, is 403."""
    w = await world(axis)
    before = await agency_state(axis)
    client, _ = await signed_in(axis, "auditor")
    try:
        for template in READS:
            answer = await client.get(w.fill(template))
            assert answer.status == 200, (template, answer.text[:800])
        for template in ADMIN_READS:
            answer = await client.get(w.fill(template))
            assert answer.status == 403 and "only administrators" in answer.text, template
        page = await client.get(f"/console/agencies/{H41}")
        assert 'action="/console/agencies' not in page.text  # no forms to change anything
        assert '/body"' not in (await client.get(w.fill("/console/messages/{id}"))).text
        for template, data, _ in ACTIONS:
            form = {k: w.fill(v) for k, v in data.items()}
            answer = await client.post(w.fill(template), form)
            assert answer.status == 403, (template, answer.text[:500])
            assert "only administrators" in answer.text
        assert await agency_state(axis) == before
        events = await axis.store.audit_events(
            AuditFilter(type="body_downloaded"), cursor=None, limit=10
        )
        assert events.items == []
    finally:
        await client.close()


async def test_an_admin_reads_and_acts_and_each_action_needs_the_csrf_token(
    axis: AxisHarness,
) -> None:
    """Without its CSRF token an action is 403 and not done; with it, it is done."""
    w = await world(axis)
    client, token_id = await signed_in(axis, "admin")
    try:
        for template in READS + ADMIN_READS:
            answer = await client.get(w.fill(template))
            assert answer.status == 200, (template, answer.text[:800])
        for template, data, expected in ACTIONS:
            form = {k: w.fill(v) for k, v in data.items()}
            refused = await client.post(w.fill(template), form, csrf=False)
            assert refused.status == 403 and "CSRF" in refused.text, template
            forged = await client.post(w.fill(template), {**form, "csrf": "0" * 64}, csrf=False)
            assert forged.status == 403, template
            await client.get(f"/console/agencies/{H41}")  # a fresh page, its token
            done = await client.post(w.fill(template), form)
            assert done.status == expected, (template, done.text[:800])
        status, pins, token_live = await agency_state(axis)
        assert status == "suspended" and pins == 1 and token_live  # the token issued above
        trail = await axis.store.audit_events(AuditFilter(organ_id=H41), cursor=None, limit=100)
        actors = {e.actor for e in trail.items if e.type in ("agency_changed", "token_issued")}
        assert f"admin:{token_id}" in actors
    finally:
        await client.close()


@pytest.mark.sqlite_only
async def test_a_session_from_one_process_is_known_to_another_sharing_the_store(
    axis: AxisHarness,
) -> None:
    """Two servers on one store (as SO_REUSEPORT workers are): a session made through one
    is taken by the other, and signing out through the other ends it for both."""
    other_store = open_store(axis.settings)
    await other_store.open()
    app = create_app(axis.settings, other_store, bootstrap.load_key(axis.settings), own_store=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client, _ = await signed_in(axis, "admin")
    try:
        client.base = str(server.make_url("")).rstrip("/")
        assert (await client.get("/console/agencies")).status == 200
        assert (await client.post("/console/signout")).status == 303
        client.base = axis.url
        assert (await client.get("/console/agencies")).status == 303
    finally:
        await client.close()
        await server.close()
        await other_store.close()
