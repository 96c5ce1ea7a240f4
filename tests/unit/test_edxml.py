"""The edXML parser and schemas: every field sample's answer, what is strict, what tolerated."""

from __future__ import annotations

import base64
import random
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import SignatureConstructionMethod

from axis import edxml
from axis.edxml import Edoc, ResponseFor, Status
from axis.errors import ForbiddenXml, MalformedXml, SchemaInvalid
from tests.support import packets

SAMPLES = packets.SAMPLES
NS = edxml.EDXML_NS
DS = edxml.DSIG_NS
G22, H41, H14, G17 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14", "000.00.00.G17"
VN = timezone(timedelta(hours=7))
SAMPLE_DOCUMENT = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
SAMPLE_SUBJECT = "V/v kết nối, liên thông phần mềm quản lý văn bản"


def E(local: str) -> str:
    return f"{{{NS}}}{local}"


def edoc(**kwargs: object) -> bytes:
    kwargs.setdefault("document_id", f"{G22},2026/11/23,1/VPCP-TTĐT")
    return packets.edoc_xml(G22, [H41], **kwargs)  # type: ignore[arg-type]


def edit(xml: bytes, change: object) -> bytes:
    """Apply ``change(root)`` to a parsed copy of ``xml`` and serialise it again."""
    root = etree.fromstring(xml)
    change(root)  # type: ignore[operator]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def header_of(root: etree._Element) -> etree._Element:
    found = root.find(f"{E('edXMLEnvelope')}/{E('edXMLHeader')}/{E('MessageHeader')}")
    assert found is not None
    return found


def schema_error(xml: bytes, expect: str = "edoc") -> str:
    with pytest.raises(SchemaInvalid) as raised:
        edxml.parse(xml, expect=expect)  # type: ignore[arg-type]
    return raised.value.detail


# --- the field samples --------------------------------------------------------------------

SAMPLE_EDOCS = {
    "edoc_revocation.edxml": Edoc(
        from_id=G22,
        to_ids=(H41, H14, G17),
        document_id=SAMPLE_DOCUMENT,
        business_type=1,
        replaced_ids=(),
        subject=SAMPLE_SUBJECT,
        priority=0,
        notation="7816/VPCP-TTĐT",
        response_for=(
            ResponseFor(
                organ_id=H14,
                document_id="000.00.04.G14,2012/08/06,267/VPCP-TTĐT",
                code="267/VPCP-TTĐT",
                promulgation_date="2018/09/28",
            ),
        ),
    ),
    "edoc_update.edxml": Edoc(
        from_id=G22,
        to_ids=(H41, H14, G17),
        document_id=SAMPLE_DOCUMENT,
        business_type=2,
        replaced_ids=(),
        subject=SAMPLE_SUBJECT,
        priority=0,
        notation="7816/VPCP-TTĐT",
        response_for=(),
    ),
    "edoc_replacement.edxml": Edoc(
        from_id=G22,
        to_ids=(H41, H14, G17),
        document_id=SAMPLE_DOCUMENT,
        business_type=3,
        replaced_ids=("000.00.00.G22,2014/01/30,7806/VPCP-TTĐT",),
        subject=SAMPLE_SUBJECT,
        priority=0,
        notation="7816/VPCP-TTĐT",
        response_for=(),
    ),
    "field-2019-trial.edxml": Edoc(
        from_id="000.00.15.H51",
        to_ids=("000.00.15.H51",),
        document_id="9fbfbad2-f1f8-4256-a2eb-50fb1061cddb",
        business_type=0,
        replaced_ids=(),
        subject="Văn bản liên thông chỉ đạo - 190701",
        priority=0,
        notation="1223412/PRO-TEST-CASE1",
        response_for=(),
    ),
}

SAMPLE_STATUSES = {
    "status_inbox_01.edxml": ("01", H41, G22, "Đã đến"),
    "status_rejection_02.edxml": ("02", H41, G22, "Từ chối"),
    "status_acceptance_03.edxml": ("03", H41, G22, "Tiếp nhận"),
    "status_assignment_04.edxml": ("04", H41, G22, "Phân công"),
    "status_processing_05.edxml": ("05", H41, G22, "Đang xử lý"),
    "status_finish_06.edxml": ("06", H41, G22, "hoàn thành"),
    "status_cancellation_13.edxml": ("13", G22, H41, "lấy lại"),
    "status_change-acceptance_15.edxml": ("15", H41, G22, "đồng ý"),
    "status_change-rejection_16.edxml": ("16", H41, G22, "từ chối"),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_EDOCS))
def test_sample_documents_parse_to_their_model(name: str) -> None:
    """Each sound field document gives exactly its routing facts, from bytes or from a file."""
    path = SAMPLES / name
    from_bytes = edxml.parse(path.read_bytes(), expect="edoc")
    from_file = edxml.parse(path, expect="edoc")
    from_str = edxml.parse(str(path), expect="edoc")
    assert from_bytes.packet == SAMPLE_EDOCS[name]
    assert from_file.packet == from_bytes.packet == from_str.packet
    assert isinstance(from_file.tree, etree._ElementTree)


@pytest.mark.parametrize("name", sorted(SAMPLE_STATUSES))
def test_sample_statuses_parse_to_their_model(name: str) -> None:
    """Each field status packet gives its code, parties, document and Vietnamese-time stamp."""
    code, sender, organ, words = SAMPLE_STATUSES[name]
    packet = edxml.parse(SAMPLES / name, expect="status").packet
    assert isinstance(packet, Status)
    assert packet.status_code == code
    assert packet.from_id == sender
    assert packet.response_for == ResponseFor(
        organ_id=organ,
        document_id=SAMPLE_DOCUMENT,
        code="7816/VPCP-TTĐT",
        promulgation_date="2015/09/30",
    )
    assert packet.timestamp == datetime(2015, 9, 20, 11, 8, 36, tzinfo=VN)
    assert packet.timestamp is not None
    assert packet.timestamp.utcoffset() == timedelta(hours=7)
    assert packet.description is not None
    assert words in packet.description


def test_sample_with_stray_bytes_before_the_declaration_is_malformed() -> None:
    """edoc_new.edxml (4 bytes before <?xml) is malformed_xml, with the parser's position."""
    with pytest.raises(MalformedXml) as raised:
        edxml.parse(SAMPLES / "edoc_new.edxml", expect="edoc")
    assert "line 1, column 1" in raised.value.detail
    assert "Start tag expected" in raised.value.detail


def test_sample_with_undeclared_prefix_is_malformed() -> None:
    """edoc.edxml uses xlink: without declaring it: malformed_xml naming the prefix and line."""
    with pytest.raises(MalformedXml) as raised:
        edxml.parse((SAMPLES / "edoc.edxml").read_bytes(), expect="edoc")
    assert "xlink" in raised.value.detail
    assert "line 116" in raised.value.detail


@pytest.mark.parametrize("name", sorted(SAMPLE_STATUSES))
def test_status_posted_as_a_document_says_so(name: str) -> None:
    """A status packet sent to /v1/edocs is schema_invalid pointing at /v1/statuses."""
    detail = schema_error((SAMPLES / name).read_bytes(), "edoc")
    assert "StatusCode" in detail
    assert "/v1/statuses" in detail


@pytest.mark.parametrize("name", sorted(SAMPLE_EDOCS))
def test_document_posted_as_a_status_says_so(name: str) -> None:
    """A document package sent to /v1/statuses is schema_invalid pointing at /v1/edocs."""
    detail = schema_error((SAMPLES / name).read_bytes(), "status")
    assert "StatusCode" in detail
    assert "/v1/edocs" in detail


# --- the builders round-trip --------------------------------------------------------------

ORGAN_IDS = st.from_regex(r"[.0-9A-Z]{1,35}", fullmatch=True)
XML_TEXT = st.characters(
    blacklist_categories=("Cs", "Cc", "Cn"),
    blacklist_characters="\ufeff",
)
DOCUMENT_IDS = st.text(XML_TEXT, min_size=1, max_size=255).filter(
    lambda text: text == text.strip(" \t") and len(text) > 0
)
SUBJECTS = st.text(st.one_of(XML_TEXT, st.sampled_from("\t\n\r")), min_size=1, max_size=500)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    from_id=ORGAN_IDS,
    to_ids=st.lists(ORGAN_IDS, min_size=1, max_size=5, unique=True),
    document_id=DOCUMENT_IDS,
    business_type=st.integers(0, 3),
    replaced=st.lists(DOCUMENT_IDS, max_size=4),
    subject=SUBJECTS,
    priority=st.integers(0, 4),
)
def test_document_builder_round_trips(
    from_id: str,
    to_ids: list[str],
    document_id: str,
    business_type: int,
    replaced: list[str],
    subject: str,
    priority: int,
) -> None:
    """What a document is built with is what the parser reads back: ids, type, subject."""
    if business_type == 3 and not replaced:
        replaced = [document_id]
    xml = packets.edoc_xml(
        from_id,
        to_ids,
        document_id,
        business_type=business_type,
        replaced_ids=replaced,
        subject=subject,
        attachment_bytes=40,
        priority=priority,
    )
    packet = edxml.parse(xml, expect="edoc").packet
    assert isinstance(packet, Edoc)
    # (the number and notation the builder derives are read back in the sample tests)
    assert replace(packet, notation=None) == Edoc(
        from_id=from_id,
        to_ids=tuple(to_ids),
        document_id=document_id,
        business_type=business_type,
        replaced_ids=tuple(dict.fromkeys(replaced)),
        subject=subject,
        priority=priority,
        response_for=(),
    )


@settings(max_examples=100, deadline=None)
@given(
    from_id=ORGAN_IDS,
    organ=ORGAN_IDS,
    document_id=DOCUMENT_IDS,
    code=st.sampled_from(sorted(edxml.STATUS_CODES)),
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
)
def test_status_builder_round_trips(
    from_id: str, organ: str, document_id: str, code: str, moment: datetime
) -> None:
    """What a status packet is built with is what the parser reads back, time included."""
    moment = moment.replace(microsecond=0, tzinfo=VN)
    xml = packets.status_xml(from_id, organ, document_id, code, timestamp=moment)
    packet = edxml.parse(xml, expect="status").packet
    assert isinstance(packet, Status)
    assert (packet.from_id, packet.status_code, packet.timestamp) == (from_id, code, moment)
    assert (packet.response_for.organ_id, packet.response_for.document_id) == (organ, document_id)


def test_builder_sizes_suit_the_benchmark() -> None:
    """attachment_bytes is the base64 size: 5000 gives a package of about 10 KB."""
    small = packets.edoc_xml(G22, [H41], attachment_bytes=5000)
    assert 8_000 <= len(small) <= 11_000
    assert edxml.parse(small, expect="edoc").packet.kind == "edoc"
    content = b"%PDF-1.7 test"
    given_bytes = packets.edoc_xml(G22, [H41], attachment_bytes=content)
    assert base64.b64encode(content) in given_bytes


def test_status_without_timestamp_has_none() -> None:
    """Timestamp is optional in a status packet; without it the model says None."""
    xml = packets.status_xml(H41, G22, "a,b,c", "05", timestamp=None)
    packet = edxml.parse(xml, expect="status").packet
    assert isinstance(packet, Status)
    assert packet.timestamp is None


# --- the signature element ----------------------------------------------------------------


def test_placeholder_signature_is_last_in_the_header() -> None:
    """The builders put ds:Signature Id=placeholder after TraceHeaderList, for the signer."""
    root = edxml.parse(edoc(), expect="edoc").tree.getroot()
    header = root.find(f"{E('edXMLEnvelope')}/{E('edXMLHeader')}")
    assert header is not None
    assert header[-1].tag == f"{{{DS}}}Signature"
    assert header[-1].get("Id") == "placeholder"
    assert header[-2].tag == E("TraceHeaderList")


def test_filled_in_signature_passes_the_schema() -> None:
    """A complete enveloped ds:Signature (SignedInfo, value, KeyInfo) is accepted as it is."""
    dummy = (
        f'<ds:Signature xmlns:ds="{DS}" Id="sig-1">'
        "<ds:SignedInfo>"
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        '<ds:Reference URI=""><ds:Transforms>'
        f'<ds:Transform Algorithm="{DS}enveloped-signature"/>'
        "</ds:Transforms>"
        '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        "<ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>"
        "</ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue>"
        "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>AAAA</ds:X509Certificate>"
        "</ds:X509Data></ds:KeyInfo></ds:Signature>"
    )
    xml = edoc().replace(packets.PLACEHOLDER.encode(), dummy.encode())
    assert edxml.parse(xml, expect="edoc").packet.kind == "edoc"


def test_package_signed_by_signxml_passes_the_schema() -> None:
    """A builder package signed by signxml into its placeholder still parses and validates."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edxml test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1))
        .not_valid_after(datetime(2040, 1, 1))
        .sign(key, hashes.SHA256())
    )
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    signed = signer.sign(
        etree.fromstring(edoc(attachment_bytes=3000)),
        key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )
    body = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    parsed = edxml.parse(body, expect="edoc")
    signatures = parsed.tree.getroot().findall(f".//{{{DS}}}Signature")
    assert len(signatures) == 1
    assert signatures[0].getparent() is not None
    assert signatures[0].getparent().tag == E("edXMLHeader")  # type: ignore[union-attr]
    assert signatures[0].find(f"{{{DS}}}SignatureValue") is not None


@pytest.mark.parametrize(
    "element",
    [
        "<Signature><SignedInfo/></Signature>",  # edXML namespace (the default here)
        '<Signature xmlns=""><SignedInfo/></Signature>',  # no namespace
        f'<edXML:Signature xmlns:edXML="{NS}"><edXML:SignedInfo/></edXML:Signature>',
    ],
    ids=["edxml-default", "no-namespace", "edxml-prefixed"],
)
def test_field_signature_quirks_pass_the_schema(element: str) -> None:
    """A Signature outside the xmldsig namespace is left for the signature layer to refuse."""
    xml = edoc().replace(packets.PLACEHOLDER.encode(), element.encode())
    assert element.encode() in xml
    parsed = edxml.parse(xml, expect="edoc")
    header = parsed.tree.getroot().find(f"{E('edXMLEnvelope')}/{E('edXMLHeader')}")
    assert header is not None
    assert etree.QName(header[-1]).localname == "Signature"


def test_two_signatures_in_the_header_are_schema_invalid() -> None:
    """edXMLHeader holds one Signature: a second one is refused naming it."""
    xml = edoc().replace(
        packets.PLACEHOLDER.encode(), (packets.PLACEHOLDER + packets.PLACEHOLDER).encode()
    )
    assert "Signature" in schema_error(xml)


def test_signature_outside_the_header_is_schema_invalid() -> None:
    """A ds:Signature appended to the root (not in edXMLHeader) is refused naming it."""
    xml = edoc().replace(packets.PLACEHOLDER.encode(), b"")
    xml = xml.replace(b"</edXML>", packets.PLACEHOLDER.encode() + b"</edXML>")
    assert "ds:Signature" in schema_error(xml)


def test_other_xmldsig_element_in_the_header_is_schema_invalid() -> None:
    """Only ds:Signature may stand in for the signature, not another ds: element."""
    xml = edoc().replace(b"ds:Signature", b"ds:Object")
    assert "ds:Object" in schema_error(xml)


# --- what is tolerated ----------------------------------------------------------------------


def test_bare_envelope_root_is_accepted() -> None:
    """Some senders omit the edXML wrapper: a bare edXMLEnvelope (no attachments) parses."""
    root = etree.fromstring(edoc())
    envelope = root.find(E("edXMLEnvelope"))
    assert envelope is not None
    body = etree.tostring(envelope, encoding="UTF-8")
    packet = edxml.parse(body, expect="edoc").packet
    assert isinstance(packet, Edoc)
    assert packet.to_ids == (H41,)


def test_bare_envelope_with_a_reference_lacks_its_attachment() -> None:
    """A bare envelope carries no attachments, so a manifest Reference is unmatched."""
    root = etree.fromstring(edoc(attachment_bytes=100))
    envelope = root.find(E("edXMLEnvelope"))
    assert envelope is not None
    detail = schema_error(etree.tostring(envelope, encoding="UTF-8"))
    assert "Reference ContentId cid:" in detail


def test_status_packet_with_bare_envelope_is_accepted() -> None:
    """The bare-envelope form works for status packets too."""
    root = etree.fromstring(packets.status_xml(H41, G22, SAMPLE_DOCUMENT, "01"))
    envelope = root.find(E("edXMLEnvelope"))
    assert envelope is not None
    packet = edxml.parse(etree.tostring(envelope, encoding="UTF-8"), expect="status").packet
    assert isinstance(packet, Status)
    assert packet.status_code == "01"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_header_children_in_any_order(seed: int) -> None:
    """Senders order MessageHeader, From/To, ResponseFor and Bussiness children differently."""
    shuffle = random.Random(seed).shuffle

    def reorder(root: etree._Element) -> None:
        header = header_of(root)
        bussiness = root.find(f".//{E('Bussiness')}")
        assert bussiness is not None
        for parent in (header, *header.iterchildren(E("From"), E("To")), bussiness):
            children = list(parent)
            shuffle(children)
            parent[:] = children

    base = edoc(business_type=3, replaced_ids=["X,1", "X,2"])
    expected = edxml.parse(base, expect="edoc").packet
    assert edxml.parse(edit(base, reorder), expect="edoc").packet == expected


def test_vendor_elements_are_tolerated() -> None:
    """Unknown elements in MessageHeader and Bussiness (edXML or other namespace) pass."""

    def add_vendor(root: etree._Element) -> None:
        header = header_of(root)
        task = etree.SubElement(header, E("ResponseForTask"))
        etree.SubElement(task, E("TaskId")).text = "42"
        etree.SubElement(header, E("ApplicationType")).text = "QLVB"
        etree.SubElement(header, "{urn:vendor}Extra").text = "x"
        bussiness = root.find(f".//{E('Bussiness')}")
        assert bussiness is not None
        etree.SubElement(bussiness, E("VendorNote")).text = "y"
        trace = root.find(f".//{E('TraceHeaderList')}")
        assert trace is not None
        etree.SubElement(trace, "{urn:vendor}Hop").text = "z"

    packet = edxml.parse(edit(edoc(), add_vendor), expect="edoc").packet
    assert isinstance(packet, Edoc)
    assert packet.document_id == f"{G22},2026/11/23,1/VPCP-TTĐT"


def test_known_elements_are_validated_even_in_open_headers() -> None:
    """Open MessageHeader still checks the fields it knows: a bad Priority is refused."""
    xml = edoc().replace(b"<edXML:Priority>0<", b"<edXML:Priority>7<")
    assert "Priority" in schema_error(xml)


def test_empty_response_for_in_a_document_is_accepted() -> None:
    """The 2019 trial's <ResponseFor/> (and empty children) mean 'answers nothing'."""
    xml = edoc().replace(
        b"<edXML:SteeringType>",
        b"<edXML:ResponseFor/><edXML:ResponseFor><edXML:OrganId></edXML:OrganId>"
        b"<edXML:DocumentId></edXML:DocumentId></edXML:ResponseFor><edXML:SteeringType>",
    )
    packet = edxml.parse(xml, expect="edoc").packet
    assert isinstance(packet, Edoc)
    assert packet.response_for == ()


def test_no_bussiness_means_a_new_document() -> None:
    """Without TraceHeaderList/Bussiness the business type is 0 (new document)."""

    def drop(root: etree._Element) -> None:
        bussiness = root.find(f".//{E('Bussiness')}")
        assert bussiness is not None
        bussiness.getparent().remove(bussiness)  # type: ignore[union-attr]

    packet = edxml.parse(edit(edoc(business_type=2), drop), expect="edoc").packet
    assert isinstance(packet, Edoc)
    assert packet.business_type == 0


def test_empty_priority_is_none() -> None:
    """OtherInfo/Priority may be empty: the model says None."""
    xml = edoc().replace(b"<edXML:Priority>0</edXML:Priority>", b"<edXML:Priority/>")
    packet = edxml.parse(xml, expect="edoc").packet
    assert isinstance(packet, Edoc)
    assert packet.priority is None


@pytest.mark.parametrize("separator", [b"\n", b"\r\n", b" "])
def test_wrapped_base64_is_accepted(separator: bytes) -> None:
    """Base64 broken into 76-character lines (as MIME encoders do) is still base64."""
    xml = edoc(attachment_bytes=2000)
    start = xml.index(b'">', xml.index(b"<edXML:ContentTransferEncoded")) + 2
    end = xml.index(b"</edXML:ContentTransferEncoded>")
    text = xml[start:end]
    wrapped = separator.join(text[i : i + 76] for i in range(0, len(text), 76))
    assert edxml.parse(xml[:start] + wrapped + xml[end:], expect="edoc").packet.kind == "edoc"


def test_a_declared_encoding_other_than_utf8_is_refused() -> None:
    """edXML is UTF-8: a BOM is fine, but a body declaring another encoding is malformed_xml.

    A verifier honouring the declaration would read other characters than the axis routed
    on, and the signature would not hold for it.
    """
    xml = edoc()
    assert edxml.parse(b"\xef\xbb\xbf" + xml, expect="edoc").packet.kind == "edoc"
    assert edxml.parse(xml.replace(b"UTF-8", b"utf8", 1), expect="edoc").packet.kind == "edoc"
    for other in (b"ISO-8859-1", b"UTF-7", b"windows-1258"):
        relabelled = xml.replace(b'encoding="UTF-8"', b'encoding="' + other + b'"', 1)
        with pytest.raises(MalformedXml, match=other.decode()):
            edxml.parse(relabelled, expect="edoc")


def test_latin1_body_is_malformed() -> None:
    """Bytes that are not UTF-8 are malformed_xml with the position of the first bad byte."""
    xml = edoc().replace("Văn".encode(), b"V\xe0n")
    with pytest.raises(MalformedXml) as raised:
        edxml.parse(xml, expect="edoc")
    assert "line" in raised.value.detail


def test_utf16_body_is_malformed_and_named() -> None:
    """A UTF-16 body is refused as malformed_xml saying it is not UTF-8."""
    body = edoc().decode().replace("UTF-8", "UTF-16", 1).encode("utf-16")
    with pytest.raises(MalformedXml) as raised:
        edxml.parse(body, expect="edoc")
    assert "UTF-8" in raised.value.detail


def test_large_attachment_from_a_spooled_file(tmp_path: Path) -> None:
    """A base64 text node over libxml2's default 10 MB limit parses from the spooled file."""
    spooled = tmp_path / "body.edxml"
    spooled.write_bytes(edoc(attachment_bytes=12_000_000))
    parsed = edxml.parse(spooled, expect="edoc")
    encoded = parsed.tree.getroot().find(f".//{E('ContentTransferEncoded')}")
    assert encoded is not None
    assert len(encoded.text or "") >= 12_000_000 - 4


def test_tree_is_returned_unaltered() -> None:
    """Comments, PIs, CDATA and whitespace stay: the signature layer verifies this tree."""
    xml = edoc(signature_placeholder=False).replace(
        b"<edXML:Content>",
        b"<!-- ghi ch\xc3\xba -->\n        <?vendor keep?>\n"
        b"        <edXML:Content><![CDATA[a < b]]>",
    )
    parsed = edxml.parse(xml, expect="edoc")
    body = xml.split(b"\n", 1)[1].rstrip(b"\n")
    assert etree.tostring(parsed.tree.getroot(), encoding="UTF-8") == body
    assert b"<![CDATA[a < b]]>" in etree.tostring(parsed.tree)


def test_concurrent_parses_do_not_mix() -> None:
    """Parsing from many threads at once gives each its own answer (and its own errors)."""
    failures: list[str] = []

    def work(index: int) -> None:
        organ = f"000.00.{index:02d}.H41"
        good = packets.edoc_xml(G22, [organ], f"{G22},2026/11/23,{index}/X")
        bad = good.replace(b"<edXML:Subject>", b"<x>")
        for _ in range(30):
            packet = edxml.parse(good, expect="edoc").packet
            if not isinstance(packet, Edoc) or packet.to_ids != (organ,):
                failures.append(f"{index}: {packet}")
            try:
                edxml.parse(bad, expect="edoc")
            except MalformedXml as error:
                if "line" not in error.detail:
                    failures.append(error.detail)
            else:
                failures.append(f"{index}: bad package accepted")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_load_schemas_compiles_both() -> None:
    """The schemas compile (call at startup to fail fast on a broken install)."""
    edxml.load_schemas()


# --- what is strict -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("organ_id", "ok"),
    [
        ("000.00.00.H41", True),
        ("01.02.G22", True),
        ("001.00.20.TT2", True),
        ("1" * 35, True),
        ("1" * 36, False),
        ("000.00.00.h41", False),
        ("000 00 00 H41", False),
        (" 000.00.00.H41", False),
        ("", False),
    ],
)
def test_organ_id_form(organ_id: str, ok: bool) -> None:
    """OrganId is 1 to 35 characters of . 0-9 A-Z, nothing else, no surrounding spaces."""
    xml = packets.edoc_xml(G22, [organ_id], f"{G22},2026/11/23,1/X")
    if ok:
        packet = edxml.parse(xml, expect="edoc").packet
        assert isinstance(packet, Edoc)
        assert packet.to_ids == (organ_id,)
    else:
        assert "To/OrganId" in schema_error(xml)


def test_recipient_listed_twice_is_named() -> None:
    """A To/OrganId listed twice is schema_invalid naming the code."""
    detail = schema_error(packets.edoc_xml(G22, [H41, H14, H41]))
    assert "To/OrganId" in detail
    assert H41 in detail


def test_document_needs_a_recipient() -> None:
    """A document with no To is schema_invalid naming To."""
    assert "MessageHeader/To" in schema_error(packets.edoc_xml(G22, []))


@pytest.mark.parametrize("field", ["From", "DocumentId", "Subject"])
def test_document_needs_its_single_fields(field: str) -> None:
    """From, DocumentId and Subject are each required exactly once."""

    def drop(root: etree._Element) -> None:
        header = header_of(root)
        header.remove(header.find(E(field)))  # type: ignore[arg-type]

    def double(root: etree._Element) -> None:
        header = header_of(root)
        found = header.find(E(field))
        assert found is not None
        header.append(etree.fromstring(etree.tostring(found)))

    assert f"MessageHeader/{field}" in schema_error(edit(edoc(), drop))
    assert f"MessageHeader/{field}" in schema_error(edit(edoc(), double))


@pytest.mark.parametrize("document_id", [" X", "X ", "", "A\nB", "x" * 256])
def test_document_id_form(document_id: str) -> None:
    """DocumentId is one line of 1 to 255 characters without surrounding white space."""
    xml = edoc().replace(
        f"<edXML:DocumentId>{G22},2026/11/23,1/VPCP-TTĐT<".encode(),
        f"<edXML:DocumentId>{document_id}<".encode(),
    )
    assert "DocumentId" in schema_error(xml)


def test_subject_longer_than_500_is_refused() -> None:
    """Subject (trích yếu) is at most 500 characters."""
    assert "Subject" in schema_error(edoc(subject="Đ" * 501))
    assert edxml.parse(edoc(subject="Đ" * 500), expect="edoc").packet.kind == "edoc"


@pytest.mark.parametrize("value", ["4", "01", "", "x"])
def test_business_type_is_0_to_3(value: str) -> None:
    """BussinessDocType is one of 0 1 2 3."""
    xml = edoc().replace(
        b"<edXML:BussinessDocType>0<", f"<edXML:BussinessDocType>{value}<".encode()
    )
    assert "BussinessDocType" in schema_error(xml)


def test_replacement_must_name_what_it_replaces() -> None:
    """A replacement (3) without ReplacementInfo/DocumentId is schema_invalid."""
    assert "ReplacementInfo" in schema_error(edoc(business_type=3))


def test_replaced_ids_are_deduplicated_in_order() -> None:
    """ReplacementInfo/DocumentId values come back in order, each once."""
    xml = edoc(business_type=3, replaced_ids=["B", "A", "B"])
    packet = edxml.parse(xml, expect="edoc").packet
    assert isinstance(packet, Edoc)
    assert packet.replaced_ids == ("B", "A")


def test_two_bussiness_blocks_are_refused() -> None:
    """TraceHeaderList holds at most one Bussiness."""

    def double(root: etree._Element) -> None:
        bussiness = root.find(f".//{E('Bussiness')}")
        assert bussiness is not None
        bussiness.addnext(etree.fromstring(etree.tostring(bussiness)))

    assert "Bussiness" in schema_error(edit(edoc(), double))


def test_bussiness_without_type_is_refused() -> None:
    """A Bussiness block must say its BussinessDocType."""
    xml = edoc().replace(b"<edXML:BussinessDocType>0</edXML:BussinessDocType>", b"")
    assert "Bussiness/BussinessDocType" in schema_error(xml)


def test_unknown_root_is_named() -> None:
    """A root other than edXML / edXMLEnvelope is schema_invalid naming it."""
    assert "root element" in schema_error(b'<edXML xmlns="urn:other"/>')
    assert "From" in schema_error(f'<From xmlns="{NS}"><OrganId>A</OrganId></From>'.encode())


def test_unknown_element_in_a_closed_record_is_named() -> None:
    """Small records (From, To...) are closed: an unknown child is named in the answer."""
    xml = edoc().replace(b"<edXML:Website>", b"<edXML:Zalo>1</edXML:Zalo><edXML:Website>", 1)
    assert "Zalo" in schema_error(xml)


# --- manifest and attachments ----------------------------------------------------------------


def test_reference_without_attachment_is_named() -> None:
    """A manifest Reference whose ContentId no Attachment carries is refused naming it."""
    xml = edoc(attachment_bytes=100)
    xml = xml.replace(b"<edXML:ContentId>cid:", b"<edXML:ContentId>cid:lost-", 1)
    detail = schema_error(xml)
    assert "Reference ContentId cid:lost-" in detail


def test_attachment_without_reference_is_named() -> None:
    """An Attachment no manifest Reference names is refused naming its ContentId."""

    def drop_reference(root: etree._Element) -> None:
        reference = root.find(f".//{E('Reference')}")
        assert reference is not None
        reference.getparent().remove(reference)  # type: ignore[union-attr]

    detail = schema_error(edit(edoc(attachment_bytes=100), drop_reference))
    assert "Attachment ContentId cid:" in detail


def test_duplicate_content_id_is_named() -> None:
    """Two attachments with one ContentId are refused naming it."""

    def double(root: etree._Element) -> None:
        attachment = root.find(f".//{E('Attachment')}")
        assert attachment is not None
        attachment.addnext(etree.fromstring(etree.tostring(attachment)))

    assert "listed twice" in schema_error(edit(edoc(attachment_bytes=100), double))


def test_invalid_base64_is_named() -> None:
    """ContentTransferEncoded must be base64."""
    xml = edoc(attachment_bytes=100).replace(b"UEsDB", b"U!sDB")
    assert "ContentTransferEncoded" in schema_error(xml)


# --- status packets ------------------------------------------------------------------------


def status(**kwargs: object) -> bytes:
    return packets.status_xml(H41, G22, SAMPLE_DOCUMENT, "03", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["07", "00", "3", "14", " 03", ""])
def test_status_code_outside_the_nine_is_refused(code: str) -> None:
    """Only 01-06, 13, 15, 16 are status codes."""
    xml = status().replace(b"<edXML:StatusCode>03<", f"<edXML:StatusCode>{code}<".encode())
    assert "StatusCode" in schema_error(xml, "status")


@pytest.mark.parametrize("field", ["OrganId", "DocumentId"])
def test_status_must_name_the_document(field: str) -> None:
    """A status packet's ResponseFor needs a non-empty OrganId and DocumentId."""

    def empty(root: etree._Element) -> None:
        found = root.find(f".//{E('ResponseFor')}/{E(field)}")
        assert found is not None
        found.text = None

    def drop(root: etree._Element) -> None:
        found = root.find(f".//{E('ResponseFor')}/{E(field)}")
        assert found is not None
        found.getparent().remove(found)  # type: ignore[union-attr]

    assert field in schema_error(edit(status(), empty), "status")
    assert field in schema_error(edit(status(), drop), "status")


@pytest.mark.parametrize(
    "stamp", ["2015/13/01 00:00:00", "2015/02/30 10:00:00", "2015-09-20 11:08:36"]
)
def test_status_timestamp_must_be_a_real_moment(stamp: str) -> None:
    """Timestamp is yyyy/MM/dd HH:mm:ss and a real date."""
    assert "Timestamp" in schema_error(status(timestamp=stamp), "status")


def test_status_with_a_recipient_is_refused() -> None:
    """A status packet has no To: it goes to the parties of the document."""

    def add_to(root: etree._Element) -> None:
        header = header_of(root)
        to = etree.SubElement(header, E("To"))
        etree.SubElement(to, E("OrganId")).text = G17

    assert "MessageHeader/To" in schema_error(edit(status(), add_to), "status")


def test_status_without_code_is_refused() -> None:
    """A header-only packet without StatusCode is refused naming StatusCode."""
    xml = status().replace(b"<edXML:StatusCode>03</edXML:StatusCode>", b"")
    assert "StatusCode" in schema_error(xml, "status")


def test_status_with_a_body_is_refused() -> None:
    """Status packets are header only: an edXMLBody is refused."""
    xml = status().replace(
        b"</edXML:edXMLHeader>",
        b'</edXML:edXMLHeader><edXML:edXMLBody><edXML:edXMLManifest version="1.0"/>'
        b"</edXML:edXMLBody>",
    )
    assert "edXMLBody" in schema_error(xml, "status")


def test_max_depth_is_a_parameter() -> None:
    """Nesting is limited to MAX_DEPTH by default; a caller may set another limit."""
    nested = b'<v:a xmlns:v="urn:v">' + b"<v:a>" * 69 + b"</v:a>" * 70
    xml = edoc().replace(b"</edXML:MessageHeader>", nested + b"</edXML:MessageHeader>")
    with pytest.raises(ForbiddenXml):
        edxml.parse(xml, expect="edoc")
    assert edxml.parse(xml, expect="edoc", max_depth=100).packet.kind == "edoc"


def test_expect_must_be_a_kind() -> None:
    """parse() refuses an unknown endpoint kind (a programming error, not the sender's)."""
    with pytest.raises(ValueError, match="expect"):
        edxml.parse(edoc(), expect="receipt")  # type: ignore[arg-type]
