"""SQLite operations.

Audit trail queries, verification, checkpoints, retention (issue 6).
"""

from __future__ import annotations

from axis.store.sqlite_base import SqliteBase


class SqliteAuditOps(SqliteBase):
    """Audit trail queries, verification, checkpoints, retention (issue 6)."""
