"""Administrators' endpoints: agencies with their pins and endpoints, and agency tokens."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from axis import codes, tokens
from axis.errors import InvalidRequest, NotFound
from axis.registry import Agency, Registry, agency_from_mapping
from axis.web.agencies import json_response
from axis.web.keys import REGISTRY, STORE
from axis.web.middleware import require


def admin_json(agency: Agency, token_ids: list[str]) -> dict[str, Any]:
    body = agency.public_json()
    body.update(
        {
            "endpoint": agency.endpoint,
            "push_secret_set": agency.push_secret is not None,
            "allow_sha1": agency.allow_sha1,
            "confirmed": agency.confirmed,
            "certificates": [c.to_json() for c in agency.certificates],
            "token_ids": token_ids,
        }
    )
    return body


def check_successor(agency: Agency, registry: Registry) -> None:
    """A successor must exist and be active, so forwarded mail always lands somewhere."""
    if agency.successor is None:
        return
    successor = registry.get(agency.successor)
    if successor is None:
        raise InvalidRequest(f"successor: {agency.successor} is not a registered agency")
    if successor.status != "active":
        raise InvalidRequest(f"successor: {agency.successor} is {successor.status}, not active")


async def list_agencies(request: web.Request) -> web.Response:
    await require(request, "admin")
    registry = await request.app[REGISTRY].current()
    tokens_by_organ: dict[str, list[str]] = {}
    for info in await request.app[STORE].list_tokens():
        if info.organ_id and info.revoked_at is None:
            tokens_by_organ.setdefault(info.organ_id, []).append(info.token_id)
    items = [
        admin_json(a, tokens_by_organ.get(a.organ_id, []))
        for a in sorted(registry.agencies.values(), key=lambda a: a.organ_id)
    ]
    return json_response({"items": items, "next_cursor": None})


async def get_agency(request: web.Request) -> web.Response:
    await require(request, "admin")
    organ_id = request.match_info["organ_id"]
    agency = (await request.app[REGISTRY].current()).get(organ_id)
    if agency is None:
        raise NotFound(f"agency {organ_id}: not registered")
    live = [
        t.token_id for t in await request.app[STORE].list_tokens(organ_id) if t.revoked_at is None
    ]
    return json_response(admin_json(agency, live))


async def put_agency(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    organ_id = request.match_info["organ_id"]
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: a JSON object describing the agency")
    agency = agency_from_mapping(organ_id, data)
    registry = await request.app[REGISTRY].reload()
    if agency.parent is not None and registry.get(agency.parent) is None:
        raise InvalidRequest(f"parent: {agency.parent} is not registered; register it first")
    check_successor(agency, registry)
    created = await request.app[STORE].put_agency(agency, actor=who.actor)
    registry = await request.app[REGISTRY].reload()
    stored = registry.get(organ_id)
    assert stored is not None
    return json_response(admin_json(stored, []), 201 if created else 200)


async def issue_agency_token(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    organ_id = request.match_info["organ_id"]
    codes.check_registrable(organ_id, field="organ_id")
    if (await request.app[REGISTRY].current()).get(organ_id) is None:
        raise NotFound(f"agency {organ_id}: not registered")
    token_id, token, token_hash = tokens.generate()
    await request.app[STORE].issue_token(token_id, token_hash, "agency", organ_id, actor=who.actor)
    return json_response({"token_id": token_id, "token": token}, 201)


async def revoke_token(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    token_id = request.match_info["token_id"]
    if not await request.app[STORE].revoke_token(token_id, actor=who.actor):
        raise NotFound(f"token {token_id}: no live token with that id")
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/admin/agencies", list_agencies)
    app.router.add_get("/v1/admin/agencies/{organ_id}", get_agency)
    app.router.add_put("/v1/admin/agencies/{organ_id}", put_agency)
    app.router.add_post("/v1/admin/agencies/{organ_id}/tokens", issue_agency_token)
    app.router.add_delete("/v1/admin/tokens/{token_id}", revoke_token)
