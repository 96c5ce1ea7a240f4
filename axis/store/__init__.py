"""Store backends behind one protocol (``axis.store.base.Store``)."""

from __future__ import annotations

from axis.config import Settings
from axis.store.protocol import Store


def open_store(settings: Settings) -> Store:
    """The backend the settings name: embedded SQLite unless a PostgreSQL URL is given."""
    if settings.uses_postgres:
        raise NotImplementedError("the PostgreSQL store is not built yet (issue 7)")
    from axis.store.sqlite import SqliteStore

    return SqliteStore(settings)
