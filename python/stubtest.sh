#!/usr/bin/env bash
# Checks the stubs (safeweights/*.pyi) against the installed package with
# `mypy.stubtest`. Run from anywhere, after `maturin develop`:
#
#     python/stubtest.sh            # uses $VIRTUAL_ENV, else ./.venv of the repository
#     PYTHON=/path/to/python python/stubtest.sh
#
# Installs mypy into that environment when it is missing. Settings and the
# names it cannot check (with the reason for each) are in python/stubtest/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -n "${VIRTUAL_ENV:-}" ]]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
    else
        PYTHON="$here/../.venv/bin/python"
    fi
fi

if ! "$PYTHON" -c "import mypy.stubtest" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet mypy
fi

# From python/, so that `safeweights` is the package with its stubs beside it.
cd "$here"
exec "$PYTHON" -m mypy.stubtest safeweights \
    --mypy-config-file stubtest/mypy.ini \
    --allowlist stubtest/allowlist.txt
