"""A minimal HTTP/1.1 keep-alive client on an asyncio protocol, for the load generator.

The machine has few cores and the load generator shares them with the server, so every
microsecond the client spends per request is one the server does not get. aiohttp's client
costs a few hundred microseconds a request in Python; this one writes pre-built bytes with
``writelines`` and parses only the status line, ``Content-Length`` and chunked framing, which
is all the axis's answers use. One request at a time per connection (no pipelining), as a
real sender does. ``expect_continue`` sends the head alone with ``Expect: 100-continue`` and
the body once the server's interim ``100 Continue`` arrives, as the Apache HttpClient in
VNPT's SDK does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class HttpError(Exception):
    """The connection broke or the answer could not be framed."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: bytes  # raw header block, lower-cased names are not guaranteed
    body: bytes


class Connection(asyncio.Protocol):
    def __init__(self, host_header: bytes) -> None:
        self.host_header = host_header
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._head: tuple[int, bytes, int | None, bool] | None = None
        self._held: bytes | None = None  # a body waiting for ``100 Continue``
        self.closed = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is not None:
            try:
                self._parse()
            except (ValueError, IndexError) as exc:
                self._fail(HttpError(f"unparseable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection lost: {exc}"))

    # --- use ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        headers: bytes = b"",
        body: bytes = b"",
        *,
        expect_continue: bool = False,
    ) -> asyncio.Future[Answer]:
        """Send one request; ``headers`` are complete ``Name: value\\r\\n`` lines.

        ``expect_continue``: send ``Expect: 100-continue`` and hold a non-empty body back
        until the server answers ``100 Continue``.
        """
        if self.closed or self._transport is None:
            raise HttpError("connection closed")
        assert self._waiter is None, "one request at a time per connection"
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        expect = expect_continue and bool(body)
        head = (
            f"{method} {target} HTTP/1.1\r\n".encode()
            + self.host_header
            + headers
            + (b"Expect: 100-continue\r\n" if expect else b"")
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        if expect:
            self._held = body
            self._transport.write(head)
        else:
            self._transport.writelines([head, body] if body else [head])
        return self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # --- framing --------------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _parse(self) -> None:
        buf = self._buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            block = bytes(buf[:end])
            del buf[: end + 4]
            lines = block.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            if 100 <= status < 200:  # interim: send what was held back, read on
                held, self._held = self._held, None
                if held is not None and self._transport is not None:
                    self._transport.write(held)
                self._parse()
                return
            length: int | None = None
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
            self._head = (status, block, length, chunked)
        status, block, length, chunked = self._head
        if chunked:
            body = self._take_chunked()
            if body is None:
                return
        else:
            need = length or 0
            if len(buf) < need:
                return
            body = bytes(buf[:need])
            del buf[:need]
        self._head = None
        waiter, self._waiter = self._waiter, None
        if self._held is not None:  # answered without 100 Continue: the body was never sent,
            self._held = None  # so the connection cannot carry another request
            self.closed = True
            if self._transport is not None:
                self._transport.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(status, block, body))

    def _take_chunked(self) -> bytes | None:
        """The whole chunked body if it has all arrived (consumed), else ``None``."""
        buf = self._buf
        pos = 0
        parts: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
            start = eol + 2
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # trailers, usually none
                if end < 0:
                    return None
                del buf[: end + 4]
                return b"".join(parts)
            if len(buf) < start + size + 2:
                return None
            parts.append(bytes(buf[start : start + size]))
            pos = start + size + 2


async def connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    host_header = f"Host: {host}:{port}\r\n".encode()
    _, protocol = await loop.create_connection(lambda: Connection(host_header), host, port)
    return protocol
