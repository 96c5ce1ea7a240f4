"""Administrators' endpoints for connected systems (VDXP): register, describe, rotate, disable.

A secret is made by the axis, shown once (in the answer that made it), and kept sealed under
``systems.key``. Every act is an audit event (the store's), and a log line here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from axis import log, secretbox
from axis.errors import InvalidRequest, NotFound
from axis.systems import ConnectedSystem, described
from axis.web.admin import json_body, page
from axis.web.agencies import json_response
from axis.web.keys import REGISTRY, SECRET_BOX, STORE
from axis.web.middleware import require
from axis.web.query import PAGING, Query

_log = log.get("axis.admin")


def new_secret(request: web.Request, system_id: str) -> tuple[str, str]:
    """A fresh secret and its sealed form, bound to ``system_id``."""
    secret = secretbox.new_secret()
    return secret, request.app[SECRET_BOX].seal(secret, system_id)


async def _changed(
    request: web.Request, system: ConnectedSystem, status: int = 200, **extra: Any
) -> web.Response:
    await request.app[REGISTRY].reload()
    return json_response({**system.to_json(), **extra}, status)


async def add_system(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    Query(request)
    data = await json_body(request)
    system_id = data.get("id")
    if not isinstance(system_id, str):
        raise InvalidRequest("id: the system's id, as its SDK configuration names it (systemid)")
    system = described(system_id, data)
    secret, sealed = new_secret(request, system.id)
    stored = await request.app[STORE].add_system(system, sealed, actor=who.actor)
    _log.info("system_registered", system=stored.id, agencies=list(stored.agencies))
    response = await _changed(request, stored, 201, secret=secret)
    response.headers["Location"] = f"/v1/admin/systems/{stored.id}"
    return response


async def list_systems(request: web.Request) -> web.Response:
    await require(request, "admin")
    q = Query(request, *PAGING)
    systems = await request.app[REGISTRY].systems()
    ordered = sorted(systems.systems.values(), key=lambda s: s.id)
    chunk, next_cursor = page(q, ordered, key=lambda s: s.id)
    return json_response({"items": [s.to_json() for s in chunk], "next_cursor": next_cursor})


async def _existing(request: web.Request) -> ConnectedSystem:
    system_id = request.match_info["id"]
    system = await request.app[STORE].system(system_id)
    if system is None:
        raise NotFound(f"system {system_id}: not registered")
    return system


async def get_system(request: web.Request) -> web.Response:
    await require(request, "admin")
    Query(request)
    return json_response((await _existing(request)).to_json())


async def put_system(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    Query(request)
    system = described(request.match_info["id"], await json_body(request))
    stored = await request.app[STORE].put_system(system, actor=who.actor)
    _log.info("system_changed", system=stored.id, status=stored.status)
    return await _changed(request, stored)


async def rotate_secret(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    Query(request)
    system = await _existing(request)
    secret, sealed = new_secret(request, system.id)
    stored = await request.app[STORE].rotate_system_secret(system.id, sealed, actor=who.actor)
    _log.info("system_secret_rotated", system=stored.id)
    await request.app[REGISTRY].reload()
    return json_response({"id": stored.id, "secret": secret, "previous_secret_valid": True})


async def retire_previous_secret(request: web.Request) -> web.Response:
    """Revoke the previous secret at once, without waiting for the new one to be used."""
    who = await require(request, "admin")
    Query(request)
    system = await _existing(request)
    store = request.app[STORE]
    if not await store.retire_previous_secret(system.id, actor=who.actor, reason="revoked"):
        raise NotFound(f"system {system.id}: no previous secret is valid")
    _log.info("system_secret_retired", system=system.id, reason="revoked")
    await request.app[REGISTRY].reload()
    return web.Response(status=204)


async def disable_system(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    Query(request)
    system = await _existing(request)
    stored = await request.app[STORE].disable_system(system.id, actor=who.actor)
    _log.info("system_disabled", system=stored.id)
    return await _changed(request, stored)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/admin/systems", add_system)
    app.router.add_get("/v1/admin/systems", list_systems)
    app.router.add_get("/v1/admin/systems/{id}", get_system)
    app.router.add_put("/v1/admin/systems/{id}", put_system)
    app.router.add_delete("/v1/admin/systems/{id}", disable_system)
    app.router.add_post("/v1/admin/systems/{id}/secret", rotate_secret)
    app.router.add_delete("/v1/admin/systems/{id}/secret/previous", retire_previous_secret)
