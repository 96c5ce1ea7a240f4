"""The one cursor format of every paged answer: opaque to clients, checked when it comes back.

A cursor names the position after which the next page starts: a sequence number (inbox,
outbox, deliveries, audit events, checkpoints), a key (the administrators' agency and token
lists, ordered by key, so an item added meanwhile is neither shown twice nor skips another),
or an offset (the public directory, a search result ranked in memory). It is the base64url of
``c:`` and that position, unpadded: short, URL-safe, and one text for every endpoint.
"""

from __future__ import annotations

import base64
import binascii

from axis.errors import InvalidRequest

_PREFIX = "c:"
MAX_POSITION = 2**63 - 1  # what the engines' integer columns hold
MAX_CURSOR = 512  # characters; a longer one is not one this axis gave


def encode(position: int | str) -> str:
    """The cursor of the page that starts after ``position``."""
    text = f"{_PREFIX}{position}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _raw(cursor: str) -> str:
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError(cursor)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_PREFIX):
        raise InvalidRequest(
            f"cursor: not a cursor this axis gave ({cursor[:64]!r}); use the next_cursor of"
            " the previous page, or leave it out for the first page"
        )
    return raw[len(_PREFIX) :]


def after_number(cursor: str | None) -> int | None:
    """The position a numeric cursor names; None for no cursor (the first page)."""
    if cursor is None or cursor == "":
        return None
    raw = _raw(cursor)
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_POSITION:
        raise InvalidRequest(
            f"cursor: not a cursor of this list ({cursor[:64]!r}); use the next_cursor of"
            " the previous page"
        )
    return int(raw)


def after_key(cursor: str | None) -> str | None:
    """The key a key cursor names; None for no cursor (the first page)."""
    if cursor is None or cursor == "":
        return None
    return _raw(cursor)
