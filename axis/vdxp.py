"""The VDXP wire protocol (VNPT's Java SDK, ``/vxp/``) without I/O: requests, HMAC, parameters.

What arrives (VDXP.md, and the captures in ``tests/data/vdxp/``): every parameter is a header
``XroadVnpt-<name>``; ``XroadVnpt-sign-header`` is the Gson JSON of those parameters and
``XroadVnpt-hash-header`` the hex HMAC-SHA256 of that JSON's exact UTF-8 bytes under the
system's secret. The HMAC is checked over the string as received and never over a
re-serialisation, because Gson's key order (Java ``HashMap`` order) and escaping are not ours
to reproduce. The parameters are then read from the signed JSON only; a plain header that says
otherwise refuses the request, and plain headers the HMAC does not cover are ignored.

On the wire the SDK writes header values as raw UTF-8 bytes (``XroadVnpt-note: Văn phòng`` in
the probe capture arrives as ``V\\xc4\\x83n ph\\xc3\\xb2ng`` and its HMAC holds over those
bytes). aiohttp 3.14.5, in both its C and its Python parser, decodes header bytes as UTF-8
with ``surrogateescape``, so ``value.encode("utf-8", "surrogateescape")`` gives back the exact
bytes received, valid UTF-8 or not: that is what the HMAC is computed over here.

Answers, the error mapping and the Vietnamese texts are in :mod:`axis.vdxp_answers`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, TypeVar

from axis import codes
from axis.errors import HashFileMismatch, InvalidRequest, SystemUnauthorized, UnknownSender
from axis.model import MessageKind

__all__ = [
    "MAX_PAGE_SIZE",
    "OPERATIONS",
    "VIETNAM",
    "AgencyRegistration",
    "BodyDigest",
    "HashFileMismatch",
    "Operation",
    "Params",
    "SignedRequest",
    "StoredBody",
    "SystemUnauthorized",
    "UnknownSender",
    "UpdateStatus",
    "canonical",
    "format_timestamp",
    "hash_file_matches",
    "hmac_hex",
    "is_system_id",
    "parse_date_param",
    "parse_headers",
    "parse_registration",
    "parse_timestamp",
    "parse_to",
    "read_params",
    "sdk_hex",
    "stored_body",
    "strip_sdk_crlf",
    "verify",
]

T = TypeVar("T")
PREFIX = "xroadvnpt-"
SIGN_HEADER = "xroadvnpt-sign-header"
SIGN_HEADER_KEY = "xroadvnpt-sign-header-key"
HASH_HEADER = "xroadvnpt-hash-header"

# aiohttp refuses a header line over 8190 bytes before we see it; the same bound here keeps
# this module safe when called with headers from elsewhere
MAX_HEADER_BYTES = 8190
MAX_SIGNED_KEYS = 64  # the SDK signs at most ~12; carried-over headers add a few
MAX_PLAIN_HEADERS = 64
MAX_VALUE_CHARS = 2048  # a filePath may be long; nothing legitimate comes near this
MAX_PAGE_SIZE = 1000
VIETNAM = timezone(timedelta(hours=7), "ICT")

_SYSTEM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HASH_FILE = re.compile(r"[0-9a-fA-F]{32,64}")  # 32 bytes, each rendered in 1 or 2 digits
_DOC_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SHOWN = 80  # characters of a hostile value quoted in a detail

UpdateStatus = Literal["processing", "done", "fail"]
_KINDS: Mapping[str, MessageKind] = {"edoc": "edoc", "status": "status"}
_STATUSES: Mapping[str, UpdateStatus] = {"processing": "processing", "done": "done", "fail": "fail"}
_LEVELS: Mapping[str, int] = {"1": 1, "2": 2, "3": 3, "4": 4}


def _show(value: str) -> str:
    if len(value) > _SHOWN:
        return repr(value[:_SHOWN]) + f"… ({len(value)} characters)"
    return repr(value)


# ---------------------------------------------------------------- operations


Method = Literal["GET", "POST"]
BodyKind = Literal["none", "package", "json"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One ``/vxp/<name>`` operation: how it is called and which parameters it reads.

    ``reads`` lists the parameters the operation takes from the signed JSON (the rest of what
    the SDK carries over from earlier calls is ignored); ``required`` those whose absence is
    ErrorCode 30. ``messagetype`` is set where the operation itself says which kind it is about
    (the counts: the SDK need not send ``messagetype`` for them, and a carried-over one must not
    change what is counted).
    """

    name: str
    method: Method
    reads: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    messagetype: MessageKind | None = None
    body: BodyKind = "none"
    answers_doc_id: bool = False  # sendEdoc: ``DocId`` on every answer, "" on failure
    empty_failure: bool = False  # downloadEdoc: a failure is an empty body
    paged: bool = False  # reads pageSize/pageIndex
    needs_register: bool = False  # only for a system with ``register`` (its body is unsigned)


_LIST = ("to", "fromDate", "toDate", "pageSize", "pageIndex")

OPERATIONS: Mapping[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "sendEdoc",
            "POST",
            reads=("from", "messagetype", "hash-file", "to"),
            required=("from", "messagetype", "hash-file"),
            body="package",
            answers_doc_id=True,
        ),
        Operation(
            "getReceivedEdocList",
            "POST",
            reads=("messagetype", *_LIST),
            required=("messagetype",),
            paged=True,
        ),
        Operation(
            "countReceiveEdoc", "POST", reads=("to", "fromDate", "toDate"), messagetype="edoc"
        ),
        Operation(
            "countReceiveStatus", "POST", reads=("to", "fromDate", "toDate"), messagetype="status"
        ),
        Operation(
            "getSentEdocList",
            "POST",
            reads=("docId", "fromDate", "toDate", "pageSize", "pageIndex"),
            paged=True,
        ),
        Operation("getEdoc", "POST", reads=("docId",), required=("docId",)),
        Operation("downloadEdoc", "GET", reads=("docId",), required=("docId",), empty_failure=True),
        Operation("updateStatus", "POST", reads=("docId", "status"), required=("docId", "status")),
        Operation("getAgenciesList", "POST"),
        Operation("getAgenciesListQD20", "POST", reads=("level",), required=("level",)),
        Operation("getSynchronizeUnit", "POST"),
        Operation("registerAgency", "POST", body="json", needs_register=True),
        Operation(
            "deleteAgency",
            "POST",
            reads=("AgencyCode",),
            required=("AgencyCode",),
            needs_register=True,
        ),
    )
}
"""The 13 operations by name (as in the path, case-sensitive as the SDK writes them)."""


# ---------------------------------------------------------------- the signed request


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the headers say, before the HMAC is checked.

    ``signed`` holds the signed JSON's members with the ``XroadVnpt-`` prefix removed, in the
    order signed; ``plain`` the plain ``XroadVnpt-*`` headers (prefix removed, as received).
    """

    systemid: str
    sign_header: bytes  # the exact bytes the HMAC covers
    hash_header: str
    signed: tuple[tuple[str, str], ...]
    plain: tuple[tuple[str, str], ...]
    sign_header_key: str | None

    def value(self, name: str) -> str | None:
        """The signed value of parameter ``name`` (matched case-insensitively), or None."""
        folded = name.casefold()
        for key, value in self.signed:
            if key.casefold() == folded:
                return value
        return None

    @property
    def text(self) -> str:
        """The sign-header as aiohttp gave it (undecodable bytes as lone surrogates)."""
        return self.sign_header.decode("utf-8", "surrogateescape")

    @property
    def utf8(self) -> bool:
        """Whether the sign-header arrived as valid UTF-8 (the SDK on a UTF-8 JVM sends it so)."""
        try:
            self.sign_header.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def parse_headers(headers: Iterable[tuple[str, str]]) -> SignedRequest:
    """Read a request's headers as aiohttp gives them (``request.headers.items()``).

    Raises :class:`SystemUnauthorized` (15) when the request is not signed (no sign-header, no
    hash-header, no signed ``systemid``) and :class:`~axis.errors.InvalidRequest` (30) when what
    it carries is malformed (JSON, non-string values, sizes, a header sent twice).
    """
    special: dict[str, str] = {}  # sign-header, hash-header, sign-header-key by lower name
    plain: list[tuple[str, str]] = []
    for name, value in headers:
        lname = name.lower()
        if not lname.startswith(PREFIX):
            continue
        if lname in (SIGN_HEADER, HASH_HEADER, SIGN_HEADER_KEY):
            if lname in special:
                raise InvalidRequest(f"{name}: sent more than once; send it once")
            special[lname] = value
            continue
        if len(plain) >= MAX_PLAIN_HEADERS:
            raise InvalidRequest(f"more than {MAX_PLAIN_HEADERS} XroadVnpt-* headers")
        plain.append((name[len(PREFIX) :], value))
    sign, hash_header = special.get(SIGN_HEADER), special.get(HASH_HEADER)
    key = special.get(SIGN_HEADER_KEY)
    if not sign:
        raise SystemUnauthorized(
            "XroadVnpt-sign-header: missing; every /vxp request must be signed by its system"
        )
    if not hash_header:
        raise SystemUnauthorized("XroadVnpt-hash-header: missing; the request carries no HMAC")
    try:
        raw = sign.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # not from aiohttp: a str no byte sequence decodes to
        raise InvalidRequest("XroadVnpt-sign-header: not representable as bytes") from None
    if len(raw) > MAX_HEADER_BYTES:
        raise InvalidRequest(f"XroadVnpt-sign-header: longer than {MAX_HEADER_BYTES} bytes")
    signed = _signed_members(sign)
    request = SignedRequest("", raw, hash_header.strip(), signed, tuple(plain), key)
    systemid = request.value("systemid")
    if not systemid:
        raise SystemUnauthorized(
            "XroadVnpt-sign-header: names no XroadVnpt-systemid; set systemid in the SDK's"
            " configuration"
        )
    if not is_system_id(systemid):
        raise SystemUnauthorized(f"XroadVnpt-systemid: {_show(systemid)} names no system")
    return SignedRequest(systemid, raw, request.hash_header, signed, tuple(plain), key)


def is_system_id(text: str) -> bool:
    """Whether ``text`` is a well-formed system id: 1–64 of ``A-Z a-z 0-9 . _ -``."""
    return _SYSTEM_ID.fullmatch(text) is not None


def _signed_members(text: str) -> tuple[tuple[str, str], ...]:
    """The signed JSON's members, prefix removed; refuses what Gson would never write."""

    try:
        parsed = json.loads(text, object_pairs_hook=_Members, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"XroadVnpt-sign-header: not JSON ({exc})") from None
    if not isinstance(parsed, _Members):
        raise InvalidRequest("XroadVnpt-sign-header: not a JSON object")
    if len(parsed) > MAX_SIGNED_KEYS:
        raise InvalidRequest(f"XroadVnpt-sign-header: more than {MAX_SIGNED_KEYS} members")
    members: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for name, value in parsed:
        if not isinstance(value, str):
            raise InvalidRequest(
                f"XroadVnpt-sign-header: {_show(name)} is not a string; every value is one"
            )
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidRequest(
                f"XroadVnpt-sign-header: {_show(name)} is longer than {MAX_VALUE_CHARS} characters"
            )
        if not name.lower().startswith(PREFIX):
            continue  # not a parameter: nothing reads it
        short = name[len(PREFIX) :]
        folded = short.casefold()
        if folded in seen and seen[folded] != value:
            raise InvalidRequest(
                f"XroadVnpt-sign-header: {_show(short)} is signed twice with different values"
            )
        seen[folded] = value
        members.append((short, value))
    return tuple(members)


class _Members(list[tuple[str, object]]):
    """A JSON object's members in order, duplicates kept (a dict would hide them)."""


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def hmac_hex(secret: str, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` under the secret's UTF-8 bytes, as configured
    (the SDK does not base64-decode it)."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(request: SignedRequest, secrets: Sequence[str]) -> int:
    """Check the HMAC against each of the system's secrets (the current one, and the previous
    one while a rotation overlaps); the index of the one it holds with.

    Every secret is tried, and each comparison is constant-time, so the answer's timing says
    nothing about which secret or how much of the digest matched. Raises
    :class:`SystemUnauthorized` (15).
    """
    received = request.hash_header.lower()
    if not _HEX64.fullmatch(received):
        raise SystemUnauthorized(
            "XroadVnpt-hash-header: not 64 hexadecimal digits (HMAC-SHA256 in hex)"
        )
    matched = -1
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(hmac_hex(secret, request.sign_header), received) and matched < 0:
            matched = index
    if matched < 0:
        hint = ""
        if not request.utf8:
            hint = "; the header bytes are not UTF-8: run the SDK's JVM with -Dfile.encoding=UTF-8"
        raise SystemUnauthorized(
            f"XroadVnpt-hash-header: the HMAC does not hold for system {_show(request.systemid)};"
            f" check the secret in the SDK's configuration{hint}"
        )
    return matched


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True, slots=True)
class Params:
    """An operation's parameters, taken from the signed JSON and checked for form.

    ``ignored`` names the signed parameters this operation does not read (carried over by the
    SDK from earlier calls) and ``unsigned`` the plain ``XroadVnpt-*`` headers the HMAC does not
    cover: both are for the log, never refused. ``timestamp_at`` is the client's frozen
    timestamp read as Vietnam time, for the log only (it may be days old).
    """

    operation: str
    systemid: str
    from_code: str | None = None
    messagetype: MessageKind | None = None
    hash_file: str | None = None
    to: tuple[str, ...] = ()
    to_raw: str | None = None
    doc_id: str | None = None
    status: UpdateStatus | None = None
    level: int | None = None
    agency_code: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None
    page_size: int = MAX_PAGE_SIZE
    page_index: int = 1
    timestamp: str | None = None
    timestamp_at: datetime | None = None
    ignored: tuple[str, ...] = ()
    unsigned: tuple[str, ...] = ()
    sign_header_key_agrees: bool = True

    @property
    def offset(self) -> int:
        """Items to skip for the page asked: ``pageIndex`` counts from 1."""
        return (self.page_index - 1) * self.page_size


_CANONICAL = {
    name.casefold(): name
    for name in (
        "systemid",
        "timestamp",
        "servicetype",
        "messagetype",
        "from",
        "to",
        "docId",
        "status",
        "hash-file",
        "level",
        "AgencyCode",
        "filePath",
        "fromDate",
        "toDate",
        "pageSize",
        "pageIndex",
        "Content-Type",
    )
}


def read_params(request: SignedRequest, operation: Operation | str) -> Params:
    """The parameters ``operation`` reads, after the HMAC held (call :func:`verify` first).

    Raises :class:`~axis.errors.InvalidRequest` (30) naming the header at fault: a plain header
    that disagrees with its signed value, a required parameter missing, one malformed.
    """
    op = operation if isinstance(operation, Operation) else OPERATIONS[operation]
    signed = {name.casefold(): value for name, value in request.signed}
    for name, value in request.plain:
        mine = signed.get(name.casefold())
        if mine is not None and mine.strip(" \t") != value.strip(" \t"):
            raise InvalidRequest(
                f"XroadVnpt-{name}: the header says {_show(value)} but the signed value is"
                f" {_show(mine)}; the request was changed after signing"
            )
    reads = {name.casefold() for name in op.reads}
    for name in op.required:
        if not signed.get(name.casefold(), "").strip():
            raise InvalidRequest(f"XroadVnpt-{name}: missing; {op.name} needs it")

    def get(name: str) -> str | None:
        value = signed.get(name.casefold()) if name.casefold() in reads else None
        value = value.strip() if value is not None else None
        return value or None

    from_code = _agency_code("from", v) if (v := get("from")) else None
    agency_code = _agency_code("AgencyCode", v) if (v := get("AgencyCode")) else None
    messagetype = op.messagetype
    if messagetype is None and (v := get("messagetype")):
        messagetype = _pick("messagetype", v, _KINDS)
    hash_file = get("hash-file")
    if hash_file is not None and not _HASH_FILE.fullmatch(hash_file):
        raise InvalidRequest(
            f"XroadVnpt-hash-file: {_show(hash_file)} is not a SHA-256 in hexadecimal"
        )
    to_raw = get("to")
    doc_id = get("docId")
    if doc_id is not None and not _DOC_ID.fullmatch(doc_id):
        raise InvalidRequest(f"XroadVnpt-docId: {_show(doc_id)} is not a document id")
    status = _pick("status", v, _STATUSES) if (v := get("status")) else None
    level = _pick("level", v, _LEVELS) if (v := get("level")) else None
    from_date = parse_date_param("fromDate", v, end=False) if (v := get("fromDate")) else None
    to_date = parse_date_param("toDate", v, end=True) if (v := get("toDate")) else None
    page_size = MAX_PAGE_SIZE
    if v := get("pageSize"):  # 0 or more than the most: the most, as the contract's default
        page_size = min(_count("pageSize", v) or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    page_index = (_count("pageIndex", v) or 1) if (v := get("pageIndex")) else 1
    timestamp = request.value("timestamp")
    signed_names = tuple(name for name, _ in request.signed)
    key_names = tuple(part for part in (request.sign_header_key or "").split(";") if part)
    return Params(
        operation=op.name,
        systemid=request.systemid,
        from_code=from_code,
        messagetype=messagetype,
        hash_file=hash_file.lower() if hash_file else None,
        to=parse_to(to_raw),
        to_raw=to_raw,
        doc_id=doc_id,
        status=status,
        level=level,
        agency_code=agency_code,
        from_date=from_date,
        to_date=to_date,
        page_size=page_size,
        page_index=page_index,
        timestamp=timestamp,
        timestamp_at=parse_timestamp(timestamp),
        ignored=tuple(
            name
            for name in signed_names
            if name.casefold() not in reads and name.casefold() not in _ALWAYS
        ),
        unsigned=tuple(name for name, _ in request.plain if name.casefold() not in signed),
        sign_header_key_agrees=key_names == signed_names,
    )


_ALWAYS = frozenset({"systemid", "timestamp", "content-type"})  # on every call: not "carried"


def canonical(name: str) -> str:
    """A parameter name as the contract spells it (``docid`` → ``docId``), else unchanged."""
    return _CANONICAL.get(name.casefold(), name)


def _agency_code(name: str, code: str) -> str:
    if not codes.is_wellformed(code):
        raise InvalidRequest(
            f"XroadVnpt-{name}: {_show(code)} is not an agency code ('.', '0-9', 'A-Z')"
        )
    return code


def _pick(name: str, value: str, table: Mapping[str, T]) -> T:
    """``value`` (any case) looked up in ``table``, or 30 listing what is allowed."""
    found = table.get(value.lower())
    if found is None:
        allowed = " | ".join(table)
        raise InvalidRequest(f"XroadVnpt-{name}: {_show(value)}; expected {allowed}")
    return found


def _count(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise InvalidRequest(f"XroadVnpt-{name}: {_show(value)} is not a whole number")
    return int(value)


_DATE_FORMATS = (
    ("%Y-%m-%d %H:%M:%S", True),
    ("%Y-%m-%dT%H:%M:%S", True),
    ("%d/%m/%Y %H:%M:%S", True),
    ("%Y-%m-%d", False),
    ("%d/%m/%Y", False),
    ("%d-%m-%Y", False),
)


def parse_date_param(name: str, raw: str, *, end: bool) -> datetime:
    """``fromDate``/``toDate`` as a UTC instant. The SDK passes the caller's string through, so
    the usual forms are read as Vietnam time (an RFC 3339 offset is honoured); a date alone
    means the start of that day for ``fromDate`` and its end for ``toDate``."""
    text = raw.strip()
    with_offset = re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})", text
    )
    if with_offset:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    for fmt, has_time in _DATE_FORMATS:
        try:
            when = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if not has_time and end:
            when += timedelta(days=1, microseconds=-1)
        return when.replace(tzinfo=VIETNAM).astimezone(UTC)
    raise InvalidRequest(
        f"XroadVnpt-{name}: {_show(raw)} is not a date; use yyyy-MM-dd or yyyy-MM-dd HH:mm:ss"
    )


# ---------------------------------------------------------------- timestamp and `to`


_TIMESTAMP = re.compile(r"(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})(?:\+(\d{1,4}))?")


def parse_timestamp(raw: str | None) -> datetime | None:
    """The SDK's ``ddMMyyyy'T'HHmmss+SSSS`` (local time, a literal ``+``, milliseconds in four
    digits: not an offset), read as Vietnam time; None when absent or unreadable.

    For the log only: the SDK freezes it when its service object is made, so it may be days
    old, and nothing is refused for it.
    """
    if raw is None:
        return None
    m = _TIMESTAMP.fullmatch(raw.strip())
    if m is None:
        return None
    day, month, year, hour, minute, second, millis = m.groups()
    ms = int(millis or 0)
    if ms > 999:
        return None
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            ms * 1000,
            tzinfo=VIETNAM,
        )
    except ValueError:
        return None


def format_timestamp(when: datetime) -> str:
    """``when`` as the SDK writes its timestamp (``04122026T034507+0974``), in its own zone."""
    return f"{when:%d%m%YT%H%M%S}+{when.microsecond // 1000:04d}"


def parse_to(raw: str | None) -> tuple[str, ...]:
    """The codes in a ``to`` header as the SDK writes it: a JSON string (``"X"``), a JSON array
    (``["A","B"]``), or a bare code or comma list from look-alike clients.

    Never raises: ``sendEdoc`` takes its recipients from the package, so this is for the log
    and for ``getReceivedEdocList``'s filter only.
    """
    if raw is None:
        return ()
    text = raw.strip()[:MAX_VALUE_CHARS]
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = text
    if isinstance(parsed, str):
        items: list[object] = list(parsed.split(","))
    elif isinstance(parsed, list):
        items = list(parsed)
    else:
        items = [text]
    return tuple(item.strip() for item in items if isinstance(item, str) and item.strip())


# ---------------------------------------------------------------- hash-file and the body


def sdk_hex(digest: bytes) -> str:
    """A digest as the SDK renders ``hash-file``: each byte in lowercase hex without its leading
    zero (``0x0c`` is ``c``, ``0x00`` is ``0``), so often under 64 characters."""
    return "".join([f"{byte:x}" for byte in digest])


def hash_file_matches(hash_file: str, digest: bytes) -> bool:
    """Whether a received ``hash-file`` names ``digest`` (the SHA-256 of the bytes at hand).

    The unpadded rendering is ambiguous: ``01 23`` and ``12 03`` both render ``123``, so the
    received text cannot be decoded into one digest. The check therefore renders *our* digest
    and compares the texts. The standard 64-digit form is accepted too (either case), for
    look-alike SDKs that pad: the two renderings are equal when no byte is below 0x10, and
    accepting both keeps the second-preimage work far beyond reach (a rendering stands for at
    most a few hundred million digests, out of 2^256).
    """
    received = hash_file.strip().lower()
    return received == sdk_hex(digest) or received == digest.hex()


@dataclass(frozen=True, slots=True)
class StoredBody:
    """Which bytes of a ``sendEdoc`` body are the package: the first ``size`` bytes."""

    size: int
    sha256: str  # lowercase hex of those bytes
    stripped: bool  # the SDK's trailing CRLF was removed


class BodyDigest:
    """SHA-256 of a body fed in chunks, and of the same body without its last two bytes.

    One pass serves both candidates of the CRLF rule, so a large body spooled to disk is read
    once: the last two bytes are held back until the end.
    """

    __slots__ = ("_hasher", "_size", "_tail")

    def __init__(self) -> None:
        self._hasher = hashlib.sha256()
        self._tail = b""
        self._size = 0

    def update(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if len(chunk) >= 2:
            self._hasher.update(self._tail)
            self._hasher.update(memoryview(chunk)[:-2])
            self._tail = bytes(chunk[-2:])
        else:
            held = self._tail + chunk
            self._hasher.update(held[:-2])
            self._tail = held[-2:]

    @property
    def size(self) -> int:
        return self._size

    def digests(self) -> tuple[bytes, bytes | None]:
        """(SHA-256 of the whole body, SHA-256 without the final CRLF or None if it has none)."""
        whole = self._hasher.copy()
        whole.update(self._tail)
        without = self._hasher.digest() if self._tail == b"\r\n" else None
        return whole.digest(), without


def stored_body(hash_file: str, digest: BodyDigest) -> StoredBody:
    """Apply the CRLF rule: the stored bytes are those whose SHA-256 matches ``hash-file``.

    The SDK appends one ``\\r\\n`` to the package, so the body minus one trailing CRLF is tried
    first; a body whose whole bytes match (a client that appends nothing, or a package that
    itself ends in the CRLF the hash covers) is stored whole. Only one CRLF is ever removed: a
    package's own final line end stays. Neither matching raises :class:`HashFileMismatch` (10).
    """
    whole, without = digest.digests()
    if without is not None and hash_file_matches(hash_file, without):
        return StoredBody(digest.size - 2, without.hex(), True)
    if hash_file_matches(hash_file, whole):
        return StoredBody(digest.size, whole.hex(), False)
    ends = "ends with CRLF" if without is not None else "does not end with CRLF"
    raise HashFileMismatch(
        f"body: {digest.size} bytes ({ends}) whose SHA-256 is {whole.hex()}"
        + (f" ({without.hex()} without the final CRLF)" if without is not None else "")
        + f", but XroadVnpt-hash-file is {_show(hash_file)}; send the file again"
    )


def strip_sdk_crlf(body: bytes, hash_file: str) -> bytes:
    """:func:`stored_body` for a body held in memory: the package's exact bytes."""
    digest = BodyDigest()
    digest.update(body)
    return body[: stored_body(hash_file, digest).size]


# ---------------------------------------------------------------- registerAgency's body

MAX_REGISTRATION_BYTES = 16 * 1024
_REGISTRATION_LIMITS = {"id": 64, "name": 200, "mail": 100, "mobile": 20, "fax": 20}


@dataclass(frozen=True, slots=True)
class AgencyRegistration:
    """``registerAgency``'s body: ``code`` to be registered under ``pcode``. Empty optional
    members are None (VNPT's example sends ``"id":""``)."""

    code: str
    pcode: str
    name: str
    mail: str | None
    mobile: str | None
    fax: str | None
    id: str | None


def parse_registration(body: bytes) -> AgencyRegistration:
    """Read ``registerAgency``'s JSON body; the HMAC does not cover it, so it is read as
    hostile. Raises :class:`~axis.errors.InvalidRequest` (30) for malformed JSON (VNPT's own
    example sends some), a missing or malformed ``code``/``pcode``/``name``, non-string
    values, codes not in the registrable form. Whether ``code`` descends from ``pcode`` is the
    caller's check (``pcode in codes.ancestors(code)``): the captured example registers
    ``000.00.99.T01`` under ``000.00.00.G22``, which the code rules do not make a descendant."""
    if len(body) > MAX_REGISTRATION_BYTES:
        raise InvalidRequest(f"registerAgency: the body is larger than {MAX_REGISTRATION_BYTES}")
    try:
        parsed = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest(
            f"registerAgency: the body is not JSON ({exc}); send"
            ' {"id","pcode","code","name","mail","mobile","fax"} with double-quoted strings'
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("registerAgency: the body is not a JSON object")
    values: dict[str, str | None] = {}
    for member in ("code", "pcode", "name", "mail", "mobile", "fax", "id"):
        raw = parsed.get(member)
        if raw is not None and not isinstance(raw, str):
            raise InvalidRequest(f"registerAgency: {member} is not a string")
        value = raw.strip() if raw else ""
        limit = _REGISTRATION_LIMITS.get(member)
        if limit is not None and len(value) > limit:
            raise InvalidRequest(f"registerAgency: {member} is longer than {limit} characters")
        values[member] = value or None
    code, pcode, name = values["code"], values["pcode"], values["name"]
    if code is None or pcode is None or name is None:
        missing = [k for k in ("code", "pcode", "name") if values[k] is None]
        raise InvalidRequest(f"registerAgency: {', '.join(missing)} missing")
    codes.check_registrable(code, field="registerAgency: code")
    codes.check_registrable(pcode, field="registerAgency: pcode")
    return AgencyRegistration(
        code, pcode, name, values["mail"], values["mobile"], values["fax"], values["id"]
    )
