"""``python -m bench.variant_server --sqlite-driver D serve …``: ``axis serve`` over a bench-only
SQLite backend (``bench.aiosqlite_backend``), for the aiosqlite A/B of ``bin/bench``.

Everything after ``--sqlite-driver D`` is ``axis``'s own command line, run by ``axis.cli.main``:
the same settings, initialisation, workers, app, middleware and shutdown as ``axis serve``.
The one difference is the store ``axis serve`` opens for serving: ``axis.cli.serve`` looks its
``open_store`` up when each serving process starts, and here that name gives the variant
backend. Initialisation and migrations (``axis init``'s work) stay on the shipped backend, so
both sides of the A/B serve the same schema. Production code knows nothing of this.
"""

from __future__ import annotations

import argparse

from axis.config import Settings
from axis.store.ops import AxisStore
from axis.store.protocol import Store
from bench.aiosqlite_backend import DRIVERS, backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.variant_server",
        description="axis serve over a bench-only SQLite backend (the rest: axis's arguments)",
    )
    parser.add_argument("--sqlite-driver", choices=DRIVERS, required=True)
    args, rest = parser.parse_known_args(argv)
    driver: str = args.sqlite_driver

    from axis import cli
    from axis.cli import serve

    def open_variant(settings: Settings) -> Store:
        if settings.uses_postgres:
            raise SystemExit("bench.variant_server: the SQLite drivers are for SQLite only")
        return AxisStore(backend(driver, settings))

    serve.open_store = open_variant  # type: ignore[attr-defined]  # see the module docstring
    return cli.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
