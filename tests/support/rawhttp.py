"""HTTP over a raw socket, for what no well-behaved client sends: stalls, trickles, garbage."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import orjson


@dataclass
class RawAnswer:
    """One answer read off a raw connection, and when the server closed it."""

    status: int
    version: str
    headers: dict[str, str]
    body: bytes
    answered_after: float  # seconds from the first byte sent to the answer's head
    closed_after: float | None  # seconds from the answer's head to the server's EOF; None: open
    raw: bytes = field(repr=False, default=b"")

    def json(self) -> dict[str, object]:
        data = orjson.loads(self.body)
        assert isinstance(data, dict)
        return data


def split_url(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = split_url(url)
    return await asyncio.open_connection(host, port)


async def read_answer(
    reader: asyncio.StreamReader, started: float, *, wait: float = 10.0, eof_wait: float = 3.0
) -> RawAnswer:
    """Read one answer (by its Content-Length), then wait up to ``eof_wait`` s for EOF."""
    async with asyncio.timeout(wait):
        head = await reader.readuntil(b"\r\n\r\n")
    answered = time.monotonic()
    status_line, *lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/(\d\.\d) (\d{3})", status_line)
    assert match, status_line
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines if line)}
    length = int(headers.get("content-length", "0"))
    async with asyncio.timeout(wait):
        body = await reader.readexactly(length)
    closed_after: float | None = None
    try:
        async with asyncio.timeout(eof_wait):
            while True:
                more = await reader.read(65536)
                if not more:
                    closed_after = time.monotonic() - answered
                    break
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed_after = time.monotonic() - answered
    return RawAnswer(
        status=int(match[2]),
        version=match[1],
        headers=headers,
        body=body,
        answered_after=answered - started,
        closed_after=closed_after,
        raw=head + body,
    )


async def send_and_read(
    url: str, data: bytes, *, wait: float = 10.0, eof_wait: float = 3.0
) -> RawAnswer:
    """Send ``data`` as is, then read the answer."""
    reader, writer = await connect(url)
    started = time.monotonic()
    try:
        writer.write(data)
        await writer.drain()
        return await read_answer(reader, started, wait=wait, eof_wait=eof_wait)
    finally:
        writer.close()


def request_head(
    method: str, path: str, headers: dict[str, str], *, host: str = "127.0.0.1"
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def metric_values(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample of ``name`` in a Prometheus scrape."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            if series == name or series.startswith(name + "{"):
                out[series[len(name) :]] = float(value)
    return out
