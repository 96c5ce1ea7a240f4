"""Broken, slow and careless clients over raw sockets: a precise answer, and never the axis's
failure (issue 16, findings 1–5)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import structlog
from structlog.contextvars import merge_contextvars

from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, start_axis
from tests.support.rawhttp import (
    connect,
    metric_values,
    read_answer,
    request_head,
    send_and_read,
)

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
STALL = 0.5  # AXIS_BODY_TIMEOUT of these tests
RATE = 1024  # AXIS_BODY_MIN_RATE of these tests (the floor)


@pytest.fixture
async def quick(tmp_path: Path, axis_key_pair: tuple[bytes, bytes]) -> AsyncIterator[AxisHarness]:
    """An axis that drops a body after 0.5 s of silence, spooling past 1000 bytes."""
    env = {
        "AXIS_BODY_TIMEOUT": str(STALL),
        "AXIS_BODY_MIN_RATE": str(RATE),
        "AXIS_SPOOL_THRESHOLD": "1000",
    }
    async with start_axis(keyed_settings(tmp_path / "quick", axis_key_pair, env)) as axis:
        yield axis


async def _scrape(axis: AxisHarness) -> str:
    async with axis.session.get(f"{axis.url}/metrics") as resp:
        return await resp.text()


def _five_hundreds(scrape: str) -> dict[str, float]:
    return {
        labels: value
        for labels, value in metric_values(scrape, "axis_http_requests_total").items()
        if 'status="5' in labels
    }


async def _targets(axis: AxisHarness) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, headers) of each endpoint that reads a body, for an agency and admin."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    _, sent = await axis.send(sender, axis.edoc(sender, [H41]))
    xml = {**sender.auth, "Content-Type": "application/xml"}
    ack = {**receiver.auth, "Content-Type": "application/json"}
    return [
        ("POST", "/v1/edocs", xml),
        ("POST", "/v1/statuses", xml),
        ("POST", f"/v1/inbox/{sent['id']}/ack", ack),
        ("PUT", f"/v1/admin/agencies/{H41}", {**axis.admin, "Content-Type": "application/json"}),
        (
            "POST",
            f"/v1/admin/agencies/{H41}/certificates",
            {**axis.admin, "Content-Type": "application/x-pem-file"},
        ),
    ]


async def test_a_client_hanging_up_mid_body_is_a_client_event(quick: AxisHarness) -> None:
    """Headers for 100000 bytes, 10 sent, then close: client_aborted at info, its own metric,
    no 5xx in the metrics, no crash or store_unavailable line, nothing left spooled."""
    axis = quick
    targets = await _targets(axis)
    with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
        for method, path, headers in targets:
            _, writer = await connect(axis.url)
            head = request_head(method, path, {**headers, "Content-Length": "100000"})
            writer.write(head + b"0123456789" + (b"x" * 2000 if "edocs" in path else b""))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.3)  # the server notices the hang-ups
    events = [e["event"] for e in logs]
    aborted = [e for e in logs if e["event"] == "client_aborted"]
    assert len(aborted) == len(targets), events
    assert {e["log_level"] for e in aborted} == {"info"}
    assert not {"request_crashed", "store_unavailable", "request_refused"} & set(events), events
    scrape = await _scrape(axis)
    assert _five_hundreds(scrape) == {}
    aborts = metric_values(scrape, "axis_client_aborts_total")
    assert sum(aborts.values()) == len(targets), aborts
    assert any('route="/v1/edocs"' in labels for labels in aborts)
    assert list(axis.settings.tmp_dir.glob("*")) == []


@pytest.mark.parametrize("index", range(5), ids=["edocs", "statuses", "ack", "put", "cert"])
async def test_every_stalled_body_gets_408_and_the_socket_closes_at_once(
    quick: AxisHarness, index: int
) -> None:
    """XML, JSON and PEM bodies alike: 408 after AXIS_BODY_TIMEOUT of silence, Connection:
    close, and the server's EOF right behind the answer (no 10 s lingering drain)."""
    method, path, headers = (await _targets(quick))[index]
    reader, writer = await connect(quick.url)
    started = time.monotonic()
    writer.write(request_head(method, path, {**headers, "Content-Length": "100000"}) + b"{")
    await writer.drain()
    answer = await read_answer(reader, started, eof_wait=3.0)
    writer.close()
    assert answer.status == 408, answer.raw
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    assert answer.json()["code"] == "request_timeout"
    assert STALL <= answer.answered_after < STALL + 1.5
    assert answer.closed_after is not None and answer.closed_after < 0.5


async def test_a_trickled_body_is_cut_off_at_its_deadline(quick: AxisHarness) -> None:
    """One byte every 0.2 s never stalls for 0.5 s, but is far below AXIS_BODY_MIN_RATE: 408
    once AXIS_BODY_TIMEOUT + size / rate has passed, naming the rate."""
    method, path, headers = (await _targets(quick))[2]  # the ack: a JSON body
    reader, writer = await connect(quick.url)
    started = time.monotonic()
    writer.write(request_head(method, path, {**headers, "Content-Length": "100000"}))

    async def trickle() -> None:
        for _ in range(100):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)

    dripping = asyncio.create_task(trickle())
    try:
        answer = await read_answer(reader, started, eof_wait=1.0)
    finally:
        dripping.cancel()
        writer.close()
    assert answer.status == 408, answer.raw
    problem = answer.json()
    assert "AXIS_BODY_MIN_RATE" in str(problem["detail"])
    # 0.5 s of grace plus a few bytes at 1024 B/s: cut a little after 0.5 s, not at 20 s
    assert STALL <= answer.answered_after < STALL + 1.5


async def test_a_slow_but_steady_package_is_accepted(quick: AxisHarness) -> None:
    """A package sent in pieces never apart by AXIS_BODY_TIMEOUT, above the minimum rate, is
    taken: the deadline grows with what arrives."""
    sender = await quick.register(G22)
    await quick.register(H41)
    body = quick.edoc(sender, [H41], attachment_bytes=3000)
    reader, writer = await connect(quick.url)
    started = time.monotonic()
    head = {**sender.auth, "Content-Type": "application/xml", "Content-Length": str(len(body))}
    writer.write(request_head("POST", "/v1/edocs", head))
    for at in range(0, len(body), 1024):
        writer.write(body[at : at + 1024])
        await writer.drain()
        await asyncio.sleep(0.2)  # 5 KB/s: slow, above the 1 KB/s floor
    answer = await read_answer(reader, started, eof_wait=0.1)
    writer.close()
    assert answer.status == 201, answer.raw
    assert answer.answered_after > STALL  # longer than the grace alone would allow


MALFORMED = {
    "nul-in-header": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Bad: a\x00b\r\n\r\n", "header"),
    "bad-content-length": (
        b"POST /v1/edocs HTTP/1.1\r\nHost: a\r\nContent-Length: 12abc\r\n\r\n",
        "Content-Length",
    ),
    "te-and-cl": (
        b"POST /v1/edocs HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding",
    ),
    "bad-chunk-size": (
        b"POST /v1/edocs HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        "chunk",
    ),
    "header-over-8k": (
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
        "longer than 8190 bytes",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
async def test_malformed_http_gets_a_problem_and_one_json_log_line(
    axis: AxisHarness, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's parser errors are answered application/problem+json invalid_request naming
    what was malformed, logged as one http_malformed line, never an aiohttp traceback."""
    data, named = MALFORMED[case]
    with (
        structlog.testing.capture_logs(processors=[merge_contextvars]) as logs,
        caplog.at_level(logging.DEBUG, logger="aiohttp"),
    ):
        answer = await send_and_read(axis.url, data, eof_wait=1.0)
    assert answer.status == 400, answer.raw
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "invalid_request" and problem["status"] == 400
    assert named.lower() in str(problem["detail"]).lower(), problem
    assert answer.closed_after is not None  # closed: what follows cannot be trusted
    assert [e["event"] for e in logs] == ["http_malformed"]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    scrape = await _scrape(axis)
    assert metric_values(scrape, "axis_http_malformed_total") == {"": 1.0}


async def test_a_flood_of_malformed_requests_costs_the_log_a_few_lines(axis: AxisHarness) -> None:
    """Sixty garbage connections in a burst: every one answered 400, at most a handful of
    log lines (rate-limited for the process), the next line counting what was left out."""
    data = MALFORMED["nul-in-header"][0]
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        answers = await asyncio.gather(
            *(send_and_read(axis.url, data, eof_wait=0.5) for _ in range(60))
        )
    seconds = time.monotonic() - started
    assert {a.status for a in answers} == {400}
    lines = [e for e in logs if e["event"] == "http_malformed"]
    # at most 5 a second (the burst may straddle one more second than it lasted)
    assert 1 <= len(lines) <= 5 * (int(seconds) + 2) < 60, (len(lines), seconds)
    assert len(lines) + sum(int(str(e["dropped"])) for e in lines) <= 60


async def test_a_request_after_a_parse_error_is_not_read(axis: AxisHarness) -> None:
    """A request pipelined behind a malformed one is not executed: one answer, then EOF."""
    bad = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n"
    good = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    answer = await send_and_read(axis.url, bad + good, eof_wait=1.0)
    assert answer.status == 400
    assert answer.closed_after is not None
    assert orjson.loads(answer.body)["code"] == "invalid_request"


async def test_a_chunk_size_broken_mid_body_is_answered_at_once(axis: AxisHarness) -> None:
    """Headers and a first chunk accepted, then a bad chunk size in a later packet: 400
    naming the chunk size at once (not a 408 a minute later), and the connection closed."""
    sender = await axis.register(G22)
    reader, writer = await connect(axis.url)
    started = time.monotonic()
    head = {**sender.auth, "Content-Type": "application/xml", "Transfer-Encoding": "chunked"}
    writer.write(request_head("POST", "/v1/edocs", head) + b"5\r\n<edXM\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is reading the body now
    writer.write(b"zz\r\nabc\r\n")
    await writer.drain()
    answer = await read_answer(reader, started, eof_wait=1.0)
    writer.close()
    assert answer.status == 400, answer.raw
    assert "chunk size" in str(answer.json()["detail"])
    assert answer.answered_after < 2.0
    assert answer.closed_after is not None


async def test_a_json_body_over_a_mebibyte_is_413(axis: AxisHarness) -> None:
    """JSON and PEM bodies are read in memory, so they are bounded well below
    AXIS_MAX_BYTES: over 1 MiB is 413 too_large, the rest unread."""
    body = orjson.dumps({"name": "x" * (1024 * 1024 + 10)})
    async with axis.session.put(
        f"{axis.url}/v1/admin/agencies/{H41}",
        data=body,
        headers={**axis.admin, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["code"] == "too_large"
