"""Administrators register connected systems (VDXP) by the API and the command line: the secret
is shown once and kept sealed, each act is an audit event, and what a system may do follows
what the administrator wrote."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.support.harness import AxisHarness
from tests.support.rawsql import raw_sql

ROOT = Path(__file__).resolve().parents[2]
G22, H41, H14 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14"


async def post(axis: AxisHarness, path: str, body: Any) -> tuple[int, Any]:
    async with axis.session.post(f"{axis.url}{path}", json=body, headers=axis.admin) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_system_is_registered_with_a_secret_shown_once_and_kept_sealed(
    axis: AxisHarness,
) -> None:
    """POST answers 201 with a 44-character secret; GET never shows it; the store holds it
    only sealed (a database dump alone does not reveal it); systems.key is 0600."""
    body = {"id": "vxp.g22", "name": "VPCP", "agencies": [G22]}
    status, made = await post(axis, "/v1/admin/systems", body)
    assert status == 201 and len(made["secret"]) == 44
    assert made["signature"] == "required" and made["register"] is False
    status, shown = await axis.get(axis.admin, "/v1/admin/systems/vxp.g22")
    assert status == 200 and "secret" not in shown and shown["agencies"] == [G22]
    status, page = await axis.get(axis.admin, "/v1/admin/systems")
    assert [s["id"] for s in page["items"]] == ["vxp.g22"]
    sealed = raw_sql(axis.store).execute("SELECT secret FROM systems").fetchone()[0]
    assert made["secret"] not in sealed and sealed.startswith("v1.")
    mode = axis.settings.systems_key_path.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    status, again = await post(axis, "/v1/admin/systems", body)
    assert status == 409 and again["code"] == "duplicate_conflict"


async def test_listing_rules_are_the_contracts(axis: AxisHarness) -> None:
    """A code is listed by one system; a descendant may be listed by another; an unregistered
    code or a malformed id is refused naming it."""
    unit = "000.00.01.H41"
    await axis.register(unit, kind="unit", parent=H41)
    assert (await post(axis, "/v1/admin/systems", {"id": "a", "name": "A", "agencies": [H41]}))[
        0
    ] == 201
    status, clash = await post(
        axis, "/v1/admin/systems", {"id": "b", "name": "B", "agencies": [H41]}
    )
    assert status == 409 and "already served by system a" in clash["detail"]
    status, _ = await post(axis, "/v1/admin/systems", {"id": "b", "name": "B", "agencies": [unit]})
    assert status == 201
    status, missing = await post(
        axis, "/v1/admin/systems", {"id": "c", "name": "C", "agencies": ["000.00.00.X01"]}
    )
    assert status == 400 and "000.00.00.X01" in missing["detail"]
    status, bad = await post(
        axis, "/v1/admin/systems", {"id": "bad id!", "name": "x", "agencies": [H14]}
    )
    assert status == 400 and "system id" in bad["detail"]


async def test_put_replaces_the_description_and_never_the_secret(axis: AxisHarness) -> None:
    """PUT takes the body's fields, absent ones their defaults; the secret keeps working."""
    await axis.register(H41)
    secret = await axis.add_system("vxp.h41", [H41], signature="optional", register=True)
    status, put = await axis.put_system("vxp.h41", agencies=[H41, H14])
    assert status == 200
    assert put["agencies"] == [H14, H41] and put["signature"] == "required"
    assert put["register"] is False
    async with axis.sdk("vxp.h41", secret) as sdk:
        assert (await sdk.countReceiveEdoc())["status"] == "OK"
    status, _ = await axis.put_system("vxp.none", agencies=[H41])
    assert status == 404


async def test_every_act_on_a_system_is_an_audit_event(axis: AxisHarness) -> None:
    """Registering, changing, rotating, retiring and disabling each leave their event, naming
    the administrator's token."""
    await axis.add_system("vxp.g22", [G22])
    await axis.put_system("vxp.g22", agencies=[G22], name="Renamed")
    await post(axis, "/v1/admin/systems/vxp.g22/secret", {})
    async with axis.session.delete(
        f"{axis.url}/v1/admin/systems/vxp.g22/secret/previous", headers=axis.admin
    ) as resp:
        assert resp.status == 204
    async with axis.session.delete(
        f"{axis.url}/v1/admin/systems/vxp.g22/secret/previous", headers=axis.admin
    ) as resp:
        assert resp.status == 404  # nothing left to retire
    async with axis.session.delete(f"{axis.url}/v1/admin/systems/vxp.g22", headers=axis.admin):
        pass
    _, events = await axis.get(axis.admin, "/v1/audit/events?limit=1000")
    ours = [e for e in events["items"] if e["type"].startswith("system_")]
    assert [e["type"] for e in ours] == [
        "system_registered",
        "system_changed",
        "system_secret_rotated",
        "system_secret_retired",
        "system_disabled",
    ]
    assert all(e["actor"].startswith("admin:") for e in ours)
    assert all(e["detail"]["system_id"] == "vxp.g22" for e in ours)


async def answers_within(axis: AxisHarness, system: str, secret: str, code: str) -> bool:
    """Whether the running axis answers ``code`` to the system within 5 s (a change made by
    another process reaches its registry snapshot within half a second)."""
    for _ in range(50):
        async with axis.sdk(system, secret) as sdk:
            if (await sdk.countReceiveEdoc())["ErrorCode"] == code:
                return True
        await asyncio.sleep(0.1)
    return False


def cli(data: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axis", *args, "--data", str(data), "--store", store],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_the_command_line_manages_systems_as_the_api_does(axis: AxisHarness) -> None:
    """`axis system add` prints the secret alone; list, show, put, rotate, retire, disable
    work on the same records (a running axis sees them), each refusal one clear line."""
    data, store = axis.settings.data, axis.settings.store
    await axis.register(H41)
    added = cli(data, store, "system", "add", "vxp.cli", "--name", "CLI", "--agency", H41,
                "--signature", "optional")  # fmt: skip
    assert added.returncode == 0, added.stderr
    (secret,) = added.stdout.splitlines()
    assert len(secret) == 44
    assert await answers_within(axis, "vxp.cli", secret, "0")  # seen within the cache's 0.5 s
    listed = cli(data, store, "system", "list", "--json")
    assert [orjson.loads(line)["id"] for line in listed.stdout.splitlines()] == ["vxp.cli"]
    columns = cli(data, store, "system", "list")
    assert columns.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "STATUS"]
    shown = orjson.loads(cli(data, store, "system", "show", "vxp.cli").stdout)
    assert shown["signature"] == "optional"
    put = cli(data, store, "system", "put", "vxp.cli", "--register")
    assert put.returncode == 0, put.stderr
    assert orjson.loads(cli(data, store, "system", "show", "vxp.cli").stdout)["register"] is True
    rotated = cli(data, store, "system", "rotate", "vxp.cli")
    (new,) = rotated.stdout.splitlines()
    assert new != secret
    assert cli(data, store, "system", "retire", "vxp.cli").returncode == 0
    assert await answers_within(axis, "vxp.cli", secret, "15")
    assert cli(data, store, "system", "disable", "vxp.cli").returncode == 0
    assert await answers_within(axis, "vxp.cli", new, "15")
    again = cli(data, store, "system", "add", "vxp.cli", "--name", "x", "--agency", H41)
    assert again.returncode != 0 and again.stderr.count("\n") == 1 and "axis:" in again.stderr
    missing = cli(data, store, "system", "show", "vxp.none")
    assert missing.returncode != 0 and "not registered" in missing.stderr
