"""Sending documents: POST /v1/edocs over a real server and a real SQLite file."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from axis import edxml
from axis.intake import OFFLOAD_C14N_COST
from tests.support import packets, pki, signers
from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, start_axis

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
H14 = "000.00.00.H14"
G17 = "000.00.00.G17"


async def test_accepts_a_signed_document_and_queues_one_delivery_per_recipient(
    axis: AxisHarness,
) -> None:
    """A signed package to three agencies gets 201 with one queued delivery each."""
    sender = await axis.register(G22)
    body = axis.edoc(sender, [H41, H14, G17])
    status, answer = await axis.send(sender, body)
    assert status == 201, answer
    assert answer["kind"] == "edoc"
    assert answer["from"] == G22
    assert answer["business_type"] == 0
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    assert answer["size"] == len(body)
    assert [r["organ_id"] for r in answer["recipients"]] == [H41, H14, G17]
    assert all(
        r["state"] == "queued" and r["delivered_to"] == r["organ_id"] for r in answer["recipients"]
    )
    assert len({r["delivery_id"] for r in answer["recipients"]}) == 3
    assert answer["receipt_url"] == f"/v1/messages/{answer['id']}/receipt"


async def test_same_bytes_again_answers_200_with_the_original(axis: AxisHarness) -> None:
    """Resending identical bytes is harmless: 200, the first answer, nothing stored twice."""
    sender = await axis.register(G22)
    body = axis.edoc(sender, [H41])
    first_status, first = await axis.send(sender, body)
    again_status, again = await axis.send(sender, body)
    assert (first_status, again_status) == (201, 200)
    assert again == first
    receiver = await axis.register(H41)
    _, inbox = await axis.get(receiver, "/v1/inbox")
    assert [m["id"] for m in inbox["items"]] == [first["id"]]
    status, _ = await axis.post_json(receiver, f"/v1/inbox/{first['id']}/ack", {"result": "done"})
    assert status == 200
    assert await axis.send(sender, body) == (200, first)


async def test_reused_document_id_with_other_bytes_is_a_conflict(axis: AxisHarness) -> None:
    """A new document reusing its DocumentId for other bytes gets 409 and is not stored."""
    sender = await axis.register(G22)
    doc_id = f"{G22},2026/11/23,1/VPCP"
    status, _ = await axis.send(sender, axis.edoc(sender, [H41], document_id=doc_id))
    assert status == 201
    other = axis.edoc(sender, [H41], document_id=doc_id, subject="Một trích yếu khác")
    status, problem = await axis.send(sender, other)
    assert status == 409
    assert problem["code"] == "duplicate_conflict"
    assert doc_id in problem["detail"]


async def test_unknown_recipient_is_refused_naming_it(axis: AxisHarness) -> None:
    """A package to an unregistered code gets 422 unknown_recipient naming the code."""
    sender = await axis.register(G22)
    status, problem = await axis.send(sender, axis.edoc(sender, [H41, "000.00.00.Z98"]))
    assert status == 422
    assert problem["code"] == "unknown_recipient"
    assert "000.00.00.Z98" in problem["detail"]
    _, outbox = await axis.get(sender, "/v1/outbox")
    assert outbox["items"] == []


async def test_suspended_recipient_is_unavailable(axis: AxisHarness) -> None:
    """Mail to a suspended agency gets 422 recipient_unavailable, nothing stored."""
    sender = await axis.register(G22)
    await axis.register(H41, status="suspended")
    status, problem = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 422
    assert problem["code"] == "recipient_unavailable"
    assert H41 in problem["detail"]


async def test_mail_to_a_closed_province_reaches_its_successor(axis: AxisHarness) -> None:
    """A code closed by the 2025 merger forwards to its successor, shown as delivered_to."""
    sender = await axis.register(G22)
    # shipped registry: Hà Giang (H22) merged into Tuyên Quang (H60)
    status, answer = await axis.send(sender, axis.edoc(sender, ["000.00.00.H22"]))
    assert status == 201, answer
    [row] = answer["recipients"]
    assert row["organ_id"] == "000.00.00.H22"
    assert row["delivered_to"] == "000.00.00.H60"
    successor = await axis.register("000.00.00.H60")
    _, inbox = await axis.get(successor, "/v1/inbox")
    assert [m["id"] for m in inbox["items"]] == [answer["id"]]


async def test_two_codes_forwarding_to_one_agency_make_one_delivery(axis: AxisHarness) -> None:
    """Addressing a closed code and its successor delivers once to the successor."""
    sender = await axis.register(G22)
    status, answer = await axis.send(sender, axis.edoc(sender, ["000.00.00.H22", "000.00.00.H60"]))
    assert status == 201, answer
    assert {r["delivered_to"] for r in answer["recipients"]} == {"000.00.00.H60"}
    assert len({r["delivery_id"] for r in answer["recipients"]}) == 1


async def test_sender_must_be_the_callers_agency(axis: AxisHarness) -> None:
    """A package whose From is another agency is refused with sender_mismatch."""
    sender = await axis.register(G22)
    other = await axis.register(G17)
    body = axis.edoc(other, [H41])
    status, problem = await axis.send(sender, body)
    assert status == 403
    assert problem["code"] == "sender_mismatch"


async def test_signature_by_an_unregistered_certificate_is_untrusted(axis: AxisHarness) -> None:
    """A package signed with a key not pinned for the sender is untrusted_signer."""
    sender = await axis.register(G22)
    stranger = pki.identity("rsa2048", slot=7, common_name="stranger")
    xml = packets.edoc_xml(G22, [H41], document_id=f"{G22},2026/11/23,9/X")
    body = signers.sign(xml, stranger.key_pem, stranger.cert_pem)
    status, problem = await axis.send(sender, body)
    assert status == 403
    assert problem["code"] == "untrusted_signer"


async def test_unsigned_package_is_signature_missing(axis: AxisHarness) -> None:
    """A package without any signature is refused with signature_missing."""
    sender = await axis.register(G22)
    xml = packets.edoc_xml(G22, [H41], signature_placeholder=False)
    status, problem = await axis.send(sender, xml)
    assert status == 400
    assert problem["code"] == "signature_missing"


async def test_tampered_package_is_signature_invalid(axis: AxisHarness) -> None:
    """Changing one signed character makes the package signature_invalid."""
    sender = await axis.register(G22)
    body = axis.edoc(sender, [H41], subject="Về việc kết nối liên thông")
    tampered = body.replace("kết nối".encode(), "kết nốI".encode(), 1)
    assert tampered != body
    status, problem = await axis.send(sender, tampered)
    assert status == 400
    assert problem["code"] == "signature_invalid"


async def test_wrong_media_type_and_empty_body(axis: AxisHarness) -> None:
    """Only application/xml is taken; an empty body is invalid_request."""
    sender = await axis.register(G22)
    async with axis.session.post(
        f"{axis.url}/v1/edocs",
        data=b"{}",
        headers={**sender.auth, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 415
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["code"] == "unsupported_media_type"
    status, problem = await axis.send(sender, b"")
    assert status == 400
    assert problem["code"] == "invalid_request"


async def test_malformed_field_sample_is_malformed_xml(axis: AxisHarness) -> None:
    """The field sample with stray bytes before <?xml is malformed_xml, not a crash."""
    sender = await axis.register(G22)
    status, problem = await axis.send(sender, (packets.SAMPLES / "edoc_new.edxml").read_bytes())
    assert status == 400
    assert problem["code"] == "malformed_xml"


async def test_tokens_are_required_and_roles_enforced(axis: AxisHarness) -> None:
    """No token is 401; an admin token cannot send documents (403)."""
    async with axis.session.post(f"{axis.url}/v1/edocs", data=b"<x/>") as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "unauthorized"
    async with axis.session.post(
        f"{axis.url}/v1/edocs",
        data=b"<x/>",
        headers={**axis.admin, "Content-Type": "application/xml"},
    ) as resp:
        assert resp.status == 403
        assert (await resp.json())["code"] == "forbidden"
    async with axis.session.get(
        f"{axis.url}/v1/inbox", headers={"Authorization": "Bearer axs_not-a-token"}
    ) as resp:
        assert resp.status == 401


async def test_body_over_the_limit_is_413(settings_small_limit_axis: AxisHarness) -> None:
    """A body larger than AXIS_MAX_BYTES is refused with 413 too_large."""
    axis = settings_small_limit_axis
    sender = await axis.register(G22)
    status, problem = await axis.send(sender, b"<x>" + b"a" * 70_000 + b"</x>")
    assert status == 413
    assert problem["code"] == "too_large"


async def test_large_package_is_stored_once_and_fetched_exactly(axis: AxisHarness) -> None:
    """A 3 MB package is spooled, stored as a file and fetched byte for byte."""
    sender = await axis.register(G22)
    body = axis.edoc(sender, [H41, H14], attachment_bytes=3_000_000)
    status, answer = await axis.send(sender, body)
    assert status == 201, answer
    blobs = list(axis.settings.blob_dir.rglob("*"))
    assert [p.name for p in blobs if p.is_file()] == [hashlib.sha256(body).hexdigest()]
    receiver = await axis.register(H41)
    status, fetched = await axis.get(receiver, f"/v1/inbox/{answer['id']}")
    assert status == 200
    assert fetched == body


async def test_a_body_that_stops_arriving_is_dropped_with_408(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> None:
    """A sender that stalls mid-body gets 408 request_timeout; nothing is stored or spooled."""
    env = {"AXIS_BODY_TIMEOUT": "0.3", "AXIS_SPOOL_THRESHOLD": "1000"}
    async with start_axis(keyed_settings(tmp_path / "stall", axis_key_pair, env)) as axis:
        sender = await axis.register(G22)
        body = axis.edoc(sender, [H41])
        host, port = axis.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST /v1/edocs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {sender.token}\r\n"
            f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:2000])  # past the spool threshold, then silence
        await writer.drain()
        head_bytes = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head_bytes.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines if line)
        problem = json.loads(await reader.readexactly(int(headers["Content-Length"])))
        writer.close()
        assert status_line.startswith("HTTP/1.1 408")
        assert headers["Connection"] == "close"
        assert problem["code"] == "request_timeout" and "2000 bytes" in problem["detail"]
        assert list(axis.settings.tmp_dir.glob("*")) == []
        receiver = await axis.register(H41)
        _, inbox = await axis.get(receiver, "/v1/inbox")
        assert inbox["items"] == []


async def test_a_package_costly_to_canonicalise_is_verified_and_accepted(
    axis: AxisHarness,
) -> None:
    """Many tags under many namespaces (verified off the event loop) still get their 201."""
    sender = await axis.register(G22)
    xml = packets.edoc_xml(G22, [H41])
    decls = b" ".join(b'xmlns:p%d="urn:p%d"' % (n, n) for n in range(20))
    xml = xml.replace(b"<edXML ", b"<edXML " + decls + b" ", 1)
    pad = b'<q:Pad xmlns:q="urn:pad">' + b"<q:e/>" * 3000 + b"</q:Pad>"
    xml = xml.replace(b"</edXML:MessageHeader>", pad + b"</edXML:MessageHeader>", 1)
    inclusive = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    body = signers.sign(xml, sender.ident.key_pem, sender.ident.cert_pem, c14n=inclusive)
    assert edxml.parse(body, expect="edoc").c14n_cost > OFFLOAD_C14N_COST
    fan_out = axis.edoc(sender, [f"000.00.00.H{n:02d}" for n in range(1, 99)])
    assert edxml.parse(fan_out, expect="edoc").c14n_cost < OFFLOAD_C14N_COST  # on the loop
    status, answer = await axis.send(sender, body)
    assert status == 201, answer
