"""Connected systems: registered, changed, their secrets rotated and retired, disabled.

Each change writes the system, its listed codes and an audit event together, and bumps the
registry version so every process reloads the snapshot it authenticates from (a disabled
system is refused everywhere within the registry cache's half second). Secrets arrive and
stay sealed (``axis.secretbox``): the store never holds one in clear.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from axis.audit import Event
from axis.errors import DuplicateConflict, InvalidRequest, NotFound
from axis.model import EventType
from axis.store.backend import Reader, Row, Tx
from axis.store.ops.base import OpsBase
from axis.systems import ConnectedSystem, SealedSecrets, Systems


def _system(row: Row, listed: tuple[str, ...]) -> tuple[ConnectedSystem, SealedSecrets]:
    (sid, name, signature, register, status, created, updated, secret_at, secret, previous) = row
    system = ConnectedSystem(
        id=sid,
        name=name,
        agencies=listed,
        signature=signature,
        register=bool(register),
        status=status,
        created_at=created,
        updated_at=updated,
        secret_set_at=secret_at,
        rotating=previous is not None,
    )
    return system, SealedSecrets(secret, previous)


async def _load(reader: Reader, system_id: str) -> ConnectedSystem | None:
    row = await reader.one("system_by_id", system_id)
    if row is None:
        return None
    listed = tuple(r[0] for r in await reader.all("system_listed", system_id))
    return _system(row, listed)[0]


async def _list(tx: Tx, system: ConnectedSystem) -> None:
    """Write the codes ``system`` lists: each registered, and listed by no other system."""
    await tx.run("system_listings_clear", system.id)
    for code in system.agencies:
        if await tx.one("agency_by_id", code) is None:
            raise InvalidRequest(f"agencies: {code} is not a registered agency")
        other = await tx.value("system_listing_of", code)
        if other is not None:
            raise DuplicateConflict(
                f"agencies: {code} is already served by system {other}; a code is listed by"
                " one system (a descendant may be listed by another)"
            )
        await tx.run("system_listing_insert", code, system.id)


def _changes(before: ConnectedSystem, after: ConnectedSystem) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("name", "agencies", "signature", "register", "status"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            if name == "agencies":
                old, new = list(old), list(new)
            out[name] = {"from": old, "to": new}
    return out


def _event(type_: str, actor: str, system_id: str, **detail: Any) -> Event:
    return Event(type=type_, actor=actor, detail={"system_id": system_id, **detail})


class SystemOps(OpsBase):
    """Connected systems and their sealed secrets."""

    async def systems(self) -> Systems:
        listed: dict[str, list[str]] = defaultdict(list)
        for system_id, code in await self._b.read.all("system_listings"):
            listed[system_id].append(code)
        rows = await self._b.read.all("systems_all")
        return Systems.of(_system(row, tuple(listed[row[0]])) for row in rows)

    async def system(self, system_id: str) -> ConnectedSystem | None:
        return await _load(self._b.read, system_id)

    async def add_system(
        self, system: ConnectedSystem, sealed: str, *, actor: str
    ) -> ConnectedSystem:
        """Register a new system with its first (sealed) secret; 409 when the id exists."""

        async def op(tx: Tx) -> ConnectedSystem:
            await tx.run("lock_registry")
            if await tx.one("system_by_id", system.id) is not None:
                raise DuplicateConflict(f"system {system.id}: already registered")
            await tx.run(
                "system_insert",
                system.id,
                system.name,
                system.signature,
                system.register,
                system.status,
                sealed,
                tx.at,
                tx.at,
                tx.at,
            )
            await _list(tx, system)
            await tx.run("registry_bump")
            tx.event(
                _event(
                    EventType.SYSTEM_REGISTERED,
                    actor,
                    system.id,
                    name=system.name,
                    agencies=list(system.agencies),
                    signature=system.signature,
                    register=system.register,
                    status=system.status,
                )
            )
            found = await _load(tx, system.id)
            assert found is not None
            return found

        return await self._b.write(op)

    async def put_system(self, system: ConnectedSystem, *, actor: str) -> ConnectedSystem:
        """Replace a system's description (never its secret); 404 when there is none."""

        async def op(tx: Tx) -> ConnectedSystem:
            await tx.run("lock_registry")
            before = await _load(tx, system.id)
            if before is None:
                raise NotFound(f"system {system.id}: not registered (POST creates one)")
            diff = _changes(before, system)
            if not diff:
                return before
            await tx.run(
                "system_update",
                system.name,
                system.signature,
                system.register,
                system.status,
                tx.at,
                system.id,
            )
            await _list(tx, system)
            await tx.run("registry_bump")
            disabled = before.status == "active" and system.status == "disabled"
            kind = EventType.SYSTEM_DISABLED if disabled else EventType.SYSTEM_CHANGED
            tx.event(_event(kind, actor, system.id, changes=diff))
            found = await _load(tx, system.id)
            assert found is not None
            return found

        return await self._b.write(op)

    async def disable_system(self, system_id: str, *, actor: str) -> ConnectedSystem:
        """``status: disabled``: every request signed by it is refused from now on."""
        current = await self.system(system_id)
        if current is None:
            raise NotFound(f"system {system_id}: not registered")
        if current.status == "disabled":
            return current
        return await self.put_system(replace(current, status="disabled"), actor=actor)

    async def rotate_system_secret(
        self, system_id: str, sealed: str, *, actor: str
    ) -> ConnectedSystem:
        """A new secret; the one in use keeps working until the new one is first used."""

        async def op(tx: Tx) -> ConnectedSystem:
            await tx.run("lock_registry")
            if not await tx.run("system_secret_set", sealed, tx.at, tx.at, system_id):
                raise NotFound(f"system {system_id}: not registered")
            await tx.run("registry_bump")
            tx.event(_event(EventType.SYSTEM_SECRET_ROTATED, actor, system_id))
            found = await _load(tx, system_id)
            assert found is not None
            return found

        return await self._b.write(op)

    async def retire_previous_secret(self, system_id: str, *, actor: str, reason: str) -> bool:
        """The previous secret stops working (the new one was used, or an administrator
        revoked it); False when there was none (another process got there first)."""

        async def op(tx: Tx) -> bool:
            if not await tx.run("system_previous_clear", tx.at, system_id):
                return False
            await tx.run("registry_bump")
            tx.event(_event(EventType.SYSTEM_SECRET_RETIRED, actor, system_id, reason=reason))
            return True

        return await self._b.write(op)
