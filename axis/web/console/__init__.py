"""The console for administrators and auditors, served by the axis under ``/console/``.

Server-rendered HTML (Jinja2, ``templates/``), no JavaScript build step and nothing fetched
from elsewhere: the style and the one small script are ours (``static/``), charts are SVG
drawn on the server, and every page works with script disabled. Vietnamese first, English
too (``locale/``, a switch on every page). Pages by module: ``overview``, ``messages``,
``deliveries``, ``agencies``, ``audit``; sign-in, sessions and the rules every page follows
(CSRF, roles, errors as pages) in ``auth``.
"""

from __future__ import annotations

import mimetypes

from aiohttp import web

from axis.ratelimit import RateLimiter
from axis.web.console import agencies, audit, auth, deliveries, i18n, messages, overview
from axis.web.console.render import ENV, STATIC_DIR, environment
from axis.web.keys import SETTINGS

STATIC = web.AppKey("console_static", dict)


async def _static(request: web.Request) -> web.StreamResponse:
    """Our own style and script; their URLs carry a digest, so they may be kept a day."""
    found = request.app[STATIC].get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    body, content_type = found
    return web.Response(
        body=body,
        content_type=content_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


async def _root(request: web.Request) -> web.StreamResponse:
    return auth.redirect("/console/")


def setup(app: web.Application) -> None:
    """Add the console's routes (unless ``AXIS_CONSOLE_ENABLED`` is false)."""
    settings = app[SETTINGS]
    if not settings.console_enabled:
        return
    i18n.load()
    app[ENV] = environment()
    app[STATIC] = {
        path.name: (path.read_bytes(), mimetypes.guess_type(path.name)[0] or "text/plain")
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }
    if settings.console_signin_rate > 0:
        rate = settings.console_signin_rate
        app[auth.LIMITER] = RateLimiter(rate / 60.0, max(1.0, rate))
    r = app.router
    r.add_get("/console", _root)
    r.add_get("/console/", overview.overview)
    r.add_get("/console/static/{name}", _static)
    r.add_get("/console/signin", auth.signin_form)
    r.add_post("/console/signin", auth.signin)
    r.add_post("/console/signout", auth.signout)
    r.add_get("/console/language/{lang}", auth.switch_language)
    r.add_get("/console/messages", messages.search)
    r.add_get("/console/messages/{id}", messages.message)
    r.add_get("/console/messages/{id}/receipt", messages.receipt)
    r.add_post("/console/messages/{id}/body", messages.body)
    r.add_get("/console/deliveries", deliveries.deliveries)
    r.add_get("/console/deliveries/{delivery_id}/redeliver", deliveries.confirm_redeliver)
    r.add_post("/console/deliveries/{delivery_id}/redeliver", deliveries.redeliver)
    r.add_get("/console/agencies", agencies.agencies)
    r.add_get("/console/agencies/{organ_id}", agencies.agency_page)
    r.add_post("/console/agencies/{organ_id}/status", agencies.change_status)
    r.add_post("/console/agencies/{organ_id}/certificates", agencies.add_certificate)
    r.add_post(
        "/console/agencies/{organ_id}/certificates/{sha256}/remove", agencies.remove_certificate
    )
    r.add_post("/console/agencies/{organ_id}/tokens", agencies.issue_token)
    r.add_post("/console/tokens/{token_id}/revoke", agencies.revoke_token)
    r.add_get("/console/audit", audit.events)
    r.add_get("/console/audit/verify", audit.verify)
    r.add_get("/console/audit/checkpoints", audit.checkpoints)
    r.add_get("/console/audit/checkpoints/{seq}", audit.checkpoint)
    r.add_get("/console/audit/export", audit.export)
    r.add_get("/console/{tail:.*}", auth.not_found)
