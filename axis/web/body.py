"""Reading request bodies within limits: in memory when small, spooled to disk when large.

The size limit is enforced while reading, so an oversized body is refused as soon as the limit
is passed and the rest is never read; the SHA-256 is computed on the way in, so the digest of
the exact bytes is known without reading them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from axis.config import Settings
from axis.errors import (
    InvalidRequest,
    RequestTimeout,
    StoreUnavailable,
    TooLarge,
    UnsupportedMediaType,
)
from axis.model import Body

XML_TYPES = ("application/xml", "text/xml")


async def read_xml_body(
    request: web.Request,
    settings: Settings,
    *,
    media_types: tuple[str, ...] = XML_TYPES,
    also: Callable[[bytes], None] | None = None,
) -> Body:
    """The body within the limits; ``also`` sees every chunk as it arrives (a second digest:
    VDXP's ``sendEdoc`` checks the body without the CRLF its SDK appends)."""
    if request.content_type not in media_types:
        raise UnsupportedMediaType(
            f"Content-Type: expected {media_types[0]}, got {request.content_type or 'none'}"
        )
    limit = settings.max_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"body: {declared} bytes declared, the limit is {limit}")
    hasher = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    spool = None
    spool_path: Path | None = None
    try:
        while True:
            try:
                # a sender that stops mid-body must not hold a connection and a spool file
                async with asyncio.timeout(settings.body_timeout):
                    chunk = await request.content.read(256 * 1024)
            except TimeoutError:
                raise RequestTimeout(
                    f"body: nothing arrived for {settings.body_timeout:g} s after {size} bytes;"
                    " send the package again"
                ) from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body: more than the limit of {limit} bytes")
            hasher.update(chunk)
            if also is not None:
                also(chunk)
            if spool is not None:
                spool.write(chunk)
            elif size > settings.spool_threshold:
                settings.tmp_dir.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=settings.tmp_dir, suffix=".edxml")
                spool = os.fdopen(fd, "wb")
                spool_path = Path(name)
                for held in chunks:
                    spool.write(held)
                spool.write(chunk)
                chunks.clear()
            else:
                chunks.append(chunk)
        if spool is not None:
            spool.close()  # inside the try: a full disk may show only now
    except BaseException as exc:
        if spool is not None:
            with contextlib.suppress(OSError):
                spool.close()
        if spool_path is not None:
            spool_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # the disk is full or the data directory unwritable
            raise StoreUnavailable(f"cannot spool the body to {settings.tmp_dir}: {exc}") from exc
        raise
    if size == 0:
        raise InvalidRequest("body: empty; send the signed edXML package")
    data = None if spool_path is not None else b"".join(chunks)
    return Body(data, spool_path, hasher.hexdigest(), size)
