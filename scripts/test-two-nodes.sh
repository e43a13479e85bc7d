#!/usr/bin/env bash
# The protocol on two "cluster nodes" whose locks are not shared: a real NFSv3 export (nfs-ganesha on 127.0.0.1)
# mounted twice through FUSE (tools/nfs-node), each mount with its own caches and its own, node-local, lock table
# (scripts/nfs-rig.sh). Writers and readers of the concurrency, table-append, write-plan, crash and reader suites are
# split across both mounts (tests/common::Place), and spatialdata reads on one node while the other writes
# (tests/python/test_two_nodes.py).
#
#   bash scripts/test-two-nodes.sh            # starts the rig, runs the suites, stops the rig
#
# Called by scripts/test-all.sh. The rig must start: when it cannot, this fails (it never skips).
# Environment: ZARRTX_VENV (the Python 3.12 venv, default .venv-py312), ZARRTX_RIG_DIR (where the rig lives).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${ZARRTX_VENV:-$repo/.venv-py312}"
rig="${ZARRTX_RIG_DIR:-$(mktemp -d /tmp/zarrtx-rig.XXXXXX)}"

stop_rig() { bash "$repo/scripts/nfs-rig.sh" stop "$rig" || true; }
trap stop_rig EXIT

echo "test-two-nodes: starting the NFS rig in $rig"
lines="$(bash "$repo/scripts/nfs-rig.sh" start "$rig")"
eval "$(printf '%s\n' "$lines" | grep -E '^ZARRTX_NFS_NODE_[AB]=' | sed 's/^/export /')"
[[ -n "${ZARRTX_NFS_NODE_A:-}" && -n "${ZARRTX_NFS_NODE_B:-}" ]] || { echo "test-two-nodes: the rig gave no node paths" >&2; exit 1; }
echo "test-two-nodes: node A at $ZARRTX_NFS_NODE_A, node B at $ZARRTX_NFS_NODE_B"

# The engine's suites with processes and threads on both nodes.
cargo nextest run --release --locked -p zarrtx --no-fail-fast \
  -E 'binary(concurrency) | binary(tables) | binary(write_plan) | binary(crash) | binary(readers)'

# spatialdata on one node while the other writes; the user's 16-process scenario.
ZARRTX_BIN="$repo/target/release/zarrtx" "$venv/bin/python" -m pytest tests/python/test_two_nodes.py -q
echo "test-two-nodes: all passed"
