"""Administrators' endpoints: agencies with their pins and endpoints, tokens, expiry reports.

Beyond the contract (which it leaves open): ``GET /v1/admin/agencies`` takes the directory's
filters (``q``, ``status``, ``kind``); one agency's view carries its ``history``; a certificate
can be pinned or unpinned alone (``POST …/certificates``, ``DELETE …/certificates/{sha256}``)
so a rotation never has to resend the others; ``GET /v1/admin/tokens`` lists token metadata.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from aiohttp import web

from axis import codes, cursor, jobs, log, registry, timeutil, tokens
from axis.errors import InvalidRequest, NotFound
from axis.model import AgencyChange, TokenInfo
from axis.registry import Agency, Certificate, agency_from_mapping
from axis.web.agencies import json_response
from axis.web.body import read_json_body, read_small_body
from axis.web.keys import REGISTRY, SETTINGS, STORE
from axis.web.middleware import require
from axis.web.query import PAGING, Query

T = TypeVar("T")
_log = log.get("axis.admin")

"""Seconds between checks for certificates to report; a new day is noticed within this."""


# ----------------------------------------------------------------------- paging


def page(q: Query, items: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``) after the request's ``cursor``.

    The cursor is the last key shown, not an offset: an agency added while an administrator
    pages through is neither shown twice nor makes another one skipped.
    """
    limit = q.limit()
    after = cursor.after_key(q.cursor())
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
    q = Query(request, "status", "kind", "q", *PAGING)
    snapshot = await request.app[REGISTRY].current()
    status = q.choice("status", registry.STATUSES)
    matches = snapshot.search(q.text("q"), status=status, kind=q.text("kind"))
    chunk, next_cursor = page(q, matches, lambda a: a.organ_id)
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


_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


def _organ_id(request: web.Request) -> str:
    """The path's agency code, in the registry's form (or 400 saying what is wrong)."""
    return codes.check_registrable(request.match_info["organ_id"], field="organ_id")


async def _registered(request: web.Request, organ_id: str) -> Agency:
    agency = (await request.app[REGISTRY].current()).get(organ_id)
    if agency is None:
        raise NotFound(f"agency {organ_id}: not registered")
    return agency


async def get_agency(request: web.Request) -> web.Response:
    await require(request, "admin")
    Query(request)
    agency = await _registered(request, _organ_id(request))
    return json_response(await _agency_view(request, agency))


def _log_change(change: AgencyChange) -> None:
    """An administrator's act in the operational log too (the audit log has its event)."""
    level = "debug" if change.outcome == "unchanged" else "info"
    getattr(_log, level)(
        "agency_changed",
        organ_id=change.organ_id,
        outcome=change.outcome,
        fields=sorted(change.changes),
    )


async def _after_change(request: web.Request, change: AgencyChange, created: bool) -> web.Response:
    """Answer with the agency as stored (``changed`` reloaded the snapshot)."""
    stored = (await request.app[REGISTRY].current()).get(change.organ_id)
    assert stored is not None
    return json_response(await _agency_view(request, stored), 201 if created else 200)


# The changes themselves, shared by these endpoints and the console (axis/web/console): the
# same checks, the same errors, the same audit events naming the token.


async def changed(app: web.Application, change: AgencyChange) -> AgencyChange:
    """After a registry change: log it, reload the snapshot, report any new expiring pin."""
    _log_change(change)
    await app[REGISTRY].reload()
    await jobs.report_expiring(app[STORE], app[REGISTRY])
    return change


async def save_fields(
    app: web.Application, organ_id: str, data: dict[str, Any], *, actor: str
) -> AgencyChange:
    """Create or replace an agency's fields from a PUT body (``registry.agency_from_mapping``
    checks it, the store checks its links: a successor cycle is refused, naming the loop)."""
    snapshot = await app[REGISTRY].reload()
    agency = agency_from_mapping(organ_id, data, snapshot.get(organ_id))
    registry.check_certificates_unique(agency, snapshot)
    return await changed(app, await app[STORE].save_agency(agency, actor=actor))


async def pin_certificate(
    app: web.Application, organ_id: str, pem: str | bytes, *, actor: str
) -> AgencyChange:
    """Pin one more certificate (PEM), keeping the others; one pinned for another agency is
    refused naming it."""
    cert = Certificate.from_pem(pem)
    snapshot = await app[REGISTRY].reload()
    existing = snapshot.get(organ_id)
    if existing is not None:
        registry.check_certificates_unique(replace(existing, certificates=(cert,)), snapshot)
    return await changed(app, await app[STORE].add_certificate(organ_id, cert, actor=actor))


async def unpin_certificate(
    app: web.Application, organ_id: str, sha256: str, *, actor: str
) -> AgencyChange:
    sha256 = sha256.lower()
    if _SHA256.fullmatch(sha256) is None:
        raise InvalidRequest(f"sha256: 64 hex digits (the certificate's SHA-256), not {sha256!r}")
    change = await app[STORE].remove_certificate(organ_id, sha256, actor=actor)
    _log_change(change)
    await app[REGISTRY].reload()
    return change


async def issue_token_for(app: web.Application, organ_id: str, *, actor: str) -> tuple[str, str]:
    """A new token for a registered agency: ``(token_id, token)``, the token shown once."""
    codes.check_registrable(organ_id, field="organ_id")
    registry.check_token_holder((await app[REGISTRY].reload()).get(organ_id), organ_id)
    token_id, token, token_hash = tokens.generate()
    await app[STORE].issue_token(token_id, token_hash, "agency", organ_id, actor=actor)
    _log.info("token_issued", token_id=token_id, role="agency", organ_id=organ_id)
    return token_id, token


async def revoke_token_id(app: web.Application, token_id: str, *, actor: str) -> None:
    if not await app[STORE].revoke_token(token_id, actor=actor):
        raise NotFound(f"token {token_id}: no live token with that id")
    _log.info("token_revoked", token_id=token_id)


async def json_body(request: web.Request) -> dict[str, Any]:
    data = await read_json_body(request, request.app[SETTINGS], "a JSON object")
    if not isinstance(data, dict):
        raise InvalidRequest("body: a JSON object")
    return data


async def put_agency(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    Query(request)
    organ_id = request.match_info["organ_id"]
    data = await json_body(request)
    change = await save_fields(request.app, organ_id, data, actor=who.actor)
    return await _after_change(request, change, created=change.outcome == "added")


async def add_certificate(request: web.Request) -> web.Response:
    """Pin one more certificate, keeping the others: 201 when new, 200 when already pinned.

    The body is the PEM itself, or JSON ``{"certificate": PEM}``.
    """
    who = await require(request, "admin")
    Query(request)
    organ_id = _organ_id(request)
    pem: str | bytes
    if request.content_type == "application/json":
        given = (await json_body(request)).get("certificate")
        if not isinstance(given, str):
            raise InvalidRequest("certificate: a PEM string")
        pem = given
    else:
        pem = await read_small_body(request, request.app[SETTINGS])
    change = await pin_certificate(request.app, organ_id, pem, actor=who.actor)
    return await _after_change(request, change, created=change.outcome == "changed")


async def remove_certificate(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    Query(request)
    organ_id = _organ_id(request)
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
    Query(request)
    token_id, token = await issue_token_for(
        request.app, request.match_info["organ_id"], actor=who.actor
    )
    return json_response({"token_id": token_id, "token": token}, 201)


async def list_tokens(request: web.Request) -> web.Response:
    """Tokens by id; ``organ_id``, ``role`` filter; revoked ones only with ``revoked=true``."""
    await require(request, "admin")
    q = Query(request, "organ_id", "role", "revoked", *PAGING)
    organ_id = q.text("organ_id")
    role = q.choice("role", ("agency", "admin", "auditor"))
    revoked = q.flag("revoked")
    infos = sorted(
        (
            t
            for t in await request.app[STORE].list_tokens(organ_id)
            if (role is None or t.role == role) and (revoked or t.revoked_at is None)
        ),
        key=lambda t: t.token_id,
    )
    chunk, next_cursor = page(q, infos, lambda t: t.token_id)
    return json_response({"items": [token_json(t) for t in chunk], "next_cursor": next_cursor})


async def revoke_token(request: web.Request) -> web.Response:
    who = await require(request, "admin")
    Query(request)
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
