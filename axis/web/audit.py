"""HTTP endpoints: auditors' read-only views of the audit log (issue 6)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add this module's routes (and resources) to the app."""
