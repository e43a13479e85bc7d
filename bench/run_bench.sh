#!/usr/bin/env bash
# Benchmark zarrtx against the peer baselines in shared/peer, side by side in one run.
#
#   bash bench/run_bench.sh                 # full run: 16 writers; 512 MiB image
#   bash bench/run_bench.sh --side 4096     # smaller image (32 MiB) for a quick look
#   bash bench/run_bench.sh --skip-peers    # zarrtx only
#
# Arguments are passed to bench/adds_and_big_image.py (see its --help). Results go to bench-out/ (gitignored), with a JSON
# copy in bench-out/results.json. Needs ../shared/peer (or ZARRTX_PEER_DIR) and about 3 GiB of free disk.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${ZARRTX_VENV:-$repo/.venv-py312}"

cargo build --release -p zarrtx-cli
# GNU time measures each writer's own peak memory (apt package "time").
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time; }
bash scripts/setup-python-env.sh --bench
export ZARRTX_BIN="${ZARRTX_BIN:-$repo/target/release/zarrtx}"
mkdir -p bench-out
"$venv/bin/python" bench/adds_and_big_image.py --out bench-out --json bench-out/results.json "$@" 2>&1 | tee bench-out/last-run.txt
