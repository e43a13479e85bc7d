#!/usr/bin/env bash
# Benchmark table appends (issue 3): zarrtx next to shared/peer/peer_append_scaling.py and peer_spatialdata.py's
# append scenario, side by side in one run.
#
#   bash bench/run_bench_tables.sh                            # full run: 1k/100k/1M-row tables, 16 appenders
#   bash bench/run_bench_tables.sh --sizes 1000,100000        # quicker
#   bash bench/run_bench_tables.sh --skip-peers               # zarrtx only
#
# Arguments are passed to bench/table_appends.py (see its --help). Output goes to bench-out/issue3-last-run.txt and
# bench-out/issue3-results.json. Needs ../shared/peer (or ZARRTX_PEER_DIR) and about 2 GiB of free disk.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${ZARRTX_VENV:-$repo/.venv-py312}"

cargo build --release -p zarrtx-cli
bash scripts/setup-python-env.sh --bench
export ZARRTX_BIN="${ZARRTX_BIN:-$repo/target/release/zarrtx}"
mkdir -p bench-out
"$venv/bin/python" bench/table_appends.py --out bench-out --json bench-out/issue3-results.json "$@" 2>&1 \
  | tee bench-out/issue3-last-run.txt
