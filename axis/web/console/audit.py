"""Audit: events newest first with filters, the chain verified on demand, the signed
checkpoints to download, and an export of a filtered period (CSV or JSON lines, streamed as
the API's ``GET /v1/audit/export`` streams it)."""

from __future__ import annotations

from aiohttp import web

from axis.errors import InvalidRequest, NotFound
from axis.model import EVENT_TYPES, AuditFilter
from axis.web.audit import FORMATS, stream_events
from axis.web.console import forms
from axis.web.console.auth import page
from axis.web.console.render import Viewer, render
from axis.web.keys import AXIS_CERTIFICATES, REGISTRY, STORE

PAGE = 50


def _filter(request: web.Request) -> AuditFilter:
    since, until = forms.period(request)
    type_ = forms.text(request, "type") or None
    if type_ is not None and type_ not in EVENT_TYPES:
        raise InvalidRequest(f"type: one of {', '.join(EVENT_TYPES)}, not {type_!r}")
    return AuditFilter(
        organ_id=forms.text(request, "organ").upper() or None,
        document_id=forms.text(request, "document_id") or None,
        message_id=forms.text(request, "message_id") or None,
        type=type_,
        since=since,
        until=until,
    )


def _params(request: web.Request) -> dict[str, str]:
    names = ("type", "organ", "message_id", "document_id", "from", "to")
    return {name: forms.text(request, name) for name in names}


@page(section="audit")
async def events(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    where = _filter(request)
    result = await request.app[STORE].audit_back(
        where, cursor=forms.text(request, "cursor") or None, limit=PAGE
    )
    head = await request.app[STORE].audit_head()
    return render(
        request,
        "audit.html",
        {
            "params": _params(request),
            "result": result,
            "types": EVENT_TYPES,
            "head": head,
            "formats": FORMATS,
            "registry": await request.app[REGISTRY].current(),
        },
        viewer=viewer,
        section="audit",
    )


@page(section="audit")
async def verify(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The whole chain and every checkpoint, off the event loop (it may take a while)."""
    certificates = request.app[AXIS_CERTIFICATES]
    verdict = await request.app[STORE].verify_audit(certificates)
    return render(request, "verify.html", {"verdict": verdict}, viewer=viewer, section="audit")


@page(section="audit")
async def checkpoints(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    listing = await request.app[STORE].checkpoints_back(
        cursor=forms.text(request, "cursor") or None, limit=PAGE
    )
    return render(request, "checkpoints.html", {"listing": listing}, viewer=viewer, section="audit")


@page(section="audit")
async def checkpoint(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    raw = request.match_info["seq"]
    if not raw.isdigit() or len(raw) > 19:
        raise InvalidRequest(f"seq: an event number, not {raw!r}")
    found = await request.app[STORE].checkpoint(int(raw))
    if found is None:
        raise NotFound(f"checkpoint {raw}: none")
    return web.Response(
        body=found.xml,
        content_type="application/xml",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="checkpoint-{found.seq}.xml"',
            "Cache-Control": "no-store",
        },
    )


@page(section="audit")
async def export(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    name = forms.text(request, "format") or "csv"
    if name not in FORMATS:
        raise InvalidRequest(f"format: one of {', '.join(FORMATS)}, not {name!r}")
    return await stream_events(request, _filter(request), name)
