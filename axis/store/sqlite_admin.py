"""SQLite operations.

Registry administration: search, history, certificates, token bookkeeping (issue 5).
"""

from __future__ import annotations

from axis.store.sqlite_base import SqliteBase


class SqliteAdminOps(SqliteBase):
    """Registry administration: search, history, certificates, token bookkeeping (issue 5)."""
