"""The SDK-like test client itself: Java's map order, retries on a broken connection,
``Expect: 100-continue``, and the contract checks it applies to every answer."""

from __future__ import annotations

import asyncio
import gzip
import random

import pytest
from aiohttp import web

from tests.support.vdxp_captures import SECRET, SYSTEMID, recorder
from tests.support.vdxp_client import (
    ContractViolation,
    JavaHashMap,
    Response,
    VdxpClient,
    check_answer,
    gson_object,
    java_hash,
)


def test_java_string_hash_and_map_order() -> None:
    """String.hashCode as Java computes it; the map iterates by bucket, then insertion, and
    re-buckets when it grows past 12 entries (checked against a real JVM while writing this:
    3,000 random key sets, 1 to 40 keys, agreed)."""
    assert java_hash("hello") == 99162322
    assert java_hash("") == 0
    m = JavaHashMap()
    for name in ("status", "timestamp", "Content-Type", "systemid", "servicetype"):
        m.put(name, "v")
    # systemid and servicetype share bucket 2; the last three share bucket 15
    assert [k for k, _ in m.items()] == [
        "systemid", "servicetype", "status", "timestamp", "Content-Type",
    ]  # fmt: skip
    for i in range(8):
        m.put(f"x{i}", "v")
    assert len(m) == 13  # past 3/4 of 16: 32 buckets now, servicetype moves to bucket 18
    assert [k for k, _ in m.items()] == [  # as java.util.HashMap of OpenJDK 17 iterates it
        "systemid", "servicetype", "x0", "x1", "x2", "x3", "x4", "x5", "x6",
        "status", "timestamp", "Content-Type", "x7",
    ]  # fmt: skip


def test_gson_escaping() -> None:
    """Gson's default HTML-safe escaping, raw non-ASCII (checked against Gson 2.11 likewise)."""
    assert (
        gson_object([("a", 'x="<y>"&\'\n\u2028\x01'), ("b", "Văn phòng")])
        == '{"a":"x\\u003d\\"\\u003cy\\u003e\\"\\u0026\\u0027\\n\\u2028\\u0001","b":"Văn phòng"}'
    )


async def test_a_post_whose_connection_broke_is_sent_again() -> None:
    """The server drops the connection mid-call: the client reconnects and resends (the SDK's
    retry), up to ``retries`` more times, then gives up."""
    async with (
        recorder() as rec,
        VdxpClient("127.0.0.1", rec.port, systemid=SYSTEMID, secret=SECRET) as c,
    ):
        rec.drop_next = 2
        await c.updateStatus("msg_1", "done")
        assert c.last is not None and c.last.attempts == 3
        assert len(rec.requests) == 3
        assert len({r.head for r in rec.requests}) == 1  # byte-identical resends
        rec.drop_next = 3
        with pytest.raises((ConnectionError, EOFError, asyncio.IncompleteReadError)):
            await c.updateStatus("msg_1", "done")


async def test_an_idle_connection_closed_by_the_server_is_reopened() -> None:
    """A server closing keep-alive connections after each answer costs a reconnect, not an
    error."""
    async with recorder() as rec:
        rec.close_after_answer = True
        async with VdxpClient("127.0.0.1", rec.port, systemid=SYSTEMID, secret=SECRET) as c:
            for _ in range(3):
                await c.countReceiveEdoc()
            assert c.connections_opened >= 3
            assert len(rec.requests) == 3


async def test_expect_continue_against_aiohttp() -> None:
    """aiohttp answers ``100 Continue`` and the ``{}`` body follows, as the SDK sends it."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.json_response({"status": "OK", "ErrorCode": "0", "ErrorDesc": "ok", "count": 0})

    app = web.Application()
    app.router.add_post("/vxp/countReceiveEdoc", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with VdxpClient(
            "127.0.0.1", port, systemid=SYSTEMID, secret=SECRET, continue_timeout=30
        ) as c:
            assert (await c.countReceiveEdoc())["count"] == 0
            assert c.last is not None and c.last.request.expect_continue
            assert bodies == [b"{}"]
    finally:
        await runner.cleanup()


async def test_a_final_answer_before_continue_leaves_the_body_unsent() -> None:
    """A server that refuses at the headers (401 before 100 Continue) never gets the body,
    and the connection is not reused for the next request."""
    seen: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        body = b'{"status":"FAIL","ErrorCode":"15","ErrorDesc":"x","code":"unauthorized"}'
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        seen.append(await reader.read())  # what the client sends after the answer: nothing
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with VdxpClient("127.0.0.1", port, systemid=SYSTEMID, secret=SECRET) as c:
            answer = await c.getEdoc("msg_1")
            assert answer["ErrorCode"] == "15"
        await asyncio.sleep(0.05)
        assert seen[1:] == [b""]
    finally:
        server.close()
        await server.wait_closed()


def test_random_order_mode_shuffles_the_signed_keys() -> None:
    """For property tests the map order can be shuffled; the sign-header-key follows it."""
    c = VdxpClient("h", 1, systemid=SYSTEMID, secret=SECRET, order=random.Random(3))
    for name in ("docId", "status", "from", "level", "to", "note"):
        c.set(name, "v")
    orders = {c.prepare("getEdoc", b"{}").header("XroadVnpt-sign-header-key") for _ in range(20)}
    assert len(orders) > 1


@pytest.mark.parametrize(
    ("operation", "status", "body", "match"),
    [
        ("getEdoc", 200, b"", "empty answer"),
        ("getEdoc", 500, b"<html>oops</html>", "not JSON"),
        (
            "getEdoc",
            200,
            '{"status":"OK","ErrorCode":"0","ErrorDesc":"Thành công"}'.encode(),
            "ASCII",
        ),
        ("getEdoc", 200, b'{"status":"OK","ErrorCode":"0","ErrorDesc":null}', "ErrorDesc"),
        ("getEdoc", 200, b'{"status":"OK","ErrorCode":"0"}', "ErrorDesc"),
        ("getEdoc", 200, b'{"status":"FAIL","ErrorCode":"0","ErrorDesc":"x"}', "disagree"),
        ("getEdoc", 400, b'{"status":"FAIL","ErrorCode":"30","ErrorDesc":"x"}', "problem code"),
        (
            "sendEdoc",
            400,
            b'{"status":"FAIL","ErrorCode":"30","ErrorDesc":"x","code":"c"}',
            "DocId",
        ),
        (
            "getReceivedEdocList",
            200,
            b'{"status":"OK","ErrorCode":"0","ErrorDesc":"x","data":[{"docId":null}]}',
            "null",
        ),
        ("downloadEdoc", 404, b'{"status":"FAIL"}', "save"),
        ("downloadEdoc", 200, b"", "empty body"),
    ],
)
def test_answers_the_sdk_would_misread_are_caught(
    operation: str, status: int, body: bytes, match: str
) -> None:
    """Each way an answer breaks the real SDK is a ContractViolation in our tests."""
    with pytest.raises(ContractViolation, match=match):
        check_answer(operation, Response(status, "", [], body))


async def test_chunked_and_gzipped_answers_are_read() -> None:
    """An answer streamed in chunks, or gzip-encoded (the client accepts gzip as the SDK's
    HttpClient does), reads the same."""
    body = b'{"status":"OK","ErrorCode":"0","ErrorDesc":"x","count":7}'
    gz = gzip.compress(body)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for framing in ("chunked", "gzip"):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await reader.readexactly(2)  # the {} body
            if framing == "chunked":
                parts = [body[:10], body[10:]]
                chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
                head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                writer.write(head + chunks)
            else:
                head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                writer.write(head % len(gz) + gz)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with VdxpClient("127.0.0.1", port, systemid=SYSTEMID, secret=SECRET) as c:
            assert (await c.countReceiveEdoc())["count"] == 7
            assert (await c.countReceiveEdoc())["count"] == 7
            assert c.connections_opened == 1
    finally:
        server.close()
        await server.wait_closed()
