"""Operations and public endpoints: health, readiness, metrics, the axis certificate, receipts."""

from __future__ import annotations

import shutil
import time
from datetime import datetime

from aiohttp import web

from axis import jobs, log, receipts, resources, timeutil
from axis.config import Settings
from axis.errors import NotFound, StoreError
from axis.metrics import CONTENT_TYPE as METRICS_TYPE
from axis.metrics import process_readings
from axis.model import DeliveryGauges, MessageRecord
from axis.store.protocol import Store
from axis.web.agencies import json_response, load_visible
from axis.web.keys import AXIS_CERTIFICATES, AXIS_KEY, METRICS, OPENAPI, REGISTRY, SETTINGS, STORE
from axis.web.middleware import problem_response
from axis.web.query import Query

_log = log.get("axis.web")

# What `GET /` points to: where a person or a tool finds the rest.
INDEX = {
    "name": "axis",
    "description": "The national document interchange axis: signed edXML in, routed, durable,"
    " receipted.",
    "api": "/v1",
    "openapi": "/v1/openapi.yaml",
    "docs": "/v1/openapi.yaml",
    "console": "/console/",
    "health": "/healthz",
    "ready": "/readyz",
    "metrics": "/metrics",
    "certificate": "/v1/axis/certificate",
}
_INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>axis</title></head>
<body>
<h1>axis</h1>
<p>The national document interchange axis: signed edXML in, routed, durable, receipted.</p>
<ul>
<li><a href="/console/">The console</a> (administrators and auditors)</li>
<li><a href="/v1/openapi.yaml">The API</a> (OpenAPI 3.1, every endpoint under <code>/v1</code>)</li>
<li><a href="/v1/axis/certificate">The axis certificate</a> (verifies receipts offline)</li>
<li><a href="/healthz">Health</a>, <a href="/readyz">readiness</a>,
  <a href="/metrics">metrics</a></li>
</ul>
</body></html>
"""


def _wants_html(request: web.Request) -> bool:
    """A browser asks for text/html before JSON; tools (curl's */*) get JSON."""
    best: tuple[float, str] = (0.0, "")
    for part in request.headers.get("Accept", "").split(","):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if media in ("text/html", "application/json") and quality > best[0]:
            best = (quality, media)
    return best[1] == "text/html"


async def index(request: web.Request) -> web.Response:
    """A pointer to the API, its description and the console, for a person or a tool."""
    Query(request)
    if _wants_html(request):
        return web.Response(text=_INDEX_HTML, content_type="text/html")
    return json_response(INDEX)


async def healthz(request: web.Request) -> web.Response:
    Query(request)
    return json_response({"ok": True})


def _disk_free(settings: Settings) -> int:
    """Bytes free where bodies are spooled and kept (the data directory)."""
    return shutil.disk_usage(settings.data).free


async def readyz(request: web.Request) -> web.Response:
    Query(request)
    details: dict[str, object] = {"signing_key": AXIS_KEY in request.app}
    try:
        details["store"] = await request.app[STORE].healthy()
    except Exception as exc:
        details["store"] = {"error": str(exc)}
        return problem_response(503, "not_ready", "Not ready", f"store: {exc}", details)
    settings = request.app[SETTINGS]
    free = _disk_free(settings)
    details["disk"] = {"path": str(settings.data), "free_bytes": free}
    if free < 2 * settings.max_bytes:  # say so before a package fails to fit
        return problem_response(
            503,
            "not_ready",
            "Not ready",
            f"disk: {free} bytes free in {settings.data}, under twice AXIS_MAX_BYTES",
            details,
        )
    # every certificate near expiry gets its audit event before readiness is claimed
    await jobs.report_expiring(request.app[STORE], request.app[REGISTRY])
    now = timeutil.now()
    registry = await request.app[REGISTRY].current()
    reported = await request.app[STORE].expiry_reported(now.date().isoformat())
    expiring = registry.expiring(now)
    details["certificates_expiring"] = [c.to_json() for c in expiring]
    unreported = [c for c in expiring if (c.organ_id, c.sha256) not in reported]
    if unreported:
        return problem_response(
            503, "not_ready", "Not ready", "certificates near expiry are unreported", details
        )
    return json_response({"ok": True, **details})


class GaugeCache:
    """The store's delivery gauges, read at most once a second whatever the scrape rate."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.read_at = -1.0
        self.value: DeliveryGauges | None = None

    async def get(self) -> DeliveryGauges:
        now = time.monotonic()
        if self.value is None or now - self.read_at >= 1.0:
            self.value = await self.store.delivery_gauges()
            self.read_at = now
        return self.value


GAUGES = web.AppKey("delivery_gauges", GaugeCache)


def _delivery_readings(gauges: DeliveryGauges) -> list[tuple[str, float]]:
    oldest = 0.0
    if gauges.oldest_undelivered_at is not None:
        since = datetime.fromisoformat(gauges.oldest_undelivered_at)
        oldest = max(0.0, (timeutil.now() - since).total_seconds())
    return [
        ('axis_deliveries{state="queued"}', float(gauges.queued)),
        ('axis_deliveries{state="fetched"}', float(gauges.fetched)),
        ('axis_deliveries{state="retrying"}', float(gauges.retrying)),
        ('axis_deliveries{state="dead"}', float(gauges.dead)),
        ("axis_delivery_oldest_undelivered_seconds", oldest),
    ]


async def metrics(request: web.Request) -> web.Response:
    Query(request)
    registry = await request.app[REGISTRY].current()
    expiring = len(registry.expiring(timeutil.now()))
    try:
        deliveries = _delivery_readings(await request.app[GAUGES].get())
    except StoreError as exc:  # the scrape still tells what it can while the store is down
        _log.warning("metrics_store_unreadable", error=str(exc))
        deliveries = []
    text = request.app[METRICS].render(
        [
            ("axis_agencies", float(len(registry.agencies))),
            *deliveries,
            ("axis_certificates_expiring_30d", float(expiring)),
            ("axis_disk_free_bytes", float(_disk_free(request.app[SETTINGS]))),
            *request.app[STORE].stats().items(),
            *process_readings(),
        ]
    )
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_TYPE})


async def axis_certificates(request: web.Request) -> web.Response:
    """The current certificate, then those of earlier keys: a PEM bundle for auditors."""
    Query(request)
    bundle = b"".join(pem.rstrip(b"\n") + b"\n" for pem in request.app[AXIS_CERTIFICATES])
    return web.Response(body=bundle, content_type="application/x-pem-file")


async def axis_certificate(request: web.Request) -> web.Response:
    Query(request)
    return web.Response(body=request.app[AXIS_KEY].cert_pem, content_type="application/x-pem-file")


def signed_receipt(app: web.Application, record: MessageRecord) -> bytes:
    """The receipt of ``record`` (as its reader may see it), signed now with the axis key."""
    return app[AXIS_KEY].sign_enveloped(receipts.build(record, axis_name="axis"))


async def receipt(request: web.Request) -> web.Response:
    """The signed receipt, as the caller may see the message: a recipient only its own row."""
    record = await load_visible(request)
    signed = signed_receipt(request.app, record)
    return web.Response(body=signed, content_type="application/xml", charset="utf-8")


_OPENAPI = resources.path("openapi.yaml")


async def openapi(request: web.Request) -> web.Response:
    """The API description, for integrators' tools; public like the axis certificate."""
    Query(request)
    if not request.app[OPENAPI]:
        raise NotFound("openapi.yaml is not installed beside this axis")
    return web.Response(body=request.app[OPENAPI], content_type="application/yaml")


def setup(app: web.Application) -> None:
    app[OPENAPI] = _OPENAPI.read_bytes()
    app[GAUGES] = GaugeCache(app[STORE])
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/axis/certificate", axis_certificate)
    app.router.add_get("/v1/axis/certificates", axis_certificates)
    app.router.add_get("/v1/openapi.yaml", openapi)
    app.router.add_get("/v1/messages/{id}/receipt", receipt)
