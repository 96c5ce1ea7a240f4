# Sourced by bin/axis, bin/test and bin/bench: make .venv on first use, refresh it when
# pyproject.toml changes. pip's chatter goes to .venv/pip.log; it is shown only on failure.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)-${AXIS_VENV_EXTRAS:-base}"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.axis-stamp" 2>/dev/null)" != "$want" ]; then
    echo "axis: preparing $venv (first use or pyproject.toml changed)..." >&2
    python3 -m venv "$venv" >&2
    spec="$root"
    [ -n "${AXIS_VENV_EXTRAS:-}" ] && spec="$root[${AXIS_VENV_EXTRAS}]"
    if ! { "$venv/bin/python" -m pip install --upgrade pip \
            && "$venv/bin/python" -m pip install -e "$spec"; } >"$venv/pip.log" 2>&1 \
        || ! "$venv/bin/python" -c "import axis, aiohttp, lxml, xmlsec, uvloop" 2>>"$venv/pip.log"; then
        tail -n 40 "$venv/pip.log" >&2
        echo "axis: installing dependencies failed (full log: $venv/pip.log)" >&2
        exit 1
    fi
    echo "$want" > "$venv/.axis-stamp"
fi
