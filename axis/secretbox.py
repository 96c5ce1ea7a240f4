"""Connected systems' secrets, encrypted at rest under a key file in the data directory.

The axis must keep each system's secret to check its HMACs, so it cannot store a hash as it
does for tokens. A sealed secret in the store is useless without the key file: a database dump
or backup alone does not reveal any secret. Every PostgreSQL node uses the same key file (copy
it with the axis key); a node with another key cannot open the secrets and says so.

The scheme is AES-256-GCM with a random 96-bit nonce (``cryptography``'s ``AESGCM``). It is
chosen over Fernet (AES-128-CBC with HMAC-SHA256) because it takes associated data: each secret
is sealed bound to its system's id, so a sealed value copied onto another system's row does not
open. Sealed text is ``v1.`` then base64url of nonce, ciphertext and tag: the prefix lets the
scheme change later without guessing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_FILE_NAME", "SecretBox", "SecretBoxError", "new_secret"]

KEY_FILE_NAME = "systems.key"
"""The key file's name in the data directory."""

_MAGIC = "axis-secretbox-v1:"
_KEY_LINE = re.compile(re.escape(_MAGIC) + r"([A-Za-z0-9+/]{43}=)\n?")
_VERSION = "v1."
_NONCE = 12
_AAD = b"axis connected-system secret\x00"
_MAX_SEALED = 1024  # a secret is 44 characters; anything much longer is not ours


class SecretBoxError(ValueError):
    """A key file or a sealed secret that cannot be used; the message says which and why."""


def new_secret() -> str:
    """A new system secret as VDXP.md makes them: 32 random bytes, base64 (44 characters)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class SecretBox:
    """Seals and opens secrets under one 32-byte key."""

    __slots__ = ("_aead", "fingerprint")

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SecretBoxError(f"a secrets key is 32 bytes, not {len(key)}")
        self._aead = AESGCM(key)
        # names the key in logs and errors without revealing it: nodes can compare theirs
        self.fingerprint = hashlib.sha256(b"axis-secretbox\x00" + key).hexdigest()[:16]

    @classmethod
    def load(cls, path: Path) -> SecretBox:
        """The key in ``path``; raises :class:`SecretBoxError` naming the path when the file is
        missing, unreadable or not a key file (never replaces it: that would lose every
        secret sealed under it)."""
        try:
            text = path.read_text("ascii")
        except FileNotFoundError:
            raise SecretBoxError(f"{path}: missing; restore the secrets key file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretBoxError(f"{path}: cannot read the secrets key file: {exc}") from None
        m = _KEY_LINE.fullmatch(text)
        if m is None:
            raise SecretBoxError(
                f"{path}: not an axis secrets key file (one line '{_MAGIC}' followed by 44"
                " base64 characters); restore it from a backup or from another node, or move it"
                " away to make a new one (secrets sealed under the old key are then lost)"
            )
        try:
            key = base64.b64decode(m.group(1), validate=True)
        except binascii.Error as exc:  # pragma: no cover (the pattern admits only base64)
            raise SecretBoxError(f"{path}: malformed secrets key: {exc}") from None
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[SecretBox, bool]:
        """The key in ``path``, made first if there is none; ``(box, created)``.

        Creation is atomic: the key is written to a private temporary file, synced, then linked
        into place, which fails if another process got there first (its key is loaded
        instead). No reader ever sees a partly written key file. The file is 0600.
        """
        if path.exists():
            return cls.load(path), False
        key = secrets.token_bytes(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(f"{_MAGIC}{base64.b64encode(key).decode('ascii')}\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return cls.load(path), False
        finally:
            tmp.unlink(missing_ok=True)
        _sync_dir(path.parent)
        return cls(key), True

    def seal(self, secret: str, context: str) -> str:
        """``secret`` encrypted, bound to ``context`` (the system id), as storable text."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), _AAD + context.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def open(self, sealed: str, context: str) -> str:
        """The secret sealed in ``sealed`` for ``context``; raises :class:`SecretBoxError` when
        it is not ours (another key file, another system's row, altered text)."""
        if not sealed.startswith(_VERSION) or len(sealed) > _MAX_SEALED:
            raise SecretBoxError("sealed secret: not in the v1 form")
        body = sealed[len(_VERSION) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise SecretBoxError("sealed secret: not base64url") from None
        if len(raw) < _NONCE + 16:
            raise SecretBoxError("sealed secret: too short")
        try:
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD + context.encode())
        except InvalidTag:
            raise SecretBoxError(
                f"sealed secret of {context!r} does not open under secrets key {self.fingerprint}:"
                " this node's key file differs from the one that sealed it, or the row was"
                " altered"
            ) from None
        return plain.decode("utf-8")


def _sync_dir(folder: Path) -> None:
    """Make the new directory entry durable (a crash must not lose a key already in use)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)
