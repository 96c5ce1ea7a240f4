"""Driving an axis installed outside the checkout (a wheel in a fresh venv, a container) as an
operator and two agencies would: plain HTTP, signed packages from ``tests/support``."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import packets, pki, signers

ROOT = Path(__file__).resolve().parents[2]
G22 = "000.00.00.G22"
H41 = "000.00.00.H41"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    method: str,
    url: str,
    token: str | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, bytes]:
    """One request; the status and the body, whatever the status."""
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, alive: Callable[[], str | None], timeout: float = 60) -> None:
    """Until ``GET /readyz`` is 200; ``alive`` returns why the server is gone, if it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gone = alive()
        assert gone is None, f"the axis stopped before it was ready: {gone}"
        try:
            if http("GET", f"{url}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url}/readyz not 200 within {timeout} s")


@dataclass
class Agencies:
    """G22 with a pinned test certificate and a token, and H41 with a token."""

    ident: pki.Identity
    g22_token: str
    h41_token: str


def register_by_api(url: str, admin: str) -> Agencies:
    """Pin G22's certificate and issue both agencies' tokens through the admin API."""
    ident = pki.identity("rsa2048", common_name=f"{G22} signer")
    status, body = http(
        "POST",
        f"{url}/v1/admin/agencies/{G22}/certificates",
        admin,
        ident.cert_pem,
        "application/x-pem-file",
    )
    assert status in (200, 201), body
    out = []
    for organ_id in (G22, H41):
        status, body = http("POST", f"{url}/v1/admin/agencies/{organ_id}/tokens", admin)
        assert status == 201, body
        out.append(json.loads(body)["token"])
    return Agencies(ident, out[0], out[1])


def wait_pinned(url: str, admin: str, agencies: Agencies, timeout: float = 20) -> None:
    """Until the axis at ``url`` sees G22's pin: another node sees a registry change within
    half a second, a loaded machine may take longer."""
    want = hashlib.sha256(agencies.ident.cert_der).hexdigest()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http("GET", f"{url}/v1/admin/agencies/{G22}", admin)
        assert status == 200, body
        if want in [c["sha256"] for c in json.loads(body)["certificates"]]:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} does not see the pin for {G22} within {timeout} s")


def send_and_receive(send_url: str, receive_url: str, agencies: Agencies) -> str:
    """G22 sends a signed package through one axis; H41 finds and fetches it through another
    (or the same); both see the exact bytes. Returns the message id."""
    xml = packets.edoc_xml(G22, [H41], document_id=f"{G22},2026/12/04,{time.time_ns()}/TEST")
    signed = signers.sign(xml, agencies.ident.key_pem, agencies.ident.cert_pem)
    status, body = http(
        "POST", f"{send_url}/v1/edocs", agencies.g22_token, signed, "application/xml"
    )
    assert status == 201, body
    message_id: str = json.loads(body)["id"]
    status, body = http("GET", f"{receive_url}/v1/inbox", agencies.h41_token)
    assert status == 200, body
    assert message_id in [item["id"] for item in json.loads(body)["items"]]
    status, body = http("GET", f"{receive_url}/v1/inbox/{message_id}", agencies.h41_token)
    assert status == 200 and body == signed
    status, body = http(
        "POST",
        f"{receive_url}/v1/inbox/{message_id}/ack",
        agencies.h41_token,
        b'{"result": "done"}',
        "application/json",
    )
    assert status == 200, body
    status, body = http("GET", f"{send_url}/v1/messages/{message_id}/receipt", agencies.g22_token)
    assert status == 200 and b"SignatureValue" in body
    return message_id


def log_events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of an axis's stderr."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def assert_stopped_cleanly(status: int | None, stderr: str, *, checkpoint: bool = True) -> None:
    """SIGTERM ended the server with status 0 after it signed a last audit checkpoint (unless
    another node had signed the same head already: ``checkpoint=False``)."""
    assert status == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    if checkpoint:
        events = [e["event"] for e in log_events(stderr)]
        assert "audit_checkpoint" in events, stderr[-2000:]


def dockerfile_runtime() -> dict[str, Any]:
    """What the Dockerfile's last stage sets: ENV, USER, VOLUME, ENTRYPOINT + CMD, HEALTHCHECK.

    The venv test runs the installed axis as the image does, from these, so the two cannot
    drift apart unseen.
    """
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    last = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]
    env: dict[str, str] = {}
    out: dict[str, Any] = {"env": env}
    for line in last.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", rest):
                env[name] = value
        elif word in ("ENTRYPOINT", "CMD", "VOLUME"):
            out[word] = json.loads(rest)
        elif word == "USER":
            out[word] = rest.strip()
        elif word == "HEALTHCHECK":
            out[word] = rest.split(" CMD ", 1)[1].strip()
    return out


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """A command that must succeed; its output as text."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done
