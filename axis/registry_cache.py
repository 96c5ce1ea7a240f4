"""The registry snapshot a process serves from, reloaded when the store says it changed.

A change made through this process is seen at once; one made by another process sharing the
store within ``max_age`` seconds (the version is a single indexed read, checked at most that
often).
"""

from __future__ import annotations

import time

from axis.registry import Registry
from axis.store.protocol import Store
from axis.systems import Systems


class RegistryCache:
    """The agencies and the connected systems, one snapshot of each, reloaded together (any
    change to either bumps the registry version)."""

    def __init__(self, store: Store, max_age: float = 0.5) -> None:
        self._store = store
        self._max_age = max_age
        self._snapshot: Registry | None = None
        self._systems = Systems()
        self._checked = 0.0

    async def current(self) -> Registry:
        now = time.monotonic()
        if self._snapshot is None:
            return await self.reload()
        if now - self._checked > self._max_age:
            self._checked = now
            if await self._store.registry_version() != self._snapshot.version:
                return await self.reload()
        return self._snapshot

    async def systems(self) -> Systems:
        """The connected systems as of the current registry version."""
        await self.current()
        return self._systems

    async def reload(self) -> Registry:
        self._systems = await self._store.systems()
        self._snapshot = await self._store.registry()
        self._checked = time.monotonic()
        return self._snapshot
