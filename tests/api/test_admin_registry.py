"""Administering the registry over HTTP: codes, status changes, successors, the directory."""

from __future__ import annotations

from typing import Any

from tests.support.harness import AxisHarness
from tests.support.rawsql import raw_sql

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"  # Nghệ An, active in the shipped registry
H26 = "000.00.00.H26"  # Hà Nội
H22 = "000.00.00.H22"  # Hà Giang, closed into H60 by the 2025 merger
H60 = "000.00.00.H60"


async def put(axis: AxisHarness, organ_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with axis.session.put(
        f"{axis.url}/v1/admin/agencies/{organ_id}", json=body, headers=axis.admin
    ) as resp:
        return resp.status, await resp.json()


async def test_level_2_unit_registers_under_its_province_and_exchanges_mail(
    axis: AxisHarness,
) -> None:
    """A level-2 unit under a registered province gets its parent derived and sends mail."""
    unit = await axis.register("000.00.05.H41", name="Sở Y tế tỉnh Nghệ An", kind="unit")
    status, shown = await axis.get(axis.admin, "/v1/admin/agencies/000.00.05.H41")
    assert status == 200
    assert shown["parent"] == H41 and shown["kind"] == "unit"
    assert [h["changes"]["status"]["to"] for h in shown["history"]] == ["active"]
    level3 = await axis.register("000.02.05.H41", kind="unit")
    receiver = await axis.register(G22)
    status, answer = await axis.send(unit, axis.edoc(unit, [G22, level3.organ_id]))
    assert status == 201, answer
    _, inbox = await axis.get(receiver, "/v1/inbox")
    assert [m["from"] for m in inbox["items"]] == ["000.00.05.H41"]


async def test_a_field_code_that_skips_a_level_registers_under_the_next_one_up(
    axis: AxisHarness,
) -> None:
    """002.00.20.H13, the sender of the sample edoc.edxml, sits under 000.00.20.H13."""
    await axis.register("000.00.20.H13", kind="unit")
    unit = await axis.register("002.00.20.H13", kind="unit")
    status, shown = await axis.get(axis.admin, "/v1/admin/agencies/002.00.20.H13")
    assert (status, shown["parent"]) == (200, "000.00.20.H13")
    receiver = await axis.register(G22)
    status, answer = await axis.send(unit, axis.edoc(unit, [G22]))
    assert status == 201, answer
    _, inbox = await axis.get(receiver, "/v1/inbox")
    assert [m["from"] for m in inbox["items"]] == ["002.00.20.H13"]


async def test_codes_are_checked_for_form_and_parent(axis: AxisHarness) -> None:
    """Malformed codes, wrong or unregistered parents and unknown fields are invalid_request."""
    cases = [
        ("05.00.H41", {"name": "x"}, "organ_id"),
        ("000.00.05.H41 ", {"name": "x"}, "organ_id"),
        ("000.03.05.H41", {"name": "x"}, "parent: 000.00.05.H41 is not registered"),
        ("000.00.05.H41", {"name": "x", "parent": G22}, "parent: 000.00.05.H41 derives"),
        ("000.00.05.H41", {"name": "x", "sucessor": H60}, "sucessor"),
    ]
    for organ_id, body, says in cases:
        status, problem = await put(axis, organ_id, body)
        assert status == 400, (organ_id, problem)
        assert problem["code"] == "invalid_request"
        assert says in problem["detail"], problem


async def test_suspend_refuses_tokens_and_mail_then_reactivate_restores_both(
    axis: AxisHarness,
) -> None:
    """Suspended: its token is 403 and mail to it recipient_unavailable; reactivated: both work."""
    h41 = await axis.register(H41)
    sender = await axis.register(G22)
    status, _ = await put(
        axis, H41, {"name": "Nghệ An", "kind": "provincial", "status": "suspended"}
    )
    assert status == 200
    status, problem = await axis.get(h41, "/v1/inbox")
    assert (status, problem["code"]) == (403, "forbidden")
    status, problem = await axis.send(sender, axis.edoc(sender, [H41]))
    assert (status, problem["code"]) == (422, "recipient_unavailable")
    assert H41 in problem["detail"]
    status, _ = await put(axis, H41, {"name": "Nghệ An", "kind": "provincial"})
    assert status == 200
    status, answer = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201, answer
    status, inbox = await axis.get(h41, "/v1/inbox")
    assert status == 200 and [m["id"] for m in inbox["items"]] == [answer["id"]]
    # the certificates were kept through the status changes: it can still send
    status, answer = await axis.send(h41, axis.edoc(h41, [G22]))
    assert status == 201, answer
    _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{H41}")
    assert [h["status"] for h in shown["history"]][-3:] == ["active", "suspended", "active"]


async def test_closed_province_forwards_to_its_successor_along_the_chain(
    axis: AxisHarness,
) -> None:
    """Mail to a closed code goes to its successor, and on along a chain of closures."""
    sender = await axis.register(G22)
    h60 = await axis.register(H60)
    old = await axis.register(H41)
    status, _ = await put(axis, H41, {"name": "Nghệ An (cũ)", "status": "closed", "successor": H60})
    assert status == 200
    status, answer = await axis.send(sender, axis.edoc(sender, [H41]))
    assert status == 201, answer
    assert answer["recipients"][0]["organ_id"] == H41
    assert answer["recipients"][0]["delivered_to"] == H60
    _, inbox = await axis.get(h60, "/v1/inbox")
    assert [m["id"] for m in inbox["items"]] == [answer["id"]]
    status, _ = await axis.get(old, "/v1/inbox")
    assert status == 403  # a closed agency's tokens are refused too
    # H60 closes in turn into H26: mail to H41 (and to H22, closed into H60) ends at H26
    await axis.register(H26)
    status, _ = await put(axis, H60, {"name": "Tuyên Quang", "status": "closed", "successor": H26})
    assert status == 200
    status, answer = await axis.send(sender, axis.edoc(sender, [H41, H22]))
    assert status == 201, answer
    assert [r["delivered_to"] for r in answer["recipients"]] == [H26, H26]
    _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{H41}")
    closing = shown["history"][-1]
    assert closing["status"] == "closed" and closing["successor"] == H60
    assert closing["actor"].startswith("admin:")


async def test_cycles_and_closed_or_suspended_successors_are_refused(axis: AxisHarness) -> None:
    """A successor that loops back, is closed, suspended or unknown is refused, nothing saved."""
    await put(axis, H41, {"name": "Nghệ An", "status": "closed", "successor": H60})
    status, problem = await put(
        axis, H60, {"name": "Tuyên Quang", "status": "closed", "successor": H41}
    )
    assert status == 400
    assert "cycle" in problem["detail"] and H41 in problem["detail"]
    status, problem = await put(axis, G22, {"name": "VPCP", "status": "closed", "successor": H22})
    assert status == 400
    assert f"{H22} is closed" in problem["detail"] and H60 in problem["detail"]
    await put(axis, H26, {"name": "Hà Nội", "status": "suspended"})
    status, problem = await put(axis, G22, {"name": "VPCP", "status": "closed", "successor": H26})
    assert status == 400 and "suspended" in problem["detail"]
    status, problem = await put(
        axis, G22, {"name": "VPCP", "status": "closed", "successor": "000.00.00.Z98"}
    )
    assert status == 400 and "not a registered agency" in problem["detail"]
    _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{H60}")
    assert shown["status"] == "active"
    _, shown = await axis.get(axis.admin, f"/v1/admin/agencies/{G22}")
    assert shown["status"] == "active" and shown["history"] == []


async def test_every_change_is_an_audit_event_with_its_actor(axis: AxisHarness) -> None:
    """Each PUT that changes something leaves an agency_changed event naming the admin."""
    await axis.register(H41)
    body = {"name": "Nghệ An", "kind": "provincial", "status": "suspended"}
    await put(axis, H41, body)
    status, _ = await put(axis, H41, body)  # the same again: no change, no event
    assert status == 200
    conn = raw_sql(axis.store)
    rows = conn.execute(
        "SELECT actor, detail FROM audit_events WHERE type = 'agency_changed' AND to_id = ?"
        " ORDER BY seq",
        (H41,),
    ).fetchall()
    assert len(rows) == 2
    assert all(actor.startswith("admin:tok_") for actor, _ in rows)
    assert '"status":{"from":"active","to":"suspended"}' in rows[-1][1]


async def test_directory_search_ignores_diacritics_and_case(axis: AxisHarness) -> None:
    """q=ha noi finds Hà Nội; codes match in any case; status and kind filter."""
    for q in ("ha noi", "HÀ NỘI", "Hà Nội", "h26"):
        status, page = await axis.get(axis.admin, f"/v1/admin/agencies?q={q}")
        assert status == 200
        assert [a["organ_id"] for a in page["items"]] == [H26], q
    _, page = await axis.get(axis.admin, "/v1/admin/agencies?q=da%20nang&kind=provincial")
    assert [a["name"] for a in page["items"]] == ["Ủy ban nhân dân thành phố Đà Nẵng"]
    _, page = await axis.get(axis.admin, "/v1/admin/agencies?status=closed&limit=1000")
    assert len(page["items"]) == 29 and all(a["successor"] for a in page["items"])


async def test_admin_directory_pages_with_a_cursor(axis: AxisHarness) -> None:
    """limit and cursor walk the whole directory once, in code order, ending with null."""
    seen: list[str] = []
    after = ""  # the first page has no cursor (an empty one is refused)
    pages = 0
    while True:
        status, page = await axis.get(axis.admin, f"/v1/admin/agencies?limit=50{after}")
        assert status == 200
        assert len(page["items"]) <= 50
        seen += [a["organ_id"] for a in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        after = f"&cursor={page['next_cursor']}"
    assert pages == 4
    assert seen == sorted(set(seen)) and len(seen) == 158
    for bad in ("limit=0", "limit=1001", "cursor=xyz", "status=gone"):
        status, problem = await axis.get(axis.admin, f"/v1/admin/agencies?{bad}")
        assert status == 400 and problem["code"] == "invalid_request", bad
        assert bad.split("=")[0] in problem["detail"]
