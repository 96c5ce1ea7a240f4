"""Several nodes on one PostgreSQL: what holds when two stores share one schema.

Each "node" is a whole ``AxisStore`` with its own connections, writer and listener (and
its own data directory), as two ``axis serve`` processes would have.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from axis import audit, ids
from axis.config import build_settings
from axis.errors import DuplicateConflict, InvalidRequest
from axis.store import open_store
from axis.store.ops import AxisStore
from tests.store.conftest import (
    AGENCIES,
    drop_schema,
    fresh_schema,
    require_postgres,
    schema_url,
)
from tests.store.test_contract import message
from tests.support.rawsql import raw_sql

H01, H02, H03 = (a.organ_id for a in AGENCIES[:3])


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[AxisStore, AxisStore]]:
    await require_postgres()
    schema = fresh_schema()
    stores = []
    try:
        for name in ("a", "b"):
            settings = build_settings(
                {"data": tmp_path / name, "store": schema_url(schema)}, env={}
            )
            store = open_store(settings)
            await store.open()
            stores.append(store)
        await stores[0].initialize(AGENCIES)
        await stores[1].check_schema()
        yield stores[0], stores[1]
    finally:
        for store in stores:
            await store.close()
        await drop_schema(schema)


def chain_of(store: AxisStore) -> list[tuple[int, str, str]]:
    """Recompute the whole audit chain; ``(seq, at, type)`` of every event, in order."""
    rows = raw_sql(store).execute(
        "SELECT seq, at, type, actor, message_id, document_id, from_id, to_id, detail, hash"
        " FROM audit_events ORDER BY seq"
    )
    prev = audit.GENESIS
    out = []
    for seq, at, type_, actor, mid, did, frm, to, detail, digest in rows:
        event = audit.Event(type_, actor, mid, did, frm, to, orjson.loads(detail))
        assert audit.chain_hash(prev, audit.canonical(seq, at, event)) == digest, seq
        prev = digest
        out.append((seq, at, type_))
    return out


async def test_a_long_poll_on_one_node_wakes_when_another_accepts(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """Mail accepted through node A wakes a recipient waiting on node B, and B's push worker."""
    a, b = nodes
    told: list[list[str]] = []
    b.mail_listeners.append(lambda organ_ids: told.append(list(organ_ids)))
    waiter = asyncio.create_task(b.wait_for_mail(H03, 30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    sent = await a.accept(message(to=(H03,)))
    await asyncio.wait_for(waiter, 5)
    assert told == [[H03]]
    page = await b.inbox(H03, kind=None, cursor=None, limit=10)
    assert [m.id for m in page.items] == [sent.record.id]


async def test_the_same_bytes_sent_through_two_nodes_are_stored_once(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """Racing repeats through both nodes: one message, every answer names it."""
    a, b = nodes
    first = message(to=(H02,))
    copies = [replace(first, id=ids.new_id("msg")) for _ in range(12)]
    results = await asyncio.gather(
        *((a if i % 2 else b).accept(copy) for i, copy in enumerate(copies))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.record.id for r in results}) == 1
    count = raw_sql(a).execute("SELECT count(*) FROM messages").fetchone()
    assert count == (1,)


async def test_a_document_id_raced_through_two_nodes_is_stored_once(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """Other bytes under one new DocumentId through both nodes: one stored, the rest 409."""
    a, b = nodes
    results = await asyncio.gather(
        *((a if i % 2 else b).accept(message(document_id="RACE")) for i in range(12)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 1
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, DuplicateConflict) for r in refused), refused
    assert {r.extra["original_message_id"] for r in refused} == {created[0].record.id}


async def test_the_audit_chain_stays_one_chain_across_nodes(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """Writes interleaved on two nodes append to one chain: contiguous, hashed, times forward."""
    a, b = nodes

    async def traffic(store: AxisStore, sender: str) -> None:
        for _ in range(15):
            sent = await store.accept(message(sender, to=(H03,)))
            await store.fetch(sent.record.id, H03, actor="agency:H03")

    await asyncio.gather(traffic(a, H01), traffic(b, H02), traffic(a, H02), traffic(b, H01))
    chain = chain_of(a)
    assert [seq for seq, _, _ in chain] == list(range(1, len(chain) + 1))
    times = [at for _, at, _ in chain]
    assert times == sorted(times)
    received = [t for _, _, t in chain].count("message_received")
    assert received == 60


async def test_acks_racing_on_two_nodes_agree_on_one_result(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """done through one node and fail through the other at once: one wins, the other is 409."""
    a, b = nodes
    for _ in range(5):
        sent = (await a.accept(message(to=(H02,)))).record
        results = await asyncio.gather(
            a.ack(sent.id, H02, "done", None, actor="agency:H02"),
            b.ack(sent.id, H02, "fail", "unreadable", actor="agency:H02"),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], DuplicateConflict), results
        record = await b.message(sent.id)
        assert record is not None
        kept = next(r for r in results if not isinstance(r, BaseException))
        assert record.recipients[0].state == kept.state


async def test_claims_on_two_nodes_never_share_a_delivery(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """Push workers of both nodes claiming at once split the due deliveries, none twice."""
    a, b = nodes
    for _ in range(20):
        await a.accept(message(to=(H02,)))
    batches = await asyncio.gather(
        *(
            (a if i % 2 else b).claim_due([H02], limit=3, lease_seconds=60, worker_id=f"w{i}")
            for i in range(10)
        )
    )
    claimed = [job.delivery_id for batch in batches for job in batch]
    assert len(claimed) == 20
    assert len(set(claimed)) == 20


async def test_a_dead_nodes_lease_is_taken_over_when_it_lapses(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """A delivery claimed by a node that went away is claimed by the other once its lease ends."""
    a, b = nodes
    await a.accept(message(to=(H02,)))
    (held,) = await a.claim_due([H02], limit=5, lease_seconds=0.2, worker_id="a")
    assert await b.claim_due([H02], limit=5, lease_seconds=60, worker_id="b") == []
    await asyncio.sleep(0.3)
    (taken,) = await b.claim_due([H02], limit=5, lease_seconds=60, worker_id="b")
    assert taken.delivery_id == held.delivery_id and taken.lease_id != held.lease_id


async def test_racing_closures_on_two_nodes_cannot_make_a_cycle(
    nodes: tuple[AxisStore, AxisStore],
) -> None:
    """H02 closed into H03 on one node, H03 into H02 on the other, at once: one is refused."""
    a, b = nodes
    reg = await a.registry()
    results = await asyncio.gather(
        a.save_agency(replace(reg.agencies[H02], status="closed", successor=H03), actor="a"),
        b.save_agency(replace(reg.agencies[H03], status="closed", successor=H02), actor="b"),
        return_exceptions=True,
    )
    assert len([r for r in results if isinstance(r, InvalidRequest)]) == 1, results
    after = await b.registry()
    assert after.forward_chain(H02)[-1] == after.forward_chain(H03)[-1]


async def test_a_large_body_sent_through_one_node_is_fetched_whole_through_another(
    nodes: tuple[AxisStore, AxisStore], tmp_path: Path
) -> None:
    """Bodies over the inline limit live in the engine: another node serves the exact bytes."""
    a, b = nodes
    body = bytes(range(256)) * (5 * 4096 + 17)  # 5 MiB and a bit: six parts
    sha = hashlib.sha256(body).hexdigest()
    spooled = tmp_path / "big.xml"
    spooled.write_bytes(body)
    big = replace(message(to=(H02,)), sha256=sha, size=len(body), body=None, body_file=spooled)
    await a.accept(big)
    fetched = await b.fetch(big.id, H02, actor="agency:H02")
    assert fetched is not None and fetched.body is None and fetched.body_file is not None
    assert fetched.body_file.read_bytes() == body
    assert fetched.body_file.is_relative_to(tmp_path / "b")
    (job,) = await b.claim_due([H02], limit=1, lease_seconds=60, worker_id="b")
    assert job.body_file is not None and job.body_file.read_bytes() == body


async def test_initialising_from_two_nodes_at_once_loads_the_agencies_once(
    tmp_path: Path,
) -> None:
    """Two nodes running ``axis init`` on an empty schema at once: one migrates, both agree."""
    await require_postgres()
    schema = fresh_schema()
    stores = [
        open_store(build_settings({"data": tmp_path / n, "store": schema_url(schema)}, env={}))
        for n in ("a", "b")
    ]
    try:
        for store in stores:
            await store.open()
        reports = await asyncio.gather(*(store.initialize(AGENCIES) for store in stores))
        assert sorted(r.agencies_added for r in reports) == [0, len(AGENCIES)]
        assert sorted(r.created for r in reports) == [False, True]
        for store in stores:
            assert await store.check_schema() == reports[0].schema_version
        assert len((await stores[1].registry()).agencies) == len(AGENCIES)
    finally:
        for store in stores:
            await store.close()
        await drop_schema(schema)
