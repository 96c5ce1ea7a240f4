"""schemathesis against a live, seeded `axis serve`: every check, every phase (stateful
included), one run per role, bounded in examples and time, and it must report nothing.

Its settings, and what the schema cannot say, are in ``tests/api/schemathesis.toml``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from axis.config import Settings
from tests.api.test_crash import free_port
from tests.support.seeded import seeded_axis

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[1] / "openapi.yaml"
CONFIG = HERE / "schemathesis.toml"
# (token, the tags of the operations it may call, seconds): ≈ 75 s in all
RUNS = [
    ("agency", ["sending", "receiving", "directory", "operations"], 30),
    ("admin", ["admin", "directory"], 25),
    ("auditor", ["audit"], 20),
]


def _schemathesis(url: str, token: str, tags: list[str], seconds: int, cwd: Path) -> str:
    """One `st run`; its output, or AssertionError with it when it reported anything."""
    args = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(CONFIG), "--no-color",
        "run", str(SPEC), "--url", url,
        "--header", f"Authorization: Bearer {token}",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
        "--max-time", str(seconds), "--workers", "1",
        *(arg for tag in tags for arg in ("--include-tag", tag)),
    ]  # fmt: skip
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    return output


@pytest.mark.slow
async def test_schemathesis_reports_nothing_for_any_role(
    settings: Settings, tmp_path: Path
) -> None:
    """Agency, admin and auditor runs: no 5xx, every answer as described, what the schema
    allows accepted and what it refuses refused, no crash in the server's log."""
    log = tmp_path / "serve.log"
    async with seeded_axis(settings, free_port(), log) as axis:
        for role, tags, seconds in RUNS:
            output = await asyncio.to_thread(
                _schemathesis, axis.url, axis.tokens[role], tags, seconds, tmp_path
            )
            assert " passed" in output and "generated" in output, output[-5000:]
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("level") in ("error", "critical")]
    assert errors == [], errors[:5]
