"""Bearer tokens: random, shown once, stored only as a hash.

Tokens carry 256 random bits, so a single SHA-256 (no slow KDF) is the right hash: nobody can
guess one, and looking one up must cost microseconds on every request.
"""

from __future__ import annotations

import hashlib
import secrets

from axis.ids import new_id

PREFIX = "axs_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate() -> tuple[str, str, str]:
    """A fresh ``(token_id, token, token_hash)``."""
    token = PREFIX + secrets.token_urlsafe(32)
    return new_id("tok"), token, hash_token(token)
