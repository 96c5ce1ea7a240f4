"""What every Store backend must do for the audit log: filters, pages, checkpoints, retention."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from axis import audit, signing, timeutil
from axis.audit import StoredEvent
from axis.model import AuditFilter
from axis.store.protocol import Store
from tests.store.conftest import AGENCIES
from tests.store.test_contract import message

H01, H02, H03 = (a.organ_id for a in AGENCIES[:3])


@pytest.fixture(autouse=True)
def _audit_operations_built(store: Store) -> None:
    """Backends gain the audit operations one at a time; one without them is skipped, named."""
    if not hasattr(store, "audit_events"):
        pytest.skip(f"{type(store).__name__} does not implement the audit operations yet")


async def all_events(store: Store, where: AuditFilter, limit: int = 3) -> list[StoredEvent]:
    """Every page of a listing, following the cursors to the end."""
    out: list[StoredEvent] = []
    cursor = None
    while True:
        page = await store.audit_events(where, cursor=cursor, limit=limit)
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


async def streamed(store: Store, where: AuditFilter) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    async with contextlib.aclosing(store.audit_stream(where, batch=2)) as stream:
        async for batch in stream:
            out.extend(batch)
    return out


async def flows(store: Store) -> tuple[str, str, str]:
    """H01 sends to H02 and H03 (H02 acks), then H02 sends to H01 (open)."""
    first = message(H01, (H02, H03))
    await store.accept(first)
    await store.fetch(first.id, H02, actor=f"agency:{H02}")
    await store.ack(first.id, H02, "done", None, actor=f"agency:{H02}")
    await store.ack(first.id, H03, "fail", "not ours", actor=f"agency:{H03}")
    second = message(H02, (H01,))
    await store.accept(second)
    await store.issue_token("tok_a", "hash-a", "agency", H03, actor="admin:tok_0")
    return first.id, second.id, first.document_id


def checks(where: AuditFilter, event: StoredEvent) -> bool:
    """The filters' meaning, spelled out independently of any backend."""
    return (
        (where.organ_id is None or where.organ_id in (event.from_id, event.to_id))
        and (where.message_id is None or event.message_id == where.message_id)
        and (where.document_id is None or event.document_id == where.document_id)
        and (where.type is None or event.type == where.type)
        and (where.since is None or event.at >= timeutil.fmt(where.since))
        and (where.until is None or event.at < timeutil.fmt(where.until))
    )


async def test_every_filter_selects_what_it_says(store: Store) -> None:
    """Each filter, alone and combined, gives exactly the matching events in seq order."""
    first, second, document_id = await flows(store)
    everything = await all_events(store, AuditFilter(), limit=1000)
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    middle = everything[len(everything) // 2].at
    filters = [
        AuditFilter(organ_id=H03),
        AuditFilter(organ_id=H01),
        AuditFilter(message_id=first),
        AuditFilter(document_id=document_id),
        AuditFilter(type="delivery_queued"),
        AuditFilter(type="delivery_acked", organ_id=H02),
        AuditFilter(since=timeutil.parse_query_time("since", middle)),
        AuditFilter(until=timeutil.parse_query_time("until", middle)),
        AuditFilter(message_id=second, type="delivery_queued", organ_id=H01),
        AuditFilter(organ_id="000.00.00.Z99"),
    ]
    for where in filters:
        expected = [e for e in everything if checks(where, e)]
        assert await all_events(store, where) == expected, where
        assert await streamed(store, where) == expected, where
    trail = await all_events(store, AuditFilter(message_id=first))
    assert {e.type for e in trail} >= {
        "message_received",
        "delivery_queued",
        "delivery_fetched",
        "delivery_acked",
        "delivery_failed",
    }
    assert {e.to_id for e in trail if e.type == "delivery_queued"} == {H02, H03}


async def test_pages_follow_seq_without_gaps_or_repeats(store: Store) -> None:
    """Cursors walk the whole log once, in seq order, whatever the page size."""
    await flows(store)
    for _ in range(3):
        await store.accept(message(H03, (H01, H02)))
    whole = await all_events(store, AuditFilter(), limit=1000)
    for size in (1, 2, 7):
        assert await all_events(store, AuditFilter(), limit=size) == whole


async def test_a_rejection_is_recorded(store: Store) -> None:
    """A refused package of an authenticated agency leaves a message_rejected event."""
    await store.record_rejection(
        actor=f"agency:{H01}",
        organ_id=H01,
        kind="edoc",
        code="signature_invalid",
        reason="Reference DigestValue does not match",
        sha256="ab" * 32,
        size=1234,
    )
    [event] = await all_events(store, AuditFilter(type="message_rejected"))
    assert event.from_id == H01 and event.actor == f"agency:{H01}"
    assert event.detail["code"] == "signature_invalid"
    assert event.detail["sha256"] == "ab" * 32 and event.detail["size"] == 1234
    assert await all_events(store, AuditFilter(organ_id=H01)) == [event]


@pytest.fixture
def axis_key(axis_key_pair: tuple[bytes, bytes]) -> signing.AxisKey:
    return signing.AxisKey.load(*axis_key_pair)


async def sign_head(store: Store, key: signing.AxisKey) -> audit.Checkpoint | None:
    head = await store.checkpoint_due()
    if head is None:
        return None
    at = timeutil.fmt(timeutil.now())
    xml = key.sign_enveloped(audit.checkpoint_element(*head, at, issuer="axis"))
    checkpoint = audit.Checkpoint(head[0], head[1], at, xml)
    return checkpoint if await store.add_checkpoint(checkpoint, actor="axis") else None


async def test_checkpoints_sign_the_head_once(store: Store, axis_key: signing.AxisKey) -> None:
    """A checkpoint is due after activity only; it is kept, listed and recorded in the chain."""
    await flows(store)
    head = await store.audit_head()
    assert head is not None and await store.checkpoint_due() == head
    checkpoint = await sign_head(store, axis_key)
    assert checkpoint is not None and checkpoint.seq == head[0]
    assert await store.checkpoint_due() is None  # only the checkpoint event is new
    assert not await store.add_checkpoint(checkpoint, actor="axis")  # a racing process
    with pytest.raises(ValueError, match="no event"):
        await store.add_checkpoint(
            audit.Checkpoint(head[0], "0" * 64, checkpoint.at, checkpoint.xml), actor="axis"
        )
    [recorded] = await all_events(store, AuditFilter(type="checkpoint"))
    assert recorded.seq == head[0] + 1
    assert recorded.detail == {
        "seq": head[0],
        "hash": head[1],
        "at": checkpoint.at,
        "sha256": checkpoint.sha256,
    }
    assert await store.checkpoint(None) == checkpoint == await store.checkpoint(head[0])
    await store.accept(message(H02, (H03,)))
    later = await sign_head(store, axis_key)
    assert later is not None and later.seq > recorded.seq
    page = await store.checkpoints(cursor=None, limit=1)
    assert page.items == [checkpoint] and page.next_cursor is not None
    rest = await store.checkpoints(cursor=page.next_cursor, limit=1)
    assert rest.items == [later] and rest.next_cursor is None


async def test_verify_passes_a_log_built_by_real_operations(
    store: Store, axis_key: signing.AxisKey
) -> None:
    """Everything the store appends, checkpoints included, verifies."""
    await flows(store)
    await sign_head(store, axis_key)
    await store.accept(message(H03, (H02,)))
    verdict = await store.verify_audit([axis_key.cert_pem])
    head = await store.audit_head()
    assert head is not None
    assert verdict.ok, verdict.reason
    assert (verdict.events, verdict.head_seq, verdict.head_hash) == (head[0], *head)
    assert verdict.checkpoints == 1 and verdict.last_checkpoint is not None


async def test_verify_with_an_outside_checkpoint_beyond_the_log_fails(
    store: Store, axis_key: signing.AxisKey
) -> None:
    """A checkpoint an auditor kept that signs more than the log holds means a cut."""
    await flows(store)
    head = await store.audit_head()
    assert head is not None
    beyond = audit.Anchor(head[0] + 5, "f" * 64, "the kept checkpoint")
    verdict = await store.verify_audit([axis_key.cert_pem], [beyond])
    assert not verdict.ok
    assert verdict.first_bad_seq == head[0] + 1
    assert "cut back" in (verdict.reason or "")


async def test_retention_purges_closed_old_bodies_and_keeps_the_rest(
    store: Store, axis_key: signing.AxisKey
) -> None:
    """Bodies of old, fully acknowledged messages go; digests, events and the chain stay."""
    closed, still_open, _ = await flows(store)
    before = timeutil.now() + timedelta(seconds=1)  # everything so far counts as old
    report = await store.purge_bodies(before, actor="axis:retention", grace=0)
    assert (report.messages, report.held) == (1, 1)
    assert await store.body_purged_at(closed) is not None
    assert await store.body_purged_at(still_open) is None
    record = await store.message(closed)
    assert record is not None and record.sha256  # metadata and digest stay
    [purged] = await all_events(store, AuditFilter(type="body_purged"))
    assert purged.message_id == closed and purged.detail["sha256"] == record.sha256
    fetched = await store.fetch(still_open, H01, actor=f"agency:{H01}")
    assert fetched is not None and fetched.body == b"<edXML/>"
    again = await store.purge_bodies(before, actor="axis:retention", grace=0)
    assert (again.messages, again.held) == (0, 1)
    await store.ack(still_open, H01, "done", None, actor=f"agency:{H01}")
    last = await store.purge_bodies(before, actor="axis:retention", grace=0)
    assert last.messages == 1 and await store.body_purged_at(still_open) is not None
    assert (await store.verify_audit([axis_key.cert_pem])).ok


async def test_a_key_change_is_an_event_in_the_one_chain(store: Store) -> None:
    """record_key_change appends axis_key_rotated naming both certificates, chained as any."""
    await store.accept(message(H01, (H02,)))
    await store.record_key_change(actor="cli:root", previous_sha256="a" * 64, sha256="b" * 64)
    [event] = await all_events(store, AuditFilter(type=audit.KEY_ROTATED))
    assert event.actor == "cli:root"
    assert event.detail == {"previous_sha256": "a" * 64, "sha256": "b" * 64}
    assert (await store.audit_head()) == (event.seq, event.hash)
