"""The axis as a package: the wheel and sdist carry everything it reads at run time, and a
wheel installed in a fresh virtual environment outside the checkout serves, run as the
container image runs it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from axis import __version__, resources
from tests.support.installed import (
    ROOT,
    assert_stopped_cleanly,
    dockerfile_runtime,
    free_port,
    http,
    register_by_api,
    run,
    send_and_receive,
    wait_ready,
)

SHIPPED = [
    "axis/py.typed",
    "axis/resources/agencies.yaml",
    "axis/resources/openapi.yaml",
    *(f"axis/resources/schemas/{p.name}" for p in sorted((ROOT / "schemas").glob("*.xsd"))),
    *(
        f"axis/{p.relative_to(ROOT / 'axis').as_posix()}"
        for p in sorted((ROOT / "axis" / "store").rglob("*.sql"))
    ),
]

# what the checkout holds that the build must not see (as .dockerignore says for the image)
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "var", ".*_cache", ".hypothesis"
)


def clean_env() -> dict[str, str]:
    """The environment without the test run's venv, PYTHONPATH or AXIS_* settings."""
    ours = str(Path(sys.prefix) / "bin")  # the test run's own venv
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AXIS_", "PYTHON", "VIRTUAL_ENV"))
    }
    return {**env, "PATH": os.pathsep.join(path)}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel, built as `python -m build` does (the wheel from the sdist), from a
    copy of the checkout: the checkout itself gets no build/ or egg-info."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    out = work / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], env=clean_env())
    return out


def test_the_shipped_files_are_the_repository_s_own() -> None:
    """schemas/, agencies.yaml and openapi.yaml exist once, at the root; the package links to
    them, so no second copy can drift."""
    editable = Path(resources.__file__).resolve().is_relative_to(ROOT.resolve())
    for name in ("schemas", "agencies.yaml", "openapi.yaml"):
        link = ROOT / "axis" / "resources" / name
        assert link.is_symlink(), link
        assert link.resolve() == (ROOT / name).resolve()
        if editable:  # as bin/test installs it: the running axis reads the root copy
            assert resources.path(name).resolve() == (ROOT / name).resolve()


@pytest.mark.slow
def test_the_wheel_and_the_sdist_carry_what_the_axis_reads(dist: Path) -> None:
    """Schemas, agencies.yaml, openapi.yaml and the SQL migrations are in both, as files."""
    [wheel] = dist.glob(f"axis-{__version__}-py3-none-any.whl")
    [sdist] = dist.glob(f"axis-{__version__}.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        assert archive.read("axis/resources/openapi.yaml") == (ROOT / "openapi.yaml").read_bytes()
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}
    for name in SHIPPED:
        assert name in in_wheel, name
        assert members[name].isfile(), name  # a file, not a link that would dangle
    assert any(name.startswith("axis/web/") for name in in_wheel)
    assert not any(name.startswith(("tests/", "bench/")) for name in in_wheel)


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed, as the
    image's build stage makes /opt/axis (dependencies from the pip cache or PyPI)."""
    venv = tmp_path_factory.mktemp("venv") / "axis"
    [wheel] = dist.glob("*.whl")
    run([sys.executable, "-m", "venv", str(venv)], env=clean_env())
    run(
        [str(venv / "bin" / "pip"), "install", "--only-binary=:all:", str(wheel)],
        env=clean_env(),
    )
    return venv


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no checkout around it."""
    where = tmp_path / "somewhere"
    where.mkdir()
    return where


@pytest.mark.slow
def test_an_installed_wheel_serves_a_signed_package_as_the_image_runs_it(
    installed: Path, elsewhere: Path
) -> None:
    """init, serve and one signed package through the installed axis, run with the image's
    environment and command; its health check passes; SIGTERM stops it cleanly after a last
    signed checkpoint."""
    image = dockerfile_runtime()
    bin_dir = installed / "bin"
    port = free_port()
    data = elsewhere / "var-lib-axis"
    env = {
        **clean_env(),
        **image["env"],
        "PATH": f"{bin_dir}{os.pathsep}{clean_env()['PATH']}",  # the image's PATH
        "AXIS_DATA": str(data),  # where the image has its volume
        "AXIS_HOST": "127.0.0.1",  # the image listens on 0.0.0.0 inside its own network
        "AXIS_PORT": str(port),
    }
    assert image["env"]["AXIS_DATA"] == image["VOLUME"][0] == "/var/lib/axis"
    located = run(
        [str(bin_dir / "python"), "-c", "import axis, sys; print(axis.__file__, sys.prefix)"],
        cwd=elsewhere,
        env=env,
    ).stdout.split()
    assert Path(located[0]).is_relative_to(installed) and Path(located[1]) == installed

    version = run([str(bin_dir / "axis"), "--version"], cwd=elsewhere, env=env)
    assert version.stdout.strip() == f"axis {__version__}"
    init = run([str(bin_dir / "axis"), "init"], cwd=elsewhere, env=env)
    assert "158 agencies added" in init.stderr
    admin = run(
        [str(bin_dir / "axis"), "token", "issue", "--role", "admin"], cwd=elsewhere, env=env
    ).stdout.strip()

    command = [*image["ENTRYPOINT"], *image["CMD"]]
    assert command == ["axis", "serve"]
    server = subprocess.Popen(
        command,
        cwd=elsewhere,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, lambda: None if server.poll() is None else f"exit {server.returncode}")
        health = subprocess.run(["sh", "-c", image["HEALTHCHECK"]], env=env, check=False)
        assert health.returncode == 0
        status, spec = http("GET", f"{url}/v1/openapi.yaml")
        assert status == 200 and spec == (ROOT / "openapi.yaml").read_bytes()
        send_and_receive(url, url, register_by_api(url, admin))
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert_stopped_cleanly(server.returncode, stderr)
    verified = run([str(bin_dir / "axis"), "audit", "verify"], cwd=elsewhere, env=env)
    assert '"ok":true' in verified.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == ["var-lib-axis"]
