"""The Store protocol, in part:

Registry administration: search, history, certificates, token bookkeeping (issue 5).
"""

from __future__ import annotations

from typing import Protocol


class AdminStore(Protocol):
    """Registry administration: search, history, certificates, token bookkeeping (issue 5)."""
