"""What every Store backend must do for registry administration (issue 5)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from typing import Any

import orjson
import pytest

from axis import timeutil
from axis.errors import InvalidRequest, NotFound
from axis.registry import Agency, Certificate, ExpiringCertificate
from axis.store.protocol import Store
from tests.store.conftest import AGENCIES
from tests.support import pki
from tests.support.rawsql import raw_sql

H01, H02, H03 = (a.organ_id for a in AGENCIES[:3])
UNIT = "000.00.01.H01"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def pin(slot: int) -> Certificate:
    return Certificate.from_pem(pki.identity("p256", slot=slot).cert_pem)


def events(store: Store, type_: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """``(actor, to, detail)`` of the audit events of one type, in order."""
    conn = raw_sql(store)
    rows = conn.execute(
        "SELECT actor, to_id, detail FROM audit_events WHERE type = ? ORDER BY seq", (type_,)
    )
    return [(actor, to, orjson.loads(detail)) for actor, to, detail in rows]


async def test_saving_adds_changes_and_leaves_alone(store: Store) -> None:
    """A new code is added, a different one changed, the same one left without any trace."""
    version = await store.registry_version()
    unit = Agency(UNIT, "Sở Nội vụ", "unit", parent=H01)
    added = await store.save_agency(unit, actor="admin:tok_a")
    assert added.outcome == "added"
    changed = await store.save_agency(replace(unit, name="Sở Nội vụ tỉnh"), actor="admin:tok_a")
    assert changed.outcome == "changed"
    assert changed.changes == {"name": {"from": "Sở Nội vụ", "to": "Sở Nội vụ tỉnh"}}
    assert await store.registry_version() == version + 2
    same = await store.save_agency(replace(unit, name="Sở Nội vụ tỉnh"), actor="admin:tok_b")
    assert same.outcome == "unchanged"
    assert await store.registry_version() == version + 2
    logged = [e for e in events(store, "agency_changed") if e[1] == UNIT]
    assert [(actor, detail["created"]) for actor, _, detail in logged] == [
        ("admin:tok_a", True),
        ("admin:tok_a", False),
    ]


async def test_history_keeps_every_status_change_with_its_actor(store: Store) -> None:
    """Suspending, reactivating and closing an agency each leave a history row."""
    agency = (await store.registry()).agencies[H02]
    await store.save_agency(replace(agency, status="suspended"), actor="admin:a")
    await store.save_agency(agency, actor="admin:b")
    await store.save_agency(replace(agency, status="closed", successor=H03), actor="cli:root")
    history = await store.agency_history(H02)
    assert [(h.actor, h.status, h.successor) for h in history] == [
        ("admin:a", "suspended", None),
        ("admin:b", "active", None),
        ("cli:root", "closed", H03),
    ]
    assert history[-1].changes["successor"] == {"from": None, "to": H03}
    assert (await store.registry()).agencies[H02].status == "closed"


async def test_a_refused_change_writes_nothing(store: Store) -> None:
    """A successor that is closed, or a parent that is missing, is refused and nothing changes."""
    version = await store.registry_version()
    h09 = AGENCIES[-1].organ_id  # closed into H01
    agency = (await store.registry()).agencies[H02]
    with pytest.raises(InvalidRequest, match=r"successor: .*H09 is closed"):
        await store.save_agency(replace(agency, status="closed", successor=h09), actor="t")
    with pytest.raises(InvalidRequest, match="parent"):
        await store.save_agency(
            Agency("000.00.05.H07", "x", "unit", parent="000.00.00.H07"), actor="t"
        )
    assert await store.registry_version() == version
    assert (await store.registry()).agencies[H02].status == "active"
    assert await store.agency_history(H02) == []


async def test_racing_closures_cannot_make_a_cycle(store: Store) -> None:
    """Two administrators closing H02 into H03 and H03 into H02 at once: one is refused."""
    reg = await store.registry()
    results = await asyncio.gather(
        store.save_agency(replace(reg.agencies[H02], status="closed", successor=H03), actor="a"),
        store.save_agency(replace(reg.agencies[H03], status="closed", successor=H02), actor="b"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, InvalidRequest)]
    assert len(refused) == 1, results
    after = await store.registry()
    assert after.forward_chain(H02)[-1] == after.forward_chain(H03)[-1]


async def test_import_batch_may_refer_forward_when_checked_first(store: Store) -> None:
    """save_agencies writes a batch in one go; links are checked against the batch's result."""
    closed = Agency(
        "000.00.00.H07", "Tỉnh cũ", "provincial", status="closed", successor="000.00.00.H08"
    )
    new = Agency("000.00.00.H08", "Tỉnh mới", "provincial")
    done = await store.save_agencies([closed, new], actor="cli:root")
    assert [c.outcome for c in done] == ["added", "added"]
    again = await store.save_agencies([closed, new], actor="cli:root")
    assert [c.outcome for c in again] == ["unchanged", "unchanged"]


async def test_certificates_rotate_one_at_a_time(store: Store) -> None:
    """A second pin is added beside the first, then the first removed; both by digest."""
    old, new = pin(0), pin(1)
    agency = (await store.registry()).agencies[H01]
    await store.save_agency(replace(agency, certificates=(old,)), actor="t")
    assert (await store.add_certificate(H01, new, actor="t")).outcome == "changed"
    assert (await store.add_certificate(H01, new, actor="t")).outcome == "unchanged"
    pins = {c.sha256 for c in (await store.registry()).agencies[H01].certificates}
    assert pins == {old.sha256, new.sha256}
    change = await store.remove_certificate(H01, old.sha256, actor="t")
    assert change.changes["certificates"]["to"] == [new.sha256]
    pins = {c.sha256 for c in (await store.registry()).agencies[H01].certificates}
    assert pins == {new.sha256}
    with pytest.raises(NotFound, match="not pinned"):
        await store.remove_certificate(H01, old.sha256, actor="t")
    with pytest.raises(NotFound, match="not registered"):
        await store.add_certificate("000.00.00.H77", new, actor="t")


async def test_touch_token_records_last_use_at_most_once_a_minute(store: Store) -> None:
    """last_used_at is set on first use, kept within a minute, moved on after it."""
    await store.issue_token("tok_t", "t" * 64, "agency", H01, actor="test")
    await store.touch_token("tok_t", NOW)
    [info] = await store.list_tokens(H01)
    assert info.last_used_at == timeutil.fmt(NOW)
    await store.touch_token("tok_t", NOW + dt.timedelta(seconds=30))
    [info] = await store.list_tokens(H01)
    assert info.last_used_at == timeutil.fmt(NOW)
    later = NOW + dt.timedelta(seconds=61)
    await store.touch_token("tok_t", later)
    [info] = await store.list_tokens(H01)
    assert info.last_used_at == timeutil.fmt(later)


async def test_expiring_certificates_are_reported_once_a_day(store: Store) -> None:
    """Each expiring certificate gets one audit event a day, however often it is reported."""
    now = timeutil.now()  # "expired" is judged at the time of the report
    a = ExpiringCertificate(H01, "a" * 64, now + dt.timedelta(days=3))
    b = ExpiringCertificate(H02, "b" * 64, now - dt.timedelta(days=1))
    assert await store.report_expiring([a], day="2026-11-23", actor="axis") == [a]
    assert await store.report_expiring([a], day="2026-11-23", actor="axis") == []
    assert await store.report_expiring([a, b], day="2026-11-23", actor="axis") == [b]
    assert await store.expiry_reported("2026-11-23") == {(H01, "a" * 64), (H02, "b" * 64)}
    assert await store.report_expiring([a], day="2026-11-24", actor="axis") == [a]
    reported = events(store, "certificate_expiring")
    assert [(to, d["day"], d["expired"]) for _, to, d in reported] == [
        (H01, "2026-11-23", False),
        (H02, "2026-11-23", True),
        (H01, "2026-11-24", False),
    ]
