"""The command line as a person meets it: one clear line for every mistake, never a traceback,
lists for people and for scripts, help written for users."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

import axis
from axis import cli
from axis.config import Settings

ROOT = Path(__file__).resolve().parents[2]

# every command that works on an initialised data directory (all but init and serve)
NEEDS_DATA = [
    ["token", "issue", "--role", "admin"],
    ["token", "list"],
    ["token", "revoke", "tok_1"],
    ["agencies", "list"],
    ["agencies", "show", "000.00.00.G22"],
    ["agencies", "put", "000.00.00.G22", "--name", "x"],
    ["agencies", "import", "agencies.yaml"],
    ["agencies", "export"],
    ["audit", "verify"],
    ["audit", "export"],
    ["audit", "checkpoint"],
    ["audit", "purge", "--older-than", "30"],
    ["key", "list"],
    ["key", "rotate"],
    ["worker"],
]


# the command line's own behaviour (data directories, pipes, messages), which does not
# depend on the engine: `python -m axis` here is run without the test's AXIS_* variables
pytestmark = pytest.mark.sqlite_only


def run_cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Any:
    """``python -m axis ARGS`` as a person runs it, without AXIS_* from the test's own shell."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AXIS_")}
    return subprocess.run(
        [sys.executable, "-m", "axis", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("axis: ")
    return lines[0]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, with no AXIS_* variables set."""
    for name in [k for k in os.environ if k.startswith("AXIS_")]:
        monkeypatch.delenv(name)
    (tmp_path / "agencies.yaml").write_text("agencies: []\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_version_is_the_installed_one() -> None:
    """`axis --version` names the version pip installed."""
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"axis {version('axis')}" == f"axis {axis.__version__}"


@pytest.mark.parametrize("argv", NEEDS_DATA, ids=" ".join)
def test_outside_a_data_directory_it_says_where_it_looked_and_creates_nothing(
    argv: list[str], elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run where no axis lives, a command names the directory, how to point it elsewhere, and
    leaves no world-readable var/ behind."""
    before = sorted(elsewhere.iterdir())
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    assert f"no axis data directory at {elsewhere / 'var'}" in line
    assert "axis init" in line and "--data" in line and "AXIS_DATA" in line
    assert out == ""
    assert sorted(elsewhere.iterdir()) == before


def test_a_directory_that_is_not_the_axis_s_is_named(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing directory without the axis's database is not mistaken for one."""
    other = elsewhere / "other"
    other.mkdir()
    assert cli.main(["token", "list", "--data", str(other)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{other} is not an axis data directory (no axis.sqlite3)" in line
    assert list(other.iterdir()) == []


def test_a_port_out_of_range_is_one_line(elsewhere: Path) -> None:
    """`axis serve --port 99999` says what a port may be, and prepares nothing."""
    done = run_cli("serve", "--port", "99999", cwd=elsewhere)
    assert done.returncode == 2
    assert "AXIS_PORT (--port) 99999: a TCP port is 1 to 65535" in one_line(done.stderr)
    assert not (elsewhere / "var").exists()


def test_a_port_taken_is_one_line(elsewhere: Path) -> None:
    """A port another program holds is named, and the axis does not start."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", str(port), cwd=elsewhere)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in one_line(done.stderr)


@pytest.mark.parametrize("command", [["init"], ["serve", "--port", "1"]])
def test_a_data_directory_that_cannot_be_made_is_one_line(
    command: list[str], elsewhere: Path
) -> None:
    """init and serve name the directory they could not prepare, and why."""
    (elsewhere / "afile").write_text("")
    target = elsewhere / "afile" / "var"
    if command[0] == "serve":
        with socket.socket() as probe:  # a free port, so that the data directory is what fails
            probe.bind(("127.0.0.1", 0))
            command = ["serve", "--port", str(probe.getsockname()[1])]
    done = run_cli(*command, "--data", str(target), cwd=elsewhere)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"cannot prepare the data directory {target}: Not a directory" in line
    assert "--data" in line


@pytest.mark.parametrize(
    "argv",
    [["agencies", "list"], ["agencies", "export"], ["audit", "export"], ["token", "list"]],
    ids=" ".join,
)
def test_a_reader_that_went_away_ends_it_quietly(argv: list[str], settings: Settings) -> None:
    """`axis agencies list | head -1`: no BrokenPipeError trace, a non-zero exit (141)."""
    data = ["--data", str(settings.data)]
    assert run_cli("init", *data).returncode == 0
    assert run_cli("token", "issue", "--role", "admin", *data).returncode == 0
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the axis writes a byte
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AXIS_")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "axis", *argv, "--data", str(settings.data)],
            cwd=ROOT,
            env=clean,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert "Exception ignored" not in done.stderr


def test_a_pipe_into_head_shows_no_trace(settings: Settings) -> None:
    """The shell pipe itself, as a person types it, prints the first line and nothing else."""
    assert run_cli("init", "--data", str(settings.data)).returncode == 0
    done = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m axis agencies list --data "$1" | head -1', "-",
         str(settings.data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert done.stdout.split() == ["ORGAN_ID", "STATUS", "KIND", "SUCCESSOR", "NAME"]
    assert done.stderr == ""


def columns(text: str) -> list[list[str]]:
    """The rows of an aligned table, checking that every column starts where its header does."""
    lines = text.splitlines()
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    for line in lines[1:]:
        for start in starts[1:]:
            assert line[start - 2 : start] == "  " and line[start] != " ", (header, line)
    return [line.split(maxsplit=len(starts) - 1) for line in lines]


def test_lists_are_columns_for_people_and_json_for_scripts(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """agencies list, token list and key list: aligned columns under a header, or --json lines
    with every field."""
    data = ["--data", str(settings.data)]
    assert cli.main(["init", *data]) == 0
    assert cli.main(["token", "issue", "--agency", "000.00.00.G22", *data]) == 0
    capsys.readouterr()
    expected = {
        ("agencies", "list"): (["ORGAN_ID", "STATUS", "KIND", "SUCCESSOR", "NAME"], 158),
        ("token", "list"): (
            ["TOKEN_ID", "ROLE", "ORGAN_ID", "CREATED_AT", "LAST_USED_AT", "REVOKED_AT"],
            1,
        ),
        ("key", "list"): (["SHA256", "CURRENT", "NOT_AFTER", "SUBJECT"], 1),
    }
    for argv, (header, count) in expected.items():
        assert cli.main([*argv, *data]) == 0
        table = columns(capsys.readouterr().out)
        assert table[0] == header
        assert len(table) == count + 1
        assert cli.main([*argv, "--json", *data]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == count
        assert {name.lower() for name in header} <= set(rows[0])
    assert cli.main(["agencies", "list", "--q", "000.00.00.G22", *data]) == 0
    [_, g22] = columns(capsys.readouterr().out)
    assert g22 == ["000.00.00.G22", "active", "central", "-", "Văn phòng Chính phủ"]
    assert cli.main(["token", "list", "--agency", "000.00.00.H41", *data]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == "axis: no tokens\n"


def test_audit_export_writes_json_lines_or_csv(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`axis audit export` gives the events on stdout or in a file, as JSON lines or CSV."""
    data = ["--data", str(settings.data)]
    assert cli.main(["init", *data]) == 0
    assert cli.main(["token", "issue", "--role", "auditor", *data]) == 0
    capsys.readouterr()
    assert cli.main(["audit", "export", *data]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events][-1] == "token_issued"
    assert err == f"axis: exported {len(events)} events\n"
    target = tmp_path / "events.csv"
    assert cli.main(["audit", "export", "--format", "csv", "-o", str(target), *data]) == 0
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("seq,") and len(lines) == len(events) + 1
    assert target.stat().st_mode & 0o077 == 0  # an export is for the axis's user only
    assert cli.main(["audit", "export", "--type", "token_issued", *data]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def _actions(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                found.append((f"{path} {choice.dest}", choice))
            for name, sub in action.choices.items():
                found += _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


def test_every_command_and_option_is_explained() -> None:
    """`--help` at every level has a line for each command and option, for its users."""
    missing = [
        f"{path}: {action.option_strings or action.dest}"
        for path, action in _actions(cli.build_parser(), "axis")
        if not action.help
    ]
    assert missing == []
    for argv in (["--help"], ["serve", "--help"], ["agencies", "put", "--help"]):
        done = run_cli(*argv)
        assert done.returncode == 0
        for internal in ("Settings", "handler", "set_defaults", "store.", "``"):
            assert internal not in done.stdout, (argv, internal)


def test_a_postgres_schema_not_initialised_is_one_line(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With PostgreSQL, a database the axis has not prepared is named with what to run."""
    from tests.store.conftest import drop_schema, fresh_schema, require_postgres, schema_url

    asyncio.run(require_postgres())
    schema = fresh_schema()
    try:
        done = run_cli("token", "list", "--store", schema_url(schema), cwd=elsewhere)
    finally:
        asyncio.run(drop_schema(schema))
    assert done.returncode == 1
    assert "axis init" in one_line(done.stderr)
    assert not (elsewhere / "var").exists()
