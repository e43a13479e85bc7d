"""zarrtx next to what users have today, measured side by side in ONE run (absolute numbers drift between runs and
machines; the ratios printed at the end are what to compare).

(a) adds: N OS processes each add one 128x128 int32 labels element to one store.
      zarrtx: N concurrent `zarrtx add-labels` processes.
      peers:  shared/peer/peer_spatialdata.py N (spatialdata's incremental IO, unguarded and under the file lock
              from the seed), run as a subprocess; its output lines are parsed.
(b) one big image: a 16384x16384 uint16 image (512 MiB), zstd level 0, 1024x1024 chunks.
      zarrtx: `zarrtx add-image` from a .npy (held in /dev/shm), in memory and streamed; peak RSS by GNU time.
      peers:  shared/peer/peer_array_write.py SIDE (zarr-python, zarr-python + zarrs pipeline, tensorstore,
              spatialdata.write), run as a subprocess.
      limit:  zstd level 0 encoding alone of the same 1024x1024 chunks on all cores (python-zstandard in a thread
              pool; it releases the GIL), no I/O.

    python bench/adds_and_big_image.py [--n 16] [--side 16384] [--out bench-out] [--skip-adds] [--skip-image]
                                 [--skip-peers] [--json results.json]

Needs the release binary (ZARRTX_BIN or target/release/zarrtx) and the venv from
`scripts/setup-python-env.sh --bench`. `bench/run_bench.sh` does all of that.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from _inputs import REPO, bench_encode_limit, find_peer_dir, hr, make_image, zarrtx_bin


def fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


def run_timed_with_rss(argv: list[str], **kw) -> tuple[int, float, int, str, str]:
    """Run argv; return (exit code, wall seconds, peak RSS bytes of that process, stdout, stderr).

    The peak is measured by GNU time around the command: wait4() on a child forked directly from this (large)
    Python process would report the parent's resident pages inherited at fork, not the command's own peak."""
    timer = shutil.which("time") or "/usr/bin/time"
    rss_file = tempfile.NamedTemporaryFile("r", suffix=".rss", delete=False)
    rss_file.close()
    wrapped = [timer, "-f", "%M", "-o", rss_file.name, *argv] if os.path.exists(timer) else argv
    out_f, err_f = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    t0 = time.perf_counter()
    p = subprocess.Popen(wrapped, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0)
    err_f.seek(0)
    peak = ru.ru_maxrss * 1024
    try:
        with open(rss_file.name) as f:
            peak = int(f.read().split()[-1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    finally:
        os.unlink(rss_file.name)
    return p.returncode, dt, peak, out_f.read(), err_f.read()


# ----------------------------------------------------------------------------------------------------------------
# (a) concurrent adds
# ----------------------------------------------------------------------------------------------------------------


def labels_for(i: int) -> np.ndarray:
    return np.full((128, 128), i, dtype=np.int32) + np.arange(128 * 128, dtype=np.int32).reshape(128, 128) % 7


def bench_zarrtx_adds(zx: str, n: int, out: Path) -> dict:
    store = out / "adds_zarrtx.zarr"
    shutil.rmtree(store, ignore_errors=True)
    inputs = out / "adds_inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    srcs = []
    for i in range(n):
        p = inputs / f"labels{i}.npy"
        np.save(p, labels_for(i))
        srcs.append(p)
    subprocess.run([zx, "init", str(store)], check=True, capture_output=True)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([zx, "add-labels", str(store), f"labels{i}", str(srcs[i]), "--dims", "yx"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for i in range(n)]
    errs = []
    for p in procs:
        _, se = p.communicate()
        if p.returncode != 0:
            errs.append(se.strip().splitlines()[-1] if se.strip() else f"exit {p.returncode}")
    wall = time.perf_counter() - t0

    # Survivors as an unmodified spatialdata reader sees them, with their data checked.
    import spatialdata as sd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = sd.read_zarr(str(store))
    survivors, bad = 0, 0
    for i in range(n):
        name = f"labels{i}"
        if name in s.labels:
            ok = np.array_equal(np.asarray(s.labels[name].data.compute()), labels_for(i))
            survivors += ok
            bad += not ok
    verify = subprocess.run([zx, "verify", str(store)], capture_output=True, text=True).returncode
    return {"writer": "zarrtx add-labels", "n": n, "survivors": survivors, "errors": len(errs), "wall_s": wall,
            "bad_data": bad, "verify_exit": verify, "error_samples": errs[:3]}


PEER_SD_LINE = re.compile(
    r"^(?P<kind>adds|append)\s+(?P<mode>locked|unlocked)\s+n=\s*(?P<n>\d+)\s+survived=(?P<got>[^/\s]+)/(?P<want>\d+)"
    r"\s+errors=(?P<errors>\d+)\s+(?P<errtypes>\[.*?\])\s+wall=(?P<wall>[\d.]+)s"
)


def bench_peer_spatialdata(peer: Path, n: int, out: Path) -> list[dict]:
    env = dict(os.environ, PEER_DIR=str(out / "peer_sd"))
    p = subprocess.run([sys.executable, str(peer / "peer_spatialdata.py"), str(n)], capture_output=True, text=True,
                       env=env, timeout=3600)
    rows = []
    for line in p.stdout.splitlines():
        print(f"  peer_spatialdata.py | {line}")
        m = PEER_SD_LINE.match(line.strip())
        if m:
            got = m["got"]
            rows.append({"writer": f"spatialdata {m['kind']} {'+ filelock' if m['mode'] == 'locked' else 'unguarded'}",
                         "kind": m["kind"], "locked": m["mode"] == "locked", "n": int(m["n"]),
                         "survivors": int(got) if got.isdigit() else got, "want": int(m["want"]),
                         "errors": int(m["errors"]), "error_types": m["errtypes"], "wall_s": float(m["wall"])})
    if p.returncode != 0:
        print(f"  peer_spatialdata.py exited {p.returncode}: {p.stderr[-800:]}")
    return rows


# ----------------------------------------------------------------------------------------------------------------
# (b) one big image
# ----------------------------------------------------------------------------------------------------------------


def bench_zarrtx_image(zx: str, img: np.ndarray, out: Path, side: int, stream: bool, fsync: bool = True) -> dict:
    shm = Path("/dev/shm")
    tmpdir = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else out))
    try:
        src = tmpdir / "image.npy"
        np.save(src, img[None])  # (1, side, side): c,y,x
        store = out / "image_zarrtx.zarr"
        shutil.rmtree(store, ignore_errors=True)
        subprocess.run([zx, "init", str(store)], check=True, capture_output=True)
        # In memory: the whole .npy is loaded, then written. Streamed: the CLI feeds the engine ~64 MiB blocks.
        env = dict(os.environ, ZARRTX_STREAM_THRESHOLD_BYTES="1" if stream else str(1 << 62))
        rc, wall, rss, so, se = run_timed_with_rss(
            [zx, *([] if fsync else ["--no-fsync"]), "add-image", str(store), "img", str(src), "--dims", "cyx",
             "--chunks", "1,1024,1024", "--compression", "zstd:0"], env=env)
        writer = "zarrtx add-image (streamed blocks)" if stream else "zarrtx add-image (in memory)"
        if not fsync:
            writer = writer.replace("(", "(no fsync, ")
        row = {"writer": writer, "wall_s": wall, "exit": rc, "peak_rss_bytes": rss}
        if rc != 0:
            row["error"] = se.strip()[-400:]
            return row
        # Spot-check correctness through zarr-python (a full read would double the run time).
        import zarr

        grp = json.loads((store / "images" / "img" / "zarr.json").read_text())
        level0 = grp["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"]
        arr = zarr.open_array(str(store / "images" / "img" / level0), mode="r")
        for y, x in [(0, 0), (side // 2, side // 3), (side - 1024, side - 1024)]:
            if not np.array_equal(arr[0, y:y + 1024, x:x + 1024], img[y:y + 1024, x:x + 1024]):
                row["error"] = f"data mismatch at {(y, x)}"
        row["store_bytes"] = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        return row
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


PEER_ARR_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<wall>[\d.]+)s\s+(?P<mibs>[\d.]+) MiB/s")


def bench_peer_arrays(peer: Path, side: int, out: Path) -> list[dict]:
    env = dict(os.environ, PEER_DIR=str(out / "peer_arr"))
    rc, wall, rss, so, se = run_timed_with_rss([sys.executable, str(peer / "peer_array_write.py"), str(side)], env=env)
    rows = []
    for line in so.splitlines():
        print(f"  peer_array_write.py | {line}")
        m = PEER_ARR_LINE.match(line.strip())
        if m:
            rows.append({"writer": m["name"], "wall_s": float(m["wall"]), "mib_s": float(m["mibs"])})
        elif "failed" in line:
            rows.append({"writer": line.split()[0], "wall_s": None, "mib_s": None, "error": line.strip()})
    if rc != 0:
        print(f"  peer_array_write.py exited {rc}: {se[-800:]}")
    shutil.rmtree(out / "peer_arr", ignore_errors=True)
    return rows


# ----------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="writer processes for (a)")
    ap.add_argument("--side", type=int, default=16384, help="image side for (b); 16384 -> 512 MiB")
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--skip-adds", action="store_true")
    ap.add_argument("--skip-image", action="store_true")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--json", help="also write all results to this JSON file")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.WARNING)  # ome-zarr's "no parent found for Label" chatter

    zx = zarrtx_bin()
    peer = find_peer_dir()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                     "zarrtx": zx, "peer_dir": str(peer)}
    print(f"adds_and_big_image: {os.cpu_count()} cores, zarrtx={zx}, peers={peer}, out={out}")

    if not a.skip_adds:
        hr(f"(a) {a.n} processes x one 128x128 int32 labels element")
        z = bench_zarrtx_adds(zx, a.n, out)
        print(f"  zarrtx: {z['survivors']}/{a.n} in {z['wall_s']:.2f}s, errors={z['errors']} {z['error_samples']}, "
              f"verify exit {z['verify_exit']}")
        peers = [] if a.skip_peers else bench_peer_spatialdata(peer, a.n, out)
        results["adds"] = {"zarrtx": z, "peers": peers}

    if not a.skip_image:
        mib = a.side * a.side * 2 / 2**20
        hr(f"(b) one {a.side}x{a.side} uint16 image ({mib:.0f} MiB), zstd level 0, 1024x1024 chunks")
        img = make_image(a.side)
        lim = bench_encode_limit(img)
        print(f"  encode limit: {lim['wall_s']:.2f}s")
        z = bench_zarrtx_image(zx, img, out, a.side, stream=False)
        print(f"  zarrtx: {z}")
        zs = bench_zarrtx_image(zx, img, out, a.side, stream=True)
        print(f"  zarrtx streamed: {zs}")
        zn = bench_zarrtx_image(zx, img, out, a.side, stream=False, fsync=False)
        print(f"  zarrtx without fsync: {zn}")
        del img
        peers = [] if a.skip_peers else bench_peer_arrays(peer, a.side, out)
        results["image"] = {"mib": mib, "zarrtx": z, "zarrtx_streamed": zs, "zarrtx_no_fsync": zn, "encode_limit": lim, "peers": peers}

    print_tables(results, a.n)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults written to {a.json}")
    return 0


def print_tables(results: dict, n: int) -> None:
    hr("RESULTS (one run, same machine)")
    if "adds" in results:
        z, peers = results["adds"]["zarrtx"], results["adds"]["peers"]
        z_rate = z["survivors"] / z["wall_s"] if z["wall_s"] else None
        print(f"\n(a) {n} processes, each adding one 128x128 int32 labels element to one store")
        print(f"  {'writer':34s} {'survivors':>10s} {'errors':>7s} {'wall s':>8s} {'elements/s':>11s} {'zarrtx speed-up':>16s}")
        print(f"  {z['writer']:34s} {str(z['survivors']) + '/' + str(n):>10s} {z['errors']:>7d} {z['wall_s']:>8.2f} "
              f"{fmt(z_rate):>11s} {'1.00x':>16s}")
        for p in peers:
            if p["kind"] != "adds":
                continue
            surv = p["survivors"] if isinstance(p["survivors"], int) else 0
            rate = surv / p["wall_s"] if p["wall_s"] else None
            ratio = f"{z_rate / rate:.2f}x" if (z_rate and rate) else "-"
            print(f"  {p['writer']:34s} {str(p['survivors']) + '/' + str(p['want']):>10s} {p['errors']:>7d} "
                  f"{p['wall_s']:>8.2f} {fmt(rate):>11s} {ratio:>16s}")
        other = [p for p in peers if p["kind"] != "adds"]
        if other:
            print("  (peer table appends, for reference; zarrtx's CLI has no append command yet)")
            for p in other:
                print(f"  {p['writer']:34s} {str(p['survivors']) + '/' + str(p['want']):>10s} {p['errors']:>7d} "
                      f"{p['wall_s']:>8.2f}")
        print("  elements/s = surviving, correct elements / wall time; speed-up = zarrtx elements/s / peer elements/s")
    if "image" in results:
        im = results["image"]
        mib = im["mib"]
        z, lim = im["zarrtx"], im["encode_limit"]
        z_mibs = mib / z["wall_s"] if z.get("exit") == 0 and not z.get("error") else None
        print(f"\n(b) one {mib:.0f} MiB uint16 image, zstd level 0, 1024x1024 chunks")
        print(f"  {'writer':34s} {'wall s':>8s} {'MiB/s':>9s} {'zarrtx / this':>14s}")
        rows = [(z["writer"], z["wall_s"], z_mibs)]
        zs = im.get("zarrtx_streamed") or {}
        for extra in (zs, im.get("zarrtx_no_fsync") or {}):
            if extra.get("exit") == 0 and not extra.get("error"):
                rows.append((extra["writer"], extra["wall_s"], mib / extra["wall_s"]))
        for p in im["peers"]:
            rows.append((p["writer"], p["wall_s"], p["mib_s"]))
        rows.append((lim["writer"], lim["wall_s"], mib / lim["wall_s"]))
        for name, wall, mibs in rows:
            ratio = f"{z_mibs / mibs:.2f}x" if (z_mibs and mibs) else "-"
            print(f"  {name:34s} {fmt(wall):>8s} {fmt(mibs, '.1f'):>9s} {ratio:>14s}")
        if z.get("error"):
            print(f"  zarrtx problem: {z['error']}")
        for row, goal in ((z, "goal <= 1.5x the image"), (zs, "goal <= 256 MiB")):
            rss = row.get("peak_rss_bytes")
            if rss:
                print(f"  {row['writer']} peak RSS: {rss / 2**20:.0f} MiB = {rss / (mib * 2**20):.2f} x image size"
                      f" ({goal}; measured by GNU time)")
        print("  zarrtx's wall time includes process start, reading the .npy from /dev/shm and (by default) fsync of"
              " every file; peers start from an array already in memory and do not fsync.")


if __name__ == "__main__":
    sys.exit(main())
