"""The Store protocol, in part:

Audit trail queries, verification, checkpoints, retention (issue 6).
"""

from __future__ import annotations

from typing import Protocol


class AuditStore(Protocol):
    """Audit trail queries, verification, checkpoints, retention (issue 6)."""
