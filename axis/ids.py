"""Identifiers the axis makes: opaque, unguessable, roughly time-ordered (easy to read in logs)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # every 10-bit value as two digits


def _b32(value: int, length: int) -> str:
    """``value`` as ``length`` base32 digits, most significant first (value < 32**length).

    Two digits a step (a table of 1,024): ids are made by the hundred per fan-out package.
    """
    pairs = (length + 1) // 2
    text = "".join([_PAIRS[(value >> (10 * i)) & 1023] for i in range(pairs - 1, -1, -1)])
    return text[len(text) - length :]


class _Entropy:
    """Random bytes from the OS, fetched 4 KiB at a time: one syscall per ~400 identifiers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""

    def take(self, n: int) -> bytes:
        with self._lock:
            if len(self._pool) < n:
                self._pool = os.urandom(4096)
            out, self._pool = self._pool[:n], self._pool[n:]
            return out


_entropy = _Entropy()


def new_id(prefix: str) -> str:
    """``prefix`` + 48 bits of milliseconds + 80 random bits (26 base32 characters)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_entropy.take(10), "big")
    return f"{prefix}_{_b32(ms << 80 | rand, 26)}"
