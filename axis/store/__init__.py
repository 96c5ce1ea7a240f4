"""Store backends behind one protocol (``axis.store.base.Store``)."""

from __future__ import annotations

from axis.config import Settings
from axis.store.protocol import Store


def open_store(settings: Settings) -> Store:
    """The backend the settings name: embedded SQLite unless a PostgreSQL URL is given."""
    if settings.uses_postgres:
        from axis.store.postgres import PostgresStore

        return PostgresStore(settings)
    from axis.store.sqlite import SqliteStore

    return SqliteStore(settings)
