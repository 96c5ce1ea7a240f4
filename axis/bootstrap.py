"""Preparing a data directory: the store, the axis signing key, the shipped agencies.

Idempotent by construction: every step first looks at what is there and only adds what is
missing, so ``axis init`` twice changes nothing and ``axis serve`` may always call it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from axis import registry, signing
from axis.config import Settings
from axis.store import open_store
from axis.store.base import InitReport
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


def load_key(settings: Settings) -> signing.AxisKey:
    return signing.AxisKey.load(settings.key_path.read_bytes(), settings.cert_path.read_bytes())


async def initialize(settings: Settings, store: Store | None = None) -> InitResult:
    """Prepare ``settings.data`` (and the store it names) for serving."""
    key_created = ensure_key(settings)
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
