"""A plain spatialdata reader run as its own OS process while `zarrtx append` processes grow a table.

    python table_reader_loop.py STORE TABLE BATCH STOP_FILE REPORT_JSON

Loops `spatialdata.read_zarr(STORE)` until STOP_FILE exists. Every read either raises (counted, with the exception
type) or returns a table whose rows are whole appended batches: per region, the instance ids are exactly
0..k*BATCH for some k (each appender appends its region's batches in order), no (region, id) repeats, X row i
equals the row's id (X[i, j] = id * 10 + j), and the region categories and uns region list hold exactly the
regions present. Writes a JSON report with the counts and any violations.
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


def check(store: Path, table: str, batch: int) -> tuple[int, list[str]]:
    sdata = zxutil.read_sdata(store)
    t = sdata.tables[table]
    obs = t.obs
    problems = []
    regions = obs["region"].astype(str).to_numpy()
    ids = obs["instance_id"].to_numpy()
    X = np.asarray(t.X)
    if X.shape[0] != len(obs):
        problems.append(f"X has {X.shape[0]} rows, obs {len(obs)}")
        return len(obs), problems
    if not np.array_equal(X[:, 1], ids * 10 + 1):
        problems.append("an X row does not belong to its obs row")
    present = set(regions)
    uns = set(np.asarray(t.uns["spatialdata_attrs"]["region"]).tolist()) if not isinstance(
        t.uns["spatialdata_attrs"]["region"], str
    ) else {t.uns["spatialdata_attrs"]["region"]}
    if uns != present:
        problems.append(f"uns region {sorted(uns)} != regions present {sorted(present)}")
    for r in present:
        got = np.sort(ids[regions == r])
        k = len(got)
        if k % batch != 0 or not np.array_equal(got, np.arange(k)):
            problems.append(f"region {r}: {k} rows, ids not whole batches 0..{k}")
    return len(obs), problems


def main() -> None:
    store, table, batch, stop, report = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
    zxutil.quiet()
    reads, errors, violations, sizes = 0, {}, [], []
    while True:
        stopping = stop.exists()
        try:
            n, problems = check(store, table, batch)
            reads += 1
            sizes.append(n)
            violations.extend(problems)
        except Exception as e:  # noqa: BLE001 - every failure mode is counted
            key = type(e).__name__
            errors.setdefault(key, []).append(traceback.format_exc(limit=3)[-600:])
        if stopping:
            break
        time.sleep(0.01)
    report.write_text(
        json.dumps(
            {
                "reads": reads,
                "errors": {k: len(v) for k, v in errors.items()},
                "error_examples": {k: v[0] for k, v in errors.items()},
                "violations": violations[:20],
                "sizes": sizes,
            }
        )
    )


if __name__ == "__main__":
    main()
