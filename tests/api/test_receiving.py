"""Receiving: inbox, long-poll, fetch with Repr-Digest, ack; the sender's view and outbox."""

from __future__ import annotations

import asyncio
import base64
import hashlib

from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
H14 = "000.00.00.H14"


async def test_inbox_lists_oldest_first_and_fetch_returns_exact_bytes(axis: AxisHarness) -> None:
    """The recipient lists its mail oldest first and fetches the signed bytes unchanged."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    bodies = [axis.edoc(sender, [H41]) for _ in range(3)]
    ids = []
    for body in bodies:
        status, answer = await axis.send(sender, body)
        assert status == 201
        ids.append(answer["id"])
    status, inbox = await axis.get(receiver, "/v1/inbox")
    assert status == 200
    assert [m["id"] for m in inbox["items"]] == ids
    assert inbox["next_cursor"] is None
    item = inbox["items"][0]
    assert item["from"] == G22 and item["kind"] == "edoc" and item["status_code"] is None
    async with axis.session.get(f"{axis.url}/v1/inbox/{ids[0]}", headers=receiver.auth) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/xml"
        data = await resp.read()
        assert data == bodies[0]
        digest = base64.b64encode(hashlib.sha256(bodies[0]).digest()).decode()
        assert resp.headers["Repr-Digest"] == f"sha-256=:{digest}:"
        assert resp.headers["X-Axis-Message-Id"] == ids[0]
        assert resp.headers["X-Axis-From"] == G22
        assert resp.headers["X-Axis-Kind"] == "edoc"


async def test_inbox_pages_with_a_cursor(axis: AxisHarness) -> None:
    """Pages of `limit` items chain through next_cursor and end with null."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    sent = []
    for _ in range(5):
        _, answer = await axis.send(sender, axis.edoc(sender, [H41]))
        sent.append(answer["id"])
    seen: list[str] = []
    path = "/v1/inbox?limit=2"
    while True:
        status, page = await axis.get(receiver, path)
        assert status == 200
        seen += [m["id"] for m in page["items"]]
        if page["next_cursor"] is None:
            break
        path = f"/v1/inbox?limit=2&cursor={page['next_cursor']}"
    assert seen == sent


async def test_fetch_then_ack_moves_the_delivery_and_empties_the_inbox(axis: AxisHarness) -> None:
    """queued → fetched → acked, visible to the sender; acked mail leaves the inbox."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    _, answer = await axis.send(sender, axis.edoc(sender, [H41, H14]))
    mid = answer["id"]
    await axis.get(receiver, f"/v1/inbox/{mid}")
    _, view = await axis.get(sender, f"/v1/messages/{mid}")
    states = {r["organ_id"]: r["state"] for r in view["recipients"]}
    assert states == {H41: "fetched", H14: "queued"}
    status, acked = await axis.post_json(receiver, f"/v1/inbox/{mid}/ack", {"result": "done"})
    assert status == 200 and acked["state"] == "acked"
    status, again = await axis.post_json(receiver, f"/v1/inbox/{mid}/ack", {"result": "done"})
    assert status == 200 and again["state"] == "acked"
    status, problem = await axis.post_json(receiver, f"/v1/inbox/{mid}/ack", {"result": "fail"})
    assert status == 409 and problem["code"] == "duplicate_conflict"
    _, inbox = await axis.get(receiver, "/v1/inbox")
    assert inbox["items"] == []
    _, view = await axis.get(sender, f"/v1/messages/{mid}")
    row = next(r for r in view["recipients"] if r["organ_id"] == H41)
    assert row["state"] == "acked" and row["attempts"] == 0 and row["statuses"] == []


async def test_fail_ack_shows_the_reason_to_the_sender(axis: AxisHarness) -> None:
    """A recipient's fail ack is visible to the sender with its reason."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    _, answer = await axis.send(sender, axis.edoc(sender, [H41]))
    status, _ = await axis.post_json(
        receiver, f"/v1/inbox/{answer['id']}/ack", {"result": "fail", "reason": "không đọc được"}
    )
    assert status == 200
    _, view = await axis.get(sender, f"/v1/messages/{answer['id']}")
    [row] = view["recipients"]
    assert row["state"] == "failed" and row["last_error"] == "không đọc được"


async def test_recipients_see_only_their_row_and_strangers_nothing(axis: AxisHarness) -> None:
    """A recipient sees its own row of a message; an unrelated agency gets 404."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    stranger = await axis.register("000.00.00.G17")
    _, answer = await axis.send(sender, axis.edoc(sender, [H41, H14]))
    mid = answer["id"]
    status, view = await axis.get(receiver, f"/v1/messages/{mid}")
    assert status == 200 and [r["organ_id"] for r in view["recipients"]] == [H41]
    for path in (f"/v1/messages/{mid}", f"/v1/inbox/{mid}", f"/v1/messages/{mid}/receipt"):
        status, problem = await axis.get(stranger, path)
        assert status == 404, path
        assert problem["code"] == "not_found"
    status, _ = await axis.post_json(stranger, f"/v1/inbox/{mid}/ack", {"result": "done"})
    assert status == 404


async def test_long_poll_wakes_when_mail_arrives(axis: AxisHarness) -> None:
    """An empty inbox with wait= answers as soon as a message for it is accepted."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    poll = asyncio.create_task(axis.get(receiver, "/v1/inbox?wait=30"))
    await asyncio.sleep(0.2)
    assert not poll.done()
    _, answer = await axis.send(sender, axis.edoc(sender, [H41]))
    status, inbox = await asyncio.wait_for(poll, 10)
    assert status == 200
    assert [m["id"] for m in inbox["items"]] == [answer["id"]]


async def test_long_poll_times_out_empty(axis: AxisHarness) -> None:
    """wait= on an empty inbox answers an empty page once the wait is over."""
    receiver = await axis.register(H41)
    status, inbox = await axis.get(receiver, "/v1/inbox?wait=0.3")
    assert status == 200 and inbox == {"items": [], "next_cursor": None}


async def test_bad_query_parameters_name_the_parameter(axis: AxisHarness) -> None:
    """limit above 1000, wait above 60 or an unknown kind are invalid_request naming it."""
    receiver = await axis.register(H41)
    for query, name in (("limit=1001", "limit"), ("wait=61", "wait"), ("kind=fax", "kind")):
        status, problem = await axis.get(receiver, f"/v1/inbox?{query}")
        assert status == 400 and problem["code"] == "invalid_request"
        assert problem["detail"].startswith(name)


async def test_outbox_lists_newest_first_with_filters(axis: AxisHarness) -> None:
    """The sender's outbox is newest first and filters by document_id."""
    sender = await axis.register(G22)
    ids = []
    doc_ids = []
    for i in range(3):
        doc_id = f"{G22},2026/11/23,{100 + i}/OUT"
        doc_ids.append(doc_id)
        _, answer = await axis.send(sender, axis.edoc(sender, [H41], document_id=doc_id))
        ids.append(answer["id"])
    _, outbox = await axis.get(sender, "/v1/outbox")
    assert [m["id"] for m in outbox["items"]] == ids[::-1]
    assert outbox["items"][0]["recipients"] == [{"organ_id": H41, "state": "queued"}]
    _, only = await axis.get(sender, f"/v1/outbox?document_id={doc_ids[1]}")
    assert [m["id"] for m in only["items"]] == [ids[1]]
    _, later = await axis.get(sender, "/v1/outbox?since=2999-01-01T00:00:00%2B00:00")
    assert later["items"] == []


async def test_directory_lists_and_filters_agencies(axis: AxisHarness) -> None:
    """GET /v1/agencies pages the shipped registry and filters by status, kind and q."""
    receiver = await axis.register(H41)
    _, closed = await axis.get(receiver, "/v1/agencies?status=closed&limit=1000")
    assert len(closed["items"]) == 29
    assert all(a["successor"] for a in closed["items"])
    _, provinces = await axis.get(receiver, "/v1/agencies?kind=provincial&limit=1000")
    assert len(provinces["items"]) == 63
    _, found = await axis.get(receiver, "/v1/agencies?q=G22")
    assert [a["organ_id"] for a in found["items"]] == ["000.00.00.G22"]
    seen = []
    path = "/v1/agencies?limit=50"
    while path:
        _, page = await axis.get(receiver, path)
        seen += page["items"]
        path = f"/v1/agencies?limit=50&cursor={page['next_cursor']}" if page["next_cursor"] else ""
    assert len(seen) == 158


async def test_forged_cursors_and_out_of_range_times_are_400_not_500(axis: AxisHarness) -> None:
    """A cursor or number past what the store holds is 400; a time off the calendar, not 500."""
    sender = await axis.register(G22)
    huge = base64.urlsafe_b64encode(b"s" + b"9" * 30).decode().rstrip("=")
    for path in (f"/v1/inbox?cursor={huge}", f"/v1/outbox?cursor={huge}"):
        status, problem = await axis.get(sender, path)
        assert (status, problem["code"]) == (400, "invalid_request"), path
    # a bound off the calendar by its offset is before everything: a full page, not an error
    status, page = await axis.get(sender, "/v1/outbox?since=0001-01-01T00:00:00%2B01:00")
    assert status == 200 and page["items"] == []
    status, problem = await axis.get(axis.admin, "/v1/audit/checkpoints/99999999999999999999999")
    assert (status, problem["code"]) == (400, "invalid_request")


async def test_an_ack_reason_is_bounded(axis: AxisHarness) -> None:
    """A reason over 2,000 characters is refused, so it cannot bloat the log and the view."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    _, answer = await axis.send(sender, axis.edoc(sender, [H41]))
    path = f"/v1/inbox/{answer['id']}/ack"
    status, problem = await axis.post_json(receiver, path, {"result": "fail", "reason": "x" * 2001})
    assert (status, problem["code"]) == (400, "invalid_request")
    assert "reason" in problem["detail"]
    status, _ = await axis.post_json(receiver, path, {"result": "fail", "reason": "x" * 2000})
    assert status == 200
