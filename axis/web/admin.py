"""Administrators' endpoints: agencies with their pins and endpoints, tokens, expiry reports.

Beyond the contract (which it leaves open): ``GET /v1/admin/agencies`` takes the directory's
filters (``q``, ``status``, ``kind``); one agency's view carries its ``history``; a certificate
can be pinned or unpinned alone (``POST …/certificates``, ``DELETE …/certificates/{sha256}``)
so a rotation never has to resend the others; ``GET /v1/admin/tokens`` lists token metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from aiohttp import web

from axis import codes, cursor, jobs, log, registry, timeutil, tokens
from axis.errors import InvalidRequest, NotFound
from axis.model import AgencyChange, TokenInfo
from axis.registry import Agency, Certificate, agency_from_mapping
from axis.web import query
from axis.web.agencies import json_response
from axis.web.keys import REGISTRY, STORE
from axis.web.middleware import require

T = TypeVar("T")
_log = log.get("axis.admin")

"""Seconds between checks for certificates to report; a new day is noticed within this."""


# ----------------------------------------------------------------------- paging


def page(
    request: web.Request, items: Sequence[T], key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``) after the request's ``cursor``.

    The cursor is the last key shown, not an offset: an agency added while an administrator
    pages through is neither shown twice nor makes another one skipped.
    """
    limit = query.limit(request)
    after = cursor.after_key(request.query.get("cursor"))
    rest = [i for i in items if after is None or key(i) > after]
    chunk = rest[:limit]
    more = len(rest) > limit
    return chunk, cursor.encode(key(chunk[-1])) if more else None


# ----------------------------------------------------------------------- agencies


async def _live_token_ids(
    request: web.Request, organ_id: str | None = None
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for info in await request.app[STORE].list_tokens(organ_id):
        if info.organ_id and info.revoked_at is None:
            out.setdefault(info.organ_id, []).append(info.token_id)
    return out


async def list_agencies(request: web.Request) -> web.Response:
    await require(request, "admin")
    snapshot = await request.app[REGISTRY].current()
    status = query.choice(request, "status", registry.STATUSES)
    matches = snapshot.search(
        request.query.get("q"), status=status, kind=request.query.get("kind") or None
    )
    chunk, next_cursor = page(request, matches, lambda a: a.organ_id)
    token_ids = await _live_token_ids(request)
    now = timeutil.now()
    items = [registry.admin_json(a, token_ids.get(a.organ_id, []), now) for a in chunk]
    return json_response({"items": items, "next_cursor": next_cursor})


async def _agency_view(request: web.Request, agency: Agency) -> dict[str, Any]:
    token_ids = await _live_token_ids(request, agency.organ_id)
    body = registry.admin_json(agency, token_ids.get(agency.organ_id, []), timeutil.now())
    history = await request.app[STORE].agency_history(agency.organ_id)
    body["history"] = [h.to_json() for h in history]
    return body


async def _registered(request: web.Request, organ_id: str) -> Agency:
    agency = (await request.app[REGISTRY].current()).get(organ_id)
    if agency is None:
        raise NotFound(f"agency {organ_id}: not registered")
    return agency


async def get_agency(request: web.Request) -> web.Response:
    await require(request, "admin")
    agency = await _registered(request, request.match_info["organ_id"])
    return json_response(await _agency_view(request, agency))


async def _after_change(request: web.Request, change: AgencyChange, created: bool) -> web.Response:
    """Answer with the agency as stored (``changed`` reloaded the snapshot)."""
    stored = (await request.app[REGISTRY].current()).get(change.organ_id)
    assert stored is not None
    return json_response(await _agency_view(request, stored), 201 if created else 200)


# The changes themselves, shared by these endpoints and the console (axis/web/console): the
# same checks, the same errors, the same audit events naming the token.


async def changed(app: web.Application, change: AgencyChange) -> AgencyChange:
    """After a registry change: reload the snapshot, report any new expiring pin."""
    await app[REGISTRY].reload()
    await jobs.report_expiring(app[STORE], app[REGISTRY])
    return change


async def save_fields(
    app: web.Application, organ_id: str, data: dict[str, Any], *, actor: str
) -> AgencyChange:
    """Create or replace an agency's fields from a PUT body (``registry.agency_from_mapping``
    checks it, the store checks its links: a successor cycle is refused, naming the loop)."""
    existing = (await app[REGISTRY].reload()).get(organ_id)
    agency = agency_from_mapping(organ_id, data, existing)
    return await changed(app, await app[STORE].save_agency(agency, actor=actor))


async def pin_certificate(
    app: web.Application, organ_id: str, pem: str | bytes, *, actor: str
) -> AgencyChange:
    """Pin one more certificate (PEM), keeping the others."""
    cert = Certificate.from_pem(pem)
    return await changed(app, await app[STORE].add_certificate(organ_id, cert, actor=actor))


async def unpin_certificate(
    app: web.Application, organ_id: str, sha256: str, *, actor: str
) -> AgencyChange:
    change = await app[STORE].remove_certificate(organ_id, sha256.lower(), actor=actor)
    await app[REGISTRY].reload()
    return change


async def issue_token_for(app: web.Application, organ_id: str, *, actor: str) -> tuple[str, str]:
    """A new token for a registered agency: ``(token_id, token)``, the token shown once."""
    codes.check_registrable(organ_id, field="organ_id")
    if (await app[REGISTRY].current()).get(organ_id) is None:
        raise NotFound(f"agency {organ_id}: not registered")
    token_id, token, token_hash = tokens.generate()
    await app[STORE].issue_token(token_id, token_hash, "agency", organ_id, actor=actor)
    return token_id, token


async def revoke_token_id(app: web.Application, token_id: str, *, actor: str) -> None:
    if not await app[STORE].revoke_token(token_id, actor=actor):
        raise NotFound(f"token {token_id}: no live token with that id")


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: a JSON object")
    return data


async def put_agency(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    organ_id = request.match_info["organ_id"]
    data = await _json_body(request)
    change = await save_fields(request.app, organ_id, data, actor=who.actor)
    return await _after_change(request, change, created=change.outcome == "added")


async def add_certificate(request: web.Request) -> web.Response:
    """Pin one more certificate, keeping the others: 201 when new, 200 when already pinned.

    The body is the PEM itself, or JSON ``{"certificate": PEM}``.
    """
    who = await require(request, "admin")
    organ_id = request.match_info["organ_id"]
    pem: str | bytes
    if request.content_type == "application/json":
        given = (await _json_body(request)).get("certificate")
        if not isinstance(given, str):
            raise InvalidRequest("certificate: a PEM string")
        pem = given
    else:
        pem = await request.read()
    change = await pin_certificate(request.app, organ_id, pem, actor=who.actor)
    return await _after_change(request, change, created=change.outcome == "changed")


async def remove_certificate(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    organ_id = request.match_info["organ_id"]
    await unpin_certificate(request.app, organ_id, request.match_info["sha256"], actor=who.actor)
    return web.Response(status=204)


# ----------------------------------------------------------------------- tokens


def token_json(info: TokenInfo) -> dict[str, Any]:
    """Token metadata; the secret is never stored, and its hash is never shown."""
    return {
        "token_id": info.token_id,
        "role": info.role,
        "organ_id": info.organ_id,
        "created_at": info.created_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
    }


async def issue_agency_token(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    token_id, token = await issue_token_for(
        request.app, request.match_info["organ_id"], actor=who.actor
    )
    return json_response({"token_id": token_id, "token": token}, 201)


async def list_tokens(request: web.Request) -> web.Response:
    """Tokens by id; ``organ_id``, ``role`` filter; revoked ones only with ``revoked=true``."""
    await require(request, "admin")
    organ_id = request.query.get("organ_id") or None
    role = query.choice(request, "role", ("agency", "admin", "auditor"))
    revoked = query.choice(request, "revoked", ("true", "false")) == "true"
    infos = sorted(
        (
            t
            for t in await request.app[STORE].list_tokens(organ_id)
            if (role is None or t.role == role) and (revoked or t.revoked_at is None)
        ),
        key=lambda t: t.token_id,
    )
    chunk, next_cursor = page(request, infos, lambda t: t.token_id)
    return json_response({"items": [token_json(t) for t in chunk], "next_cursor": next_cursor})


async def revoke_token(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    await revoke_token_id(request.app, request.match_info["token_id"], actor=who.actor)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/admin/agencies", list_agencies)
    app.router.add_get("/v1/admin/agencies/{organ_id}", get_agency)
    app.router.add_put("/v1/admin/agencies/{organ_id}", put_agency)
    app.router.add_post("/v1/admin/agencies/{organ_id}/certificates", add_certificate)
    app.router.add_delete("/v1/admin/agencies/{organ_id}/certificates/{sha256}", remove_certificate)
    app.router.add_post("/v1/admin/agencies/{organ_id}/tokens", issue_agency_token)
    app.router.add_get("/v1/admin/tokens", list_tokens)
    app.router.add_delete("/v1/admin/tokens/{token_id}", revoke_token)
