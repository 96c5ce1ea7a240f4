"""axis: the national document interchange axis (Trục liên thông văn bản quốc gia)."""

from __future__ import annotations

__version__ = "0.1.0"
