"""The Store protocol, in part:

Registry administration: search, history, certificates, token bookkeeping (issue 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from axis.registry import Agency, Certificate, ExpiringCertificate

Outcome = Literal["added", "changed", "unchanged"]

TOUCH_EVERY = timedelta(minutes=1)
"""A token's ``last_used_at`` is written at most this often: it is a hint, not a log."""


@dataclass(frozen=True, slots=True)
class AgencyChange:
    """What saving one agency did: added, changed (which fields) or left it as it was."""

    organ_id: str
    outcome: Outcome
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One registration or change of an agency, as recorded when it was made."""

    at: str
    actor: str
    status: str
    successor: str | None
    changes: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "status": self.status,
            "successor": self.successor,
            "changes": self.changes,
        }


class AdminStore(Protocol):
    """Registry administration: search, history, certificates, token bookkeeping (issue 5)."""

    async def save_agencies(
        self, agencies: Sequence[Agency], *, actor: str, check_links: bool = True
    ) -> list[AgencyChange]:
        """Add or replace agencies in one transaction; unchanged ones are not touched.

        Each added or changed agency gets an ``agency_changed`` audit event naming ``actor``
        and the changed fields, and a history row. With ``check_links`` the parent and
        successor rules (``registry.check_links``) are checked inside the transaction against
        the registry as it will be, raising ``InvalidRequest`` and writing nothing; an import
        that checked the whole file first passes False.
        """

    async def save_agency(self, agency: Agency, *, actor: str) -> AgencyChange:
        """``save_agencies`` for one agency, links checked."""

    async def add_certificate(
        self, organ_id: str, certificate: Certificate, *, actor: str
    ) -> AgencyChange:
        """Pin one more certificate, keeping the others (rotation); ``NotFound`` if no agency."""

    async def remove_certificate(self, organ_id: str, sha256: str, *, actor: str) -> AgencyChange:
        """Unpin one certificate at once; ``NotFound`` if the agency or the pin is not there."""

    async def agency_history(self, organ_id: str) -> list[HistoryEntry]:
        """Every recorded registration or change of ``organ_id``, oldest first."""

    async def touch_token(self, token_id: str, at: datetime) -> None:
        """Note that a token was used at ``at``; cheap to call on every request.

        Writes at most once per ``TOUCH_EVERY`` per token and process (an in-memory check
        answers the other calls without touching the store), and never moves it backwards.
        """

    async def report_expiring(
        self, certificates: Sequence[ExpiringCertificate], *, day: str, actor: str
    ) -> list[ExpiringCertificate]:
        """Record a ``certificate_expiring`` audit event for each certificate not yet reported
        on ``day`` (UTC ``YYYY-MM-DD``); returns those. Several processes may call it: each
        certificate is reported once a day.
        """

    async def expiry_reported(self, day: str) -> set[tuple[str, str]]:
        """``(organ_id, sha256)`` of the certificates already reported as expiring on ``day``."""
