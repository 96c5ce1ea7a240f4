"""VDXP answers without I/O: the JSON body of every ``/vxp`` answer and what it says to a clerk.

The SDK reads ``status``, ``ErrorCode`` and ``ErrorDesc`` of every answer and loses a whole list
when one item holds a JSON ``null``; it reads ``sendEdoc``'s answer as US-ASCII. So: the three
members are always there and never null, list items leave out what is unknown, and the bytes
are ASCII-only (``\\u`` escapes). Failures add our problem ``code``; ``sendEdoc`` answers carry
``DocId`` even when they fail (``""``), or the SDK hands its caller an all-null result.

``ErrorDesc`` is Vietnamese: what is wrong, then our problem detail (which names the element or
field at fault), then what to do. Times are ``yyyy-MM-dd HH:mm:ss`` in Vietnam time.

Serialising: ``json.dumps(ensure_ascii=True)``. orjson cannot escape non-ASCII, and escaping its
output afterwards is either wrong (``backslashreplace`` writes ``\\U0001f600``, which is not
JSON) or slower than the standard encoder (a correct error handler: 8 ms); the standard one
takes about 2.5 ms for a 1,000-item inbox page of 240 KB, nulls left out, against 0.1 ms for
orjson's unescaped bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from axis.errors import AxisError
from axis.model import DeliveryState
from axis.vdxp import OPERATIONS, VIETNAM, Operation

__all__ = [
    "FAULTS",
    "JSON_TYPE",
    "STATUS_CODES",
    "SUCCESS_DESC",
    "Answer",
    "Fault",
    "encode",
    "error_desc",
    "failure",
    "failure_code",
    "inbox_item",
    "inbox_status",
    "sent_item",
    "sent_status",
    "success",
    "vn_time",
]

JSON_TYPE = "application/json; charset=utf-8"  # ASCII is UTF-8; the captures' answers say so
SUCCESS_DESC = "Thành công"
MAX_DETAIL = 500  # characters of our detail quoted in ErrorDesc


@dataclass(frozen=True, slots=True)
class Fault:
    """How one problem code is answered on ``/vxp``: the SDK's ``ErrorCode``, the HTTP status
    (the SDK ignores it; it is for proxies and people), and the two halves of ``ErrorDesc``."""

    error_code: str
    status: int
    what: str  # what is wrong, for a clerk
    todo: str  # what to do about it


FAULTS: Mapping[str, Fault] = {
    "unauthorized": Fault(
        "15",
        401,
        "Xác thực hệ thống kết nối không thành công",
        "Kiểm tra systemid và secret trong tệp cấu hình của phần mềm; nếu secret vừa được cấp"
        " lại, dùng secret mới; nếu vẫn lỗi, liên hệ quản trị viên trục liên thông.",
    ),
    "forbidden": Fault(
        "16",
        403,
        "Hệ thống không được phép thực hiện thao tác này",
        "Kiểm tra đơn vị nêu trong yêu cầu có thuộc các đơn vị mà hệ thống phục vụ không; cần"
        " thêm quyền thì liên hệ quản trị viên trục liên thông.",
    ),
    "agency_not_active": Fault(
        "16",
        409,
        "Đơn vị đang bị tạm dừng hoặc đã đóng",
        "Đơn vị đã đóng thì dùng mã đơn vị kế nhiệm; đơn vị tạm dừng thì liên hệ quản trị"
        " viên trục liên thông.",
    ),
    "not_found": Fault(
        "25",
        404,
        "Không tìm thấy văn bản",
        "Kiểm tra lại mã văn bản (docId): văn bản không có trên trục hoặc không gửi cho đơn vị"
        " của hệ thống này.",
    ),
    "too_large": Fault(
        "10",
        413,
        "Tệp gửi lên vượt quá dung lượng cho phép",
        "Giảm dung lượng tệp đính kèm (nén hoặc tách văn bản) rồi gửi lại.",
    ),
    "unsupported_media_type": Fault(
        "10",
        400,
        "Kiểu nội dung gửi lên không được hỗ trợ",
        "Gửi gói tin edXML với Content-Type application/octet-stream hoặc application/xml.",
    ),
    "malformed_xml": Fault(
        "10",
        400,
        "Gói tin không phải XML hợp lệ",
        "Kiểm tra tệp edXML do phần mềm tạo ra (tệp rỗng, bị cắt cụt hoặc sai mã hoá ký tự)"
        " rồi gửi lại.",
    ),
    "forbidden_xml": Fault(
        "10",
        400,
        "Gói tin dùng cấu trúc XML bị cấm (DTD, thực thể, tham chiếu ra ngoài hoặc quá lớn)",
        "Tạo lại gói tin không có khai báo DOCTYPE và thực thể rồi gửi lại.",
    ),
    "hash_mismatch": Fault(
        "10",
        400,
        "Tệp nhận được không khớp với mã băm hash-file",
        "Tệp có thể bị hỏng trên đường truyền; gửi lại.",
    ),
    "request_timeout": Fault(
        "10",
        400,
        "Nội dung gửi lên không đến đủ trong thời gian cho phép",
        "Kiểm tra đường truyền rồi gửi lại.",
    ),
    "schema_invalid": Fault(
        "22",
        400,
        "Gói tin không đúng cấu trúc edXML",
        "Sửa phần tử được nêu cho đúng QCVN 102:2016 rồi gửi lại.",
    ),
    "sender_mismatch": Fault(
        "16",
        403,
        "Đơn vị gửi trong gói tin không khớp với đơn vị gửi khai báo",
        "From/OrganId trong gói tin phải trùng với tham số from và là đơn vị mà hệ thống phục vụ.",
    ),
    "not_a_party": Fault(
        "16",
        403,
        "Đơn vị không phải bên gửi hay bên nhận của văn bản này",
        "Chỉ đơn vị gửi hoặc đơn vị nhận văn bản mới được gửi trạng thái về văn bản đó; kiểm"
        " tra ResponseFor trong gói tin trạng thái.",
    ),
    "unknown_recipient": Fault(
        "18",
        422,
        "Đơn vị nhận chưa được đăng ký trên trục liên thông",
        "Kiểm tra mã định danh đơn vị nhận (To/OrganId) theo danh mục đơn vị (getAgenciesList).",
    ),
    "unknown_sender": Fault(
        "19",
        422,
        "Đơn vị gửi chưa được đăng ký trên trục liên thông",
        "Kiểm tra mã đơn vị gửi (from); đơn vị mới cần được quản trị viên trục đăng ký trước.",
    ),
    "unavailable": Fault(
        "20",
        503,
        "Trục liên thông tạm thời chưa phục vụ được",
        "Chưa có gì được lưu; thử lại sau ít phút.",
    ),
    "internal_error": Fault(
        "20",
        503,
        "Trục liên thông gặp lỗi nội bộ",
        "Thử lại sau ít phút; nếu vẫn lỗi, báo quản trị viên trục kèm nội dung thông báo này.",
    ),
    "not_ready": Fault(
        "20",
        503,
        "Trục liên thông đang khởi động hoặc chưa sẵn sàng",
        "Thử lại sau ít phút.",
    ),
    "recipient_unavailable": Fault(
        "23",
        422,
        "Đơn vị nhận đang tạm ngừng hoặc đã đóng",
        "Liên hệ đơn vị nhận, hoặc gửi đến đơn vị kế thừa theo danh mục đơn vị.",
    ),
    "signature_missing": Fault(
        "24",
        400,
        "Gói tin chưa có chữ ký số",
        "Ký số gói tin (XML-DSig) bằng chứng thư số của đơn vị rồi gửi lại.",
    ),
    "signature_invalid": Fault(
        "24",
        400,
        "Chữ ký số không hợp lệ",
        "Gói tin có thể đã bị sửa sau khi ký; ký lại gói tin rồi gửi lại.",
    ),
    "signature_algorithm": Fault(
        "24",
        400,
        "Chữ ký số dùng thuật toán không được chấp nhận",
        "Ký lại gói tin bằng RSA hoặc ECDSA với SHA-256.",
    ),
    "untrusted_signer": Fault(
        "24",
        403,
        "Chứng thư số ký gói tin chưa được đăng ký cho đơn vị gửi hoặc không còn hiệu lực",
        "Ký bằng chứng thư số còn hiệu lực của đơn vị, hoặc đề nghị quản trị viên trục đăng ký"
        " chứng thư số hiện hành.",
    ),
    "unknown_document": Fault(
        "25",
        422,
        "Không tìm thấy văn bản mà gói tin tham chiếu đến",
        "Kiểm tra mã văn bản được trả lời, thu hồi, cập nhật hoặc thay thế (DocumentId) là văn"
        " bản đã gửi qua trục liên thông.",
    ),
    "duplicate_conflict": Fault(
        "26",
        409,
        "Xung đột với nội dung đã nhận trước đó",
        "Mã văn bản (DocumentId) đã dùng cho một nội dung khác, hoặc văn bản đã được xác nhận"
        " với kết quả khác; kiểm tra lại trước khi gửi.",
    ),
    "rate_limited": Fault(
        "29",
        429,
        "Gửi yêu cầu quá nhanh",
        "Chờ ít phút rồi thử lại.",
    ),
    "invalid_request": Fault(
        "30",
        400,
        "Yêu cầu không hợp lệ",
        "Kiểm tra các tham số (header XroadVnpt-*) và nội dung yêu cầu theo hướng dẫn của SDK.",
    ),
    "method_not_allowed": Fault(
        "30",
        400,
        "Phương thức HTTP không đúng cho thao tác này",
        "Gọi downloadEdoc bằng GET, các thao tác khác bằng POST.",
    ),
}
"""Every problem code the axis answers with, by code. An unknown code answers as
``internal_error`` would: the mapping is total."""

_FALLBACK = FAULTS["internal_error"]


@dataclass(frozen=True, slots=True)
class Answer:
    """One ``/vxp`` answer, ready to send."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    closes_connection: bool = False


def encode(members: Mapping[str, object]) -> bytes:
    """ASCII-only compact JSON; members that are None are left out at every depth (a list
    item holding ``null`` loses the SDK the whole list)."""
    return json.dumps(
        _drop_nulls(dict(members)), ensure_ascii=True, separators=(",", ":"), allow_nan=False
    ).encode("ascii")


_NESTED = (dict, list, tuple)


def _drop_nulls(value: object) -> object:
    # scalars are not passed down again: a 1,000-item page costs one call per item, not per member
    if isinstance(value, dict):
        return {
            k: _drop_nulls(v) if isinstance(v, _NESTED) else v
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, list | tuple):
        return [
            _drop_nulls(item) if isinstance(item, _NESTED) else item
            for item in value
            if item is not None
        ]
    return value


def _op(operation: Operation | str) -> Operation | None:
    return operation if isinstance(operation, Operation) else OPERATIONS.get(operation)


def success(operation: Operation | str, **members: object) -> Answer:
    """``{"status":"OK","ErrorCode":"0","ErrorDesc":…}`` plus ``members`` (``DocId``, ``data``,
    ``count``…). ``sendEdoc`` without a ``DocId`` is a programming error (ValueError)."""
    op = _op(operation)
    if op is not None and op.answers_doc_id and not members.get("DocId"):
        raise ValueError(f"{op.name}: a success answer needs its DocId")
    body: dict[str, object] = {"status": "OK", "ErrorCode": "0", "ErrorDesc": SUCCESS_DESC}
    body.update(members)
    return Answer(200, encode(body))


def error_desc(code: str, detail: str) -> str:
    """The Vietnamese ``ErrorDesc``: what is wrong, our detail, what to do."""
    fault = FAULTS.get(code, _FALLBACK)
    shown = " ".join(detail.split())  # one line, whatever the detail held
    if len(shown) > MAX_DETAIL:
        shown = shown[:MAX_DETAIL] + "…"
    shown = shown.rstrip(" .;")
    return f"{fault.what}: {shown}. {fault.todo}" if shown else f"{fault.what}. {fault.todo}"


def failure(operation: Operation | str, error: AxisError) -> Answer:
    """The answer to ``error`` (any :class:`~axis.errors.AxisError`) for ``operation``."""
    answer = failure_code(operation, error.code, error.detail, error.headers)
    if error.closes_connection:
        return Answer(answer.status, answer.body, answer.content_type, answer.headers, True)
    return answer


def failure_code(
    operation: Operation | str,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """The answer to a problem known only by its code (``unavailable``, ``internal_error``,
    ``method_not_allowed``, …). ``downloadEdoc`` fails with an empty body (the SDK saves any
    non-empty body as the document); the error travels in ``X-Axis-Problem`` and
    ``X-Axis-Error-Code`` headers for people with curl."""
    fault = FAULTS.get(code, _FALLBACK)
    extra = dict(headers or {})
    op = _op(operation)
    if op is not None and op.empty_failure:
        extra["X-Axis-Problem"] = code
        extra["X-Axis-Error-Code"] = fault.error_code
        return Answer(fault.status, b"", "application/octet-stream", extra)
    body: dict[str, object] = {
        "status": "FAIL",
        "ErrorCode": fault.error_code,
        "ErrorDesc": error_desc(code, detail),
        "code": code,
    }
    if op is not None and op.answers_doc_id:
        body["DocId"] = ""
    return Answer(fault.status, encode(body), JSON_TYPE, extra)


# ---------------------------------------------------------------- times and list items


def vn_time(value: str | datetime | None) -> str | None:
    """One of our RFC 3339 UTC times as clerks read them: ``yyyy-MM-dd HH:mm:ss``, UTC+07:00.
    None stays None (and the member is then left out of the answer)."""
    if value is None:
        return None
    when = (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(VIETNAM)
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f" {when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )


STATUS_CODES: Mapping[str, str] = {
    "01": "Đã đến hệ thống của đơn vị nhận",
    "02": "Bị từ chối",
    "03": "Đã tiếp nhận",
    "04": "Đã phân công xử lý",
    "05": "Đang xử lý",
    "06": "Đã hoàn thành xử lý",
    "13": "Đề nghị lấy lại, thu hồi văn bản",
    "15": "Đồng ý cập nhật, lấy lại, thu hồi",
    "16": "Từ chối cập nhật, lấy lại, thu hồi",
}
"""The business status codes of EDXML.md, as a clerk names them."""

_INBOX = {
    "initial": "Chờ nhận",
    "processing": "Đang xử lý",
}


def inbox_status(state: str, processing: bool = False) -> tuple[str, str]:
    """``(status, status_desc)`` of a pending delivery in ``getReceivedEdocList``: ``initial``
    until the recipient fetched it, then ``processing`` (also when it said so by
    ``updateStatus``)."""
    fetched = state == DeliveryState.FETCHED or processing
    status = "processing" if fetched else "initial"
    return status, _INBOX[status]


_SEND: Mapping[str, tuple[str, str]] = {
    DeliveryState.QUEUED: ("processing", "Đã gửi lên trục, chờ đơn vị nhận lấy về"),
    DeliveryState.RETRYING: ("processing", "Đang chuyển đến hệ thống của đơn vị nhận"),
    DeliveryState.DEAD: (
        "fail",
        "Chưa chuyển được đến hệ thống của đơn vị nhận; văn bản vẫn chờ đơn vị nhận lấy về",
    ),
    DeliveryState.FETCHED: ("done", "Đã gửi"),
    DeliveryState.ACKED: ("done", "Đã gửi"),
    DeliveryState.FAILED: ("done", "Đã gửi"),
}
_RECEIVE: Mapping[str, tuple[str, str]] = {
    DeliveryState.QUEUED: ("initial", "Chưa nhận"),
    DeliveryState.RETRYING: ("initial", "Chưa nhận"),
    DeliveryState.DEAD: ("initial", "Chưa nhận"),
    DeliveryState.FETCHED: ("processing", "Đã lấy về, chưa xác nhận"),
    DeliveryState.ACKED: ("done", "Đã nhận"),
    DeliveryState.FAILED: ("fail", "Đơn vị nhận báo không dùng được văn bản"),
}


def sent_status(state: str, latest_code: str | None = None) -> tuple[str, str, str, str]:
    """``(sendStatus, sendStatusDesc, receiveStatus, receiveStatusDesc)`` of one recipient in
    ``getSentEdocList``, from its delivery state and the latest business status it sent.

    ``send…`` says how far the axis got the document (``processing`` on the way, ``done``
    in the recipient's hands, ``fail`` when pushing gave up: it still waits in the inbox);
    ``receive…`` what the recipient did: the delivery state, unless a business status says
    more (its name and code, e.g. ``Đang xử lý (05)``; ``02`` refused is ``fail``).
    """
    send = _SEND.get(state, ("processing", "Đang chuyển"))
    receive_status, receive_desc = _RECEIVE.get(state, ("initial", "Chưa nhận"))
    if latest_code is not None and latest_code != "13":
        name = STATUS_CODES.get(latest_code, "Trạng thái")
        receive_status = "fail" if latest_code == "02" else "done"
        receive_desc = f"{name} ({latest_code})"
    return send[0], send[1], receive_status, receive_desc


def inbox_item(
    *,
    doc_id: str,
    kind: str,
    from_code: str,
    to_code: str,
    created: str | datetime,
    updated: str | datetime | None,
    state: str,
    processing: bool = False,
) -> dict[str, object]:
    """One ``getReceivedEdocList`` item. ``created``/``updated`` are our RFC 3339 times."""
    status, desc = inbox_status(state, processing)
    return {
        "docId": doc_id,
        "serviceType": "eDoc",
        "messageType": kind,
        "from": from_code,
        "to": to_code,
        "created_time": vn_time(created),
        "updated_time": vn_time(updated if updated is not None else created),
        "status": status,
        "status_desc": desc,
    }


def sent_item(
    *,
    sender_doc_id: str,
    receiver_doc_id: str | None,
    kind: str,
    from_code: str,
    to_code: str,
    title: str | None,
    notation: str | None,
    sent: str | datetime,
    received: str | datetime | None,
    state: str,
    latest_code: str | None = None,
) -> dict[str, object]:
    """One ``getSentEdocList`` item (one per recipient); unknown members are left out."""
    send, send_desc, receive, receive_desc = sent_status(state, latest_code)
    return {
        "senderDocId": sender_doc_id,
        "receiverDocId": receiver_doc_id,
        "fromCode": from_code,
        "toCode": to_code,
        "title": title,
        "notation": notation,
        "sentTime": vn_time(sent),
        "receivedTime": vn_time(received),
        "sendStatus": send,
        "sendStatusDesc": send_desc,
        "receiveStatus": receive,
        "receiveStatusDesc": receive_desc,
        "serviceType": "eDoc",
        "messageType": kind,
    }
