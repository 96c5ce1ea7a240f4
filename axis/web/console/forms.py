"""What the console's pages share: reading their query and form fields, naming agencies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from aiohttp import web

from axis import codes
from axis.errors import InvalidRequest
from axis.lifecycle import VIETNAM
from axis.registry import Agency, Registry
from axis.web.console.i18n import _

MAX_FIELD = 500  # characters of any one search field


def text(request: web.Request, name: str) -> str:
    """A query field, trimmed; longer than ``MAX_FIELD`` is refused naming the field."""
    value = request.query.get(name, "").strip()
    if len(value) > MAX_FIELD:
        raise InvalidRequest(f"{name}: at most {MAX_FIELD} characters")
    return value


async def form_text(request: web.Request, name: str, *, limit: int = MAX_FIELD) -> str:
    value = (await request.post()).get(name, "")
    if not isinstance(value, str):
        raise InvalidRequest(f"{name}: text, not a file")
    value = value.strip()
    if len(value) > limit:
        raise InvalidRequest(f"{name}: at most {limit} characters")
    return value


def day(request: web.Request, name: str) -> date | None:
    """A date field (``yyyy-mm-dd``, as a date input sends it)."""
    raw = text(request, name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: a date such as 2026-11-23, not {raw!r}") from None


def day_start(value: date) -> datetime:
    """Midnight at the start of ``value`` in Vietnam."""
    return datetime.combine(value, time(0), VIETNAM)


def period(request: web.Request) -> tuple[datetime | None, datetime | None]:
    """The ``from`` and ``to`` days, whole days in Vietnam time: ``[from 00:00, to+1 00:00)``."""
    first, last = day(request, "from"), day(request, "to")
    since = day_start(first) if first else None
    until = day_start(last + timedelta(days=1)) if last else None
    if since and until and since >= until:
        raise InvalidRequest("to: a day on or after from")
    return since, until


@dataclass(frozen=True, slots=True)
class Resolved:
    """An agency field as typed, resolved against the registry."""

    typed: str
    code: str | None = None  # the one agency it names
    choices: tuple[Agency, ...] = ()  # several match: the viewer picks one
    problem: str = ""


CHOICES_SHOWN = 20


def resolve(registry: Registry, typed: str) -> Resolved:
    """A code (any case) or a name, with or without diacritics (``ha noi`` → Hà Nội)."""
    if not typed:
        return Resolved(typed)
    upper = typed.upper()
    if registry.get(upper) is not None:
        return Resolved(typed, upper)
    if codes.is_wellformed(upper) and "." in upper:
        return Resolved(typed, upper)  # a code no longer registered still finds its mail
    found = registry.search(typed)
    if len(found) == 1:
        return Resolved(typed, found[0].organ_id)
    if not found:
        return Resolved(typed, problem=_("No agency matches this name or code."))
    return Resolved(typed, choices=tuple(found[:CHOICES_SHOWN]))


def agency_name(registry: Registry, organ_id: str | None) -> str:
    if organ_id is None:
        return ""
    agency = registry.get(organ_id)
    return agency.name if agency else ""


def level(organ_id: str) -> int | None:
    try:
        return codes.level(organ_id)
    except InvalidRequest:
        return None
