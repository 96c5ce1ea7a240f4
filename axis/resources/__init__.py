"""What the axis reads besides its code: the edXML schemas, the seed agencies, its API.

The files are the repository's own ``schemas/``, ``agencies.yaml`` and ``openapi.yaml``, kept
at its root; this folder links to them, so there is one copy of each. An editable install
reads them through the links, and a wheel or sdist carries the files themselves (setuptools
copies what a link points to). Code finds them here, never relative to a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def path(name: str) -> Path:
    """The shipped file or folder ``name``, as a path (lxml loads a schema's imports beside it)."""
    found = files(__name__).joinpath(name)
    if not isinstance(found, Path):
        raise RuntimeError(f"axis: {name} must be a file on disk (install the axis unzipped)")
    return found
