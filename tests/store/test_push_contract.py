"""What every Store backend must do for push delivery: claims, leases, attempts, dead letters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest

from axis import timeutil
from axis.errors import DuplicateConflict
from axis.model import Attempt
from axis.store.protocol import Store
from tests.store.conftest import AGENCIES
from tests.store.test_contract import message
from tests.support.rawsql import raw_sql

H01, H02, H03 = (a.organ_id for a in AGENCIES[:3])
WORKER = "test-worker"


def later(seconds: float = 3600.0) -> Attempt:
    return Attempt(
        ok=False,
        status=503,
        error="HTTP 503: busy",
        retry_at=timeutil.now() + timedelta(seconds=seconds),
    )


def events_of(store: Store, message_id: str) -> list[tuple[str, str, dict[str, object]]]:
    conn = raw_sql(store)
    return [
        (t, a, orjson.loads(d))
        for t, a, d in conn.execute(
            "SELECT type, actor, detail FROM audit_events WHERE message_id = ? ORDER BY seq",
            (message_id,),
        )
    ]


async def test_a_claim_leases_each_due_delivery_to_one_worker(store: Store) -> None:
    """Claimed deliveries carry their bytes and are not claimable again while leased."""
    sent = (await store.accept(message(to=(H02, H03)))).record
    assert await store.next_due([H02]) is not None
    jobs = await store.claim_due([H02], limit=10, lease_seconds=60, worker_id=WORKER)
    assert [(j.message_id, j.delivered_to, j.body) for j in jobs] == [(sent.id, H02, b"<edXML/>")]
    assert jobs[0].attempts == 0 and jobs[0].failures == 0
    assert await store.claim_due([H02], limit=10, lease_seconds=60, worker_id=WORKER) == []
    due = await store.next_due([H02])
    assert due is not None and due > timeutil.now() + timedelta(seconds=30)
    other = await store.claim_due([H03], limit=10, lease_seconds=60, worker_id=WORKER)
    assert [j.delivered_to for j in other] == [H03]


async def test_concurrent_claims_never_share_a_delivery(store: Store) -> None:
    """Workers claiming at once split the due deliveries between them, none twice."""
    for _ in range(12):
        await store.accept(message(to=(H02,)))
    batches = await asyncio.gather(
        *(store.claim_due([H02], limit=4, lease_seconds=60, worker_id=f"w{i}") for i in range(5))
    )
    claimed = [job.delivery_id for batch in batches for job in batch]
    assert len(claimed) == 12
    assert len(set(claimed)) == 12


async def test_a_lapsed_lease_is_claimed_again_and_the_old_holder_loses(store: Store) -> None:
    """When a holder outlives its lease, another takes the delivery; the first's failure is void."""
    await store.accept(message(to=(H02,)))
    (first,) = await store.claim_due([H02], limit=1, lease_seconds=0, worker_id="a")
    (second,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id="b")
    assert first.delivery_id == second.delivery_id
    assert first.lease_id != second.lease_id
    assert await store.record_attempt(first, later()) is None
    assert await store.record_attempt(second, later()) == "retrying"


async def test_success_acknowledges_and_leaves_the_inbox(store: Store) -> None:
    """A 2xx acks the delivery: out of the inbox, state acked, the attempt counted."""
    sent = (await store.accept(message(to=(H02,)))).record
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    assert await store.record_attempt(job, Attempt(ok=True, status=200)) == "acked"
    assert (await store.inbox(H02, kind=None, cursor=None, limit=10)).items == []
    record = await store.message(sent.id)
    assert record is not None
    assert (record.recipients[0].state, record.recipients[0].attempts) == ("acked", 1)
    assert await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER) == []
    assert await store.next_due([H02]) is None
    (acked,) = [e for e in events_of(store, sent.id) if e[0] == "delivery_acked"]
    assert acked[1] == "axis:push"
    assert acked[2]["delivery_id"] == job.delivery_id and acked[2]["status"] == 200


async def test_a_failure_is_shown_and_retried_when_due(store: Store) -> None:
    """A failed attempt: retrying, attempts and last_error on the message, due at retry_at."""
    sent = (await store.accept(message(to=(H02,)))).record
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    attempt = later(3600)
    assert await store.record_attempt(job, attempt) == "retrying"
    record = await store.message(sent.id)
    assert record is not None
    row = record.recipients[0]
    assert (row.state, row.attempts, row.last_error) == ("retrying", 1, "HTTP 503: busy")
    assert [i.id for i in (await store.inbox(H02, kind=None, cursor=None, limit=10)).items] == [
        sent.id
    ]
    assert await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER) == []
    assert await store.next_due([H02]) == attempt.retry_at
    (event,) = [e for e in events_of(store, sent.id) if e[0] == "push_attempt_failed"]
    assert event[2]["attempt"] == 1 and event[2]["error"] == "HTTP 503: busy"
    assert event[2]["status"] == 503
    # the lease went with the failure: a late second outcome from the same claim is void
    assert await store.record_attempt(job, later()) is None


async def test_failure_count_and_clock_carry_into_the_next_claim(store: Store) -> None:
    """The next claim knows how many failures came before and when the round started."""
    await store.accept(message(to=(H02,)))
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    await store.record_attempt(job, later(0))
    (again,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    assert (again.attempts, again.failures, again.push_since) == (1, 1, job.push_since)


async def test_giving_up_makes_a_dead_letter_that_stays_in_the_inbox(store: Store) -> None:
    """Dead: still listed for the recipient, listed for the administrator, no longer pushed."""
    sent = (await store.accept(message(to=(H02, H03)))).record
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    gone = Attempt(ok=False, status=410, error="HTTP 410", gave_up="410 Gone")
    assert await store.record_attempt(job, gone) == "dead"
    assert len((await store.inbox(H02, kind=None, cursor=None, limit=10)).items) == 1
    assert await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER) == []
    dead = await store.deliveries(state="dead", organ_id=None, cursor=None, limit=10)
    assert [(d.delivery_id, d.state, d.attempts) for d in dead.items] == [
        (job.delivery_id, "dead", 1)
    ]
    assert dead.items[0].next_attempt_at is None
    assert (await store.deliveries(state="dead", organ_id=H03, cursor=None, limit=10)).items == []
    types = [e[0] for e in events_of(store, sent.id)]
    assert types[-2:] == ["push_attempt_failed", "delivery_dead"]
    assert events_of(store, sent.id)[-1][2]["reason"] == "410 Gone"


async def test_redelivery_starts_a_dead_letter_again(store: Store) -> None:
    """Redelivered: queued, due now, a fresh clock and backoff; the attempts so far are kept."""
    sent = (await store.accept(message(to=(H02,)))).record
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    await store.record_attempt(job, Attempt(ok=False, status=410, error="HTTP 410"))
    woken: list[list[str]] = []
    store.mail_listeners.append(lambda organ_ids: woken.append(list(organ_ids)))
    view = await store.redeliver(job.delivery_id, actor="admin:t1")
    assert view is not None
    assert (view.state, view.attempts, view.push_since) == ("queued", 1, None)
    assert woken == [[H02]]
    (again,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    assert (again.delivery_id, again.failures) == (job.delivery_id, 0)
    assert again.push_since >= job.push_since
    (event,) = [e for e in events_of(store, sent.id) if e[0] == "delivery_redelivered"]
    assert event[1] == "admin:t1" and event[2]["previous_state"] == "dead"


async def test_redelivery_refuses_what_is_acknowledged_or_unknown(store: Store) -> None:
    """An acknowledged delivery is done: redelivering it conflicts; an unknown one is None."""
    sent = (await store.accept(message(to=(H02,)))).record
    await store.ack(sent.id, H02, "done", None, actor="agency:H02")
    delivery_id = sent.recipients[0].delivery_id
    with pytest.raises(DuplicateConflict, match=delivery_id):
        await store.redeliver(delivery_id, actor="admin:t1")
    assert await store.redeliver("dlv_nope", actor="admin:t1") is None


async def test_an_ack_by_pull_meanwhile_wins_over_the_push(store: Store) -> None:
    """A recipient that acknowledges while a push is in flight: the push's outcome is dropped."""
    sent = (await store.accept(message(to=(H02,)))).record
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    await store.ack(sent.id, H02, "fail", "unreadable", actor="agency:H02")
    assert await store.record_attempt(job, later()) is None
    assert await store.record_attempt(job, Attempt(ok=True, status=200)) is None
    record = await store.message(sent.id)
    assert record is not None
    assert (record.recipients[0].state, record.recipients[0].attempts) == ("failed", 0)


async def test_a_fetched_delivery_stays_fetched_when_a_push_fails(store: Store) -> None:
    """A recipient that fetched but did not acknowledge keeps 'fetched'; the push retries."""
    sent = (await store.accept(message(to=(H02,)))).record
    await store.fetch(sent.id, H02, actor="agency:H02")
    (job,) = await store.claim_due([H02], limit=1, lease_seconds=60, worker_id=WORKER)
    assert await store.record_attempt(job, later()) == "fetched"


async def test_released_jobs_are_due_at_once(store: Store) -> None:
    """Deliveries given back untried are claimable again without waiting for the lease."""
    await store.accept(message(to=(H02,)))
    jobs = await store.claim_due([H02], limit=1, lease_seconds=3600, worker_id=WORKER)
    await store.release(jobs)
    again = await store.claim_due([H02], limit=1, lease_seconds=3600, worker_id=WORKER)
    assert [j.delivery_id for j in again] == [jobs[0].delivery_id]


async def test_hasten_makes_a_backlog_due_now(store: Store) -> None:
    """When an endpoint is back, deliveries waiting out their backoff become due at once."""
    for _ in range(3):
        await store.accept(message(to=(H02,)))
    jobs = await store.claim_due([H02], limit=10, lease_seconds=60, worker_id=WORKER)
    for job in jobs[:2]:
        await store.record_attempt(job, later(3600))
    assert await store.hasten([H02]) == 2  # the third is leased: left to its holder
    again = await store.claim_due([H02], limit=10, lease_seconds=60, worker_id=WORKER)
    assert {j.delivery_id for j in again} == {j.delivery_id for j in jobs[:2]}


async def test_held_deliveries_start_their_clock_and_die_at_the_max_age(store: Store) -> None:
    """Behind an open circuit, untried deliveries age from when they were held, then die."""
    sent = (await store.accept(message(to=(H02,)))).record
    now = timeutil.now()
    assert await store.expire_held([H02], started_before=now - timedelta(hours=1), reason="x") == 0
    view = await store.delivery(sent.recipients[0].delivery_id)
    assert view is not None and view.push_since is not None
    dead = await store.expire_held(
        [H02], started_before=timeutil.now() + timedelta(seconds=1), reason="circuit open"
    )
    assert dead == 1
    view = await store.delivery(sent.recipients[0].delivery_id)
    assert view is not None
    assert (view.state, view.last_error) == ("dead", "circuit open")
    assert len((await store.inbox(H02, kind=None, cursor=None, limit=10)).items) == 1
    assert events_of(store, sent.id)[-1][0] == "delivery_dead"


async def test_delivery_listing_pages_in_order(store: Store) -> None:
    """The administrator's listing is paged with an opaque cursor, oldest first, by filter."""
    sent = [(await store.accept(message(to=(H02, H03)))).record for _ in range(3)]
    first = await store.deliveries(state="queued", organ_id=H02, cursor=None, limit=2)
    assert first.next_cursor is not None
    rest = await store.deliveries(state="queued", organ_id=H02, cursor=first.next_cursor, limit=2)
    assert rest.next_cursor is None
    assert [d.message_id for d in first.items + rest.items] == [m.id for m in sent]
    assert all(d.delivered_to == H02 for d in first.items + rest.items)
    everything = await store.deliveries(state=None, organ_id=None, cursor=None, limit=100)
    assert len(everything.items) == 6
    assert (await store.deliveries(state="dead", organ_id=None, cursor=None, limit=10)).items == []
