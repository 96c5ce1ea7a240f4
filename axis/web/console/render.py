"""Pages rendered on the server: one Jinja2 environment, the layout's context, error pages.

Autoescaping is on for every template (agency names, DocumentIds, error details are other
people's text). Every page is complete HTML that works with script disabled; the one script
(``static/console.js``) adds conveniences only. Answers carry a Content-Security-Policy that
lets the page load only the console's own style and script, and no framing.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from axis import cursor
from axis.model import Principal
from axis.web.console import i18n

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is signed in on this request: the token's principal and the session's CSRF token."""

    principal: Principal
    csrf: str
    session_hash: str

    @property
    def token_id(self) -> str:
        return self.principal.token_id

    @property
    def role(self) -> str:
        return self.principal.role

    @property
    def actor(self) -> str:
        """How audit events name the token (``admin:tok_…``), as for the API."""
        return self.principal.actor

    @property
    def is_admin(self) -> bool:
        return self.principal.role == "admin"


def _static_versions() -> dict[str, str]:
    """A digest per static file, put in its URL so a changed file is fetched again."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        for p in STATIC_DIR.iterdir()
        if p.is_file()
    }


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    versions = _static_versions()
    env.globals.update(
        static=lambda name: f"/console/static/{name}?v={versions.get(name, '0')}",
        label=i18n.label,
        labels={
            "state": i18n.DELIVERY_STATES,
            "status": i18n.AGENCY_STATUSES,
            "code": i18n.STATUS_CODES,
            "business": i18n.BUSINESS_TYPES,
            "kind": i18n.KINDS,
            "relation": i18n.RELATIONS,
            "role": i18n.ROLES,
            "event": i18n.EVENT_TYPES,
        },
        languages=i18n.LANGUAGES,
        cursor_at=cursor.encode,  # a newest-first page ending just before this position
    )
    env.filters.update(vn=i18n.vn_time, num=i18n.number, urlencode_all=_query)
    return env


def _query(params: dict[str, Any]) -> str:
    """A query string of the non-empty ``params``."""
    return urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})


ENV = web.AppKey("console_templates", jinja2.Environment)

NAV = (
    ("overview", "/console/", i18n.N_("Overview")),
    ("messages", "/console/messages", i18n.N_("Messages")),
    ("deliveries", "/console/deliveries", i18n.N_("Deliveries")),
    ("agencies", "/console/agencies", i18n.N_("Agencies")),
    ("audit", "/console/audit", i18n.N_("Audit")),
)


def here(request: web.Request) -> str:
    """This page's path and query, to come back to (after a language switch, a sign-in)."""
    return request.path_qs


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    viewer: Viewer | None,
    status: int = 200,
    section: str = "",
) -> web.Response:
    lang = i18n.current()
    other = next(code for code in i18n.LANGUAGES if code != lang)
    back = urllib.parse.quote(here(request) if request.method == "GET" else "/console/", safe="")
    page = (
        request.app[ENV]
        .get_template(template)
        .render(
            viewer=viewer,
            lang=lang,
            other_lang=other,
            other_lang_name=i18n.LANGUAGES[other],
            lang_switch_url=f"/console/language/{other}?next={back}",
            nav=[(key, href, i18n.gettext(text)) for key, href, text in NAV],
            section=section,
            csrf=viewer.csrf if viewer else "",
            **context,
        )
    )
    return web.Response(
        text=page, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


def error_page(
    request: web.Request,
    status: int,
    title: str,
    detail: str,
    *,
    viewer: Viewer | None,
    code: str = "",
) -> web.Response:
    """An error as a page: the same detail text the API gives, with what to do next."""
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail, "code": code},
        viewer=viewer,
        status=status,
    )
