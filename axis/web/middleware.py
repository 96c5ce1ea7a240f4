"""Cross-cutting request handling: authentication, request ids, errors as problem+json.

Every error leaves through ``problems``: an ``AxisError`` becomes its RFC 9457 body, aiohttp's
own 404/405 get the same shape, and anything unexpected is logged with the request id and
answered 500 without leaking internals.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

import orjson
import structlog
from aiohttp import web

from axis import log, timeutil
from axis.errors import (
    AxisError,
    ClientGone,
    Forbidden,
    RateLimited,
    StoreError,
    Unauthorized,
)
from axis.model import Principal, Role
from axis.tokens import hash_token
from axis.web.keys import LIMITER, METRICS, REGISTRY, STORE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_log = log.get("axis.web")
PRINCIPAL = web.RequestKey("principal", Principal)


def problem_response(
    status: int, code: str, title: str, detail: str, extra: dict[str, object] | None = None
) -> web.Response:
    body: dict[str, object] = {
        "type": f"https://axis.gov.vn/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if extra:
        body.update(extra)
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/problem+json"
    )


HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")
    if not (0 < len(request_id) <= 128 and request_id.isprintable()):
        request_id = secrets.token_hex(8)  # a proxy's id is kept; anything odd is replaced
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    closes = False
    try:
        response = await handler(request)
    except ClientGone as exc:
        return _client_aborted(request, exc.detail)
    except AxisError as exc:
        request.app[METRICS].inc("axis_errors_total", code=exc.code)
        # every refusal is a log line an operator can grep; hostile XML louder, and a flood
        # of rate-limited requests quieter
        level = "warning" if exc.status >= 500 or exc.code == "forbidden_xml" else "info"
        if isinstance(exc, RateLimited):
            level = "debug"
        getattr(_log, level)(
            "request_refused",
            code=exc.code,
            status=exc.status,
            method=request.method,
            path=request.path,
            detail=exc.detail[:500],
        )
        response = problem_response(exc.status, exc.code, exc.title, exc.detail, exc.extra)
        response.headers.update(exc.headers)
        closes = exc.closes_connection
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "invalid_request")
        detail = exc.text or exc.reason
        allow = exc.headers.get("Allow")
        if exc.status == 405 and allow:
            detail = f"{request.method} is not allowed on {request.path}; allowed: {allow}"
        response = problem_response(exc.status, code, exc.reason, detail)
        if allow:
            response.headers["Allow"] = allow
    except StoreError as exc:
        _log.error("store_unavailable", error=str(exc), path=request.path)
        response = problem_response(
            503, "unavailable", "The store cannot take this now", "nothing was stored; retry later"
        )
        response.headers["Retry-After"] = "5"
    except Exception as exc:
        # a write to a client that left (a streamed export) is the client's event; a connection
        # of the axis's own that broke (the engine's) is a fault like any other
        if isinstance(exc, ConnectionError) and _client_gone(request):
            return _client_aborted(request, f"the client closed the connection: {exc}")
        _log.exception("request_crashed", path=request.path, method=request.method)
        response = problem_response(
            500, "internal_error", "Internal error", f"request {request_id} failed; see logs"
        )
    response.headers["X-Request-Id"] = request_id
    _count(request, response.status, time.perf_counter() - started)
    if closes:
        await _answer_and_close(request, response)
    return response


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Send ``response`` and close the connection at once.

    What the client may still send is not a next request (a body cut short by a 408 or a
    broken chunk), and aiohttp's lingering close would otherwise read and drop it for up to
    10 s: the socket, and the client's hold on the axis, end with the answer.
    """
    response.force_close()  # Connection: close
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass  # the client left first: nothing more to do than close
    request.protocol.force_close()


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _client_aborted(request: web.Request, detail: str) -> web.StreamResponse:
    """A client that hung up mid-request: an info line and its own counter, never a 5xx.

    The answer returned is never sent (nobody listens); aiohttp drops it.
    """
    route = _route(request)
    request.app[METRICS].inc("axis_client_aborts_total", method=request.method, route=route)
    _log.info("client_aborted", method=request.method, path=request.path, detail=detail[:500])
    return web.Response(status=400)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _count(request: web.Request, status: int, seconds: float) -> None:
    """Requests by route pattern (``/v1/inbox/{id}``), never by path: the label set stays small."""
    route = _route(request)
    metrics = request.app[METRICS]
    metrics.inc("axis_http_requests_total", method=request.method, route=route, status=str(status))
    metrics.observe(
        "axis_http_request_duration_seconds", seconds, method=request.method, route=route
    )


async def principal(request: web.Request) -> Principal:
    """The caller, from ``Authorization: Bearer``; 401 when missing, unknown or revoked."""
    if PRINCIPAL in request:
        return request[PRINCIPAL]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Authorization: expected 'Bearer <token>'",
            invalid_token="Authorization" in request.headers,
        )
    found = await request.app[STORE].principal_for(hash_token(token.strip()))
    if found is None:
        raise Unauthorized("Authorization: unknown or revoked token", invalid_token=True)
    if found.role == "agency":
        registry = await request.app[REGISTRY].current()
        agency = registry.get(found.organ_id or "")
        if agency is None or agency.status != "active":
            status = agency.status if agency else "not registered"
            raise Forbidden(f"agency {found.organ_id} is {status}; its tokens are refused")
        if LIMITER in request.app:
            wait = request.app[LIMITER].take(found.organ_id or "", time.monotonic())
            if wait:
                raise RateLimited(
                    f"agency {found.organ_id} is over its {request.app[LIMITER].rate:g} "
                    f"requests a second; retry after {wait:.2f} s",
                    retry_after=wait,
                )
    await request.app[STORE].touch_token(found.token_id, timeutil.now())
    structlog.contextvars.bind_contextvars(principal=found.actor)
    request[PRINCIPAL] = found
    return found


async def require(request: web.Request, *roles: Role) -> Principal:
    """The caller, who must hold one of ``roles``; 403 otherwise."""
    who = await principal(request)
    if who.role not in roles:
        raise Forbidden(f"this endpoint is for {' or '.join(roles)} tokens, not {who.role}")
    return who


async def require_agency(request: web.Request) -> tuple[Principal, str]:
    who = await require(request, "agency")
    assert who.organ_id is not None
    return who, who.organ_id
