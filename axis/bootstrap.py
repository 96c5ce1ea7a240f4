"""Preparing a data directory: the store, the axis signing key, the shipped agencies.

Idempotent by construction: every step first looks at what is there and only adds what is
missing, so ``axis init`` twice changes nothing and ``axis serve`` may always call it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from axis import registry, secretbox, signing, timeutil
from axis.config import Settings
from axis.model import InitReport
from axis.store import open_store
from axis.store.protocol import Store


@dataclass(frozen=True, slots=True)
class InitResult:
    key_created: bool
    store: InitReport


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def ensure_key(settings: Settings) -> bool:
    """Create the axis signing key and certificate unless both exist; True when created."""
    settings.data.mkdir(parents=True, exist_ok=True)
    if settings.key_path.exists() and settings.cert_path.exists():
        return False
    key_pem, cert_pem = signing.generate_axis_key("axis")
    settings.key_path.unlink(missing_ok=True)
    settings.cert_path.unlink(missing_ok=True)
    _write_private(settings.key_path, key_pem)
    _write_private(settings.cert_path, cert_pem)
    settings.cert_path.chmod(0o644)
    return True


def secret_box(settings: Settings) -> secretbox.SecretBox:
    """The key connected systems' secrets are sealed under, made on first use (0600).

    Every node of a PostgreSQL deployment must hold the same file, as it holds the same axis
    key: a secret sealed on one node opens only under its key.
    """
    settings.data.mkdir(parents=True, exist_ok=True)
    box, _ = secretbox.SecretBox.load_or_create(settings.systems_key_path)
    return box


def load_key(settings: Settings) -> signing.AxisKey:
    return signing.AxisKey.load(settings.key_path.read_bytes(), settings.cert_path.read_bytes())


def previous_certificates(settings: Settings) -> list[bytes]:
    """PEM certificates of the axis's earlier keys, oldest first (their names start by date)."""
    folder = settings.previous_certs_dir
    if not folder.is_dir():
        return []
    return [path.read_bytes() for path in sorted(folder.glob("*.pem"))]


@dataclass(frozen=True, slots=True)
class KeyChange:
    previous_sha256: str
    sha256: str
    kept_as: Path  # where the previous certificate now lives


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` all or nothing: a temporary file, fsync'd, then renamed."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    _write_private(tmp, data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def replace_key(
    settings: Settings, key_pem: bytes | None = None, cert_pem: bytes | None = None
) -> KeyChange:
    """Give the axis a new signing key: generated, or the pair given (a CA-issued one).

    The old certificate moves to ``axis-previous/`` so that receipts and audit checkpoints
    signed before still verify; the old private key is deleted (nothing may sign with it
    again). Raises ``ValueError`` naming what is wrong with a given pair, changing nothing.
    """
    if key_pem is None or cert_pem is None:
        key_pem, cert_pem = signing.generate_axis_key("axis")
    signing.AxisKey.load(key_pem, cert_pem)  # the pair matches and the key is strong enough
    old_pem = settings.cert_path.read_bytes()
    previous, new = (registry.Certificate.from_pem(pem).sha256 for pem in (old_pem, cert_pem))
    if previous == new:
        raise ValueError("that certificate is the axis's current one")
    folder = settings.previous_certs_dir
    folder.mkdir(exist_ok=True)
    kept = folder / f"{timeutil.now():%Y%m%dT%H%M%SZ}-{previous[:16]}.pem"
    _replace_file(kept, old_pem, 0o644)
    _replace_file(settings.key_path, key_pem, 0o600)
    _replace_file(settings.cert_path, cert_pem, 0o644)
    fd = os.open(settings.data, os.O_RDONLY)
    try:
        os.fsync(fd)  # the renames themselves are durable
    finally:
        os.close(fd)
    return KeyChange(previous, new, kept)


def restrict_data_dir(settings: Settings) -> None:
    """Only the axis's own user may enter the data directory: it holds every document body,
    the token hashes and the agencies' push secrets (files in it may be 0644 by umask)."""
    settings.data.mkdir(parents=True, exist_ok=True)
    if settings.data.stat().st_uid == os.getuid():
        settings.data.chmod(0o700)


async def initialize(settings: Settings, store: Store | None = None) -> InitResult:
    """Prepare ``settings.data`` (and the store it names) for serving."""
    restrict_data_dir(settings)
    key_created = ensure_key(settings)
    secret_box(settings)
    shipped = registry.load_file(settings.shipped_agencies)
    own = store is None
    store = store or open_store(settings)
    if own:
        await store.open()
    try:
        report = await store.initialize(shipped)
    finally:
        if own:
            await store.close()
    return InitResult(key_created, report)
