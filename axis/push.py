"""The push worker: claim due deliveries, POST them, record the outcome, back off (issue 4)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Run the push worker with the app (a cleanup context), unless disabled."""
