"""The embedded default engine (``backend.SqliteBackend``): one SQLite file, group commits."""
