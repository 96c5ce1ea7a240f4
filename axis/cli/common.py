"""What every command group shares: the common flags, the data directory check, a store opened
for one command, one way to print lists, and the one-line refusal."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import orjson

from axis.config import Settings
from axis.store import open_store
from axis.store.protocol import Store

T = TypeVar("T")

if TYPE_CHECKING:
    # what a group's ``register(sub)`` adds its parser to
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


class Refusal(Exception):
    """Ends a command with one line on stderr (``axis: …``) and a non-zero exit status.

    ``status`` 2 says the command was called wrongly or in the wrong place (the habit of
    command-line tools), 1 that it ran and failed.
    """

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def say(message: str) -> None:
    """One line for the person at the terminal, on stderr (stdout is for data)."""
    print(f"axis: {message}", file=sys.stderr)


def common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="data directory (AXIS_DATA, default ./var)")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="postgresql://… to use a PostgreSQL database (AXIS_STORE; default: SQLite in DIR)",
    )


def json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json``: what a list prints for a script instead of columns for a person."""
    parser.add_argument("--json", action="store_true", help="one JSON object a line, for scripts")


def require_data(settings: Settings, *, key: bool = False) -> None:
    """Refuse, creating nothing, to work on a directory ``axis init`` has not prepared.

    Only ``init`` and ``serve`` make a data directory; any other command run in the wrong
    place says where it looked and how to point it elsewhere. With PostgreSQL the store is
    elsewhere and the directory matters only to commands that use the axis key (``key``).
    """
    where = settings.data.resolve()
    needed = []
    if not settings.uses_postgres:
        needed.append(settings.sqlite_path)
    if key:
        needed.append(settings.cert_path)
    missing = [path.name for path in needed if not path.is_file()]
    if not missing:
        return
    found = (
        f"{where} is not an axis data directory (no {', '.join(missing)})"
        if where.is_dir()
        else f"no axis data directory at {where}"
    )
    raise Refusal(f"{found}; run axis init to make one, or give yours with --data DIR or AXIS_DATA")


async def with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    store = open_store(settings)
    await store.open()
    try:
        await store.check_schema()
        return await fn(store)
    finally:
        await store.close()


def run(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``fn`` on the store of an initialised data directory, for one command."""
    require_data(settings)
    return asyncio.run(with_store(settings, fn))


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def print_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    none: str,
) -> None:
    """A list: JSON lines with every field (``--json``), else aligned columns under a header.

    The last column is not padded, so a long free-text field (a name) goes last. ``none``
    is said on stderr when there is nothing to list, leaving stdout empty for scripts.
    """
    if as_json:
        for row in rows:
            print(orjson.dumps(row).decode())
        return
    if not rows:
        say(none)
        return
    cells = [[column.upper() for column in columns]]
    cells += [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns) - 1)]
    for line in cells:
        padded = [value.ljust(width) for value, width in zip(line, widths, strict=False)]
        print("  ".join([*padded, line[-1]]))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def describe(exc: OSError) -> str:
    """An operating-system error in one line: the file, and why."""
    why = exc.strerror or str(exc)
    return f"{exc.filename}: {why}" if exc.filename else why
