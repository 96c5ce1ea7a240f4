"""What every Store backend must give /metrics: open deliveries by state, the oldest waiting."""

from __future__ import annotations

from axis.model import Attempt
from axis.store.protocol import Store
from tests.store.conftest import AGENCIES
from tests.store.test_contract import message
from tests.store.test_push_contract import WORKER, later

H01, H02, H03 = (a.organ_id for a in AGENCIES[:3])


async def test_gauges_count_open_deliveries_by_state_and_date_the_oldest(store: Store) -> None:
    """queued, fetched, retrying and dead are counted across agencies; acked and failed are
    closed and not; the oldest undelivered is the first still queued or retrying."""
    empty = await store.delivery_gauges()
    assert (empty.queued, empty.fetched, empty.retrying, empty.dead) == (0, 0, 0, 0)
    assert empty.oldest_undelivered_at is None
    first = (await store.accept(message(to=(H02, H03)))).record  # two deliveries
    rest = [(await store.accept(message(to=(H02,)))).record for _ in range(4)]
    assert await store.fetch(rest[0].id, H02, actor="t") is not None  # fetched
    await store.ack(rest[1].id, H02, "done", None, actor="t")  # acked: closed
    await store.ack(rest[2].id, H02, "fail", "unreadable", actor="t")  # failed: closed
    jobs = await store.claim_due([H03], limit=10, lease_seconds=60, worker_id=WORKER)
    assert [j.message_id for j in jobs] == [first.id]
    assert await store.record_attempt(jobs[0], later()) == "retrying"
    gauges = await store.delivery_gauges()
    # queued: first→H02 and rest[3]; retrying: first→H03
    assert (gauges.queued, gauges.fetched, gauges.retrying, gauges.dead) == (2, 1, 1, 0)
    assert gauges.oldest_undelivered_at == first.received_at
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    assert await store.record_attempt(job, Attempt(ok=False, gave_up="410 Gone")) == "dead"
    gauges = await store.delivery_gauges()
    assert gauges.dead == 1 and gauges.queued + gauges.fetched == 2
