"""Command line: ``axis audit verify | export | checkpoint | purge``.

``verify`` prints the same JSON as ``GET /v1/audit/verify`` and exits 1 when the log is
broken, so a cron job or a monitoring probe needs nothing else. It may be given checkpoints
an auditor kept outside the axis (``--checkpoint FILE``): a history cut back together with
its checkpoint table is then still caught.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import timedelta
from pathlib import Path
from typing import IO

import orjson

from axis import audit, bootstrap, log, timeutil
from axis.audit import Anchor, Verdict
from axis.cli_support import actor, common_flags, with_store
from axis.config import Settings
from axis.model import AuditFilter, PurgeReport
from axis.store.protocol import Store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser; its handler is set with ``set_defaults(handler=…)``.

    A handler is called as ``handler(args, settings) -> int`` (the exit status).
    """
    parser = sub.add_parser("audit", help="verify, export and maintain the audit log")
    actions = parser.add_subparsers(dest="action", required=True)

    p = actions.add_parser("verify", help="check the hash chain and checkpoints (exit 1: broken)")
    common_flags(p)
    p.add_argument(
        "--checkpoint",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a signed checkpoint kept elsewhere, checked against the log too (repeatable)",
    )
    p.set_defaults(handler=cmd_verify)

    p = actions.add_parser("export", help="write events as JSON lines or CSV")
    common_flags(p)
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    for name in ("organ_id", "document_id", "message_id", "type"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name)
    p.add_argument("--since", help="RFC 3339 time, with offset")
    p.add_argument("--until", help="RFC 3339 time, with offset")
    p.set_defaults(handler=cmd_export)

    p = actions.add_parser("checkpoint", help="sign the chain head now (skipped when unchanged)")
    common_flags(p)
    p.set_defaults(handler=cmd_checkpoint)

    p = actions.add_parser("purge", help="drop message bodies older than the retention period")
    common_flags(p)
    p.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="age in days (default AXIS_RETENTION_DAYS; 0 there means keep everything)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="keep a shared blob file an intake reused within this long (default 600)",
    )
    p.set_defaults(handler=cmd_purge)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    try:
        certificate = settings.cert_path.read_bytes()
    except OSError as exc:
        print(
            f"axis: the axis certificate: {exc}; is {settings.data} initialised?", file=sys.stderr
        )
        return 2
    # checkpoints signed before a key rotation verify with the certificates kept since
    certificates = [certificate, *bootstrap.previous_certificates(settings)]
    reader = audit.CheckpointReader(certificates)
    anchors = []
    for path in args.checkpoint:
        try:
            kept = reader.read(path.read_bytes())
        except (OSError, audit.CheckpointInvalid) as exc:
            print(f"axis: {path}: not a valid checkpoint: {exc}", file=sys.stderr)
            return 1
        anchors.append(Anchor(kept.seq, kept.hash, f"the checkpoint in {path}"))

    async def check(store: Store) -> Verdict:
        return await store.verify_audit(certificates, anchors)

    verdict = asyncio.run(with_store(settings, check))
    print(orjson.dumps(verdict.to_json()).decode())
    if verdict.ok:
        print(
            f"axis: audit log intact: {verdict.events} events, head {verdict.head_seq},"
            f" {verdict.checkpoints} checkpoints"
            + (f"; agrees with the {len(anchors)} checkpoint file(s) given" if anchors else ""),
            file=sys.stderr,
        )
        return 0
    print(
        f"axis: audit log BROKEN at event {verdict.first_bad_seq}: {verdict.reason}",
        file=sys.stderr,
    )
    return 1


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    where = AuditFilter(
        organ_id=args.organ_id,
        document_id=args.document_id,
        message_id=args.message_id,
        type=args.type,
        since=timeutil.parse_query_time("--since", args.since) if args.since else None,
        until=timeutil.parse_query_time("--until", args.until) if args.until else None,
    )

    async def export(store: Store, out: IO[bytes]) -> int:
        count = 0
        if args.format == "csv":
            out.write(audit.csv_rows([], header=True))
        async with contextlib.aclosing(store.audit_stream(where)) as stream:
            async for batch in stream:
                out.write(audit.csv_rows(batch) if args.format == "csv" else audit.jsonl(batch))
                count += len(batch)
        out.flush()
        return count

    with contextlib.ExitStack() as stack:
        out = stack.enter_context(args.output.open("wb")) if args.output else sys.stdout.buffer
        count = asyncio.run(with_store(settings, lambda store: export(store, out)))
    print(f"axis: exported {count} events", file=sys.stderr)
    return 0


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    from axis.jobs import make_checkpoint

    key = bootstrap.load_key(settings)

    async def sign(store: Store) -> audit.Checkpoint | None:
        return await make_checkpoint(store, key, actor=actor())

    checkpoint = asyncio.run(with_store(settings, sign))
    if checkpoint is None:
        print("axis: nothing new since the last checkpoint", file=sys.stderr)
        return 0
    sys.stdout.buffer.write(checkpoint.xml + b"\n")
    print(f"axis: signed the head: event {checkpoint.seq}", file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    days = args.older_than if args.older_than is not None else settings.retention_days
    if days <= 0:
        print(
            "axis: no retention period: give --older-than DAYS or set AXIS_RETENTION_DAYS",
            file=sys.stderr,
        )
        return 2
    before = timeutil.now() - timedelta(days=days)

    async def purge(store: Store) -> PurgeReport:
        return await store.purge_bodies(before, actor=actor(), grace=args.grace)

    report = asyncio.run(with_store(settings, purge))
    print(
        f"axis: purged {report.messages} bodies received before {timeutil.fmt(before)},"
        f" deleted {report.files} blob files; {report.held} old bodies kept for open"
        " deliveries",
        file=sys.stderr,
    )
    return 0
