"""The real SDK's captured requests: our SDK-like client writes them again byte for byte, and
the verification side of axis/vdxp.py accepts each one and refuses each one altered."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from axis.errors import AxisError, InvalidRequest
from axis.vdxp import (
    OPERATIONS,
    SystemUnauthorized,
    hmac_hex,
    parse_headers,
    read_params,
    sdk_hex,
    strip_sdk_crlf,
    verify,
)
from axis.vdxp_answers import success
from tests.support.vdxp_captures import (
    SECRET,
    SYSTEMID,
    Capture,
    Recorder,
    all_captures,
    capture,
    recorder,
)
from tests.support.vdxp_client import VdxpClient

SIGNED = [c for c in all_captures() if c.signed]
FILE_PATH = "/tmp/tmp.MAy45UBUd8/happy-path"  # the client's folder, as captured
SENT_EDOC = "509567bc-0895-48ae-8f25-0a26bc2ce60b"
SENT_STATUS = "79894e19-47b0-4075-b5be-ebdbcfa80d71"


def ids(captures: list[Capture]) -> list[str]:
    return [c.name for c in captures]


def test_the_contracts_check_sample() -> None:
    """The HMAC is hex HMAC-SHA256 keyed by the secret's UTF-8 bytes, as VDXP.md's sample."""
    sign_header = (
        '{"XroadVnpt-systemid":"vxp.saas.03","XroadVnpt-timestamp":"04122026T034507+0974",'
        '"XroadVnpt-Content-Type":"application/json"}'
    )
    expected = "9989cc17e844bddc22fa321440311b9317eb885b24dd5400a7575a93ac8963fd"
    assert hmac_hex(SECRET, sign_header.encode()) == expected
    request = parse_headers(
        [("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", expected)]
    )
    assert verify(request, [SECRET]) == 0


def test_every_signed_capture_is_there() -> None:
    """The copied captures are complete: 24 signed requests, and the one unsigned download."""
    assert len(SIGNED) == 24
    assert {c.operation for c in SIGNED} == set(OPERATIONS)
    unsigned = [c.name for c in all_captures() if not c.signed]
    assert unsigned == ["happy-path/020-downloadEdoc-ok"]


@pytest.mark.parametrize("cap", SIGNED, ids=ids(SIGNED))
def test_the_verifier_accepts_each_captured_request(cap: Capture) -> None:
    """Every request the real SDK sent passes: HMAC, plain headers agreeing, parameters read."""
    request = parse_headers(cap.headers)
    assert request.systemid == SYSTEMID
    assert verify(request, ["some other secret", SECRET]) == 1
    params = read_params(request, cap.operation)
    assert params.systemid == SYSTEMID
    assert params.unsigned == ("version",)  # XroadVnpt-version is never signed
    assert params.sign_header_key_agrees
    assert params.timestamp_at is not None
    if cap.operation == "sendEdoc":
        assert params.from_code == "000.00.00.G22"
        assert params.hash_file == cap.header("XroadVnpt-hash-file")
    if cap.operation in ("getEdoc", "downloadEdoc", "updateStatus"):
        assert params.doc_id == cap.header("XroadVnpt-docId")


@pytest.mark.parametrize("cap", SIGNED, ids=ids(SIGNED))
def test_one_byte_changed_in_the_sign_header_is_refused(cap: Capture) -> None:
    """Any single character of the signed JSON changed: the request is refused (15, or 30 when
    the JSON no longer parses), wherever the change is."""
    original = cap.header("XroadVnpt-sign-header")
    assert original is not None
    for i, ch in enumerate(original):
        changed = original[:i] + ("A" if ch != "A" else "B") + original[i + 1 :]
        headers = [(k, changed if k == "XroadVnpt-sign-header" else v) for k, v in cap.headers]
        with pytest.raises(AxisError) as caught:
            verify(parse_headers(headers), [SECRET])
        assert caught.value.code in ("unauthorized", "invalid_request")


@pytest.mark.parametrize("cap", SIGNED, ids=ids(SIGNED))
def test_one_digit_changed_in_the_hash_header_is_refused(cap: Capture) -> None:
    """Any hex digit of the HMAC changed: 15."""
    original = cap.header("XroadVnpt-hash-header")
    assert original is not None
    for i, ch in enumerate(original):
        changed = original[:i] + ("0" if ch != "0" else "1") + original[i + 1 :]
        headers = [(k, changed if k == "XroadVnpt-hash-header" else v) for k, v in cap.headers]
        with pytest.raises(SystemUnauthorized):
            verify(parse_headers(headers), [SECRET])


@pytest.mark.parametrize("cap", SIGNED, ids=ids(SIGNED))
def test_a_plain_header_disagreeing_with_its_signed_value_is_refused(cap: Capture) -> None:
    """A signed parameter's plain header changed in transit: 30, naming the header."""
    signed = [
        (i, k)
        for i, (k, _) in enumerate(cap.headers)
        if k.startswith("XroadVnpt-")
        and k not in ("XroadVnpt-sign-header", "XroadVnpt-sign-header-key")
        and k not in ("XroadVnpt-hash-header", "XroadVnpt-version")
    ]
    assert signed
    for index, name in signed:
        headers = list(cap.headers)
        headers[index] = (name, headers[index][1] + "x")
        request = parse_headers(headers)
        if name == "XroadVnpt-systemid":  # the plain systemid is not the one the HMAC names
            assert verify(request, [SECRET]) == 0
        with pytest.raises(InvalidRequest, match=name):
            read_params(request, cap.operation)


def test_a_request_without_xroad_headers_is_not_authenticated() -> None:
    """Capture 020 (a download with no XroadVnpt-* header at all) is refused as 15."""
    cap = capture("happy-path/020-downloadEdoc-ok")
    with pytest.raises(SystemUnauthorized, match="sign-header"):
        parse_headers(cap.headers)


def test_the_sdk_hash_file_is_the_unpadded_sha256_of_the_package() -> None:
    """hash-file of both captured sends is the unpadded hex of the SHA-256 without the CRLF."""
    for name in ("happy-path/005-sendEdoc-ok", "happy-path/006-sendEdoc-ok"):
        cap = capture(name)
        assert cap.stripped_sha256 is not None
        assert sdk_hex(bytes.fromhex(cap.stripped_sha256)) == cap.header("XroadVnpt-hash-file")
        assert len(cap.header("XroadVnpt-hash-file") or "") < 64


def test_the_captured_status_packet_is_stored_without_the_sdks_crlf() -> None:
    """The stored bytes of capture 006 are the body minus exactly one CRLF: the packet's own
    final line end stays."""
    cap = capture("happy-path/006-sendEdoc-ok")
    assert cap.body is not None and cap.body.endswith(b"</edXML>\r\n\r\n")
    stored = strip_sdk_crlf(cap.body, cap.header("XroadVnpt-hash-file") or "")
    assert stored == cap.body[:-2]
    assert hashlib.sha256(stored).hexdigest() == cap.stripped_sha256


async def test_non_ascii_header_values_verify_as_aiohttp_gives_them() -> None:
    """The probe with ``XroadVnpt-note: Văn phòng`` sent as raw UTF-8 to a real aiohttp server:
    its handler's ``request.headers`` verify, and the note reads as Vietnamese text."""
    cap = capture("probe/003-sendEdoc-ok")
    seen: dict[str, object] = {}

    async def handle(request: web.Request) -> web.Response:
        signed = parse_headers(request.headers.items())
        seen["secret"] = verify(signed, [SECRET])
        seen["note"] = signed.value("note")
        seen["params"] = read_params(signed, "sendEdoc")
        await request.read()
        answer = success("sendEdoc", DocId="msg_1")
        return web.Response(body=answer.body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/probe-nonascii/sendEdoc", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = VdxpClient(
            "127.0.0.1",
            port,
            systemid=SYSTEMID,
            secret=SECRET,
            base_path="/probe-nonascii",
            timestamp="04122026T034521+0216",
        )
        async with client:
            client.set("note", "Văn phòng")
            await client.sendEdoc(
                b"<x/>", from_code="000.00.00.G22", hash_file=cap.header("XroadVnpt-hash-file")
            )
        assert client.last is not None
        head = client.last.request.head_bytes()
        assert "XroadVnpt-note: Văn phòng".encode() in head  # raw UTF-8 on the wire
    finally:
        await runner.cleanup()
    assert seen["secret"] == 0
    assert seen["note"] == "Văn phòng"
    assert client.last.request.header("XroadVnpt-hash-header") == cap.header(
        "XroadVnpt-hash-header"
    )


# ---------------------------------------------------------------- the client replays them


def _compare(cap: Capture, rec: Recorder, index: int) -> None:
    got = rec.requests[index]
    assert got.request_line == f"{cap.method} {cap.target} HTTP/1.1", cap.name
    expected = [(k, "HOST" if k == "Host" else v) for k, v in cap.headers]
    actual = [(k, "HOST" if k == "Host" else v) for k, v in got.headers]
    assert actual == expected, cap.name
    if cap.body is not None:
        assert got.body == cap.body, cap.name
    assert len(got.body) == cap.body_size, cap.name


Call = Callable[[VdxpClient], Awaitable[object]]


async def _replay(base: str, timestamp: str, steps: list[tuple[str, Call]]) -> None:
    async with recorder() as rec:
        client = VdxpClient(
            "127.0.0.1",
            rec.port,
            systemid=SYSTEMID,
            secret=SECRET,
            base_path=base,
            timestamp=timestamp,
        )
        async with client:
            for index, (name, call) in enumerate(steps):
                await call(client)
                _compare(capture(name), rec, index)
        assert client.connections_opened == 1  # keep-alive: one connection for the session


def _placeholder(name: str) -> bytes:
    """A body of the captured size (the capture keeps only the first 600 bytes of it)."""
    return b"x" * (capture(name).body_size - 2)


def _hash_file(name: str) -> str:
    return capture(name).header("XroadVnpt-hash-file") or ""


async def test_the_client_writes_the_agency_calls_as_the_sdk() -> None:
    """The directory service object of the happy path: five calls, headers piling up."""
    body = capture("happy-path/004-registerAgency-ok").body
    assert body is not None

    async def register(c: VdxpClient) -> object:
        return await c.registerAgency(body)

    await _replay(
        "",
        "04122026T034507+0974",
        [
            ("happy-path/001-getAgenciesList-ok", lambda c: c.getAgenciesList()),
            ("happy-path/002-getAgenciesListQD20-ok", lambda c: c.getAgenciesListQD20(1)),
            ("happy-path/003-getSynchronizeUnit-ok", lambda c: c.getSynchronizeUnit()),
            ("happy-path/004-registerAgency-ok", register),
            ("happy-path/017-deleteAgency-ok", lambda c: c.deleteAgency("000.00.99.T01")),
        ],
    )


async def test_the_client_writes_the_document_calls_as_the_sdk() -> None:
    """The document service object of the happy path: send, count, list, fetch, update; the
    status packet's hash-file is computed, not copied."""
    status_body = capture("happy-path/006-sendEdoc-ok").body
    assert status_body is not None
    edoc = "happy-path/005-sendEdoc-ok"

    async def sent_list(c: VdxpClient) -> object:
        c.set("messagetype", "edoc")  # the capturing program set it (an SDK setter)
        return await c.getSentEdocList(SENT_EDOC)

    await _replay(
        "",
        "04122026T034507+0933",
        [
            (
                edoc,
                lambda c: c.sendEdoc(
                    _placeholder(edoc), from_code="000.00.00.G22", hash_file=_hash_file(edoc)
                ),
            ),
            (
                "happy-path/006-sendEdoc-ok",
                lambda c: c.sendEdoc(
                    status_body[:-2], from_code="000.00.00.G22", messagetype="status"
                ),
            ),
            ("happy-path/007-countReceiveEdoc-ok", lambda c: c.countReceiveEdoc("edoc")),
            ("happy-path/008-countReceiveStatus-ok", lambda c: c.countReceiveStatus("status")),
            ("happy-path/009-getReceivedEdocList-ok", lambda c: c.getReceivedEdocList("edoc")),
            ("happy-path/010-getReceivedEdocList-ok", lambda c: c.getReceivedEdocList("status")),
            ("happy-path/011-getSentEdocList-ok", sent_list),
            ("happy-path/012-getEdoc-ok", lambda c: c.getEdoc(SENT_STATUS, FILE_PATH)),
            ("happy-path/013-downloadEdoc-ok", lambda c: c.downloadEdoc(SENT_STATUS, FILE_PATH)),
            ("happy-path/014-updateStatus-ok", lambda c: c.updateStatus(SENT_STATUS, "processing")),
            ("happy-path/015-updateStatus-ok", lambda c: c.updateStatus(SENT_STATUS, "done")),
            ("happy-path/016-updateStatus-ok", lambda c: c.updateStatus(SENT_STATUS, "fail")),
        ],
    )


async def test_the_client_writes_fresh_objects_calls_as_the_sdk() -> None:
    """New service objects carry nothing but systemid and their own frozen timestamp."""
    await _replay(
        "",
        "04122026T034508+0489",
        [("happy-path/018-getEdoc-ok", lambda c: c.getEdoc(SENT_EDOC, FILE_PATH))],
    )
    await _replay(
        "",
        "04122026T034508+0951",
        [("happy-path/019-downloadEdoc-ok", lambda c: c.downloadEdoc(SENT_EDOC, FILE_PATH))],
    )


async def test_the_client_writes_the_probes_as_the_sdk() -> None:
    """``to`` JSON-quoted (a string, an array), a non-ASCII carried header, a repeated call."""
    one, many, note = "probe/001-sendEdoc-ok", "probe/002-sendEdoc-ok", "probe/003-sendEdoc-ok"

    async def with_note(c: VdxpClient) -> object:
        c.set("note", "Văn phòng")
        return await c.sendEdoc(
            _placeholder(note), from_code="000.00.00.G22", hash_file=_hash_file(note)
        )

    await _replay(
        "/probe-to-string",
        "04122026T034521+0032",
        [
            (
                one,
                lambda c: c.sendEdoc(
                    _placeholder(one),
                    from_code="000.00.00.G22",
                    to="000.00.00.G12",
                    hash_file=_hash_file(one),
                ),
            )
        ],
    )
    await _replay(
        "/probe-to-array",
        "04122026T034521+0209",
        [
            (
                many,
                lambda c: c.sendEdoc(
                    _placeholder(many),
                    from_code="000.00.00.G22",
                    to=["000.00.00.G12", "000.00.00.H29"],
                    hash_file=_hash_file(many),
                ),
            )
        ],
    )
    await _replay("/probe-nonascii", "04122026T034521+0216", [(note, with_note)])
    await _replay(
        "/probe-timestamp",
        "04122026T034521+0483",
        [
            ("probe/004-countReceiveEdoc-ok", lambda c: c.countReceiveEdoc()),
            ("probe/005-countReceiveEdoc-ok", lambda c: c.countReceiveEdoc()),
        ],
    )
