"""The command line: ``axis init | serve | worker | token | agencies | audit | key``.

Every command builds its ``Settings`` once from flags and ``AXIS_*`` variables and passes them
down; nothing below reads the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson

from axis import bootstrap, cli_agencies, cli_audit, cli_key, cli_worker, log, registry, tokens
from axis.cli_support import actor, common_flags, with_store
from axis.config import Settings, build_settings
from axis.errors import AxisError
from axis.model import Role
from axis.store import open_store
from axis.store.protocol import Store

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="axis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="prepare a data directory (idempotent)")
    common_flags(p)

    p = sub.add_parser("serve", help="run the axis HTTP server")
    common_flags(p)
    p.add_argument("--host", help="listen address (AXIS_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (AXIS_PORT, default 8080)")
    p.add_argument("--workers", type=int, help="serving processes (AXIS_WORKERS, default 1)")
    cli_worker.push_flags(p)

    p = sub.add_parser("token", help="issue, list or revoke tokens")
    tsub = p.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("issue", help="print a new token, alone on its line")
    common_flags(t)
    who = t.add_mutually_exclusive_group(required=True)
    who.add_argument("--role", choices=["admin", "auditor"])
    who.add_argument("--agency", metavar="ORGAN_ID")
    t = tsub.add_parser("list", help="token ids, roles, agencies (never secrets)")
    common_flags(t)
    t.add_argument("--agency", metavar="ORGAN_ID")
    t = tsub.add_parser("revoke", help="revoke a token at once")
    common_flags(t)
    t.add_argument("token_id")
    for module in (cli_agencies, cli_audit, cli_key, cli_worker):
        module.register(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    names = ("data", "store", "host", "port", "workers", *cli_worker.PUSH_FLAGS)
    flags = {k: getattr(args, k, None) for k in names}
    return build_settings(flags)


def cmd_init(settings: Settings) -> int:
    result = asyncio.run(bootstrap.initialize(settings))
    report = result.store
    print(
        f"axis: data {settings.data.resolve()}: schema v{report.schema_version}, "
        f"{report.agencies_added} agencies added, "
        f"signing key {'created' if result.key_created else 'kept'}",
        file=sys.stderr,
    )
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "issue":

        async def issue(store: Store) -> str:
            organ_id = args.agency
            if organ_id is not None:
                registry.check_token_holder((await store.registry()).get(organ_id), organ_id)
            token_id, token, token_hash = tokens.generate()
            role: Role = "agency" if organ_id else args.role
            await store.issue_token(token_id, token_hash, role, organ_id, actor=actor())
            print(
                f"axis: issued {token_id} ({role}{' ' + organ_id if organ_id else ''})",
                file=sys.stderr,
            )
            return token

        print(asyncio.run(with_store(settings, issue)))
        return 0
    if args.action == "list":

        async def listing(store: Store) -> list[Any]:
            return list(await store.list_tokens(args.agency))

        for info in asyncio.run(with_store(settings, listing)):
            print(orjson.dumps(info).decode())
        return 0

    async def revoke(store: Store) -> bool:
        return await store.revoke_token(args.token_id, actor=actor())

    if not asyncio.run(with_store(settings, revoke)):
        print(f"axis: no live token {args.token_id}", file=sys.stderr)
        return 1
    print(f"axis: revoked {args.token_id}; it is refused from now on", file=sys.stderr)
    return 0


def _serve_one(settings: Settings, sock: socket.socket | None) -> None:
    import uvloop

    from axis.web import server
    from axis.web.app import create_app

    log.configure(settings.log_level, json=settings.log_json)
    app = create_app(settings, open_store(settings), bootstrap.load_key(settings))
    logger = log.get("axis")
    logger.info("axis_serving", host=settings.host, port=settings.port, pid=os.getpid())
    uvloop.install()
    server.run(app, host=settings.host, port=settings.port, sock=sock)


def _why(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def cmd_serve(settings: Settings) -> int:
    try:
        # Is the address free? Asked without SO_REUSEPORT, so that a second axis (whose
        # workers set it) is refused rather than silently handed half of the connections.
        socket.create_server((settings.host, settings.port)).close()
    except OSError as exc:
        print(
            f"axis: cannot listen on {settings.host}:{settings.port}: {_why(exc)}",
            file=sys.stderr,
        )
        return 2
    asyncio.run(bootstrap.initialize(settings))
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
            try:
                sock = socket.create_server(
                    (settings.host, settings.port), reuse_port=True, backlog=1024
                )
                _serve_one(settings, sock)
            finally:
                os._exit(0)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"axis: configuration: {exc}", file=sys.stderr)
        return 2
    if args.command in ("init", "serve", "worker"):
        os.umask(0o077)  # bodies, blobs and the database: for the axis's user only
    try:
        if args.command == "init":
            return cmd_init(settings)
        if args.command == "serve":
            return cmd_serve(settings)
        if args.command == "token":
            return cmd_token(args, settings)
        handler = getattr(args, "handler", None)
        if handler is not None:
            status: int = handler(args, settings)
            return status
    except AxisError as exc:
        print(f"axis: {exc.detail}", file=sys.stderr)
        return 1
    return 2
