#!/usr/bin/env bash
# Checks that the CLI build and maturin's build of the Python extension resolve the same features for every
# dependency they share, so the engine is compiled once for both (see crates/workspace-hack). Exit 1 on a difference.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
a="$(mktemp)"; b="$(mktemp)"
cargo tree --workspace --exclude zarrtx-py -f '{p} | {f}' --prefix none -e normal,build --locked 2>/dev/null | sort -u > "$a"
cargo tree -p zarrtx-py --features extension-module -f '{p} | {f}' --prefix none -e normal,build --locked 2>/dev/null | sort -u > "$b"
python3 - "$a" "$b" <<'PY'
import sys
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
a, b = load(sys.argv[1]), load(sys.argv[2])
diff = [(k, sorted(a[k] - b[k]), sorted(b[k] - a[k])) for k in sorted(set(a) & set(b)) if a[k] != b[k]]
for k, only_cli, only_py in diff:
    print(f"feature mismatch: {k}: CLI-only {only_cli}, extension-only {only_py}")
sys.exit(1 if diff else 0)
PY
echo "check-feature-unification: the CLI and the extension share one feature set"
