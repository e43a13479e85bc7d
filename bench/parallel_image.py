"""Issue 5: ONE large image written by many workers, zarrtx next to the peers, side by side in ONE run.

For each size (uint16, c=1, square y = x, default 512 MiB and 2 GiB), with 1024x1024 chunks, zstd level 0 and
uncompressed, every writer below writes the same image (_inputs.make_image, the image of
shared/peer/peer_array_write.py) into a fresh store under --out; the store is checked and deleted before the next
writer starts.

  zarrtx   Store.add, threads        one process; the element in memory (spatialdata Image2DModel.parse of the
                                     numpy image; zstd through the public Store.add, uncompressed through the same
                                     engine call with compression="none": Store.add has no codec argument);
                                     once more with zarrtx.open(..., durable=False) (no fsync of its own)
           Store.add, dask stream    one process; a dask array reading 1024x1024 blocks of the .npy (memory-mapped
                                     per block), streamed by the engine
           write plan, N processes   `zarrtx write-plan`, N concurrent `zarrtx write-part` processes (one part
                                     each, reading their region of the .npy, RAYON_NUM_THREADS = cores / N), then
                                     `zarrtx commit-plan`; plan and commit inside the timing
           zarrtx.dask.store         a distributed.LocalCluster of worker processes (started, and warmed with the
                                     imports, before the timing); source: the same dask array as above
  peers    shared/peer/peer_array_write.py's own writer functions (zarr-python, zarr-python + zarrs codec pipeline,
           tensorstore, spatialdata.write), imported from that file and called on the image in memory. For the
           uncompressed case their zstd codec is swapped for none (zarr.create_array(compressors=None), zarr's
           default compressors emptied for spatialdata, the zstd codec removed from tensorstore's spec); the check
           below proves what each store really holds.
           hdmf-zarr: NWBZarrIO.write(number_of_jobs=cores) of a TimeSeries whose data is a GenericDataChunkIterator
           over the .npy (its documented parallel write), when hdmf_zarr imports.
  limits   zstd level 0 encoding alone of the image's 1024x1024 chunks on all cores (python-zstandard in a thread
           pool, no I/O; _inputs.bench_encode_limit), and sequential disk-write bandwidth: the image's bytes
           written to --out in 64 MiB writes + fsync, measured before and after the writers of each size.

Honesty rules. Every writer runs in its own fresh process (the peers and zarrtx's Python writers as
`python parallel_image.py --child ...`), timed from after imports and data loading (for the in-memory writers the image
is loaded from the .npy first, untimed; a one-chunk warm-up write into a scratch store loads the libraries) to the
end of the write PLUS a syncfs(2) of the store's filesystem: zarrtx fsyncs by itself as it writes (its default),
the others do not, so their "flush s" is the time the page cache was hiding. The row "durable=False" is zarrtx
without its own fsyncs, flushed the same way. The input .npy stays in the page cache for every writer (it is read
from RAM); the page cache is not dropped (that needs privileges and would disturb everyone else on a shared
machine). Peak RSS is the kernel's ru_maxrss: of each process (main), and of each worker process (write-part
processes, Dask workers, hdmf-zarr's pool). One run; the machine is shared and noisy: compare the ratios inside one
run, not absolute figures across runs.

    python bench/parallel_image.py [--sizes 512,2048] [--codecs zstd,none] [--procs 1,2,4] [--dask-workers 2]
                                 [--out /tmp/zarrtx-bench-parallel] [--skip-peers] [--json FILE]
    python bench/parallel_image.py --sizes 64          # a quick look (64 MiB)

Needs the release binary (ZARRTX_BIN or target/release/zarrtx), the zarrtx package and the venv of
`scripts/setup-python-env.sh --bench`: `bash bench/run_bench_parallel.sh` does all of that.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _inputs import BENCH, NpySource, bench_encode_limit, find_peer_dir, hr, make_image, zarrtx_bin  # noqa: E402

MiB = 2**20
CHUNK = 1024
NAME = "img"
CORES = os.cpu_count() or 1
GOAL_ENCODE = 0.95  # x the zstd encode-only limit (zstd)
GOAL_DISK = 0.8  # x the sequential disk-write bandwidth (uncompressed)
GOAL_SPATIALDATA = 2.5  # x spatialdata.write
GOAL_STREAM_MIB = 256  # peak RSS per worker when streaming
CHILD_TIMEOUT_S = 3 * 3600
FULL_CHECK_MAX_MIB = 512  # compare every pixel up to this size; above, a few windows


# ----------------------------------------------------------------------------------------------------------------
# Small helpers (used by the orchestrator and the children)
# ----------------------------------------------------------------------------------------------------------------


def side_for(mib: float) -> int:
    """Side of the square uint16 image of about `mib` MiB, a multiple of 8 as make_image needs (512 -> 16384,
    2048 -> 32768, 64 -> 5792)."""
    return max(8, int(round(math.sqrt(mib * MiB / 2) / 8)) * 8)


def maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def flush_to_disk(root: Path) -> float:
    """syncfs(2) on the filesystem holding root: every dirty page and inode of it reaches the disk, with one journal
    commit and one cache flush (what `sync` after a write gives a user). An fsync per file would cost a device
    cache flush per file (milliseconds each on this VM, even for clean files) and charge zarrtx, which fsyncs as
    it writes, twice. Other processes' dirty data on the same filesystem is flushed too (noise on a shared
    machine). Returns the seconds it took."""
    import ctypes

    t0 = time.perf_counter()
    fd = os.open(root, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "syncfs") or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file())


def load_peer(peer_dir: Path) -> tuple[dict, list[tuple[str, object]]]:
    """shared/peer/peer_array_write.py taken as it is: its imports and function definitions are executed (not its
    image generation nor its loop) into a namespace whose `img` the caller sets, and its own list of writers (the
    iterable of its final for loop) is evaluated. Returns (namespace, [(name, function), ...])."""
    src_path = peer_dir / "peer_array_write.py"
    tree = ast.parse(src_path.read_text(), str(src_path))
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    loops = [n for n in tree.body if isinstance(n, ast.For)]
    if not loops:
        raise RuntimeError(f"{src_path}: no top-level `for name, fn in [...]` loop to take the writers from")
    ns: dict = {"__name__": "peer_array_write", "__file__": str(src_path)}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(src_path), "exec"), ns)
    ns.update(img=None, chunks=(CHUNK, CHUNK), mib=0.0, root=tempfile.gettempdir())
    return ns, list(eval(compile(ast.Expression(loops[-1].iter), str(src_path), "eval"), ns))


@contextmanager
def peer_codec(codec: str):
    """The peers' writer functions hard-code zstd level 0; for codec "none" swap it for no compression."""
    if codec == "zstd":
        yield
        return
    import zarr
    import zarr.core.array as zca

    saved_create, saved_default = zarr.create_array, zca.default_compressors_v3
    saved_ts = None

    def create_array(*args, **kwargs):
        kwargs["compressors"] = None
        return saved_create(*args, **kwargs)

    zarr.create_array = create_array
    zca.default_compressors_v3 = lambda dtype: ()
    try:
        import tensorstore as ts

        saved_ts = ts.open

        def ts_open(spec, *args, **kwargs):
            spec = json.loads(json.dumps(spec))
            meta = spec.get("metadata", {})
            if "codecs" in meta:
                meta["codecs"] = [c for c in meta["codecs"] if c.get("name") != "zstd"]
            return saved_ts(spec, *args, **kwargs)

        ts.open = ts_open
    except ImportError:
        pass
    try:
        yield
    finally:
        zarr.create_array, zca.default_compressors_v3 = saved_create, saved_default
        if saved_ts is not None:
            import tensorstore as ts

            ts.open = saved_ts


# ----------------------------------------------------------------------------------------------------------------
# Children: one writer in a fresh process. Each returns (run, after): run() is timed, after() (untimed) returns
# extra fields such as the workers' peak RSS and releases the workers.
# ----------------------------------------------------------------------------------------------------------------


def child_zarrtx_threads(a, streamed: bool, durable: bool = True):
    import zarrtx
    from spatialdata.models import Image2DModel
    from zarrtx._raster import add_raster_args

    if streamed:
        import dask.array as da

        data = da.from_array(NpySource(a.npy), chunks=(1, CHUNK, CHUNK), asarray=False)
    else:
        data = np.load(a.npy)  # in memory before the timing, as for the peers

    def add(store, data):
        el = Image2DModel.parse(data, dims=("c", "y", "x"), chunks=None if streamed else (1, CHUNK, CHUNK))
        if a.codec == "zstd":
            store.add(NAME, el)  # the public API: zstd level 0 is its default
        else:
            kind, dims, kwargs = add_raster_args(NAME, el)  # exactly what Store.add does, with the codec given
            store._handle().add_raster(NAME, kind, dims, compression=a.codec, **kwargs)  # "zstd" is level 0

    # Warm-up, untimed (as for the peers): one chunk into a scratch store.
    add(zarrtx.open(a.store + ".warmup", durable=durable), data[:, :CHUNK, :CHUNK])
    shutil.rmtree(a.store + ".warmup", ignore_errors=True)
    store = zarrtx.open(a.store, durable=durable)
    return lambda: add(store, data), lambda: {}


def _worker_maxrss_mib() -> float:
    import resource as r

    return r.getrusage(r.RUSAGE_SELF).ru_maxrss / 1024


def _worker_warm() -> None:
    import dask.array  # noqa: F401
    import zarrtx  # noqa: F401
    import zarrtx._core  # noqa: F401


def child_zarrtx_dask(a):
    import dask.array as da
    import zarrtx
    import zarrtx.dask
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=a.workers, threads_per_worker=max(1, CORES // a.workers), processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    client.run(_worker_warm)
    data = da.from_array(NpySource(a.npy), chunks=(1, CHUNK, CHUNK), asarray=False)
    store = zarrtx.open(a.store)
    compression = "zstd:0" if a.codec == "zstd" else "none"

    def run():
        zarrtx.dask.store(data, store, NAME, dims=("c", "y", "x"), chunks=[1, CHUNK, CHUNK],
                          compression=compression, client=client)

    def after():
        rss = sorted(client.run(_worker_maxrss_mib).values())
        client.close()
        cluster.close()
        return {"workers_rss_mib": rss}

    return run, after


def child_peer(a):
    img = np.load(a.npy)[0]  # in memory before the timing (the peers' functions start from an in-memory image)
    ns, writers = load_peer(Path(a.peer_dir))
    fn = dict(writers)[a.peer]
    # Warm-up, untimed: the peer functions import their library on first call; write one chunk to a scratch store.
    ns["img"] = np.ascontiguousarray(img[:CHUNK, :CHUNK])
    with peer_codec(a.codec):
        fn(a.store + ".warmup")
    shutil.rmtree(a.store + ".warmup", ignore_errors=True)
    ns["img"] = img

    def run():
        with peer_codec(a.codec):
            fn(a.store)

    return run, lambda: {}


def child_hdmf(a):
    from datetime import datetime, timezone

    import zarr
    from hdmf_zarr import ZarrDataIO
    from hdmf_zarr.nwb import NWBZarrIO
    from pynwb import NWBFile, TimeSeries

    from _hdmf_source import NpyChunkIterator

    side_y, side_x = np.load(a.npy, mmap_mode="r").shape[1:]
    it = NpyChunkIterator(a.npy, buffer_shape=(CHUNK, side_x), chunk_shape=(CHUNK, CHUNK),
                                       display_progress=False)
    compressors = zarr.codecs.ZstdCodec(level=0) if a.codec == "zstd" else False
    nwb = NWBFile(session_description="zarrtx bench", identifier="bench", session_start_time=datetime.now(timezone.utc))
    nwb.add_acquisition(TimeSeries(name=NAME, data=ZarrDataIO(data=it, chunks=[CHUNK, CHUNK], compressors=compressors),
                                   unit="a.u.", rate=1.0))

    def run():
        with NWBZarrIO(a.store, mode="w") as io:
            io.write(nwb, number_of_jobs=a.workers)

    def after():
        # The pool's processes are gone and waited for: RUSAGE_CHILDREN holds the largest one's peak.
        return {"workers_rss_mib": [maxrss_mib(resource.RUSAGE_CHILDREN)], "workers_note": "max over the pool"}

    return run, after


def child_main(a) -> int:
    import logging

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    setups = {
        "zarrtx-mem": lambda: child_zarrtx_threads(a, streamed=False),
        "zarrtx-mem-nofsync": lambda: child_zarrtx_threads(a, streamed=False, durable=False),
        "zarrtx-stream": lambda: child_zarrtx_threads(a, streamed=True),
        "zarrtx-dask": lambda: child_zarrtx_dask(a),
        "peer": lambda: child_peer(a),
        "hdmf": lambda: child_hdmf(a),
    }
    run, after = setups[a.child]()
    rss_start = maxrss_mib()
    t0 = time.perf_counter()
    run()
    t1 = time.perf_counter()
    flush_s = flush_to_disk(Path(a.store))
    wall = time.perf_counter() - t0
    res = {"wall_s": wall, "write_s": t1 - t0, "flush_s": flush_s, "rss_start_mib": rss_start}
    res.update(after())
    res["rss_mib"] = maxrss_mib()
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# Orchestrator
# ----------------------------------------------------------------------------------------------------------------


def run_proc(argv: list[str], env: dict | None = None, timeout: float = CHILD_TIMEOUT_S) -> dict:
    """Runs argv under GNU time; returns exit code, wall seconds, peak RSS (MiB) of that process (and of its waited-for
    descendants), stdout, stderr. Killed (its whole session) after `timeout` seconds."""
    timer = "/usr/bin/time" if os.path.exists("/usr/bin/time") else shutil.which("time")
    rss_file = tempfile.NamedTemporaryFile("r", suffix=".rss", delete=False)
    rss_file.close()
    wrapped = [timer, "-f", "%M", "-o", rss_file.name, *argv] if timer else argv
    out_f, err_f = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    t0 = time.perf_counter()
    p = subprocess.Popen(wrapped, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    timer_kill = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
    timer_kill.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer_kill.cancel()
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    peak = ru.ru_maxrss / 1024
    try:
        with open(rss_file.name) as f:
            peak = int(f.read().split()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    finally:
        os.unlink(rss_file.name)
    out_f.seek(0)
    err_f.seek(0)
    return {"rc": p.returncode, "wall_s": dt, "rss_mib": peak, "stdout": out_f.read(), "stderr": err_f.read()}


def short_error(res: dict) -> str:
    lines = [ln for ln in (res.get("stderr") or "").strip().splitlines() if ln.strip()]
    tail = lines[-1] if lines else ""
    return f"exit {res['rc']}: {tail[:300]}"


def run_child(kind: str, a, npy: Path, store: Path, codec: str, **extra) -> dict:
    argv = [sys.executable, str(BENCH / "parallel_image.py"), "--child", kind, "--npy", str(npy), "--store", str(store),
            "--codec", codec]
    for k, v in extra.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH), *filter(None, [env.get("PYTHONPATH")])])
    res = run_proc(argv, env=env)
    for line in res["stdout"].splitlines():
        if line.startswith("RESULT "):
            row = json.loads(line[len("RESULT "):])
            row["tree_rss_mib"] = res["rss_mib"]
            return row
    return {"error": short_error(res)}


def run_zarrtx_plan(zx: str, npy: Path, store: Path, codec: str, nproc: int, shape: tuple[int, ...]) -> dict:
    init = subprocess.run([zx, "init", str(store)], capture_output=True, text=True)
    if init.returncode != 0:
        return {"error": f"zarrtx init: {init.stderr.strip()[-300:]}"}
    env = dict(os.environ, RAYON_NUM_THREADS=str(max(1, CORES // nproc)))
    t0 = time.perf_counter()
    plan = run_proc([zx, "write-plan", str(store), NAME, "--shape", ",".join(map(str, shape)), "--dtype", "uint16",
                     "--dims", "c,y,x", "--parts", str(nproc), "--chunks", f"1,{CHUNK},{CHUNK}",
                     "--compression", "zstd:0" if codec == "zstd" else "none", "--json"])
    if plan["rc"] != 0:
        return {"error": "write-plan " + short_error(plan)}
    plan_id = json.loads(plan["stdout"])["plan_id"]
    t_plan = time.perf_counter()
    with ThreadPoolExecutor(nproc) as ex:
        parts = list(ex.map(lambda i: run_proc([zx, "write-part", str(store), plan_id, str(i), "--input", str(npy),
                                                "--json"], env=env), range(nproc)))
    t_parts = time.perf_counter()
    bad = [p for p in parts if p["rc"] != 0]
    if bad:
        return {"error": "write-part " + short_error(bad[0])}
    commit = run_proc([zx, "commit-plan", str(store), plan_id, "--json"])
    if commit["rc"] != 0:
        return {"error": "commit-plan " + short_error(commit)}
    t1 = time.perf_counter()
    flush_s = flush_to_disk(store)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "write_s": t1 - t0, "flush_s": flush_s, "plan_s": t_plan - t0, "parts_s": t_parts - t_plan,
            "commit_s": t1 - t_parts, "rss_mib": max(plan["rss_mib"], commit["rss_mib"]),
            "workers_rss_mib": sorted(p["rss_mib"] for p in parts), "rayon_threads": max(1, CORES // nproc)}


def disk_bandwidth(npy: Path, out: Path, block: int = 64 * MiB) -> dict:
    """The image's bytes (the .npy, from the page cache) written sequentially in 64 MiB writes, then fsync."""
    probe = out / "disk-probe.bin"
    probe.unlink(missing_ok=True)
    nbytes = npy.stat().st_size
    src = os.open(npy, os.O_RDONLY)
    dst = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        t0 = time.perf_counter()
        off = 0
        while off < nbytes:
            buf = os.pread(src, min(block, nbytes - off), off)
            mv = memoryview(buf)
            while mv:
                mv = mv[os.write(dst, mv):]
            off += len(buf)
        os.fsync(dst)
        dt = time.perf_counter() - t0
    finally:
        os.close(src)
        os.close(dst)
        probe.unlink(missing_ok=True)
    return {"wall_s": dt, "mib_s": nbytes / MiB / dt}


def find_array(store: Path) -> Path:
    """Level 0 of what a writer wrote: a root array (zarr-python, tensorstore), images/img's first multiscale
    dataset (zarrtx, spatialdata), or hdmf-zarr's acquisition/img/data."""
    meta = json.loads((store / "zarr.json").read_text())
    if meta.get("node_type") == "array":
        return store
    el = store / "images" / NAME
    if (el / "zarr.json").is_file():
        attrs = json.loads((el / "zarr.json").read_text()).get("attributes", {})
        ms = (attrs.get("ome") or attrs).get("multiscales")
        return el / ms[0]["datasets"][0]["path"]
    hd = store / "acquisition" / NAME / "data"
    if (hd / "zarr.json").is_file():
        return hd
    raise FileNotFoundError(f"no level-0 array found in {store}")


def check_store(store: Path, npy: Path, codec: str) -> str:
    """'ok', or what is wrong: the array's 2-D shape, 1024x1024 chunks, codecs (zstd level 0 / none), pixels."""
    import zarr

    try:
        path = find_array(store)
        meta = json.loads((path / "zarr.json").read_text())
        names = [c["name"] for c in meta.get("codecs", [])]
        if codec == "zstd":
            levels = [c.get("configuration", {}).get("level") for c in meta.get("codecs", []) if c["name"] == "zstd"]
            if levels != [0]:
                return f"codecs {names} (want zstd level 0)"
        elif names != ["bytes"]:
            return f"codecs {names} (want bytes only)"
        arr = zarr.open_array(str(path), mode="r")
        src = np.load(npy, mmap_mode="r")[0]
        if tuple(arr.shape[-2:]) != src.shape or any(int(s) != 1 for s in arr.shape[:-2]):
            return f"shape {arr.shape}"
        if tuple(arr.chunks[-2:]) != (CHUNK, CHUNK):
            return f"chunks {arr.chunks}"
        lead = (0,) * (arr.ndim - 2)
        if src.nbytes <= FULL_CHECK_MAX_MIB * MiB:
            windows = [(0, src.shape[0], 0, src.shape[1])]
        else:
            h, w = src.shape
            windows = [(0, CHUNK, 0, CHUNK), (h // 2, h // 2 + CHUNK, w // 3, w // 3 + CHUNK),
                       (h - CHUNK, h, w - CHUNK, w)]
        for y0, y1, x0, x1 in windows:
            if not np.array_equal(arr[lead + (slice(y0, y1), slice(x0, x1))], src[y0:y1, x0:x1]):
                return f"pixels differ in [{y0}:{y1}, {x0}:{x1}]"
        return "ok"
    except Exception as e:  # noqa: BLE001 - reported in the table
        return f"unreadable: {type(e).__name__}: {str(e)[:120]}"


def hdmf_status() -> str | None:
    """None when hdmf_zarr imports, else the reason."""
    r = subprocess.run([sys.executable, "-c", "import hdmf_zarr, pynwb"], capture_output=True, text=True)
    if r.returncode == 0:
        return None
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {r.returncode}"


def writer_plan(a, peer_names: list[str], hdmf_ok: bool) -> list[dict]:
    """What runs, in order. kind: child process, or 'plan' (CLI processes driven from here)."""
    w = [{"writer": "zarrtx Store.add, threads (in memory)", "kind": "zarrtx-mem", "zarrtx": True, "ref": True},
         {"writer": "zarrtx Store.add, threads (durable=False)", "kind": "zarrtx-mem-nofsync", "zarrtx": True},
         {"writer": "zarrtx Store.add, threads (dask stream)", "kind": "zarrtx-stream", "zarrtx": True,
          "streaming": True}]
    for n in a.procs:
        w.append({"writer": f"zarrtx write plan, {n} write-part proc{'s' if n > 1 else ''}", "kind": "plan",
                  "nproc": n, "zarrtx": True, "streaming": True})
    if not a.skip_dask:
        w.append({"writer": f"zarrtx.dask.store, LocalCluster {a.dask_workers} procs", "kind": "zarrtx-dask",
                  "zarrtx": True, "streaming": True, "extra": {"workers": a.dask_workers}})
    if not a.skip_peers:
        for name in peer_names:
            w.append({"writer": name, "kind": "peer", "extra": {"peer": name, "peer_dir": a.peer_dir}})
        if hdmf_ok:
            w.append({"writer": f"hdmf-zarr write, number_of_jobs={CORES}", "kind": "hdmf",
                      "extra": {"workers": CORES}})
    return w


def bench_size(a, zx: str, mib_req: float, out: Path, peer_names: list[str], hdmf_ok: bool) -> dict:
    side = side_for(mib_req)
    t = time.perf_counter()
    img = make_image(side)
    shape = (1, *img.shape)
    mib = img.nbytes / MiB
    hr(f"{mib:.0f} MiB image: uint16 {shape[0]}x{shape[1]}x{shape[2]} (c, y, x), {CHUNK}x{CHUNK} chunks")
    npy = out / f"image-{side}.npy"
    np.save(npy, img[None])
    fd = os.open(npy, os.O_RDONLY)
    os.fsync(fd)  # clean in the page cache: later measurements do not pay for writing the input back
    os.close(fd)
    print(f"  input {npy} ({mib:.1f} MiB) made in {time.perf_counter() - t:.1f}s", flush=True)
    lim = bench_encode_limit(img)
    lim["mib_s"] = mib / lim["wall_s"]
    print(f"  limit: zstd-0 encode only, {CORES} threads: {lim['wall_s']:.2f}s = {lim['mib_s']:.0f} MiB/s", flush=True)
    del img
    disk_before = disk_bandwidth(npy, out)
    print(f"  limit: sequential write + fsync: {disk_before['wall_s']:.2f}s = {disk_before['mib_s']:.0f} MiB/s",
          flush=True)
    res = {"mib": mib, "side": side, "shape": shape, "encode_limit": lim, "disk_before": disk_before, "codecs": {}}
    stores = out / "stores"
    stores.mkdir(exist_ok=True)
    for codec in a.codecs:
        rows = []
        for spec in writer_plan(a, peer_names, hdmf_ok):
            store = stores / (spec["kind"] + "-" + "".join(c if c.isalnum() else "_" for c in spec["writer"]) + ".zarr")
            shutil.rmtree(store, ignore_errors=True)
            if spec["kind"] == "plan":
                row = run_zarrtx_plan(zx, npy, store, codec, spec["nproc"], shape)
            else:
                row = run_child(spec["kind"], a, npy, store, codec, **spec.get("extra", {}))
            row = {**{k: v for k, v in spec.items() if k not in ("extra",)}, **row}
            if "error" not in row:
                row["mib_s"] = mib / row["wall_s"]
                row["store_mib"] = tree_bytes(store) / MiB
                row["check"] = check_store(store, npy, codec)
            shutil.rmtree(store, ignore_errors=True)
            rows.append(row)
            print(f"  [{codec}] {spec['writer']}: " + (f"{row['wall_s']:.2f}s ({row['mib_s']:.0f} MiB/s), "
                  f"check {row['check']}" if "error" not in row else f"FAILED {row['error']}"), flush=True)
        res["codecs"][codec] = rows
    res["disk_after"] = disk_bandwidth(npy, out)
    res["disk"] = {"mib_s": max(res["disk_before"]["mib_s"], res["disk_after"]["mib_s"])}
    print(f"  limit: sequential write + fsync (again): {res['disk_after']['mib_s']:.0f} MiB/s", flush=True)
    npy.unlink(missing_ok=True)
    shutil.rmtree(stores, ignore_errors=True)
    return res


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------


def fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def ok_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "error" not in r and r.get("check") == "ok"]


def print_tables(results: dict) -> None:
    hr("RESULTS (one run on a shared, noisy machine: compare ratios within this run, not absolute figures)")
    print(f"  {CORES} cores; load average at start {results['loadavg_start']}, at end {results['loadavg_end']}")
    print("  wall s = from the writer's first call to its data on disk (the write, then syncfs of the filesystem;"
          " 'flush s' is that syncfs, small for zarrtx which fsyncs as it writes unless durable=False). Input: the"
          " .npy in the page cache"
          " (in-memory writers load it before the timing). MiB/s = image MiB / wall s. zarrtx÷this = MiB/s of"
          " 'zarrtx Store.add, threads (in memory)' / MiB/s of the row. RSS = peak resident set (ru_maxrss) of the"
          " main process and, where there are worker processes, of the largest worker. 'start' = the main"
          " process's peak before the timing (interpreter, imports, in-memory image).")
    for size in results["sizes"]:
        mib = size["mib"]
        for codec, rows in size["codecs"].items():
            label = "zstd level 0" if codec == "zstd" else "uncompressed"
            dims = "x".join(map(str, size["shape"]))
            print(f"\n  {mib:.0f} MiB uint16 image ({dims}), {label}, {CHUNK}x{CHUNK} chunks")
            head = (f"  {'writer':42s} {'wall s':>7s} {'flush s':>7s} {'MiB/s':>7s} {'zarrtx÷this':>11s} "
                    f"{'RSS MiB':>7s} {'start':>6s} {'worker':>7s} {'store MiB':>9s}  check")
            print(head)
            ref = next((r for r in ok_rows(rows) if r.get("ref")), None)
            ref_mibs = ref["mib_s"] if ref else None
            for r in rows:
                if "error" in r:
                    print(f"  {r['writer']:42s} FAILED: {r['error']}")
                    continue
                ratio = f"{ref_mibs / r['mib_s']:.2f}x" if ref_mibs else "-"
                workers = r.get("workers_rss_mib")
                wtxt = f"{max(workers):.0f}" if workers else "-"
                print(f"  {r['writer']:42s} {r['wall_s']:7.2f} {r['flush_s']:7.2f} {r['mib_s']:7.1f} {ratio:>11s} "
                      f"{r['rss_mib']:7.0f} {fmt(r.get('rss_start_mib'), '.0f'):>6s} {wtxt:>7s} "
                      f"{r['store_mib']:9.1f}  {r['check']}")
            limits = []
            if codec == "zstd":
                lim = size["encode_limit"]
                limits.append((f"limit: zstd-0 encode only, {CORES} threads", lim["wall_s"], lim["mib_s"]))
            for key, what in (("disk_before", "before"), ("disk_after", "after")):
                d = size[key]
                limits.append((f"limit: seq. write + fsync ({what})", d["wall_s"], d["mib_s"]))
            for name, wall, mibs in limits:
                ratio = f"{ref_mibs / mibs:.2f}x" if ref_mibs else "-"
                print(f"  {name:42s} {wall:7.2f} {'':>7s} {mibs:7.1f} {ratio:>11s}")
            plans = [r for r in rows if r.get("kind") == "plan" and "error" not in r]
            for r in plans:
                print(f"    {r['writer']}: plan {r['plan_s']:.2f}s, parts {r['parts_s']:.2f}s, commit "
                      f"{r['commit_s']:.2f}s; RAYON_NUM_THREADS={r['rayon_threads']}; per-process peak RSS "
                      + ", ".join(f"{x:.0f}" for x in r["workers_rss_mib"]) + " MiB")
            for r in rows:
                if r.get("kind") in ("zarrtx-dask", "hdmf") and r.get("workers_rss_mib"):
                    note = r.get("workers_note", "per worker")
                    print(f"    {r['writer']}: worker peak RSS ({note}) "
                          + ", ".join(f"{x:.0f}" for x in r["workers_rss_mib"]) + " MiB")
    if results.get("hdmf_status"):
        print(f"\n  hdmf-zarr: not installed ({results['hdmf_status']})")
    print_goals(results)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def print_goals(results: dict) -> None:
    hr("GOALS (issue 5), computed from the numbers above")
    print("  zarrtx = 'zarrtx Store.add, threads (in memory)'; the best zarrtx writer of the same run in brackets.")
    for size in results["sizes"]:
        mib = size["mib"]
        for codec, rows in size["codecs"].items():
            good = ok_rows(rows)
            z = [r for r in good if r.get("zarrtx")]
            ref = next((r for r in z if r.get("ref")), None)
            best = max(z, key=lambda r: r["mib_s"], default=None)
            sd = next((r for r in good if r["writer"] == "spatialdata.write"), None)
            tag = f"{mib:.0f} MiB {'zstd' if codec == 'zstd' else 'none'}"
            targets = []
            if codec == "zstd":
                targets.append((f">= {GOAL_ENCODE}x the zstd encode-only limit ({size['encode_limit']['mib_s']:.0f}"
                                " MiB/s)", size["encode_limit"]["mib_s"], GOAL_ENCODE))
            else:
                targets.append((f">= {GOAL_DISK}x the disk bandwidth ({size['disk']['mib_s']:.0f} MiB/s, the"
                                " higher of before/after)", size["disk"]["mib_s"], GOAL_DISK))
            if sd:
                targets.append((f">= {GOAL_SPATIALDATA}x spatialdata.write ({sd['mib_s']:.0f} MiB/s)", sd["mib_s"],
                                GOAL_SPATIALDATA))
            else:
                print(f"  {tag}: >= {GOAL_SPATIALDATA}x spatialdata.write: no spatialdata.write row that passed its"
                      " check -> not evaluated")
            for text, base, goal in targets:
                if not ref:
                    print(f"  {tag}: {text}: zarrtx threads row missing or failed -> NOT MET")
                    continue
                rr, rb = ref["mib_s"] / base, best["mib_s"] / base
                print(f"  {tag}: {text}: {rr:.2f}x -> {verdict(rr >= goal)}"
                      f"   [best: {best['writer']}, {rb:.2f}x -> {verdict(rb >= goal)}]")
            for r in rows:
                if not (r.get("zarrtx") and r.get("streaming")):
                    continue
                if "error" in r:
                    print(f"  {tag}: <= {GOAL_STREAM_MIB} MiB per worker, {r['writer']}: failed -> NOT MET")
                    continue
                if r.get("workers_rss_mib"):
                    peak, what = max(r["workers_rss_mib"]), "largest worker"
                else:
                    peak, what = r["rss_mib"], f"the process, {r.get('rss_start_mib', 0):.0f} MiB before writing"
                print(f"  {tag}: <= {GOAL_STREAM_MIB} MiB per worker when streaming, {r['writer']}: {peak:.0f} MiB"
                      f" ({what}) -> {verdict(peak <= GOAL_STREAM_MIB)}")
    print("\n  One run on a shared, noisy machine (other jobs may have used the cores and the disk meanwhile; see the"
          " load averages). The page cache was not dropped (input read from RAM); every writer's time ends with its"
          " data on disk (syncfs).")


# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="512,2048", help="image sizes in MiB, comma-separated (default 512,2048)")
    ap.add_argument("--codecs", default="zstd,none", help="zstd (level 0) and/or none (default both)")
    ap.add_argument("--procs", default="1,2,4", help="write-part process counts (default 1,2,4)")
    ap.add_argument("--dask-workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    ap.add_argument("--out", default="/tmp/zarrtx-bench-parallel",
                    help="where the input .npy and the stores go (default /tmp/zarrtx-bench-parallel); what the run"
                    " makes there is removed at the end")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--json", help="also write all results to this JSON file")
    # Child mode (one writer in this fresh process; used by the orchestrator).
    ap.add_argument("--child", help=argparse.SUPPRESS)
    for opt in ("--npy", "--store", "--codec", "--peer", "--peer-dir"):
        ap.add_argument(opt, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=CORES, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return a
    a.sizes = [float(s) for s in a.sizes.split(",") if s.strip()]
    a.codecs = [c.strip() for c in a.codecs.split(",") if c.strip()]
    if not set(a.codecs) <= {"zstd", "none"}:
        ap.error("--codecs takes zstd and/or none")
    a.procs = [int(p) for p in a.procs.split(",") if p.strip()]
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.child:
        return child_main(a)
    warnings.simplefilter("ignore")
    zx = zarrtx_bin()
    peer = find_peer_dir()
    a.peer_dir = str(peer)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    need = max(a.sizes) * MiB * 3.2
    free = shutil.disk_usage(out).free
    if free < need:
        sys.exit(f"parallel_image: {out} has {free / 2**30:.1f} GiB free, needs about {need / 2**30:.1f} GiB")
    peer_names = [] if a.skip_peers else [name for name, _ in load_peer(peer)[1]]
    hdmf = None if a.skip_peers else hdmf_status()
    import zarrtx

    print(f"parallel_image: {CORES} cores, zarrtx {zarrtx.__version__} ({zx}), peers {peer}, out {out}")
    print(f"  sizes {[f'{s:g} MiB' for s in a.sizes]}, codecs {a.codecs}, write-part processes {a.procs}, "
          f"dask workers {a.dask_workers}; peers: {peer_names or 'skipped'}"
          + ("" if a.skip_peers else f", hdmf-zarr: {'yes' if hdmf is None else 'not installed (' + hdmf + ')'}"))
    print("  one run on a shared machine: other jobs may use the cores and the disk meanwhile", flush=True)
    results = {"machine": {"cores": CORES, "python": sys.version.split()[0]}, "zarrtx": zx, "peer_dir": str(peer),
               "out": str(out), "loadavg_start": [round(x, 2) for x in os.getloadavg()], "hdmf_status": hdmf,
               "sizes": []}
    try:
        for mib in a.sizes:
            results["sizes"].append(bench_size(a, zx, mib, out, peer_names, hdmf is None))
    finally:
        # Only what this run made (the input .npy files, the stores, the disk probe), then --out if left empty.
        for p in [*out.glob("image-*.npy"), out / "disk-probe.bin"]:
            p.unlink(missing_ok=True)
        shutil.rmtree(out / "stores", ignore_errors=True)
        try:
            out.rmdir()
        except OSError:
            pass
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print_tables(results)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults written to {a.json}")
    return 0


if __name__ == "__main__":
    # Run as the importable module `parallel_image`, not as __main__, so that what is pickled to worker processes
    # refers to modules they can import (PYTHONPATH holds bench/).
    import parallel_image

    sys.exit(parallel_image.main())
