# Sourced by bin/axis and bin/test: make .venv on first use, refresh it when pyproject.toml changes.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)-${AXIS_VENV_EXTRAS:-base}"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.axis-stamp" 2>/dev/null)" != "$want" ]; then
    echo "axis: preparing $venv (first use or pyproject.toml changed)..." >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2 2>&1 | grep -v '^WARNING: Location' >&2 || true
    spec="$root"
    [ -n "${AXIS_VENV_EXTRAS:-}" ] && spec="$root[${AXIS_VENV_EXTRAS}]"
    if ! "$venv/bin/python" -m pip install -q -e "$spec" 2>&1 | grep -v '^WARNING: Location' >&2; then :; fi
    "$venv/bin/python" -c "import axis, aiohttp, lxml, xmlsec" || { echo "axis: installing dependencies failed" >&2; exit 1; }
    echo "$want" > "$venv/.axis-stamp"
fi
