"""The store: one protocol (``protocol.Store``), its operations written once (``ops``), and
a backend per engine (``sqlite``, ``postgres``) holding only SQL and concurrency."""

from __future__ import annotations

from axis.config import Settings
from axis.store.ops import AxisStore
from axis.store.protocol import Store


def open_store(settings: Settings) -> Store:
    """The backend the settings name: embedded SQLite unless a PostgreSQL URL is given."""
    if settings.uses_postgres:
        from axis.store.postgres.backend import PostgresBackend

        return AxisStore(PostgresBackend(settings))
    from axis.store.sqlite.backend import SqliteBackend

    return AxisStore(SqliteBackend(settings))
