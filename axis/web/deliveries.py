"""HTTP endpoints: administrators' view of push deliveries, dead letters, redelivery (issue 4)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from axis import log
from axis.errors import NotFound
from axis.model import DELIVERY_STATES, DeliveryView
from axis.web.agencies import json_response
from axis.web.keys import STORE
from axis.web.middleware import require
from axis.web.query import PAGING, Query

_log = log.get("axis.admin")


def delivery_json(view: DeliveryView) -> dict[str, Any]:
    return {
        "delivery_id": view.delivery_id,
        "message_id": view.message_id,
        "kind": view.kind,
        "from": view.from_id,
        "document_id": view.document_id,
        "organ_id": view.delivered_to,
        "state": view.state,
        "attempts": view.attempts,
        "last_error": view.last_error,
        "updated_at": view.updated_at,
        "push_since": view.push_since,
        "next_attempt_at": view.next_attempt_at,
    }


async def list_deliveries(request: web.Request) -> web.Response:
    """``?state=dead&organ_id=…``: the dead letters (or any state), oldest first, paged."""
    await require(request, "admin")
    q = Query(request, "state", "organ_id", *PAGING)
    page = await request.app[STORE].deliveries(
        state=q.choice("state", DELIVERY_STATES),
        organ_id=q.text("organ_id"),  # an unknown code: an empty page
        cursor=q.cursor(),
        limit=q.limit(),
    )
    return json_response(
        {"items": [delivery_json(v) for v in page.items], "next_cursor": page.next_cursor}
    )


async def redeliver(request: web.Request) -> web.Response:
    """Start a delivery again (a dead letter, typically): queued, due now, a fresh max age."""
    who = await require(request, "admin")
    Query(request)
    delivery_id = request.match_info["delivery_id"]
    view = await request.app[STORE].redeliver(delivery_id, actor=who.actor)
    if view is None:
        raise NotFound(f"delivery {delivery_id}: no such delivery")
    _log.info(
        "delivery_redelivered",
        delivery_id=delivery_id,
        message_id=view.message_id,
        organ_id=view.delivered_to,
        attempts=view.attempts,
    )
    return json_response(delivery_json(view))


def setup(app: web.Application) -> None:
    """Add this module's routes (and resources) to the app."""
    app.router.add_get("/v1/admin/deliveries", list_deliveries)
    app.router.add_post("/v1/admin/deliveries/{delivery_id}/redeliver", redeliver)
