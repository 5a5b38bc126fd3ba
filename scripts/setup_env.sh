#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and print its path.
#
# The environment lives OUTSIDE the checkout (default ~/.cache/simclr-workbook/venv) so that a fresh
# clone -- CI clones afresh every run -- reuses it. A stamp file holds a hash of pyproject.toml and the
# Python version; only when that changes does pip run again (incrementally, from pip's wheel cache).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SIMCLR_VENV:-$HOME/.cache/simclr-workbook/venv}"
py="${PYTHON:-python3}"

key="$( { cat "$here/pyproject.toml"; "$py" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)"
stamp="$venv/.simclr-deps-$key"

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment in $venv" >&2
    "$py" -m venv "$venv" >&2
fi
if [ ! -f "$stamp" ]; then
    echo "[setup] installing dependencies (first run: torch + torchvision, several GB, a few minutes)" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -e "$here[dev]" >&2
    rm -f "$venv"/.simclr-deps-* && touch "$stamp"
fi
# The venv is shared between checkouts: point the editable install at THIS checkout when it points elsewhere.
# (asked from / : run from a checkout, `python -c` would find that checkout's simclr_core through the cwd)
where="$(cd / && "$venv/bin/python" -c 'import simclr_core, os; print(os.path.dirname(os.path.dirname(os.path.abspath(simclr_core.__file__))))' 2>/dev/null || true)"
if [ "$where" != "$here" ]; then
    echo "[setup] pointing the editable install at $here" >&2
    "$venv/bin/python" -m pip install --quiet --no-deps -e "$here" >&2
fi
echo "$venv"
