"""Deliveries that need an operator: pushes retrying, given up (dead), and deliveries their
recipient acknowledged as failed, newest first, each with its last error. An administrator
may redeliver a delivery that is still open, after a confirmation page; it is the API's
``POST /v1/admin/deliveries/{id}/redeliver`` (a new round: queued, due now, attempts kept)."""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from axis.errors import InvalidRequest, NotFound
from axis.model import CLOSED_STATES, DeliveryView
from axis.web.console import forms
from axis.web.console.auth import page, redirect
from axis.web.console.render import Viewer, render
from axis.web.keys import REGISTRY, STORE

PAGE = 50
LISTED = ("dead", "retrying", "failed")


@page(section="deliveries")
async def deliveries(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = forms.text(request, "state") or "dead"
    if state not in LISTED:
        raise InvalidRequest(f"state: one of {', '.join(LISTED)}, not {state!r}")
    registry = await request.app[REGISTRY].current()
    recipient = forms.resolve(registry, forms.text(request, "organ"))
    listing = None
    if recipient.code or not recipient.typed:
        listing = await request.app[STORE].recent_deliveries(
            state,
            organ_id=recipient.code,
            cursor=forms.text(request, "cursor") or None,
            limit=PAGE,
        )
    notice = ""
    if request.query.get("redelivered"):
        notice = request.query["redelivered"][:64]
    return render(
        request,
        "deliveries.html",
        {
            "state": state,
            "states": LISTED,
            "recipient": recipient,
            "listing": listing,
            "registry": registry,
            "redelivered": notice,
            "closed": CLOSED_STATES,
        },
        viewer=viewer,
        section="deliveries",
    )


async def _delivery(request: web.Request) -> DeliveryView:
    delivery_id = request.match_info["delivery_id"]
    view = await request.app[STORE].delivery(delivery_id)
    if view is None:
        raise NotFound(f"delivery {delivery_id}: no such delivery")
    return view


@page(admin=True, section="deliveries")
async def confirm_redeliver(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    view = await _delivery(request)
    registry = await request.app[REGISTRY].current()
    back = forms.text(request, "back") or "dead"
    return render(
        request,
        "redeliver.html",
        {
            "d": view,
            "registry": registry,
            "back": back if back in LISTED else "dead",
            "closed": view.state in CLOSED_STATES,
        },
        viewer=viewer,
        section="deliveries",
    )


@page(admin=True, section="deliveries")
async def redeliver(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    delivery_id = request.match_info["delivery_id"]
    back = await forms.form_text(request, "back")
    view = await request.app[STORE].redeliver(delivery_id, actor=viewer.actor)
    if view is None:
        raise NotFound(f"delivery {delivery_id}: no such delivery")
    query = urllib.parse.urlencode(
        {"state": back if back in LISTED else "dead", "redelivered": delivery_id}
    )
    return redirect(f"/console/deliveries?{query}")
