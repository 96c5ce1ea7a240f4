"""Hostile XML: every known trick is refused as forbidden_xml, and nothing else escapes."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axis import edxml
from axis.errors import AxisError, ForbiddenXml, MalformedXml
from tests.support import packets

G22, H41 = "000.00.00.G22", "000.00.00.H41"
GOOD = packets.edoc_xml(G22, [H41], f"{G22},2026/11/23,1/X", attachment_bytes=300)
DECLARATION, REST = GOOD.split(b"\n", 1)
NS = edxml.EDXML_NS


def with_doctype(doctype: bytes, subject: bytes = b"") -> bytes:
    """The good package with ``doctype`` after its declaration and ``subject`` in Subject."""
    body = REST.replace(b"<edXML:Subject>", b"<edXML:Subject>" + subject, 1)
    return DECLARATION + b"\n" + doctype + b"\n" + body


def in_header(fragment: bytes) -> bytes:
    return GOOD.replace(b"</edXML:MessageHeader>", fragment + b"</edXML:MessageHeader>", 1)


LAUGHS = (
    b'<!DOCTYPE edXML [<!ENTITY l0 "lol">'
    + b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"".join(b"&l%d;" % (i - 1) for _ in range(10)))
        for i in range(1, 10)
    )
    + b"]>"
)

HOSTILE = {
    "billion-laughs": with_doctype(LAUGHS, b"&l9;"),
    "quadratic-blowup": with_doctype(
        b'<!DOCTYPE edXML [<!ENTITY a "' + b"A" * 100_000 + b'">]>', b"&a;" * 10_000
    ),
    "external-entity-file": with_doctype(
        b'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>', b"&x;"
    ),
    "external-entity-in-attribute": with_doctype(b'<!DOCTYPE edXML [<!ENTITY x "y">]>').replace(
        b"<edXML:MessageHeader>", b'<edXML:MessageHeader xmlns:v="urn:v" v:a="&x;">'
    ),
    "parameter-entity": with_doctype(
        b'<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
    ),
    "external-dtd-system": with_doctype(b'<!DOCTYPE edXML SYSTEM "file:///etc/passwd">'),
    "external-dtd-public": with_doctype(
        b'<!DOCTYPE edXML PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://www.w3.org/TR/x.dtd">'
    ),
    "harmless-looking-dtd": with_doctype(b"<!DOCTYPE edXML>"),
    "dtd-after-comment-and-pi": with_doctype(b"<!-- x --><?pi y?>\n<!DOCTYPE edXML []>"),
    "lowercase-doctype": with_doctype(b"<!doctype edXML []>"),
    "undeclared-entity-in-text": REST.replace(b"<edXML:Subject>", b"<edXML:Subject>&xxe;", 1),
    "undeclared-entity-in-attribute": in_header(b'<v:a xmlns:v="urn:v" v:b="&xxe;"/>'),
    "nesting-100k-deep": (
        b'<edXML xmlns="' + NS.encode() + b'">' + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</edXML>"
    ),
    "nesting-past-max-depth": in_header(
        b'<v:a xmlns:v="urn:v">' * edxml.MAX_DEPTH + b"</v:a>" * edxml.MAX_DEPTH
    ),
    "attribute-10MB": in_header(b'<v:a xmlns:v="urn:v" v:b="' + b"A" * 10_000_000 + b'"/>'),
    "xinclude": in_header(
        b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>'
    ),
    "xinclude-2003": in_header(
        b'<xi:include xmlns:xi="http://www.w3.org/2003/XInclude" href="file:///etc/passwd"/>'
    ),
}


@pytest.fixture(params=["bytes", "spooled-file"])
def feed(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """Hand the body to parse() as bytes, or as the path of the file it was spooled to."""

    def as_bytes(body: bytes) -> edxml.Parsed:
        return edxml.parse(body, expect="edoc")

    def as_file(body: bytes) -> edxml.Parsed:
        spooled = tmp_path / "body.edxml"
        spooled.write_bytes(body)
        return edxml.parse(spooled, expect="edoc")

    return as_bytes if request.param == "bytes" else as_file


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_forbidden(name: str, feed: object) -> None:
    """DTDs, entities, external references, over-deep trees, huge attributes: forbidden_xml."""
    with pytest.raises(ForbiddenXml) as raised:
        feed(HOSTILE[name])  # type: ignore[operator]
    assert "root:x:" not in raised.value.detail  # nothing of /etc/passwd leaks out


def test_the_good_package_passes_both_ways(feed: object) -> None:
    """The package the hostile cases are made from is itself accepted (they fail for cause)."""
    parsed = feed(GOOD)  # type: ignore[operator]
    assert parsed.packet.kind == "edoc"


class Listener:
    """A local TCP port that records whether anything connected (the parser must not)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda url: with_doctype(b'<!DOCTYPE edXML SYSTEM "' + url + b'/evil.dtd">'),
        lambda url: with_doctype(b'<!DOCTYPE edXML [<!ENTITY x SYSTEM "' + url + b'/x">]>', b"&x;"),
        lambda url: in_header(
            b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="' + url + b'/x"/>'
        ),
        lambda url: GOOD.replace(
            b"<edXML:MessageHeader>",
            b'<edXML:MessageHeader xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            b'xsi:schemaLocation="' + NS.encode() + b" " + url + b'/edxml.xsd">',
        ),
    ],
    ids=["external-dtd", "external-entity", "xinclude", "xsi-schema-location"],
)
def test_no_network_access(make: object, listener: Listener) -> None:
    """No reference in a package, refused or not, makes the axis connect anywhere."""
    url = f"http://127.0.0.1:{listener.port}".encode()
    with contextlib.suppress(ForbiddenXml):
        edxml.parse(make(url), expect="edoc")  # type: ignore[operator]
    assert listener.connections == 0


def test_external_dtd_next_to_a_spooled_file_is_not_read(tmp_path: Path) -> None:
    """A relative DTD reference beside the spooled body is refused, never loaded."""
    (tmp_path / "evil.dtd").write_text('<!ENTITY x "pwned">')
    spooled = tmp_path / "body.edxml"
    spooled.write_bytes(with_doctype(b'<!DOCTYPE edXML SYSTEM "evil.dtd">', b"&x;"))
    with pytest.raises(ForbiddenXml) as raised:
        edxml.parse(spooled, expect="edoc")
    assert "pwned" not in raised.value.detail


# --- nothing but our errors ------------------------------------------------------------------

SNIPPETS = [
    b"<!DOCTYPE x>",
    b"&x;",
    b"&#0;",
    b"&#x110000;",
    b"<![CDATA[",
    b"]]>",
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b"<",
    b">",
    b"</edXML>",
    b"<?xml version='1.0'?>",
    b"<!--",
    b'xmlns="urn:x"',
    b"<edXML:To><edXML:OrganId>000.00.00.H41</edXML:OrganId></edXML:To>",
    b"<edXML:StatusCode>03</edXML:StatusCode>",
    b"<edXML:Priority>9</edXML:Priority>",
    b"<edXML:BussinessDocType>3</edXML:BussinessDocType>",
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>',
]

STATUS = packets.status_xml(H41, G22, f"{G22},2026/11/23,1/X", "03")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A sound packet with a few bytes flipped, cut, inserted or spliced in."""
    data = bytearray(draw(st.sampled_from([GOOD, STATUS])))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "delete", "insert", "snippet", "truncate"]))
        if action == "flip" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 40))]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif action == "snippet":
            data[where:where] = draw(st.sampled_from(SNIPPETS))
        elif action == "truncate":
            del data[where:]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(st.binary(max_size=300), mutated()), expect=st.sampled_from(["edoc", "status"])
)
def test_parser_raises_nothing_but_axis_errors(body: bytes, expect: str) -> None:
    """Random or mutated bodies either parse or fail with one of our errors, never a crash."""
    outcome: edxml.Parsed | AxisError
    try:
        outcome = edxml.parse(body, expect=expect)  # type: ignore[arg-type]
    except AxisError as error:
        outcome = error
    if isinstance(outcome, AxisError):
        assert outcome.detail
    else:
        assert outcome.packet.kind == expect


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200))
def test_random_bytes_are_never_accepted(body: bytes) -> None:
    """Arbitrary bytes are malformed (or forbidden/schema-invalid), never a packet."""
    with pytest.raises(AxisError):
        edxml.parse(body, expect="edoc")


def test_malformed_detail_names_the_position() -> None:
    """A not-well-formed body is malformed_xml with the parser's line and column."""
    line = GOOD[: GOOD.index(b"</edXML:Subject>")].count(b"\n") + 1
    with pytest.raises(MalformedXml) as raised:
        edxml.parse(GOOD.replace(b"</edXML:Subject>", b"</edXML:Subjec>", 1), expect="edoc")
    assert f"line {line}," in raised.value.detail
    assert "Subjec" in raised.value.detail


def test_a_body_of_millions_of_tiny_elements_is_refused_before_any_tree() -> None:
    """12 million `<a/>` (a tree of gigabytes) are refused by a count of the raw bytes."""
    body = b'<edXML xmlns="' + NS.encode() + b'">' + b"<a/>" * 3_000_000 + b"</edXML>"
    with pytest.raises(ForbiddenXml, match="tags"):
        edxml.parse(body, expect="edoc")


def test_hundreds_of_namespace_declarations_are_refused(tmp_path: Path) -> None:
    """Namespaces make inclusive C14N quadratic: more than 32 declarations are refused,
    counted over the raw bytes, also for a body spooled to disk."""
    decls = b" ".join(b'xmlns:p%d="urn:p%d"' % (n, n) for n in range(40))
    body = b'<edXML xmlns="' + NS.encode() + b'" ' + decls + b"/>"
    with pytest.raises(ForbiddenXml, match="namespace declarations"):
        edxml.parse(body, expect="edoc")
    spooled = tmp_path / "body.edxml"
    spooled.write_bytes(body)
    with pytest.raises(ForbiddenXml, match="namespace declarations"):
        edxml.parse(spooled, expect="edoc")


@given(st.integers(min_value=-40, max_value=40))
def test_declarations_across_a_scan_step_are_counted_once(shift: int) -> None:
    """Wherever a 1 MiB scan step falls, 33 declarations are refused and 32 are not."""
    step = 1024 * 1024

    def body(count: int) -> bytes:
        head = b"<r>" + b" " * (step - 20 + shift)  # the next declarations straddle the step
        decls = b"".join(b'<e xmlns:p%d="u"/>' % n for n in range(count))
        return head + decls + b"</r>"

    edxml._scan(body(32))
    with pytest.raises(ForbiddenXml, match="namespace declarations"):
        edxml._scan(body(33))
