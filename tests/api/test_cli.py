"""The command line a newcomer uses: init twice, issue tokens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from axis.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def axis_cli(settings: Settings, *args: str, raw: bool = False) -> subprocess.CompletedProcess[Any]:
    """``python -m axis ARGS --data DIR``; output as text, or as bytes when ``raw``."""
    return subprocess.run(
        [sys.executable, "-m", "axis", *args, "--data", str(settings.data)],
        cwd=ROOT,
        capture_output=True,
        text=not raw,
        check=False,
    )


def test_init_twice_changes_nothing(settings: Settings) -> None:
    """`axis init` loads the 158 shipped agencies once; a second run adds none."""
    first = axis_cli(settings, "init")
    assert first.returncode == 0, first.stderr
    assert "158 agencies added" in first.stderr
    digest = settings.key_path.read_bytes()
    second = axis_cli(settings, "init")
    assert second.returncode == 0
    assert "0 agencies added" in second.stderr
    assert settings.key_path.read_bytes() == digest


def test_token_issue_prints_the_token_alone(settings: Settings) -> None:
    """`axis token issue` prints only the token on stdout, for scripts to capture."""
    assert axis_cli(settings, "init").returncode == 0
    for args in (("--role", "admin"), ("--role", "auditor"), ("--agency", "000.00.00.G22")):
        done = axis_cli(settings, "token", "issue", *args)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("axs_")
    unknown = axis_cli(settings, "token", "issue", "--agency", "000.00.00.Z97")
    assert unknown.returncode == 1
    assert "not registered" in unknown.stderr


def test_init_keeps_the_data_directory_to_the_axis_user(settings: Settings) -> None:
    """The data directory is 0700 and the database 0600: bodies and push secrets live there."""
    settings.data.chmod(0o755)
    assert axis_cli(settings, "init").returncode == 0
    assert settings.data.stat().st_mode & 0o777 == 0o700
    if not settings.uses_postgres:
        assert settings.sqlite_path.stat().st_mode & 0o077 == 0
