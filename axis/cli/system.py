"""``axis system add | list | show | put | rotate | retire | disable``: connected systems (VDXP).

A connected system is one installation of agency document software (VNPT's SDK and
look-alikes) calling ``/vxp`` with an HMAC of its secret. ``add`` and ``rotate`` print the new
secret alone on standard output, as ``token issue`` prints a token: it is shown this once and
kept sealed under ``systems.key`` in the data directory. These go through the same checks and
store operations as ``/v1/admin/systems``, recorded with the actor ``cli:<user>``.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from axis import bootstrap, secretbox
from axis.cli.common import actor, common_flags, json_flag, print_rows, run, say
from axis.config import Settings
from axis.errors import NotFound
from axis.store.protocol import Store
from axis.systems import SIGNATURE_POLICIES, SYSTEM_STATUSES, ConnectedSystem, described

if TYPE_CHECKING:
    from axis.cli.common import Subparsers

COLUMNS = ("id", "name", "status", "signature", "register", "agencies")


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("system", help="connected systems: agency software on the SDK (VDXP)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser(
        "add",
        help="register a system; print its secret, alone on its line",
        description="Register a connected system and print its new secret on standard output,"
        " alone on its line. Put the id (systemid) and the secret in the software's SDK"
        " configuration; the secret is shown only now.",
    )
    common_flags(p)
    p.add_argument("system_id", metavar="ID", help="the SDK's systemid, e.g. vxp.saas.03")
    p.add_argument("--name", required=True, help="who runs it, as administrators will read it")
    _description_flags(p, required=True)
    p.set_defaults(handler=cmd_add)

    p = actions.add_parser("list", help="every system (never its secret)")
    common_flags(p)
    json_flag(p)
    p.set_defaults(handler=cmd_list)

    p = actions.add_parser("show", help="one system, as JSON")
    common_flags(p)
    p.add_argument("system_id", metavar="ID", help="the system's id (systemid), as list shows it")
    p.set_defaults(handler=cmd_show)

    p = actions.add_parser(
        "put",
        help="change a system's description (never its secret)",
        description="Start from the system as registered and apply the flags given;"
        " --agency (repeated) replaces the whole list of codes it serves.",
    )
    common_flags(p)
    p.add_argument("system_id", metavar="ID", help="the system's id (systemid), as list shows it")
    p.add_argument("--name", help="a new name")
    _description_flags(p, required=False)
    p.add_argument(
        "--status", choices=SYSTEM_STATUSES, help="disabled: every request it signs is refused"
    )
    p.set_defaults(handler=cmd_put)

    p = actions.add_parser(
        "rotate",
        help="a new secret, printed alone on its line; the old one works until first use",
    )
    common_flags(p)
    p.add_argument("system_id", metavar="ID", help="the system's id (systemid), as list shows it")
    p.set_defaults(handler=cmd_rotate)

    p = actions.add_parser("retire", help="stop the previous secret now (after a rotate)")
    common_flags(p)
    p.add_argument("system_id", metavar="ID", help="the system's id (systemid), as list shows it")
    p.set_defaults(handler=cmd_retire)

    p = actions.add_parser("disable", help="refuse every request the system signs")
    common_flags(p)
    p.add_argument("system_id", metavar="ID", help="the system's id (systemid), as list shows it")
    p.set_defaults(handler=cmd_disable)


def _description_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument(
        "--agency",
        action="append",
        required=required,
        metavar="CODE",
        help="a code it serves (its descendants too); repeat for several",
    )
    p.add_argument(
        "--signature",
        choices=SIGNATURE_POLICIES,
        help="optional: packages without XML-DSig are vouched for by the system (default required)",
    )
    p.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="may register and close units (registerAgency, deleteAgency)",
    )


def _body(args: argparse.Namespace, start: ConnectedSystem | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if start is not None:
        body = {
            "name": start.name,
            "agencies": list(start.agencies),
            "signature": start.signature,
            "register": start.register,
            "status": start.status,
        }
    for name in ("name", "signature", "register", "status"):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = value
    if args.agency:
        body["agencies"] = args.agency
    return body


def _row(system: ConnectedSystem) -> dict[str, Any]:
    return {**system.to_json(), "agencies": " ".join(system.agencies)}


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    system = described(args.system_id, _body(args, None))
    box = bootstrap.secret_box(settings)
    secret = secretbox.new_secret()

    async def add(store: Store) -> ConnectedSystem:
        return await store.add_system(system, box.seal(secret, system.id), actor=actor())

    stored = run(settings, add)
    say(f"registered system {stored.id} serving {', '.join(stored.agencies)}")
    print(secret)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def listing(store: Store) -> list[ConnectedSystem]:
        return sorted((await store.systems()).systems.values(), key=lambda s: s.id)

    rows = [_row(system) for system in run(settings, listing)]
    print_rows(rows, COLUMNS, as_json=args.json, none="no systems")
    return 0


def _existing(store_system: ConnectedSystem | None, system_id: str) -> ConnectedSystem:
    if store_system is None:
        raise NotFound(f"system {system_id} is not registered (axis system list shows them)")
    return store_system


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def show(store: Store) -> ConnectedSystem:
        return _existing(await store.system(args.system_id), args.system_id)

    print(json.dumps(run(settings, show).to_json(), ensure_ascii=False, indent=2))
    return 0


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    async def put(store: Store) -> ConnectedSystem:
        current = _existing(await store.system(args.system_id), args.system_id)
        system = described(args.system_id, _body(args, current))
        return await store.put_system(system, actor=actor())

    stored = run(settings, put)
    say(f"system {stored.id}: {stored.status}, serving {', '.join(stored.agencies)}")
    return 0


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    box = bootstrap.secret_box(settings)
    secret = secretbox.new_secret()

    async def rotate(store: Store) -> ConnectedSystem:
        _existing(await store.system(args.system_id), args.system_id)
        sealed = box.seal(secret, args.system_id)
        return await store.rotate_system_secret(args.system_id, sealed, actor=actor())

    run(settings, rotate)
    say(f"system {args.system_id}: new secret; the previous one works until it is first used")
    print(secret)
    return 0


def cmd_retire(args: argparse.Namespace, settings: Settings) -> int:
    async def retire(store: Store) -> bool:
        _existing(await store.system(args.system_id), args.system_id)
        return await store.retire_previous_secret(args.system_id, actor=actor(), reason="revoked")

    if not run(settings, retire):
        say(f"system {args.system_id}: no previous secret works; nothing to retire")
        return 1
    say(f"system {args.system_id}: only its current secret works now")
    return 0


def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    async def disable(store: Store) -> ConnectedSystem:
        return await store.disable_system(args.system_id, actor=actor())

    run(settings, disable)
    say(f"system {args.system_id} is disabled; every request it signs is refused")
    return 0
