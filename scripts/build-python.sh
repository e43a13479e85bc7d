#!/usr/bin/env bash
# Builds the zarrtx Python package (the engine as zarrtx._core, abi3 wheel for CPython >= 3.10) with maturin,
# in release mode and in the workspace's shared target directory, then installs it into the Python 3.12 venv.
#
#   bash scripts/build-python.sh          # build target/wheels/zarrtx-*.whl and install it into .venv-py312
#   bash scripts/build-python.sh --dev    # editable install instead (maturin develop): python/zarrtx/*.py edits
#                                         # take effect without rebuilding; rerun after Rust changes
#
# Environment: ZARRTX_VENV (default .venv-py312; must exist: scripts/setup-python-env.sh creates it with maturin).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${ZARRTX_VENV:-$repo/.venv-py312}"
if [[ "${1:-}" == "--dev" ]]; then
  VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --release --locked --quiet 2>&1 \
    | grep -v "^📦\|^🔗\|^🐍\|^🛠" || true
  "$venv/bin/python" -c "import zarrtx._core" || { echo "build-python: editable install failed" >&2; exit 1; }
  echo "build-python: editable install of python/zarrtx into $venv"
  exit 0
fi
rm -f target/wheels/zarrtx-*.whl
"$venv/bin/maturin" build --release --locked --interpreter "$venv/bin/python" --out target/wheels --compatibility linux --quiet 2>&1 | grep -v "^📦\|^🔗\|^🐍" || true
wheel="$(ls -1 target/wheels/zarrtx-*.whl 2>/dev/null | head -1)"
if [[ -z "$wheel" ]]; then
  echo "build-python: maturin produced no wheel" >&2
  exit 1
fi
"$venv/bin/pip" install --no-input --quiet --force-reinstall --no-deps "$wheel"
echo "build-python: installed $(basename "$wheel") into $venv"
