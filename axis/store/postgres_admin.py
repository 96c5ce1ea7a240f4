"""PostgreSQL operations.

Registry administration: search, history, certificates, token bookkeeping (issue 5), as in
``sqlite_admin``. Every change first locks the registry version row, so registry changes from
all nodes take turns: the link checks (no cycle of successors, parents exist) then see every
committed change, as they do behind SQLite's single writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from axis import registry, timeutil
from axis.audit import Event
from axis.errors import InvalidRequest, NotFound
from axis.model import AgencyChange, HistoryEntry
from axis.registry import Agency, Certificate, ExpiringCertificate
from axis.store.postgres_base import (
    PgTx,
    PostgresBase,
    bump_registry,
    lock_registry,
    upsert_agency,
)
from axis.store.protocol import TOUCH_EVERY
from axis.store.sqlite_base import AGENCY_SELECT, agency_from_row


async def _load(conn: Any, organ_id: str) -> Agency | None:
    row = await conn.fetchrow(AGENCY_SELECT + " WHERE organ_id = $1", organ_id)
    if row is None:
        return None
    certs = tuple(
        Certificate.from_pem(pem)
        for (pem,) in await conn.fetch("SELECT pem FROM certificates WHERE organ_id = $1", organ_id)
    )
    return agency_from_row(tuple(row), certs)


async def _links(conn: Any) -> dict[str, registry.Link]:
    rows = await conn.fetch("SELECT organ_id, status, successor FROM agencies")
    return {row[0]: (row[1], row[2]) for row in rows}


async def _save(tx: PgTx, agency: Agency, actor: str) -> AgencyChange:
    """Write ``agency`` if it differs from what is stored; history and event with it."""
    before = await _load(tx.conn, agency.organ_id)
    diff = registry.changes(before, agency)
    if before is not None and not diff:
        return AgencyChange(agency.organ_id, "unchanged")
    await upsert_agency(tx, agency)
    await tx.conn.execute(
        "INSERT INTO agency_history (organ_id, at, actor, status, successor, changes)"
        " VALUES ($1,$2,$3,$4,$5,$6)",
        agency.organ_id,
        tx.at,
        actor,
        agency.status,
        agency.successor,
        orjson.dumps(diff).decode(),
    )
    tx.event(
        Event(
            type="agency_changed",
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


async def _check(tx: PgTx, agencies: Sequence[Agency]) -> None:
    """The link rules against the registry as this transaction leaves it."""
    if not agencies:
        return
    links = await _links(tx.conn)  # one read: the rules may follow a chain of successors
    for agency in agencies:
        try:
            registry.check_links(agency, links.get)
        except InvalidRequest as exc:
            prefix = f"{agency.organ_id}: " if len(agencies) > 1 else ""
            raise InvalidRequest(prefix + exc.detail) from None


class PostgresAdminOps(PostgresBase):
    """Registry administration: search, history, certificates, token bookkeeping (issue 5)."""

    async def save_agencies(
        self, agencies: Sequence[Agency], *, actor: str, check_links: bool = True
    ) -> list[AgencyChange]:
        async def op(tx: PgTx) -> list[AgencyChange]:
            await lock_registry(tx)
            done = [await _save(tx, agency, actor) for agency in agencies]
            touched = [a for a, c in zip(agencies, done, strict=True) if c.outcome != "unchanged"]
            if check_links:
                await _check(tx, touched)
            if touched:
                await bump_registry(tx)
            return done

        return await self._write(op)

    async def save_agency(self, agency: Agency, *, actor: str) -> AgencyChange:
        (change,) = await self.save_agencies([agency], actor=actor)
        return change

    async def add_certificate(
        self, organ_id: str, certificate: Certificate, *, actor: str
    ) -> AgencyChange:
        async def op(tx: PgTx) -> AgencyChange:
            await lock_registry(tx)
            agency = await _load(tx.conn, organ_id)
            if agency is None:
                raise NotFound(f"agency {organ_id}: not registered")
            pinned = {c.sha256 for c in agency.certificates}
            if certificate.sha256 in pinned:
                return AgencyChange(organ_id, "unchanged")
            more = (*agency.certificates, certificate)
            change = await _save(tx, replace(agency, certificates=more), actor)
            await bump_registry(tx)
            return change

        return await self._write(op)

    async def remove_certificate(self, organ_id: str, sha256: str, *, actor: str) -> AgencyChange:
        async def op(tx: PgTx) -> AgencyChange:
            await lock_registry(tx)
            agency = await _load(tx.conn, organ_id)
            if agency is None:
                raise NotFound(f"agency {organ_id}: not registered")
            kept = tuple(c for c in agency.certificates if c.sha256 != sha256)
            if len(kept) == len(agency.certificates):
                raise NotFound(f"certificate {sha256}: not pinned for {organ_id}")
            change = await _save(tx, replace(agency, certificates=kept), actor)
            await bump_registry(tx)
            return change

        return await self._write(op)

    async def agency_history(self, organ_id: str) -> list[HistoryEntry]:
        rows = await self._read(
            "fetch",
            "SELECT at, actor, status, successor, changes FROM agency_history"
            " WHERE organ_id = $1 ORDER BY seq",
            organ_id,
        )
        return [HistoryEntry(at, who, st, succ, orjson.loads(ch)) for at, who, st, succ, ch in rows]

    async def touch_token(self, token_id: str, at: datetime) -> None:
        # per process; the attribute is made on first use so no __init__ joins the MRO
        seen: dict[str, datetime] = self.__dict__.setdefault("_token_touched", {})
        last = seen.get(token_id)
        if last is not None and at - last < TOUCH_EVERY:
            return
        seen[token_id] = at
        stamp = timeutil.fmt(at)

        async def op(tx: PgTx) -> None:
            await tx.conn.execute(
                "UPDATE tokens SET last_used_at = $1"
                " WHERE token_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                stamp,
                token_id,
            )

        await self._write(op)

    async def report_expiring(
        self, certificates: Sequence[ExpiringCertificate], *, day: str, actor: str
    ) -> list[ExpiringCertificate]:
        if not certificates:
            return []
        done = await self.expiry_reported(day)
        if all((c.organ_id, c.sha256) in done for c in certificates):
            return []  # the common case, answered by a read: nothing new today

        async def op(tx: PgTx) -> list[ExpiringCertificate]:
            await tx.conn.execute("DELETE FROM certificate_expiry_reports WHERE day < $1", day)
            fresh = []
            for cert in certificates:
                # whichever node inserts the row first reports it; the others find it there
                won = await tx.conn.fetchval(
                    "INSERT INTO certificate_expiry_reports (day, organ_id, sha256)"
                    " VALUES ($1,$2,$3) ON CONFLICT DO NOTHING RETURNING 1",
                    day,
                    cert.organ_id,
                    cert.sha256,
                )
                if won is None:
                    continue
                fresh.append(cert)
                tx.event(
                    Event(
                        type="certificate_expiring",
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

        return await self._write(op)

    async def expiry_reported(self, day: str) -> set[tuple[str, str]]:
        rows = await self._read(
            "fetch",
            "SELECT organ_id, sha256 FROM certificate_expiry_reports WHERE day = $1",
            day,
        )
        return {(o, s) for o, s in rows}
