"""The agency registry as the core sees it: an immutable snapshot of agencies and their pins.

The store owns the rows; the web layer holds one ``Registry`` snapshot and swaps it whole when
an administrator changes something, so a request never sees half an update and the hot path
(routing, signature pinning) reads plain dictionaries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from cryptography import x509

from axis import codes
from axis.errors import InvalidRequest

Kind = str  # "central" | "provincial" | "unit" | ... (the contract leaves the list open)
AgencyStatus = Literal["active", "suspended", "closed"]
STATUSES: tuple[str, ...] = ("active", "suspended", "closed")


@dataclass(frozen=True, slots=True)
class Certificate:
    """A pinned signing certificate of one agency."""

    pem: str
    sha256: str
    subject: str
    not_before: datetime
    not_after: datetime
    cert: x509.Certificate = field(compare=False, repr=False)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Certificate:
        """Parse one PEM certificate; a clear ``invalid_request`` when it is not one."""
        raw = pem.encode() if isinstance(pem, str) else pem
        try:
            cert = x509.load_pem_x509_certificate(raw)
        except ValueError as exc:
            raise InvalidRequest(f"certificates: not a PEM X.509 certificate ({exc})") from None
        from cryptography.hazmat.primitives.serialization import Encoding

        der = cert.public_bytes(Encoding.DER)
        return cls(
            pem=cert.public_bytes(Encoding.PEM).decode(),
            sha256=hashlib.sha256(der).hexdigest(),
            subject=cert.subject.rfc4514_string(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cert=cert,
        )

    def valid_at(self, when: datetime) -> bool:
        return self.not_before <= when <= self.not_after

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "subject": self.subject,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "pem": self.pem,
        }


@dataclass(frozen=True, slots=True)
class Agency:
    """One registered code: who it is, whether mail may reach it, and how to check its mail."""

    organ_id: str
    name: str
    kind: Kind
    parent: str | None = None
    status: AgencyStatus = "active"
    successor: str | None = None
    endpoint: str | None = None
    push_secret: str | None = None
    allow_sha1: bool = False
    confirmed: bool = True
    source: str | None = None
    certificates: tuple[Certificate, ...] = ()

    def public_json(self) -> dict[str, Any]:
        """The directory entry every agency may read."""
        return {
            "organ_id": self.organ_id,
            "name": self.name,
            "kind": self.kind,
            "parent": self.parent,
            "status": self.status,
            "successor": self.successor,
        }


def agency_from_mapping(organ_id: str, data: Mapping[str, Any]) -> Agency:
    """Build an agency from a PUT body or a registry-file entry, checking every field."""
    codes.check_registrable(organ_id, field="organ_id")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("name: required, a non-empty string")
    kind = data.get("kind") or "central"
    if not isinstance(kind, str) or not kind.isidentifier():
        raise InvalidRequest("kind: a short word such as central, provincial, unit")
    status = data.get("status") or "active"
    if status not in STATUSES:
        raise InvalidRequest(f"status: one of {', '.join(STATUSES)}, not {status!r}")
    parent = data.get("parent")
    derived = codes.parent(organ_id)
    if parent is None:
        parent = derived
    elif parent != derived:
        raise InvalidRequest(f"parent: {organ_id} derives parent {derived}, not {parent}")
    successor = data.get("successor")
    if successor is not None:
        if not isinstance(successor, str):
            raise InvalidRequest("successor: an agency code")
        codes.check_registrable(successor, field="successor")
        if successor == organ_id:
            raise InvalidRequest("successor: an agency cannot succeed itself")
    if status == "closed" and successor is None:
        pass  # closed without successor: mail to it is refused as recipient_unavailable
    if status != "closed" and successor is not None:
        raise InvalidRequest("successor: only a closed agency has a successor")
    endpoint = data.get("endpoint")
    if endpoint is not None and (
        not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://"))
    ):
        raise InvalidRequest("endpoint: an https:// (or registered http://) URL")
    secret = data.get("push_secret")
    if secret is not None and not isinstance(secret, str):
        raise InvalidRequest("push_secret: a string")
    allow_sha1 = data.get("allow_sha1", False)
    if not isinstance(allow_sha1, bool):
        raise InvalidRequest("allow_sha1: true or false")
    pems = data.get("certificates") or []
    if not isinstance(pems, list) or not all(isinstance(p, str) for p in pems):
        raise InvalidRequest("certificates: a list of PEM strings")
    certs = tuple(Certificate.from_pem(p) for p in pems)
    return Agency(
        organ_id=organ_id,
        name=name.strip(),
        kind=kind,
        parent=parent,
        status=cast(AgencyStatus, status),
        successor=successor,
        endpoint=endpoint,
        push_secret=secret,
        allow_sha1=allow_sha1,
        confirmed=bool(data.get("confirmed", True)),
        source=data.get("source"),
        certificates=certs,
    )


def load_file(path: Path) -> list[Agency]:
    """Read a registry file (``agencies.yaml``); order kept, every entry checked."""
    with path.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    entries = doc.get("agencies") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InvalidRequest(f"{path}: expected a mapping with an 'agencies' list")
    out: list[Agency] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("organ_id"), str):
            raise InvalidRequest(f"{path}: entry {i}: organ_id missing")
        try:
            out.append(agency_from_mapping(entry["organ_id"], entry))
        except InvalidRequest as exc:
            raise InvalidRequest(f"{path}: {entry['organ_id']}: {exc.detail}") from None
    return out


@dataclass(frozen=True, slots=True)
class Registry:
    """A consistent snapshot of every agency, indexed for the hot path."""

    agencies: Mapping[str, Agency]
    version: int = 0

    @classmethod
    def of(cls, agencies: Iterable[Agency], version: int = 0) -> Registry:
        return cls({a.organ_id: a for a in agencies}, version)

    def get(self, organ_id: str) -> Agency | None:
        return self.agencies.get(organ_id)

    def forward_chain(self, organ_id: str) -> tuple[str, ...]:
        """The codes mail to ``organ_id`` passes through, ending where it is delivered."""

        def successor_of(code: str) -> str | None:
            agency = self.agencies.get(code)
            return agency.successor if agency and agency.status == "closed" else None

        return codes.resolve_successor(organ_id, successor_of)
