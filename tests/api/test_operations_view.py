"""What an operator sees: administrators' acts and pushes in the log, delivery gauges, and a
front page (issue 16, finding 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from structlog.contextvars import merge_contextvars

from axis.model import Attempt
from tests.api.test_push import fast_settings, receiving, send, wait_state
from tests.support import pki
from tests.support.harness import AxisHarness, start_axis
from tests.support.rawhttp import metric_values

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


def _lines(logs: list[dict[str, object]], event: str) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == event]


async def test_administrators_acts_are_in_the_operational_log(axis: AxisHarness) -> None:
    """Agency changes, pins, tokens issued and revoked, redeliveries: one info line each,
    with the administrator (principal) and request id bound, besides their audit events."""
    sender = await axis.register(G22)
    await axis.register(H41)
    message_id, _ = await send(axis, sender, [H41])
    _, view = await axis.get(sender, f"/v1/messages/{message_id}")
    delivery_id = view["recipients"][0]["delivery_id"]
    extra = pki.identity("rsa2048", common_name="H41 second key")
    with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
        async with axis.session.put(
            f"{axis.url}/v1/admin/agencies/{H41}",
            json={"name": "Renamed", "kind": "provincial"},
            headers=axis.admin,
        ) as resp:
            assert resp.status == 200
        async with axis.session.post(
            f"{axis.url}/v1/admin/agencies/{H41}/certificates",
            data=extra.cert_pem,
            headers={**axis.admin, "Content-Type": "application/x-pem-file"},
        ) as resp:
            assert resp.status == 201
            sha = next(
                c["sha256"]
                for c in (await resp.json())["certificates"]
                if c["pem"].strip() == extra.cert_pem.decode().strip()
            )
        async with axis.session.delete(
            f"{axis.url}/v1/admin/agencies/{H41}/certificates/{sha}", headers=axis.admin
        ) as resp:
            assert resp.status == 204
        status, issued = await axis.post_json(axis.admin, f"/v1/admin/agencies/{H41}/tokens", {})
        assert status == 201
        async with axis.session.delete(
            f"{axis.url}/v1/admin/tokens/{issued['token_id']}", headers=axis.admin
        ) as resp:
            assert resp.status == 204
        status, _ = await axis.post_json(
            axis.admin, f"/v1/admin/deliveries/{delivery_id}/redeliver", {}
        )
        assert status == 200
    changed = _lines(logs, "agency_changed")
    assert [(e["organ_id"], e["outcome"]) for e in changed] == [(H41, "changed")] * 3
    assert "name" in str(changed[0]["fields"])
    assert [e["fields"] for e in changed[1:]] == [["certificates"], ["certificates"]]
    (issued_line,) = _lines(logs, "token_issued")
    assert (issued_line["token_id"], issued_line["organ_id"]) == (issued["token_id"], H41)
    assert [e["token_id"] for e in _lines(logs, "token_revoked")] == [issued["token_id"]]
    (redelivered,) = _lines(logs, "delivery_redelivered")
    assert (redelivered["delivery_id"], redelivered["organ_id"]) == (delivery_id, H41)
    acts = [*changed, issued_line, redelivered]
    assert {e["log_level"] for e in acts} == {"info"}
    assert all(str(e["principal"]).startswith("admin:") and e["request_id"] for e in acts)


async def test_a_successful_push_is_logged(
    tmp_path: Path, axis_key_pair: tuple[bytes, bytes]
) -> None:
    """A push a receiver acknowledged is an info line push_acked naming the delivery, the
    recipient, the endpoint and the status, not only an audit event."""
    async with receiving() as receiver, start_axis(fast_settings(tmp_path, axis_key_pair)) as axis:
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=receiver.url)
        with structlog.testing.capture_logs() as logs:
            message_id, _ = await send(axis, sender, [H41])
            await wait_state(axis, sender, message_id, "acked")
    (line,) = _lines(logs, "push_acked")
    assert line["log_level"] == "info"
    assert (line["message_id"], line["organ_id"], line["status"]) == (message_id, H41, 200)
    assert line["endpoint"] == receiver.url


async def test_metrics_show_deliveries_by_state_and_the_oldest_undelivered(
    axis: AxisHarness,
) -> None:
    """axis_deliveries{state} counts the open deliveries of the whole store (queued, fetched,
    retrying, dead) and axis_delivery_oldest_undelivered_seconds the age of the oldest still
    queued or retrying: what an operator alerts on."""
    empty = await axis.store.delivery_gauges()
    assert (empty.queued, empty.fetched, empty.retrying, empty.dead) == (0, 0, 0, 0)
    assert empty.oldest_undelivered_at is None
    sender = await axis.register(G22)
    receiver = await axis.register(H41)
    sent = [(await send(axis, sender, [H41]))[0] for _ in range(5)]
    status, _ = await axis.get(receiver, f"/v1/inbox/{sent[4]}")  # fetched
    assert status == 200
    status, _ = await axis.post_json(receiver, f"/v1/inbox/{sent[3]}/ack", {"result": "done"})
    assert status == 200  # acked: not open, not counted
    jobs = await axis.store.claim_due([H41], limit=2, lease_seconds=60, worker_id="test")
    assert sorted(j.message_id for j in jobs) == sorted(sent[:2])
    first, second = sorted(jobs, key=lambda j: j.message_id == sent[1])
    later = datetime.now(UTC) + timedelta(hours=1)
    assert (
        await axis.store.record_attempt(
            first, Attempt(ok=False, status=503, error="503", retry_at=later)
        )
        == "retrying"
    )
    assert (
        await axis.store.record_attempt(
            second, Attempt(ok=False, status=410, error="410", gave_up="410 Gone")
        )
        == "dead"
    )
    gauges = await axis.store.delivery_gauges()
    assert (gauges.queued, gauges.fetched, gauges.retrying, gauges.dead) == (1, 1, 1, 1)
    _, oldest = await axis.get(sender, f"/v1/messages/{sent[0]}")  # retrying: the oldest
    assert gauges.oldest_undelivered_at == oldest["received_at"]
    async with axis.session.get(f"{axis.url}/metrics") as resp:
        scrape = await resp.text()
    assert metric_values(scrape, "axis_deliveries") == {
        '{state="queued"}': 1.0,
        '{state="fetched"}': 1.0,
        '{state="retrying"}': 1.0,
        '{state="dead"}': 1.0,
    }
    (age,) = metric_values(scrape, "axis_delivery_oldest_undelivered_seconds").values()
    received = datetime.fromisoformat(oldest["received_at"])
    assert 0 <= age <= (datetime.now(UTC) - received).total_seconds() + 1
    assert "# TYPE axis_deliveries gauge" in scrape


async def test_the_front_page_points_to_the_api_and_the_console(axis: AxisHarness) -> None:
    """`GET /` is a small JSON pointer for tools and an HTML page for browsers, not a 404."""
    status, index = await axis.get({}, "/")
    assert status == 200
    assert index["openapi"] == "/v1/openapi.yaml" and index["console"] == "/console/"
    status, spec = await axis.get({}, index["openapi"])
    assert status == 200 and spec.startswith(b"openapi: 3.1")
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with axis.session.get(f"{axis.url}/", headers=browser) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert 'href="/console/"' in page and 'href="/v1/openapi.yaml"' in page
