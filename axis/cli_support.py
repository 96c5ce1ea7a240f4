"""Shared pieces of the command line: common flags, a store opened for one command."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Awaitable, Callable
from typing import TypeVar

from axis.config import Settings
from axis.store import open_store
from axis.store.protocol import Store

T = TypeVar("T")


def common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="data directory (AXIS_DATA, default ./var)")
    parser.add_argument("--store", help="postgresql://… for the shared engine (AXIS_STORE)")


async def with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]]) -> T:
    store = open_store(settings)
    await store.open()
    try:
        await store.check_schema()
        return await fn(store)
    finally:
        await store.close()


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"
