"""Structured logs: stable event names with the ids that let an operator follow one message."""

from __future__ import annotations

import structlog
from structlog.contextvars import merge_contextvars

from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


async def test_an_accepted_package_is_logged_with_its_message_and_request_ids(
    axis: AxisHarness,
) -> None:
    """message_accepted names the message, document, sender, caller and request id."""
    sender = await axis.register(G22)
    with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
        async with axis.session.post(
            f"{axis.url}/v1/edocs",
            data=axis.edoc(sender, [H41]),
            headers={**sender.auth, "Content-Type": "application/xml", "X-Request-Id": "req-42"},
        ) as resp:
            assert resp.status == 201
            assert resp.headers["X-Request-Id"] == "req-42"
            answer = await resp.json()
    accepted = [e for e in logs if e["event"] == "message_accepted"]
    assert len(accepted) == 1
    line = accepted[0]
    assert line["message_id"] == answer["id"]
    assert line["document_id"] == answer["document_id"]
    assert line["from_id"] == G22
    assert line["request_id"] == "req-42"
    assert line["principal"] == f"agency:{G22}"
    assert line["log_level"] == "info"


async def test_an_oversized_request_id_is_replaced(axis: AxisHarness) -> None:
    """A client's X-Request-Id is echoed only when short and printable; else the axis makes one."""
    async with axis.session.get(f"{axis.url}/healthz", headers={"X-Request-Id": "x" * 500}) as resp:
        assert resp.status == 200
        made = resp.headers["X-Request-Id"]
    assert len(made) == 16 and made != "x" * 500


async def test_a_refused_request_is_logged_with_its_code(axis: AxisHarness) -> None:
    """request_refused names the problem code, status and path (401 and 422 alike)."""
    sender = await axis.register(G22)
    with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
        assert (await axis.get({}, "/v1/outbox"))[0] == 401
        status, _ = await axis.send(sender, axis.edoc(sender, ["000.00.00.Z99"]))
        assert status == 422
    refused = [(e["code"], e["status"], e["path"]) for e in logs if e["event"] == "request_refused"]
    assert refused == [("unauthorized", 401, "/v1/outbox"), ("unknown_recipient", 422, "/v1/edocs")]
