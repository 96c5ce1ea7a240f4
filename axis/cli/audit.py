"""Command line: ``axis audit verify | export | checkpoint | purge``.

``verify`` prints the same JSON as ``GET /v1/audit/verify`` and exits 1 when the log is
broken, so a cron job or a monitoring probe needs nothing else. It may be given checkpoints
an auditor kept outside the axis (``--checkpoint FILE``): a history cut back together with
its checkpoint table is then still caught.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from axis import audit, bootstrap, log, timeutil
from axis.audit import Anchor, Verdict
from axis.cli.common import Refusal, actor, common_flags, require_data, run, say
from axis.config import Settings
from axis.model import AuditFilter, PurgeReport
from axis.store.protocol import Store

if TYPE_CHECKING:
    from axis.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("audit", help="verify, export and maintain the audit log")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser(
        "verify",
        help="check the hash chain and the signed checkpoints (exit 1: broken)",
        description="Check every event against the one before it and every checkpoint against"
        " the events, and print the verdict as JSON (as GET /v1/audit/verify). Exit 1 when"
        " the log is broken, so a cron job or a monitoring probe needs nothing else.",
    )
    common_flags(p)
    p.add_argument(
        "--checkpoint",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a signed checkpoint you kept outside the axis: the log must agree with it"
        " (repeatable)",
    )
    p.set_defaults(handler=cmd_verify)

    p = actions.add_parser("export", help="write the events as JSON lines or CSV")
    common_flags(p)
    p.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        default="jsonl",
        help="jsonl: one JSON object a line (default); csv: a spreadsheet's",
    )
    p.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    p.add_argument("--organ-id", metavar="ORGAN_ID", help="events with this agency as party")
    p.add_argument("--document-id", help="events about this DocumentId")
    p.add_argument("--message-id", help="events about this message (msg_…)")
    p.add_argument("--type", help="events of this type (message_received, …)")
    p.add_argument("--since", help="RFC 3339 time, with offset")
    p.add_argument("--until", help="RFC 3339 time, with offset")
    p.set_defaults(handler=cmd_export)

    p = actions.add_parser(
        "checkpoint",
        help="sign the head of the log now and print the checkpoint (nothing when unchanged)",
    )
    common_flags(p)
    p.set_defaults(handler=cmd_checkpoint)

    p = actions.add_parser(
        "purge",
        help="delete the bodies of old, closed messages (their trail stays and verifies)",
    )
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
        help="keep a body file that a package received within this many seconds also uses"
        " (default 600)",
    )
    p.set_defaults(handler=cmd_purge)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    require_data(settings, key=True)
    certificate = settings.cert_path.read_bytes()
    # checkpoints signed before a key rotation verify with the certificates kept since
    certificates = [certificate, *bootstrap.previous_certificates(settings)]
    reader = audit.CheckpointReader(certificates)
    anchors = []
    for path in args.checkpoint:
        try:
            kept = reader.read(path.read_bytes())
        except (OSError, audit.CheckpointInvalid) as exc:
            raise Refusal(f"{path}: not a valid checkpoint: {exc}", status=1) from None
        anchors.append(Anchor(kept.seq, kept.hash, f"the checkpoint in {path}"))

    async def check(store: Store) -> Verdict:
        return await store.verify_audit(certificates, anchors)

    verdict = run(settings, check)
    print(orjson.dumps(verdict.to_json()).decode())
    if verdict.ok:
        say(
            f"audit log intact: {verdict.events} events, head {verdict.head_seq},"
            f" {verdict.checkpoints} checkpoints"
            + (f"; agrees with the {len(anchors)} checkpoint file(s) given" if anchors else "")
        )
        return 0
    say(f"audit log BROKEN at event {verdict.first_bad_seq}: {verdict.reason}")
    return 1


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    require_data(settings)  # before the output file is made
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
        count = run(settings, lambda store: export(store, out))
    say(f"exported {count} events")
    return 0


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    from axis.jobs import make_checkpoint

    require_data(settings, key=True)
    key = bootstrap.load_key(settings)

    async def sign(store: Store) -> audit.Checkpoint | None:
        return await make_checkpoint(store, key, actor=actor())

    checkpoint = run(settings, sign)
    if checkpoint is None:
        say("nothing new since the last checkpoint")
        return 0
    sys.stdout.buffer.write(checkpoint.xml + b"\n")
    say(f"signed the head: event {checkpoint.seq}")
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    log.configure(settings.log_level, json=settings.log_json)  # on stderr: stdout is data
    days = args.older_than if args.older_than is not None else settings.retention_days
    if days <= 0:
        raise Refusal("no retention period: give --older-than DAYS or set AXIS_RETENTION_DAYS")
    before = timeutil.now() - timedelta(days=days)

    async def purge(store: Store) -> PurgeReport:
        return await store.purge_bodies(before, actor=actor(), grace=args.grace)

    report = run(settings, purge)
    say(
        f"purged {report.messages} bodies received before {timeutil.fmt(before)},"
        f" deleted {report.files} blob files; {report.held} old bodies kept for open"
        " deliveries"
    )
    return 0
