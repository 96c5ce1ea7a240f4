"""``axis key``: the axis's own signing key, which signs receipts and audit checkpoints.

``rotate`` gives the axis a new key (generated, or a CA-issued pair) and keeps the old
certificate beside it, so everything signed before still verifies; the change is an audit
event. ``list`` shows the current certificate and the earlier ones.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from axis import bootstrap
from axis.cli_support import actor, common_flags, with_store
from axis.config import Settings
from axis.registry import Certificate
from axis.store.protocol import Store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("key", help="the axis signing key: rotate it, list its certificates")
    ksub = p.add_subparsers(dest="action", required=True)
    k = ksub.add_parser("rotate", help="a new signing key; the old certificate is kept")
    common_flags(k)
    k.add_argument("--key", type=argparse.FileType("rb"), help="PEM private key to install")
    k.add_argument("--cert", type=argparse.FileType("rb"), help="its PEM certificate")
    k.set_defaults(handler=cmd_rotate)
    k = ksub.add_parser("list", help="the current and earlier certificates, as JSON lines")
    common_flags(k)
    k.set_defaults(handler=cmd_list)


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    if (args.key is None) != (args.cert is None):
        print("axis: give both --key and --cert, or neither (a key is generated)", file=sys.stderr)
        return 2
    if not settings.cert_path.exists():
        print(f"axis: {settings.data} has no axis key yet; run axis init", file=sys.stderr)
        return 2
    key_pem = args.key.read() if args.key else None
    cert_pem = args.cert.read() if args.cert else None
    try:
        change = bootstrap.replace_key(settings, key_pem, cert_pem)
    except ValueError as exc:
        print(f"axis: the new key was not installed: {exc}", file=sys.stderr)
        return 2

    async def record(store: Store) -> None:
        await store.record_key_change(
            actor=actor(), previous_sha256=change.previous_sha256, sha256=change.sha256
        )

    asyncio.run(with_store(settings, record))
    print(
        f"axis: new signing certificate sha256 {change.sha256}; the previous one"
        f" ({change.previous_sha256[:16]}…) is kept in {change.kept_as} so that earlier"
        " receipts and checkpoints still verify. Restart every axis process; with several"
        " nodes, copy axis-key.pem, axis.pem and axis-previous/ to each first.",
        file=sys.stderr,
    )
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    current = [settings.cert_path.read_bytes()] if settings.cert_path.exists() else []
    for n, pem in enumerate([*current, *reversed(bootstrap.previous_certificates(settings))]):
        cert = Certificate.from_pem(pem)
        line = {
            "sha256": cert.sha256,
            "subject": cert.subject,
            "not_after": cert.not_after.isoformat(),
            "current": bool(current) and n == 0,
        }
        print(orjson.dumps(line).decode())
    return 0
