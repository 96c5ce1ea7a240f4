"""HTTP endpoints: administrators' view of push deliveries, dead letters, redelivery (issue 4)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add this module's routes (and resources) to the app."""
