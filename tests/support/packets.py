"""Builders of UNSIGNED edXML test packets, modelled on the field samples.

Everyone's tests use these: the intake tests sign them (``tests/support/signers.py`` fills
the ``ds:Signature`` placeholder in ``edXMLHeader``), the parser tests parse them as they
are, the benchmark sizes them. They copy the samples' shape on purpose, quirks included:
a default-namespace ``edXML`` root around a prefixed ``edXML:edXMLEnvelope``, unprefixed
``AttachmentEncoded`` children, a ``ContentTransferEncoded`` that redeclares its prefix, and
Vietnamese text throughout, so that what passes here passes for the reasons real packets do.
"""

from __future__ import annotations

import base64
import itertools
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.sax.saxutils import escape

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"  # see tests/data/README.md

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
PLACEHOLDER = f'<ds:Signature xmlns:ds="{DSIG_NS}" Id="placeholder"></ds:Signature>'

VIETNAM_TIME = timezone(timedelta(hours=7))

NAMES = {
    "000.00.00.G22": ("Văn phòng Chính phủ", "Số 1 Hoàng Hoa Thám, Quận Ba Đình, Hà Nội"),
    "000.00.00.G12": ("Bộ Tài chính", "Số 28 Trần Hưng Đạo, Quận Hoàn Kiếm, Hà Nội"),
    "000.00.00.G17": ("Bộ Thông tin và Truyền thông", "Số 18 Nguyễn Du, Quận Hai Bà Trưng, Hà Nội"),
    "000.00.00.H41": ("UBND Tỉnh Nghệ An", "Số 03, đường Trường Thi, Thành phố Vinh, Nghệ An"),
    "000.00.00.H14": ("UBND Tỉnh Cao Bằng", "Số 011 Hoàng Đình Giong, Thành phố Cao Bằng"),
    "000.00.00.H29": ("UBND Thành phố Hà Nội", "Số 12 Lê Lai, Quận Hoàn Kiếm, Hà Nội"),
}

REASONS = {
    0: "Văn bản điện tử mới",
    1: "Thu hồi văn bản điện tử",
    2: "Cập nhật văn bản điện tử",
    3: "Văn bản thay thế",
}

DESCRIPTIONS = {
    "01": (
        "Văn thư - Phòng Văn thư - Lưu trữ: Đã đến - Phần mềm QLVB đã nhận nhưng văn thư chưa xử lý"
    ),
    "02": "Văn thư - Phòng Văn thư - Lưu trữ: Từ chối không tiếp nhận văn bản điện tử",
    "03": "Văn thư - Phòng Văn thư - Lưu trữ: Tiếp nhận văn bản điện tử, vào sổ văn bản đến",
    "04": "Lãnh đạo: Phân công xử lý",
    "05": "Đang xử lý văn bản đến",
    "06": "Văn thư: Ban hành văn bản đến, hoàn thành xử lý",
    "13": "Văn thư yêu cầu lấy lại văn bản điện tử kèm lý do",
    "15": "Văn thư đồng ý yêu cầu cập nhật, lấy lại",
    "16": "Văn thư từ chối yêu cầu cập nhật, lấy lại",
}

DEFAULT_SUBJECT = "V/v kết nối, liên thông phần mềm quản lý văn bản"

_serials = itertools.count(1)
_DATE = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}")


def _text(value: str) -> str:
    """Escape for element content; a CR is written as a reference or XML would drop it."""
    return escape(value).replace("\r", "&#13;")


def _now() -> datetime:
    return datetime.now(VIETNAM_TIME)


def _organ(tag: str, organ_id: str, indent: str) -> str:
    name, address = NAMES.get(organ_id, (f"Cơ quan {organ_id}", "Hà Nội"))
    inner = indent + "  "
    return (
        f"{indent}<edXML:{tag}>\n"
        f"{inner}<edXML:OrganId>{_text(organ_id)}</edXML:OrganId>\n"
        f"{inner}<edXML:OrganizationInCharge>{_text(name)}</edXML:OrganizationInCharge>\n"
        f"{inner}<edXML:OrganName>{_text(name)}</edXML:OrganName>\n"
        f"{inner}<edXML:OrganAdd>{_text(address)}</edXML:OrganAdd>\n"
        f"{inner}<edXML:Email>vanthu@gov.vn</edXML:Email>\n"
        f"{inner}<edXML:Telephone>024 3825 8261</edXML:Telephone>\n"
        f"{inner}<edXML:Fax>024 3825 8262</edXML:Fax>\n"
        f"{inner}<edXML:Website>www.chinhphu.vn</edXML:Website>\n"
        f"{indent}</edXML:{tag}>\n"
    )


def attachment_content(size: int) -> bytes:
    """``size`` deterministic bytes that start like the zip files real senders attach."""
    block = b"PK\x03\x04" + bytes(range(256))
    return (block * (size // len(block) + 1))[:size]


def edoc_xml(
    from_id: str,
    to_ids: Iterable[str],
    document_id: str | None = None,
    *,
    business_type: int = 0,
    replaced_ids: Iterable[str] = (),
    subject: str = DEFAULT_SUBJECT,
    attachment_bytes: int | bytes = 0,
    priority: int = 0,
    signature_placeholder: bool = True,
) -> bytes:
    """An unsigned document package from ``from_id`` to ``to_ids``.

    ``document_id`` defaults to a fresh ``{from_id},{today},{n}/TEST-…`` id.
    ``attachment_bytes`` is the attachment's raw content (``bytes``), or the size of its
    base64 text in the package (``int``; 0: no attachment and an empty manifest): the
    package is that plus about 4.9 KB (one recipient; 0.6 KB more per further recipient),
    so 5000 gives a package of about 10 KB. The base64 is on one line, as in the samples.
    ``signature_placeholder`` puts ``<ds:Signature Id="placeholder">`` last in
    ``edXMLHeader`` for the signer to fill.
    """
    to_ids = [to_ids] if isinstance(to_ids, str) else list(to_ids)
    now = _now()
    today = now.strftime("%Y/%m/%d")
    if document_id is None:
        document_id = f"{from_id},{today},{next(_serials)}/TEST-{uuid.uuid4().hex[:8]}"
    number, _, notation = document_id.rpartition(",")[2].partition("/")
    recipients = "".join(_organ("To", organ_id, "        ") for organ_id in to_ids)
    replacement = ""
    replaced = list(replaced_ids)
    if replaced:
        organ_list = "".join(
            f"                  <edXML:OrganId>{_text(organ_id)}</edXML:OrganId>\n"
            for organ_id in to_ids
        )
        replacement = (
            "          <edXML:ReplacementInfoList>\n"
            + "".join(
                "            <edXML:ReplacementInfo>\n"
                f"              <edXML:DocumentId>{_text(old)}</edXML:DocumentId>\n"
                "              <edXML:OrganIdList>\n"
                f"{organ_list}"
                "              </edXML:OrganIdList>\n"
                "            </edXML:ReplacementInfo>\n"
                for old in replaced
            )
            + "          </edXML:ReplacementInfoList>\n"
        )
    content = (
        attachment_bytes
        if isinstance(attachment_bytes, bytes)
        else attachment_content(attachment_bytes * 3 // 4)
    )
    content_id = f"cid:{uuid.uuid5(uuid.NAMESPACE_URL, document_id)}"
    name = f"{(number or '1')[:11]}_{now:%Y%m%d}.pdf.zip"
    reference = attachment = ""
    if content:
        reference = (
            "        <edXML:Reference>\n"
            f"          <edXML:ContentId>{content_id}</edXML:ContentId>\n"
            "          <edXML:ContentType>application/zip</edXML:ContentType>\n"
            f"          <edXML:Description>{_text(name)}</edXML:Description>\n"
            f"          <edXML:AttachmentName>{_text(name)}</edXML:AttachmentName>\n"
            "        </edXML:Reference>\n"
        )
        attachment = (
            "  <AttachmentEncoded>\n"
            "    <Attachment>\n"
            f"      <ContentId>{content_id}</ContentId>\n"
            f"      <AttachmentName>{_text(name)}</AttachmentName>\n"
            f"      <Description>{_text(name)}</Description>\n"
            "      <ContentType>application/zip</ContentType>\n"
            f'      <edXML:ContentTransferEncoded xmlns:edXML="{EDXML_NS}">'
            f"{base64.b64encode(content).decode('ascii')}</edXML:ContentTransferEncoded>\n"
            "    </Attachment>\n"
            "  </AttachmentEncoded>\n"
        )
    signature = f"      {PLACEHOLDER}\n" if signature_placeholder else ""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<edXML xmlns="{EDXML_NS}">\n'
        f'  <edXML:edXMLEnvelope xmlns:edXML="{EDXML_NS}">\n'
        "    <edXML:edXMLHeader>\n"
        "      <edXML:MessageHeader>\n"
        f"{_organ('From', from_id, '        ')}"
        f"{recipients}"
        f"        <edXML:DocumentId>{_text(document_id)}</edXML:DocumentId>\n"
        "        <edXML:Code>\n"
        f"          <edXML:CodeNumber>{_text(number[:11])}</edXML:CodeNumber>\n"
        f"          <edXML:CodeNotation>{_text(notation[:30])}</edXML:CodeNotation>\n"
        "        </edXML:Code>\n"
        "        <edXML:PromulgationInfo>\n"
        "          <edXML:Place>Hà Nội</edXML:Place>\n"
        f"          <edXML:PromulgationDate>{today}</edXML:PromulgationDate>\n"
        "        </edXML:PromulgationInfo>\n"
        "        <edXML:DocumentType>\n"
        "          <edXML:Type>2</edXML:Type>\n"
        "          <edXML:TypeDetail>0</edXML:TypeDetail>\n"
        "          <edXML:TypeName>Công văn</edXML:TypeName>\n"
        "        </edXML:DocumentType>\n"
        f"        <edXML:Subject>{_text(subject)}</edXML:Subject>\n"
        "        <edXML:Content>Đề nghị các cơ quan phối hợp thực hiện.</edXML:Content>\n"
        "        <edXML:SignerInfo>\n"
        "          <edXML:Competence>KT. BỘ TRƯỞNG</edXML:Competence>\n"
        "          <edXML:Position>Thứ trưởng</edXML:Position>\n"
        "          <edXML:FullName>Nguyễn Văn An</edXML:FullName>\n"
        "        </edXML:SignerInfo>\n"
        f"        <edXML:DueDate>{(now + timedelta(days=14)):%Y/%m/%d}</edXML:DueDate>\n"
        "        <edXML:ToPlaces>\n"
        "          <edXML:Place>Các bộ, cơ quan ngang bộ</edXML:Place>\n"
        "        </edXML:ToPlaces>\n"
        "        <edXML:OtherInfo>\n"
        f"          <edXML:Priority>{priority}</edXML:Priority>\n"
        "          <edXML:SphereOfPromulgation>Liên thông văn bản quốc gia"
        "</edXML:SphereOfPromulgation>\n"
        "          <edXML:TyperNotation>VT</edXML:TyperNotation>\n"
        "          <edXML:PromulgationAmount>1</edXML:PromulgationAmount>\n"
        "          <edXML:PageAmount>2</edXML:PageAmount>\n"
        "        </edXML:OtherInfo>\n"
        "        <edXML:SteeringType>1</edXML:SteeringType>\n"
        "      </edXML:MessageHeader>\n"
        "      <edXML:TraceHeaderList>\n"
        "        <edXML:TraceHeader>\n"
        f"          <edXML:OrganId>{_text(from_id)}</edXML:OrganId>\n"
        f"          <edXML:Timestamp>{now:%Y/%m/%d %H:%M:%S}</edXML:Timestamp>\n"
        "        </edXML:TraceHeader>\n"
        "        <edXML:Bussiness>\n"
        f"          <edXML:BussinessDocType>{business_type}</edXML:BussinessDocType>\n"
        f"          <edXML:BussinessDocReason>{REASONS.get(business_type, '')}"
        "</edXML:BussinessDocReason>\n"
        "          <edXML:Paper>0</edXML:Paper>\n"
        f"{replacement}"
        "          <edXML:StaffInfo>\n"
        "            <edXML:Department>Văn thư văn phòng</edXML:Department>\n"
        "            <edXML:Staff>Nguyễn Thị Ngọc Trâm</edXML:Staff>\n"
        "            <edXML:Email>vanthu@gov.vn</edXML:Email>\n"
        "            <edXML:Mobile>84912000001</edXML:Mobile>\n"
        "          </edXML:StaffInfo>\n"
        "        </edXML:Bussiness>\n"
        "      </edXML:TraceHeaderList>\n"
        f"{signature}"
        "    </edXML:edXMLHeader>\n"
        "    <edXML:edXMLBody>\n"
        '      <edXML:edXMLManifest version="1.0">\n'
        f"{reference}"
        "      </edXML:edXMLManifest>\n"
        "    </edXML:edXMLBody>\n"
        "  </edXML:edXMLEnvelope>\n"
        f"{attachment}"
        "</edXML>\n"
    )
    return xml.encode("utf-8")


def status_xml(
    from_id: str,
    response_for_organ: str,
    response_for_document_id: str,
    status_code: str,
    *,
    timestamp: datetime | str | None = "now",
    description: str | None = None,
    signature_placeholder: bool = True,
) -> bytes:
    """An unsigned status packet from ``from_id`` about a document.

    The document is ``ResponseFor`` {``response_for_organ``, ``response_for_document_id``}.
    ``timestamp`` is a datetime (written in Vietnamese time), a preformatted string, "now"
    (the default) or None (no ``Timestamp``). ``description`` defaults to the sample's
    wording for ``status_code``.
    """
    if timestamp == "now":
        stamp: str | None = f"{_now():%Y/%m/%d %H:%M:%S}"
    elif isinstance(timestamp, datetime):
        stamp = f"{timestamp.astimezone(VIETNAM_TIME):%Y/%m/%d %H:%M:%S}"
    else:
        stamp = timestamp
    if description is None:
        description = DESCRIPTIONS.get(status_code, "Cập nhật trạng thái văn bản")
    parts = response_for_document_id.split(",")
    number = parts[-1] if len(parts) >= 3 else ""
    date = parts[1] if len(parts) >= 3 and _DATE.fullmatch(parts[1]) else ""
    timestamp_line = f"        <edXML:Timestamp>{_text(stamp)}</edXML:Timestamp>\n" if stamp else ""
    signature = f"      {PLACEHOLDER}\n" if signature_placeholder else ""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<edXML xmlns="{EDXML_NS}">\n'
        f'  <edXML:edXMLEnvelope xmlns:edXML="{EDXML_NS}">\n'
        "    <edXML:edXMLHeader>\n"
        "      <edXML:MessageHeader>\n"
        f"{_organ('From', from_id, '        ')}"
        "        <edXML:ResponseFor>\n"
        f"          <edXML:OrganId>{_text(response_for_organ)}</edXML:OrganId>\n"
        f"          <edXML:Code>{_text(number[:100])}</edXML:Code>\n"
        f"          <edXML:PromulgationDate>{_text(date)}</edXML:PromulgationDate>\n"
        f"          <edXML:DocumentId>{_text(response_for_document_id)}</edXML:DocumentId>\n"
        "        </edXML:ResponseFor>\n"
        "        <edXML:StaffInfo>\n"
        "          <edXML:Department>Phòng Hành chính</edXML:Department>\n"
        "          <edXML:Staff>Nguyễn Thị Ngọc Trâm</edXML:Staff>\n"
        "          <edXML:Mobile>84912000001</edXML:Mobile>\n"
        "          <edXML:Email>vanthu@gov.vn</edXML:Email>\n"
        "        </edXML:StaffInfo>\n"
        f"        <edXML:StatusCode>{_text(status_code)}</edXML:StatusCode>\n"
        f"        <edXML:Description>{_text(description)}</edXML:Description>\n"
        f"{timestamp_line}"
        "      </edXML:MessageHeader>\n"
        f"{signature}"
        "    </edXML:edXMLHeader>\n"
        "  </edXML:edXMLEnvelope>\n"
        "</edXML>\n"
    )
    return xml.encode("utf-8")


def document_id_of(package: bytes) -> str:
    """The ``MessageHeader/DocumentId`` a package carries (as the tests' packets write it)."""
    match = re.search(rb"<edXML:DocumentId>([^<]*)</edXML:DocumentId>", package)
    assert match is not None, "no DocumentId in the package"
    return match.group(1).decode()
