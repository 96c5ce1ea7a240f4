"""SQLite operations.

Push delivery: due deliveries, leases, attempts, dead letters (issue 4).
"""

from __future__ import annotations

from axis.store.sqlite_base import SqliteBase


class SqlitePushOps(SqliteBase):
    """Push delivery: due deliveries, leases, attempts, dead letters (issue 4)."""
