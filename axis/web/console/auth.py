"""Signing in, sessions and the rules every console page goes through.

- **Sign-in** takes an admin or auditor token (an agency's is refused) and gives the browser
  a session cookie: 256 random bits, ``HttpOnly``, ``SameSite=Strict``, ``Path=/console``,
  ``Secure`` when the request came over TLS (or ``AXIS_CONSOLE_SECURE_COOKIE``). The store
  keeps only its SHA-256 and the token it stands for, so every process and node knows the
  session, and revoking the token ends it. A session ends after ``AXIS_CONSOLE_IDLE`` seconds
  without a request and ``AXIS_CONSOLE_LIFETIME`` after sign-in. Attempts are limited per
  client address (``AXIS_CONSOLE_SIGNIN_RATE`` a minute, per process).
- **Audit.** Signing in and out (and a session found expired) are audit events naming the
  token; every change made from the console goes through the same store operations as the
  API, whose events name the token as ``admin:tok_…``.
- **CSRF.** Every form carries a token: for a session, a digest of the session id (which
  only that browser holds, in an HttpOnly cookie); for the sign-in form, a random value also
  set in a cookie. A POST without the right one is refused, as is any POST of an auditor to
  an administrator's action.
- **Errors** (``AxisError``) become an HTML page with the API's detail text and status.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from axis import log, timeutil
from axis.errors import AxisError, Forbidden, InvalidRequest, RateLimited, StoreError
from axis.model import ConsoleSession
from axis.ratelimit import RateLimiter
from axis.tokens import hash_token
from axis.web.console import i18n
from axis.web.console.i18n import _
from axis.web.console.render import Viewer, error_page, render
from axis.web.keys import SETTINGS, STORE

_log = log.get("axis.console")
COOKIE = "axis_console"
PRE_COOKIE = "axis_console_signin"  # the sign-in form's CSRF value
LANG_COOKIE = "axis_console_lang"
COOKIE_PATH = "/console"
MAX_FORM = 1 << 20  # a console form (a certificate is a few KiB)
LIMITER = web.AppKey("console_signin_limiter", RateLimiter)

Handler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SignInNeeded(Exception):
    """No live session: go to the sign-in page (``reason``: expired, or nothing)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def csrf_for(session_id: str) -> str:
    """The session's form token: derived from the session id, which only its browser holds."""
    return hashlib.sha256(b"axis-console-csrf\0" + session_id.encode()).hexdigest()


def language(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, i18n.DEFAULT)
    return lang if lang in i18n.LANGUAGES else i18n.DEFAULT


def secure(request: web.Request) -> bool:
    setting = request.app[SETTINGS].console_secure_cookie
    if setting != "auto":
        return setting == "true"
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def client_address(request: web.Request) -> str:
    if request.app[SETTINGS].console_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.remote or "unknown"


def safe_next(raw: str | None) -> str:
    """Where to go after signing in or switching language: a console page, nowhere else."""
    if not raw:
        return "/console/"
    parts = urllib.parse.urlsplit(raw)
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith("/console")
        or "\\" in raw
        or "//" in parts.path
    ):
        return "/console/"
    return urllib.parse.quote(raw, safe="/?&=%+:,;@.~-_")  # a header value: no spaces


async def session_of(request: web.Request) -> tuple[Viewer, ConsoleSession]:
    """The request's live session, touched; ``SignInNeeded`` when there is none."""
    session_id = request.cookies.get(COOKIE, "")
    if not session_id or len(session_id) > 128:
        raise SignInNeeded()
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    session_hash = hash_token(session_id)
    session = await store.console_session(session_hash)
    if session is None:
        raise SignInNeeded()
    now = timeutil.now()
    ended = session.ended(now, idle=settings.console_idle, lifetime=settings.console_lifetime)
    if ended is not None:
        await store.end_session(session_hash, reason=f"expired_{ended}")
        _log.info("console_session_expired", token_id=session.principal.token_id, why=ended)
        raise SignInNeeded("expired")
    every = min(60.0, settings.console_idle / 10)
    await store.touch_session(session_hash, now, every=every)
    structlog.contextvars.bind_contextvars(principal=session.principal.actor)
    return Viewer(session.principal, csrf_for(session_id), session_hash), session


def _form_size(request: web.Request) -> None:
    if request.content_length is None:
        raise InvalidRequest("a form must say its length (Content-Length)")
    if request.content_length > MAX_FORM:
        raise InvalidRequest(f"the form is larger than {MAX_FORM} bytes")


async def check_csrf(request: web.Request, expected: str) -> None:
    _form_size(request)
    form = await request.post()
    given = form.get("csrf")
    if not isinstance(given, str) or not expected or not hmac.compare_digest(given, expected):
        raise Forbidden(
            "this form did not come from this console page (its CSRF token is missing or"
            " out of date): reload the page and try again"
        )


def _title(exc: AxisError) -> str:
    """The error's title in the page's language (the detail stays the API's text)."""
    title = i18n.ERROR_TITLES.get(exc.code)
    return _(title) if title else exc.title


def _with_headers(response: web.StreamResponse, started: float) -> web.StreamResponse:
    if not response.prepared:  # a streamed export has sent its headers already
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs the page it is sent to."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _to_signin(request: web.Request, reason: str) -> web.Response:
    target = here_for_signin(request)
    query = {"next": target}
    if reason:
        query[reason] = "1"
    response = redirect(f"/console/signin?{urllib.parse.urlencode(query)}")
    if reason:
        response.del_cookie(COOKIE, path=COOKIE_PATH)
    return response


def here_for_signin(request: web.Request) -> str:
    return request.path_qs if request.method == "GET" else "/console/"


def page(*, admin: bool = False, section: str = "") -> Callable[[Handler], PageHandler]:
    """A console page: a live session, the CSRF token on a POST, the administrator's role
    when ``admin``; errors as pages. The handler gets the viewer."""

    def wrap(handler: Handler) -> PageHandler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            token = i18n.use(language(request))
            viewer: Viewer | None = None
            try:
                try:
                    viewer, _session = await session_of(request)
                    if request.method == "POST":
                        await check_csrf(request, viewer.csrf)
                    if admin and not viewer.is_admin:
                        raise Forbidden(
                            "only administrators may do this; an auditor's session reads"
                            " everything and changes nothing"
                        )
                    response = await handler(request, viewer)
                except SignInNeeded as exc:
                    return _with_headers(_to_signin(request, exc.reason), started)
                except AxisError as exc:
                    response = error_page(
                        request, exc.status, _title(exc), exc.detail, viewer=viewer, code=exc.code
                    )
                    response.headers.update(exc.headers)
                except StoreError as exc:
                    _log.error("store_unavailable", error=str(exc), path=request.path)
                    response = error_page(
                        request,
                        503,
                        _("The store cannot take this now"),
                        _("Nothing was changed; try again in a moment."),
                        viewer=viewer,
                    )
                    response.headers["Retry-After"] = "5"
                except Exception:
                    response = _crashed(request, viewer)
                return _with_headers(response, started)
            finally:
                i18n.reset(token)

        return run

    return wrap


def _crashed(request: web.Request, viewer: Viewer | None) -> web.Response:
    """An unexpected fault: logged with the request id, which the page names."""
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    _log.exception("request_crashed", path=request.path, method=request.method)
    return error_page(
        request,
        500,
        _("Internal error"),
        f"request {request_id} failed; see logs",
        viewer=viewer,
        code="internal_error",
    )


def plain(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> PageHandler:
    """A page without a session (sign-in, language, not found): language and errors only."""

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        token = i18n.use(language(request))
        try:
            try:
                response = await handler(request)
            except AxisError as exc:
                response = error_page(
                    request, exc.status, _title(exc), exc.detail, viewer=None, code=exc.code
                )
                response.headers.update(exc.headers)
            except StoreError as exc:
                _log.error("store_unavailable", error=str(exc), path=request.path)
                response = error_page(
                    request,
                    503,
                    _("The store cannot take this now"),
                    _("Nothing was changed; try again in a moment."),
                    viewer=None,
                )
            except Exception:
                response = _crashed(request, None)
            return _with_headers(response, started)
        finally:
            i18n.reset(token)

    return run


# ----------------------------------------------------------------------- handlers


@plain
async def signin_form(request: web.Request) -> web.StreamResponse:
    viewer = None
    with contextlib.suppress(SignInNeeded):
        viewer, _s = await session_of(request)
    if viewer is not None:
        return redirect(safe_next(request.query.get("next")))
    return _signin_page(request, error="")


def _signin_page(request: web.Request, *, error: str, status: int = 200) -> web.Response:
    pre = secrets.token_urlsafe(24)
    notices = []
    if "expired" in request.query:
        notices.append(_("Your session ended: sign in again."))
    if "signed_out" in request.query:
        notices.append(_("You are signed out."))
    response = render(
        request,
        "signin.html",
        {
            "form_csrf": pre,
            "next": safe_next(request.query.get("next")),
            "error": error,
            "notices": notices,
        },
        viewer=None,
        status=status,
    )
    response.set_cookie(
        PRE_COOKIE, pre, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=secure(request)
    )
    return response


@plain
async def signin(request: web.Request) -> web.StreamResponse:
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        wait = limiter.take(client_address(request), time.monotonic())
        if wait:
            _log.warning("console_signin_limited", client=client_address(request))
            raise RateLimited(
                f"too many sign-in attempts from this address; retry after {wait:.0f} s",
                retry_after=wait,
            )
    _form_size(request)
    form = await request.post()
    given = form.get("csrf")
    expected = request.cookies.get(PRE_COOKIE, "")
    if not isinstance(given, str) or not expected or not hmac.compare_digest(given, expected):
        raise Forbidden(
            "the sign-in form did not come from this console (its CSRF token is missing or"
            " out of date; cookies must be allowed): reload the page and try again"
        )
    request_next = form.get("next")
    target = safe_next(request_next if isinstance(request_next, str) else None)
    raw = form.get("token")
    token = raw.strip() if isinstance(raw, str) else ""
    if not token:
        return _signin_page(request, error=_("Enter your token."), status=400)
    store = request.app[STORE]
    principal = await store.principal_for(hash_token(token)) if len(token) <= 256 else None
    if principal is None or principal.role not in ("admin", "auditor"):
        _log.info(
            "console_signin_refused",
            client=client_address(request),
            role=principal.role if principal else None,
        )
        error = (
            _("This token is not an administrator's or an auditor's.")
            if principal is not None
            else _("Unknown or revoked token.")
        )
        return _signin_page(request, error=error, status=401 if principal is None else 403)
    settings = request.app[SETTINGS]
    session_id = secrets.token_urlsafe(32)
    session = await store.create_session(
        hash_token(session_id),
        principal,
        idle=settings.console_idle,
        lifetime=settings.console_lifetime,
    )
    await store.touch_token(principal.token_id, timeutil.now())
    _log.info("console_signed_in", principal=principal.actor, session=session.session_hash[:16])
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        session_id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure(request),
        max_age=int(settings.console_lifetime),
    )
    response.del_cookie(PRE_COOKIE, path=COOKIE_PATH)
    return response


@page()
async def signout(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    await request.app[STORE].end_session(viewer.session_hash, reason="signed_out")
    _log.info("console_signed_out", principal=viewer.actor)
    response = redirect("/console/signin?signed_out=1")
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    return response


@plain
async def switch_language(request: web.Request) -> web.StreamResponse:
    """The switch on every page: a plain link (it works without script), remembered in a
    cookie; it changes nothing on the server, so it needs no CSRF token."""
    lang = request.match_info["lang"]
    if lang not in i18n.LANGUAGES:
        raise InvalidRequest(f"language: one of {', '.join(i18n.LANGUAGES)}, not {lang!r}")
    response = redirect(safe_next(request.query.get("next")))
    response.set_cookie(
        LANG_COOKIE,
        lang,
        path=COOKIE_PATH,
        samesite="Strict",
        secure=secure(request),
        max_age=365 * 86400,
    )
    return response


@plain
async def not_found(request: web.Request) -> web.StreamResponse:
    return error_page(
        request,
        404,
        _("Not found"),
        f"{request.path}: no such page in the console",
        viewer=None,
        code="not_found",
    )
