"""Auditors' API over real flows: every filter, trails, exports, verify, signed checkpoints."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import xmlsec
from lxml import etree
from signxml import XMLVerifier

from axis import bootstrap, timeutil, tokens
from axis.config import Settings
from axis.jobs import make_checkpoint
from axis.store import open_store
from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, start_axis

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
H22 = "000.00.00.H22"  # closed in agencies.yaml: forwarded to its successor
H60 = "000.00.00.H60"


async def auditor(axis: AxisHarness) -> dict[str, str]:
    """A fresh auditor token, issued as `axis token issue --role auditor` does."""
    token_id, token, token_hash = tokens.generate()
    await axis.store.issue_token(token_id, token_hash, "auditor", None, actor="cli:test")
    return {"Authorization": f"Bearer {token}"}


async def real_flows(axis: AxisHarness) -> dict[str, Any]:
    """A document to two recipients (one forwarded), fetched, acked, answered; admin acts."""
    g22 = await axis.register(G22)
    h41 = await axis.register(H41)
    h60 = await axis.register(H60)
    status, sent = await axis.send(g22, axis.edoc(g22, [H41, H22]))
    assert status == 201, sent
    status, _ = await axis.get(h41, f"/v1/inbox/{sent['id']}")
    assert status == 200
    assert (await axis.post_json(h41, f"/v1/inbox/{sent['id']}/ack", {"result": "done"}))[0] == 200
    nack = await axis.post_json(h60, f"/v1/inbox/{sent['id']}/ack", {"result": "fail"})
    assert nack[0] == 200
    status, answer = await axis.send_status(h41, axis.status(h41, G22, sent["document_id"], "01"))
    assert status == 201, answer
    other_status, other = await axis.send(h41, axis.edoc(h41, [G22]))
    assert other_status == 201
    async with axis.session.post(
        f"{axis.url}/v1/admin/agencies/{H41}/tokens", headers=axis.admin
    ) as resp:
        spare = (await resp.json())["token_id"]
    async with axis.session.delete(f"{axis.url}/v1/admin/tokens/{spare}", headers=axis.admin):
        pass
    return {"edoc": sent, "status": answer, "other": other, "revoked": spare}


async def listing(axis: AxisHarness, who: dict[str, str], query: str, limit: int = 7) -> list[Any]:
    """Every item of ``GET /v1/audit/events?…``, following cursors."""
    items: list[Any] = []
    cursor = ""
    while True:
        path = f"/v1/audit/events?limit={limit}{'&' + query if query else ''}{cursor}"
        status, page = await axis.get(who, path)
        assert status == 200, page
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        cursor = f"&cursor={page['next_cursor']}"


@pytest.fixture
async def flows(axis: AxisHarness) -> tuple[dict[str, str], dict[str, Any]]:
    """An auditor's headers, and what the real flows produced."""
    done = await real_flows(axis)
    return await auditor(axis), done


async def test_every_state_change_and_admin_act_is_an_event(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """Received, forwarded, queued, fetched, acked, failed, relayed and admin acts are logged."""
    who, done = flows
    events = await listing(axis, who, "")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert set(events[0]) == {
        "seq",
        "at",
        "type",
        "actor",
        "message_id",
        "document_id",
        "from",
        "to",
        "detail",
        "hash",
    }
    edoc = done["edoc"]["id"]
    mine = [(e["type"], e["to"]) for e in events if e["message_id"] == edoc]
    assert ("message_received", None) in mine
    assert ("delivery_forwarded", H60) in mine
    assert {t for t, _ in mine} >= {"delivery_queued", "delivery_fetched", "delivery_acked"}
    assert ("delivery_failed", H60) in mine
    relayed = [e for e in events if e["type"] == "status_relayed"]
    assert relayed and relayed[0]["message_id"] == done["status"]["id"]
    assert relayed[0]["to"] == G22 and relayed[0]["detail"]["status_code"] == "01"
    kinds = {e["type"] for e in events}
    assert {"agency_changed", "token_issued", "token_revoked"} <= kinds
    revoked = next(e for e in events if e["type"] == "token_revoked")
    assert revoked["detail"]["token_id"] == done["revoked"]
    assert revoked["actor"].startswith("admin:")


async def test_each_filter_gives_exactly_its_events(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """organ_id, document_id, message_id, type, since and until, alone and together."""
    who, done = flows
    everything = await listing(axis, who, "", limit=1000)
    middle = everything[len(everything) // 2]["at"]
    quoted = middle.replace("+", "%2B")
    cases: list[tuple[str, Any]] = [
        (f"organ_id={H60}", lambda e: H60 in (e["from"], e["to"])),
        (f"organ_id={G22}", lambda e: G22 in (e["from"], e["to"])),
        (
            f"document_id={done['edoc']['document_id']}",
            lambda e: e["document_id"] == done["edoc"]["document_id"],
        ),
        (f"message_id={done['other']['id']}", lambda e: e["message_id"] == done["other"]["id"]),
        ("type=delivery_queued", lambda e: e["type"] == "delivery_queued"),
        (f"type=delivery_acked&organ_id={H41}", lambda e: e["type"] == "delivery_acked"),
        (f"since={quoted}", lambda e: e["at"] >= middle),
        (f"until={quoted}", lambda e: e["at"] < middle),
        (
            f"since={quoted}&organ_id={H41}",
            lambda e: e["at"] >= middle and H41 in (e["from"], e["to"]),
        ),
    ]
    for query, wanted in cases:
        expected = [e for e in everything if wanted(e)]
        got = await listing(axis, who, query, limit=2)
        assert got == expected, query
        assert expected, f"{query} selects nothing: the flows do not exercise it"


async def test_the_trail_of_a_message_covers_every_recipient(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """`GET /v1/audit/messages/{id}` gives the message and all its events, every recipient."""
    who, done = flows
    edoc = done["edoc"]
    status, trail = await axis.get(who, f"/v1/audit/messages/{edoc['id']}")
    assert status == 200
    assert trail["message"]["sha256"] == edoc["sha256"]
    assert trail["message"]["body_purged_at"] is None
    assert {r["delivered_to"]: r["state"] for r in trail["message"]["recipients"]} == {
        H41: "acked",
        H60: "failed",
    }
    assert [e["message_id"] for e in trail["events"]] == [edoc["id"]] * len(trail["events"])
    assert trail["events"] == await listing(axis, who, f"message_id={edoc['id']}")
    assert {e["to"] for e in trail["events"] if e["type"] == "delivery_queued"} == {H41, H60}
    assert trail["message"]["referred_by"] == [
        {"message_id": done["status"]["id"], "relation": "status_of"}
    ]
    missing = await axis.get(who, "/v1/audit/messages/msg_nosuchmessage")
    assert missing[0] == 404


async def test_exports_stream_the_same_events_as_csv_and_jsonl(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """`/v1/audit/export` gives the filtered events, in both formats, as a stream."""
    who, _ = flows
    for query in ("", f"&organ_id={H41}", "&type=delivery_queued"):
        expected = await listing(axis, who, query.lstrip("&"), limit=1000)
        async with axis.session.get(
            f"{axis.url}/v1/audit/export?format=jsonl{query}", headers=who
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("application/x-ndjson")
            assert resp.headers.get("Transfer-Encoding") == "chunked"
            lines = (await resp.read()).splitlines()
        assert [orjson.loads(line) for line in lines] == expected
        async with axis.session.get(
            f"{axis.url}/v1/audit/export?format=csv{query}", headers=who
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO((await resp.read()).decode(), newline="")))
        assert [int(r["seq"]) for r in rows] == [e["seq"] for e in expected]
        assert [orjson.loads(r["detail"]) for r in rows] == [e["detail"] for e in expected]
        assert [r["hash"] for r in rows] == [e["hash"] for e in expected]


async def test_only_auditors_and_admins_read_the_log(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """An agency token is 403, no token 401; auditor and admin tokens are served."""
    who, _ = flows
    agency = await axis.register("000.00.00.H05")
    paths = (
        "/v1/audit/events",
        "/v1/audit/export",
        "/v1/audit/verify",
        "/v1/audit/checkpoints",
        "/v1/audit/checkpoints/latest",
    )
    for path in paths:
        assert (await axis.get(agency, path))[0] == 403, path
        assert (await axis.get({}, path))[0] == 401, path
    assert (await axis.get(who, "/v1/audit/verify"))[0] == 200
    assert (await axis.get(axis.admin, "/v1/audit/verify"))[0] == 200


async def test_bad_parameters_are_named(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """Malformed limits, times, formats, cursors and checkpoint numbers are 400 naming them."""
    who, _ = flows
    for path, name in (
        ("/v1/audit/events?limit=0", "limit"),
        ("/v1/audit/events?since=yesterday", "since"),
        ("/v1/audit/events?until=2026-01-01T00:00:00", "until"),
        ("/v1/audit/events?cursor=zzz", "cursor"),
        ("/v1/audit/export?format=xml", "format"),
        ("/v1/audit/checkpoints/first", "seq"),
    ):
        status, problem = await axis.get(who, path)
        assert status == 400, path
        assert problem["code"] == "invalid_request" and problem["detail"].startswith(name)
    assert (await axis.get(who, "/v1/audit/checkpoints/99999"))[0] == 404


async def test_verify_and_signed_checkpoints(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    """The chain verifies; a checkpoint signs its head and verifies with standard tools."""
    who, _ = flows
    status, verdict = await axis.get(who, "/v1/audit/verify")
    assert status == 200
    assert verdict["ok"] is True and verdict["checkpoints"] == 0
    head = verdict["head"]
    assert verdict["events"] == head["seq"]
    assert (await axis.get(who, "/v1/audit/checkpoints"))[1] == {"items": [], "next_cursor": None}
    key = bootstrap.load_key(axis.settings)
    checkpoint = await make_checkpoint(axis.store, key, actor="axis")
    assert checkpoint is not None and (checkpoint.seq, checkpoint.hash) == (
        head["seq"],
        head["hash"],
    )
    assert await make_checkpoint(axis.store, key, actor="axis") is None  # nothing new
    status, page = await axis.get(who, "/v1/audit/checkpoints")
    [item] = page["items"]
    assert (item["seq"], item["hash"], item["at"]) == (head["seq"], head["hash"], checkpoint.at)
    status, xml = await axis.get(who, "/v1/audit/checkpoints/latest")
    assert status == 200 and xml == item["xml"].encode() == checkpoint.xml
    assert (await axis.get(who, f"/v1/audit/checkpoints/{head['seq']}"))[1] == xml
    root = etree.fromstring(xml)
    ns = {"c": "urn:axis:audit:checkpoint:1"}
    assert root.findtext("c:Seq", namespaces=ns) == str(head["seq"])
    assert root.findtext("c:Hash", namespaces=ns) == head["hash"]
    cert = key.cert_pem
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(cert, xmlsec.constants.KeyDataFormatCertPem)
    context.verify(xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature))
    XMLVerifier().verify(xml, x509_cert=cert.decode())
    if shutil.which("xmlsec1"):
        (tmp_path / "checkpoint.xml").write_bytes(xml)
        (tmp_path / "axis.pem").write_bytes(cert)
        done = subprocess.run(  # noqa: ASYNC221 - a short offline check
            ["xmlsec1", "--verify", "--pubkey-cert-pem", "axis.pem", "checkpoint.xml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    status, verdict = await axis.get(who, "/v1/audit/verify")
    assert verdict["ok"] is True and verdict["checkpoints"] == 1
    assert verdict["last_checkpoint"]["seq"] == head["seq"]
    assert verdict["head"]["seq"] == head["seq"] + 1  # the checkpoint event itself


def settings_with(tmp_path: Path, axis_key_pair: tuple[bytes, bytes], **env: str) -> Settings:
    return keyed_settings(tmp_path / "var2", axis_key_pair, env)


async def test_the_axis_signs_at_intervals_and_on_shutdown(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> None:
    """With AXIS_AUDIT_CHECKPOINT_INTERVAL set, checkpoints appear by themselves; stopping the
    axis signs the last head."""
    settings = settings_with(tmp_path, axis_key_pair, AXIS_AUDIT_CHECKPOINT_INTERVAL="0.1")
    async with start_axis(settings) as axis:
        who = await auditor(axis)
        sender = await axis.register(G22)
        await axis.send(sender, axis.edoc(sender, [H41]))
        head = await axis.store.audit_head()
        assert head is not None
        deadline = time.monotonic() + 20
        while (latest := await axis.store.checkpoint(None)) is None or latest.seq < head[0]:
            assert time.monotonic() < deadline, "no checkpoint within 20 s at a 0.1 s interval"
            await asyncio.sleep(0.05)
        await axis.send(sender, axis.edoc(sender, [H41]))
        last_before_stop = await axis.store.audit_head()
        assert (await axis.get(who, "/v1/audit/verify"))[1]["ok"] is True
    store = open_store(settings)
    await store.open()
    try:
        final = await store.checkpoint(None)
        assert last_before_stop is not None and final is not None
        assert final.seq >= last_before_stop[0]  # the shutdown checkpoint covers it all
        assert await store.checkpoint_due() is None
        verdict = await store.verify_audit([axis_key_pair[1]])
        assert verdict.ok and verdict.checkpoints >= 2
    finally:
        await store.close()


async def test_time_filters_use_the_callers_offset(
    axis: AxisHarness, flows: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """`since` with a +07:00 offset means the same instant as in UTC."""
    who, _ = flows
    everything = await listing(axis, who, "", limit=1000)
    cut = timeutil.parse_query_time("t", everything[3]["at"])
    hanoi = cut.astimezone(timeutil.parse_query_time("t", "2026-01-01T00:00:00+07:00").tzinfo)
    got = await listing(axis, who, f"since={hanoi.isoformat().replace('+', '%2B')}")
    assert got == everything[3:]
