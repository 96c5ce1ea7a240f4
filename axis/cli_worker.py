"""Command line: `axis worker …`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser; its handler is set with ``set_defaults(handler=…)``.

    A handler is called as ``handler(args, settings) -> int`` (the exit status).
    """
