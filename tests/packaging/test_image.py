"""The container image, built from the Dockerfile and run by a real container engine (podman):
one node on its volume, then two nodes on one PostgreSQL sharing the data volume, as
compose.yaml sets them up.

It runs in CI (``CI=true``) or with ``AXIS_TEST_CONTAINER=1``, where podman can run
containers; elsewhere it is skipped, saying why. No registry but the package registries can
be reached here, so when ``python:3.11-slim-bookworm`` cannot be had the test builds a
stand-in of the same Debian and Python from Debian's packages (debootstrap, once; kept as
``localhost/axis-test-base:bookworm``) carrying this machine's CA bundle, which pip inside
the build needs behind this network's TLS proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.installed import (
    ROOT,
    assert_stopped_cleanly,
    free_port,
    register_by_api,
    run,
    send_and_receive,
    wait_pinned,
    wait_ready,
)

OFFICIAL_BASE = "docker.io/library/python:3.11-slim-bookworm"
STAND_IN_BASE = "localhost/axis-test-base:bookworm"
MIRROR = os.environ.get("AXIS_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")

pytestmark = pytest.mark.slow


def _podman() -> list[str]:
    """podman with what this kind of machine needs: runc (crun refuses the hybrid cgroup
    hierarchy) and limits no higher than this process has (raising them is not allowed)."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("no container engine: apt-get install podman runc")
    return [podman, *(["--runtime", "runc"] if shutil.which("runc") else [])]


def _limits() -> list[str]:
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 65536)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=16384:16384"]


def _stand_in(podman: list[str]) -> str:
    """The base image: the official one if this machine has it, else the stand-in."""
    for image in (OFFICIAL_BASE, STAND_IN_BASE):
        if subprocess.run([*podman, "image", "exists", image], check=False).returncode == 0:
            return image
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip(f"no {OFFICIAL_BASE} here and no debootstrap (as root) to make a stand-in")
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "bookworm", str(rootfs), MIRROR],
            timeout=900,
        )  # fmt: skip
        shutil.copyfile(
            "/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt"
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(
            [*podman, "import", "--change", "ENV LANG=C.UTF-8",
             "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "-", STAND_IN_BASE],
            stdin=tar.stdout,
        )  # fmt: skip
        assert tar.wait() == 0
    return STAND_IN_BASE


@pytest.fixture(scope="module")
def podman() -> list[str]:
    if os.environ.get("CI", "").lower() != "true" and os.environ.get("AXIS_TEST_CONTAINER") != "1":
        pytest.skip("the container test runs in CI (CI=true) or with AXIS_TEST_CONTAINER=1")
    podman = _podman()
    probe = subprocess.run(
        [*podman, "run", "--rm", *_limits(), "--entrypoint", "true", _stand_in(podman)],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    return podman


@pytest.fixture(scope="module")
def image(podman: list[str]) -> Iterator[str]:
    """The image the Dockerfile builds from this checkout; removed afterwards."""
    tag = f"localhost/axis-test:{secrets.token_hex(4)}"
    run(
        [*podman, "build", "--format", "docker", "--layers=false", *_limits(),
         "--build-arg", f"PYTHON_IMAGE={_stand_in(podman)}", "-t", tag, str(ROOT)],
        timeout=900,
    )  # fmt: skip
    yield tag
    subprocess.run([*podman, "rmi", "-f", tag], capture_output=True, check=False)


class Containers:
    """Containers and volumes of one test, removed at its end."""

    def __init__(self, podman: list[str], image: str) -> None:
        self.podman, self.image = podman, image
        self.names: list[str] = []
        self.volume = f"axis-test-{secrets.token_hex(4)}"

    def start(self, *options: str, command: tuple[str, ...] = ()) -> str:
        name = f"axis-test-{secrets.token_hex(4)}"
        self.names.append(name)
        run([*self.podman, "run", "-d", "--name", name, *_limits(),
             "-v", f"{self.volume}:/var/lib/axis", *options, self.image, *command])  # fmt: skip
        return name

    def once(self, *options: str, command: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        volume = f"{self.volume}:/var/lib/axis"
        return run([*self.podman, "run", "--rm", *_limits(), "-v", volume, *options, self.image,
                    *command])  # fmt: skip

    def state(self, name: str) -> dict[str, object]:
        out = run([*self.podman, "inspect", name]).stdout
        state: dict[str, object] = json.loads(out)[0]["State"]
        return state

    def alive(self, name: str) -> str | None:
        state = self.state(name)
        return None if state["Running"] else f"exit {state['ExitCode']}: {self.logs(name)[-500:]}"

    def logs(self, name: str) -> str:
        done = run([*self.podman, "logs", name])
        return done.stdout + done.stderr

    def stop(self, name: str) -> tuple[int, str]:
        """``podman stop`` (SIGTERM, up to 60 s); the exit status and the logs."""
        run([*self.podman, "stop", "--time", "60", name])
        status = self.state(name)["ExitCode"]
        assert isinstance(status, int)
        return status, self.logs(name)

    def exec(self, name: str, *command: str) -> str:
        return run([*self.podman, "exec", name, *command]).stdout

    def remove(self) -> None:
        for name in self.names:
            subprocess.run([*self.podman, "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(
            [*self.podman, "volume", "rm", "-f", self.volume], capture_output=True, check=False
        )


@pytest.fixture
def containers(podman: list[str], image: str) -> Iterator[Containers]:
    made = Containers(podman, image)
    try:
        yield made
    finally:
        made.remove()


def test_the_image_serves_as_a_non_root_user_and_stops_cleanly(containers: Containers) -> None:
    """One container on its volume: it prepares the data directory, serves a signed package,
    passes its health check on /readyz, runs as user axis, and on SIGTERM signs a last
    checkpoint and exits 0."""
    port = free_port()
    name = containers.start("-p", f"127.0.0.1:{port}:8080")
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, lambda: containers.alive(name))
    assert containers.exec(name, "id", "-un").strip() == "axis"
    listing = containers.exec(name, "ls", "-ld", "/var/lib/axis").split()
    assert listing[0] == "drwx------" and listing[2] == "axis"
    admin = containers.exec(name, "axis", "token", "issue", "--role", "admin").strip()
    send_and_receive(url, url, register_by_api(url, admin))
    health = subprocess.run(
        [*containers.podman, "healthcheck", "run", name], capture_output=True, check=False
    )
    assert health.returncode == 0, health.stderr
    assert_stopped_cleanly(*containers.stop(name))


def test_two_nodes_on_one_postgresql_share_the_work(containers: Containers) -> None:
    """compose.yaml's setup: init once, then two nodes with the same store and data volume
    (the axis key); a package sent through one node is fetched through the other."""
    from tests.store.conftest import drop_schema, fresh_schema, require_postgres, schema_url

    asyncio.run(require_postgres())
    schema = fresh_schema()
    store = ("-e", f"AXIS_STORE={schema_url(schema)}", "--network", "host")
    try:
        init = containers.once(*store, command=("init",))
        assert "158 agencies added" in init.stderr
        nodes = []
        for _ in range(2):
            port = free_port()
            name = containers.start(*store, "-e", "AXIS_HOST=127.0.0.1", "-e", f"AXIS_PORT={port}")
            nodes.append((name, f"http://127.0.0.1:{port}"))
        for name, url in nodes:
            wait_ready(url, lambda name=name: containers.alive(name))
        (first, url1), (_, url2) = nodes
        admin = containers.exec(first, "axis", "token", "issue", "--role", "admin").strip()
        agencies = register_by_api(url1, admin)
        wait_pinned(url2, admin, agencies)
        send_and_receive(url1, url2, agencies)
        send_and_receive(url2, url1, agencies)
        # the first node to stop signs the head; the second finds it signed already
        assert_stopped_cleanly(*containers.stop(nodes[0][0]))
        assert_stopped_cleanly(*containers.stop(nodes[1][0]), checkpoint=False)
        verdict = json.loads(containers.once(*store, command=("audit", "verify")).stdout)
        assert verdict["ok"] and verdict["checkpoints"] >= 1
    finally:
        asyncio.run(drop_schema(schema))
