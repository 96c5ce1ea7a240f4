"""Data directories for tests, holding the session's axis key (RSA-3072 is slow to make)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from axis.config import Settings, build_settings


def keyed_settings(
    data: Path,
    key_pair: tuple[bytes, bytes],
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Settings for the new directory ``data`` with the axis key in place, from ``env`` only."""
    data.mkdir(parents=True)
    (data / "axis-key.pem").write_bytes(key_pair[0])
    (data / "axis.pem").write_bytes(key_pair[1])
    return build_settings({"data": data, **flags}, env=dict(env or {}))
