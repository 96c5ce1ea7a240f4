"""The document lifecycle over a real server: statuses, take-back, update, replacement."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from tests.support import packets
from tests.support.harness import AxisHarness, TestAgency

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
H14 = "000.00.00.H14"
VN = packets.VIETNAM_TIME


async def conversation(axis: AxisHarness) -> tuple[TestAgency, TestAgency, TestAgency, Any]:
    sender = await axis.register(G22)
    a = await axis.register(H41)
    b = await axis.register(H14)
    status, sent = await axis.send(sender, axis.edoc(sender, [H41, H14]))
    assert status == 201
    return sender, a, b, sent


def row(view: dict[str, Any], organ_id: str) -> dict[str, Any]:
    return next(r for r in view["recipients"] if r["organ_id"] == organ_id)


async def test_a_whole_conversation_reaches_the_sender_in_order(axis: AxisHarness) -> None:
    """01, 03, 04, 05, 06 from a recipient reach the sender's inbox and timeline in order."""
    sender, a, _, sent = await conversation(axis)
    start = datetime(2026, 11, 23, 8, 0, tzinfo=VN)
    relayed = []
    for i, code in enumerate(["01", "03", "04", "05", "06"]):
        body = axis.status(a, G22, sent["document_id"], code, timestamp=start + timedelta(hours=i))
        status, answer = await axis.send_status(a, body)
        assert status == 201, answer
        assert answer["kind"] == "status" and answer["status_code"] == code
        assert [r["organ_id"] for r in answer["recipients"]] == [G22]
        relayed.append(answer["id"])
    _, inbox = await axis.get(sender, "/v1/inbox?kind=status")
    assert [m["id"] for m in inbox["items"]] == relayed
    assert {m["status_code"] for m in inbox["items"]} == {"01", "03", "04", "05", "06"}
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    timeline = row(view, H41)["statuses"]
    assert [s["code"] for s in timeline] == ["01", "03", "04", "05", "06"]
    assert [s["message_id"] for s in timeline] == relayed
    assert all(s["inconsistent"] is None for s in timeline)
    assert row(view, H14)["statuses"] == []
    status, fetched = await axis.get(sender, f"/v1/inbox/{relayed[0]}")
    assert status == 200 and fetched.startswith(b"<?xml")


async def test_statuses_arriving_out_of_order_are_shown_in_time_order(axis: AxisHarness) -> None:
    """A 06 that arrives before its 03 is kept; the timeline follows Timestamp."""
    sender, a, _, sent = await conversation(axis)
    t = datetime(2026, 11, 23, 8, 0, tzinfo=VN)
    doc = sent["document_id"]
    for code, when in (("06", t + timedelta(hours=5)), ("03", t + timedelta(hours=1))):
        status, _ = await axis.send_status(a, axis.status(a, G22, doc, code, timestamp=when))
        assert status == 201
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    assert [s["code"] for s in row(view, H41)["statuses"]] == ["03", "06"]
    # and a 03 dated after the 06 is kept but flagged
    late = axis.status(a, G22, doc, "03", timestamp=t + timedelta(hours=9), description="lại")
    assert (await axis.send_status(a, late))[0] == 201
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    timeline = row(view, H41)["statuses"]
    assert [s["code"] for s in timeline] == ["03", "06", "03"]
    assert timeline[2]["inconsistent"] and "06" in timeline[2]["inconsistent"]


async def test_take_back_request_goes_to_every_recipient_and_answers_link_to_it(
    axis: AxisHarness,
) -> None:
    """13 from the sender reaches both recipients; 15 from one and 16 from the other link to it."""
    sender, a, b, sent = await conversation(axis)
    doc = sent["document_id"]
    status, request = await axis.send_status(sender, axis.status(sender, H41, doc, "13"))
    assert status == 201, request
    assert {r["organ_id"] for r in request["recipients"]} == {H41, H14}
    for agency in (a, b):
        _, inbox = await axis.get(agency, "/v1/inbox?kind=status")
        assert [m["id"] for m in inbox["items"]] == [request["id"]]
    _, yes = await axis.send_status(a, axis.status(a, G22, doc, "15"))
    _, no = await axis.send_status(b, axis.status(b, G22, doc, "16"))
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    assert [s["code"] for s in row(view, H41)["statuses"]] == ["13", "15"]
    assert [s["code"] for s in row(view, H14)["statuses"]] == ["13", "16"]
    _, req_view = await axis.get(sender, f"/v1/messages/{request['id']}")
    answers = {x["message_id"] for x in req_view["referred_by"] if x["relation"] == "answers"}
    assert answers == {yes["id"], no["id"]}
    _, yes_view = await axis.get(a, f"/v1/messages/{yes['id']}")
    relations = {(x["relation"], x["message_id"]) for x in yes_view["refers_to"]}
    assert relations == {("answers", request["id"]), ("status_of", sent["id"])}


async def test_forbidden_statuses_are_refused_and_nothing_is_stored(axis: AxisHarness) -> None:
    """Wrong party, unknown document, unsigned and tampered statuses get their codes."""
    sender, a, _, sent = await conversation(axis)
    stranger = await axis.register("000.00.00.G17")
    doc = sent["document_id"]
    cases = [
        (stranger, axis.status(stranger, G22, doc, "03"), 403, "not_a_party"),
        (a, axis.status(a, G22, doc, "13"), 403, "not_a_party"),
        (sender, axis.status(sender, G22, doc, "03"), 403, "not_a_party"),
        (a, axis.status(a, G22, f"{G22},2026/01/01,404/NONE", "03"), 422, "unknown_document"),
        (
            a,
            packets.status_xml(H41, G22, doc, "03", signature_placeholder=False),
            400,
            "signature_missing",
        ),
        (
            a,
            axis.status(a, G22, doc, "03", description="Đã nhận").replace(
                "Đã nhận".encode(), "Đã xem".encode()
            ),
            400,
            "signature_invalid",
        ),
        (a, axis.edoc(a, [G22]), 400, "schema_invalid"),
    ]
    for who, body, code, problem_code in cases:
        status, problem = await axis.send_status(who, body)
        assert (status, problem["code"]) == (code, problem_code), problem
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    assert all(r["statuses"] == [] for r in view["recipients"])
    _, inbox = await axis.get(sender, "/v1/inbox")
    assert inbox["items"] == []


async def test_status_from_the_successor_of_a_closed_code(axis: AxisHarness) -> None:
    """A document forwarded from a closed code is answered by its successor, the party."""
    sender = await axis.register(G22)
    successor = await axis.register("000.00.00.H60")
    _, sent = await axis.send(sender, axis.edoc(sender, ["000.00.00.H22"]))
    body = axis.status(successor, G22, sent["document_id"], "01")
    status, answer = await axis.send_status(successor, body)
    assert status == 201, answer
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    [r] = view["recipients"]
    assert r["delivered_to"] == "000.00.00.H60"
    assert [s["code"] for s in r["statuses"]] == ["01"]


async def test_revocation_update_and_replacement_are_linked_both_ways(axis: AxisHarness) -> None:
    """Types 1, 2 and 3 name a document the sender sent; both ends show the link.

    A recipient sees only the links to what it received itself.
    """
    sender, a, b, sent = await conversation(axis)
    doc = sent["document_id"]
    _, update = await axis.send(sender, axis.edoc(sender, [H41], document_id=doc, business_type=2))
    _, revoke = await axis.send(sender, axis.edoc(sender, [H41], document_id=doc, business_type=1))
    new_id = f"{G22},2026/11/24,77/THAY"
    status, replace = await axis.send(
        sender,
        axis.edoc(sender, [H41, H14], document_id=new_id, business_type=3, replaced_ids=[doc]),
    )
    assert status == 201, replace
    _, original = await axis.get(sender, f"/v1/messages/{sent['id']}")
    links = {(x["relation"], x["message_id"]) for x in original["referred_by"]}
    assert links == {
        ("updates", update["id"]),
        ("revokes", revoke["id"]),
        ("replaces", replace["id"]),
    }
    _, newer = await axis.get(a, f"/v1/messages/{replace['id']}")
    assert [(x["relation"], x["message_id"], x["document_id"]) for x in newer["refers_to"]] == [
        ("replaces", sent["id"], doc)
    ]
    _, seen_by_recipient = await axis.get(a, f"/v1/messages/{sent['id']}")
    assert {x["relation"] for x in seen_by_recipient["referred_by"]} == {
        "updates",
        "revokes",
        "replaces",
    }
    _, seen_by_other = await axis.get(b, f"/v1/messages/{sent['id']}")
    assert [x["relation"] for x in seen_by_other["referred_by"]] == ["replaces"]
    _, inbox = await axis.get(a, "/v1/inbox?kind=edoc")
    assert [m["id"] for m in inbox["items"]] == [
        sent["id"],
        update["id"],
        revoke["id"],
        replace["id"],
    ]


async def test_references_to_unknown_documents_are_refused(axis: AxisHarness) -> None:
    """A revocation, update or replacement of a document never sent is unknown_document."""
    sender = await axis.register(G22)
    ghost = f"{G22},2020/01/01,1/GHOST"
    for body in (
        axis.edoc(sender, [H41], document_id=ghost, business_type=1),
        axis.edoc(sender, [H41], document_id=ghost, business_type=2),
        axis.edoc(sender, [H41], business_type=3, replaced_ids=[ghost]),
    ):
        status, problem = await axis.send(sender, body)
        assert status == 422
        assert problem["code"] == "unknown_document"
        assert ghost in problem["detail"]


async def test_overdue_recipients_are_marked_and_filtered(overdue_axis: AxisHarness) -> None:
    """A recipient with no 01/03 past the deadline is overdue; one that reported is not."""
    axis = overdue_axis
    sender, a, _, sent = await conversation(axis)
    _, on_time = await axis.send(sender, axis.edoc(sender, [H41]))
    await axis.send_status(a, axis.status(a, G22, on_time["document_id"], "01"))
    await asyncio.sleep(1.2)
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    assert row(view, H41)["overdue"] is True and row(view, H14)["overdue"] is True
    await axis.send_status(a, axis.status(a, G22, sent["document_id"], "03"))
    _, view = await axis.get(sender, f"/v1/messages/{sent['id']}")
    assert row(view, H41)["overdue"] is False and row(view, H14)["overdue"] is True
    _, overdue = await axis.get(sender, "/v1/outbox?overdue=true")
    assert [m["id"] for m in overdue["items"]] == [sent["id"]]
    _, everything = await axis.get(sender, "/v1/outbox")
    assert len(everything["items"]) == 2
