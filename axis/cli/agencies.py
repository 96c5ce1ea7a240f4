"""Command line: ``axis agencies list | show | put | import | export``.

These talk to the store directly (an administrator on the machine needs no token) and go
through the same checks and the same store operations as the admin API, so a change made
here is recorded with its actor (``cli:<user>``), kept in the agency's history, and seen by
running servers within half a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from axis import registry, timeutil
from axis.cli.common import actor, common_flags, json_flag, print_rows, run, say
from axis.config import Settings
from axis.errors import InvalidRequest, NotFound
from axis.model import AgencyChange
from axis.registry import Agency, Certificate, Registry
from axis.store.protocol import Store

if TYPE_CHECKING:
    from axis.cli.common import Subparsers

COLUMNS = ("organ_id", "status", "kind", "successor", "name")
DEFAULT_BATCH = 500
"""Agencies written per transaction by ``import``; progress is printed after each."""


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("agencies", help="list, show, change, import or export agencies")
    asub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = asub.add_parser("list", help="the directory: code, status, kind, successor, name")
    common_flags(p)
    p.add_argument("--q", help="name (with or without diacritics) or code contains this")
    p.add_argument("--status", choices=registry.STATUSES, help="only agencies in this status")
    p.add_argument("--kind", help="only agencies of this kind (central, provincial, unit, …)")
    json_flag(p)
    p.set_defaults(handler=cmd_list)

    p = asub.add_parser("show", help="one agency with certificates, tokens and history (JSON)")
    common_flags(p)
    p.add_argument("organ_id", metavar="ORGAN_ID", help="the agency's code (000.00.00.G22)")
    p.set_defaults(handler=cmd_show)

    p = asub.add_parser(
        "put",
        help="create or change one agency",
        description="Start from --file (a body as for PUT /v1/admin/agencies/{organ_id}) or,"
        " without it, from the agency as registered; then apply the flags.",
    )
    common_flags(p)
    p.add_argument("organ_id", metavar="ORGAN_ID", help="the agency's code (000.00.00.G22)")
    p.add_argument("--file", type=Path, help="JSON or YAML mapping: replaces the registration")
    p.add_argument("--name", help="the agency's name")
    p.add_argument("--kind", help="central, provincial, unit, …")
    p.add_argument("--status", choices=registry.STATUSES, help="suspended: mail to it is refused")
    p.add_argument("--successor", help="close into this agency (implies --status closed)")
    p.add_argument("--endpoint", help="push endpoint URL; empty to remove")
    p.add_argument(
        "--push-secret", help="secret the pushes are signed with (HMAC); empty to remove"
    )
    p.add_argument(
        "--allow-sha1",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accept this agency's SHA-1 signatures (older field systems)",
    )
    p.add_argument(
        "--certificate",
        action="append",
        type=Path,
        metavar="PEM",
        help="the certificates, replacing all others (repeat for several)",
    )
    p.add_argument(
        "--add-certificate", action="append", type=Path, metavar="PEM", help="pin one more"
    )
    p.add_argument(
        "--remove-certificate", action="append", metavar="SHA256", help="unpin one by digest"
    )
    p.set_defaults(handler=cmd_put)

    p = asub.add_parser(
        "import",
        help="add or change the agencies of a YAML file (running it again changes nothing)",
        description="Add or change the agencies a file lists (shaped like agencies.yaml, or an"
        " export). The whole file is checked before anything is written; nothing is deleted,"
        " and pins and push secrets an entry leaves out are kept.",
    )
    common_flags(p)
    p.add_argument("file", type=Path, metavar="FILE", help="the YAML file")
    p.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"agencies written at a time; progress is shown after each (default {DEFAULT_BATCH})",
    )
    p.add_argument("--dry-run", action="store_true", help="check and report, change nothing")
    p.set_defaults(handler=cmd_import)

    p = asub.add_parser(
        "export", help="every agency as YAML that import reads back (it holds push secrets)"
    )
    common_flags(p)
    p.add_argument("--output", type=Path, help="write here instead of standard output")
    p.set_defaults(handler=cmd_export)


def _json(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"{path}: {exc.strerror}") from None


# ----------------------------------------------------------------------- list, show


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def search(store: Store) -> list[Agency]:
        snapshot = await store.registry()
        return snapshot.search(args.q, status=args.status, kind=args.kind)

    rows = [agency.public_json() for agency in run(settings, search)]
    print_rows(rows, COLUMNS, as_json=args.json, none="no agency matches")
    return 0


async def _view(store: Store, agency: Agency) -> dict[str, Any]:
    live = [t.token_id for t in await store.list_tokens(agency.organ_id) if t.revoked_at is None]
    body = registry.admin_json(agency, live, timeutil.now())
    body["history"] = [h.to_json() for h in await store.agency_history(agency.organ_id)]
    return body


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def find(store: Store) -> dict[str, Any]:
        agency = (await store.registry()).get(args.organ_id)
        if agency is None:
            raise NotFound(f"agency {args.organ_id}: not registered")
        return await _view(store, agency)

    print(_json(run(settings, find)))
    return 0


# ----------------------------------------------------------------------- put


def _put_mapping(args: argparse.Namespace, existing: Agency | None) -> dict[str, Any]:
    """The body the flags describe: ``--file`` or the registration, with the flags applied."""
    data: dict[str, Any]
    if args.file is not None:
        try:
            loaded = yaml.safe_load(_read(args.file))  # JSON is YAML too
        except yaml.YAMLError as exc:
            raise InvalidRequest(f"{args.file}: not JSON or YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise InvalidRequest(f"{args.file}: a mapping describing the agency")
        data = loaded
    elif existing is not None:
        data = registry.to_mapping(existing)
    else:
        data = {}
    for key in ("name", "kind", "status", "successor"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.successor is not None and args.status is None:
        data["status"] = "closed"
    if args.status is not None and args.status != "closed" and args.successor is None:
        data["successor"] = None  # reopening or suspending ends the forwarding
    for key in ("endpoint", "push_secret"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value or None
    if args.allow_sha1 is not None:
        data["allow_sha1"] = args.allow_sha1
    if args.certificate:
        data["certificates"] = [_read(path) for path in args.certificate]
    return data


def _apply_pins(args: argparse.Namespace, agency: Agency) -> Agency:
    certs = list(agency.certificates)
    for path in args.add_certificate or ():
        cert = Certificate.from_pem(_read(path))
        if all(c.sha256 != cert.sha256 for c in certs):
            certs.append(cert)
    for digest in args.remove_certificate or ():
        kept = [c for c in certs if c.sha256 != digest.lower()]
        if len(kept) == len(certs):
            raise InvalidRequest(
                f"--remove-certificate: {digest} is not pinned for {agency.organ_id}"
            )
        certs = kept
    return replace(agency, certificates=tuple(certs))


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    async def save(store: Store) -> tuple[AgencyChange, dict[str, Any]]:
        snapshot = await store.registry()
        existing = snapshot.get(args.organ_id)
        data = _put_mapping(args, existing)
        agency = _apply_pins(args, registry.agency_from_mapping(args.organ_id, data, existing))
        registry.check_certificates_unique(agency, snapshot)
        change = await store.save_agency(agency, actor=actor())
        stored = (await store.registry()).get(args.organ_id)
        assert stored is not None
        return change, await _view(store, stored)

    change, view = run(settings, save)
    fields = f" ({', '.join(change.changes)})" if change.outcome == "changed" else ""
    say(f"{change.organ_id} {change.outcome}{fields}")
    print(_json(view))
    return 0


# ----------------------------------------------------------------------- import, export


def planned(snapshot: Registry, agencies: Sequence[Agency]) -> list[AgencyChange]:
    """What an import would do, computed without writing (``--dry-run``)."""
    out = []
    for agency in agencies:
        before = snapshot.get(agency.organ_id)
        diff = registry.changes(before, agency)
        if before is None:
            out.append(AgencyChange(agency.organ_id, "added", diff))
        else:
            out.append(AgencyChange(agency.organ_id, "changed" if diff else "unchanged", diff))
    return out


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    if args.batch < 1:
        raise InvalidRequest("--batch: at least 1")
    if not args.file.is_file():
        raise InvalidRequest(f"{args.file}: no such file")

    async def apply(store: Store) -> list[AgencyChange]:
        snapshot = await store.registry()
        agencies = registry.load_file(args.file, snapshot)
        snapshot.check_import(agencies, str(args.file))  # everything, before any write
        if args.dry_run:
            return planned(snapshot, agencies)
        done: list[AgencyChange] = []
        total = len(agencies)
        for start in range(0, total, args.batch):
            batch = agencies[start : start + args.batch]
            done += await store.save_agencies(batch, actor=actor(), check_links=False)
            if total > args.batch:
                print(f"axis: import: {len(done)}/{total} agencies", file=sys.stderr, flush=True)
        return done

    done = run(settings, apply)
    counts = dict.fromkeys(("added", "changed", "unchanged"), 0)
    for change in done:
        counts[change.outcome] += 1
        if change.outcome == "changed":
            print(f"changed {change.organ_id} ({', '.join(change.changes)})")
        elif change.outcome == "added":
            print(f"added {change.organ_id}")
    verb = "would be" if args.dry_run else "were"
    print(
        f"{len(done)} agencies {verb}: {counts['added']} added, {counts['changed']} changed,"
        f" {counts['unchanged']} unchanged"
    )
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    async def dump(store: Store) -> str:
        return registry.dump_document((await store.registry()).agencies.values())

    text = run(settings, dump)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        say(f"exported to {args.output}")
    return 0
