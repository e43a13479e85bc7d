"""A plain spatialdata reader run as its own OS process while zarrtx writers work on the same store.

    python reader_loop.py STORE STOP_FILE REPORT_JSON [--min-iterations N]

Loops `spatialdata.read_zarr(STORE)` until STOP_FILE exists (and at least N iterations ran). In every iteration,
every element spatialdata lists must be fully readable and equal to what its writer wrote (recomputed from the
element's name, see zxutil.expected_for_name). Writes a JSON report: iterations, errors (with tracebacks), the
largest number of elements seen, and the sequence of element counts (which must never go backwards: a listed
element never disappears while only adds are running).
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import zxutil  # noqa: E402


def check_once(store: Path) -> tuple[int, list[str]]:
    problems = []
    sdata = zxutil.read_sdata(store)
    names = zxutil.all_names(sdata)
    for name in sorted(names):
        want = zxutil.expected_for_name(name)
        kind = zxutil.element_kind(sdata, name)
        if kind not in ("images", "labels"):
            continue
        got = zxutil.element_array(sdata[name])  # forces every chunk to be read and decoded
        if want is None:
            continue
        if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
            problems.append(f"{name}: data differs from what its writer wrote (shape {got.shape}, dtype {got.dtype})")
    return len(names), problems


def main() -> int:
    store, stop, report = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    min_iter = 3
    if "--min-iterations" in sys.argv:
        min_iter = int(sys.argv[sys.argv.index("--min-iterations") + 1])
    zxutil.quiet()
    iterations, errors, counts = 0, [], []
    t0 = time.time()
    while True:
        done = stop.exists()
        try:
            n, problems = check_once(store)
            counts.append(n)
            errors.extend(f"iteration {iterations}: {p}" for p in problems)
        except Exception:
            errors.append(f"iteration {iterations}: " + traceback.format_exc(limit=8))
        iterations += 1
        # Progress for the test: how many reads completed that saw at least one element.
        progress = Path(str(stop) + ".progress")
        tmp = Path(str(stop) + ".progress.tmp")
        tmp.write_text(str(sum(1 for c in counts if c > 0)))
        tmp.replace(progress)
        if iterations == 1:
            Path(str(stop) + ".ready").touch()  # tells the test that imports are done and one read happened
        if done and iterations >= min_iter:
            break
        if time.time() - t0 > 900:
            errors.append("reader loop ran for 900 s without being stopped")
            break
    report.write_text(json.dumps({"iterations": iterations, "errors": errors[:50], "n_errors": len(errors),
                                  "counts": counts, "max_elements": max(counts or [0])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
