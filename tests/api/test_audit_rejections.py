"""Refused packages from authenticated agencies leave an audit event with their reason."""

from __future__ import annotations

from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


async def test_rejections_are_audited_with_code_and_reason(axis: AxisHarness) -> None:
    """A tampered document and an unknown recipient are both in the audit log, nothing else."""
    sender = await axis.register(G22)
    body = axis.edoc(sender, [H41], subject="Về việc thử nghiệm")
    tampered = body.replace("thử nghiệm".encode(), b"thu nghiem", 1)
    assert (await axis.send(sender, tampered))[0] == 400
    assert (await axis.send(sender, axis.edoc(sender, ["000.00.00.Z98"])))[0] == 422
    status, page = await axis.get(axis.admin, "/v1/audit/events?type=message_rejected")
    assert status == 200
    items = page["items"]
    assert [e["detail"]["code"] for e in items] == ["signature_invalid", "unknown_recipient"]
    assert all(e["actor"] == f"agency:{G22}" for e in items)
    assert "000.00.00.Z98" in str(items[1]["detail"])
    _, outbox = await axis.get(sender, "/v1/outbox")
    assert outbox["items"] == []
