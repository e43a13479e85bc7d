#!/usr/bin/env bash
# Creates (or reuses) the Python 3.12 environment used by the interoperability tests and the benchmarks.
#
#   scripts/setup-python-env.sh            # .venv-py312 with tests/python/requirements.txt
#   scripts/setup-python-env.sh --bench    # ... plus bench/requirements.txt (peer baselines)
#   scripts/setup-python-env.sh --relock   # re-resolve the direct deps and rewrite tests/python/requirements.txt
#
# Environment:
#   ZARRTX_VENV     where the venv lives (default: <repo>/.venv-py312)
#   ZARRTX_PYTHON   the Python 3.12 interpreter to build it from (default: pyenv's 3.12.x, else python3.12 on PATH)
#
# The venv is reused when it was built from the same interpreter version and the same requirement files
# (a stamp file inside the venv records their sha256); otherwise it is rebuilt from scratch.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ZARRTX_VENV:-$repo/.venv-py312}"
test_req="$repo/tests/python/requirements.txt"
bench_req="$repo/bench/requirements.txt"

bench=0
relock=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --relock) relock=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup-python-env: unknown argument $arg" >&2; exit 2 ;;
  esac
done

find_python() {
  if [[ -n "${ZARRTX_PYTHON:-}" ]]; then echo "$ZARRTX_PYTHON"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local root v
    root="$(pyenv root)"
    # Newest installed 3.12.x.
    v="$(ls -1 "$root/versions" 2>/dev/null | grep -E '^3\.12\.[0-9]+$' | sort -t. -k3,3n | tail -1 || true)"
    if [[ -n "$v" && -x "$root/versions/$v/bin/python3.12" ]]; then
      echo "$root/versions/$v/bin/python3.12"; return
    fi
  fi
  for p in python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return; fi
  done
  echo "setup-python-env: no Python 3.12 found (looked at \$ZARRTX_PYTHON, pyenv versions 3.12.x, python3.12)" >&2
  exit 1
}

py="$(find_python)"
pyver="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
case "$pyver" in 3.12.*) ;; *) echo "setup-python-env: $py is Python $pyver, need 3.12" >&2; exit 1 ;; esac

start=$(date +%s)

if [[ $relock -eq 1 ]]; then
  tmp="$(mktemp -d)"
  "$py" -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install --quiet "spatialdata==0.8.0" pytest pytest-timeout numpy tifffile zarr anndata ome-zarr psutil "hdmf-zarr==0.14.0" pynwb
  {
    echo "# Pinned, full lock of the Python 3.12 interoperability test environment (pip freeze of a clean resolve)."
    echo "# Direct deps: spatialdata==0.8.0 pytest pytest-timeout numpy tifffile zarr anndata ome-zarr psutil hdmf-zarr==0.14.0 pynwb."
    echo "# Regenerate: scripts/setup-python-env.sh --relock"
    "$tmp/venv/bin/pip" freeze
  } > "$test_req"
  rm -rf "$tmp"
  echo "setup-python-env: rewrote $test_req"
fi

# What the venv must have been built from.
want_stamp="python=$pyver
tests=$(sha256sum "$test_req" | cut -d' ' -f1)"
if [[ $bench -eq 1 ]]; then
  want_stamp="$want_stamp
bench=$(sha256sum "$bench_req" | cut -d' ' -f1)"
fi

stamp="$venv/.zarrtx-stamp"
if [[ -x "$venv/bin/python" && -f "$stamp" ]]; then
  have="$(cat "$stamp")"
  # A venv built with --bench also satisfies a request without it.
  if [[ "$have" == "$want_stamp" || ( $bench -eq 0 && "$have" == "$want_stamp"$'\n'bench=* ) ]]; then
    if "$venv/bin/python" -c 'import spatialdata, zarr, pytest' >/dev/null 2>&1; then
      echo "setup-python-env: reusing $venv (Python $pyver, requirements unchanged)"
      exit 0
    fi
  fi
  # A test-only venv that is otherwise current: add the bench requirements on top instead of rebuilding.
  test_stamp="python=$pyver
tests=$(sha256sum "$test_req" | cut -d' ' -f1)"
  if [[ $bench -eq 1 && "$have" == "$test_stamp" ]]; then
    echo "setup-python-env: adding bench requirements to $venv"
    "$venv/bin/pip" install --no-input --progress-bar off --quiet -r "$bench_req"
    printf '%s' "$want_stamp" > "$stamp"
    echo "setup-python-env: done in $(( $(date +%s) - start )) s"
    exit 0
  fi
fi

echo "setup-python-env: building $venv from $py (Python $pyver)"
rm -rf "$venv"
"$py" -m venv "$venv"
pip_install() {
  # Retry once: a transient registry hiccup should not fail a CI run.
  "$venv/bin/pip" install --no-input --progress-bar off "$@" || {
    echo "setup-python-env: pip failed, retrying once" >&2
    sleep 5
    "$venv/bin/pip" install --no-input --progress-bar off "$@"
  }
}
pip_install --quiet -r "$test_req"
if [[ $bench -eq 1 ]]; then
  pip_install --quiet -r "$bench_req"
fi
"$venv/bin/python" -c 'import spatialdata, zarr, anndata, ome_zarr, pytest, tifffile; from importlib.metadata import version as v; print("setup-python-env: spatialdata", v("spatialdata"), "zarr", v("zarr"), "anndata", v("anndata"))'
printf '%s' "$want_stamp" > "$stamp"
echo "setup-python-env: done in $(( $(date +%s) - start )) s"
