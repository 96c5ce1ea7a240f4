"""Languages of the console: Vietnamese first, English too, from gettext catalogues.

The texts are written in English in the templates and the code (``_("…")``, ``N_("…")``) and
translated by ``locale/<lang>/LC_MESSAGES/console.po``; Babel extracts them
(``babel.cfg``) and reads the catalogues when the console starts (no compiled files in the
checkout, no build step). The language is per request (a cookie the switch on every page
sets), held in a context variable so the templates' ``_()`` needs nothing passed in.

Times are shown as ``dd/MM/yyyy HH:mm`` in Vietnam time (UTC+7, no daylight saving) whatever
the language; numbers with the language's separators (1.000.000 in Vietnamese).
"""

from __future__ import annotations

import gettext as _gettext
import io
from contextvars import ContextVar, Token
from datetime import datetime
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from axis.lifecycle import VIETNAM

LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}
DEFAULT = "vi"
DOMAIN = "console"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_current: ContextVar[str] = ContextVar("console_language", default=DEFAULT)
_catalogues: dict[str, _gettext.NullTranslations] = {}


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue; it is translated where it is shown."""
    return message


def load() -> None:
    """Read every language's catalogue once (Babel parses the .po and compiles it here)."""
    for lang in LANGUAGES:
        path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        with path.open("rb") as fh:
            catalogue = read_po(fh, locale=lang, domain=DOMAIN)
        compiled = io.BytesIO()
        write_mo(compiled, catalogue)
        compiled.seek(0)
        _catalogues[lang] = _gettext.GNUTranslations(compiled)


def use(lang: str) -> Token[str]:
    return _current.set(lang if lang in LANGUAGES else DEFAULT)


def reset(token: Token[str]) -> None:
    _current.reset(token)


def current() -> str:
    return _current.get()


def gettext(message: str) -> str:
    catalogue = _catalogues.get(_current.get())
    return catalogue.gettext(message) if catalogue is not None else message


def ngettext(singular: str, plural: str, n: int) -> str:
    catalogue = _catalogues.get(_current.get())
    if catalogue is None:
        return singular if n == 1 else plural
    return catalogue.ngettext(singular, plural, n)


_ = gettext


# ----------------------------------------------------------------------- formats


def vn_time(value: str | datetime | None) -> str:
    """``dd/MM/yyyy HH:mm`` in Vietnam time; empty for None."""
    if value is None or value == "":
        return ""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def vn_date(value: datetime) -> str:
    return value.astimezone(VIETNAM).strftime("%d/%m/%Y")


def number(value: int | float) -> str:
    return format_decimal(value, locale=_current.get())


# ----------------------------------------------------------------------- labels

DELIVERY_STATES = {
    "queued": N_("Waiting to be fetched"),
    "fetched": N_("Fetched, not acknowledged"),
    "acked": N_("Acknowledged"),
    "failed": N_("Recipient reported failure"),
    "retrying": N_("Push failing, retrying"),
    "dead": N_("Push given up"),
    "overdue": N_("Receipt overdue"),
}
AGENCY_STATUSES = {
    "active": N_("Active"),
    "suspended": N_("Suspended"),
    "closed": N_("Closed"),
}
# business statuses (EDXML: status packets), with who sends each
STATUS_CODES = {
    "01": N_("Arrived (not yet handled)"),
    "02": N_("Refused"),
    "03": N_("Accepted and registered"),
    "04": N_("Assigned for handling"),
    "05": N_("Being handled"),
    "06": N_("Handling finished"),
    "13": N_("Take-back requested"),
    "15": N_("Agrees to the update or take-back"),
    "16": N_("Refuses the update or take-back"),
}
BUSINESS_TYPES = {
    0: N_("New document"),
    1: N_("Revocation"),
    2: N_("Update"),
    3: N_("Replacement"),
}
KINDS = {"edoc": N_("Document"), "status": N_("Status packet")}
RELATIONS = {
    "revokes": N_("revokes"),
    "updates": N_("updates"),
    "replaces": N_("replaces"),
    "status_of": N_("status of"),
    "answers": N_("answers"),
}
ROLES = {"admin": N_("Administrator"), "auditor": N_("Auditor"), "agency": N_("Agency")}
EVENT_TYPES = {
    "message_received": N_("Message received"),
    "message_rejected": N_("Message refused"),
    "delivery_queued": N_("Delivery queued"),
    "delivery_forwarded": N_("Forwarded to a successor"),
    "delivery_fetched": N_("Fetched by the recipient"),
    "delivery_acked": N_("Acknowledged"),
    "delivery_failed": N_("Recipient reported failure"),
    "push_attempt_failed": N_("Push attempt failed"),
    "delivery_dead": N_("Push given up"),
    "delivery_redelivered": N_("Redelivered"),
    "status_relayed": N_("Status relayed"),
    "agency_changed": N_("Agency changed"),
    "token_issued": N_("Token issued"),
    "token_revoked": N_("Token revoked"),
    "certificate_expiring": N_("Certificate expiring"),
    "checkpoint": N_("Checkpoint signed"),
    "body_purged": N_("Body purged (retention)"),
    "axis_key_rotated": N_("Axis key rotated"),
    "console_signed_in": N_("Signed in to the console"),
    "console_signed_out": N_("Signed out of the console"),
    "body_downloaded": N_("Body downloaded"),
}

ERROR_TITLES = {
    "invalid_request": N_("The request cannot be done as asked"),
    "unauthorized": N_("Sign in first"),
    "forbidden": N_("Not allowed"),
    "not_found": N_("Not found"),
    "duplicate_conflict": N_("It conflicts with what was done before"),
    "rate_limited": N_("Too many attempts"),
    "internal_error": N_("Internal error"),
}


def label(table: dict[str, str] | dict[int, str], key: object) -> str:
    """The translated label of ``key`` in one of the tables above; the key itself if none."""
    text = table.get(key)  # type: ignore[call-overload]
    return gettext(text) if text else ("" if key is None else str(key))
