"""``axis key``: the axis's own signing key, which signs receipts and audit checkpoints.

``rotate`` gives the axis a new key (generated, or a CA-issued pair) and keeps the old
certificate beside it, so everything signed before still verifies; the change is an audit
event. ``list`` shows the current certificate and the earlier ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from axis import bootstrap
from axis.cli.common import (
    Refusal,
    actor,
    common_flags,
    json_flag,
    print_rows,
    require_data,
    run,
    say,
)
from axis.config import Settings
from axis.registry import Certificate
from axis.store.protocol import Store

if TYPE_CHECKING:
    from axis.cli.common import Subparsers

COLUMNS = ("sha256", "current", "not_after", "subject")


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("key", help="the axis signing key: rotate it, list its certificates")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "rotate",
        help="give the axis a new signing key; the old certificate is kept",
        description="Give the axis a new signing key: a generated one, or a CA-issued pair"
        " (--key and --cert). The old certificate is kept so that earlier receipts and"
        " checkpoints still verify; the old private key is deleted. Restart every axis"
        " process afterwards.",
    )
    common_flags(p)
    p.add_argument("--key", type=Path, metavar="PEM", help="the private key to install")
    p.add_argument("--cert", type=Path, metavar="PEM", help="its certificate")
    p.set_defaults(handler=cmd_rotate)
    p = actions.add_parser("list", help="the current certificate and the earlier ones")
    common_flags(p)
    json_flag(p)
    p.set_defaults(handler=cmd_list)


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    if (args.key is None) != (args.cert is None):
        raise Refusal("give both --key and --cert, or neither (a key is generated)")
    require_data(settings, key=True)
    key_pem = args.key.read_bytes() if args.key else None
    cert_pem = args.cert.read_bytes() if args.cert else None
    try:
        change = bootstrap.replace_key(settings, key_pem, cert_pem)
    except ValueError as exc:
        raise Refusal(f"the new key was not installed: {exc}") from None

    async def record(store: Store) -> None:
        await store.record_key_change(
            actor=actor(), previous_sha256=change.previous_sha256, sha256=change.sha256
        )

    run(settings, record)
    say(
        f"new signing certificate sha256 {change.sha256}; the previous one"
        f" ({change.previous_sha256[:16]}…) is kept in {change.kept_as} so that earlier"
        " receipts and checkpoints still verify. Restart every axis process; with several"
        " nodes, copy axis-key.pem, axis.pem and axis-previous/ to each first."
    )
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    require_data(settings, key=True)
    current = settings.cert_path.read_bytes()
    pems = [current, *reversed(bootstrap.previous_certificates(settings))]
    rows = []
    for n, pem in enumerate(pems):
        cert = Certificate.from_pem(pem)
        rows.append(
            {
                "sha256": cert.sha256,
                "subject": cert.subject,
                "not_after": cert.not_after.isoformat(),
                "current": n == 0,
            }
        )
    print_rows(rows, COLUMNS, as_json=args.json, none="no certificates")
    return 0
