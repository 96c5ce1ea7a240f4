"""Push delivery to real aiohttp receivers on 127.0.0.1: headers, HMAC, retries, dead letters."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import itertools
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from axis.config import Settings
from tests.support import pki
from tests.support.datadir import keyed_settings
from tests.support.harness import AxisHarness, TestAgency, start_axis
from tests.support.rawsql import raw_sql

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
H42 = "000.00.00.H42"
SECRET = "s3cret"
# short timings: first retry within 50 ms, at most 200 ms apart, dead after 2 s
FAST = {
    "AXIS_PUSH_RETRY_BASE": "0.05",
    "AXIS_PUSH_RETRY_CAP": "0.2",
    "AXIS_PUSH_MAX_AGE": "2",
    "AXIS_PUSH_TIMEOUT": "0.5",
    "AXIS_PUSH_CONCURRENCY": "2",
    "AXIS_PUSH_BREAKER_THRESHOLD": "100",
}


@dataclass
class Hit:
    """One request a receiver got."""

    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


Respond = Callable[["Receiver", web.Request, bytes], Awaitable[web.StreamResponse]]


async def ok(receiver: Receiver, request: web.Request, body: bytes) -> web.StreamResponse:
    return web.Response(status=200, text="ok")


@dataclass
class Receiver:
    """An agency's document system: records every push, answers as ``respond`` says."""

    respond: Respond = ok
    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    port: int = 0
    scheme: str = "http"
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """The endpoint to register (``https://`` when the receiver speaks TLS)."""
        return f"{self.scheme}://127.0.0.1:{self.port}/push"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.hits.append(Hit(dict(request.headers), body, time.monotonic()))
        self.arrived.set()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.respond(self, request, body)
        finally:
            self.in_flight -= 1

    async def wait_hits(self, n: int, within: float = 10.0) -> list[Hit]:
        """Until ``n`` requests have arrived (fails after ``within`` seconds)."""
        async with asyncio.timeout(within):
            while len(self.hits) < n:
                self.arrived.clear()
                await self.arrived.wait()
        return self.hits


@asynccontextmanager
async def receiving(
    respond: Respond = ok, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Receiver]:
    """A receiver listening on 127.0.0.1 (a free port), for the length of the block."""
    receiver = Receiver(respond, scheme="https" if tls else "http")
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/push", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        await runner.cleanup()


def fast_settings(tmp_path: Path, key_pair: tuple[bytes, bytes], **env: str) -> Settings:
    data = tmp_path / f"var{len(list(tmp_path.iterdir()))}"
    return keyed_settings(data, key_pair, {**FAST, **env})


MakeAxis = Callable[..., Any]


@pytest.fixture
def make_axis(tmp_path: Path, axis_key_pair: tuple[bytes, bytes]) -> MakeAxis:
    """An axis with push timings shortened for tests; extra AXIS_* variables as keywords."""

    def make(**env: str) -> Any:
        return start_axis(fast_settings(tmp_path, axis_key_pair, **env))

    return make


@pytest.fixture
async def push_axis(make_axis: MakeAxis) -> AsyncIterator[AxisHarness]:
    async with make_axis() as harness:
        yield harness


async def wait_state(
    axis: AxisHarness, who: TestAgency, message_id: str, state: str, within: float = 10.0
) -> dict[str, Any]:
    """The recipient row of the sender's view of ``message_id`` once it reaches ``state``."""
    async with asyncio.timeout(within):
        while True:
            status, view = await axis.get(who, f"/v1/messages/{message_id}")
            assert status == 200, view
            row: dict[str, Any] = view["recipients"][0]
            if row["state"] == state:
                return row
            await asyncio.sleep(0.02)


def events(axis: AxisHarness, message_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    assert axis.store.backend.dialect == "sqlite"  # type: ignore[attr-defined]
    return [
        (t, a, orjson.loads(d))
        for t, a, d in raw_sql(axis.store).execute(
            "SELECT type, actor, detail FROM audit_events WHERE message_id = ? ORDER BY seq",
            (message_id,),
        )
    ]


async def send(axis: AxisHarness, sender: TestAgency, to: list[str]) -> tuple[str, bytes]:
    body = axis.edoc(sender, to)
    status, answer = await axis.send(sender, body)
    assert status == 201, answer
    return answer["id"], body


async def inbox_ids(axis: AxisHarness, who: TestAgency) -> list[str]:
    status, page = await axis.get(who, "/v1/inbox")
    assert status == 200
    return [m["id"] for m in page["items"]]


# ---------------------------------------------------------------------------- the happy path


async def test_push_posts_the_exact_bytes_signed_and_acks(push_axis: AxisHarness) -> None:
    """The receiver gets the signed bytes, the contract's headers and a valid HMAC; 2xx acks."""
    axis = push_axis
    async with receiving() as receiver:
        sender = await axis.register(G22)
        recipient = await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, body = await send(axis, sender, [H41])
        (hit,) = await receiver.wait_hits(1)
        row = await wait_state(axis, sender, message_id, "acked")
    assert hit.body == body
    assert hit.headers["Content-Type"] == "application/xml"
    assert hit.headers["X-Axis-Message-Id"] == message_id
    assert hit.headers["X-Axis-Kind"] == "edoc"
    assert hit.headers["X-Axis-From"] == G22
    timestamp = hit.headers["X-Axis-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 300
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hit.headers["X-Axis-Signature"] == f"sha256={expected.hexdigest()}"
    assert (row["attempts"], row["last_error"]) == (1, None)
    assert await inbox_ids(axis, recipient) == []
    acked = [e for e in events(axis, message_id) if e[0] == "delivery_acked"]
    assert [(e[1], e[2]["via"], e[2]["status"]) for e in acked] == [("axis:push", "push", 200)]


async def test_a_receiver_checking_the_hmac_refuses_a_wrong_secret(
    push_axis: AxisHarness,
) -> None:
    """A receiver that verifies X-Axis-Signature accepts only what the registered secret signs."""
    axis = push_axis

    async def verify(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        timestamp = request.headers["X-Axis-Timestamp"]
        mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        good = hmac.compare_digest(
            request.headers.get("X-Axis-Signature", ""), f"sha256={mac.hexdigest()}"
        )
        return web.Response(status=204 if good else 401, text="" if good else "bad signature")

    async with receiving(verify) as receiver:
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=receiver.url, push_secret="not-the-secret")
        refused, _ = await send(axis, sender, [H41])
        row = await wait_state(axis, sender, refused, "retrying")
        assert row["last_error"] == "HTTP 401: bad signature"
        await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        await wait_state(axis, sender, refused, "acked")
        accepted, _ = await send(axis, sender, [H41])
        row = await wait_state(axis, sender, accepted, "acked")
    assert row["attempts"] == 1


async def test_a_status_packet_is_pushed_to_the_documents_sender(push_axis: AxisHarness) -> None:
    """Status packets travel by push too, with X-Axis-Kind: status."""
    axis = push_axis
    async with receiving() as receiver:
        sender = await axis.register(G22, endpoint=receiver.url, push_secret=SECRET)
        recipient = await axis.register(H41)
        document_id = f"{G22},2026/11/23,77/PUSH"
        body = axis.edoc(sender, [H41], document_id=document_id)
        assert (await axis.send(sender, body))[0] == 201
        status, answer = await axis.send_status(
            recipient, axis.status(recipient, G22, document_id, "01")
        )
        assert status == 201, answer
        (hit,) = await receiver.wait_hits(1)
    assert hit.headers["X-Axis-Kind"] == "status"
    assert hit.headers["X-Axis-Message-Id"] == answer["id"]
    assert hit.headers["X-Axis-From"] == H41


# ---------------------------------------------------------------------------- failures


async def test_a_receiver_failing_n_times_is_retried_until_it_succeeds(
    push_axis: AxisHarness,
) -> None:
    """Three 500s, then 200: four attempts, each failure recorded with its reason, then acked."""
    axis = push_axis

    async def flaky(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        if len(receiver.hits) <= 3:
            return web.Response(status=500, text="database down")
        return web.Response(status=200)

    async with receiving(flaky) as receiver:
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, body = await send(axis, sender, [H41])
        row = await wait_state(axis, sender, message_id, "acked")
    assert len(receiver.hits) == 4
    assert all(h.body == body for h in receiver.hits)
    assert (row["attempts"], row["last_error"]) == (4, "HTTP 500: database down")
    failed = [e[2] for e in events(axis, message_id) if e[0] == "push_attempt_failed"]
    assert [(f["attempt"], f["status"], f["error"]) for f in failed] == [
        (n, 500, "HTTP 500: database down") for n in (1, 2, 3)
    ]


async def test_a_receiver_hanging_past_the_timeout_is_retried(push_axis: AxisHarness) -> None:
    """No answer within AXIS_PUSH_TIMEOUT is a failed attempt ('timeout'), retried later."""
    axis = push_axis

    done = asyncio.Event()

    async def hang_once(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        if len(receiver.hits) == 1:
            await done.wait()  # the axis gives up after 0.5 s
        return web.Response(status=200)

    async with receiving(hang_once) as receiver:
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, _ = await send(axis, sender, [H41])
        row = await wait_state(axis, sender, message_id, "acked")
        done.set()
    assert row["attempts"] == 2
    assert row["last_error"] == "timeout: no answer within 0.5 s"
    (failed,) = [e[2] for e in events(axis, message_id) if e[0] == "push_attempt_failed"]
    assert failed["status"] is None


async def test_410_gives_up_at_once_and_redelivery_starts_again(push_axis: AxisHarness) -> None:
    """410 Gone: dead after one attempt, still in the inbox, a dead letter; redeliver pushes it."""
    axis = push_axis

    async def gone_once(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        return web.Response(status=410 if len(receiver.hits) == 1 else 200, text="")

    async with receiving(gone_once) as receiver:
        sender = await axis.register(G22)
        recipient = await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, _ = await send(axis, sender, [H41])
        row = await wait_state(axis, sender, message_id, "dead")
        assert (row["attempts"], row["last_error"]) == (1, "HTTP 410")
        assert await inbox_ids(axis, recipient) == [message_id]
        status, page = await axis.get(axis.admin, f"/v1/admin/deliveries?state=dead&organ_id={H41}")
        assert status == 200
        (dead,) = page["items"]
        assert (dead["message_id"], dead["organ_id"], dead["state"]) == (message_id, H41, "dead")
        assert dead["next_attempt_at"] is None and page["next_cursor"] is None
        await asyncio.sleep(0.3)  # several retry periods: a dead letter is not retried
        assert len(receiver.hits) == 1

        status, again = await axis.post_json(
            axis.admin, f"/v1/admin/deliveries/{dead['delivery_id']}/redeliver", {}
        )
        assert status == 200, again
        assert again["state"] == "queued"
        row = await wait_state(axis, sender, message_id, "acked")
    assert row["attempts"] == 2
    assert await inbox_ids(axis, recipient) == []
    types = [e[0] for e in events(axis, message_id)]
    assert types[-4:] == [
        "push_attempt_failed",
        "delivery_dead",
        "delivery_redelivered",
        "delivery_acked",
    ]
    (redelivered,) = [e for e in events(axis, message_id) if e[0] == "delivery_redelivered"]
    assert redelivered[1].startswith("admin:")
    dead_event = next(e for e in events(axis, message_id) if e[0] == "delivery_dead")
    assert dead_event[2]["reason"] == "the endpoint answered 410 Gone"


async def test_429_with_retry_after_is_honoured(push_axis: AxisHarness) -> None:
    """After 429 Retry-After: 1 the next try waits at least a second (the backoff alone: 50 ms)."""
    axis = push_axis

    async def busy_once(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        if len(receiver.hits) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        return web.Response(status=200)

    async with receiving(busy_once) as receiver:
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, _ = await send(axis, sender, [H41])
        row = await wait_state(axis, sender, message_id, "acked")
    first, second = receiver.hits
    assert second.at - first.at >= 0.95
    assert (row["attempts"], row["last_error"]) == (2, "HTTP 429: slow down")
    (failed,) = [e[2] for e in events(axis, message_id) if e[0] == "push_attempt_failed"]
    assert failed["status"] == 429


async def test_an_endpoint_failing_past_the_max_age_makes_a_dead_letter(
    make_axis: MakeAxis,
) -> None:
    """503 every time: retried with backoff until the max age, then dead, still in the inbox."""

    async def down(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        return web.Response(status=503, text="maintenance")

    async with make_axis(AXIS_PUSH_MAX_AGE="0.6") as axis, receiving(down) as receiver:
        sender = await axis.register(G22)
        recipient = await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, _ = await send(axis, sender, [H41])
        row = await wait_state(axis, sender, message_id, "dead")
        assert await inbox_ids(axis, recipient) == [message_id]
        dead = next(e[2] for e in events(axis, message_id) if e[0] == "delivery_dead")
    assert row["attempts"] == len(receiver.hits) >= 3
    assert row["last_error"] == "HTTP 503: maintenance"
    assert dead["reason"] == "no success within 0.6 s of the first try"


async def test_the_recipient_acking_by_pull_stops_the_push(push_axis: AxisHarness) -> None:
    """A recipient acking (pull) while a push is in flight: it stays acked, no more pushes."""
    axis = push_axis
    release = asyncio.Event()

    async def fail_slowly(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        await release.wait()
        return web.Response(status=500)

    async with receiving(fail_slowly) as receiver:
        sender = await axis.register(G22)
        recipient = await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, _ = await send(axis, sender, [H41])
        await receiver.wait_hits(1)  # a push is in flight
        status, _ = await axis.post_json(
            recipient, f"/v1/inbox/{message_id}/ack", {"result": "done"}
        )
        assert status == 200
        release.set()
        await asyncio.sleep(0.3)  # several retry periods
    assert len(receiver.hits) == 1
    status, view = await axis.get(sender, f"/v1/messages/{message_id}")
    assert view["recipients"][0]["state"] == "acked"
    assert view["recipients"][0]["attempts"] == 0
    assert [e[1] for e in events(axis, message_id) if e[0] == "delivery_acked"] == [f"agency:{H41}"]


# ---------------------------------------------------------------------------- isolation, breaker


async def test_a_hanging_agency_never_delays_another(make_axis: MakeAxis) -> None:
    """While one agency's endpoint holds every request, another's mail is pushed and acked."""
    stuck = asyncio.Event()

    async def hang(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        await stuck.wait()
        return web.Response(status=200)

    async with (
        make_axis(AXIS_PUSH_TIMEOUT="30") as axis,
        receiving(hang) as slow,
        receiving() as fast,
    ):
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=slow.url, push_secret=SECRET)
        await axis.register(H42, endpoint=fast.url, push_secret=SECRET)
        for _ in range(6):
            await send(axis, sender, [H41])
        await slow.wait_hits(2)  # both of H41's slots are taken
        wanted = [(await send(axis, sender, [H42]))[0] for _ in range(3)]
        await fast.wait_hits(3)
        for message_id in wanted:
            await wait_state(axis, sender, message_id, "acked")
        assert slow.peak == 2  # AXIS_PUSH_CONCURRENCY, per endpoint
        assert len(slow.hits) == 2
        stuck.set()


async def test_a_failing_endpoint_is_probed_not_hammered(make_axis: MakeAxis) -> None:
    """Past the breaker threshold one probe goes at a time; untried mail waits, then dies."""

    async def down(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        return web.Response(status=503, text="down")

    async with (
        make_axis(AXIS_PUSH_BREAKER_THRESHOLD="3", AXIS_PUSH_MAX_AGE="1") as axis,
        receiving(down) as receiver,
    ):
        sender = await axis.register(G22)
        recipient = await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        sent = [m for m, _ in await asyncio.gather(*(send(axis, sender, [H41]) for _ in range(30)))]
        for message_id in sent:
            await wait_state(axis, sender, message_id, "dead")
        assert sorted(await inbox_ids(axis, recipient)) == sorted(sent)
        status, page = await axis.get(axis.admin, "/v1/admin/deliveries?state=dead&limit=1000")
        assert (status, len(page["items"])) == (200, 30)
    # without the breaker each of the 30 would have been tried several times
    assert len(receiver.hits) < 30
    assert sum(1 for item in page["items"] if item["attempts"] == 0) > 0  # held, never tried
    assert receiver.peak <= 2
    # once open (3 failures, 2 in flight) probes come one by one, a cooldown (>= 50 ms) apart
    probes = [hit.at for hit in receiver.hits[5:]]
    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(probes))


async def test_an_endpoint_coming_back_gets_its_backlog_at_once(make_axis: MakeAxis) -> None:
    """When a probe succeeds the circuit closes and everything waiting is delivered."""
    up = asyncio.Event()

    async def flapping(receiver: Receiver, request: web.Request, body: bytes) -> web.Response:
        return web.Response(status=200 if up.is_set() else 503)

    async with (
        make_axis(
            AXIS_PUSH_BREAKER_THRESHOLD="2", AXIS_PUSH_MAX_AGE="60", AXIS_PUSH_RETRY_CAP="0.3"
        ) as axis,
        receiving(flapping) as receiver,
    ):
        sender = await axis.register(G22)
        recipient = await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        sent = [(await send(axis, sender, [H41]))[0] for _ in range(20)]
        await receiver.wait_hits(4)
        up.set()
        for message_id in sent:
            await wait_state(axis, sender, message_id, "acked")
        assert await inbox_ids(axis, recipient) == []


# ---------------------------------------------------------------------------- administration


async def test_delivery_administration_is_for_administrators(push_axis: AxisHarness) -> None:
    """Agencies get 403; bad filters 400; unknown deliveries 404; acknowledged ones 409."""
    axis = push_axis
    sender = await axis.register(G22)
    recipient = await axis.register(H41)
    message_id, _ = await send(axis, sender, [H41])
    status, body = await axis.get(sender, "/v1/admin/deliveries")
    assert (status, body["code"]) == (403, "forbidden")
    status, body = await axis.get(axis.admin, "/v1/admin/deliveries?state=lost")
    assert (status, body["code"]) == (400, "invalid_request")
    assert "state" in body["detail"]
    status, body = await axis.get(axis.admin, "/v1/admin/deliveries?limit=0")
    assert status == 400
    status, body = await axis.post_json(axis.admin, "/v1/admin/deliveries/dlv_x/redeliver", {})
    assert (status, body["code"]) == (404, "not_found")
    status, page = await axis.get(axis.admin, f"/v1/admin/deliveries?organ_id={H41}")
    (item,) = page["items"]
    assert (item["state"], item["attempts"], item["from"]) == ("queued", 0, G22)
    status, body = await axis.post_json(
        sender, f"/v1/admin/deliveries/{item['delivery_id']}/redeliver", {}
    )
    assert status == 403
    await axis.post_json(recipient, f"/v1/inbox/{message_id}/ack", {"result": "done"})
    status, body = await axis.post_json(
        axis.admin, f"/v1/admin/deliveries/{item['delivery_id']}/redeliver", {}
    )
    assert (status, body["code"]) == (409, "duplicate_conflict")


async def test_delivery_listing_pages_with_a_cursor(push_axis: AxisHarness) -> None:
    """The administrator's listing chains pages through next_cursor, oldest first."""
    axis = push_axis
    sender = await axis.register(G22)
    await axis.register(H41)
    sent = [(await send(axis, sender, [H41]))[0] for _ in range(5)]
    seen: list[str] = []
    path = f"/v1/admin/deliveries?state=queued&organ_id={H41}&limit=2"
    cursor = ""
    while True:
        status, page = await axis.get(axis.admin, path + cursor)
        assert status == 200
        assert len(page["items"]) <= 2
        seen += [item["message_id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == sent


# ---------------------------------------------------------------------------- TLS


def tls_pair(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A receiver's TLS context (a test CA's certificate for 127.0.0.1) and the CA's PEM file."""
    ca = pki.identity("rsa2048", common_name="Push test CA", slot=91, is_ca=True)
    key = pki.rsa_key(2048, slot=92)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.now() - timedelta(days=1))
        .not_valid_after(pki.now() + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    leaf = pki.Identity(key, cert)
    (folder / "server.pem").write_bytes(leaf.cert_pem)
    (folder / "server.key").write_bytes(leaf.key_pem)
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return context, folder / "ca.pem"


async def test_https_endpoints_are_verified_against_the_configured_ca(
    make_axis: MakeAxis, tmp_path: Path
) -> None:
    """With AXIS_PUSH_CA_BUNDLE the receiver's certificate verifies; without it, it does not."""
    context, ca_file = tls_pair(tmp_path)
    async with receiving(tls=context) as receiver:
        url = receiver.url
        assert url.startswith("https://")
        async with make_axis(AXIS_PUSH_CA_BUNDLE=str(ca_file)) as axis:
            sender = await axis.register(G22)
            await axis.register(H41, endpoint=url, push_secret=SECRET)
            message_id, _ = await send(axis, sender, [H41])
            row = await wait_state(axis, sender, message_id, "acked")
            assert row["attempts"] == 1
        async with make_axis() as axis:  # the system trust store does not know the test CA
            sender = await axis.register(G22)
            await axis.register(H41, endpoint=url, push_secret=SECRET)
            message_id, _ = await send(axis, sender, [H41])
            row = await wait_state(axis, sender, message_id, "retrying")
            assert row["last_error"].startswith("tls: ")
            assert "certificate verify failed" in row["last_error"]
    assert len(receiver.hits) == 1  # the unverified endpoint never got the bytes


async def test_a_body_kept_as_a_blob_file_is_streamed_and_signed(make_axis: MakeAxis) -> None:
    """Bodies stored beside the database (over AXIS_INLINE_MAX) are pushed byte for byte."""
    async with make_axis(AXIS_INLINE_MAX="1024") as axis, receiving() as receiver:
        sender = await axis.register(G22)
        await axis.register(H41, endpoint=receiver.url, push_secret=SECRET)
        message_id, body = await send(axis, sender, [H41])
        assert len(body) > 1024
        (hit,) = await receiver.wait_hits(1)
        await wait_state(axis, sender, message_id, "acked")
        assert axis.store.backend.dialect == "sqlite"  # type: ignore[attr-defined]
        inline, path = (
            raw_sql(axis.store)
            .execute("SELECT body, body_file FROM messages WHERE id = ?", (message_id,))
            .fetchone()
        )
        assert inline is None and path is not None
    assert hit.body == body
    timestamp = hit.headers["X-Axis-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hit.headers["X-Axis-Signature"] == f"sha256={expected.hexdigest()}"
