"""``create_app``: the aiohttp application, its routes and the resources it opens and closes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from axis import bootstrap
from axis.config import Settings
from axis.jobs import Jobs
from axis.metrics import Metrics
from axis.ratelimit import RateLimiter
from axis.registry_cache import RegistryCache
from axis.signing import AxisKey
from axis.store.protocol import Store
from axis.web import admin, agencies, audit, console, deliveries, ops, systems, vxp
from axis.web.keys import (
    AXIS_CERTIFICATES,
    AXIS_KEY,
    LIMITER,
    METRICS,
    REGISTRY,
    SECRET_BOX,
    SETTINGS,
    STORE,
)
from axis.web.middleware import problems


def create_app(
    settings: Settings, store: Store, axis_key: AxisKey, *, own_store: bool = True
) -> web.Application:
    """The whole HTTP API over one store; the store is opened and closed with the app."""
    app = web.Application(middlewares=[problems], client_max_size=settings.max_bytes + 1)
    app[SETTINGS] = settings
    app[STORE] = store
    app[AXIS_KEY] = axis_key
    app[AXIS_CERTIFICATES] = [axis_key.cert_pem, *bootstrap.previous_certificates(settings)]
    app[SECRET_BOX] = bootstrap.secret_box(settings)
    app[METRICS] = Metrics()
    app[REGISTRY] = RegistryCache(store)
    if settings.rate_limit > 0:
        app[LIMITER] = RateLimiter(settings.rate_limit, settings.effective_rate_burst)

    async def store_lifecycle(app: web.Application) -> AsyncIterator[None]:
        if own_store:
            await store.open()
        await store.check_schema()
        await app[REGISTRY].reload()
        jobs = Jobs(settings, store, axis_key, app[REGISTRY], app[METRICS])
        await jobs.start()
        try:
            yield
        finally:
            await jobs.stop()
            if own_store:
                await store.close()

    app.cleanup_ctx.append(store_lifecycle)
    ops.setup(app)
    agencies.setup(app)
    admin.setup(app)
    audit.setup(app)
    deliveries.setup(app)
    systems.setup(app)
    vxp.setup(app)
    console.setup(app)
    return app
