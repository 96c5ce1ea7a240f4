"""Operations and public endpoints: health, readiness, metrics, the axis certificate, receipts."""

from __future__ import annotations

import shutil
from pathlib import Path

from aiohttp import web

from axis import jobs, receipts, timeutil
from axis.config import Settings
from axis.errors import NotFound
from axis.metrics import CONTENT_TYPE as METRICS_TYPE
from axis.metrics import process_readings
from axis.model import MessageRecord
from axis.web.agencies import json_response, load_visible
from axis.web.keys import AXIS_CERTIFICATES, AXIS_KEY, METRICS, OPENAPI, REGISTRY, SETTINGS, STORE
from axis.web.middleware import problem_response


async def healthz(request: web.Request) -> web.Response:
    return json_response({"ok": True})


def _disk_free(settings: Settings) -> int:
    """Bytes free where bodies are spooled and kept (the data directory)."""
    return shutil.disk_usage(settings.data).free


async def readyz(request: web.Request) -> web.Response:
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


async def metrics(request: web.Request) -> web.Response:
    registry = await request.app[REGISTRY].current()
    expiring = len(registry.expiring(timeutil.now()))
    text = request.app[METRICS].render(
        [
            ("axis_agencies", float(len(registry.agencies))),
            ("axis_certificates_expiring_30d", float(expiring)),
            ("axis_disk_free_bytes", float(_disk_free(request.app[SETTINGS]))),
            *request.app[STORE].stats().items(),
            *process_readings(),
        ]
    )
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_TYPE})


async def axis_certificates(request: web.Request) -> web.Response:
    """The current certificate, then those of earlier keys: a PEM bundle for auditors."""
    bundle = b"".join(pem.rstrip(b"\n") + b"\n" for pem in request.app[AXIS_CERTIFICATES])
    return web.Response(body=bundle, content_type="application/x-pem-file")


async def axis_certificate(request: web.Request) -> web.Response:
    return web.Response(body=request.app[AXIS_KEY].cert_pem, content_type="application/x-pem-file")


def signed_receipt(app: web.Application, record: MessageRecord) -> bytes:
    """The receipt of ``record`` (as its reader may see it), signed now with the axis key."""
    return app[AXIS_KEY].sign_enveloped(receipts.build(record, axis_name="axis"))


async def receipt(request: web.Request) -> web.Response:
    """The signed receipt, as the caller may see the message: a recipient only its own row."""
    record = await load_visible(request)
    signed = signed_receipt(request.app, record)
    return web.Response(body=signed, content_type="application/xml", charset="utf-8")


_OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"


async def openapi(request: web.Request) -> web.Response:
    """The API description, for integrators' tools; public like the axis certificate."""
    if not request.app[OPENAPI]:
        raise NotFound("openapi.yaml is not installed beside this axis")
    return web.Response(body=request.app[OPENAPI], content_type="application/yaml")


def setup(app: web.Application) -> None:
    app[OPENAPI] = _OPENAPI.read_bytes() if _OPENAPI.exists() else b""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/axis/certificate", axis_certificate)
    app.router.add_get("/v1/axis/certificates", axis_certificates)
    app.router.add_get("/v1/openapi.yaml", openapi)
    app.router.add_get("/v1/messages/{id}/receipt", receipt)
