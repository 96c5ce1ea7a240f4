"""The captured SDK exchanges of ``tests/data/vdxp/captures/``, read into values, and a loopback
server that records requests byte for byte (to compare what our SDK-like client writes)."""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "vdxp"
CAPTURES = DATA / "captures"
SECRET = "A7TKG/r2gOKTEpe1MhWx6zw8O4JfzN0KkCRS6HZY81Ve"
SYSTEMID = "vxp.saas.03"


@dataclass(frozen=True)
class Capture:
    name: str  # "happy-path/005-sendEdoc-ok"
    operation: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None  # the whole body when the capture holds it
    body_size: int
    body_sha256: str
    stripped_sha256: str | None  # of the body without the SDK's CRLF (sendEdoc)
    response_status: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def signed(self) -> bool:
        return self.header("XroadVnpt-sign-header") is not None


def load(path: Path) -> Capture:
    lines = path.read_text("utf-8").splitlines()
    operation = re.search(r" op=(\w+)", lines[0])
    assert operation is not None, path
    method = target = ""
    headers: list[tuple[str, str]] = []
    body: bytes | None = None
    size, digest, stripped, status = 0, "", None, 0
    in_headers = False
    for line in lines[1:]:
        if in_headers and line.startswith("  "):
            name, _, value = line[2:].partition(": ")
            headers.append((name, value))
            continue
        in_headers = False
        if line.startswith("REQUEST LINE: "):
            method, target, _ = line[len("REQUEST LINE: ") :].split(" ")
        elif line.startswith("HEADERS ("):
            in_headers = True
        elif m := re.match(r"BODY: (\d+) bytes, sha256=([0-9a-f]{64})", line):
            size, digest = int(m.group(1)), m.group(2)
        elif m := re.match(r"BODY minus trailing CRLF: \d+ bytes, sha256=([0-9a-f]{64})", line):
            stripped = m.group(1)
        elif line.startswith("BODY (repr): "):
            body = ast.literal_eval(line[len("BODY (repr): ") :])
        elif m := re.match(r"RESPONSE: HTTP (\d+)", line):
            status = int(m.group(1))
    name = f"{path.parent.name}/{path.stem}"
    return Capture(
        name,
        operation.group(1),
        method,
        target,
        tuple(headers),
        body,
        size,
        digest,
        stripped,
        status,
    )


def all_captures() -> list[Capture]:
    return [load(path) for path in sorted(CAPTURES.glob("*/*.txt"))]


def capture(name: str) -> Capture:
    return load(CAPTURES / f"{name}.txt")


# ---------------------------------------------------------------- a recording server


@dataclass
class Recorded:
    head: bytes  # request line and headers, exactly as received
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def headers(self) -> list[tuple[str, str]]:
        out = []
        for raw in self.head.split(b"\r\n")[1:]:
            if raw:
                name, _, value = raw.decode("utf-8").partition(": ")
                out.append((name, value))
        return out


@dataclass
class Recorder:
    """Answers every request with ``answer`` (JSON) after recording it; sends ``100 Continue``
    to ``Expect``; ``drop_next`` closes that many connections instead of answering."""

    answer: bytes = b'{"status":"OK","ErrorCode":"0","ErrorDesc":"Success","DocId":"x"}'
    requests: list[Recorded] = field(default_factory=list)
    drop_next: int = 0
    close_after_answer: bool = False  # as a server closing idle keep-alive connections
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                expect = False
                for raw in head.split(b"\r\n")[1:]:
                    name, _, value = raw.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                    if name.strip().lower() == b"expect":
                        expect = True
                if expect:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                body = await reader.readexactly(length) if length else b""
                self.requests.append(Recorded(head[:-4], body))
                if self.drop_next:
                    self.drop_next -= 1
                    writer.close()
                    return
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                    + f"Content-Length: {len(self.answer)}\r\n\r\n".encode()
                    + self.answer
                )
                await writer.drain()
                if self.close_after_answer:
                    return
        finally:
            writer.close()


@asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.port = server.sockets[0].getsockname()[1]
    try:
        yield rec
    finally:
        server.close()
        await server.wait_closed()
