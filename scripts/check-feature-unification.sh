#!/usr/bin/env bash
# Checks that every build the README and scripts/test-all.sh run resolves the same features for every dependency
# they share, so the engine and its dependencies (arrow, parquet, zarrs, ...) are compiled once for all of them
# (see crates/workspace-hack). Exit 1 on a difference. The builds:
#
#   cli        cargo run --release -p zarrtx-cli -- demo                      (the README's first command)
#   workspace  cargo build --release --workspace --exclude zarrtx-py          (test-all: the release build)
#   tests      cargo nextest run --release --workspace --exclude zarrtx-py    (test-all: + dev-dependencies)
#   extension  maturin build --release (-p zarrtx-py --features extension-module)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
tree() { cargo tree -f '{p} | {f}' --prefix none --locked "$@" 2>/dev/null | sort -u; }
tree -p zarrtx-cli -e normal,build > "$dir/cli"
tree --workspace --exclude zarrtx-py -e normal,build > "$dir/workspace"
tree --workspace --exclude zarrtx-py -e normal,build,dev > "$dir/tests"
tree -p zarrtx-py --features extension-module -e normal,build > "$dir/extension"
python3 - "$dir" <<'PY'
import itertools, os, sys
def load(p):
    d = {}
    for line in open(p):
        if " | " not in line:
            continue
        pkg, feats = line.rstrip("\n").split(" | ", 1)
        pkg = pkg.replace(" (*)", "").strip()
        feats = {f.replace("(*)", "").strip() for f in feats.split(",")}
        d.setdefault(pkg, set()).update(f for f in feats if f)
    return d
builds = {name: load(os.path.join(sys.argv[1], name)) for name in ("cli", "workspace", "tests", "extension")}
if any(not b for b in builds.values()):
    sys.exit("check-feature-unification: cargo tree printed nothing (is the lock file current?)")
bad = 0
for (na, a), (nb, b) in itertools.combinations(builds.items(), 2):
    for k in sorted(set(a) & set(b)):
        if a[k] != b[k]:
            bad += 1
            print(f"feature mismatch: {k}: {na}-only {sorted(a[k] - b[k])}, {nb}-only {sorted(b[k] - a[k])}")
sys.exit(1 if bad else 0)
PY
echo "check-feature-unification: the CLI, workspace, test and extension builds share one feature set"
