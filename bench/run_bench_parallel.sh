#!/usr/bin/env bash
# Issue 5 benchmark: ONE large uint16 image written by many workers — zarrtx (threads; write plans with 1, 2 and 4
# `zarrtx write-part` processes; zarrtx.dask.store on a Dask LocalCluster) next to zarr-python, zarr-python + zarrs,
# tensorstore, spatialdata.write and hdmf-zarr's parallel write, plus the zstd encode-only limit and the sequential
# disk-write bandwidth, side by side in one run, with the issue's goals marked met / NOT MET from the measured numbers.
#
#   bash bench/run_bench_parallel.sh                     # full run: 512 MiB and 2 GiB, zstd level 0 and uncompressed
#   bash bench/run_bench_parallel.sh --sizes 64          # a quick look (64 MiB)
#   bash bench/run_bench_parallel.sh --skip-peers        # zarrtx only
#
# Arguments go to bench/parallel_image.py (see its --help: --sizes, --codecs, --procs, --dask-workers, --out ...).
# Inputs and stores go to --out (default /tmp/zarrtx-bench-parallel; needs about 3.2x the largest size free there, and
# about 8 GiB of memory to make a 2 GiB image). Output: bench-out/issue5-last-run.txt and bench-out/issue5-results.json.
# Needs ../shared/peer (or ZARRTX_PEER_DIR). Takes about half an hour at full size on 2 cores.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${ZARRTX_VENV:-$repo/.venv-py312}"

# GNU time measures each process's own peak memory (apt package "time").
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time; }
bash scripts/setup-python-env.sh --bench
cargo build --release -p zarrtx-cli
# The zarrtx Python package of this tree (editable; the engine built in release mode, a no-op when up to date).
bash scripts/build-python.sh --dev
export ZARRTX_BIN="${ZARRTX_BIN:-$repo/target/release/zarrtx}"
mkdir -p bench-out
"$venv/bin/python" bench/parallel_image.py --json bench-out/issue5-results.json "$@" 2>&1 \
  | tee bench-out/issue5-last-run.txt
