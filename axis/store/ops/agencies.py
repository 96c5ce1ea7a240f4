"""The registry: agencies, their certificates and history, the schema they live in.

Every change to an agency goes through ``_save``: it reads the agency as it is inside the
write transaction, computes the diff with ``registry.changes``, and writes nothing at all when
nothing changed (an import run twice leaves no trace the second time). A change writes the
row, a history row and an ``agency_changed`` audit event together, and bumps the registry
version so every process reloads its snapshot. Registry changes first take the registry lock
(on PostgreSQL a row lock, so changes from all nodes take turns and the link checks see every
committed change; SQLite's one writer already serialises them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import orjson

from axis import registry, timeutil
from axis.audit import Event
from axis.errors import InvalidRequest, NotFound, StoreError
from axis.model import AgencyChange, EventType, HistoryEntry, InitReport
from axis.registry import Agency, Certificate, ExpiringCertificate, Registry
from axis.store import backend
from axis.store.backend import Reader, Tx
from axis.store.ops.base import OpsBase, agency_from_row

INIT_ACTOR = "system:init"


async def _load(tx: Tx, organ_id: str) -> Agency | None:
    row = await tx.one("agency_by_id", organ_id)
    if row is None:
        return None
    pems = await tx.all("certificates_of", organ_id)
    return agency_from_row(row, tuple(Certificate.from_pem(pem) for (pem,) in pems))


async def _upsert(tx: Tx, agency: Agency) -> None:
    """Write one agency and exactly its certificates."""
    await tx.run(
        "agency_upsert",
        agency.organ_id,
        agency.name,
        agency.kind,
        agency.parent,
        agency.status,
        agency.successor,
        agency.endpoint,
        agency.push_secret,
        agency.allow_sha1,
        agency.confirmed,
        agency.source,
        tx.at,
    )
    await tx.run("certificates_clear", agency.organ_id)
    if agency.certificates:
        rows = [
            (
                agency.organ_id,
                cert.sha256,
                cert.pem,
                timeutil.fmt(cert.not_before),
                timeutil.fmt(cert.not_after),
            )
            for cert in agency.certificates
        ]
        await tx.many("certificate_insert", rows)


async def _save(tx: Tx, agency: Agency, actor: str) -> AgencyChange:
    """Write ``agency`` if it differs from what is stored; history and event with it."""
    before = await _load(tx, agency.organ_id)
    diff = registry.changes(before, agency)
    if before is not None and not diff:
        return AgencyChange(agency.organ_id, "unchanged")
    await _upsert(tx, agency)
    await tx.run(
        "agency_history_insert",
        agency.organ_id,
        tx.at,
        actor,
        agency.status,
        agency.successor,
        orjson.dumps(diff).decode(),
    )
    tx.event(
        Event(
            type=EventType.AGENCY_CHANGED,
            actor=actor,
            to_id=agency.organ_id,
            detail={
                "created": before is None,
                "status": agency.status,
                "successor": agency.successor,
                "endpoint": agency.endpoint,
                "certificates": [c.sha256 for c in agency.certificates],
                "changes": diff,
            },
        )
    )
    return AgencyChange(agency.organ_id, "added" if before is None else "changed", diff)


async def _check(tx: Tx, agencies: Sequence[Agency]) -> None:
    """The link rules against the registry as this transaction leaves it."""
    if not agencies:
        return
    # one read: the rules may follow a chain of successors
    links = {row[0]: (row[1], row[2]) for row in await tx.all("agency_links")}
    for agency in agencies:
        try:
            registry.check_links(agency, links.get)
        except InvalidRequest as exc:
            prefix = f"{agency.organ_id}: " if len(agencies) > 1 else ""
            raise InvalidRequest(prefix + exc.detail) from None


async def meta(reader: Reader) -> dict[str, str]:
    """The ``meta`` table (schema version, migrations, registry version); {} for a new store."""
    if not await reader.value("meta_exists"):
        return {}
    return {str(key): str(value) for key, value in await reader.all("meta_all")}


def recorded(meta: dict[str, str]) -> set[int]:
    """The migrations a store has: listed since schema 5; before that, 1 up to its version."""
    if "migrations" in meta:
        return {int(n) for n in meta["migrations"].split(",") if n}
    return set(range(1, int(meta.get("schema_version", "0")) + 1))


class AgencyOps(OpsBase):
    """The registry and the schema: initialise, read, change, report expiring certificates."""

    async def initialize(self, agencies: Sequence[Agency]) -> InitReport:
        available = backend.migrations(self._b.dialect)
        await self._b.prepare()
        before: list[set[int]] = []

        async def op(tx: Tx) -> int:
            await tx.run("lock_migrations")  # one process migrates; the others then find it done
            applied = recorded(await meta(tx))
            before.append(applied)
            # every migration not yet applied, in number order (not only those above the
            # highest: one merged late with a lower number still runs)
            for number, sql in available:
                if number not in applied:
                    await self._b.apply_migration(tx, sql)
                    applied = applied | {number}
            numbers = ",".join(str(n) for n in sorted(applied))
            await tx.run("meta_put", "migrations", numbers)
            await tx.run("meta_put", "schema_version", str(max(applied)))
            present = {row[0] for row in await tx.all("agency_ids")}
            added = 0
            for agency in agencies:
                if agency.organ_id not in present:
                    await _upsert(tx, agency)
                    present.add(agency.organ_id)
                    added += 1
            if added:
                await tx.run("registry_bump")
                detail = {"loaded": added, "source": "agencies.yaml"}
                tx.event(Event(type=EventType.AGENCY_CHANGED, actor=INIT_ACTOR, detail=detail))
            return added

        added = await self._b.write(op)
        return InitReport(
            created=not before[-1],
            agencies_added=added,
            schema_version=available[-1][0],
        )

    async def check_schema(self) -> int:
        """The schema version in use; raises when migrations of this code are missing."""
        available = {n for n, _ in backend.migrations(self._b.dialect)}
        applied = await self._applied()
        missing = sorted(available - applied)
        if missing:
            raise StoreError(
                f"the store ({self._b.describe().get('where', '')}) lacks migrations"
                f" {missing} of this version: run `axis init`"
            )
        return max(applied, default=0)

    async def _applied(self) -> set[int]:
        return recorded(await meta(self._b.read))

    async def registry(self) -> Registry:
        certs: dict[str, list[Certificate]] = defaultdict(list)
        for organ_id, pem in await self._b.read.all("certificates_all"):
            certs[organ_id].append(Certificate.from_pem(pem))
        agencies = [
            agency_from_row(row, tuple(certs.get(row[0], ())))
            for row in await self._b.read.all("agencies_all")
        ]
        return Registry.of(agencies, await self.registry_version())

    async def registry_version(self) -> int:
        value = await self._b.read.value("meta_get", "registry_version")
        return int(value) if value is not None else 0

    async def put_agency(self, agency: Agency, *, actor: str) -> bool:
        """Create or replace one agency, with history and link checks (see ``save_agency``)."""
        return (await self.save_agency(agency, actor=actor)).outcome == "added"

    async def save_agencies(
        self, agencies: Sequence[Agency], *, actor: str, check_links: bool = True
    ) -> list[AgencyChange]:
        async def op(tx: Tx) -> list[AgencyChange]:
            await tx.run("lock_registry")
            done = [await _save(tx, agency, actor) for agency in agencies]
            touched = [a for a, c in zip(agencies, done, strict=True) if c.outcome != "unchanged"]
            if check_links:
                await _check(tx, touched)
            if touched:
                await tx.run("registry_bump")
            return done

        return await self._b.write(op)

    async def save_agency(self, agency: Agency, *, actor: str) -> AgencyChange:
        (change,) = await self.save_agencies([agency], actor=actor)
        return change

    async def add_certificate(
        self, organ_id: str, certificate: Certificate, *, actor: str
    ) -> AgencyChange:
        async def op(tx: Tx) -> AgencyChange:
            await tx.run("lock_registry")
            agency = await _load(tx, organ_id)
            if agency is None:
                raise NotFound(f"agency {organ_id}: not registered")
            if certificate.sha256 in {c.sha256 for c in agency.certificates}:
                return AgencyChange(organ_id, "unchanged")
            more = (*agency.certificates, certificate)
            change = await _save(tx, replace(agency, certificates=more), actor)
            await tx.run("registry_bump")
            return change

        return await self._b.write(op)

    async def remove_certificate(self, organ_id: str, sha256: str, *, actor: str) -> AgencyChange:
        async def op(tx: Tx) -> AgencyChange:
            await tx.run("lock_registry")
            agency = await _load(tx, organ_id)
            if agency is None:
                raise NotFound(f"agency {organ_id}: not registered")
            kept = tuple(c for c in agency.certificates if c.sha256 != sha256)
            if len(kept) == len(agency.certificates):
                raise NotFound(f"certificate {sha256}: not pinned for {organ_id}")
            change = await _save(tx, replace(agency, certificates=kept), actor)
            await tx.run("registry_bump")
            return change

        return await self._b.write(op)

    async def agency_history(self, organ_id: str) -> list[HistoryEntry]:
        rows = await self._b.read.all("agency_history_of", organ_id)
        return [HistoryEntry(at, who, st, succ, orjson.loads(ch)) for at, who, st, succ, ch in rows]

    async def report_expiring(
        self, certificates: Sequence[ExpiringCertificate], *, day: str, actor: str
    ) -> list[ExpiringCertificate]:
        if not certificates:
            return []
        done = await self.expiry_reported(day)
        if all((c.organ_id, c.sha256) in done for c in certificates):
            return []  # the common case, answered by a read: nothing new today

        async def op(tx: Tx) -> list[ExpiringCertificate]:
            await tx.run("expiry_reports_before_clear", day)
            fresh = []
            for cert in certificates:
                # whichever process inserts the row first reports it; the others find it there
                if await tx.one("expiry_report_insert", day, cert.organ_id, cert.sha256) is None:
                    continue
                fresh.append(cert)
                tx.event(
                    Event(
                        type=EventType.CERTIFICATE_EXPIRING,
                        actor=actor,
                        to_id=cert.organ_id,
                        detail={
                            "day": day,
                            "sha256": cert.sha256,
                            "not_after": timeutil.fmt(cert.not_after),
                            "expired": timeutil.fmt(cert.not_after) < tx.at,
                        },
                    )
                )
            return fresh

        return await self._b.write(op)

    async def expiry_reported(self, day: str) -> set[tuple[str, str]]:
        rows = await self._b.read.all("expiry_reports_of", day)
        return {(o, s) for o, s in rows}
