"""``axis serve``: the HTTP server, in one process or several sharing the port and the store."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
from typing import TYPE_CHECKING

from axis import bootstrap, log
from axis.cli import worker
from axis.cli.common import Refusal, common_flags, say
from axis.cli.init import initialize
from axis.config import Settings
from axis.store import open_store

if TYPE_CHECKING:
    from axis.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "serve",
        help="run the axis HTTP server",
        description="Serve the HTTP API until SIGTERM or SIGINT, then finish the requests in"
        " flight and sign a last audit checkpoint. An uninitialised data directory is"
        " prepared first, as axis init would.",
    )
    common_flags(p)
    p.add_argument("--host", help="listen address (AXIS_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (AXIS_PORT, default 8080)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="serving processes sharing the port and the store (AXIS_WORKERS, default 1)",
    )
    worker.push_flags(p)
    p.set_defaults(handler=cmd_serve)


def _serve_one(settings: Settings, sock: socket.socket | None) -> None:
    import uvloop

    from axis.web import server
    from axis.web.app import create_app

    log.configure(settings.log_level, json=settings.log_json, cache=True)
    app = create_app(settings, open_store(settings), bootstrap.load_key(settings))
    logger = log.get("axis")
    logger.info("axis_serving", host=settings.host, port=settings.port, pid=os.getpid())
    uvloop.install()
    server.run(app, settings, sock)


def _why(exc: OSError) -> str:
    """The errno's own words: create_server's message repeats the address after them."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        # Is the address free? Asked without SO_REUSEPORT, so that a second axis (whose
        # workers set it) is refused rather than silently handed half of the connections.
        socket.create_server((settings.host, settings.port)).close()
    except OSError as exc:
        raise Refusal(f"cannot listen on {settings.host}:{settings.port}: {_why(exc)}") from None
    initialize(settings)
    if settings.workers == 1:
        _serve_one(settings, None)
        return 0
    # The second core is reached by a second process, not a thread (the GIL). Each process
    # binds its own socket with SO_REUSEPORT, so the kernel spreads connections evenly over
    # them; one socket shared by all would let whichever process woke first take a burst of
    # connections, and keep them.
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()  # before any event loop or thread exists
        if pid == 0:
            status = 1
            try:
                sock = socket.create_server(
                    (settings.host, settings.port), reuse_port=True, backlog=1024
                )
                _serve_one(settings, sock)
                status = 0
            except Exception as exc:  # the parent's exit status tells; this says why
                say(f"serving process {os.getpid()} stopped: {type(exc).__name__}: {exc}")
            finally:
                os._exit(status)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status
