"""The push worker: claim due deliveries, POST them, record the outcome, back off (issue 4).

One *lane* per endpoint URL (usually one agency). A lane claims due deliveries for its
agencies in batches (a lease each, so a crashed process's deliveries fall due again by
themselves), posts at most ``push_concurrency`` at a time, and records every outcome with
its audit events. Lanes are independent tasks: a slow or dead agency fills only its own
slots, never another's. Each lane has a circuit breaker (``axis.retry.Breaker``): after
repeated failures it sends one probe at a time, spaced by a growing cooldown, while its queue
waits; a probe that succeeds closes the circuit and makes the whole backlog due at once.

The worker wakes at once when the store reports new deliveries (``mail_listeners``) and also
polls, for deliveries made by other processes sharing the store and for retries falling due.
It runs with the other background jobs (``axis.jobs``) in ``axis serve`` and ``axis worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import random
import secrets
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from axis import log, timeutil
from axis.config import Settings
from axis.metrics import Metrics
from axis.model import Attempt, PushJob
from axis.registry import Registry
from axis.registry_cache import RegistryCache
from axis.retry import Breaker, RetryPolicy, parse_retry_after
from axis.store.protocol import Store

_log = log.get("axis.push")
_CHUNK = 1 << 20
_ERROR_SNIPPET = 200  # characters of a refusing answer kept as last_error
USER_AGENT = "axis-push/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the endpoint did with one POST."""

    status: int | None  # None: no answer (connection failed, timed out)
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def endpoint_fault(self) -> bool:
        """Says the endpoint is unwell (counts for its breaker), not that one message is bad."""
        return self.status is None or self.status >= 500 or self.status == 429


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Axis-Signature``: ``sha256=`` hex HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def file_signature(secret: str, timestamp: str, path: Path) -> str:
    """``signature`` over a blob file, read in chunks (bodies may be 50 MB)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b".", hashlib.sha256)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            mac.update(chunk)
    return f"sha256={mac.hexdigest()}"


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verify https endpoints against the system trust store, or the configured CA bundle."""
    return ssl.create_default_context(cafile=settings.push_ca_bundle or None)


def endpoints(registry: Registry) -> dict[str, dict[str, str | None]]:
    """endpoint URL → {organ_id: push_secret} of the active agencies that registered it.

    Every endpoint in the registry was put there by an administrator, ``http://`` ones
    included: that is what "registered so" means (the registry refuses any other scheme).
    Suspended and closed agencies are not pushed to; their mail waits in the inbox.
    """
    out: dict[str, dict[str, str | None]] = {}
    for agency in registry.agencies.values():
        url = agency.endpoint
        if url and agency.status == "active" and url.startswith(("https://", "http://")):
            out.setdefault(url, {})[agency.organ_id] = agency.push_secret
    return out


async def _read_some(resp: aiohttp.ClientResponse, limit: int = 65536) -> bytes:
    """The answer's body, up to ``limit`` bytes (a receiver says little; more is dropped)."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class PushWorker:
    """Claims, posts, records; one lane per endpoint. ``start`` and ``stop`` bracket it."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        registry: RegistryCache | None = None,
        metrics: Metrics | None = None,
        poll: float = 1.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry or RegistryCache(store)
        self.metrics = metrics or Metrics()
        self.poll = poll
        self.policy = RetryPolicy(
            settings.push_retry_base, settings.push_retry_cap, settings.push_max_age
        )
        # a queued job must still have a whole timeout of lease left when it is posted
        self.lease = max(settings.push_lease, 2 * settings.push_timeout)
        self.batch = min(256, max(16, 16 * settings.push_concurrency))
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.random = random.Random()  # jitter, not secrets  # noqa: S311
        self.lanes: dict[str, Lane] = {}
        self._lane_of: dict[str, Lane] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the push worker is not started"
        return self._session

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ssl=ssl_context(self.settings), ttl_dns_cache=60
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.push_timeout),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
        )
        self.store.mail_listeners.append(self._on_mail)
        await self.sync()
        self._task = asyncio.create_task(self._supervise(), name="axis-push")
        _log.info("push_worker_started", worker=self.worker_id, lanes=len(self.lanes))

    async def stop(self) -> None:
        """Stop posting; deliveries claimed but not recorded are given back, due at once."""
        with contextlib.suppress(ValueError):
            self.store.mail_listeners.remove(self._on_mail)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(lane.stop() for lane in self.lanes.values()))
        self.lanes.clear()
        self._lane_of.clear()
        if self._session is not None:
            await self._session.close()
        _log.info("push_worker_stopped", worker=self.worker_id)

    async def sync(self) -> None:
        """Make the lanes match the registry: one per endpoint, with its agencies' secrets."""
        wanted = endpoints(await self.registry.current())
        for url in list(self.lanes):
            if url not in wanted:
                await self.lanes.pop(url).stop()
        for url, secrets_by_organ in wanted.items():
            lane = self.lanes.get(url)
            if lane is None:
                lane = self.lanes[url] = Lane(self, url)
            if lane.secrets != secrets_by_organ:
                lane.secrets = dict(secrets_by_organ)
                lane.poke()
        self._lane_of = {o: lane for lane in self.lanes.values() for o in lane.secrets}

    def _on_mail(self, organ_ids: Iterable[str]) -> None:
        for organ_id in organ_ids:
            lane = self._lane_of.get(organ_id)
            if lane is not None:
                lane.poke()
            else:
                self._kick.set()  # perhaps an endpoint registered since the last look

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll)
            self._kick.clear()
            try:
                await self.sync()
            except Exception as exc:  # a store hiccup: try again at the next poll
                _log.error("push_sync_failed", error=str(exc))
            await asyncio.sleep(0.05)  # mail to pull-only agencies must not make this spin

    # ------------------------------------------------------------------ one attempt

    async def post(self, url: str, secret: str | None, job: PushJob) -> Outcome:
        """POST the exact bytes with the contract's headers; never raises for the endpoint."""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/xml",
            "X-Axis-Message-Id": job.message_id,
            "X-Axis-Kind": job.kind,
            "X-Axis-From": job.from_id,
            "X-Axis-Timestamp": timestamp,
        }
        timeout = self.settings.push_timeout
        try:
            if job.body is not None:
                if secret is not None:
                    headers["X-Axis-Signature"] = signature(secret, timestamp, job.body)
                return await self._send(url, job.body, headers)
            if job.body_file is None:
                return Outcome(None, "body: the message has no stored body")
            if secret is not None:
                headers["X-Axis-Signature"] = await asyncio.to_thread(
                    file_signature, secret, timestamp, job.body_file
                )
            with job.body_file.open("rb") as fh:  # streamed by aiohttp, not loaded
                return await self._send(url, fh, headers)
        except TimeoutError:
            return Outcome(None, f"timeout: no answer within {timeout:g} s")
        except aiohttp.ClientSSLError as exc:
            return Outcome(None, f"tls: {exc}")
        except aiohttp.ClientError as exc:
            return Outcome(None, f"connection: {type(exc).__name__}: {exc}")
        except OSError as exc:
            return Outcome(None, f"body: {exc}")

    async def _send(self, url: str, data: object, headers: Mapping[str, str]) -> Outcome:
        async with self.session.post(
            url, data=data, headers=dict(headers), allow_redirects=False
        ) as resp:
            answer = await _read_some(resp)  # read to the end, so the connection is reused
            if 200 <= resp.status < 300:
                return Outcome(resp.status)
            text = " ".join(answer[:_ERROR_SNIPPET].decode("utf-8", "replace").split())
            error = f"HTTP {resp.status}" + (f": {text}" if text else "")
            after = parse_retry_after(resp.headers.get("Retry-After"), timeutil.now())
            return Outcome(resp.status, error, after)

    def decide(self, job: PushJob, outcome: Outcome, now: datetime) -> Attempt:
        """The retry policy's verdict on one failed or successful attempt."""
        if outcome.ok:
            return Attempt(ok=True, status=outcome.status)
        error = outcome.error or f"HTTP {outcome.status}"
        if outcome.status == 410:
            return Attempt(
                ok=False, status=410, error=error, gave_up="the endpoint answered 410 Gone"
            )
        age = (now - datetime.fromisoformat(job.push_since)).total_seconds()
        wait = self.policy.next_try(
            job.failures + 1, age, self.random.random(), retry_after=outcome.retry_after
        )
        if wait is None:
            why = f"no success within {self.policy.max_age:g} s of the first try"
            if outcome.retry_after is not None and age < self.policy.max_age:
                why = f"Retry-After {outcome.retry_after:g} s reaches past the maximum age"
            return Attempt(ok=False, status=outcome.status, error=error, gave_up=why)
        return Attempt(
            ok=False, status=outcome.status, error=error, retry_at=now + timedelta(seconds=wait)
        )


class Lane:
    """One endpoint: its queue of claimed jobs, its slots, its breaker."""

    def __init__(self, worker: PushWorker, url: str) -> None:
        self.worker = worker
        self.url = url
        self.secrets: dict[str, str | None] = {}
        settings = worker.settings
        self.concurrency = max(1, settings.push_concurrency)
        self.breaker = Breaker(settings.push_breaker_threshold, worker.policy)
        self.sweep_every = max(0.05, min(60.0, worker.policy.max_age / 50))
        self._queue: deque[tuple[PushJob, float]] = deque()  # (job, lease end, monotonic)
        self._in_flight: dict[asyncio.Task[None], PushJob] = {}  # waiting for the endpoint
        self._recording: dict[asyncio.Task[None], PushJob] = {}  # answered, being recorded
        self._wake = asyncio.Event()
        self._due_at = 0.0  # monotonic time the store said the next delivery falls due
        self._swept = 0.0
        self._task = asyncio.create_task(self._run(), name=f"axis-push {url}")

    @property
    def organ_ids(self) -> list[str]:
        return list(self.secrets)

    def poke(self) -> None:
        """New or redelivered mail: look in the store now."""
        self._due_at = 0.0
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the requests in flight, let the answered ones be recorded, give back the rest."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        posting = list(self._in_flight)
        jobs = [job for job, _ in self._queue] + list(self._in_flight.values())
        for task in posting:
            task.cancel()
        await asyncio.gather(*posting, *self._recording, return_exceptions=True)
        self._queue.clear()
        try:
            await self.worker.store.release(jobs)
        except Exception as exc:  # the leases lapse by themselves
            _log.warning("push_release_failed", endpoint=self.url, error=str(exc))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._step()
            except Exception as exc:  # the store failed us: the leases keep the jobs safe
                _log.error("push_lane_failed", endpoint=self.url, error=str(exc))
                await asyncio.sleep(self.worker.poll)
            await self._sleep()

    async def _step(self) -> None:
        store = self.worker.store
        now = time.monotonic()
        room = self.breaker.room(now, self.concurrency, len(self._in_flight))
        if room > len(self._queue) and now >= self._due_at and self.secrets:
            await self._refill()
        room = self.breaker.room(time.monotonic(), self.concurrency, len(self._in_flight))
        stale: list[PushJob] = []
        while room > 0 and self._queue:
            job, lease_end = self._queue.popleft()
            if (
                job.delivered_to not in self.secrets
                or time.monotonic() + self.worker.settings.push_timeout > lease_end
            ):
                stale.append(job)  # moved to another endpoint, or waited too long here
                continue
            task = asyncio.create_task(self._push(job))
            self._in_flight[task] = job
            task.add_done_callback(self._done)
            room -= 1
        if stale:
            self._due_at = 0.0
            await store.release(stale)
        if self.breaker.is_open and time.monotonic() - self._swept >= self.sweep_every:
            self._swept = time.monotonic()
            started_before = timeutil.now() - timedelta(seconds=self.worker.policy.max_age)
            dead = await store.expire_held(
                self.organ_ids,
                started_before=started_before,
                reason=f"endpoint failing (circuit open) for {self.worker.policy.max_age:g} s",
            )
            if dead:
                self.worker.metrics.inc("axis_push_dead_total", dead)
                _log.warning("delivery_dead", endpoint=self.url, count=dead, held=True)

    async def _refill(self) -> None:
        store = self.worker.store
        now = time.monotonic()
        due = await store.next_due(self.organ_ids)
        wall = timeutil.now()
        if due is None:
            self._due_at = now + self.worker.poll
            return
        if due > wall:
            self._due_at = now + min(self.worker.poll, (due - wall).total_seconds())
            return
        limit = 1 if self.breaker.is_open else self.worker.batch
        jobs = await store.claim_due(
            self.organ_ids,
            limit=limit,
            lease_seconds=self.worker.lease,
            worker_id=self.worker.worker_id,
        )
        lease_end = now + self.worker.lease
        self._queue.extend((job, lease_end) for job in jobs)
        # none: another process took them; more than we took may be due: look again soon
        self._due_at = now + 0.05 if not jobs else now

    async def _sleep(self) -> None:
        now = time.monotonic()
        in_flight = len(self._in_flight)
        room = self.breaker.room(now, self.concurrency, in_flight)
        if room == 0:
            # waiting for a slot (a completion wakes us) or for the breaker's clock
            timeout = self.worker.poll
            if not in_flight:
                timeout = min(timeout, self.breaker.wait(now))
        elif self._queue:
            timeout = 0.0
        else:
            timeout = min(self.worker.poll, max(0.0, self._due_at - now))
        if self.breaker.is_open:
            timeout = min(timeout, max(0.0, self._swept + self.sweep_every - now))
        if timeout <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _push(self, job: PushJob) -> None:
        worker = self.worker
        outcome = await worker.post(self.url, self.secrets.get(job.delivered_to), job)
        # the endpoint has answered: its slot is free while the outcome is being recorded
        # (a group commit's fsync), so the next request need not wait for the disk
        task = asyncio.current_task()
        if task is not None and self._in_flight.pop(task, None) is not None:
            self._recording[task] = job
            self._wake.set()
        try:
            now = time.monotonic()
            if outcome.ok or not outcome.endpoint_fault:
                if self.breaker.success():
                    _log.info("push_breaker_closed", endpoint=self.url)
                    await worker.store.hasten(self.organ_ids)
            elif self.breaker.failure(now, outcome.retry_after):
                _log.warning(
                    "push_breaker_opened",
                    endpoint=self.url,
                    failures=self.breaker.failures,
                    error=outcome.error,
                )
                queued = [queued_job for queued_job, _ in self._queue]
                self._queue.clear()
                await worker.store.release(queued)
            attempt = worker.decide(job, outcome, timeutil.now())
            state = await worker.store.record_attempt(job, attempt)
            self._note(job, attempt, state)
        except Exception as exc:  # recording failed: the lease lapses and it is tried again
            _log.error("push_record_failed", delivery_id=job.delivery_id, error=str(exc))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._recording.pop(task, None)
        self._due_at = 0.0  # the attempt moved its delivery's due time: look again
        self._wake.set()

    def _note(self, job: PushJob, attempt: Attempt, state: str | None) -> None:
        metrics = self.worker.metrics
        fields = {"delivery_id": job.delivery_id, "message_id": job.message_id}
        if state is None:
            _log.debug("push_result_skipped", **fields)
        elif state == "acked":
            metrics.inc("axis_push_acked_total")
            _log.info(
                "push_acked",
                **fields,
                organ_id=job.delivered_to,
                endpoint=self.url,
                status=attempt.status,
                attempt=job.attempts + 1,
            )
        elif state == "dead":
            metrics.inc("axis_push_failed_total")
            metrics.inc("axis_push_dead_total")
            _log.warning("delivery_dead", **fields, error=attempt.error, reason=attempt.gave_up)
        else:
            metrics.inc("axis_push_failed_total")
            _log.info(
                "push_attempt_failed",
                **fields,
                attempt=job.attempts + 1,
                error=attempt.error,
                retry_at=timeutil.fmt(attempt.retry_at) if attempt.retry_at else None,
            )
