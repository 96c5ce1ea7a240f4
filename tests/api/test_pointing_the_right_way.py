"""Answers that point the user the right way (issue 16, finding 9)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from axis import bootstrap, cli
from axis.config import Settings
from tests.support import pki
from tests.support.harness import AxisHarness

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "package.edxml"
G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
H42 = "000.00.00.H42"


async def test_an_unsigned_template_is_signature_missing(axis: AxisHarness) -> None:
    """The README's template sent as is (never signed): signature_missing, "sign the package",
    not an untrusted signer with the SHA-256 of nothing."""
    sender = await axis.register(G22)
    await axis.register(H41)
    status, problem = await axis.send(sender, EXAMPLE.read_bytes())
    assert (status, problem["code"]) == (400, "signature_missing"), problem
    assert problem["detail"].startswith("the signature is empty: sign the package")
    assert "e3b0c442" not in problem["detail"]


async def test_mail_to_a_closed_code_names_its_suspended_successor(axis: AxisHarness) -> None:
    """A closed code whose successor is suspended: the detail says the closed code forwards,
    and names the successor as the one suspended."""
    sender = await axis.register(G22)
    await axis.register(H41)
    await axis.register(H42, status="closed", successor=H41)
    await axis.register(H41, status="suspended")
    status, problem = await axis.send(sender, axis.edoc(sender, [H42]))
    assert (status, problem["code"]) == (422, "recipient_unavailable"), problem
    assert problem["detail"] == (
        f"To/OrganId {H42} is closed and its mail goes to {H41} ({H42} -> {H41}),"
        " which is suspended"
    )


async def test_a_token_for_an_agency_that_is_not_active_is_refused(axis: AxisHarness) -> None:
    """Issuing a token for a suspended agency is 409 agency_not_active (its token would be
    refused at once); for a closed one the detail names where its mail goes; nothing issued."""
    await axis.register(H41)
    await axis.register(H42, status="closed", successor=H41)
    await axis.register(G22, status="suspended")
    path = f"/v1/admin/agencies/{G22}/tokens"
    async with axis.session.post(f"{axis.url}{path}", headers=axis.admin) as resp:
        problem = await resp.json()
        assert (resp.status, problem["code"]) == (409, "agency_not_active"), problem
        assert "suspended" in problem["detail"] and "active first" in problem["detail"]
    _, before = await axis.get(axis.admin, f"/v1/admin/tokens?organ_id={H42}")
    path = f"/v1/admin/agencies/{H42}/tokens"
    async with axis.session.post(f"{axis.url}{path}", headers=axis.admin) as resp:
        problem = await resp.json()
        assert resp.status == 409 and f"issue the token for {H41}" in problem["detail"]
    _, after = await axis.get(axis.admin, f"/v1/admin/tokens?organ_id={H42}")
    assert after["items"] == before["items"]


def test_the_command_line_refuses_a_token_for_a_suspended_agency(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`axis token issue --agency` applies the same rule, with the same words."""
    asyncio.run(bootstrap.initialize(settings))
    args = ["agencies", "put", G22, "--data", str(settings.data), "--status", "suspended"]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(["token", "issue", "--agency", G22, "--data", str(settings.data)]) == 1
    out = capsys.readouterr()
    assert out.out == "" and "is suspended" in out.err and "active first" in out.err


async def test_a_certificate_pinned_for_another_agency_is_refused_naming_it(
    axis: AxisHarness,
) -> None:
    """G22's certificate pinned for H41 (by PUT or by POST …/certificates) is 400 naming
    G22; G22 keeps its pin and still sends."""
    ident = pki.identity("rsa2048", common_name="G22 signer")
    sender = await axis.register(G22, ident=ident)
    await axis.register(H41)
    body = {"name": "H41", "certificates": [ident.cert_pem.decode()]}
    async with axis.session.put(
        f"{axis.url}/v1/admin/agencies/{H41}", json=body, headers=axis.admin
    ) as resp:
        problem = await resp.json()
        assert (resp.status, problem["code"]) == (400, "invalid_request"), problem
        assert f"already pinned for {G22}" in problem["detail"]
    async with axis.session.post(
        f"{axis.url}/v1/admin/agencies/{H41}/certificates",
        data=ident.cert_pem,
        headers={**axis.admin, "Content-Type": "application/x-pem-file"},
    ) as resp:
        problem = await resp.json()
        assert resp.status == 400 and f"already pinned for {G22}" in problem["detail"]
    _, h41 = await axis.get(axis.admin, f"/v1/admin/agencies/{H41}")
    assert ident.cert_pem.decode().strip() not in [c["pem"].strip() for c in h41["certificates"]]
    status, _ = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201
