"""Command line: `axis worker …`: the push worker and the periodic jobs, no HTTP.

For a deployment that pushes from its own process (``AXIS_PUSH_ENABLED=false`` on the serving
processes), or more pushing processes on one shared store: leases keep them apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from dataclasses import replace

from axis import bootstrap, log
from axis.cli_support import common_flags
from axis.config import Settings
from axis.errors import StoreError
from axis.jobs import Jobs
from axis.metrics import Metrics
from axis.registry_cache import RegistryCache
from axis.retry import RetryPolicy
from axis.store import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser; its handler is set with ``set_defaults(handler=…)``.

    A handler is called as ``handler(args, settings) -> int`` (the exit status).
    """
    p = sub.add_parser("worker", help="run the push worker and the periodic jobs alone (no HTTP)")
    common_flags(p)
    push_flags(p)
    p.set_defaults(handler=cmd_worker)


PUSH_FLAGS = ("push_retry_base", "push_retry_cap", "push_max_age", "push_timeout")


def push_flags(parser: argparse.ArgumentParser) -> None:
    """The push timing flags (``axis serve`` and ``axis worker``); they win over AXIS_PUSH_*."""
    parser.add_argument(
        "--push-retry-base",
        type=float,
        metavar="S",
        help="first retry within S seconds (AXIS_PUSH_RETRY_BASE, default 10)",
    )
    parser.add_argument(
        "--push-retry-cap",
        type=float,
        metavar="S",
        help="at most S seconds between tries (AXIS_PUSH_RETRY_CAP, default 3600)",
    )
    parser.add_argument(
        "--push-max-age",
        type=float,
        metavar="S",
        help="dead S seconds after the first try (AXIS_PUSH_MAX_AGE, default 259200)",
    )
    parser.add_argument(
        "--push-timeout",
        type=float,
        metavar="S",
        help="seconds per request (AXIS_PUSH_TIMEOUT, default 30)",
    )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Push until SIGTERM or SIGINT; claimed deliveries are given back on the way out."""
    flags = {k: v for k in PUSH_FLAGS if (v := getattr(args, k, None)) is not None}
    settings = replace(settings, **flags)
    try:
        RetryPolicy(settings.push_retry_base, settings.push_retry_cap, settings.push_max_age)
    except ValueError as exc:
        print(f"axis: configuration: {exc}", file=sys.stderr)
        return 2
    log.configure(settings.log_level, json=settings.log_json)
    try:
        asyncio.run(run_worker(settings))
    except StoreError as exc:
        print(f"axis: {exc}", file=sys.stderr)
        return 1
    return 0


async def run_worker(settings: Settings) -> None:
    store = open_store(settings)
    await store.open()
    try:
        await store.check_schema()
        worker = Jobs(
            settings, store, bootstrap.load_key(settings), RegistryCache(store), Metrics()
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await worker.start()
        try:
            await stop.wait()
        finally:
            await worker.stop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(signum)
    finally:
        await store.close()
