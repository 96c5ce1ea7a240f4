"""The VDXP wire protocol core: what the SDK sends is read as it meant it, and nothing else."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from axis.errors import InvalidRequest
from axis.vdxp import (
    OPERATIONS,
    VIETNAM,
    BodyDigest,
    HashFileMismatch,
    SystemUnauthorized,
    format_timestamp,
    hash_file_matches,
    hmac_hex,
    parse_headers,
    parse_registration,
    parse_timestamp,
    parse_to,
    read_params,
    sdk_hex,
    stored_body,
    strip_sdk_crlf,
    verify,
)
from tests.support.vdxp_client import Prepared, VdxpClient, gson_object

SECRET = "A7TKG/r2gOKTEpe1MhWx6zw8O4JfzN0KkCRS6HZY81Ve"

# header values as the SDK can send them: no CR/LF, no other controls (HttpURLConnection and
# HttpClient refuse those), any other text
values = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    min_size=1,
    max_size=40,
).filter(lambda v: v.strip(" \t") == v and v.strip())
# names the SDK signs: not the ones it sets itself, nor `version`, which it sends unsigned
names = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=12
).filter(lambda n: n.casefold() not in ("systemid", "timestamp", "content-type", "version"))


def distinct(pairs: dict[str, str]) -> dict[str, str]:
    """One name per case-insensitive spelling: the SDK's map never holds two (and a sign-header
    that does, with different values, is refused as ambiguous)."""
    out: dict[str, str] = {}
    for name, value in pairs.items():
        if name.casefold() not in {n.casefold() for n in out}:
            out[name] = value
    return out


digests = st.binary(min_size=32, max_size=32)


def client(**kwargs: object) -> VdxpClient:
    return VdxpClient(
        "127.0.0.1",
        9,
        systemid="vxp.saas.03",
        secret=SECRET,
        timestamp="04122026T034507+0974",
        **kwargs,  # type: ignore[arg-type]
    )


def as_aiohttp(request: Prepared) -> list[tuple[str, str]]:
    """The headers as aiohttp hands them to a handler: bytes decoded UTF-8/surrogateescape,
    values stripped of surrounding whitespace."""
    out = []
    for name, value in request.headers:
        raw = value.encode("utf-8")
        out.append((name, raw.decode("utf-8", "surrogateescape").strip(" \t")))
    return out


# ---------------------------------------------------------------- HMAC and header parsing


@given(st.dictionaries(names, values, max_size=10), st.randoms(use_true_random=False))
def test_any_header_order_verifies_and_reads_back(
    extra: dict[str, str], rnd: random.Random
) -> None:
    """Whatever order the sign-header keys come in (Java HashMap order varies), the HMAC holds
    and every signed value reads back exactly."""
    c = client(order=random.Random(rnd.random()))
    for name, value in distinct(extra).items():
        c.set(name, value)
    prepared = c.prepare("getAgenciesList", b"")
    request = parse_headers(as_aiohttp(prepared))
    assert verify(request, [SECRET]) == 0
    for name, value in c.params.items():
        assert request.value(name) == value
    assert read_params(request, "getAgenciesList").systemid == "vxp.saas.03"


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "docId",
                "status",
                "level",
                "to",
                "from",
                "AgencyCode",
                "filePath",
                "hash-file",
                "messagetype",
                "note",
                "x-y",
            ]
        ),
        values,
        max_size=8,
    )
)
def test_carried_over_headers_change_nothing_an_operation_reads(carried: dict[str, str]) -> None:
    """Headers an earlier call left in the SDK's map are tolerated and ignored: getEdoc still
    reads its own docId, and the rest are listed for the log."""
    c = client()
    for name, value in carried.items():
        c.set(name, value)
    c.set("docId", "msg_0123")  # what getEdoc itself sets last
    request = parse_headers(as_aiohttp(c.prepare("getEdoc", b"{}")))
    verify(request, [SECRET])
    params = read_params(request, "getEdoc")
    assert params.doc_id == "msg_0123"
    assert set(params.ignored) == set(carried) - {"docId"}
    assert params.unsigned == ("version",)


@given(st.data())
def test_header_names_match_in_any_case(data: st.DataObject) -> None:
    """XroadVnpt-* names are matched case-insensitively, the signature headers included, and
    a signed ``docid`` is the ``docId`` parameter."""
    c = client()
    c.set("docid", "msg_77")
    c.set("status", "done")
    prepared = c.prepare("updateStatus", b"{}")

    def recase(name: str) -> str:
        flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
        return "".join(ch.swapcase() if flip else ch for ch, flip in zip(name, flips, strict=True))

    headers = [(recase(name), value) for name, value in as_aiohttp(prepared)]
    request = parse_headers(headers)
    assert verify(request, [SECRET]) == 0
    params = read_params(request, "updateStatus")
    assert (params.doc_id, params.status) == ("msg_77", "done")


@given(st.lists(st.tuples(names, st.text(max_size=30)), max_size=10))
def test_gson_json_is_read_as_signed(pairs: list[tuple[str, str]]) -> None:
    """Gson's escaping (HTML-safe ``\\u003d``, controls) is undone by reading, never needed
    for verifying: the HMAC is over the raw text."""
    pairs = [(f"XroadVnpt-{name}", value) for name, value in distinct(dict(pairs)).items()]
    text = gson_object([("XroadVnpt-systemid", "s.1"), *pairs])
    assert json.loads(text) == dict([("XroadVnpt-systemid", "s.1"), *pairs])
    request = parse_headers([("XroadVnpt-sign-header", text), ("XroadVnpt-hash-header", "0")])
    assert dict(request.signed) == {"systemid": "s.1"} | {k[10:]: v for k, v in pairs}
    assert request.sign_header == text.encode()


def test_rotation_overlap_says_which_secret_held() -> None:
    """With the new and the old secret both valid, verify says which one signed."""
    c = client()
    request = parse_headers(as_aiohttp(c.prepare("getAgenciesList", b"")))
    assert verify(request, ["new secret", SECRET]) == 1
    assert verify(request, [SECRET, "old secret"]) == 0
    with pytest.raises(SystemUnauthorized, match="HMAC does not hold"):
        verify(request, ["new secret", "old secret"])
    with pytest.raises(SystemUnauthorized):
        verify(request, [])


def test_the_hmac_is_over_the_bytes_received() -> None:
    """A sign-header whose bytes are not UTF-8 is checked as received (no repair), and the
    refusal says how to fix the JVM."""
    body = '{"XroadVnpt-systemid":"s.1","XroadVnpt-note":"V\udce3n"}'  # b"\xe3" as aiohttp gives
    raw = body.encode("utf-8", "surrogateescape")
    assert b"V\xe3n" in raw
    request = parse_headers(
        [("XroadVnpt-sign-header", body), ("XroadVnpt-hash-header", hmac_hex("k", raw))]
    )
    assert request.sign_header == raw and not request.utf8
    assert verify(request, ["k"]) == 0
    wrong = parse_headers([("XroadVnpt-sign-header", body), ("XroadVnpt-hash-header", "0" * 64)])
    with pytest.raises(SystemUnauthorized, match=r"file\.encoding=UTF-8"):
        verify(wrong, ["k"])


def test_an_uppercase_hmac_is_accepted() -> None:
    """The hex digest is compared case-insensitively (look-alike SDKs write upper case)."""
    c = client()
    headers = [
        (k, v.upper() if k == "XroadVnpt-hash-header" else v)
        for k, v in as_aiohttp(c.prepare("getAgenciesList", b""))
    ]
    assert verify(parse_headers(headers), [SECRET]) == 0


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ([], "sign-header: missing"),
        ([("XroadVnpt-sign-header", '{"XroadVnpt-systemid":"a"}')], "hash-header: missing"),
        ([("XroadVnpt-sign-header", "{}"), ("XroadVnpt-hash-header", "0")], "systemid"),
        (
            [
                ("XroadVnpt-sign-header", '{"XroadVnpt-systemid":"a b"}'),
                ("XroadVnpt-hash-header", "0"),
            ],
            "names no system",
        ),
    ],
)
def test_unsigned_requests_are_authentication_failures(
    headers: list[tuple[str, str]], match: str
) -> None:
    """No signature, no HMAC, no system named: ErrorCode 15 (unauthorized)."""
    with pytest.raises(SystemUnauthorized, match=match):
        parse_headers(headers)


@pytest.mark.parametrize(
    ("sign_header", "match"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('"text"', "not a JSON object"),
        ('{"XroadVnpt-systemid":"a","XroadVnpt-level":1}', "not a string"),
        ('{"XroadVnpt-systemid":"a","XroadVnpt-x":null}', "not a string"),
        ('{"XroadVnpt-systemid":"a","XroadVnpt-x":{"y":"z"}}', "not a string"),
        ('{"XroadVnpt-systemid":"a","XroadVnpt-x":NaN}', "not JSON"),
        ('{"XroadVnpt-systemid":"a","XroadVnpt-docId":"1","XroadVnpt-docid":"2"}', "twice"),
        ('{"XroadVnpt-systemid":"a","XroadVnpt-x":"' + "y" * 3000 + '"}', "longer than"),
        ("[" * 4000 + "]" * 4000, "not JSON"),
        ("{" + ",".join(f'"XroadVnpt-k{i}":"v"' for i in range(65)) + "}", "more than 64"),
        ('{"XroadVnpt-systemid":"' + "a" * 9000 + '"}', "longer than 8190 bytes"),
    ],
)
def test_malformed_sign_headers_are_malformed_requests(sign_header: str, match: str) -> None:
    """What Gson would never write is ErrorCode 30 (invalid_request), never a crash."""
    with pytest.raises(InvalidRequest, match=match):
        parse_headers([("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", "0")])


def test_signature_headers_sent_twice_are_refused() -> None:
    """Two sign-headers (or hash-headers) are ambiguous: 30."""
    sign = '{"XroadVnpt-systemid":"a"}'
    for dup in ("XroadVnpt-sign-header", "xroadvnpt-HASH-header"):
        headers = [("XroadVnpt-sign-header", sign), ("XroadVnpt-hash-header", "0"), (dup, sign)]
        with pytest.raises(InvalidRequest, match="more than once"):
            parse_headers(headers)


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=300)), max_size=20))
def test_hostile_headers_never_crash(headers: list[tuple[str, str]]) -> None:
    """Any header list is read or refused with a 15 or a 30, nothing else."""
    try:
        request = parse_headers(headers)
        verify(request, [SECRET])
    except (SystemUnauthorized, InvalidRequest):
        pass


@given(st.text(max_size=400))
def test_hostile_sign_headers_never_crash(sign_header: str) -> None:
    """Any sign-header text is read or refused with a 15 or a 30, nothing else."""
    try:
        request = parse_headers(
            [("XroadVnpt-sign-header", sign_header), ("XroadVnpt-hash-header", "a" * 64)]
        )
        for name in OPERATIONS:
            with contextlib.suppress(InvalidRequest):
                read_params(request, name)
    except (SystemUnauthorized, InvalidRequest):
        pass


# ---------------------------------------------------------------- parameters


def signed(**params: str) -> list[tuple[str, str]]:
    """Headers of a request signing ``params`` (names as given), with agreeing plain headers."""
    pairs = [("XroadVnpt-systemid", "vxp.saas.03")] + [
        (f"XroadVnpt-{k.replace('_', '-')}", v) for k, v in params.items()
    ]
    text = gson_object(pairs)
    return [
        *pairs,
        ("XroadVnpt-sign-header", text),
        ("XroadVnpt-hash-header", hmac_hex(SECRET, text.encode())),
    ]


def params_of(operation: str, **params: str) -> object:
    request = parse_headers(signed(**params))
    verify(request, [SECRET])
    return read_params(request, operation)


def test_each_operation_names_its_required_parameters() -> None:
    """A required parameter missing is ErrorCode 30 naming the header."""
    valid = {
        "from": "000.00.00.G22",
        "messagetype": "edoc",
        "hash-file": "ab" * 32,
        "docId": "msg_1",
        "status": "done",
        "level": "2",
        "AgencyCode": "000.00.99.T01",
    }
    for op in OPERATIONS.values():
        for name in op.required:
            others = {k.replace("-", "_"): valid[k] for k in op.required if k != name}
            with pytest.raises(InvalidRequest, match=f"XroadVnpt-{name}: missing"):
                params_of(op.name, **others)
            params_of(op.name, **others, **{name.replace("-", "_"): valid[name]})


def test_the_operation_table_is_the_contracts() -> None:
    """13 operations; downloadEdoc alone is GET and fails with an empty body; sendEdoc alone
    answers DocId; the counts say which kind they count."""
    assert len(OPERATIONS) == 13
    assert [op.name for op in OPERATIONS.values() if op.method == "GET"] == ["downloadEdoc"]
    assert [op.name for op in OPERATIONS.values() if op.empty_failure] == ["downloadEdoc"]
    assert [op.name for op in OPERATIONS.values() if op.answers_doc_id] == ["sendEdoc"]
    assert OPERATIONS["countReceiveEdoc"].messagetype == "edoc"
    assert OPERATIONS["countReceiveStatus"].messagetype == "status"


def test_counts_count_their_own_kind_whatever_was_carried() -> None:
    """countReceiveEdoc counts documents even with a carried-over messagetype=status."""
    params = params_of("countReceiveEdoc", messagetype="status")
    assert params.messagetype == "edoc"  # type: ignore[attr-defined]
    assert params.ignored == ("messagetype",)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("operation", "params", "match"),
    [
        ("sendEdoc", {"from": "g22", "messagetype": "edoc", "hash_file": "ab" * 32}, "from"),
        ("sendEdoc", {"from": "G22", "messagetype": "letter", "hash_file": "ab" * 32}, "edoc"),
        ("sendEdoc", {"from": "G22", "messagetype": "edoc", "hash_file": "xyz"}, "hash-file"),
        ("updateStatus", {"docId": "m1", "status": "read"}, "processing"),
        ("updateStatus", {"docId": "m 1", "status": "done"}, "docId"),
        ("getAgenciesListQD20", {"level": "5"}, "level"),
        ("getReceivedEdocList", {"messagetype": "edoc", "pageSize": "-1"}, "pageSize"),
        ("getReceivedEdocList", {"messagetype": "edoc", "pageIndex": "x"}, "pageIndex"),
        ("getSentEdocList", {"fromDate": "yesterday"}, "fromDate"),
        ("deleteAgency", {"AgencyCode": "000.00.99.t01"}, "AgencyCode"),
    ],
)
def test_malformed_parameters_are_named(operation: str, params: dict[str, str], match: str) -> None:
    """A parameter of the wrong form is ErrorCode 30, and the detail names it."""
    with pytest.raises(InvalidRequest, match=match):
        params_of(operation, **params)


def test_parameters_are_read_leniently_where_the_sdk_varies() -> None:
    """Case of values, page bounds, dates in the usual forms (Vietnam time)."""
    got = params_of(
        "getReceivedEdocList",
        messagetype="EDOC",
        pageSize="5000",
        pageIndex="0",
        fromDate="01/12/2026",
        toDate="2026-12-04",
        to='"000.00.00.G22"',
    )
    assert got.messagetype == "edoc"  # type: ignore[attr-defined]
    assert (got.page_size, got.page_index, got.offset) == (1000, 1, 0)  # type: ignore[attr-defined]
    assert got.from_date == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert got.to_date == datetime(2026, 12, 4, 16, 59, 59, 999999, tzinfo=UTC)  # type: ignore[attr-defined]
    assert got.to == ("000.00.00.G22",)  # type: ignore[attr-defined]
    page = params_of("getSentEdocList", pageSize="20", pageIndex="3", toDate="2026-12-04T10:00:00Z")
    assert page.offset == 40  # type: ignore[attr-defined]
    assert page.to_date == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # type: ignore[attr-defined]


def test_an_unsigned_parameter_is_never_read() -> None:
    """A plain XroadVnpt-docId the HMAC does not cover is ignored: getEdoc lacks its docId."""
    headers = [*signed(), ("XroadVnpt-docId", "msg_1")]
    request = parse_headers(headers)
    verify(request, [SECRET])
    with pytest.raises(InvalidRequest, match="docId: missing"):
        read_params(request, "getEdoc")


# ---------------------------------------------------------------- timestamp and to


def test_the_sdk_timestamp_is_read_for_the_log() -> None:
    """``04122026T034507+0974``: 4 Dec 2026 03:45:07.974 Vietnam time; the +0974 is millis."""
    assert parse_timestamp("04122026T034507+0974") == datetime(
        2026, 12, 4, 3, 45, 7, 974000, tzinfo=VIETNAM
    )
    assert parse_timestamp("04122026T034507") == datetime(2026, 12, 4, 3, 45, 7, tzinfo=VIETNAM)
    for junk in (None, "", "32132026T034507+0974", "04122026T034507+1974", "2026-12-04", "x"):
        assert parse_timestamp(junk) is None


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 1, 1)))
def test_timestamps_round_trip(when: datetime) -> None:
    """What the SDK writes, we read back to the millisecond."""
    when = when.replace(microsecond=when.microsecond // 1000 * 1000, tzinfo=VIETNAM)
    assert parse_timestamp(format_timestamp(when)) == when


@given(st.text(max_size=100))
def test_timestamps_never_raise(text: str) -> None:
    """A stale or garbled timestamp is logged, never refused."""
    parse_timestamp(text)


def test_to_as_the_sdk_writes_it() -> None:
    """JSON-quoted string, JSON array, or a bare list from look-alikes."""
    assert parse_to('"000.00.00.G12"') == ("000.00.00.G12",)
    assert parse_to('["000.00.00.G12","000.00.00.H29"]') == ("000.00.00.G12", "000.00.00.H29")
    assert parse_to("000.00.00.G12, 000.00.00.H29") == ("000.00.00.G12", "000.00.00.H29")
    assert parse_to(None) == () and parse_to('[1, null, {"a": 2}]') == ()


@given(st.text(max_size=200))
def test_to_never_raises(text: str) -> None:
    """``to`` is for the log: any text is read, nothing refused."""
    assert all(isinstance(code, str) for code in parse_to(text))


# ---------------------------------------------------------------- hash-file and the body


@given(digests)
def test_a_digest_rendered_by_the_sdk_rule_matches(digest: bytes) -> None:
    """Unpadded hex (the SDK) and the padded 64-digit form (look-alikes) both name the digest."""
    rendered = sdk_hex(digest)
    assert 32 <= len(rendered) <= 64
    assert rendered == "".join(format(b, "x") for b in digest)
    assert hash_file_matches(rendered, digest)
    assert hash_file_matches(digest.hex(), digest)
    assert hash_file_matches(digest.hex().upper(), digest)


@given(digests, digests)
def test_another_digest_matches_only_if_it_renders_the_same(a: bytes, b: bytes) -> None:
    """The check compares renderings of *our* digest with the text received, so a hash-file
    matches exactly the digests that render to it: never decoded, never guessed."""
    assume(a != b)
    expected = sdk_hex(a) in (sdk_hex(b), b.hex())
    assert hash_file_matches(sdk_hex(a), b) is expected


def test_unpadded_hex_is_ambiguous_so_the_check_renders_ours() -> None:
    """``01 23`` and ``12 03`` both render ``123``: two digests share a hash-file, which is why
    the received text is compared with our rendering and never parsed back into bytes."""
    a = bytes([0x01, 0x23]) + bytes(range(0x10, 0x2E))
    b = bytes([0x12, 0x03]) + bytes(range(0x10, 0x2E))
    assert a != b and sdk_hex(a) == sdk_hex(b)
    assert hash_file_matches(sdk_hex(a), b)
    assert not hash_file_matches(a.hex(), b)  # the padded form is not ambiguous


@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_body_digest_in_any_chunking(body: bytes, cuts: list[int]) -> None:
    """Fed in any chunks, BodyDigest gives the SHA-256 of the whole body and of the body
    without its final CRLF, in one pass."""
    digest = BodyDigest()
    edges = sorted({0, len(body), *(c for c in cuts if c <= len(body))})
    for start, end in itertools.pairwise(edges):
        digest.update(body[start:end])
    whole, without = digest.digests()
    assert whole == hashlib.sha256(body).digest() and digest.size == len(body)
    if body.endswith(b"\r\n"):
        assert without == hashlib.sha256(body[:-2]).digest()
    else:
        assert without is None


@given(st.binary(max_size=300), st.booleans())
def test_the_stored_bytes_are_those_whose_sha256_matches(package: bytes, padded: bool) -> None:
    """Exactly one trailing CRLF is stripped when that is what hash-file covers; a body sent
    without it (a look-alike client) is stored whole; a package's own CRLF stays."""
    digest = hashlib.sha256(package).digest()
    hash_file = digest.hex() if padded else sdk_hex(digest)
    assert strip_sdk_crlf(package + b"\r\n", hash_file) == package
    assert strip_sdk_crlf(package, hash_file) == package
    with pytest.raises(HashFileMismatch):
        strip_sdk_crlf(package + b"\r\n\r\n", hash_file)
    with pytest.raises(HashFileMismatch):
        strip_sdk_crlf(package + b"x", hash_file)


def test_a_hash_mismatch_says_both_digests() -> None:
    """The refusal (ErrorCode 10) shows what we computed, with and without the CRLF."""
    digest = BodyDigest()
    digest.update(b"<a/>\r\n")
    with pytest.raises(HashFileMismatch) as caught:
        stored_body("ab" * 32, digest)
    detail = caught.value.detail
    assert hashlib.sha256(b"<a/>\r\n").hexdigest() in detail
    assert hashlib.sha256(b"<a/>").hexdigest() in detail
    result = stored_body(sdk_hex(hashlib.sha256(b"<a/>").digest()), digest)
    assert (result.size, result.stripped) == (4, True)


# ---------------------------------------------------------------- registerAgency


def test_the_captured_registration_is_read() -> None:
    """The body VNPT's SDK sent in the capture, Vietnamese name included."""
    body = (
        '{"id":"","pcode":"000.00.00.G22","code":"000.00.99.T01","name":"Đơn vị thử nghiệm VDXP",'
        '"mail":"test@example.vn","mobile":"0240000000","fax":"0240000001"}'
    ).encode()
    got = parse_registration(body)
    assert (got.code, got.pcode, got.name, got.id) == (
        "000.00.99.T01",
        "000.00.00.G22",
        "Đơn vị thử nghiệm VDXP",
        None,
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{'code': '000.00.99.T01'}", "not JSON"),
        (b'{"code":"000.00.99.T01","pcode":"000.00.00.G22","name":"x",}', "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"pcode":"000.00.00.G22","name":"x"}', "code missing"),
        (b'{"code":"T01","pcode":"000.00.00.G22","name":"x"}', "code"),
        (b'{"code":"000.00.99.T01","pcode":"000.00.00.G22","name":5}', "not a string"),
        (b"\xff", "not JSON"),
    ],
)
def test_malformed_registrations_are_malformed_requests(body: bytes, match: str) -> None:
    """registerAgency with malformed JSON (as VNPT's own example sends) is ErrorCode 30."""
    with pytest.raises(InvalidRequest, match=match):
        parse_registration(body)
