"""The Store protocol, in part:

Push delivery: due deliveries, leases, attempts, dead letters (issue 4).
"""

from __future__ import annotations

from typing import Protocol


class PushStore(Protocol):
    """Push delivery: due deliveries, leases, attempts, dead letters (issue 4)."""
