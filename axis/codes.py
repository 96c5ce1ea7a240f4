"""Agency codes (mã định danh): what a packet may carry and what the registry accepts.

Two checks on purpose. ``is_wellformed`` is the edXML ``OrganId`` alphabet: a packet that
carries anything else is rejected outright, but we do not refuse a well-formed code just
because it is not in the classic form, since the trục's own list may hold such codes.
``is_registrable`` is the classic QCVN 102 form ``YYY.ZZ.MM.Xnn`` that our registry accepts,
because the hierarchy (``level``, ``parent``) is only defined on that form.

The hierarchy is read right to left: ``Xnn`` is level 1, ``MM`` level 2, ``ZZ`` level 3,
``YYY`` level 4. A code's level is its leftmost non-zero part, and its parent is the code with
that part zeroed (EDXML.md). Field codes skip levels: the sender of the published sample
``edoc.edxml`` is ``002.00.20.H13``, a level-4 unit directly under the level-2
``000.00.20.H13``. Such a code is registrable; its parent is simply more than one level up.

Everything here is pure: no I/O, no registry. ``resolve_successor`` takes the lookup as a
function so the registry can forward mail for a closed code without this module knowing
where successors are stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from axis.errors import InvalidRequest

__all__ = [
    "MAX_LEN",
    "ancestors",
    "check_registrable",
    "is_registrable",
    "is_wellformed",
    "level",
    "level1",
    "parent",
    "resolve_successor",
]

MAX_LEN = 35
"""Longest ``OrganId`` edXML allows."""

# Explicit ASCII classes: ``\d`` would also accept other scripts' digits.
_WELLFORMED = re.compile(r"[.0-9A-Z]{1,35}")
_CLASSIC = re.compile(r"([0-9]{3})\.([0-9]{2})\.([0-9]{2})\.([A-Z][0-9]{2})")

# Shown in details: a hostile code may be long, and the detail must stay readable.
_SHOWN = 48


def _show(code: str) -> str:
    if len(code) > _SHOWN:
        return repr(code[:_SHOWN]) + f"… ({len(code)} characters)"
    return repr(code)


def is_wellformed(code: str) -> bool:
    """Whether a packet may carry ``code`` as an ``OrganId``: ``.``, ``0-9``, ``A-Z``, 1..35."""
    return _WELLFORMED.fullmatch(code) is not None


def _problem(code: str) -> str | None:
    """What keeps ``code`` from being registrable, or None; one place so both checks agree."""
    if not code:
        return "is empty"
    if not is_wellformed(code):
        if len(code) > MAX_LEN:
            return f"is longer than {MAX_LEN} characters"
        return "has characters outside '.', '0-9' and 'A-Z'"
    m = _CLASSIC.fullmatch(code)
    if m is None:
        return (
            "is not in the form YYY.ZZ.MM.Xnn "
            "(3 digits, 2 digits, 2 digits, a capital letter and 2 digits)"
        )
    return None


def is_registrable(code: str) -> bool:
    """Whether the registry accepts ``code``: the classic form ``YYY.ZZ.MM.Xnn``."""
    return _problem(code) is None


def check_registrable(code: str, *, field: str = "agency code") -> str:
    """Return ``code`` if registrable, else raise InvalidRequest saying what is wrong.

    ``field`` names the element or field in the detail, so the sender can fix the request
    from the answer alone (e.g. ``field="organ_id"``).
    """
    problem = _problem(code)
    if problem is not None:
        raise InvalidRequest(f"{field} {_show(code)} {problem}")
    return code


def _parts(code: str) -> tuple[str, str, str, str]:
    check_registrable(code)
    m = _CLASSIC.fullmatch(code)
    assert m is not None  # check_registrable guarantees it
    yyy, zz, mm, x = m.groups()
    return yyy, zz, mm, x


def level(code: str) -> int:
    """1..4: the level the code names; raises InvalidRequest if ``code`` is not registrable."""
    yyy, zz, mm, _ = _parts(code)
    if yyy != "000":
        return 4
    if zz != "00":
        return 3
    if mm != "00":
        return 2
    return 1


def parent(code: str) -> str | None:
    """The code with its own level's part zeroed; None for a level-1 code."""
    yyy, zz, mm, x = _parts(code)
    if yyy != "000":
        return f"000.{zz}.{mm}.{x}"
    if zz != "00":
        return f"000.00.{mm}.{x}"
    if mm != "00":
        return f"000.00.00.{x}"
    return None


def ancestors(code: str) -> tuple[str, ...]:
    """Parent, grandparent, … up to the level-1 code; excludes ``code``, empty at level 1.

    Levels a code skips are not in its chain: ``002.00.20.H13`` has two ancestors.
    """
    chain: list[str] = []
    up = parent(code)
    while up is not None:
        chain.append(up)
        up = parent(up)
    return tuple(chain)


def level1(code: str) -> str:
    """The level-1 code ``000.00.00.Xnn`` at the top of ``code``'s hierarchy (itself at level 1)."""
    *_, x = _parts(code)
    return f"000.00.00.{x}"


def resolve_successor(code: str, successor_of: Callable[[str], str | None]) -> tuple[str, ...]:
    """The chain ``(code, s1, s2, …)`` of successors, ending at a code with no successor.

    Closed codes may be closed again later (a successor may itself be merged), so mail for
    a closed code follows the whole chain. A cycle would forward mail forever, so it raises
    InvalidRequest naming the codes in the loop. ``successor_of`` returns None for a code that
    is not closed; codes are not validated here, the registry stores only registrable ones.
    """
    chain = [code]
    seen = {code: 0}
    while (nxt := successor_of(chain[-1])) is not None:
        if nxt in seen:
            loop = [*chain[seen[nxt] :], nxt]
            raise InvalidRequest(f"agency code {code!r} has a successor cycle: {' → '.join(loop)}")
        seen[nxt] = len(chain)
        chain.append(nxt)
    return tuple(chain)
