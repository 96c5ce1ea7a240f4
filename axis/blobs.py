"""Large bodies as files, named by their SHA-256: the same bytes are one file however often sent.

A body over ``AXIS_INLINE_MAX`` is kept in ``blobs/ab/abcdef…`` of the data directory (on
PostgreSQL that directory is a node's cache: the engine holds the parts). Files are immutable
once placed, so backups may copy them while the axis runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from axis import ids
from axis.config import Settings
from axis.errors import StoreUnavailable
from axis.model import Body


def place(settings: Settings, spooled: Path, sha256: str) -> Path:
    """Move a spooled body into the content-addressed blob directory, durably.

    Same bytes, same file: a body is stored once however often it is sent.
    """
    folder = settings.blob_dir / sha256[:2]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / sha256
    try:
        # touched, so the retention sweep sees the file in use again and keeps it
        os.utime(target)
    except FileNotFoundError:
        pass
    else:
        spooled.unlink(missing_ok=True)
        return target
    with spooled.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(spooled, target)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return target


def persist(settings: Settings, body: Body) -> Path:
    """Place a received body (spooled or in memory) in the blob directory, durably."""
    try:
        if body.path is not None:
            return place(settings, body.path, body.sha256)
        assert body.data is not None
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = settings.tmp_dir / f"{body.sha256}.{ids.new_id('tmp')}"
        tmp.write_bytes(body.data)
        return place(settings, tmp, body.sha256)
    except OSError as exc:  # the disk is full or the data directory unwritable
        raise StoreUnavailable(f"cannot store the body in {settings.blob_dir}: {exc}") from exc
