"""Agencies: the hierarchy (levels 1 to 4) to browse and search, and an agency's page.

The page shows its status and successor (and where its mail goes), its certificates and when
each ends, its push endpoint and whether pushes to it are failing (read from the store, see
``overview``), its tokens, its history, and (once the store can tell) its connected system.
Administrators suspend, reactivate or close it (with a successor), add or remove a
certificate, issue a token (shown once) and revoke one. Every change goes through the same
function as the admin API (``axis.web.admin``): the same checks, the same error texts (a
successor cycle is refused naming the loop), the same audit events naming the token.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from axis import codes, registry, timeutil
from axis.errors import InvalidRequest, NotFound
from axis.registry import EXPIRY_WARNING, Agency, sorted_certificates
from axis.web import admin
from axis.web.console import forms
from axis.web.console.auth import page, redirect
from axis.web.console.render import PAGE_HEADERS, Viewer, render
from axis.web.keys import REGISTRY, STORE

PAGE = 100
MAX_PEM = 64 * 1024


@page(section="agencies")
async def agencies(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    snapshot = await request.app[REGISTRY].current()
    q = forms.text(request, "q")
    status = forms.text(request, "status") or None
    if status is not None and status not in registry.STATUSES:
        raise InvalidRequest(f"status: one of {', '.join(registry.STATUSES)}, not {status!r}")
    parent = forms.text(request, "parent").upper() or None
    children: dict[str | None, int] = {}
    for agency in snapshot.agencies.values():
        children[agency.parent] = children.get(agency.parent, 0) + 1
    if q:
        found = snapshot.search(q, status=status)
    else:
        found = [
            a
            for a in snapshot.search(None, status=status)
            if a.parent == parent or (parent is None and a.parent is None)
        ]
    try:
        start = max(0, int(forms.text(request, "start") or 0))
    except ValueError:
        raise InvalidRequest("start: a number") from None
    trail: list[Agency] = []
    if parent is not None and not q:
        if snapshot.get(parent) is None:
            raise NotFound(f"agency {parent}: not registered")
        trail = [a for code in reversed(_ancestors(parent)) if (a := snapshot.get(code))]
        trail.append(snapshot.agencies[parent])
    return render(
        request,
        "agencies.html",
        {
            "q": q,
            "status": status,
            "parent": parent,
            "trail": trail,
            "items": found[start : start + PAGE],
            "total": len(found),
            "start": start,
            "next_start": start + PAGE if start + PAGE < len(found) else None,
            "children": children,
            "level": forms.level,
        },
        viewer=viewer,
        section="agencies",
    )


def _ancestors(code: str) -> tuple[str, ...]:
    try:
        return codes.ancestors(code)
    except InvalidRequest:
        return ()


async def _agency(request: web.Request) -> Agency:
    organ_id = request.match_info["organ_id"]
    agency = (await request.app[REGISTRY].current()).get(organ_id)
    if agency is None:
        raise NotFound(f"agency {organ_id}: not registered")
    return agency


def _page_url(organ_id: str, **notice: str) -> str:
    query = f"?{urllib.parse.urlencode(notice)}" if notice else ""
    return f"/console/agencies/{urllib.parse.quote(organ_id)}{query}"


@page(section="agencies")
async def agency_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    agency = await _agency(request)
    store = request.app[STORE]
    snapshot = await request.app[REGISTRY].current()
    now = timeutil.now()
    chain: tuple[str, ...] = ()
    if agency.status == "closed" and agency.successor:
        try:
            chain = snapshot.forward_chain(agency.organ_id)
        except InvalidRequest:
            chain = ()
    certificates = [
        {
            "cert": c,
            "state": c.state(now),
            "expiring": c.not_after <= now + EXPIRY_WARNING,
            "days": (c.not_after - now).days,
        }
        for c in sorted_certificates(agency.certificates)
    ]
    tokens = sorted(await store.list_tokens(agency.organ_id), key=lambda t: t.created_at)
    failing = await store.failing_endpoint(agency.organ_id) if agency.endpoint else None
    history = list(reversed(await store.agency_history(agency.organ_id)))
    # the connected system (VDXP) that serves the agency: its own listing or its nearest
    # listed ancestor's; None when it is served through /v1 only
    system = (await request.app[REGISTRY].systems()).serving(agency.organ_id)
    notice = {k: request.query[k][:200] for k in ("done", "token") if k in request.query}
    return render(
        request,
        "agency.html",
        {
            "a": agency,
            "registry": snapshot,
            "chain": chain,
            "certificates": certificates,
            "tokens": tokens,
            "failing": failing,
            "history": history,
            "system": system,
            "children": sum(1 for x in snapshot.agencies.values() if x.parent == agency.organ_id),
            "level": forms.level(agency.organ_id),
            "trail": [a for c in reversed(_ancestors(agency.organ_id)) if (a := snapshot.get(c))],
            "notice": notice,
        },
        viewer=viewer,
        section="agencies",
    )


@page(admin=True, section="agencies")
async def change_status(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Suspend, reactivate, or close with a successor: the agency's fields as they are, with
    the status (and successor) changed, saved as the API's PUT saves them."""
    agency = await _agency(request)
    status = await forms.form_text(request, "status")
    successor = (await forms.form_text(request, "successor")).upper() or None
    if status not in registry.STATUSES:
        raise InvalidRequest(f"status: one of {', '.join(registry.STATUSES)}, not {status!r}")
    data = registry.to_mapping(agency)
    del data["certificates"], data["push_secret"]  # kept as they are
    data["status"] = status
    data["successor"] = successor if status == "closed" else None
    change = await admin.save_fields(request.app, agency.organ_id, data, actor=viewer.actor)
    return redirect(_page_url(agency.organ_id, done=f"status_{change.outcome}"))


@page(admin=True, section="agencies")
async def add_certificate(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    agency = await _agency(request)
    form = await request.post()
    pem: str | bytes = ""
    upload = form.get("file")
    if isinstance(upload, web.FileField):
        pem = upload.file.read(MAX_PEM + 1)
    if not pem:
        pem = await forms.form_text(request, "pem", limit=MAX_PEM)
    if not pem:
        raise InvalidRequest("certificate: paste a PEM certificate or choose a file")
    if len(pem) > MAX_PEM:
        raise InvalidRequest(f"certificate: at most {MAX_PEM} bytes")
    change = await admin.pin_certificate(request.app, agency.organ_id, pem, actor=viewer.actor)
    return redirect(_page_url(agency.organ_id, done=f"certificate_{change.outcome}"))


@page(admin=True, section="agencies")
async def remove_certificate(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    agency = await _agency(request)
    sha256 = request.match_info["sha256"]
    await admin.unpin_certificate(request.app, agency.organ_id, sha256, actor=viewer.actor)
    return redirect(_page_url(agency.organ_id, done="certificate_removed"))


@page(admin=True, section="agencies")
async def issue_token(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The token is shown on this answer only (never stored, never shown again)."""
    agency = await _agency(request)
    token_id, token = await admin.issue_token_for(request.app, agency.organ_id, actor=viewer.actor)
    response = render(
        request,
        "token_issued.html",
        {"a": agency, "token_id": token_id, "token": token},
        viewer=viewer,
        status=201,
        section="agencies",
    )
    response.headers.update(PAGE_HEADERS)  # no-store: the secret stays out of caches
    return response


@page(admin=True, section="agencies")
async def revoke_token(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    token_id = request.match_info["token_id"]
    organ_id = await forms.form_text(request, "organ_id")
    await admin.revoke_token_id(request.app, token_id, actor=viewer.actor)
    if organ_id and (await request.app[REGISTRY].current()).get(organ_id):
        return redirect(_page_url(organ_id, done="token_revoked", token=token_id))
    return redirect("/console/agencies")
