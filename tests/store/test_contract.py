"""What every Store backend must do, in the words of the domain."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from axis import audit, ids, timeutil
from axis.errors import DuplicateConflict, StoreError
from axis.model import Link, NewMessage
from axis.routing import Route
from axis.store import backend
from axis.store.protocol import Store
from tests.store.conftest import AGENCIES
from tests.support.rawsql import raw_sql

H01, H02, H03 = (a.organ_id for a in AGENCIES[:3])


def message(
    from_id: str = H01,
    to: tuple[str, ...] = (H02,),
    *,
    document_id: str | None = None,
    sha: str | None = None,
    business_type: int = 0,
) -> NewMessage:
    mid = ids.new_id("msg")
    routes = tuple(Route(t, t) for t in to)
    return NewMessage(
        id=mid,
        kind="edoc",
        from_id=from_id,
        document_id=document_id or f"{from_id},2026/11/23,{mid}",
        business_type=business_type,
        status_code=None,
        sha256=sha or mid.ljust(64, "0")[:64],
        size=10,
        received_at=timeutil.fmt(timeutil.now()),
        body=b"<edXML/>",
        body_file=None,
        routes=routes,
        delivery_ids={t: ids.new_id("dlv") for t in to},
        actor=f"agency:{from_id}",
    )


async def test_initialize_is_idempotent(store: Store) -> None:
    """Initialising twice adds nothing the second time."""
    report = await store.initialize(AGENCIES)
    assert report.agencies_added == 0
    registry = await store.registry()
    assert len(registry.agencies) == len(AGENCIES)


async def test_a_store_lacking_a_migration_of_this_code_is_refused(store: Store) -> None:
    """A process does not start on a schema that lacks one of its migrations, whatever its
    number (one merged late with a lower number counts too); `axis init` applies it."""
    version = await store.check_schema()
    applied = raw_sql(store).execute("SELECT value FROM meta WHERE key = 'migrations'").fetchone()
    numbers = applied[0].split(",")
    assert numbers == [str(n) for n, _ in backend.migrations(store.backend.dialect)]  # type: ignore[attr-defined]
    assert int(numbers[-1]) == version
    lacking = ",".join(numbers[:1] + numbers[2:])  # the second one never ran
    raw_sql(store).execute("UPDATE meta SET value = ? WHERE key = 'migrations'", (lacking,))
    with pytest.raises(StoreError, match=r"lacks migrations \[2\].*axis init"):
        await store.check_schema()
    raw_sql(store).execute("UPDATE meta SET value = ? WHERE key = 'migrations'", (applied[0],))
    assert await store.check_schema() == version


async def test_accept_creates_deliveries_and_repeats_are_recognised(store: Store) -> None:
    """Accepting stores one delivery per recipient; the same digest again returns the original."""
    first = message(to=(H02, H03))
    result = await store.accept(first)
    assert result.created
    assert [r.delivered_to for r in result.record.recipients] == [H02, H03]
    again = await store.accept(replace(first, id=ids.new_id("msg")))
    assert not again.created
    assert again.record.id == first.id
    assert (await store.find_by_digest(H01, first.sha256)) is not None


async def test_new_document_id_reused_for_other_bytes_conflicts(store: Store) -> None:
    """A DocumentId introduced twice with different bytes raises DuplicateConflict."""
    await store.accept(message(document_id="D-1"))
    with pytest.raises(DuplicateConflict, match="D-1"):
        await store.accept(message(document_id="D-1"))
    # a revocation naming the same DocumentId is not a new document
    assert (await store.accept(message(document_id="D-1", business_type=1))).created
    assert await store.document_sent(H01, "D-1") is not None


async def test_concurrent_accepts_of_one_document_store_it_once(store: Store) -> None:
    """Racing sends of the same new DocumentId: one is stored, the others conflict."""
    results = await asyncio.gather(
        *(store.accept(message(document_id="RACE")) for _ in range(10)), return_exceptions=True
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 1
    assert all(isinstance(r, DuplicateConflict) for r in results if r not in created)


async def test_a_batch_of_mixed_accepts_answers_as_one_by_one(store: Store) -> None:
    """Sends that share one commit (new, repeated bytes, a reused DocumentId, links) each get
    the answer they would get alone, and only the new ones reach the inboxes."""
    first = message(to=(H02, H03), document_id="MIX-1")
    await store.accept(first)
    fresh = [message(to=(H02, H03)) for _ in range(8)]
    repeat = replace(fresh[0], id=ids.new_id("msg"), delivery_ids={H02: ids.new_id("dlv")})
    revoke = replace(
        message(document_id="MIX-1", business_type=1), links=(Link(first.id, "revokes"),)
    )
    results = await asyncio.gather(
        *(store.accept(m) for m in [*fresh, repeat, revoke]), return_exceptions=True
    )
    assert all(not isinstance(r, BaseException) and r.created for r in results[:8])
    again = results[8]
    assert not isinstance(again, BaseException)
    assert not again.created and again.record.id == fresh[0].id
    revoked = results[9]
    assert not isinstance(revoked, BaseException) and revoked.created
    page = await store.inbox(H02, kind=None, cursor=None, limit=50)
    assert [m.id for m in page.items] == [first.id, *(m.id for m in fresh), revoke.id]
    h03 = await store.inbox(H03, kind=None, cursor=None, limit=50)
    assert [m.id for m in h03.items] == [first.id, *(m.id for m in fresh)]
    original = await store.message(first.id)
    assert original is not None
    assert [(v.message_id, v.relation) for v in original.referred_by] == [(revoke.id, "revokes")]
    # one operation of a shared commit refused: the others still go in
    clash, other = message(document_id="MIX-1"), message()
    refused, taken = await asyncio.gather(
        store.accept(clash), store.accept(other), return_exceptions=True
    )
    assert isinstance(refused, DuplicateConflict)
    assert not isinstance(taken, BaseException) and taken.created


async def test_inbox_fetch_ack_lifecycle(store: Store) -> None:
    """Inbox lists open deliveries oldest first; fetch marks fetched; ack closes."""
    sent = [await store.accept(message()) for _ in range(3)]
    page = await store.inbox(H02, kind=None, cursor=None, limit=2)
    assert [m.id for m in page.items] == [s.record.id for s in sent[:2]]
    assert page.next_cursor is not None
    rest = await store.inbox(H02, kind=None, cursor=page.next_cursor, limit=2)
    assert [m.id for m in rest.items] == [sent[2].record.id]
    assert rest.next_cursor is None
    mid = sent[0].record.id
    fetched = await store.fetch(mid, H02, actor="agency:H02")
    assert fetched is not None and fetched.body == b"<edXML/>"
    assert await store.fetch(mid, H03, actor="agency:H03") is None
    record = await store.message(mid)
    assert record is not None and record.recipients[0].state == "fetched"
    row = await store.ack(mid, H02, "done", None, actor="agency:H02")
    assert row.state == "acked"
    record = await store.message(mid)
    assert record is not None
    shown = record.recipients[0]
    assert (row.delivery_id, row.updated_at) == (shown.delivery_id, shown.updated_at)
    assert await store.ack(mid, H02, "done", None, actor="agency:H02") == row
    with pytest.raises(DuplicateConflict):
        await store.ack(mid, H02, "fail", "late", actor="agency:H02")
    page = await store.inbox(H02, kind=None, cursor=None, limit=10)
    assert mid not in [m.id for m in page.items]
    with pytest.raises(LookupError):
        await store.ack(mid, H03, "done", None, actor="agency:H03")


async def test_wait_for_mail_wakes_on_accept(store: Store) -> None:
    """A waiter for an agency is woken when mail for it is accepted."""
    waiter = asyncio.create_task(store.wait_for_mail(H03, 10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.accept(message(to=(H03,)))
    await asyncio.wait_for(waiter, 2)


async def test_tokens_are_found_by_hash_until_revoked(store: Store) -> None:
    """A token hash finds its principal until the token is revoked."""
    await store.issue_token("tok_1", "h" * 64, "agency", H01, actor="test")
    principal = await store.principal_for("h" * 64)
    assert principal is not None and principal.organ_id == H01 and principal.role == "agency"
    assert await store.revoke_token("tok_1", actor="test")
    assert await store.principal_for("h" * 64) is None
    assert not await store.revoke_token("tok_1", actor="test")
    [info] = await store.list_tokens(H01)
    assert info.revoked_at is not None


async def test_agency_changes_bump_the_registry_version(store: Store) -> None:
    """Every agency change bumps the version other processes watch."""
    before = await store.registry_version()
    agency = (await store.registry()).get(H01)
    assert agency is not None
    assert not await store.put_agency(replace(agency, status="suspended"), actor="test")
    assert await store.registry_version() == before + 1
    assert (await store.registry()).agencies[H01].status == "suspended"


async def test_audit_events_form_an_unbroken_chain(store: Store) -> None:
    """Every state change leaves an event, and the events chain by hash."""
    sent = await store.accept(message(to=(H02, H03)))
    await store.fetch(sent.record.id, H02, actor="agency:H02")
    await store.ack(sent.record.id, H02, "done", None, actor="agency:H02")
    conn = raw_sql(store)
    rows = conn.execute(
        "SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"
        " FROM audit_events ORDER BY seq"
    ).fetchall()
    types = [r[2] for r in rows if r[4] == sent.record.id]
    assert types == [
        "message_received",
        "delivery_queued",
        "delivery_queued",
        "delivery_fetched",
        "delivery_acked",
    ]
    import orjson

    prev = audit.GENESIS
    for seq, at, type_, actor, mid, did, frm, to, detail, digest in rows:
        event = audit.Event(type_, actor, mid, did, frm, to, orjson.loads(detail))
        assert audit.chain_hash(prev, audit.canonical(seq, at, event)) == digest
        prev = digest
