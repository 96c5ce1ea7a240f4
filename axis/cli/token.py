"""``axis token issue | list | revoke``: bearer tokens, for administrators on the machine.

``issue`` prints the token alone on its line (a script captures it with ``$(…)``); the axis
keeps only its hash, so it is shown this once.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING

from axis import registry, tokens
from axis.cli.common import actor, common_flags, json_flag, print_rows, run, say
from axis.config import Settings
from axis.model import Role, TokenInfo
from axis.store.protocol import Store

if TYPE_CHECKING:
    from axis.cli.common import Subparsers

COLUMNS = ("token_id", "role", "organ_id", "created_at", "last_used_at", "revoked_at")


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("token", help="issue, list or revoke tokens")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser(
        "issue",
        help="print a new token, alone on its line",
        description="Print a new token on standard output, alone on its line. It is shown"
        " only now: the axis keeps its hash. Admin and auditor tokens are issued only here.",
    )
    common_flags(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--role", choices=["admin", "auditor"], help="a token for people")
    who.add_argument("--agency", metavar="ORGAN_ID", help="a token for an agency's system")
    p.set_defaults(handler=cmd_issue)

    p = actions.add_parser("list", help="tokens: ids, roles, agencies, use (never the tokens)")
    common_flags(p)
    p.add_argument("--agency", metavar="ORGAN_ID", help="only this agency's tokens")
    json_flag(p)
    p.set_defaults(handler=cmd_list)

    p = actions.add_parser("revoke", help="revoke a token: refused from now on")
    common_flags(p)
    p.add_argument("token_id", metavar="TOKEN_ID", help="as token list shows it (tok_…)")
    p.set_defaults(handler=cmd_revoke)


def cmd_issue(args: argparse.Namespace, settings: Settings) -> int:
    async def issue(store: Store) -> str:
        organ_id = args.agency
        if organ_id is not None:
            registry.check_token_holder((await store.registry()).get(organ_id), organ_id)
        token_id, token, token_hash = tokens.generate()
        role: Role = "agency" if organ_id else args.role
        await store.issue_token(token_id, token_hash, role, organ_id, actor=actor())
        say(f"issued {token_id} ({role}{' ' + organ_id if organ_id else ''})")
        return token

    print(run(settings, issue))
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def listing(store: Store) -> list[TokenInfo]:
        return list(await store.list_tokens(args.agency))

    rows = [asdict(info) for info in run(settings, listing)]
    print_rows(rows, COLUMNS, as_json=args.json, none="no tokens")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def revoke(store: Store) -> bool:
        return await store.revoke_token(args.token_id, actor=actor())

    if not run(settings, revoke):
        say(f"no live token {args.token_id}")
        return 1
    say(f"revoked {args.token_id}; it is refused from now on")
    return 0
