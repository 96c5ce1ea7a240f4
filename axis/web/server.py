"""The HTTP server around the app: aiohttp's, with the axis's answers where aiohttp answers.

A request aiohttp cannot parse (a NUL in a header, a bad ``Content-Length``, both
``Transfer-Encoding`` and ``Content-Length``, a bad chunk size, a line over 8 KiB) never reaches
the app or its middleware: aiohttp's ``RequestHandler.handle_error`` answers it, in text/plain,
and logs a multi-line traceback at ERROR, which lets anyone flood the log. ``AxisProtocol``
overrides those two methods, the points aiohttp's handler offers for it: the answer is
``application/problem+json`` (``invalid_request`` naming what was malformed; the response
line stays HTTP/1.0, since the request's own version is unknown), and each such connection
gives at most one JSON log line, ``http_malformed``, rate-limited for the whole process so a
flood of garbage costs the log a few lines a second (the next line says how many were left
out), and a counter, ``axis_http_malformed_total``.

aiohttp makes its handler in ``web.Server.__call__`` and the server in the runner, so both
are subclassed here (``AxisServer``, ``AxisRunner``); ``run`` serves an app with them as
``web.run_app`` did, and the tests' harness uses the same runner and arguments.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from axis import log
from axis.config import Settings
from axis.metrics import Metrics
from axis.web.keys import METRICS

_log = log.get("axis.http")

# What serving needs of aiohttp, the same for `axis serve` and for the tests' servers:
# keep-alive as run_app's default; a client that hangs up does not cancel its handler (a
# package being committed is committed, and its 201 is merely not heard).
RUNNER_ARGS: dict[str, Any] = {
    "access_log": None,
    "handler_cancellation": False,
    "shutdown_timeout": 60.0,
}


def runner_args(settings: Settings) -> dict[str, Any]:
    """What the server runs with: no access log (ours is structured), handlers not cancelled
    when a client goes, idle keep-alive connections closed after AXIS_KEEPALIVE_TIMEOUT."""
    return {**RUNNER_ARGS, "keepalive_timeout": settings.keepalive_timeout}


MALFORMED_LOG_PER_SECOND = 5


class _LogBudget:
    """At most ``per_second`` lines a second for the whole server; counts what it drops."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.window = 0
        self.used = 0
        self.dropped = 0

    def take(self) -> int | None:
        """None: stay quiet; otherwise how many lines were dropped since the last one."""
        now = int(time.monotonic())
        if now != self.window:
            self.window, self.used = now, 0
        if self.used >= self.per_second:
            self.dropped += 1
            return None
        self.used += 1
        dropped, self.dropped = self.dropped, 0
        return dropped


def _reason(exc: BaseException | None, message: str | None, limit: int) -> str:
    """What was malformed, in one short line, without echoing the client's bytes at length."""
    if isinstance(exc, LineTooLong):
        return f"a request line or header line longer than {limit} bytes"
    text = exc.message if isinstance(exc, HttpProcessingError) else message or ""
    first = (text or "").strip().splitlines()[0:1]
    reason = first[0].rstrip(" :") if first else "not an HTTP/1.1 request"
    return reason[:200]


def _problem(status: int, code: str, title: str, detail: str) -> web.Response:
    body = {
        "type": f"https://axis.gov.vn/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    response = web.Response(
        status=status, body=orjson.dumps(body), content_type="application/problem+json"
    )
    response.force_close()
    return response


class AxisProtocol(RequestHandler):
    """aiohttp's connection handler, answering its own errors as the axis answers."""

    metrics: Metrics | None = None
    log_budget: _LogBudget

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is on its way already: only close
            raise ConnectionError("an answer was being sent when the request failed")
        if status >= 500:
            _log.error("request_crashed", status=status, error=repr(exc), exc_info=exc)
            if self.metrics is not None:
                self.metrics.inc(
                    "axis_http_requests_total",
                    method=request.method,
                    route="unmatched",
                    status=str(status),
                )
            return _problem(
                status,
                "internal_error",
                "Internal error",
                "the request failed inside the server; see the logs",
            )
        reason = _reason(exc, message, self.max_line_size)
        if self.metrics is not None:
            self.metrics.inc("axis_http_malformed_total")
        dropped = self.log_budget.take()
        if dropped is not None:
            _log.info("http_malformed", reason=reason, peer=request.remote, dropped=dropped)
        return _problem(
            status,
            "invalid_request",
            "Malformed HTTP request",
            f"HTTP: {reason}; the request was not read and the connection is closed",
        )

    def data_received(self, data: bytes) -> None:
        """aiohttp's, and a parse error in the body of a request being handled reaches it.

        aiohttp's C parser drops the body's stream without an error when the framing breaks
        mid-body (a bad chunk size in a later packet) and queues the error as a next request:
        the handler would wait for the rest until its timeout. The body's reader gets the
        error instead, and the handler answers 400 at once.
        """
        queued = len(self._messages)
        super().data_received(data)
        request = self._current_request
        if request is None or len(self._messages) <= queued:
            return
        failure = self._messages[-1][0]
        if isinstance(failure, _ErrInfo) and not request.content.is_eof():
            reason = _reason(failure.exc, failure.message, self.max_line_size)
            request.content.set_exception(web.RequestPayloadError(reason))

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's other reports (an exception outside any handler): one JSON line."""
        exc = kw.get("exc_info")
        try:
            text = str(args[0]) % args[1:] if len(args) > 1 else str(args[0] if args else "")
        except (TypeError, ValueError):
            text = " ".join(map(str, args))
        _log.error("http_server_error", message=text[:500], error=repr(exc))


class AxisServer(web.Server):
    """aiohttp's server, making ``AxisProtocol`` connections."""

    def __init__(self, *args: Any, metrics: Metrics | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics
        # one budget for every connection of the server (one server a process in service)
        self.log_budget = _LogBudget(MALFORMED_LOG_PER_SECOND)

    def __call__(self) -> RequestHandler:
        handler = AxisProtocol(self, loop=self._loop, **self._kwargs)
        handler.metrics = self.metrics
        handler.log_budget = self.log_budget
        return handler


class AxisRunner(web.AppRunner):
    """``web.AppRunner`` serving through ``AxisServer``."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return AxisServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            metrics=self.app.get(METRICS),
            **plain._kwargs,
        )


async def _serve(app: web.Application, settings: Settings, sock: socket.socket | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = AxisRunner(app, **runner_args(settings))
    await runner.setup()
    try:
        site: web.BaseSite
        if sock is not None:
            site = web.SockSite(runner, sock)
        else:
            site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
        await site.start()
        await stop.wait()
    finally:
        # here, in this task, before the loop cancels what is left: the app's cleanup stops
        # its own tasks (the writer, the push worker) in order and signs a last checkpoint
        await runner.cleanup()


def run(app: web.Application, settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then finish requests in flight and clean up."""
    asyncio.run(_serve(app, settings, sock))
