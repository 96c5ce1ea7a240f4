"""A client that talks to ``/vxp`` the way VNPT's Java SDK does, byte for byte where it matters.

Written over raw asyncio streams (HTTP/1.1 by hand) so that header order and bytes are exactly
what the SDK sends, as the captures in ``tests/data/vdxp/captures/`` show:

- One object per process, as the SDK's service object: every parameter any call set is kept in
  a Java ``HashMap`` and sent again on every later call; ``timestamp`` is frozen at creation.
- The map's iteration order is Java's: bucket ``(h ^ h>>>16) & (capacity-1)`` of
  ``String.hashCode`` of the parameter name (without the ``XroadVnpt-`` prefix), insertion order
  within a bucket, capacity 16 doubling past 3/4 full. Every captured sign-header follows it.
  ``order=random.Random(…)`` shuffles instead, for property tests.
- ``XroadVnpt-sign-header`` is Gson's compact JSON of the map (HTML-safe escaping, as Gson's
  default), ``XroadVnpt-sign-header-key`` its names ``;``-joined, ``XroadVnpt-hash-header`` the
  HMAC; ``hash-file`` is the unpadded hex of the package's SHA-256; ``sendEdoc``'s body is the
  package plus ``\\r\\n``.
- ``sendEdoc`` goes as the SDK's ``HttpURLConnection`` writes it; every other operation as its
  Apache HttpClient does: ``Expect: 100-continue`` on non-empty bodies (``{}``), ``Connection:
  Keep-Alive``, and a POST whose connection broke is sent again (``retries`` times).

Answers are checked against the contract (``strict``): JSON, ASCII-only, ``status``,
``ErrorCode``, ``ErrorDesc`` present and not null, no null in list items, ``DocId`` on every
``sendEdoc`` answer, an empty body on a failed ``downloadEdoc``. A breach raises
:class:`ContractViolation`, so end-to-end tests catch what the real SDK would trip over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

from axis.vdxp import VIETNAM, format_timestamp, hmac_hex, sdk_hex

USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
SDK_VERSION = "3.0.201608"
URLCONNECTION_ACCEPT = "text/html, image/gif, image/jpeg, */*; q=0.2"
JSON = "application/json"
OCTETS = "application/octet-stream"


class ContractViolation(AssertionError):
    """The axis answered in a way the real SDK would misread."""


# ---------------------------------------------------------------- Java and Gson emulation


def java_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as an unsigned 32-bit value."""
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h


def _bucket(name: str, capacity: int) -> int:
    h = java_hash(name)
    return (h ^ (h >> 16)) & (capacity - 1)


class JavaHashMap:
    """The iteration order of a ``java.util.HashMap<String, String>`` that is only ever put to.

    Within a bucket entries stay in insertion order (new ones go to the tail, and a resize
    splits a bucket keeping relative order), so ordering by (bucket at the current capacity,
    insertion sequence) is Java's order, short of treeified buckets (8 collisions), which a
    dozen header names never reach.
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._seq: dict[str, int] = {}
        self._capacity = 16

    def put(self, name: str, value: str) -> None:
        if name not in self._values:
            self._seq[name] = len(self._seq)
            if len(self._seq) > self._capacity * 3 // 4:
                self._capacity *= 2
        self._values[name] = value

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> list[tuple[str, str]]:
        names = sorted(self._values, key=lambda n: (_bucket(n, self._capacity), self._seq[n]))
        return [(name, self._values[name]) for name in names]


_GSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\t": "\\t",
    "\b": "\\b",
    "\n": "\\n",
    "\r": "\\r",
    "\f": "\\f",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GSON_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "=": "\\u003d", "'": "\\u0027"}


def gson_string(text: str, *, html_safe: bool = True) -> str:
    """A JSON string as Gson's ``JsonWriter`` writes it (non-ASCII raw, controls as ``\\u``)."""
    out = ['"']
    for ch in text:
        if ch in _GSON_ESCAPES:
            out.append(_GSON_ESCAPES[ch])
        elif html_safe and ch in _GSON_HTML:
            out.append(_GSON_HTML[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def gson_object(pairs: Iterable[tuple[str, str]], *, html_safe: bool = True) -> str:
    """Gson's compact JSON of a string-to-string map, in the order given."""
    body = ",".join(
        f"{gson_string(k, html_safe=html_safe)}:{gson_string(v, html_safe=html_safe)}"
        for k, v in pairs
    )
    return "{" + body + "}"


def gson_list(items: Sequence[str]) -> str:
    """Gson's JSON of a list of strings (how the SDK writes an array ``to``)."""
    return "[" + ",".join(gson_string(item) for item in items) + "]"


# ---------------------------------------------------------------- requests and answers


@dataclass(frozen=True)
class Prepared:
    """One request as it goes on the wire."""

    operation: str
    method: Literal["GET", "POST"]
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None  # None: no body and no Content-Length (a GET)
    expect_continue: bool

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def head_bytes(self, charset: str = "utf-8") -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode(charset)


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> dict[str, Any]:
        parsed = json.loads(self.body.decode("ascii", "replace"))
        if not isinstance(parsed, dict):
            raise ContractViolation(f"answer is not a JSON object: {self.body[:200]!r}")
        return parsed


@dataclass
class Exchange:
    """The last call: what was sent, what came back, how many times it was tried."""

    request: Prepared
    response: Response
    attempts: int


@dataclass(frozen=True)
class Download:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class VdxpClient:
    """The SDK's service object: one per process, state carried from call to call."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        systemid: str,
        secret: str,
        base_path: str = "/vxp",
        timestamp: str | None = None,
        retries: int = 2,
        order: Literal["hashmap"] | random.Random = "hashmap",
        html_safe: bool = True,
        strict: bool = True,
        timeout: float = 60.0,
        continue_timeout: float = 3.0,
        header_charset: str = "utf-8",
    ) -> None:
        self.host, self.port = host, port
        self.secret = secret
        self.base_path = base_path.rstrip("/")
        self.retries = retries
        self.order = order
        self.html_safe = html_safe
        self.strict = strict
        self.timeout = timeout
        self.continue_timeout = continue_timeout
        self.header_charset = header_charset
        self.params = JavaHashMap()
        self.params.put("systemid", systemid)
        self.params.put("timestamp", timestamp or format_timestamp(datetime.now(VIETNAM)))
        self.last: Exchange | None = None
        self.connections_opened = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> VdxpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def set(self, name: str, value: str) -> None:
        """Put a parameter into the map, as the SDK's setters do: it is signed and sent on
        every later call."""
        self.params.put(name, value)

    # ------------------------------------------------------------ the operations

    async def sendEdoc(
        self,
        package: bytes,
        *,
        from_code: str,
        messagetype: str = "edoc",
        to: str | Sequence[str] | None = None,
        hash_file: str | None = None,
    ) -> dict[str, Any]:
        """Send a package; ``hash_file`` overrides the computed one (replaying a capture)."""
        self.set("servicetype", "eDoc")
        self.set("messagetype", messagetype)
        self.set("hash-file", hash_file or sdk_hex(hashlib.sha256(package).digest()))
        self.set("from", from_code)
        if to is not None:
            self.set("to", gson_string(to) if isinstance(to, str) else gson_list(to))
        return (await self._call("sendEdoc", package + b"\r\n", OCTETS)).json()

    async def getReceivedEdocList(
        self,
        messagetype: str = "edoc",
        *,
        to: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        page_size: int | None = None,
        page_index: int | None = None,
    ) -> dict[str, Any]:
        self.set("messagetype", messagetype)
        self._set_list(to, from_date, to_date, page_size, page_index)
        return (await self._call("getReceivedEdocList", b"")).json()

    async def countReceiveEdoc(self, messagetype: str | None = None) -> dict[str, Any]:
        if messagetype is not None:
            self.set("messagetype", messagetype)
        return (await self._call("countReceiveEdoc", b"{}")).json()

    async def countReceiveStatus(self, messagetype: str | None = None) -> dict[str, Any]:
        if messagetype is not None:
            self.set("messagetype", messagetype)
        return (await self._call("countReceiveStatus", b"{}")).json()

    async def getSentEdocList(
        self,
        doc_id: str | None = None,
        *,
        from_date: str | None = None,
        to_date: str | None = None,
        page_size: int | None = None,
        page_index: int | None = None,
    ) -> dict[str, Any]:
        if doc_id is not None:
            self.set("docId", doc_id)
        self._set_list(None, from_date, to_date, page_size, page_index)
        return (await self._call("getSentEdocList", b"")).json()

    async def getEdoc(self, doc_id: str, file_path: str | None = None) -> dict[str, Any]:
        self.set("docId", doc_id)
        if file_path is not None:
            self.set("filePath", file_path)
        return (await self._call("getEdoc", b"{}")).json()

    async def downloadEdoc(self, doc_id: str, file_path: str | None = None) -> Download:
        self.set("docId", doc_id)
        if file_path is not None:
            self.set("filePath", file_path)
        response = await self._call("downloadEdoc", None)
        return Download(response.status, response.body, response.headers)

    async def updateStatus(self, doc_id: str, status: str) -> dict[str, Any]:
        self.set("docId", doc_id)
        self.set("status", status)
        return (await self._call("updateStatus", b"{}")).json()

    async def getAgenciesList(self) -> dict[str, Any]:
        return (await self._call("getAgenciesList", b"")).json()

    async def getAgenciesListQD20(self, level: int | str) -> dict[str, Any]:
        self.set("level", str(level))
        return (await self._call("getAgenciesListQD20", b"")).json()

    async def getSynchronizeUnit(self) -> dict[str, Any]:
        return (await self._call("getSynchronizeUnit", b"")).json()

    async def registerAgency(self, agency: bytes | Mapping[str, str]) -> dict[str, Any]:
        """``agency`` as JSON bytes (sent as they are: VNPT's example sends malformed JSON)
        or a mapping (serialised as Gson would)."""
        body = agency if isinstance(agency, bytes) else gson_object(agency.items()).encode()
        return (await self._call("registerAgency", body)).json()

    async def deleteAgency(self, agency_code: str) -> dict[str, Any]:
        self.set("AgencyCode", agency_code)
        return (await self._call("deleteAgency", b"{}")).json()

    def _set_list(
        self,
        to: str | None,
        from_date: str | None,
        to_date: str | None,
        page_size: int | None,
        page_index: int | None,
    ) -> None:
        for name, value in (
            ("to", to),
            ("fromDate", from_date),
            ("toDate", to_date),
            ("pageSize", page_size),
            ("pageIndex", page_index),
        ):
            if value is not None:
                self.set(name, str(value))

    # ------------------------------------------------------------ building

    def prepare(self, operation: str, body: bytes | None, content_type: str = JSON) -> Prepared:
        """The request ``operation`` sends now, with the map as it stands (and Content-Type
        set to ``content_type``, as each SDK call does)."""
        self.set("Content-Type", content_type)
        pairs = self.params.items()
        if isinstance(self.order, random.Random):
            self.order.shuffle(pairs)
        sign_header = gson_object(
            ((f"XroadVnpt-{name}", value) for name, value in pairs), html_safe=self.html_safe
        )
        signature = [
            ("XroadVnpt-sign-header-key", ";".join(name for name, _ in pairs)),
            ("XroadVnpt-sign-header", sign_header),
            ("XroadVnpt-hash-header", hmac_hex(self.secret, sign_header.encode("utf-8"))),
            ("User-Agent", USER_AGENT),
            ("XroadVnpt-version", SDK_VERSION),
        ]
        host = f"{self.host}:{self.port}"
        target = f"{self.base_path}/{operation}"
        headers: list[tuple[str, str]] = []
        if operation == "sendEdoc":  # java.net.HttpURLConnection
            headers.append(("Content-Type", content_type))
            headers += [(f"XroadVnpt-{name}", value) for name, value in pairs]
            headers += signature
            headers += [
                ("Cache-Control", "no-cache"),
                ("Pragma", "no-cache"),
                ("Host", host),
                ("Accept", URLCONNECTION_ACCEPT),
                ("Connection", "keep-alive"),
                ("Content-Length", str(len(body or b""))),
            ]
            return Prepared(operation, "POST", target, tuple(headers), body or b"", False)
        for name, value in pairs:  # Apache HttpClient 4.5
            if name == "Content-Type":
                headers.append(("Content-Type", value))
            headers.append((f"XroadVnpt-{name}", value))
        headers += signature
        method: Literal["GET", "POST"] = "GET" if body is None else "POST"
        if body is not None:
            headers.append(("Content-Length", str(len(body))))
        headers += [("Host", host), ("Connection", "Keep-Alive")]
        expect = bool(body)
        if expect:
            headers.append(("Expect", "100-continue"))
        headers.append(("Accept-Encoding", "gzip,deflate"))
        return Prepared(operation, method, target, tuple(headers), body, expect)

    # ------------------------------------------------------------ the wire

    async def _call(self, operation: str, body: bytes | None, content_type: str = JSON) -> Response:
        request = self.prepare(operation, body, content_type)
        response, attempts = await self.send(request)
        self.last = Exchange(request, response, attempts)
        if self.strict:
            check_answer(operation, response)
        return response

    async def send(self, request: Prepared) -> tuple[Response, int]:
        """Send ``request``, again on a new connection when the connection broke (up to
        ``retries`` more times, as the SDK's retry handler does); (response, attempts)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._exchange(request), attempt
            except (ConnectionError, asyncio.IncompleteReadError, EOFError):
                await self.close()
                if attempt > self.retries:
                    raise

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self.connections_opened += 1
        return self._reader, self._writer

    async def _exchange(self, request: Prepared) -> Response:
        reader, writer = await self._connection()
        writer.write(request.head_bytes(self.header_charset))
        await writer.drain()
        body = request.body or b""
        if request.expect_continue:
            try:
                async with asyncio.timeout(self.continue_timeout):
                    early = await _read_response(reader, request.method)
            except TimeoutError:  # the server said nothing: send the body anyway, as Apache
                early = None
            if early is not None and early.status != 100:
                await self.close()  # the body was never sent: the connection cannot be reused
                return early
        if body:
            writer.write(body)
            await writer.drain()
        response = await _read_response(reader, request.method)
        while response.status == 100:  # an unasked-for or late interim answer
            response = await _read_response(reader, request.method)
        if (response.header("Connection") or "").lower() == "close":
            await self.close()
        return response


async def _read_response(reader: asyncio.StreamReader, method: str) -> Response:
    line = await reader.readline()
    if not line:
        raise EOFError("connection closed before an answer")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ConnectionError(f"not an HTTP status line: {line!r}")
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers: list[tuple[str, str]] = []
    while True:
        raw = await reader.readline()
        if not raw:
            raise EOFError("connection closed inside the answer's headers")
        if raw in (b"\r\n", b"\n"):
            break
        name, _, value = raw.decode("utf-8", "surrogateescape").partition(":")
        headers.append((name.strip(), value.strip()))
    got = Response(status, reason, headers, b"")
    if status < 200 or status in (204, 304) or method == "HEAD":
        return got
    encoding = (got.header("Transfer-Encoding") or "").lower()
    if "chunked" in encoding:
        chunks = []
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise EOFError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif (length := got.header("Content-Length")) is not None:
        body = await reader.readexactly(int(length))
    else:
        body = await reader.read()
    coding = (got.header("Content-Encoding") or "").lower()
    if coding == "gzip":
        body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        body = zlib.decompress(body)
    got.body = body
    return got


def check_answer(operation: str, response: Response) -> None:
    """Raise :class:`ContractViolation` where the SDK would misread ``response``."""
    if operation == "downloadEdoc":
        if response.status >= 400 and response.body:
            raise ContractViolation(
                f"downloadEdoc failed ({response.status}) with a body: the SDK would save"
                f" {response.body[:80]!r} as the document"
            )
        if response.status < 400 and not response.body:
            raise ContractViolation("downloadEdoc answered success with an empty body")
        return
    if not response.body:
        raise ContractViolation(f"{operation}: empty answer ({response.status})")
    if not response.body.isascii():
        raise ContractViolation(
            f"{operation}: the answer is not ASCII-only: {response.body[:200]!r}"
        )
    try:
        answer = json.loads(response.body)
    except ValueError:
        raise ContractViolation(
            f"{operation}: the answer is not JSON: {response.body[:200]!r}"
        ) from None
    if not isinstance(answer, dict):
        raise ContractViolation(f"{operation}: the answer is not a JSON object")
    for name in ("status", "ErrorCode", "ErrorDesc"):
        if not isinstance(answer.get(name), str):
            raise ContractViolation(f"{operation}: {name} missing, null or not a string: {answer}")
    if answer["status"] not in ("OK", "FAIL"):
        raise ContractViolation(f"{operation}: status is {answer['status']!r}")
    if (answer["status"] == "OK") != (answer["ErrorCode"] == "0"):
        raise ContractViolation(f"{operation}: status and ErrorCode disagree: {answer}")
    if answer["status"] == "FAIL" and not isinstance(answer.get("code"), str):
        raise ContractViolation(f"{operation}: a failure without our problem code: {answer}")
    if operation == "sendEdoc" and not isinstance(answer.get("DocId"), str):
        raise ContractViolation(f"sendEdoc: DocId missing or null: {answer}")
    data = answer.get("data")
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and any(value is None for value in item.values()):
                raise ContractViolation(f"{operation}: a list item holds null: {item}")
