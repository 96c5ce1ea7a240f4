"""Reading request bodies within limits of size and time, one rule for every body.

Every body (a package, a status packet, an administrator's JSON or PEM, an ack) is read by
``BodyReader``: the size limit is enforced while reading, so an oversized body is refused as
soon as the limit is passed and the rest is never read; a body that stalls for
``AXIS_BODY_TIMEOUT`` seconds is dropped (``408``), and so is one that arrives slower than
``AXIS_BODY_MIN_RATE`` on average: each body must be whole within
``AXIS_BODY_TIMEOUT + size / AXIS_BODY_MIN_RATE`` seconds (mod_reqtimeout's ``MinRate``), so a
client trickling a byte every few seconds cannot hold a connection, a spool file or a handler.

A client that hangs up mid-body is ``ClientGone``, never a failure of the axis; a disk that
cannot take the spooled bytes is ``StoreUnavailable``. The two are told apart where each can
happen (the socket's read, the spool file's write), not by the type of ``OSError``.

Packages are hashed on the way in (the digest of the exact bytes, without a second read) and
spooled to disk past ``AXIS_SPOOL_THRESHOLD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson
from aiohttp import web

from axis.config import MIB, Settings
from axis.errors import (
    ClientGone,
    InvalidRequest,
    RequestTimeout,
    StoreUnavailable,
    TooLarge,
    UnsupportedMediaType,
)
from axis.model import Body

XML_TYPES = ("application/xml", "text/xml")
CHUNK = 256 * 1024
# JSON and PEM bodies (acks, agencies, certificates) are small: an agency with a hundred pinned
# certificates is ~250 KiB. Read in memory, so bounded well below AXIS_MAX_BYTES.
SMALL_MAX_BYTES = 1 * MIB


class BodyTimeout(RequestTimeout):
    """The body stalled, or came too slowly; the answer closes the connection at once."""


class MalformedBody(InvalidRequest):
    """The framing of the body is broken (a bad chunk); what follows cannot be a request."""

    closes_connection = True


class BodyReader:
    """The chunks of one request body, within the size limit and the time rule."""

    def __init__(self, request: web.Request, settings: Settings, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.stall = settings.body_timeout
        self.rate = settings.body_min_rate
        self.size = 0
        declared = request.content_length
        if declared is not None and declared > limit:
            raise TooLarge(f"body: {declared} bytes declared, the limit is {limit}")
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()

    def _deadline(self) -> float:
        return self._started + self.stall + self.size / self.rate

    async def next(self) -> bytes:
        """The next chunk; ``b""`` at the end of the body."""
        left = self._deadline() - self._loop.time()
        wait = min(self.stall, left)
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                chunk = await self.request.content.read(CHUNK)
        except TimeoutError:
            raise self._timeout(stalled=wait >= self.stall) from None
        except ConnectionError as exc:
            raise ClientGone(
                f"the client closed the connection after {self.size} bytes of the body"
                f" ({self._declared()}): {exc}"
            ) from None
        except web.RequestPayloadError as exc:
            raise MalformedBody(f"body: malformed transfer encoding ({exc})") from None
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(f"body: more than the limit of {self.limit} bytes")
        return chunk

    def _declared(self) -> str:
        declared = self.request.content_length
        return f"{declared} declared" if declared is not None else "chunked"

    def _timeout(self, *, stalled: bool) -> BodyTimeout:
        if stalled:
            return BodyTimeout(
                f"body: nothing arrived for {self.stall:g} s after {self.size} bytes;"
                " send the request again"
            )
        spent = self._loop.time() - self._started
        return BodyTimeout(
            f"body: {self.size} bytes in {spent:.1f} s is slower than the {self.rate:g} bytes"
            f" a second the axis waits for (AXIS_BODY_MIN_RATE, after {self.stall:g} s of"
            " grace); send the request again over a faster link"
        )


async def read_small_body(request: web.Request, settings: Settings) -> bytes:
    """A JSON or PEM body, whole, in memory (at most ``SMALL_MAX_BYTES``)."""
    reader = BodyReader(request, settings, min(SMALL_MAX_BYTES, settings.max_bytes))
    chunks: list[bytes] = []
    while chunk := await reader.next():
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_body(request: web.Request, settings: Settings, expected: str) -> Any:
    """A JSON body parsed; ``expected`` says in the error what the endpoint takes."""
    raw = await read_small_body(request, settings)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: not JSON ({exc}); expected {expected}") from None
    if b"\\u0000" in raw and _holds_nul(data):  # escaped: a raw NUL is not JSON at all
        raise InvalidRequest(
            "body: a string holds \\u0000 (NUL); no text the axis keeps holds one, remove it"
        )
    return data


def _holds_nul(value: Any) -> bool:
    """Whether a NUL stands in any string of a parsed JSON value, keys included (PostgreSQL
    cannot store one; SQLite would, and the two must answer alike)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


class _Spool:
    """Where a large body goes while it arrives; every failure here is the disk's."""

    def __init__(self, settings: Settings) -> None:
        self.dir = settings.tmp_dir
        self.file: IO[bytes] | None = None
        self.path: Path | None = None

    def _disk(self, exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(f"cannot spool the body to {self.dir}: {exc}")

    def start(self, held: list[bytes]) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.dir, suffix=".edxml")
            self.path = Path(name)
            self.file = os.fdopen(fd, "wb")
            for chunk in held:
                self.file.write(chunk)
        except OSError as exc:
            raise self._disk(exc) from exc

    def write(self, chunk: bytes) -> None:
        assert self.file is not None
        try:
            self.file.write(chunk)
        except OSError as exc:
            raise self._disk(exc) from exc

    def finish(self) -> Path | None:
        if self.file is None:
            return None
        try:
            self.file.close()  # a full disk may show only now
        except OSError as exc:
            raise self._disk(exc) from exc
        return self.path

    def discard(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def read_xml_body(
    request: web.Request,
    settings: Settings,
    *,
    media_types: tuple[str, ...] = XML_TYPES,
    also: Callable[[bytes], None] | None = None,
) -> Body:
    """A package or status packet: hashed on the way in, spooled to disk when large.

    ``also`` sees every chunk as it arrives (a second digest: VDXP's ``sendEdoc`` checks the
    body without the CRLF its SDK appends)."""
    if request.content_type not in media_types:
        raise UnsupportedMediaType(
            f"Content-Type: expected {media_types[0]}, got {request.content_type or 'none'}"
        )
    reader = BodyReader(request, settings, settings.max_bytes)
    hasher = hashlib.sha256()
    chunks: list[bytes] = []
    spool = _Spool(settings)
    try:
        while chunk := await reader.next():
            hasher.update(chunk)
            if also is not None:
                also(chunk)
            if spool.file is not None:
                spool.write(chunk)
            elif reader.size > settings.spool_threshold:
                spool.start([*chunks, chunk])
                chunks.clear()
            else:
                chunks.append(chunk)
        spool_path = spool.finish()
    except BaseException:
        spool.discard()
        raise
    if reader.size == 0:
        raise InvalidRequest("body: empty; send the signed edXML package")
    data = None if spool_path is not None else b"".join(chunks)
    return Body(data, spool_path, hasher.hexdigest(), reader.size)
