"""The command line: ``axis init | serve | worker | token | agencies | audit | key``.

Each command group is a module of this package with a ``register(sub)`` that adds its parser
and sets ``handler(args, settings) -> int`` (the exit status) on every command; ``GROUPS``
lists them in the order ``axis --help`` shows them, so a new group is one module and one
entry there. ``main`` builds the settings once from flags and ``AXIS_*`` variables (nothing
below reads the environment), runs the handler, and turns every failure a person can meet
into one line on stderr and a non-zero status: never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from axis import __version__
from axis.cli import agencies, audit, init, key, serve, system, token, worker
from axis.cli.common import Refusal, describe, say
from axis.config import build_settings
from axis.errors import AxisError, StoreError

GROUPS = (init, serve, worker, token, agencies, system, audit, key)

SETTINGS_FLAGS = ("data", "store", "host", "port", "workers", *worker.PUSH_FLAGS)
"""The flags that stand for settings (they win over their ``AXIS_*`` variables)."""

SIGPIPE_STATUS = 141
"""Exit status when the reader of our output went away (``axis … | head``): 128 + SIGPIPE,
what a shell reports for a tool the closed pipe stopped."""

DESCRIPTION = """\
axis: the national document interchange axis (Trục liên thông văn bản quốc gia).
Agencies' document systems send it signed edXML packages over HTTP; it checks the
sender and the signature, routes each package to its recipients, keeps it until they
have it, and gives the sender a signed receipt.

Start with `axis init` (prepares the data directory ./var), then `axis serve`. Every
command takes --data DIR (or AXIS_DATA) for the data directory and --store URL (or
AXIS_STORE) for a PostgreSQL database shared by several nodes.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="axis",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`axis COMMAND --help` tells more about each command.",
    )
    parser.add_argument("--version", action="version", version=f"axis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = _run(args)
        sys.stdout.flush()  # a reader that went away shows here, not as a trace at exit
        return status
    except BrokenPipeError:
        _discard_stdout()
        return SIGPIPE_STATUS
    except KeyboardInterrupt:
        say("interrupted")
        return 130


def _run(args: argparse.Namespace) -> int:
    try:
        settings = build_settings({name: getattr(args, name, None) for name in SETTINGS_FLAGS})
    except ValueError as exc:
        say(f"configuration: {exc}")
        return 2
    # the database, bodies, blobs, keys and exports (push secrets): for the axis's user only
    os.umask(0o077)
    try:
        status: int = args.handler(args, settings)
        return status
    except Refusal as exc:
        say(exc.message)
        return exc.status
    except AxisError as exc:
        say(exc.detail)
        return 1
    except StoreError as exc:
        say(str(exc))
        return 1
    except BrokenPipeError:
        raise
    except OSError as exc:
        say(describe(exc))
        return 1
    except Exception as exc:
        if settings.log_level.lower() == "debug":
            raise
        say(f"unexpected error: {type(exc).__name__}: {exc} (AXIS_LOG_LEVEL=debug shows where)")
        return 1


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (captured in a test)
        pass
