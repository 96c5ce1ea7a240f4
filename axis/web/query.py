"""Query-string parsing shared by the listing endpoints, with errors naming the parameter."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from axis import timeutil
from axis.errors import InvalidRequest


def limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"limit: an integer from 1 to 1000, not {raw!r}") from None
    if not 1 <= value <= 1000:
        raise InvalidRequest(f"limit: an integer from 1 to 1000, not {value}")
    return value


def time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    return timeutil.parse_query_time(name, raw) if raw else None


def choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise InvalidRequest(f"{name}: one of {', '.join(allowed)}, not {raw!r}")
    return raw


def number(request: web.Request, name: str, default: float, lo: float, hi: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: a number from {lo:g} to {hi:g}, not {raw!r}") from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name}: a number from {lo:g} to {hi:g}, not {raw}")
    return value
