"""The store's operations, written once over any ``Backend``: each operation's rules, state
changes, audit events and errors live here, and a backend holds only its SQL and mechanics.

``AxisStore`` is the sum of the areas; ``axis.store.open_store`` puts it over the backend the
settings name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from axis.store.backend import Backend
from axis.store.ops.agencies import AgencyOps
from axis.store.ops.audit import AuditOps
from axis.store.ops.console import ConsoleOps
from axis.store.ops.messages import MessageOps
from axis.store.ops.push import PushOps
from axis.store.ops.systems import SystemOps
from axis.store.ops.tokens import TokenOps


class AxisStore(MessageOps, PushOps, AuditOps, AgencyOps, TokenOps, SystemOps, ConsoleOps):
    """Everything the axis keeps (the ``Store`` protocol), over one backend."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)

    @property
    def backend(self) -> Backend:
        return self._b

    @property
    def mail_listeners(self) -> list[Callable[[Iterable[str]], None]]:
        return self._b.mail_listeners

    async def open(self) -> None:
        await self._b.open()

    async def close(self) -> None:
        await self._b.close()

    async def healthy(self) -> dict[str, Any]:
        """Readiness: the store takes a write (an empty one), and which schema it holds."""

        async def probe(tx: Any) -> None:
            await tx.value("probe")

        await self._b.write(probe)
        return {**self._b.describe(), "schema": await self.check_schema()}

    def stats(self) -> dict[str, float]:
        return self._b.stats()
