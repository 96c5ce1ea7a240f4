"""``axis init``: prepare a data directory (``serve`` does the same before it serves)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from axis import bootstrap
from axis.cli.common import Refusal, common_flags, describe, say
from axis.config import Settings

if TYPE_CHECKING:
    from axis.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "init",
        help="prepare a data directory (running it again changes nothing)",
        description="Make the data directory if needed and prepare it: the database (or the"
        " tables in PostgreSQL), the axis signing key and certificate, and the agencies"
        " shipped with the axis. Running it again adds only what is missing, and applies"
        " the migrations of a newer version.",
    )
    common_flags(p)
    p.set_defaults(handler=cmd_init)


def initialize(settings: Settings) -> bootstrap.InitResult:
    """Prepare ``settings.data``; a directory that cannot be made or written is refused."""
    try:
        return asyncio.run(bootstrap.initialize(settings))
    except OSError as exc:
        where = settings.data.resolve()
        why = exc.strerror or str(exc)
        if exc.filename and Path(exc.filename).resolve() != where:
            why = describe(exc)  # a file inside it
        raise Refusal(
            f"cannot prepare the data directory {where}: {why};"
            " give another with --data DIR or AXIS_DATA",
            status=1,
        ) from None


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    result = initialize(settings)
    report = result.store
    say(
        f"data {settings.data.resolve()}: schema v{report.schema_version}, "
        f"{report.agencies_added} agencies added, "
        f"signing key {'created' if result.key_created else 'kept'}"
    )
    return 0
