"""VDXP answers: every failure has its ErrorCode and a Vietnamese ErrorDesc, every body is
what the SDK can read (ASCII-only JSON, no nulls, DocId on sendEdoc)."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis import errors, vdxp
from axis.errors import AxisError, NotFound, SchemaInvalid, SignatureInvalid
from axis.model import DeliveryState
from axis.vdxp import OPERATIONS
from axis.vdxp_answers import (
    FAULTS,
    STATUS_CODES,
    encode,
    error_desc,
    failure,
    failure_code,
    inbox_item,
    inbox_status,
    sent_item,
    sent_status,
    success,
    vn_time,
)
from tests.support.vdxp_client import Response, check_answer

CODES = [
    "unauthorized", "forbidden", "not_found", "too_large", "unsupported_media_type",
    "malformed_xml", "forbidden_xml", "schema_invalid", "sender_mismatch", "signature_missing",
    "signature_invalid", "signature_algorithm", "untrusted_signer", "unknown_recipient",
    "recipient_unavailable", "unknown_document", "not_a_party", "duplicate_conflict",
    "rate_limited", "invalid_request", "request_timeout", "unavailable", "internal_error",
    "method_not_allowed", "not_ready", "hash_mismatch", "unknown_sender", "agency_not_active",
]  # fmt: skip


def _subclasses(cls: type[AxisError]) -> list[type[AxisError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_problem_code_has_a_fault() -> None:
    """Each of our problem codes, and each AxisError class, answers with a VDXP ErrorCode."""
    assert set(FAULTS) == set(CODES)
    assert vdxp.SystemUnauthorized in _subclasses(errors.AxisError)
    for cls in _subclasses(errors.AxisError):
        assert cls.code in FAULTS, cls


def test_the_error_codes_are_the_contracts() -> None:
    """Exactly the ErrorCodes VDXP.md lists, each with an HTTP status from its list."""
    assert {f.error_code for f in FAULTS.values()} == {
        "10", "15", "16", "18", "19", "20", "22", "23", "24", "25", "26", "29", "30",
    }  # fmt: skip
    assert {f.status for f in FAULTS.values()} <= {400, 401, 403, 404, 409, 413, 422, 429, 503}
    by_code = {code: FAULTS[code].error_code for code in CODES}
    assert by_code["unauthorized"] == "15"
    assert by_code["hash_mismatch"] == by_code["malformed_xml"] == by_code["too_large"] == "10"
    assert by_code["schema_invalid"] == "22"
    assert {by_code[c] for c in CODES if c.startswith("signature")} == {"24"}
    assert by_code["untrusted_signer"] == "24"
    assert by_code["sender_mismatch"] == by_code["not_a_party"] == by_code["forbidden"] == "16"
    assert by_code["unknown_recipient"] == "18" and by_code["unknown_sender"] == "19"
    assert by_code["recipient_unavailable"] == "23"
    assert by_code["not_found"] == by_code["unknown_document"] == "25"
    assert by_code["duplicate_conflict"] == "26" and by_code["rate_limited"] == "29"
    assert by_code["invalid_request"] == "30"


def test_the_vietnamese_is_precomposed_and_punctuated() -> None:
    """Every text is NFC (precomposed diacritics, as Vietnamese software expects), starts with
    a capital, and tells what to do in a sentence."""
    texts = [f.what for f in FAULTS.values()] + [f.todo for f in FAULTS.values()]
    texts += list(STATUS_CODES.values())
    for state in DeliveryState:
        texts += list(sent_status(state)) + list(inbox_status(state))
    for text in texts:
        assert unicodedata.is_normalized("NFC", text), text
    for fault in FAULTS.values():
        assert fault.what[0].isupper() and fault.todo[0].isupper()
        assert fault.todo.endswith("."), fault.todo
    assert not any(f.what.endswith(".") for f in FAULTS.values())


def test_error_desc_is_what_then_detail_then_what_to_do() -> None:
    """The clerk reads what is wrong, our detail naming the field, then what to do."""
    desc = error_desc("malformed_xml", "line 3: unclosed tag <edXML:From>")
    assert desc == (
        "Gói tin không phải XML hợp lệ: line 3: unclosed tag <edXML:From>. "
        + FAULTS["malformed_xml"].todo
    )
    assert error_desc("signature_invalid", "Signature: digest mismatch.").startswith(
        "Chữ ký số không hợp lệ: Signature: digest mismatch. "
    )
    long = error_desc("schema_invalid", "x" * 5000)
    assert len(long) < 800 and "…" in long
    assert error_desc("no_such_code", "boom").startswith(FAULTS["internal_error"].what)


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_failure_is_what_the_sdk_reads(operation: str) -> None:
    """FAIL, ErrorCode, Vietnamese ErrorDesc with the detail, our code; ASCII-only; DocId ""
    on sendEdoc; and an empty body on downloadEdoc."""
    answer = failure(operation, SchemaInvalid("edXMLHeader/MessageHeader/Subject: missing"))
    assert answer.status == 400
    if operation == "downloadEdoc":
        assert answer.body == b""
        assert answer.headers["X-Axis-Problem"] == "schema_invalid"
        assert answer.headers["X-Axis-Error-Code"] == "22"
        return
    assert answer.body.isascii()
    body = json.loads(answer.body)
    assert body["status"] == "FAIL" and body["ErrorCode"] == "22"
    assert body["code"] == "schema_invalid"
    assert body["ErrorDesc"].startswith("Gói tin không đúng cấu trúc edXML: edXMLHeader/")
    assert ("DocId" in body) is (operation == "sendEdoc")
    if operation == "sendEdoc":
        assert body["DocId"] == ""
    check_answer(operation, Response(answer.status, "", [], answer.body))


def test_failures_keep_the_errors_headers() -> None:
    """Retry-After of a rate limit, and a timeout closing the connection, survive the mapping."""
    limited = failure("getEdoc", errors.RateLimited("too fast", 2.5))
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    timeout = failure("sendEdoc", errors.RequestTimeout("body: stalled"))
    assert timeout.closes_connection and json.loads(timeout.body)["ErrorCode"] == "10"
    unauth = failure("getEdoc", vdxp.SystemUnauthorized("bad HMAC"))
    assert unauth.status == 401 and "WWW-Authenticate" in unauth.headers
    crash = failure_code("sendEdoc", "internal_error", "request abc failed; see logs")
    assert crash.status == 503 and json.loads(crash.body)["ErrorCode"] == "20"


def test_success_answers() -> None:
    """OK, "0", a Vietnamese ErrorDesc; sendEdoc refuses to answer success without DocId."""
    ok = json.loads(success("sendEdoc", DocId="msg_1").body)
    assert ok == {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Thành công", "DocId": "msg_1"}
    with pytest.raises(ValueError, match="DocId"):
        success("sendEdoc")
    count = json.loads(success("countReceiveEdoc", count=3).body)
    assert count["count"] == 3
    listed = success("getAgenciesList", data=[{"id": "1", "pid": None, "oldCode": None}])
    assert json.loads(listed.body)["data"] == [{"id": "1"}]
    assert listed.content_type == "application/json; charset=utf-8"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_encoding_is_ascii_json_without_nulls(members: dict[str, object]) -> None:
    """Any text (astral characters included) goes out as ASCII \\u escapes that decode to the
    same value; nulls are left out at every depth."""
    out = encode(members)
    assert out.isascii()

    def nonull(value: object) -> object:
        if isinstance(value, dict):
            return {k: nonull(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [nonull(v) for v in value if v is not None]
        return value

    assert json.loads(out) == nonull(members)


def test_times_are_vietnam_time_as_clerks_read_them() -> None:
    """Our RFC 3339 UTC times become yyyy-MM-dd HH:mm:ss at UTC+07:00."""
    assert vn_time("2026-12-03T20:45:08.123456+00:00") == "2026-12-04 03:45:08"
    assert vn_time(None) is None


def test_inbox_items() -> None:
    """initial until fetched, processing once fetched or told so; no null members."""
    item = inbox_item(
        doc_id="msg_1", kind="edoc", from_code="000.00.00.G22", to_code="000.00.00.H41",
        created="2026-12-03T20:45:08.000000+00:00", updated=None, state="queued",
    )  # fmt: skip
    assert item["status"] == "initial" and item["status_desc"] == "Chờ nhận"
    assert item["updated_time"] == item["created_time"] == "2026-12-04 03:45:08"
    assert inbox_status("fetched") == ("processing", "Đang xử lý")
    assert inbox_status("queued", processing=True) == ("processing", "Đang xử lý")


def test_sent_items_say_where_each_recipient_stands() -> None:
    """sendStatus from the delivery; receiveStatus from the delivery unless a business status
    says more (02 refused is a failure); unknown members left out."""
    assert sent_status("acked") == ("done", "Đã gửi", "done", "Đã nhận")
    assert sent_status("queued")[::2] == ("processing", "initial")
    assert sent_status("dead")[0] == "fail"
    assert sent_status("failed")[2] == "fail"
    assert sent_status("fetched", "05")[2:] == ("done", "Đang xử lý (05)")
    assert sent_status("acked", "02")[2:] == ("fail", "Bị từ chối (02)")
    assert sent_status("queued", "13")[2] == "initial"  # the sender's own revocation
    item = sent_item(
        sender_doc_id="msg_1", receiver_doc_id=None, kind="edoc", from_code="000.00.00.G22",
        to_code="000.00.00.H41", title="V/v thử nghiệm", notation=None,
        sent="2026-12-03T20:45:08.000000+00:00", received=None, state="queued",
    )  # fmt: skip
    body = json.loads(success("getSentEdocList", data=[item]).body)["data"][0]
    assert "receiverDocId" not in body and "receivedTime" not in body and "notation" not in body
    assert body["title"] == "V/v thử nghiệm" and body["sentTime"] == "2026-12-04 03:45:08"


def test_not_found_on_download_is_an_empty_404() -> None:
    """The SDK saves any non-empty body as the document: a failed download has none."""
    answer = failure("downloadEdoc", NotFound("msg_1: no such document for this system"))
    assert (answer.status, answer.body) == (404, b"")
    assert failure("getEdoc", SignatureInvalid("x")).body.startswith(b'{"status":"FAIL"')
