"""The agency registry as the core sees it: an immutable snapshot of agencies and their pins.

The store owns the rows; the web layer holds one ``Registry`` snapshot and swaps it whole when
an administrator changes something, so a request never sees half an update and the hot path
(routing, signature pinning) reads plain dictionaries.

Everything an administrator can change is checked here, without I/O: the form of a PUT body or
a registry-file entry (``agency_from_mapping``), the links between agencies (``check_links``:
parent registered, successor registered, active and not looping back), and what changed
(``changes``, the diff the audit event and the history record). The store calls the same
functions inside its write transaction, so two racing administrators cannot build a cycle.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from axis import codes, timeutil
from axis.errors import AgencyNotActive, InvalidRequest, NotFound

Kind = str  # "central" | "provincial" | "unit" | ... (the contract leaves the list open)
AgencyStatus = Literal["active", "suspended", "closed"]
STATUSES: tuple[str, ...] = ("active", "suspended", "closed")
CertificateState = Literal["valid", "expired", "not_yet_valid"]

EXPIRY_WARNING = timedelta(days=30)
"""Certificates ending within this are reported (readiness, metrics, a daily audit event)."""

NAME_MAX = 200
"""Longest agency name: edXML's ``OrganName`` limit."""


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
        return self.state(when) == "valid"

    def state(self, when: datetime) -> CertificateState:
        """Whether a signature made with it is accepted at ``when``, and if not, why."""
        if when < self.not_before:
            return "not_yet_valid"
        if when > self.not_after:
            return "expired"
        return "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "subject": self.subject,
            "not_before": timeutil.fmt(self.not_before),
            "not_after": timeutil.fmt(self.not_after),
            "pem": self.pem,
        }


@dataclass(frozen=True, slots=True)
class ExpiringCertificate:
    """A pinned certificate that ends within ``EXPIRY_WARNING`` (or already has)."""

    organ_id: str
    sha256: str
    not_after: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "organ_id": self.organ_id,
            "sha256": self.sha256,
            "not_after": timeutil.fmt(self.not_after),
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
    # kept by the store, not described by administrators: a stable number for directories
    # that want one (VDXP's ``id``), and the registry version and time of the last change
    number: int | None = field(default=None, compare=False)
    version: int = field(default=0, compare=False)
    updated_at: str = field(default="", compare=False)

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


def admin_json(agency: Agency, token_ids: Sequence[str], now: datetime) -> dict[str, Any]:
    """The administrator's view: the directory entry with pins, endpoint and live token ids.

    The push secret is never shown, only whether one is set; each certificate says whether it
    signs now and whether it ends within ``EXPIRY_WARNING``, so a rotation can be planned.
    """
    body = agency.public_json()
    body.update(
        {
            "endpoint": agency.endpoint,
            "push_secret_set": agency.push_secret is not None,
            "allow_sha1": agency.allow_sha1,
            "confirmed": agency.confirmed,
            "source": agency.source,
            "certificates": [
                {
                    **c.to_json(),
                    "state": c.state(now),
                    "expiring": c.not_after <= now + EXPIRY_WARNING,
                }
                for c in sorted_certificates(agency.certificates)
            ],
            "token_ids": list(token_ids),
        }
    )
    return body


def sorted_certificates(certs: Iterable[Certificate]) -> list[Certificate]:
    """Oldest first, ties by digest: one order for views and exports, whatever the input."""
    return sorted(certs, key=lambda c: (c.not_before, c.sha256))


# ----------------------------------------------------------------------- search


_LOOKALIKES = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D"})


def fold(text: str) -> str:
    """Text as the directory search compares it: no diacritics, no case, single spaces.

    People type Vietnamese names with or without tone marks ("Hà Nội", "ha noi", "HA NOI").
    NFD splits every letter from its marks so they can be dropped; đ is a letter of its own
    (no decomposition), so it becomes d explicitly, as does the look-alike Icelandic eth that
    legacy fonts put in its place.
    """
    decomposed = unicodedata.normalize("NFD", text.translate(_LOOKALIKES))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


# ----------------------------------------------------------------------- reading entries

FIELDS: tuple[str, ...] = (
    "organ_id",
    "name",
    "kind",
    "parent",
    "status",
    "successor",
    "endpoint",
    "push_secret",
    "allow_sha1",
    "confirmed",
    "source",
    "certificates",
)
# What an administrator's GET shows besides the fields: accepted and ignored, so a body read
# with GET can be changed and PUT back as it is.
_READ_ONLY = frozenset({"push_secret_set", "token_ids", "history"})


def _certificates(raw: object) -> tuple[Certificate, ...]:
    """PEM strings, or the certificate objects an administrator's GET shows; deduplicated."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequest("certificates: a list of PEM strings")
    out: dict[str, Certificate] = {}
    for i, item in enumerate(raw):
        pem = item.get("pem") if isinstance(item, dict) else item
        if not isinstance(pem, str):
            raise InvalidRequest(f"certificates[{i}]: a PEM string (or an object with 'pem')")
        try:
            cert = Certificate.from_pem(pem)
        except InvalidRequest as exc:
            detail = exc.detail.replace("certificates:", f"certificates[{i}]:", 1)
            raise InvalidRequest(detail) from None
        out.setdefault(cert.sha256, cert)
    return tuple(out.values())


def default_kind(organ_id: str) -> str:
    """The kind a registration gets when it names none: what its code says it is."""
    if codes.level(organ_id) > 1:
        return "unit"
    return "provincial" if organ_id[-3] in "HK" else "central"


_KIND = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)


def agency_from_mapping(
    organ_id: str, data: Mapping[str, Any], existing: Agency | None = None
) -> Agency:
    """Build an agency from a PUT body or a registry-file entry, checking every field.

    The descriptive fields are replaced as given (absent means the default). The credentials
    are kept when absent, because losing them stops an agency: ``certificates`` (replace with
    a list, remove all with ``[]``) and ``push_secret`` (never shown back, so a body read
    with GET does not carry it; ``null`` clears it). ``existing`` is the agency as registered.
    """
    codes.check_registrable(organ_id, field="organ_id")
    unknown = sorted(set(data) - set(FIELDS) - _READ_ONLY)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: not a field of an agency ({', '.join(FIELDS)})")
    if data.get("organ_id", organ_id) != organ_id:
        raise InvalidRequest(f"organ_id: the body names {data['organ_id']!r}, the path {organ_id}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("name: required, a non-empty string")
    name = unicodedata.normalize("NFC", name.strip())  # one spelling for one name
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise InvalidRequest("name: control, private-use or unassigned characters")
    if len(name) > NAME_MAX:
        raise InvalidRequest(f"name: at most {NAME_MAX} characters")
    kind = data.get("kind")
    if kind is None:
        kind = default_kind(organ_id)
    elif not isinstance(kind, str) or _KIND.fullmatch(kind) is None:
        raise InvalidRequest(
            "kind: a short word of letters, digits and _ such as central, provincial, unit"
        )
    status = data.get("status")
    if status is None:
        status = "active"
    if not isinstance(status, str) or status not in STATUSES:
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
    # closed without successor is allowed: mail to it is refused as recipient_unavailable
    if status != "closed" and successor is not None:
        raise InvalidRequest("successor: only a closed agency has a successor")
    endpoint = data.get("endpoint")
    if endpoint is not None and (
        not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://"))
    ):
        raise InvalidRequest("endpoint: an https:// (or registered http://) URL")
    if "push_secret" in data:
        secret = data["push_secret"]
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise InvalidRequest("push_secret: a non-empty string, or null to clear it")
    else:
        secret = existing.push_secret if existing else None
    allow_sha1 = data.get("allow_sha1", False)
    if not isinstance(allow_sha1, bool):
        raise InvalidRequest("allow_sha1: true or false")
    confirmed = data.get("confirmed", True)
    if not isinstance(confirmed, bool):
        raise InvalidRequest("confirmed: true or false")
    source = data.get("source")
    if source is not None and not isinstance(source, str):
        raise InvalidRequest("source: a string")
    if "certificates" in data:
        certs = _certificates(data["certificates"])
    else:
        certs = existing.certificates if existing else ()
    return Agency(
        organ_id=organ_id,
        name=name,
        kind=kind,
        parent=parent,
        status=cast(AgencyStatus, status),
        successor=successor,
        endpoint=endpoint,
        push_secret=secret,
        allow_sha1=allow_sha1,
        confirmed=confirmed,
        source=source,
        certificates=certs,
    )


def to_mapping(agency: Agency) -> dict[str, Any]:
    """Every field, as a registry file holds it: what ``agency_from_mapping`` reads back."""
    return {
        "organ_id": agency.organ_id,
        "name": agency.name,
        "kind": agency.kind,
        "parent": agency.parent,
        "status": agency.status,
        "successor": agency.successor,
        "endpoint": agency.endpoint,
        "push_secret": agency.push_secret,
        "allow_sha1": agency.allow_sha1,
        "confirmed": agency.confirmed,
        "source": agency.source,
        "certificates": [c.pem for c in sorted_certificates(agency.certificates)],
    }


def parse_document(doc: object, where: str, existing: Registry | None = None) -> list[Agency]:
    """The agencies of a registry document (``{"agencies": [...]}``); order kept.

    Every entry is checked, and every problem reported at once (up to a screenful), so a long
    file is fixed in one pass. A code listed twice is an error: which entry would win is not
    something a reader of the file can tell.
    """
    entries = doc.get("agencies") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InvalidRequest(f"{where}: expected a mapping with an 'agencies' list")
    out: list[Agency] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("organ_id"), str):
            problems.append(f"entry {i}: organ_id missing")
            continue
        organ_id = entry["organ_id"]
        if organ_id in seen:
            problems.append(f"{organ_id}: listed twice")
            continue
        seen.add(organ_id)
        try:
            before = existing.get(organ_id) if existing else None
            out.append(agency_from_mapping(organ_id, entry, before))
        except InvalidRequest as exc:
            problems.append(f"{organ_id}: {exc.detail}")
    _raise_problems(where, problems)
    return out


def load_file(path: Path, existing: Registry | None = None) -> list[Agency]:
    """Read a registry file (``agencies.yaml``); order kept, every entry checked."""
    with path.open(encoding="utf-8") as fh:
        try:
            doc = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise InvalidRequest(f"{path}: not YAML ({exc})") from None
    return parse_document(doc, str(path), existing)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PEM) as literal blocks, so an export reads like the shipped file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

EXPORT_HEADER = """\
# Agencies exported by `axis agencies export`; `axis agencies import` reads it back.
# Holds push secrets: keep it as private as the data directory.
"""


def dump_document(agencies: Iterable[Agency]) -> str:
    """A registry file of ``agencies`` sorted by code: deterministic, so exports can be diffed."""
    entries = [to_mapping(a) for a in sorted(agencies, key=lambda a: a.organ_id)]
    body = yaml.dump(
        {"agencies": entries},
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
    )
    return EXPORT_HEADER + body


def _raise_problems(where: str, problems: Sequence[str], shown: int = 20) -> None:
    if not problems:
        return
    lines = list(problems[:shown])
    if len(problems) > shown:
        lines.append(f"… and {len(problems) - shown} more")
    if len(problems) == 1:
        raise InvalidRequest(f"{where}: {lines[0]}")
    raise InvalidRequest(f"{where}: {len(problems)} problems:\n  " + "\n  ".join(lines))


# ----------------------------------------------------------------------- links and changes

Link = tuple[str, str | None]
"""What ``check_links`` needs of a registered agency: its status and successor."""
LinkLookup = Callable[[str], Link | None]


def check_links(agency: Agency, lookup: LinkLookup) -> None:
    """Refuse a change that would leave the hierarchy or forwarded mail with nowhere to go.

    The parent must be registered (a level 2–4 code lives under the code it derives). A
    successor must be registered and active, so mail forwarded to it is taken at once; a closed
    successor is refused naming where its own mail goes (the administrator names that one
    instead), and one whose successors lead back to ``agency`` is refused as a cycle.
    ``lookup`` gives the registry as it will be after the change, ``agency`` included.
    """
    if agency.parent is not None and lookup(agency.parent) is None:
        raise InvalidRequest(f"parent: {agency.parent} is not registered; register it first")
    successor = agency.successor
    if successor is None:
        return
    path = [agency.organ_id]
    code: str | None = successor
    status = "active"
    while code is not None:
        if code in path:
            loop = " → ".join([*path, code])
            raise InvalidRequest(f"successor: {successor} would make a cycle: {loop}")
        path.append(code)
        found = lookup(code)
        if found is None:
            via = "" if code == successor else f" (reached from {successor})"
            raise InvalidRequest(f"successor: {code} is not a registered agency{via}")
        status, nxt = found
        code = nxt if status == "closed" else None
    if len(path) > 2:
        raise InvalidRequest(
            f"successor: {successor} is closed (its mail goes to {path[-1]}, {status});"
            " name an active agency"
        )
    if status != "active":
        raise InvalidRequest(f"successor: {successor} is {status}, not active")


def check_token_holder(agency: Agency | None, organ_id: str) -> Agency:
    """The agency a new token is issued for: registered and active, or refused.

    A suspended or closed agency's tokens are refused (403) at every request, so a token
    issued for one would only fail later, where the administrator does not see why.
    """
    if agency is None:
        raise NotFound(f"agency {organ_id}: not registered")
    if agency.status == "active":
        return agency
    if agency.status == "closed" and agency.successor:
        raise AgencyNotActive(
            f"agency {organ_id} is closed and its mail goes to {agency.successor}; a token for"
            f" it would be refused: issue the token for {agency.successor}"
        )
    raise AgencyNotActive(
        f"agency {organ_id} is {agency.status}: a token for it would be refused (403); set its"
        " status to active first, then issue the token"
    )


def check_certificates_unique(agency: Agency, registry: Registry) -> None:
    """Refuse a certificate already pinned for another agency, naming that agency.

    A certificate identifies one signer: pinned for two agencies, a package signed by either
    would verify as sent by the other's key (typically an administrator pasting one agency's
    certificate into another's entry). Each agency pins its own.
    """
    mine = {c.sha256 for c in agency.certificates}
    if not mine:
        return
    for other in registry.agencies.values():
        if other.organ_id == agency.organ_id:
            continue
        for cert in other.certificates:
            if cert.sha256 in mine:
                raise InvalidRequest(
                    f"certificates: {cert.sha256} ({cert.subject}) is already pinned for"
                    f" {other.organ_id} ({other.name}); a certificate identifies one signer:"
                    f" pin {agency.organ_id}'s own certificate, or unpin it from"
                    f" {other.organ_id} first"
                )


def comparable(agency: Agency) -> dict[str, Any]:
    """The fields that make two registrations the same; certificates by digest, unordered."""
    out = to_mapping(agency)
    out["certificates"] = sorted(c.sha256 for c in agency.certificates)
    return out


def changes(before: Agency | None, after: Agency) -> dict[str, dict[str, Any]]:
    """Field → ``{"from", "to"}`` for each field that differs (all of them for a new agency).

    The push secret is a secret: the diff says only whether one is set, since the audit log
    and the history are readable by auditors.
    """
    old = comparable(before) if before is not None else dict.fromkeys(FIELDS)
    new = comparable(after)
    out: dict[str, dict[str, Any]] = {}
    for key in FIELDS:
        if key == "organ_id" or old[key] == new[key]:
            continue
        if key == "push_secret":
            out[key] = {"from": _secret(old[key]), "to": _secret(new[key])}
        else:
            out[key] = {"from": old[key], "to": new[key]}
    return out


def _secret(value: object) -> str | None:
    return None if value is None else "(set)"


# ----------------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class Registry:
    """A consistent snapshot of every agency, indexed for the hot path."""

    agencies: Mapping[str, Agency]
    version: int = 0
    # search keys, derived once per snapshot: (code, folded name) in code order
    _index: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        index = tuple((code, fold(self.agencies[code].name)) for code in sorted(self.agencies))
        object.__setattr__(self, "_index", index)

    @classmethod
    def of(cls, agencies: Iterable[Agency], version: int = 0) -> Registry:
        return cls({a.organ_id: a for a in agencies}, version)

    def get(self, organ_id: str) -> Agency | None:
        return self.agencies.get(organ_id)

    def link(self, organ_id: str) -> Link | None:
        """Status and successor of ``organ_id``: the lookup ``check_links`` takes."""
        agency = self.agencies.get(organ_id)
        return (agency.status, agency.successor) if agency else None

    def forward_chain(self, organ_id: str) -> tuple[str, ...]:
        """The codes mail to ``organ_id`` passes through, ending where it is delivered."""

        def successor_of(code: str) -> str | None:
            agency = self.agencies.get(code)
            return agency.successor if agency and agency.status == "closed" else None

        return codes.resolve_successor(organ_id, successor_of)

    def search(
        self, q: str | None = None, *, status: str | None = None, kind: str | None = None
    ) -> list[Agency]:
        """Agencies in code order whose name or code contains ``q``, filtered by status, kind.

        The name matches with or without diacritics and in any case (``fold``); the code
        matches in any case, so ``h41`` finds ``000.00.00.H41``.
        """
        needle = fold(q) if q else ""
        out: list[Agency] = []
        for code, folded in self._index:
            agency = self.agencies[code]
            if status is not None and agency.status != status:
                continue
            if kind is not None and agency.kind != kind:
                continue
            if needle and needle not in folded and needle not in code.casefold():
                continue
            out.append(agency)
        return out

    def expiring(
        self, now: datetime, within: timedelta = EXPIRY_WARNING
    ) -> list[ExpiringCertificate]:
        """Pinned certificates ending by ``now + within``, expired ones included, in code order."""
        horizon = now + within
        return [
            ExpiringCertificate(code, c.sha256, c.not_after)
            for code, _ in self._index
            for c in sorted_certificates(self.agencies[code].certificates)
            if c.not_after <= horizon
        ]

    def with_agencies(self, agencies: Iterable[Agency]) -> Registry:
        """This snapshot with ``agencies`` added or replaced: the registry after an import."""
        merged = dict(self.agencies)
        merged.update((a.organ_id, a) for a in agencies)
        return Registry(merged, self.version)

    def check_import(self, agencies: Sequence[Agency], where: str) -> None:
        """Check every entry's links against the registry as it will be after the import.

        The whole file is checked before anything is written, and entries may refer to each
        other in any order (a closed province before the one it merged into).
        """
        after = self.with_agencies(agencies)
        problems: list[str] = []
        for agency in agencies:
            try:
                check_links(agency, after.link)
                check_certificates_unique(agency, after)
            except InvalidRequest as exc:
                problems.append(f"{agency.organ_id}: {exc.detail}")
        _raise_problems(where, problems)
