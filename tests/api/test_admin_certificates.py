"""Certificates over HTTP: several per agency, rotation while mail flows, expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import replace
from typing import Any

from axis import timeutil
from axis.registry import Certificate
from tests.support import pki
from tests.support.harness import AxisHarness, TestAgency, start_axis
from tests.support.rawsql import raw_sql

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
DAY = dt.timedelta(days=1)


async def put(axis: AxisHarness, organ_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with axis.session.put(
        f"{axis.url}/v1/admin/agencies/{organ_id}", json=body, headers=axis.admin
    ) as resp:
        return resp.status, await resp.json()


async def pin(axis: AxisHarness, organ_id: str, pem: bytes) -> tuple[int, Any]:
    async with axis.session.post(
        f"{axis.url}/v1/admin/agencies/{organ_id}/certificates",
        data=pem,
        headers={**axis.admin, "Content-Type": "application/x-pem-file"},
    ) as resp:
        return resp.status, await resp.json()


async def unpin(axis: AxisHarness, organ_id: str, sha256: str) -> int:
    async with axis.session.delete(
        f"{axis.url}/v1/admin/agencies/{organ_id}/certificates/{sha256}", headers=axis.admin
    ) as resp:
        return resp.status


def certificate_events(axis: AxisHarness) -> list[tuple[str, str]]:
    conn = raw_sql(axis.store)
    rows = conn.execute(
        "SELECT to_id, detail FROM audit_events WHERE type = 'certificate_expiring' ORDER BY seq"
    )
    return [(to, json.loads(detail)["sha256"]) for to, detail in rows]


async def test_rotation_while_documents_flow_refuses_none(axis: AxisHarness) -> None:
    """Documents keep flowing while a new certificate is pinned and the old one removed."""
    old = pki.identity("rsa2048", common_name="G22 2025", slot=0)
    new = pki.identity("rsa2048", common_name="G22 2026", slot=1)
    sender = await axis.register(G22, ident=old)
    renewed = TestAgency(G22, new, sender.token)
    await axis.register(H41)
    statuses: list[int] = []

    async def flow(who: TestAgency, count: int) -> None:
        for _ in range(count):
            status, _ = await axis.send(who, axis.edoc(who, [H41]))
            statuses.append(status)

    async def add_new() -> None:
        await asyncio.sleep(0)
        both = [old.cert_pem.decode(), new.cert_pem.decode()]
        status, shown = await put(axis, G22, {"name": "VPCP", "certificates": both})
        assert status == 200 and len(shown["certificates"]) == 2

    async def remove_old() -> None:
        await asyncio.sleep(0)
        _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{G22}")
        [gone] = [c["sha256"] for c in shown["certificates"] if "2025" in c["subject"]]
        assert await unpin(axis, G22, gone) == 204

    await asyncio.gather(flow(sender, 8), add_new())
    await flow(renewed, 2)  # both pinned: both sign
    await flow(sender, 2)
    await asyncio.gather(flow(renewed, 8), remove_old())
    assert statuses == [201] * 20
    status, problem = await axis.send(sender, axis.edoc(sender, [H41]))
    assert (status, problem["code"]) == (403, "untrusted_signer")


async def test_an_expired_certificate_is_refused_beside_a_valid_one(axis: AxisHarness) -> None:
    """A signature by an expired pin is untrusted_signer; the agency's valid pin still signs."""
    now = timeutil.now()
    expired = pki.identity("rsa2048", slot=2, not_before=now - 400 * DAY, not_after=now - DAY)
    valid = pki.identity("rsa2048", slot=3)
    sender = await axis.register(G22, ident=expired)
    status, _ = await pin(axis, G22, valid.cert_pem)
    assert status == 201
    await axis.register(H41)
    status, problem = await axis.send(sender, axis.edoc(sender, [H41]))
    assert (status, problem["code"]) == (403, "untrusted_signer")
    renewed = TestAgency(G22, valid, sender.token)
    status, answer = await axis.send(renewed, axis.edoc(renewed, [H41]))
    assert status == 201, answer
    _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{G22}")
    states = sorted((c["state"], c["expiring"]) for c in shown["certificates"])
    assert states == [("expired", True), ("valid", False)]


async def test_pinning_one_certificate_keeps_the_others(axis: AxisHarness) -> None:
    """POST …/certificates adds a pin (201, then 200 again); bad PEM 400; unknown codes 404."""
    await axis.register(G22)
    extra = pki.identity("p256", slot=4)
    status, shown = await pin(axis, G22, extra.cert_pem)
    assert status == 201 and len(shown["certificates"]) == 2
    status, shown = await axis.post_json(
        axis.admin,
        f"/v1/admin/agencies/{G22}/certificates",
        {"certificate": extra.cert_pem.decode()},
    )
    assert status == 200 and len(shown["certificates"]) == 2
    status, problem = await pin(axis, G22, b"-----BEGIN CERTIFICATE-----\nnope\n")
    assert status == 400 and problem["detail"].startswith("certificates")
    status, problem = await pin(axis, "000.00.00.Z98", extra.cert_pem)
    assert status == 404
    assert await unpin(axis, G22, "0" * 64) == 404


async def test_certificates_expiring_soon_get_one_audit_event_a_day(axis: AxisHarness) -> None:
    """Pinning a certificate ending within 30 days records one certificate_expiring event."""
    now = timeutil.now()
    soon = pki.identity("p256", slot=5, not_before=now - DAY, not_after=now + 10 * DAY)
    await axis.register(G22, ident=soon)
    await axis.register(G22, ident=soon, name="VPCP")  # a second change: no second report
    _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{G22}")
    [cert] = shown["certificates"]
    assert cert["expiring"] and cert["state"] == "valid"
    assert certificate_events(axis) == [(G22, cert["sha256"])]
    _, ready = await axis.get({}, "/readyz")
    assert [c["sha256"] for c in ready["certificates_expiring"]] == [cert["sha256"]]


async def test_a_starting_axis_reports_certificates_pinned_meanwhile(axis: AxisHarness) -> None:
    """Certificates pinned by another process are reported when an axis starts."""
    now = timeutil.now()
    soon = pki.identity("p256", slot=6, not_before=now - DAY, not_after=now + 3 * DAY)
    registered = (await axis.store.registry()).get(G22)
    assert registered is not None
    pinned = Certificate.from_pem(soon.cert_pem)
    await axis.store.save_agency(replace(registered, certificates=(pinned,)), actor="cli:ops")
    assert certificate_events(axis) == []
    async with start_axis(axis.settings):
        pass
    assert certificate_events(axis) == [(G22, pinned.sha256)]
