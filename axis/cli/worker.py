"""Command line: `axis worker …`: the push worker and the periodic jobs, no HTTP.

For a deployment that pushes from its own process (``AXIS_PUSH_ENABLED=false`` on the serving
processes), or more pushing processes on one shared store: leases keep them apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from axis import bootstrap, log
from axis.cli.common import common_flags, require_data
from axis.config import Settings
from axis.jobs import Jobs
from axis.metrics import Metrics
from axis.registry_cache import RegistryCache
from axis.store import open_store

if TYPE_CHECKING:
    from axis.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "worker",
        help="push deliveries and run the periodic jobs, without serving HTTP",
        description="Push deliveries to the agencies' endpoints and run the periodic jobs"
        " (audit checkpoints, retention, certificate expiry) until SIGTERM or SIGINT. For"
        " setups that push from a process of their own: set AXIS_PUSH_ENABLED=false on the"
        " servers then. Several workers on one store share the work.",
    )
    common_flags(p)
    push_flags(p)
    p.set_defaults(handler=cmd_worker)


PUSH_FLAGS = ("push_retry_base", "push_retry_cap", "push_max_age", "push_timeout")


def push_flags(parser: argparse.ArgumentParser) -> None:
    """The push timing flags of ``axis serve`` and ``axis worker``."""
    parser.add_argument(
        "--push-retry-base",
        type=float,
        metavar="S",
        help="retry a failed push within S seconds at first (AXIS_PUSH_RETRY_BASE, default 10)",
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
        help="give a delivery up S seconds after its first try (AXIS_PUSH_MAX_AGE, default 259200)",
    )
    parser.add_argument(
        "--push-timeout",
        type=float,
        metavar="S",
        help="seconds a push may take (AXIS_PUSH_TIMEOUT, default 30)",
    )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Push until SIGTERM or SIGINT; claimed deliveries are given back on the way out."""
    require_data(settings, key=True)
    log.configure(settings.log_level, json=settings.log_json, cache=True)
    asyncio.run(run_worker(settings))
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
