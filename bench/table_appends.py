"""Table appends: zarrtx next to spatialdata, measured side by side in ONE run (absolute numbers drift between runs
and machines; compare the ratios printed at the end).

(a) scaling: append 1,000 rows to tables of 1k, 100k and 1M rows x 50 float32 vars.
      zarrtx: `zarrtx append` end to end (process start, store open, schema read, input parse, append, commit),
              with fsync (default) and with --no-fsync; median of --repeat runs. The time of the engine's
              Store::append call alone is printed by the command itself and reported as "engine"; the start-up of
              the binary (`zarrtx --version`) is reported separately.
      peer:   shared/peer/peer_append_scaling.py (read, concatenate, delete_element_from_disk, write_element).
(b) concurrency: 16 processes each append 100 rows for their own region to one table of 100 rows (10 float32
    vars): all 1,700 rows must be there.
      zarrtx: 16 concurrent `zarrtx append` processes.
      peer:   shared/peer/peer_spatialdata.py's append scenario (unguarded, and under the file lock), imported and
              run in a subprocess.

    python bench/table_appends.py [--sizes 1000,100000,1000000] [--repeat 5] [--n 16] [--out DIR] [--skip-peers]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _inputs import REPO, find_peer_dir, hr, zarrtx_bin


def rows_frame(region: str, n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"region": pd.Categorical([region] * n), "cell_id": np.arange(start, start + n, dtype=np.int64)})


def write_rows(d: Path, stem: str, region: str, n: int, nvar: int, start: int = 0) -> tuple[Path, Path]:
    obs, x = d / f"{stem}.parquet", d / f"{stem}.npy"
    rows_frame(region, n, start).to_parquet(obs, index=False)
    np.save(x, np.random.default_rng(start + n).normal(size=(n, nvar)).astype(np.float32))
    return obs, x


def run(argv: list, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if check and p.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, argv))} failed ({p.returncode}):\n{p.stderr}")
    return dt, p


ENGINE = re.compile(r"\(([\d.]+) s\)\s*$")
KEYS = ["--region-key", "region", "--instance-key", "cell_id"]


def bench_scaling(zx: str, sizes: list[int], repeat: int, out: Path) -> dict:
    hr("(a) zarrtx: append 1,000 rows to a table of N rows x 50 float32 vars")
    startup = statistics.median(run([zx, "--version"])[0] for _ in range(7))
    print(f"process start-up (`zarrtx --version`, median of 7): {startup * 1000:.1f} ms", flush=True)
    res = {"startup_s": startup, "sizes": {}}
    inputs = out / "scaling_inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    batches = [write_rows(inputs, f"b{k}", f"r{k + 1}", 1000, 50) for k in range(2 * repeat)]
    for n in sizes:
        store = out / f"scale_{n}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        run([zx, "init", store])
        obs, x = write_rows(inputs, f"base_{n}", "r0", n, 50)
        t_add, _ = run([zx, "add-table", store, "t", "--obs", obs, "--x", x, *KEYS])
        obs.unlink()
        x.unlink()
        r = {"add_s": t_add}
        for label, flags, chosen in (("fsync", [], batches[:repeat]), ("no-fsync", ["--no-fsync"], batches[repeat:])):
            walls, engine = [], []
            for o, xx in chosen:
                dt, p = run([zx, *flags, "append", store, "t", "--obs", o, "--x", xx])
                walls.append(dt)
                m = ENGINE.search(p.stdout.strip())
                if m:
                    engine.append(float(m.group(1)))
            r[label] = {"wall_s": statistics.median(walls), "engine_s": statistics.median(engine) if engine else None,
                        "walls": walls}
        _, p = run([zx, "info", store, "--json"])
        info = json.loads(p.stdout)["elements"][0]
        want = n + 2 * repeat * 1000
        r["rows_ok"] = info["n_obs"] == want
        res["sizes"][n] = r
        print(
            f"N={n:>8}: add-table {t_add:6.2f} s | append end-to-end {r['fsync']['wall_s'] * 1000:6.1f} ms "
            f"(engine {r['fsync']['engine_s'] * 1000:5.1f} ms) | --no-fsync {r['no-fsync']['wall_s'] * 1000:6.1f} ms "
            f"(engine {r['no-fsync']['engine_s'] * 1000:5.1f} ms) | rows {info['n_obs']}/{want}",
            flush=True,
        )
        shutil.rmtree(store, ignore_errors=True)
    return res


def peer_scaling(peer: Path, sizes: list[int], out: Path) -> dict:
    hr("(a) peer: shared/peer/peer_append_scaling.py")
    env = dict(os.environ, PEER_DIR=str(out / "peer"))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(peer / "peer_append_scaling.py"), *map(str, sizes)], capture_output=True,
                       text=True, env=env)
    print(p.stdout.strip() or p.stderr[-2000:], flush=True)
    res = {}
    for line in p.stdout.splitlines():
        m = re.search(r"append 1000 rows to\s+(\d+)-row x 50 table: ([\d.]+)s", line)
        if m:
            res[int(m.group(1))] = float(m.group(2))
    print(f"(peer script wall incl. writing its tables: {time.perf_counter() - t0:.1f} s)")
    shutil.rmtree(out / "peer", ignore_errors=True)
    return res


def bench_concurrent(zx: str, n: int, out: Path) -> dict:
    hr(f"(b) zarrtx: {n} processes x 100-row appends for their own regions")
    store = out / "concurrent.zarr"
    shutil.rmtree(store, ignore_errors=True)
    run([zx, "init", store])
    inputs = out / "concurrent_inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    obs, x = write_rows(inputs, "base", "r0", 100, 10)
    run([zx, "add-table", store, "t", "--obs", obs, "--x", x, *KEYS])
    batches = [write_rows(inputs, f"w{i}", f"r{i}", 100, 10) for i in range(1, n + 1)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([zx, "append", str(store), "t", "--obs", str(o), "--x", str(xx)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True) for o, xx in batches]
    errors = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            errors.append(err.strip()[-200:])
    wall = time.perf_counter() - t0
    want = 100 * (n + 1)
    try:
        import warnings

        warnings.simplefilter("ignore")
        import spatialdata as sd

        t = sd.read_zarr(str(store)).tables["t"]
        pairs = set(zip(t.obs["region"].astype(str), t.obs["cell_id"]))
        got = len(pairs) if len(pairs) == t.n_obs else f"{t.n_obs} rows, {len(pairs)} distinct"
    except Exception as e:  # noqa: BLE001
        got = f"unreadable({type(e).__name__})"
    print(f"zarrtx   n={n:3d} survived={got}/{want} errors={len(errors)} wall={wall:.2f}s", flush=True)
    for e in errors[:3]:
        print("  error:", e)
    return {"wall_s": wall, "survived": got, "want": want, "errors": len(errors)}


def peer_concurrent(peer: Path, n: int, out: Path) -> dict:
    hr(f"(b) peer: shared/peer/peer_spatialdata.py appends, n={n}")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import peer_spatialdata as p, os; "
        "os.makedirs(p.ROOT, exist_ok=True); n = int(sys.argv[2]); "
        "[p.run('append', n, locked) for locked in (False, True)]"
    )
    env = dict(os.environ, PEER_DIR=str(out / "peer"))
    p = subprocess.run([sys.executable, "-c", code, str(peer), str(n)], capture_output=True, text=True, env=env)
    print(p.stdout.strip() or p.stderr[-2000:], flush=True)
    res = {}
    for line in p.stdout.splitlines():
        m = re.search(r"append\s+(locked|unlocked)\s+n=\s*\d+ survived=(\S+)/(\d+) errors=(\d+).*wall=([\d.]+)s", line)
        if m:
            res[m.group(1)] = {"survived": m.group(2), "want": int(m.group(3)), "errors": int(m.group(4)),
                               "wall_s": float(m.group(5))}
    shutil.rmtree(out / "peer", ignore_errors=True)
    return res


def summary(a: dict, pa: dict, b: dict, pb: dict, n: int) -> None:
    hr("summary (ratios: peer time / zarrtx time; >1 means zarrtx is faster)")
    print(f"{'append 1,000 rows to':<24}{'zarrtx e2e':>12}{'engine':>10}{'no-fsync':>11}{'spatialdata':>13}{'ratio':>9}")
    for size, r in a["sizes"].items():
        peer = pa.get(size)
        z = r["fsync"]["wall_s"]
        print(f"{f'{size:,}-row table':<24}{z * 1000:>10.1f}ms{r['fsync']['engine_s'] * 1000:>8.1f}ms"
              f"{r['no-fsync']['wall_s'] * 1000:>9.1f}ms{(f'{peer * 1000:.0f}ms' if peer else '-'):>13}"
              f"{(f'{peer / z:.1f}x' if peer else '-'):>9}")
    sizes = sorted(a["sizes"])
    if len(sizes) >= 2:
        lo, hi = a["sizes"][sizes[0]], a["sizes"][sizes[-1]]
        print(f"zarrtx {sizes[-1]:,} vs {sizes[0]:,} rows: end-to-end {hi['fsync']['wall_s'] / lo['fsync']['wall_s']:.2f}x, "
              f"engine {hi['fsync']['engine_s'] / lo['fsync']['engine_s']:.2f}x (goal <= 2x); "
              f"process start-up {a['startup_s'] * 1000:.1f} ms")
        if pa.get(sizes[0]) and pa.get(sizes[-1]):
            print(f"spatialdata {sizes[-1]:,} vs {sizes[0]:,} rows: {pa[sizes[-1]] / pa[sizes[0]]:.1f}x")
        worst = max(r["fsync"]["wall_s"] for r in a["sizes"].values())
        print(f"goal <= 50 ms per append end to end: {'met' if worst <= 0.05 else 'NOT met'} (worst {worst * 1000:.1f} ms)")
    print()
    print(f"{n} processes x 100-row appends (own regions){'':<4}{'rows':>12}{'errors':>8}{'wall':>9}{'rows/s':>9}{'vs zarrtx':>11}")
    rows = [(f"zarrtx ({n} at once)", b)] + [(f"spatialdata {k} (pool of 8)", v) for k, v in pb.items()]
    for label, r in rows:
        appended = (int(r["survived"]) - 100) if str(r["survived"]).isdigit() else 0
        rate = appended / r["wall_s"] if r["wall_s"] else 0
        ratio = r["wall_s"] / b["wall_s"] if b["wall_s"] else 0
        print(f"{label:<48}{str(r['survived']) + '/' + str(r['want']):>12}{r['errors']:>8}{r['wall_s']:>8.2f}s"
              f"{rate:>9.0f}{(f'{ratio:.1f}x' if label.startswith('spatialdata') else ''):>11}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    zx = zarrtx_bin()
    peer = None if args.skip_peers else find_peer_dir("peer_append_scaling.py")
    out = Path(args.out) / "issue3"
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"zarrtx {subprocess.run([zx, '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"{os.cpu_count()} cores; out {out}")
    a = bench_scaling(zx, sizes, args.repeat, out)
    pa = peer_scaling(peer, sizes, out) if peer else {}
    b = bench_concurrent(zx, args.n, out)
    pb = peer_concurrent(peer, args.n, out) if peer else {}
    summary(a, pa, b, pb, args.n)
    if args.json:
        Path(args.json).write_text(json.dumps({"scaling": a, "peer_scaling": pa, "concurrent": b, "peer_concurrent": pb},
                                              indent=1, default=str))


if __name__ == "__main__":
    main()
