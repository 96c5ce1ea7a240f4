"""Document software built on VNPT's SDK works against the axis by changing its endpoint,
systemid and secret: every /vxp operation end to end, over a real server, on both engines.

The client (``tests/support/vdxp_client.py``) behaves on the wire as the SDK does: headers
carried from call to call, a frozen timestamp, Java HashMap order, unpadded hash-file, the
body plus CRLF, ``Expect: 100-continue``, retries on a broken connection; and it checks every
answer against what the SDK can read (``strict``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from axis import vdxp
from tests.support import packets
from tests.support.harness import AxisHarness, TestAgency
from tests.support.rawsql import raw_sql

DATA = Path(__file__).resolve().parents[1] / "data" / "vdxp"
G22, H41, G12, H29 = "000.00.00.G22", "000.00.00.H41", "000.00.00.G12", "000.00.00.H29"


async def sender_and_recipient(axis: AxisHarness) -> tuple[TestAgency, TestAgency]:
    """G22 with a pinned certificate (it signs), H41 with a token (it reads through /v1)."""
    return await axis.register(G22), await axis.register(H41)


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["status"] == "OK", answer
    assert answer["ErrorCode"] == "0"
    return answer


def fails(answer: dict[str, Any], error_code: str, code: str | None = None) -> dict[str, Any]:
    assert answer["status"] == "FAIL", answer
    assert answer["ErrorCode"] == error_code, answer
    assert answer["ErrorDesc"], answer
    if code is not None:
        assert answer["code"] == code, answer
    return answer


async def test_a_package_sent_through_the_sdk_is_one_message_in_v1(axis: AxisHarness) -> None:
    """sendEdoc is the /v1 intake: the recipient reads it through /v1, the sender follows it
    through /v1 and the SDK alike; the stored bytes are the package without the SDK's CRLF."""
    sender, recipient = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.g22", [G22])
    package = axis.edoc(sender, [H41], subject="Về việc thử nghiệm trục")
    async with axis.sdk("vxp.g22", secret) as sdk:
        sent = ok(await sdk.sendEdoc(package, from_code=G22, to=[H41]))
        doc_id = sent["DocId"]
        again = ok(await sdk.sendEdoc(package, from_code=G22))  # a retry: the first answer
        assert again["DocId"] == doc_id
        status, inbox = await axis.get(recipient, "/v1/inbox")
        assert status == 200 and [m["id"] for m in inbox["items"]] == [doc_id]
        assert inbox["items"][0]["system"] == "vxp.g22"
        status, got = await axis.get(recipient, f"/v1/inbox/{doc_id}")
        assert status == 200 and got == package
        status, view = await axis.get(sender, f"/v1/messages/{doc_id}")
        assert view["authenticated_by"] == "signature" and view["system"] == "vxp.g22"
        listed = ok(await sdk.getSentEdocList())["data"]
        assert [(i["senderDocId"], i["toCode"], i["receiveStatus"]) for i in listed] == [
            (doc_id, H41, "processing")
        ]
        assert listed[0]["title"] == "Về việc thử nghiệm trục"
        await axis.post_json(recipient, f"/v1/inbox/{doc_id}/ack", {"result": "done"})
        (item,) = ok(await sdk.getSentEdocList(doc_id=doc_id))["data"]
        assert item["receiveStatus"] == "done" and item["sendStatus"] == "done"
    status, receipt = await axis.get(sender, f"/v1/messages/{doc_id}/receipt")
    assert status == 200 and b'<AuthenticatedBy system="vxp.g22">signature<' in receipt
    status, trail = await axis.get(axis.admin, f"/v1/audit/messages/{doc_id}")
    received = next(e for e in trail["events"] if e["type"] == "message_received")
    assert received["actor"] == "system:vxp.g22"
    assert received["detail"]["authenticated_by"] == "signature"
    assert received["detail"]["system"] == "vxp.g22"


async def test_mail_sent_through_v1_is_received_through_the_sdk(axis: AxisHarness) -> None:
    """The system's inbox lists, counts, fetches (base64 and raw) and acknowledges what /v1
    sent; processing keeps it listed, done removes it; the /v1 sender sees the ack."""
    sender, _ = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.h41", [H41])
    package = axis.edoc(sender, [H41])
    status, sent = await axis.send(sender, package)
    assert status == 201
    doc_id = sent["id"]
    async with axis.sdk("vxp.h41", secret) as sdk:
        assert ok(await sdk.countReceiveEdoc())["count"] == 1
        assert ok(await sdk.countReceiveStatus())["count"] == 0
        (item,) = ok(await sdk.getReceivedEdocList("edoc"))["data"]
        assert item["docId"] == doc_id and item["from"] == G22 and item["to"] == H41
        assert item["status"] == "initial" and item["serviceType"] == "eDoc"
        got = ok(await sdk.getEdoc(doc_id))
        assert base64.b64decode(got["data"]) == package
        raw = await sdk.downloadEdoc(doc_id)
        assert raw.status == 200 and raw.body == package
        ok(await sdk.updateStatus(doc_id, "processing"))
        (item,) = ok(await sdk.getReceivedEdocList("edoc"))["data"]
        assert item["status"] == "processing"
        ok(await sdk.updateStatus(doc_id, "done"))
        ok(await sdk.updateStatus(doc_id, "done"))  # a retry: harmless
        fails(await sdk.updateStatus(doc_id, "fail"), "26", "duplicate_conflict")
        assert ok(await sdk.getReceivedEdocList("edoc")).get("data", []) == []
    status, view = await axis.get(sender, f"/v1/messages/{doc_id}")
    assert view["recipients"][0]["state"] == "acked"
    status, trail = await axis.get(axis.admin, f"/v1/audit/messages/{doc_id}")
    types = [e["type"] for e in trail["events"]]
    assert "delivery_processing" in types and "delivery_acked" in types


async def test_status_packets_travel_through_the_sdk_both_ways(axis: AxisHarness) -> None:
    """A recipient's status packet sent with messagetype status is relayed to the sender,
    whose system counts and lists it as a status."""
    sender, recipient = await sender_and_recipient(axis)
    g22_secret = await axis.add_system("vxp.g22", [G22])
    h41_secret = await axis.add_system("vxp.h41", [H41])
    package = axis.edoc(sender, [H41])
    document_id = packets.document_id_of(package)
    status, sent = await axis.send(sender, package)
    assert status == 201
    packet = axis.status(recipient, G22, document_id, "03")
    async with axis.sdk("vxp.h41", h41_secret) as h41:
        answer = ok(await h41.sendEdoc(packet, from_code=H41, messagetype="status"))
    async with axis.sdk("vxp.g22", g22_secret) as g22:
        assert ok(await g22.countReceiveStatus())["count"] == 1
        (item,) = ok(await g22.getReceivedEdocList("status"))["data"]
        assert item["docId"] == answer["DocId"] and item["messageType"] == "status"
    status, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    assert [s["code"] for s in view["recipients"][0]["statuses"]] == ["03"]


async def test_unsigned_field_packages_need_a_system_with_signature_optional(
    axis: AxisHarness,
) -> None:
    """An EdXML102 package (no XML-DSig; CRLF line ends) is refused (24) from a system that
    requires signatures, accepted from one with signature: optional, vouched for by the
    system, and delivered byte for byte."""
    await axis.register(G22)
    await axis.register(G12)
    h29 = await axis.register(H29)
    strict = await axis.add_system("vxp.strict", [G22])
    package = (DATA / "edxml102-placeholder-signature.edxml").read_bytes()
    assert b"\r\n" in package
    async with axis.sdk("vxp.strict", strict) as sdk:
        refused = fails(await sdk.sendEdoc(package, from_code=G22), "24", "signature_missing")
        assert "namespace" in refused["ErrorDesc"]
        assert refused["DocId"] == ""
    status, _ = await axis.put_system("vxp.strict", agencies=[G22], signature="optional")
    assert status == 200
    async with axis.sdk("vxp.strict", strict) as sdk:
        doc_id = ok(await sdk.sendEdoc(package, from_code=G22))["DocId"]
    status, got = await axis.get(h29, f"/v1/inbox/{doc_id}")
    assert status == 200 and got == package
    status, view = await axis.get(h29, f"/v1/messages/{doc_id}")
    assert view["authenticated_by"] == "system" and view["system"] == "vxp.strict"
    status, receipt = await axis.get(axis.admin, f"/v1/messages/{doc_id}/receipt")
    assert b'<AuthenticatedBy system="vxp.strict">system<' in receipt


async def test_a_signed_package_is_verified_even_from_a_system_that_need_not_sign(
    axis: AxisHarness,
) -> None:
    """signature: optional accepts packages without XML-DSig; one that carries a bad one is
    still refused by the policy."""
    sender, _ = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.g22", [G22], signature="optional")
    tampered = axis.edoc(sender, [H41]).replace(b"TEST</", b"TAMP</", 1)
    async with axis.sdk("vxp.g22", secret) as sdk:
        fails(await sdk.sendEdoc(tampered, from_code=G22), "24", "signature_invalid")
        doc = ok(await sdk.sendEdoc(axis.edoc(sender, [H41]), from_code=G22))
    status, view = await axis.get(sender, f"/v1/messages/{doc['DocId']}")
    assert status == 200 and view["authenticated_by"] == "signature"


async def test_every_error_code_of_the_contract(axis: AxisHarness) -> None:
    """10, 15, 16, 18, 19, 22, 23, 24, 25, 26 and 30 each answer what the contract says,
    with a Vietnamese ErrorDesc and our problem code."""
    sender, recipient = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.g22", [G22])
    async with axis.sdk("vxp.g22", secret) as sdk:
        fails(await sdk.sendEdoc(b"not xml at all", from_code=G22), "10", "malformed_xml")
        good = axis.edoc(sender, [H41])
        wrong_hash = vdxp.sdk_hex(hashlib.sha256(b"other").digest())
        fails(await sdk.sendEdoc(good, from_code=G22, hash_file=wrong_hash), "10", "hash_mismatch")
        fails(await sdk.sendEdoc(good, from_code=H41), "16", "forbidden")  # not served
        fails(await sdk.sendEdoc(good, from_code="000.00.00.X02"), "19", "unknown_sender")
        to_nowhere = axis.edoc(sender, ["000.00.00.X01"])
        fails(await sdk.sendEdoc(to_nowhere, from_code=G22), "18", "unknown_recipient")
        bad_schema = axis.edoc(sender, [H41]).replace(b"edXML:Subject>", b"edXML:Subjekt>")
        fails(await sdk.sendEdoc(bad_schema, from_code=G22), "22", "schema_invalid")
        await axis.register(H41, status="suspended")
        fails(await sdk.sendEdoc(axis.edoc(sender, [H41]), from_code=G22), "23")
        await axis.register(H41)
        unsigned = packets.edoc_xml(G22, [H41], signature_placeholder=False)
        fails(await sdk.sendEdoc(unsigned, from_code=G22), "24", "signature_missing")
        fails(await sdk.getEdoc("msg_nosuchthing"), "25", "not_found")
        download = await sdk.downloadEdoc("msg_nosuchthing")
        assert download.status == 404 and download.body == b""
        first = axis.edoc(sender, [H41], document_id=f"{G22},2026/12/04,1/DUP")
        ok(await sdk.sendEdoc(first, from_code=G22))
        clash = axis.edoc(sender, [H41], document_id=f"{G22},2026/12/04,1/DUP", subject="khác")
        fails(await sdk.sendEdoc(clash, from_code=G22), "26", "duplicate_conflict")
        fails(await sdk.getAgenciesListQD20("9"), "30", "invalid_request")
    async with axis.sdk("vxp.g22", "not the secret") as wrong:
        fails(await wrong.getAgenciesList(), "15", "unauthorized")
    async with axis.sdk("vxp.nobody", secret) as nobody:
        fails(await nobody.countReceiveEdoc(), "15", "unauthorized")
    assert recipient


async def test_a_disabled_system_is_refused_and_its_failed_downloads_are_empty(
    axis: AxisHarness,
) -> None:
    """DELETE disables a system: every request it signs is 15, a download an empty body."""
    sender, _ = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.h41", [H41])
    _, sent = await axis.send(sender, axis.edoc(sender, [H41]))
    async with axis.session.delete(
        f"{axis.url}/v1/admin/systems/vxp.h41", headers=axis.admin
    ) as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "disabled"
    async with axis.sdk("vxp.h41", secret) as sdk:
        fails(await sdk.countReceiveEdoc(), "15", "unauthorized")
        download = await sdk.downloadEdoc(sent["id"])
        assert download.status == 401 and download.body == b""


async def test_a_rotated_secret_works_alongside_the_old_one_until_first_used(
    axis: AxisHarness,
) -> None:
    """Rotation without a gap: both secrets work until the new one signs a request; then the
    old one is refused on every process, and the audit log shows both steps."""
    await sender_and_recipient(axis)
    old = await axis.add_system("vxp.h41", [H41])
    status, rotated = await axis.post_json(axis.admin, "/v1/admin/systems/vxp.h41/secret", {})
    assert status == 200 and len(rotated["secret"]) == 44
    new = rotated["secret"]
    async with axis.sdk("vxp.h41", old) as before:
        ok(await before.countReceiveEdoc())
    async with axis.sdk("vxp.h41", new) as after:
        ok(await after.countReceiveEdoc())
    async with axis.sdk("vxp.h41", old) as stale:
        fails(await stale.countReceiveEdoc(), "15")
    async with axis.sdk("vxp.h41", new) as after:
        ok(await after.countReceiveEdoc())
    status, events = await axis.get(axis.admin, "/v1/audit/events?limit=1000")
    kinds = [e["type"] for e in events["items"]]
    assert "system_secret_rotated" in kinds and "system_secret_retired" in kinds


async def test_a_system_acts_only_for_the_codes_it_serves(axis: AxisHarness) -> None:
    """Descendants of a listed code are served; a more specific listing by another system
    wins; a system sees only its own agencies' mail."""
    sender, _ = await sender_and_recipient(axis)
    unit = "000.00.01.H41"
    await axis.register(unit, kind="unit", parent=H41)
    province = await axis.add_system("vxp.h41", [H41])
    department = await axis.add_system("vxp.h41.unit", [unit])
    await axis.send(sender, axis.edoc(sender, [H41, unit]))
    async with axis.sdk("vxp.h41", province) as sdk:
        assert [i["to"] for i in ok(await sdk.getReceivedEdocList())["data"]] == [H41]
        units = {u["code"]: u for u in ok(await sdk.getSynchronizeUnit())["data"]}
        assert units[unit]["centerCode"] == "vxp.h41.unit"
        assert units[H41]["centerCode"] == "vxp.h41"
    async with axis.sdk("vxp.h41.unit", department) as sdk:
        assert [i["to"] for i in ok(await sdk.getReceivedEdocList())["data"]] == [unit]
        package = packets.edoc_xml(H41, [G22])
        fails(await sdk.sendEdoc(package, from_code=H41), "16", "forbidden")


async def test_the_directory_operations_answer_without_nulls(axis: AxisHarness) -> None:
    """getAgenciesList (active and suspended, with the code closed into each), QD20 by level,
    getSynchronizeUnit (every agency, closed ones marked deleted, versions that grow)."""
    await axis.register(H41)
    secret = await axis.add_system("vxp.h41", [H41])
    async with axis.sdk("vxp.h41", secret) as sdk:
        listed = ok(await sdk.getAgenciesList())["data"]
        codes = {a["code"]: a for a in listed}
        assert H41 in codes and all(None not in a.values() for a in listed)
        assert all(isinstance(a["id"], str) and a["id"].isdigit() for a in listed)
        closed_into = {a["oldCode"] for a in listed if "oldCode" in a}
        assert closed_into  # the 2025 merger: closed provinces name their successor
        level1 = ok(await sdk.getAgenciesListQD20(1))["data"]
        assert {a["code102"] for a in level1} >= {H41, G22}
        assert ok(await sdk.getAgenciesListQD20(2)).get("data", []) == []
        units = ok(await sdk.getSynchronizeUnit())["data"]
        assert any(u["deleted"] for u in units) and any(not u["deleted"] for u in units)
        before = {u["code"]: u["version"] for u in units}[H41]
        await axis.register(H41, name="UBND tỉnh Nghệ An (đổi tên)")
        units = ok(await sdk.getSynchronizeUnit())["data"]
        assert {u["code"]: u["version"] for u in units}[H41] > before


async def test_register_and_delete_agency_need_the_register_right(axis: AxisHarness) -> None:
    """A system with register may add a unit under a code it serves (VNPT's malformed example
    body is 30), repeat it harmlessly, close it (deleteAgency) and reopen it; level-1 codes
    and other systems' codes are refused (16)."""
    await axis.register(H41)
    plain = await axis.add_system("vxp.plain", [G22])
    secret = await axis.add_system("vxp.h41", [H41], register=True)
    unit = "000.00.05.H41"
    body = {"id": "", "pcode": H41, "code": unit, "name": "Sở Nội vụ", "mail": "", "mobile": ""}
    async with axis.sdk("vxp.plain", plain) as sdk:
        fails(await sdk.registerAgency(body), "16", "forbidden")
    async with axis.sdk("vxp.h41", secret) as sdk:
        # single quotes and a trailing comma: JSON as VNPT's example writes it, not JSON
        fails(await sdk.registerAgency(b"{'code': '000.00.05.H41', 'name': 'x',}"), "30")
        ok(await sdk.registerAgency(body))
        ok(await sdk.registerAgency(body))  # the same record again
        units = {u["code"]: u for u in ok(await sdk.getSynchronizeUnit())["data"]}
        assert units[unit]["pid"] == H41 and not units[unit]["deleted"]
        ok(await sdk.deleteAgency(unit))
        ok(await sdk.deleteAgency(unit))  # already closed: harmless
        units = {u["code"]: u for u in ok(await sdk.getSynchronizeUnit())["data"]}
        assert units[unit]["deleted"] is True
        ok(await sdk.registerAgency(body))  # reopened
        fails(await sdk.deleteAgency(H41), "16", "forbidden")
        other = {**body, "pcode": G22, "code": "000.00.05.G22"}
        fails(await sdk.registerAgency(other), "16", "forbidden")
    status, agency = await axis.get(axis.admin, f"/v1/admin/agencies/{unit}")
    assert status == 200 and agency["status"] == "active" and agency["kind"] == "provincial"


async def test_idle_keep_alive_connections_are_closed(axis_factory: Any) -> None:
    """The SDK never closes its connections: an idle one is closed by the axis after
    AXIS_KEEPALIVE_TIMEOUT, and the SDK's next call opens a new one."""
    async with axis_factory(AXIS_KEEPALIVE_TIMEOUT="1") as axis:
        await axis.register(H41)
        secret = await axis.add_system("vxp.h41", [H41])
        async with axis.sdk("vxp.h41", secret) as sdk:
            ok(await sdk.countReceiveEdoc())
            reader = sdk._reader
            assert reader is not None
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the axis
            ok(await sdk.countReceiveEdoc())
            assert sdk.connections_opened == 2


async def test_a_broken_connection_is_retried_and_the_retry_is_harmless(
    axis: AxisHarness,
) -> None:
    """The SDK sends a POST again when its connection broke: sendEdoc answers the same
    DocId, and nothing is stored twice."""
    sender, recipient = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.g22", [G22])
    package = axis.edoc(sender, [H41])
    async with axis.sdk("vxp.g22", secret) as sdk:
        first = ok(await sdk.sendEdoc(package, from_code=G22))
        assert sdk._writer is not None
        sdk._writer.transport.abort()  # the connection drops between calls
        second = ok(await sdk.sendEdoc(package, from_code=G22))
    assert first["DocId"] == second["DocId"]
    count = raw_sql(axis.store).execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 1
    assert recipient


async def test_the_sdk_requests_of_the_captures_are_answered(axis: AxisHarness) -> None:
    """Each operation as the captured SDK requests carry it (headers piled up from earlier
    calls, non-ASCII header values, the `to` header JSON-quoted) gets an answer the SDK reads."""
    sender, _ = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.saas.03", [G22, H41])
    async with axis.sdk("vxp.saas.03", secret) as sdk:
        sdk.set("note", "Văn phòng")
        doc = ok(await sdk.sendEdoc(axis.edoc(sender, [H41]), from_code=G22, to=[H41, G12]))
        ok(await sdk.getAgenciesList())
        ok(await sdk.getReceivedEdocList("edoc"))
        ok(await sdk.getEdoc(doc["DocId"]))
        assert (await sdk.downloadEdoc(doc["DocId"])).status == 200
        ok(await sdk.updateStatus(doc["DocId"], "done"))
        ok(await sdk.getSentEdocList(doc_id=doc["DocId"]))
        assert json.dumps(sdk.params.items())  # everything carried over, and still accepted


@pytest.mark.sqlite_only  # SQLite's own file filling up stands in for a store that cannot write
async def test_a_store_that_cannot_write_is_error_code_20_and_nothing_is_lost(
    axis: AxisHarness,
) -> None:
    """A full store: sendEdoc answers 20 (retry later) with DocId ""; once there is room the
    same package is accepted."""
    import sqlite3

    sender, _ = await sender_and_recipient(axis)
    secret = await axis.add_system("vxp.g22", [G22])
    conn = axis.store.backend.writer._conn  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    package = axis.edoc(sender, [H41], attachment_bytes=100_000)
    async with axis.sdk("vxp.g22", secret) as sdk:
        full = fails(await sdk.sendEdoc(package, from_code=G22), "20", "unavailable")
        assert full["DocId"] == ""
        conn.execute("PRAGMA max_page_count=1073741823")
        ok(await sdk.sendEdoc(package, from_code=G22))


async def test_a_system_over_its_rate_is_error_code_29(axis_factory: Any) -> None:
    """With AXIS_RATE_LIMIT set, a system over its bucket is answered 29."""
    async with axis_factory(AXIS_RATE_LIMIT="1", AXIS_RATE_BURST="1") as axis:
        await axis.register(H41)
        secret = await axis.add_system("vxp.h41", [H41])
        async with axis.sdk("vxp.h41", secret) as sdk:
            ok(await sdk.countReceiveEdoc())
            fails(await sdk.countReceiveEdoc(), "29", "rate_limited")
