"""The periodic work of a running axis, the same in ``axis serve`` and in ``axis worker``.

- **Checkpoints.** Sign the audit chain's head every ``AXIS_AUDIT_CHECKPOINT_INTERVAL``
  seconds (when something happened since the last one) and once more on the way out.
- **Retention.** Purge the bodies of closed messages older than ``AXIS_RETENTION_DAYS``
  (when set), hourly or more often for short periods.
- **Certificate expiry.** Once a day per certificate, an audit event for every pinned
  certificate ending within 30 days (checked every ``EXPIRY_CHECK_EVERY`` seconds).
- **Push.** The push worker, unless ``AXIS_PUSH_ENABLED`` is false.

Several processes sharing a store may each run these: a checkpoint of the same head is kept
once, a body is purged once, a certificate reported once a day, and push leases keep workers
apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from axis import audit, log, timeutil
from axis.audit import Checkpoint
from axis.config import Settings
from axis.metrics import Metrics
from axis.push import PushWorker
from axis.registry import ExpiringCertificate
from axis.registry_cache import RegistryCache
from axis.signing import AxisKey
from axis.store.protocol import Store

_log = log.get("axis.jobs")
CHECKPOINT_ACTOR = "axis"
RETENTION_ACTOR = "axis:retention"
EXPIRY_ACTOR = "axis"
EXPIRY_CHECK_EVERY = 600.0


async def make_checkpoint(store: Store, key: AxisKey, *, actor: str) -> Checkpoint | None:
    """Sign the chain head and keep the checkpoint; None when nothing new needs signing."""
    head = await store.checkpoint_due()
    if head is None:
        return None
    seq, head_hash = head
    at = timeutil.fmt(timeutil.now())
    xml = key.sign_enveloped(audit.checkpoint_element(seq, head_hash, at, issuer="axis"))
    checkpoint = Checkpoint(seq, head_hash, at, xml)
    if not await store.add_checkpoint(checkpoint, actor=actor):
        return None
    _log.info("audit_checkpoint", seq=seq, hash=head_hash)
    return checkpoint


async def report_expiring(store: Store, registry: RegistryCache) -> list[ExpiringCertificate]:
    """Record today's audit event for every pinned certificate ending within 30 days.

    Called after each registry change and every ``EXPIRY_CHECK_EVERY`` seconds: the scan is
    over the in-memory snapshot, and the store writes only what it has not reported today.
    """
    now = timeutil.now()
    expiring = (await registry.current()).expiring(now)
    fresh = await store.report_expiring(expiring, day=now.date().isoformat(), actor=EXPIRY_ACTOR)
    if fresh:
        _log.warning(
            "certificates_expiring",
            count=len(fresh),
            organ_ids=sorted({c.organ_id for c in fresh}),
        )
    return fresh


class Jobs:
    """The background duties of one process; ``start`` and ``stop`` bracket them."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        key: AxisKey,
        registry: RegistryCache,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._store = store
        self._key = key
        self._registry = registry
        self._metrics = metrics
        self._tasks: list[asyncio.Task[None]] = []
        self.push: PushWorker | None = None

    async def start(self) -> None:
        settings = self._settings
        await self._expiry_check()
        self._every(EXPIRY_CHECK_EVERY, self._expiry_check, "axis-expiry")
        if settings.audit_checkpoint_interval > 0:
            self._every(settings.audit_checkpoint_interval, self._checkpoint, "axis-checkpoints")
        if settings.retention_days > 0:
            age = timedelta(days=settings.retention_days).total_seconds()
            self._every(min(3600.0, max(1.0, age / 4)), self._retention, "axis-retention", now=True)
        if settings.push_enabled:
            self.push = PushWorker(
                self._store, settings, registry=self._registry, metrics=self._metrics
            )
            await self.push.start()

    async def stop(self) -> None:
        """Stop every loop, give back claimed pushes, then sign a last checkpoint."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.push is not None:
            await self.push.stop()
            self.push = None
        await self._checkpoint()

    def _every(
        self, seconds: float, job: Callable[[], Awaitable[None]], name: str, *, now: bool = False
    ) -> None:
        async def loop() -> None:
            if now:
                await job()
            while True:
                await asyncio.sleep(seconds)
                await job()

        self._tasks.append(asyncio.create_task(loop(), name=name))

    async def _checkpoint(self) -> None:
        try:
            await make_checkpoint(self._store, self._key, actor=CHECKPOINT_ACTOR)
        except Exception as exc:  # the next round tries again; the log itself is intact
            _log.error("audit_checkpoint_failed", error=str(exc))

    async def _retention(self) -> None:
        age = timedelta(days=self._settings.retention_days)
        try:
            await self._store.purge_bodies(timeutil.now() - age, actor=RETENTION_ACTOR)
        except Exception as exc:
            _log.error("retention_failed", error=str(exc))

    async def _expiry_check(self) -> None:
        try:
            await report_expiring(self._store, self._registry)
        except Exception as exc:  # a failed report is retried at the next check
            _log.error("certificate_report_failed", error=str(exc))
