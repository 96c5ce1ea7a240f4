"""SQLite operations.

Registry administration: search, history, certificates, token bookkeeping (issue 5).

Every change to an agency goes through ``_save``: it reads the agency as it is inside the
write transaction, computes the diff with ``registry.changes``, and writes nothing at all when
nothing changed (an import run twice leaves no trace the second time). A change writes the
row, a history row and an ``agency_changed`` audit event together, and bumps the registry
version so every process reloads its snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import orjson

from axis import registry, timeutil
from axis.audit import Event
from axis.errors import InvalidRequest, NotFound
from axis.model import AgencyChange, HistoryEntry
from axis.registry import Agency, Certificate, ExpiringCertificate
from axis.store.protocol import TOUCH_EVERY
from axis.store.sqlite_base import (
    AGENCY_SELECT,
    SqliteBase,
    Tx,
    agency_from_row,
    bump_registry,
    upsert_agency,
)


def _load(conn: sqlite3.Connection, organ_id: str) -> Agency | None:
    row = conn.execute(AGENCY_SELECT + " WHERE organ_id = ?", (organ_id,)).fetchone()
    if row is None:
        return None
    certs = tuple(
        Certificate.from_pem(pem)
        for (pem,) in conn.execute("SELECT pem FROM certificates WHERE organ_id = ?", (organ_id,))
    )
    return agency_from_row(row, certs)


def _link(conn: sqlite3.Connection, organ_id: str) -> registry.Link | None:
    row = conn.execute(
        "SELECT status, successor FROM agencies WHERE organ_id = ?", (organ_id,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def _save(tx: Tx, agency: Agency, actor: str) -> AgencyChange:
    """Write ``agency`` if it differs from what is stored; history and event with it."""
    before = _load(tx.conn, agency.organ_id)
    diff = registry.changes(before, agency)
    if before is not None and not diff:
        return AgencyChange(agency.organ_id, "unchanged")
    upsert_agency(tx, agency)
    tx.conn.execute(
        "INSERT INTO agency_history (organ_id, at, actor, status, successor, changes)"
        " VALUES (?,?,?,?,?,?)",
        (agency.organ_id, tx.at, actor, agency.status, agency.successor, orjson.dumps(diff)),
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


def _check(tx: Tx, agencies: Sequence[Agency]) -> None:
    """The link rules against the registry as this transaction leaves it."""
    for agency in agencies:
        try:
            registry.check_links(agency, lambda code: _link(tx.conn, code))
        except InvalidRequest as exc:
            prefix = f"{agency.organ_id}: " if len(agencies) > 1 else ""
            raise InvalidRequest(prefix + exc.detail) from None


class SqliteAdminOps(SqliteBase):
    """Registry administration: search, history, certificates, token bookkeeping (issue 5)."""

    async def save_agencies(
        self, agencies: Sequence[Agency], *, actor: str, check_links: bool = True
    ) -> list[AgencyChange]:
        def op(tx: Tx) -> list[AgencyChange]:
            done = [_save(tx, agency, actor) for agency in agencies]
            touched = [a for a, c in zip(agencies, done, strict=True) if c.outcome != "unchanged"]
            if check_links:
                _check(tx, touched)
            if touched:
                bump_registry(tx)
            return done

        return await self._write(op)

    async def save_agency(self, agency: Agency, *, actor: str) -> AgencyChange:
        (change,) = await self.save_agencies([agency], actor=actor)
        return change

    async def add_certificate(
        self, organ_id: str, certificate: Certificate, *, actor: str
    ) -> AgencyChange:
        def op(tx: Tx) -> AgencyChange:
            agency = _load(tx.conn, organ_id)
            if agency is None:
                raise NotFound(f"agency {organ_id}: not registered")
            pinned = {c.sha256 for c in agency.certificates}
            if certificate.sha256 in pinned:
                return AgencyChange(organ_id, "unchanged")
            more = (*agency.certificates, certificate)
            change = _save(tx, replace(agency, certificates=more), actor)
            bump_registry(tx)
            return change

        return await self._write(op)

    async def remove_certificate(self, organ_id: str, sha256: str, *, actor: str) -> AgencyChange:
        def op(tx: Tx) -> AgencyChange:
            agency = _load(tx.conn, organ_id)
            if agency is None:
                raise NotFound(f"agency {organ_id}: not registered")
            kept = tuple(c for c in agency.certificates if c.sha256 != sha256)
            if len(kept) == len(agency.certificates):
                raise NotFound(f"certificate {sha256}: not pinned for {organ_id}")
            change = _save(tx, replace(agency, certificates=kept), actor)
            bump_registry(tx)
            return change

        return await self._write(op)

    async def agency_history(self, organ_id: str) -> list[HistoryEntry]:
        rows = self._r.execute(
            "SELECT at, actor, status, successor, changes FROM agency_history"
            " WHERE organ_id = ? ORDER BY seq",
            (organ_id,),
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

        def op(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE tokens SET last_used_at = ?"
                " WHERE token_id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                (stamp, token_id, stamp),
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

        def op(tx: Tx) -> list[ExpiringCertificate]:
            tx.conn.execute("DELETE FROM certificate_expiry_reports WHERE day < ?", (day,))
            reported = {
                (o, s)
                for o, s in tx.conn.execute(
                    "SELECT organ_id, sha256 FROM certificate_expiry_reports WHERE day = ?",
                    (day,),
                )
            }
            fresh = [c for c in certificates if (c.organ_id, c.sha256) not in reported]
            for cert in fresh:
                tx.conn.execute(
                    "INSERT INTO certificate_expiry_reports (day, organ_id, sha256)"
                    " VALUES (?,?,?) ON CONFLICT DO NOTHING",
                    (day, cert.organ_id, cert.sha256),
                )
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
        rows = self._r.execute(
            "SELECT organ_id, sha256 FROM certificate_expiry_reports WHERE day = ?", (day,)
        )
        return {(o, s) for o, s in rows}
