"""What every Store backend must do for the console: sessions, the overview, searches newest
first, the deliveries and audit pages, a body downloaded on the record."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest

from axis import signing, timeutil, tokens
from axis.model import AuditFilter, MessageQuery, NewStatus, Principal
from axis.store import backend
from axis.store.protocol import Store
from tests.store.conftest import AGENCIES
from tests.store.test_audit_contract import sign_head
from tests.store.test_contract import message
from tests.store.test_push_contract import later
from tests.support.rawsql import raw_sql

H01, H02, H03, H04 = (a.organ_id for a in AGENCIES[:4])
WORKER = "test-worker"


@pytest.fixture
def axis_key(axis_key_pair: tuple[bytes, bytes]) -> signing.AxisKey:
    return signing.AxisKey.load(*axis_key_pair)


async def admin(store: Store) -> Principal:
    token_id, _, token_hash = tokens.generate()
    await store.issue_token(token_id, token_hash, "admin", None, actor="test")
    return Principal(token_id, "admin", None)


def events(store: Store, type_: str) -> list[tuple[str, dict[str, object]]]:
    rows = raw_sql(store).execute(
        "SELECT actor, detail FROM audit_events WHERE type = ? ORDER BY seq", (type_,)
    )
    return [(actor, orjson.loads(detail)) for actor, detail in rows]


async def test_a_session_is_found_by_its_hash_until_ended_and_names_its_token(
    store: Store,
) -> None:
    """Sign-in and sign-out are audit events naming the token; a revoked token ends it."""
    who = await admin(store)
    session = await store.create_session("h" * 64, who, idle=1800, lifetime=43200)
    found = await store.console_session("h" * 64)
    assert found == session and found.principal == who
    assert await store.console_session("x" * 64) is None
    await store.touch_session("h" * 64, timeutil.now() + timedelta(seconds=5), every=0)
    touched = await store.console_session("h" * 64)
    assert touched is not None and touched.last_seen_at > session.last_seen_at
    ended = await store.end_session("h" * 64, reason="signed_out")
    assert ended is not None and await store.console_session("h" * 64) is None
    assert await store.end_session("h" * 64, reason="signed_out") is None  # once only
    [(actor, signed_in)] = events(store, "console_signed_in")
    [(_, signed_out)] = events(store, "console_signed_out")
    assert actor == who.actor == f"admin:{who.token_id}"
    assert signed_in == {"token_id": who.token_id, "role": "admin", "session": "h" * 16}
    assert signed_out["reason"] == "signed_out" and signed_out["session"] == "h" * 16
    await store.create_session("k" * 64, who, idle=1800, lifetime=43200)
    await store.revoke_token(who.token_id, actor="test")
    assert await store.console_session("k" * 64) is None


async def test_expired_sessions_are_cleared_when_another_starts(store: Store) -> None:
    """Sessions past their idle time do not pile up in the store."""
    who = await admin(store)
    await store.create_session("a" * 64, who, idle=1800, lifetime=43200)
    stale = timeutil.fmt(timeutil.now() - timedelta(hours=1))
    raw_sql(store).execute("UPDATE console_sessions SET last_seen_at = ?", (stale,))
    session = await store.console_session("a" * 64)
    assert session is not None and session.ended(timeutil.now(), idle=1800, lifetime=43200)
    await store.create_session("b" * 64, who, idle=1800, lifetime=43200)
    assert await store.console_session("a" * 64) is None
    assert await store.console_session("b" * 64) is not None


async def test_overview_counts_documents_deliveries_and_failing_endpoints(store: Store) -> None:
    """Documents per hour, open deliveries by state, failed ones, pushes failing by agency."""
    first = (await store.accept(message(to=(H02, H03)))).record
    await store.accept(message(to=(H02,)))
    since = timeutil.now() - timedelta(hours=1)
    [(hour, count)] = await store.documents_per_hour(since)
    assert count == 2 and hour == first.received_at[:13]
    await store.ack(first.id, H03, "fail", "unreadable", actor="agency:H03")
    counts = await store.delivery_counts()
    assert counts.open["queued"] == 2 and counts.failed == 1 and counts.total == 3
    assert counts.acked == 0
    assert await store.failing_endpoints(limit=10) == []
    jobs = await store.claim_due([H02], limit=10, lease_seconds=60, worker_id=WORKER)
    for job in jobs:
        await store.record_attempt(job, later())
    [failing] = await store.failing_endpoints(limit=10)
    assert failing.organ_id == H02 and failing.waiting == 2
    assert failing.last_error == "HTTP 503: busy" and failing.since is not None
    assert await store.failing_endpoint(H02) == failing
    assert await store.failing_endpoint(H03) is None
    assert (await store.delivery_counts()).open["retrying"] == 2


async def test_overdue_recipients_are_those_without_a_receipt(store: Store) -> None:
    """A recipient that sent 01 is not overdue; one that sent nothing is."""
    sent = (await store.accept(message(to=(H02, H03)))).record
    status = replace(
        message(from_id=H02, to=(H01,)),
        kind="status",
        document_id=sent.document_id,
        business_type=None,
        status_code="01",
        statuses=(NewStatus(H01, sent.document_id, H02, "01", timeutil.fmt(timeutil.now())),),
    )
    await store.accept(status)
    now = timeutil.now()
    overdue = await store.overdue_recipients(
        since=now - timedelta(days=1), before=now + timedelta(seconds=1), limit=10
    )
    assert [(o.message_id, o.delivered_to) for o in overdue] == [(sent.id, H03)]
    page = await store.search_messages(
        MessageQuery(state="overdue", overdue_before=now + timedelta(seconds=1)),
        cursor=None,
        limit=10,
    )
    assert [r.id for r in page.items] == [sent.id]


async def test_search_goes_by_id_document_sender_recipient_state_and_time(store: Store) -> None:
    """Each criterion finds what it says, newest first, and criteria combine (and)."""
    a = (await store.accept(message(from_id=H01, to=(H02,)))).record
    b = (await store.accept(message(from_id=H01, to=(H03,)))).record
    c = (await store.accept(message(from_id=H04, to=(H02,), document_id=a.document_id))).record
    await store.ack(b.id, H03, "done", None, actor="agency:H03")

    async def ids_of(**criteria: object) -> list[str]:
        page = await store.search_messages(MessageQuery(**criteria), cursor=None, limit=10)  # type: ignore[arg-type]
        return [row.id for row in page.items]

    assert await ids_of() == [c.id, b.id, a.id]
    assert await ids_of(message_id=b.id) == [b.id]
    assert await ids_of(message_id=b.id, to_id=H02) == []
    assert await ids_of(document_id=a.document_id) == [c.id, a.id]
    assert await ids_of(document_id=a.document_id, from_id=H04) == [c.id]
    assert await ids_of(from_id=H01) == [b.id, a.id]
    assert await ids_of(to_id=H02) == [c.id, a.id]
    assert await ids_of(from_id=H01, to_id=H02) == [a.id]
    assert await ids_of(state="acked") == [b.id]
    assert await ids_of(state="queued") == [c.id, a.id]
    assert await ids_of(to_id=H02, state="acked") == []
    assert await ids_of(kind="status") == []
    later_on = timeutil.now() + timedelta(hours=1)
    assert await ids_of(since=later_on) == []
    assert await ids_of(until=later_on, from_id=H04) == [c.id]
    [row] = (await store.search_messages(MessageQuery(message_id=a.id), cursor=None, limit=5)).items
    assert row.deliveries == ((H02, "queued"),) and row.from_id == H01


async def test_search_pages_and_stops_at_its_window_saying_how_far_it_looked(
    store: Store,
) -> None:
    """Pages follow newest first without repeats; a filter no index covers checks a window
    of sequence numbers per page and says so, with a cursor to go on."""
    sent = [(await store.accept(message(to=(H02,)))).record for _ in range(5)]
    first = await store.search_messages(MessageQuery(from_id=H01), cursor=None, limit=2)
    second = await store.search_messages(
        MessageQuery(from_id=H01), cursor=first.next_cursor, limit=2
    )
    third = await store.search_messages(
        MessageQuery(from_id=H01), cursor=second.next_cursor, limit=2
    )
    shown = [r.id for p in (first, second, third) for r in p.items]
    assert shown == [m.id for m in reversed(sent)] and third.next_cursor is None
    windowed = await store.search_messages(
        MessageQuery(kind="status"), cursor=None, limit=10, window=2
    )
    assert windowed.items == [] and windowed.next_cursor is not None
    assert windowed.searched_to is not None
    rest = await store.search_messages(
        MessageQuery(kind="status"), cursor=windowed.next_cursor, limit=10, window=10
    )
    assert rest.items == [] and rest.next_cursor is None


async def test_a_body_downloaded_by_an_administrator_is_on_the_record(store: Store) -> None:
    """The exact bytes, and a body_downloaded event naming who took them."""
    sent = (await store.accept(message(to=(H02,)))).record
    got = await store.download_body(sent.id, actor="admin:tok_x")
    assert got is not None and got.body == b"<edXML/>" and got.sha256 == sent.sha256
    [(actor, detail)] = events(store, "body_downloaded")
    assert actor == "admin:tok_x" and detail == {"sha256": sent.sha256, "size": 10}
    assert await store.download_body("msg_none", actor="admin:tok_x") is None
    facts = await store.message_facts(sent.id)
    assert facts is not None and facts.body_purged_at is None


async def test_deliveries_and_audit_events_newest_first(
    store: Store, axis_key: signing.AxisKey
) -> None:
    """Failed and dead deliveries, audit events and checkpoints list newest first."""
    a = (await store.accept(message(to=(H02,)))).record
    b = (await store.accept(message(to=(H02,)))).record
    await store.ack(a.id, H02, "fail", "no", actor="agency:H02")
    await store.ack(b.id, H02, "fail", "no", actor="agency:H02")
    page = await store.recent_deliveries("failed", organ_id=None, cursor=None, limit=1)
    assert [d.message_id for d in page.items] == [b.id] and page.next_cursor
    rest = await store.recent_deliveries("failed", organ_id=H02, cursor=page.next_cursor, limit=1)
    assert [d.message_id for d in rest.items] == [a.id] and rest.next_cursor is None
    assert (await store.recent_deliveries("dead", organ_id=None, cursor=None, limit=5)).items == []
    newest = await store.audit_back(AuditFilter(), cursor=None, limit=2)
    assert [e.type for e in newest.items] == ["delivery_failed", "delivery_failed"]
    assert newest.items[0].seq > newest.items[1].seq and newest.next_cursor
    typed = await store.audit_back(AuditFilter(type="message_received"), cursor=None, limit=5)
    assert [e.message_id for e in typed.items] == [b.id, a.id]
    narrow = await store.audit_back(
        AuditFilter(type="message_received"), cursor=None, limit=5, window=1
    )
    assert narrow.items == [] and narrow.searched_to is not None and narrow.next_cursor
    trail = await store.audit_back(AuditFilter(message_id=a.id), cursor=None, limit=50)
    assert {e.message_id for e in trail.items} == {a.id} and trail.next_cursor is None
    one = await sign_head(store, axis_key)
    await store.accept(message(to=(H03,)))
    two = await sign_head(store, axis_key)
    assert one is not None and two is not None
    listed = await store.checkpoints_back(cursor=None, limit=1)
    assert [c.seq for c in listed.items] == [two.seq] and listed.next_cursor
    older = await store.checkpoints_back(cursor=listed.next_cursor, limit=1)
    assert [c.seq for c in older.items] == [one.seq]


async def test_the_chain_after_the_last_checkpoint_is_checked_quickly(
    store: Store, axis_key: signing.AxisKey
) -> None:
    """The tail check passes a sound log and names the first event edited after the
    checkpoint."""
    certificates = [axis_key.cert_pem]
    unsigned = await store.verify_tail(certificates, limit=100)
    assert unsigned.ok and unsigned.checkpoint_seq == 0
    await store.accept(message(to=(H02,)))
    checkpoint = await sign_head(store, axis_key)
    assert checkpoint is not None
    await store.accept(message(to=(H02, H03)))
    tail = await store.verify_tail(certificates, limit=100)
    assert tail.ok and tail.checkpoint_seq == checkpoint.seq and tail.checked >= 4
    assert tail.unchecked == 0
    capped = await store.verify_tail(certificates, limit=1)
    assert capped.ok and capped.checked == 1 and capped.unchecked > 0
    bad = checkpoint.seq + 2
    raw_sql(store).execute("UPDATE audit_events SET actor = 'someone' WHERE seq = ?", (bad,))
    broken = await store.verify_tail(certificates, limit=100)
    assert not broken.ok and broken.first_bad_seq == bad


# a sort the plan may do: over the few rows of one DocumentId, one message, one page
SORTED = {
    ("console_document_any", "console_seq_below"),
    ("console_audit_back", "audit_document"),
    ("console_audit_back", "audit_message"),
    "console_deliveries_of",
}


def test_console_searches_go_by_an_index_never_a_table_scan() -> None:
    """SQLite's plan for every read the console makes on the big tables uses an index."""
    conn = sqlite3.connect(":memory:")
    for _, sql in backend.migrations("sqlite"):
        conn.executescript(sql)
    queries = backend.Queries("sqlite")
    keys: list[backend.QueryKey] = [
        ("console_latest", "console_kind", "console_any_overdue"),
        ("console_from", "console_sent_to", "console_any_in_state"),
        ("console_to", "console_this_in_state", "console_kind"),
        ("console_to", "console_this_overdue"),
        ("console_state", "console_sent_by"),
        ("console_state", "deliveries_to"),
        ("console_document_any", "console_seq_below"),
        ("console_document_from", "console_since", "console_until"),
        ("console_by_id", "console_document_is"),
        "console_overdue",
        "console_documents_since",
        "console_open_counts",
        "console_failed_count",
        "console_failing_endpoints",
        "console_failing_endpoint",
        "console_failing_error",
        ("console_state_deliveries", "deliveries_to"),
        "console_state_deliveries",
        ("console_audit_back", "audit_message"),
        ("console_audit_back", "audit_document"),
        "console_deliveries_of",
        "console_session_get",
        "deliveries_time_from",
        "deliveries_bounds",
        "messages_bounds",
        "audit_bounds",
    ]
    for key in keys:
        sql = queries[key]
        count = len(re.findall(r"\?", re.sub(r"'[^']*'", "", sql)))
        plan = " | ".join(
            str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [None] * count)
        )
        scans = re.findall(r"SCAN (\w+)(?! USING)", plan)
        if "bounds" in str(key):
            assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), (key, plan)
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan or key in SORTED, (key, plan)
        big = {"m", "messages", "d", "deliveries", "audit_events", "x", "s", "statuses"}
        assert not big & set(scans), (key, plan)
