"""The shared engine for several nodes (``backend.PostgresBackend``): PostgreSQL via asyncpg."""
