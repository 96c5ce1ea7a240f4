"""Query parameters are read strictly: nothing asked is dropped silently (issue 16, 6–7)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from axis.lifecycle import VIETNAM
from axis.model import EVENT_TYPES
from tests.support.harness import AxisHarness

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"

# (who, path) of every endpoint that filters or pages; who: "agency", "admin" or "auditor"
LISTINGS = [
    ("agency", "/v1/outbox"),
    ("agency", "/v1/inbox"),
    ("agency", "/v1/agencies"),
    ("admin", "/v1/admin/agencies"),
    ("admin", "/v1/admin/tokens"),
    ("admin", "/v1/admin/deliveries"),
    ("auditor", "/v1/audit/events"),
    ("auditor", "/v1/audit/checkpoints"),
]
EMPTIES = [
    ("/v1/outbox", "until"),
    ("/v1/outbox", "since"),
    ("/v1/outbox", "cursor"),
    ("/v1/outbox", "document_id"),
    ("/v1/outbox", "overdue"),
    ("/v1/inbox", "kind"),
    ("/v1/inbox", "wait"),
    ("/v1/inbox", "cursor"),
    ("/v1/agencies", "status"),
    ("/v1/agencies", "q"),
    ("/v1/admin/agencies", "status"),
    ("/v1/admin/agencies", "kind"),
    ("/v1/admin/tokens", "revoked"),
    ("/v1/admin/tokens", "role"),
    ("/v1/admin/deliveries", "state"),
    ("/v1/admin/deliveries", "organ_id"),
    ("/v1/audit/events", "type"),
    ("/v1/audit/events", "since"),
    ("/v1/audit/events", "until"),
    ("/v1/audit/events", "limit"),
    ("/v1/audit/export", "format"),
]


async def _who(axis: AxisHarness, role: str) -> dict[str, str]:
    if role == "agency":
        return (await axis.register(G22)).auth
    return axis.admin  # an admin token reads the audit log as an auditor does


async def _refused(axis: AxisHarness, who: dict[str, str], path: str) -> str:
    status, problem = await axis.get(who, path)
    assert status == 400, (path, problem)
    assert problem["code"] == "invalid_request", (path, problem)
    return str(problem["detail"])


@pytest.mark.parametrize(("role", "path"), LISTINGS, ids=[p for _, p in LISTINGS])
async def test_an_unknown_parameter_is_refused_naming_it(
    axis: AxisHarness, role: str, path: str
) -> None:
    """`page_size` (or any name an endpoint does not take) is 400 naming it and the known
    ones, not a full page that ignored it."""
    who = await _who(axis, role)
    detail = await _refused(axis, who, f"{path}?page_size=10")
    assert detail.startswith("page_size: not a parameter of GET ") and "limit" in detail
    assert await _refused(axis, who, f"{path}?limit=5&limit=6")  # twice: which one?


@pytest.mark.parametrize(("path", "name"), EMPTIES, ids=[f"{p}?{n}=" for p, n in EMPTIES])
async def test_an_empty_value_is_refused_naming_its_parameter(
    axis: AxisHarness, path: str, name: str
) -> None:
    """`?until=` and its kin are 400 naming the parameter: a dropped filter would answer
    another question than the one asked."""
    who = await _who(axis, "agency" if path in ("/v1/outbox", "/v1/inbox") else "admin")
    detail = await _refused(axis, who, f"{path}?{name}=")
    assert detail.startswith(f"{name}: empty")


async def test_endpoints_without_parameters_refuse_any(axis: AxisHarness) -> None:
    """A fetch, a message view, the audit verify and /healthz take no parameters at all."""
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    _, sent = await axis.send(sender, axis.edoc(sender, [H41]))
    for who, path in [
        (receiver.auth, f"/v1/inbox/{sent['id']}?x=1"),
        (sender.auth, f"/v1/messages/{sent['id']}?verbose=true"),
        (axis.admin, "/v1/audit/verify?deep=1"),
        ({}, "/healthz?probe=lb"),
    ]:
        assert "not a parameter" in await _refused(axis, who, path)


async def test_a_misspelt_event_type_is_refused_listing_the_known_ones(axis: AxisHarness) -> None:
    """`type=message_recieved` would match nothing and say nothing: 400 with every type."""
    for path in ("/v1/audit/events", "/v1/audit/export"):
        detail = await _refused(axis, axis.admin, f"{path}?type=message_recieved")
        assert "message_recieved" in detail
        assert all(t in detail for t in EVENT_TYPES)
    status, _ = await axis.get(axis.admin, "/v1/audit/events?type=message_received")
    assert status == 200


@pytest.mark.parametrize(
    "value", ["+5", "%EF%BC%95", "%205", "5.0", "0x10", "-1", "1e2", "99999999999999999999999"]
)
async def test_limit_is_ascii_digits_only(axis: AxisHarness, value: str) -> None:
    """`limit=+5`, a fullwidth ５, a space, a fraction: 400 naming limit, never read as 5."""
    detail = await _refused(axis, axis.admin, f"/v1/audit/events?limit={value}")
    assert detail.startswith("limit: an integer from 1 to 1000")


@pytest.mark.parametrize(
    "value", ["+1", "nan", "inf", "%EF%BC%91", "0x1", "61", "1e2", "1_0", ".5"]
)
async def test_wait_is_a_json_number_of_seconds(axis: AxisHarness, value: str) -> None:
    """wait takes 0 to 60 written as a JSON number, not whatever Python's float would take."""
    receiver = await axis.register(H41)
    assert (await _refused(axis, receiver.auth, f"/v1/inbox?wait={value}")).startswith("wait:")


@pytest.mark.parametrize("seq", ["+5", "-1", "%EF%BC%95", "5.0", "1e3", "latests"])
async def test_a_checkpoint_number_is_digits_or_latest(axis: AxisHarness, seq: str) -> None:
    """`/v1/audit/checkpoints/+5` is 400 (not a 404 for checkpoint 5 nor a crash)."""
    detail = await _refused(axis, axis.admin, f"/v1/audit/checkpoints/{seq}")
    assert detail.startswith("seq: an event number")


async def test_times_take_lower_case_t_and_z_and_a_date_alone_is_a_vietnam_day(
    axis: AxisHarness,
) -> None:
    """RFC 3339 allows `t` and `z`; `since=2026-12-04` is 2026-12-04T00:00:00+07:00."""
    sender = await axis.register(G22)
    await axis.register(H41)
    _, sent = await axis.send(sender, axis.edoc(sender, [H41]))
    received = datetime.fromisoformat(sent["received_at"])
    day = received.astimezone(VIETNAM).date()
    for query, listed in [
        (f"since={day.isoformat()}", True),  # the start of its Vietnam day: before it
        (f"until={day.isoformat()}", False),
        (f"since={received.strftime('%Y-%m-%dt%H:%M:%S.%fz')}", True),
        (f"since={received.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')}%2B00:00", True),
        (f"until={received.astimezone(VIETNAM).strftime('%Y-%m-%dT%H:%M:%S.%f')}+07:00", False),
    ]:
        status, page = await axis.get(sender, f"/v1/outbox?{query}")
        assert status == 200, (query, page)
        assert ([m["id"] for m in page["items"]] == [sent["id"]]) is listed, query


async def test_a_time_without_offset_is_refused_with_a_hint_that_is_accepted(
    axis: AxisHarness,
) -> None:
    """The hint for a naive time (and for a date with an offset) is itself a good value."""
    sender = await axis.register(G22)
    for raw in ("2026-12-04T10:00:00", "2026-12-04%2B07:00", "2026-12-04T10:00%2B07:00"):
        detail = await _refused(axis, sender.auth, f"/v1/outbox?since={raw}")
        hints = [w.strip(",()") for w in detail.split("e.g. ", 1)[1].split() if w[:1].isdigit()]
        assert hints, detail
        for hint in hints:
            status, _ = await axis.get(sender, f"/v1/outbox?since={hint.replace('+', '%2B')}")
            assert status == 200, (raw, hint)


async def test_a_nul_in_a_query_value_is_refused(axis: AxisHarness) -> None:
    """A NUL (which PostgreSQL cannot store) in any parameter is 400 naming it, never a 5xx
    of the store."""
    for value in ("%00", "a%00b"):
        status, problem = await axis.get(axis.admin, f"/v1/admin/deliveries?organ_id={value}")
        assert status == 400 and problem["parameter"] == "organ_id", problem


async def test_a_nul_in_a_json_body_is_refused(axis: AxisHarness) -> None:
    """A JSON string holding NUL (which PostgreSQL cannot store) is 400, never a 5xx."""
    async with axis.session.put(
        f"{axis.url}/v1/admin/agencies/000.00.00.G22",
        data=b'{"name": "A\\u0000B", "kind": "central"}',
        headers={**axis.admin, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        assert "NUL" in (await resp.json())["detail"]
