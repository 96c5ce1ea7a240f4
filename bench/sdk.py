"""Requests as VNPT's Java SDK puts them on the wire, built cheaply for the load generator.

What the SDK sends (``tests/support/vdxp_client.py`` emulates it exactly, and the captures in
``tests/data/vdxp/captures/`` show it): every parameter any call set is kept in one Java
``HashMap`` per SDK object and sent again on every later call as ``XroadVnpt-<name>``;
``XroadVnpt-sign-header`` is Gson's JSON of that map in the map's iteration order,
``XroadVnpt-hash-header`` the hex HMAC-SHA256 of it under the system's secret, and the
timestamp is frozen when the object is made. ``sendEdoc`` goes as ``HttpURLConnection``
writes it (``application/octet-stream``, the package plus CRLF, the unpadded hex SHA-256 of
the package as ``hash-file``); the other operations as its Apache HttpClient does
(``Expect: 100-continue`` on a non-empty body, which is ``{}`` for ``getEdoc`` and
``updateStatus``).

A :class:`Session` is one such SDK object. It computes the map's Java order once per set of
names (``JavaHashMap`` of the test client) and escapes only values that need it, so one
request costs one small JSON join and one HMAC: the generator must stay far below the
server's cost per request, or it takes the cores it is measuring.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from axis.vdxp import VIETNAM, format_timestamp, hmac_hex, sdk_hex
from tests.support.vdxp_client import (
    JSON,
    OCTETS,
    SDK_VERSION,
    URLCONNECTION_ACCEPT,
    USER_AGENT,
    JavaHashMap,
    gson_string,
)

PREFIX = "XroadVnpt-"
CRLF = b"\r\n"
EMPTY_JSON = b"{}"
# what Gson writes between quotes unchanged (no escapes, no HTML-safe \u003d and the like)
_PLAIN = re.compile(r"[A-Za-z0-9 ._:;,+/*()\[\]@#$%^!?~|{}-]*")

_APACHE_TAIL = b"Connection: Keep-Alive\r\nAccept-Encoding: gzip,deflate\r\n"
_URLCONNECTION_TAIL = (
    f"Cache-Control: no-cache\r\nPragma: no-cache\r\nAccept: {URLCONNECTION_ACCEPT}\r\n"
    "Connection: keep-alive\r\n"
).encode()


def _json(text: str) -> str:
    return f'"{text}"' if _PLAIN.fullmatch(text) else gson_string(text)


def hash_file(package: bytes) -> str:
    """``hash-file`` as the SDK renders it: the package's SHA-256, each byte unpadded hex."""
    return sdk_hex(hashlib.sha256(package).digest())


class Session:
    """One SDK object: its carried parameters and its frozen timestamp, signing requests."""

    def __init__(self, systemid: str, secret: str, timestamp: str | None = None) -> None:
        self._secret = secret
        self._values: dict[str, str] = {}  # insertion order is the map's insertion order
        self._names: dict[str, str] = {}  # name -> its JSON key, quoted once
        self._orders: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.put("systemid", systemid)
        self.put("timestamp", timestamp or format_timestamp(datetime.now(VIETNAM)))

    def put(self, name: str, value: str) -> None:
        """Set a parameter, as the SDK's setters do: it is signed and sent from now on."""
        if name not in self._names:
            self._names[name] = _json(PREFIX + name)
        self._values[name] = value

    def _order(self) -> tuple[str, ...]:
        names = tuple(self._values)
        order = self._orders.get(names)
        if order is None:
            emulated = JavaHashMap()
            for name in names:
                emulated.put(name, "")
            order = self._orders[names] = tuple(name for name, _ in emulated.items())
        return order

    def headers(self, content_type: str) -> bytes:
        """The parameter and signature header lines of the next call (without Host and
        Content-Length, which the HTTP client writes), in the order the SDK writes them."""
        self.put("Content-Type", content_type)
        values = self._values
        order = self._order()
        sign_header = "{" + ",".join(f"{self._names[n]}:{_json(values[n])}" for n in order) + "}"
        digest = hmac_hex(self._secret, sign_header.encode("utf-8"))
        lines = []
        if content_type == OCTETS:  # HttpURLConnection: Content-Type first
            lines.append(f"Content-Type: {content_type}")
        for name in order:
            if name == "Content-Type" and content_type != OCTETS:  # Apache: beside its copy
                lines.append(f"Content-Type: {content_type}")
            lines.append(f"{PREFIX}{name}: {values[name]}")
        lines += [
            f"{PREFIX}sign-header-key: {';'.join(order)}",
            f"{PREFIX}sign-header: {sign_header}",
            f"{PREFIX}hash-header: {digest}",
            f"User-Agent: {USER_AGENT}",
            f"{PREFIX}version: {SDK_VERSION}",
            "",
        ]
        tail = _URLCONNECTION_TAIL if content_type == OCTETS else _APACHE_TAIL
        return "\r\n".join(lines).encode("utf-8") + tail

    # ------------------------------------------------------------ the calls the load makes

    def send_edoc(self, package: bytes, from_code: str, messagetype: str = "edoc") -> bytes:
        """The headers of ``sendEdoc`` for ``package`` (its body is ``package + CRLF``)."""
        self.put("servicetype", "eDoc")
        self.put("messagetype", messagetype)
        self.put("hash-file", hash_file(package))
        self.put("from", from_code)
        return self.headers(OCTETS)

    def received_list(self, messagetype: str = "edoc", page_size: int | None = None) -> bytes:
        """The headers of ``getReceivedEdocList`` (an empty body, so no ``Expect``)."""
        self.put("messagetype", messagetype)
        if page_size is not None:
            self.put("pageSize", str(page_size))
        return self.headers(JSON)

    def get_edoc(self, doc_id: str) -> bytes:
        """The headers of ``getEdoc`` (body ``{}``, sent after ``100 Continue``)."""
        self.put("docId", doc_id)
        return self.headers(JSON)

    def update_status(self, doc_id: str, status: str = "done") -> bytes:
        """The headers of ``updateStatus`` (body ``{}``, sent after ``100 Continue``)."""
        self.put("docId", doc_id)
        self.put("status", status)
        return self.headers(JSON)
