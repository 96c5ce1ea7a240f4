"""Hostile XML over HTTP: refused with forbidden_xml, the axis stays healthy and keeps mail."""

from __future__ import annotations

import pytest

from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"

LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b']>\n<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&lol9;</edXML>'
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&xxe;</edXML>'
)
EXTERNAL_DTD = (
    b'<?xml version="1.0"?>\n<!DOCTYPE edXML SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
    b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>'
)
DEEP = b"<a>" * 100_000 + b"</a>" * 100_000
HUGE_ATTRIBUTE = (
    b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016" x="' + b"A" * 10_000_000 + b'"/>'
)


@pytest.mark.parametrize(
    "body",
    [LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, DEEP, HUGE_ATTRIBUTE],
    ids=["billion-laughs", "external-entity", "external-dtd", "deep-nesting", "huge-attribute"],
)
async def test_hostile_xml_is_forbidden_and_the_axis_stays_healthy(
    axis: AxisHarness, body: bytes
) -> None:
    """Each hostile construct gets 400 forbidden_xml; healthz and earlier mail are unaffected."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    status, first = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201
    status, problem = await axis.send(sender, body)
    assert status == 400, problem
    assert problem["code"] == "forbidden_xml"
    assert problem["detail"]
    status, health = await axis.get({}, "/healthz")
    assert status == 200 and health["ok"]
    _, inbox = await axis.get(receiver, "/v1/inbox")
    assert [m["id"] for m in inbox["items"]] == [first["id"]]
