"""Connected systems, pure: who a VDXP caller is and which agencies it may act for.

A connected system (the VNPT SDK's ``systemid``) is one installation of document software
serving one or more agencies: a ministry's system serves the ministry and its units. It lists
codes; each listed code's descendants are served too, and where a descendant is listed by
another system (a general department running its own software) the most specific listing
wins. A system acts for every agency it serves with the rights an agency token of that agency
has. Its HMAC secret is kept sealed (``axis.secretbox``); this module never sees it in clear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from axis import codes
from axis.errors import InvalidRequest

SignaturePolicy = Literal["required", "optional"]
SystemStatus = Literal["active", "disabled"]
SIGNATURE_POLICIES: tuple[SignaturePolicy, ...] = ("required", "optional")
SYSTEM_STATUSES: tuple[SystemStatus, ...] = ("active", "disabled")
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_NAME = 200
MAX_AGENCIES = 1000


@dataclass(frozen=True, slots=True)
class ConnectedSystem:
    """A connected system as administrators describe it (no secret in here)."""

    id: str
    name: str
    agencies: tuple[str, ...]  # the codes it lists, sorted
    signature: SignaturePolicy = "required"
    register: bool = False  # may use registerAgency / deleteAgency
    status: SystemStatus = "active"
    created_at: str = ""
    updated_at: str = ""
    secret_set_at: str = ""
    rotating: bool = False  # a previous secret still works until the new one is first used

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "agencies": list(self.agencies),
            "signature": self.signature,
            "register": self.register,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "secret_set_at": self.secret_set_at,
            "previous_secret_valid": self.rotating,
        }


@dataclass(frozen=True, slots=True)
class SealedSecrets:
    """A system's secrets as stored: sealed text, opened only to check an HMAC."""

    current: str
    previous: str | None = None


def check_id(system_id: str) -> str:
    if not ID_PATTERN.fullmatch(system_id):
        raise InvalidRequest(
            f"id: {system_id[:80]!r} is not a system id: 1 to 64 characters of"
            " A-Z a-z 0-9 . _ - (for example vxp.saas.03)"
        )
    return system_id


def described(system_id: str, body: Mapping[str, Any]) -> ConnectedSystem:
    """A system from an administrator's JSON (``POST``/``PUT``): absent fields take their
    defaults; unknown fields, malformed codes and bad values are refused by name."""
    check_id(system_id)
    known = {"id", "name", "agencies", "signature", "register", "status"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidRequest(f"unknown fields {unknown}; a system has {sorted(known)}")
    if "id" in body and body["id"] != system_id:
        raise InvalidRequest(f"id: {body['id']!r} differs from the system in the path")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidRequest(f"name: the system's name, 1 to {MAX_NAME} characters")
    raw = body.get("agencies")
    if not isinstance(raw, list) or not raw or not all(isinstance(c, str) for c in raw):
        raise InvalidRequest("agencies: a non-empty list of the agency codes the system serves")
    if len(raw) > MAX_AGENCIES:
        raise InvalidRequest(
            f"agencies: at most {MAX_AGENCIES} codes (their descendants are served too)"
        )
    listed = tuple(sorted({codes.check_registrable(c, field="agencies") for c in raw}))
    if len(listed) != len(raw):
        raise InvalidRequest("agencies: a code is listed twice")
    signature = body.get("signature", "required")
    if signature not in SIGNATURE_POLICIES:
        raise InvalidRequest(f"signature: one of {list(SIGNATURE_POLICIES)}, not {signature!r}")
    register = body.get("register", False)
    if not isinstance(register, bool):
        raise InvalidRequest("register: true or false")
    status = body.get("status", "active")
    if status not in SYSTEM_STATUSES:
        raise InvalidRequest(f"status: one of {list(SYSTEM_STATUSES)}, not {status!r}")
    return ConnectedSystem(
        id=system_id,
        name=name.strip(),
        agencies=listed,
        signature=signature,
        register=register,
        status=status,
    )


@dataclass(frozen=True, slots=True)
class Systems:
    """A snapshot of every connected system, with who serves which code."""

    systems: Mapping[str, ConnectedSystem] = field(default_factory=dict)
    secrets: Mapping[str, SealedSecrets] = field(default_factory=dict, repr=False)
    listed_by: Mapping[str, str] = field(default_factory=dict)  # listed code -> system id

    @classmethod
    def of(cls, systems: Iterable[tuple[ConnectedSystem, SealedSecrets]]) -> Systems:
        by_id = {}
        secrets = {}
        listed = {}
        for system, sealed in systems:
            by_id[system.id] = system
            secrets[system.id] = sealed
            for code in system.agencies:
                listed[code] = system.id
        return cls(by_id, secrets, listed)

    def get(self, system_id: str) -> ConnectedSystem | None:
        return self.systems.get(system_id)

    def serving(self, code: str) -> ConnectedSystem | None:
        """The system that serves ``code``: the one listing it or its nearest listed
        ancestor (the most specific listing wins); None when no system serves it."""
        for candidate in (code, *_ancestors(code)):
            system_id = self.listed_by.get(candidate)
            if system_id is not None:
                return self.systems.get(system_id)
        return None

    def serves(self, system: ConnectedSystem, code: str) -> bool:
        found = self.serving(code)
        return found is not None and found.id == system.id

    def served_by(self, system: ConnectedSystem, agencies: Iterable[str]) -> list[str]:
        """Of ``agencies`` (registered codes), those ``system`` serves, in the given order."""
        return [code for code in agencies if self.serves(system, code)]


def _ancestors(code: str) -> tuple[str, ...]:
    try:
        return codes.ancestors(code)
    except InvalidRequest:  # a field code the registry could not hold has no ancestors
        return ()
