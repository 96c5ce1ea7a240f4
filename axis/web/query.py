"""Query strings, parsed strictly in one place, with errors naming the parameter.

Each endpoint declares the parameters it takes (``Query(request, "since", "limit", …)``);
anything else is refused rather than ignored: an unknown name (``page_size``), a parameter
given twice, or an empty value (``?until=``) is ``400 invalid_request`` naming it, since a
filter silently dropped answers a different question than the one asked (an auditor would
conclude that nothing happened). Values are read as strictly: integers are ASCII digits only
(not ``+5``, not a fullwidth ``５``), an event ``type`` must be one of the known ones, times
are RFC 3339 or a date alone (``axis.timeutil.parse_query_time``). Every hint in an error is
itself a value the parameter accepts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime

from aiohttp import web

from axis import timeutil
from axis.errors import InvalidRequest
from axis.model import EVENT_TYPES

_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
# a JSON number (what the description's `type: number` means), nothing else float() takes
_NUMBER = re.compile(
    r"-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,3})?", re.ASCII
)
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,200}", re.ASCII)
# paging: every endpoint that pages takes these two
PAGING = ("limit", "cursor")


def digits(name: str, raw: str, lo: int, hi: int) -> int:
    """An integer from ``lo`` to ``hi`` written in ASCII digits, or 400 naming ``name``."""
    if _DIGITS.fullmatch(raw) is None:
        raise InvalidRequest(f"{name}: an integer from {lo} to {hi} in digits 0-9, not {raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name}: an integer from {lo} to {hi}, not {value}")
    return value


class Query:
    """The query parameters of one request, checked against those its endpoint declares."""

    def __init__(self, request: web.Request, *names: str) -> None:
        self.names = names
        self.values: dict[str, str] = {}
        resource = request.match_info.route.resource
        where = f"{request.method} {resource.canonical if resource else request.path}"
        known = ", ".join(names) if names else "none"
        for name, value in request.query.items():
            if name not in names:
                raise InvalidRequest(
                    f"{name}: not a parameter of {where} (it takes: {known})", parameter=name
                )
            if name in self.values:
                raise InvalidRequest(f"{name}: given more than once; give it once", parameter=name)
            if value == "":
                raise InvalidRequest(
                    f"{name}: empty; give a value or leave the parameter out", parameter=name
                )
            if "\x00" in value or any(unicodedata.category(ch) == "Cs" for ch in value):
                raise InvalidRequest(
                    f"{name}: holds a NUL or a lone surrogate ({value[:64]!r}); no value the"
                    " axis keeps has one",
                    parameter=name,
                )
            self.values[name] = value

    def _raw(self, name: str) -> str | None:
        assert name in self.names, f"{name} is not declared"  # a handler's mistake, not a client's
        return self.values.get(name)

    def text(self, name: str) -> str | None:
        return self._raw(name)

    def limit(self) -> int:
        raw = self._raw("limit")
        return 100 if raw is None else digits("limit", raw, 1, 1000)

    def cursor(self) -> str | None:
        """The page's cursor as given; its form checked here, its meaning by the listing."""
        raw = self._raw("cursor")
        if raw is not None and _CURSOR.fullmatch(raw) is None:
            raise InvalidRequest(f"cursor: not a cursor this axis gave: {raw[:64]!r}")
        return raw

    def time(self, name: str) -> datetime | None:
        raw = self._raw(name)
        return None if raw is None else timeutil.parse_query_time(name, raw)

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        raw = self._raw(name)
        if raw is not None and raw not in allowed:
            raise InvalidRequest(f"{name}: one of {', '.join(allowed)}, not {raw!r}")
        return raw

    def flag(self, name: str) -> bool:
        """``true`` or ``false`` (absent: false)."""
        return self.choice(name, ("true", "false")) == "true"

    def event_type(self) -> str | None:
        """An audit event type: a misspelt one would match nothing, and say nothing."""
        raw = self._raw("type")
        if raw is not None and raw not in EVENT_TYPES:
            raise InvalidRequest(
                f"type: not an event type: {raw!r}; the types are {', '.join(EVENT_TYPES)}"
            )
        return raw

    def seconds(self, name: str, default: float, lo: float, hi: float) -> float:
        """A number of seconds written as a JSON number (``0.5``, ``30``), ``lo`` to ``hi``."""
        raw = self._raw(name)
        if raw is None:
            return default
        if _NUMBER.fullmatch(raw) is None:
            raise InvalidRequest(
                f"{name}: a number of seconds from {lo:g} to {hi:g} (digits, a '.' for"
                f" fractions), not {raw[:64]!r}"
            )
        value = float(raw)
        if not lo <= value <= hi:
            raise InvalidRequest(f"{name}: a number of seconds from {lo:g} to {hi:g}, not {raw}")
        return value
