"""Parallel writes of ONE image or labels element (issue 5): ``Store.add(..., n_jobs=, executor=)`` with threads,
processes, an Executor instance and a real ``distributed.LocalCluster``; ``zarrtx.dask.store`` on the cluster with
unaligned dask chunks; readers never seeing the element before the commit; a failing worker; a part writer killed
with SIGKILL and its plan resumed.

Every result is compared with a single-writer reference (plain ``Store.add``, or the engine's single-writer
``add_raster`` for a pyramid computed by zarrtx) through BOTH the real ``spatialdata.read_zarr`` and zarr-python
(``zarr.open_group`` / ``zarr.open_array`` on the level arrays): pixel values at every level, dims, channel names,
transformations and the NGFF metadata.

Run: .venv-py312/bin/python -m pytest tests/python/test_parallel_write.py
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from _api_helpers import read_sdata, require_zarrtx, sdata_names, store_fingerprint

SHAPE = (2, 1500, 1300)  # 3 x 3 chunks of 512 x 512: enough write units for 8 parts
CHUNKS = (2, 512, 512)
CHANNELS = ["dapi", "cd45"]


# ----------------------------------------------------------------------------------------------------------------
# Data and comparison helpers
# ----------------------------------------------------------------------------------------------------------------


def image_array(shape=SHAPE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, shape, dtype=np.uint16)


def labels_array(shape=SHAPE[1:], seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 50, (shape[0] // 25 + 1, shape[1] // 25 + 1), dtype=np.int32)
    return np.ascontiguousarray(np.kron(coarse, np.ones((25, 25), np.int32))[: shape[0], : shape[1]])


def transformations(ndim_spatial=2):
    from spatialdata.transformations import Scale, Sequence, Translation

    axes = ("y", "x")
    return {
        "global": Scale([0.5, 0.25], axes=axes),
        "aligned": Sequence([Scale([2.0, 2.0], axes=axes), Translation([10.0, -3.5], axes=axes)]),
    }


def parse_image(data, chunks=CHUNKS, scale_factors=None):
    from spatialdata.models import Image2DModel

    return Image2DModel.parse(
        data, dims=("c", "y", "x"), c_coords=CHANNELS, transformations=transformations(), chunks=chunks,
        scale_factors=scale_factors,
    )


def parse_labels(data, chunks=CHUNKS[1:]):
    from spatialdata.models import Labels2DModel

    return Labels2DModel.parse(data, dims=("y", "x"), transformations=transformations(), chunks=chunks)


def _levels(el) -> list:
    from xarray import DataTree

    if not isinstance(el, DataTree):
        return [el]
    keys = sorted((k for k in el.children if k.startswith("scale")), key=lambda k: int(k[5:]))
    return [next(iter(el[k].ds.data_vars.values())) for k in keys]


def _multiscales(group) -> dict:
    attrs = json.loads(json.dumps(dict(group.attrs)))
    for ms in attrs["ome"]["multiscales"]:
        ms.pop("name", None)  # "/images/<name>": differs by construction
    return attrs


def assert_same_element(path, ref: str, name: str, *, kind="images", expected=None, same_chunks=True) -> None:
    """Element `name` equals element `ref` of the store at `path`, read by spatialdata.read_zarr and by zarr-python:
    pixels at every level, dims, channel names, transformations, NGFF metadata (and the arrays' zarr metadata,
    chunks included, when `same_chunks`). `expected`: level 0's pixels, checked too."""
    import zarr
    from spatialdata.transformations import get_transformation

    sd = read_sdata(path)
    group = getattr(sd, kind)
    assert ref in group and name in group, f"spatialdata.read_zarr sees {sdata_names(sd)}"
    a, b = group[ref], group[name]
    assert type(a) is type(b)
    la, lb = _levels(a), _levels(b)
    assert len(la) == len(lb) >= 1
    for i, (x, y) in enumerate(zip(la, lb)):
        assert x.dims == y.dims, f"level {i}"
        assert x.shape == y.shape and x.dtype == y.dtype, f"level {i}"
        if "c" in x.coords:
            assert list(x.coords["c"].values) == list(y.coords["c"].values)
        np.testing.assert_array_equal(np.asarray(x.data), np.asarray(y.data), err_msg=f"spatialdata, level {i}")
    if expected is not None:
        np.testing.assert_array_equal(np.asarray(lb[0].data), expected)
    assert get_transformation(a, get_all=True) == get_transformation(b, get_all=True)
    assert get_transformation(b, get_all=True).keys() == {"global", "aligned"}

    root = Path(path) / kind
    ga, gb = zarr.open_group(str(root / ref), mode="r"), zarr.open_group(str(root / name), mode="r")
    assert _multiscales(ga) == _multiscales(gb)
    datasets = gb.attrs["ome"]["multiscales"][0]["datasets"]
    assert len(datasets) == len(la)
    for i, ds in enumerate(datasets):
        za = zarr.open_array(str(root / ref / ds["path"]), mode="r")
        zb = zarr.open_array(str(root / name / ds["path"]), mode="r")
        assert za.shape == zb.shape and za.dtype == zb.dtype
        if same_chunks:
            assert za.metadata.to_dict() == zb.metadata.to_dict(), f"zarr metadata of level {i}"
        pb = zb[...]
        np.testing.assert_array_equal(za[...], pb, err_msg=f"zarr-python, level {i}")
        np.testing.assert_array_equal(pb, np.asarray(lb[i].data), err_msg=f"zarr-python vs spatialdata, level {i}")
        if i == 0 and expected is not None:
            np.testing.assert_array_equal(pb, expected)


def plan_of(store, name: str) -> dict:
    """The write plan that committed element `name` (its commit's txn is the plan id)."""
    (entry,) = [e for e in store.history() if any(s.endswith("/" + name) for s in e["summary"])]
    return store._handle().plan_status(entry["txn"])


def part_writers(path, plan_id: str) -> set[int]:
    """The pids that wrote the parts of a plan (from the parts' `.done.<attempt>` records, docs/layout.md)."""
    parts = Path(path) / ".zarrtx" / "plans" / plan_id / "parts"
    return {json.loads(p.read_text())["writer"]["pid"] for p in parts.glob("*.done.*")}


def assert_clean(store) -> None:
    report = store.verify()
    assert report["problems"] == [], report


# ----------------------------------------------------------------------------------------------------------------
# Store.add(..., n_jobs=4) on threads, processes and an Executor instance
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["threads", "processes", "thread-pool", "spawn-pool"])
def test_add_n_jobs_equals_single_writer(zt, tmp_path, executor):
    """n_jobs=4 with executor "threads" / "processes", and Executor instances (a ThreadPoolExecutor of 3; a
    ProcessPoolExecutor of 2 with the "spawn" start method, where parts travel pickled)."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img, lab = image_array(), labels_array()
    store.add("ref_img", parse_image(img))
    store.add("ref_lab", parse_labels(lab))
    if executor in ("thread-pool", "spawn-pool"):
        if executor == "thread-pool":
            pool, img_parts = ThreadPoolExecutor(3), 6
        else:
            pool, img_parts = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")), 4
        with pool:
            store.add("img", parse_image(img), executor=pool)  # n_jobs: the executor's size
            store.add("lab", parse_labels(lab), n_jobs=4, executor=pool)
    else:
        img_parts = 8
        store.add("img", parse_image(img), n_jobs=4, executor=executor)
        store.add("lab", parse_labels(lab), n_jobs=4, executor=executor)
    for name in ("img", "lab"):
        status = plan_of(store, name)  # really written through a plan, in several parts, by the workers
        assert status["committed"] is not None and status["missing"] == []
        assert len(status["plan"]["parts"]) == (img_parts if name == "img" else 8)
        pids = part_writers(path, status["plan"]["plan_id"])
        if executor in ("processes", "spawn-pool"):
            assert pids and os.getpid() not in pids
        else:
            assert pids == {os.getpid()}
    assert store.elements() == {"ref_img": "images", "ref_lab": "labels", "img": "images", "lab": "labels"}
    assert_same_element(path, "ref_img", "img", expected=img)
    assert_same_element(path, "ref_lab", "lab", kind="labels", expected=lab)
    assert_clean(store)


def test_add_datatree_with_levels_keeps_them(zt, tmp_path):
    """A DataTree with lower levels is stored as given (as spatialdata.write stores it): n_jobs does not apply and
    says so."""
    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img = image_array((2, 700, 600))
    tree = parse_image(img, chunks=(2, 256, 256), scale_factors=[2, 2])
    store.add("ref", tree)
    with pytest.warns(UserWarning, match="stored as given"):
        store.add("tree", tree, n_jobs=4, executor="threads")
    assert_same_element(path, "ref", "tree", expected=img)


def test_bad_arguments_and_overwrite(zt, tmp_path):
    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img = image_array((2, 600, 600))
    store.add("img", parse_image(img, chunks=(2, 256, 256)))
    before = store_fingerprint(store, path)
    for kwargs in ({"n_jobs": 0}, {"n_jobs": "4"}, {"executor": "gpu"}, {"executor": 4}):
        with pytest.raises(zt.InvalidElement):
            store.add("other", parse_image(img), **kwargs)
    with pytest.raises(zt.ElementExists):
        store.add("img", parse_image(img, chunks=(2, 256, 256)), n_jobs=2)
    assert store_fingerprint(store, path) == before
    assert not any((path / ".zarrtx" / "plans").glob("*/plan.json"))  # refused before a plan was created
    # overwrite=True for a new name is an ordinary add
    store.add("img2", parse_image(img, chunks=(2, 256, 256)), overwrite=True, n_jobs=2)
    assert_same_element(path, "img", "img2", expected=img)


def test_parallel_overwrite_replaces_the_element_atomically(zt, tmp_path):
    path = tmp_path / "s.zarr"
    store = zt.open(path)
    old = image_array((2, 600, 600), seed=3)
    new = image_array((2, 600, 600), seed=4)
    store.add("img", parse_image(old, chunks=(2, 256, 256)))
    before = store.version
    lazy = store.read_element("img")  # a lazy read pinned to the old version
    # the name is matched case-insensitively, as for every add: "IMG" replaces "img"
    version = store.add("IMG", parse_image(new, chunks=(2, 256, 256)), overwrite=True, n_jobs=2, executor="processes")
    assert version == before + 1
    assert store.elements() == {"IMG": "images"}
    np.testing.assert_array_equal(store.read_element("IMG").data.compute(), new)
    np.testing.assert_array_equal(lazy.data.compute(), old)
    store.add("ref", parse_image(new, chunks=(2, 256, 256)))
    assert_same_element(path, "ref", "IMG", expected=new)


# ----------------------------------------------------------------------------------------------------------------
# Readers never see the element before the commit
# ----------------------------------------------------------------------------------------------------------------

_GATE = threading.Event()


def _gated(block, block_info=None):
    if block_info[0]["chunk-location"][1] == 2:  # the last row of chunks waits for the test
        assert _GATE.wait(120), "the test never opened the gate"
    return block


def test_readers_never_see_the_element_before_commit(zt, tmp_path):
    import dask.array as da
    import zarr

    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img = image_array()
    darr = da.from_array(img, chunks=CHUNKS).map_blocks(_gated, dtype=img.dtype)
    _GATE.clear()
    result: dict = {}

    def run():
        try:
            result["version"] = store.add("gated", parse_image(darr), n_jobs=2, executor="threads")
        except BaseException as e:  # pragma: no cover - reported below
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    try:
        reader = zt.open(path, create=False)
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            plans = [p.name for p in (path / ".zarrtx" / "plans").glob("*") if (p / "plan.json").exists()]
            if plans:
                status = reader._handle().plan_status(plans[0])
                if status["done"]:
                    break
            time.sleep(0.05)
        assert status is not None and status["done"], "no part finished while the last row was held back"
        assert status["missing"], "every part finished although the gate is closed"
        # parts are on disk, the element is not: every reader agrees, several times over
        for _ in range(3):
            assert "gated" not in reader.elements()
            assert "gated" not in store.elements()
            assert "gated" not in sdata_names(read_sdata(path))
            assert "gated" not in sdata_names(reader.read())
            assert "gated" not in list(zarr.open_group(str(path), mode="r")["images"].keys())
            assert not (path / "images" / "gated").exists()
            assert reader._handle().plan_status(plans[0])["committed"] is None
            time.sleep(0.05)
    finally:
        _GATE.set()
        t.join(120)
    assert "error" not in result, result.get("error")
    assert "gated" in reader.elements()
    assert "gated" in sdata_names(read_sdata(path))
    np.testing.assert_array_equal(np.asarray(reader.read_element("gated").data), img)
    assert_clean(store)


# ----------------------------------------------------------------------------------------------------------------
# A failing worker; a killed worker and a resumed plan
# ----------------------------------------------------------------------------------------------------------------

_BOOMS: Counter = Counter()
_BOOM_LOCK = threading.Lock()


def _boom(block, block_info=None):
    loc = tuple(block_info[0]["chunk-location"])
    if loc == (0, 2, 1):
        with _BOOM_LOCK:
            _BOOMS[loc] += 1
        raise RuntimeError(f"boom in block {loc}")
    return block


def test_failing_worker_surfaces_and_leaves_nothing(zt, tmp_path):
    import dask.array as da

    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img = image_array()
    store.add("ref", parse_image(img))
    before = store_fingerprint(store, path)
    _BOOMS.clear()
    darr = da.from_array(img, chunks=CHUNKS).map_blocks(_boom, dtype=img.dtype)
    with pytest.raises(RuntimeError, match=r"boom in block \(0, 2, 1\)") as info:
        store.add("img", parse_image(darr), n_jobs=4, executor="threads")
    assert _BOOMS[(0, 2, 1)] == 2, "the failed part was not retried exactly once"
    assert store_fingerprint(store, path) == before  # nothing committed, nothing published
    assert "img" not in sdata_names(read_sdata(path))
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "write plan" in notes and "not in the store" in notes
    (plan_dir,) = [p for p in (path / ".zarrtx" / "plans").glob("*") if (p / "plan.json").exists()]
    status = store._handle().plan_status(plan_dir.name)
    assert status["committed"] is None and len(status["missing"]) == 1 and status["done"]
    assert plan_dir.name in notes
    # the plan is resumable with good data: only the missing part is written, then the element is committed
    import zarrtx.dask

    zarrtx.dask.resume(store, plan_dir.name, parse_image(img))
    assert_same_element(path, "ref", "img", expected=img)
    assert_clean(store)


def _die_once(block, marker, block_info=None):
    if tuple(block_info[0]["chunk-location"]) == (0, 1, 1) and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies in the middle of its part
    return block


def test_killed_worker_process_part_is_retried(zt, tmp_path):
    """A ProcessPoolExecutor worker SIGKILLed while writing a part breaks the pool: the parts it took down are run
    again in a fresh pool (the killed part's leftovers are cleared by the engine) and the element is complete."""
    import dask.array as da

    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img = image_array()
    store.add("ref", parse_image(img))
    marker = tmp_path / "killed"
    darr = da.from_array(img, chunks=CHUNKS).map_blocks(_die_once, marker=str(marker), dtype=img.dtype)
    store.add("img", parse_image(darr), n_jobs=2, executor="processes")
    assert marker.exists(), "no worker was killed"
    assert_same_element(path, "ref", "img", expected=img)
    assert_clean(store)


def _write_part_then_hang(store, plan_id, part, region, data, ready) -> None:
    """Writes the first rows of `part` then waits to be killed (run in a separate process)."""
    h = store._handle()
    (c0, _), (y0, y1), (x0, _) = region

    def blocks():
        half = (y1 - y0) // 2
        yield [c0, y0, x0], np.ascontiguousarray(data[:, :half, :])
        ready.set()
        time.sleep(300)
        yield [c0, y0 + half, x0], np.ascontiguousarray(data[:, half:, :])

    h.write_part(plan_id, part, blocks=blocks())


def test_killed_part_writer_then_resumed_plan(zt, tmp_path):
    import dask.array as da
    import zarrtx.dask

    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img = image_array()
    store.add("ref", parse_image(img))
    h = store._handle()
    plan = h.create_plan(
        "img", "image", ["c", "y", "x"], shape=list(SHAPE), dtype="uint16", parts=3, chunks=[2, 256, 256],
        channel_names=CHANNELS, transformations=_ngff(),
    )
    regions = plan["parts"]
    assert len(regions) == 3
    sl = [tuple(slice(a, b) for a, b in r) for r in regions]
    # part 0 is finished before anything goes wrong
    assert h.write_part(plan["plan_id"], 0, data=np.ascontiguousarray(img[sl[0]]))["written"]
    staged0 = path / ".zarrtx" / "plans" / plan["plan_id"] / "staged" / "s0"
    part0_files = {
        p.relative_to(staged0): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in staged0.rglob("*")
        if p.is_file() and p.name != "zarr.json"
    }
    assert part0_files
    # part 1's writer is SIGKILLed in the middle of its part
    ctx = multiprocessing.get_context()  # the default start method
    ready = ctx.Event()
    proc = ctx.Process(target=_write_part_then_hang, args=(store, plan["plan_id"], 1, regions[1], img[sl[1]], ready))
    proc.start()
    staged_row2 = staged0 / "c" / "0" / "2"  # the first block of part 1 is chunk row 2, complete
    try:
        assert ready.wait(60), "the part writer never started"
        deadline = time.monotonic() + 30
        while not (staged_row2.is_dir() and any(staged_row2.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert staged_row2.is_dir() and any(staged_row2.iterdir()), "part 1 wrote no chunk before the kill"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    status = h.plan_status(plan["plan_id"])
    assert status["done"] == [0] and 1 in status["started"] and status["missing"] == [1, 2]
    assert "img" not in store.elements() and "img" not in sdata_names(read_sdata(path))
    # run the plan again (threads): the killed part is redone, part 0 is not touched, the element is committed
    version = zarrtx.dask.resume(store, plan["plan_id"], da.from_array(img, chunks=(2, 700, 900)))
    assert store.version == version
    assert h.plan_status(plan["plan_id"])["committed"] == version
    installed0 = path / "images" / "img" / "s0"
    for rel, ident in part0_files.items():
        p = installed0 / rel
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == ident, f"finished part 0 was rewritten ({rel})"
    assert_same_element(path, "ref", "img", expected=img, same_chunks=False)
    assert zarrtx.dask.resume(store, plan["plan_id"], img) == version  # committed already: idempotent
    assert_clean(store)


def _ngff():
    from zarrtx._transform import to_ngff

    return to_ngff(transformations(), ("c", "y", "x"))


# ----------------------------------------------------------------------------------------------------------------
# A real Dask cluster (2 worker processes, 1 thread each)
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    require_zarrtx()
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        )
        c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_add_on_local_cluster(zt, tmp_path, client):
    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img, lab = image_array(), labels_array()
    store.add("ref_img", parse_image(img))
    store.add("ref_lab", parse_labels(lab))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Sending large graph": parse() embeds the numpy array in the graph
        store.add("img", parse_image(img), n_jobs=4, executor=client)
        store.add("lab", parse_labels(lab), executor=client)
    assert len(plan_of(store, "img")["plan"]["parts"]) == 8
    assert len(plan_of(store, "lab")["plan"]["parts"]) == 4  # 2 workers x 1 thread, two parts each
    worker_pids = set(client.run(os.getpid).values())
    for name in ("img", "lab"):
        pids = part_writers(path, plan_of(store, name)["plan"]["plan_id"])
        assert pids and pids <= worker_pids  # written on the Dask workers, not by the client
    assert_same_element(path, "ref_img", "img", expected=img)
    assert_same_element(path, "ref_lab", "lab", kind="labels", expected=lab)
    assert_clean(store)


def test_dask_store_unaligned_chunks_on_local_cluster(zt, tmp_path, client):
    """Dask chunks of 700 x 900 against Zarr chunks of 1024 x 1024, an array of 3 x 3 chunks: equal to the
    single-writer reference, with and without a pyramid computed at the commit."""
    import dask.array as da
    import zarrtx.dask
    from spatialdata.models import Image2DModel

    path = tmp_path / "s.zarr"
    store = zt.open(path)
    img = image_array((2, 2500, 2300), seed=3)
    lab = labels_array((2500, 2300), seed=4)
    darr = da.from_array(img, chunks=(2, 700, 900))
    assert darr.numblocks == (1, 4, 3)
    store.add("ref", parse_image(darr, chunks=None))  # plain Store.add: Zarr chunks follow the dask chunks
    v = zarrtx.dask.store(
        darr, store, "img", dims=("c", "y", "x"), transformations=transformations(), channel_names=CHANNELS,
        chunks=(2, 1024, 1024), client=client,
    )
    assert store.version == v
    status = plan_of(store, "img")
    assert status["plan"]["write_unit"] == [2, 1024, 1024] and len(status["plan"]["parts"]) == 4
    assert_same_element(path, "ref", "img", expected=img, same_chunks=False)
    import zarr

    assert zarr.open_array(str(path / "images" / "img" / "s0"), mode="r").chunks == (2, 1024, 1024)

    # pyramids computed at the commit equal the engine's single-writer pyramid; a DataArray input gives its dims,
    # channel names and transformations
    h = store._handle()
    h.add_raster("ref_pyr", "image", ["c", "y", "x"], data=img, chunks=[2, 1024, 1024], scale_factors=[2, 2],
                 channel_names=CHANNELS, transformations=_ngff())
    h.add_raster("ref_lab", "labels", ["y", "x"], data=lab, scale_factors=[2, 3], transformations=_ngff_labels())
    element = Image2DModel.parse(darr, dims=("c", "y", "x"), c_coords=CHANNELS, transformations=transformations())
    zarrtx.dask.store(element, store, "pyr", scale_factors=[2, 2], client=client)
    zarrtx.dask.store(
        da.from_array(lab, chunks=(700, 900)), store, "lab", kind="labels", transformations=transformations(),
        scale_factors=[2, 3], parts=5, client=client,
    )
    assert len(plan_of(store, "lab")["plan"]["parts"]) == 5
    assert_same_element(path, "ref_pyr", "pyr", expected=img)
    assert_same_element(path, "ref_lab", "lab", kind="labels", expected=lab)
    assert len(_levels(read_sdata(path).labels["lab"])) == 3
    assert_clean(store)


def _ngff_labels():
    from zarrtx._transform import to_ngff

    return to_ngff(transformations(), ("y", "x"))


def _boom_anywhere(block, block_info=None):
    if tuple(block_info[0]["chunk-location"]) == (1, 1):
        raise ValueError("worker failure in block (1, 1)")
    return block


def test_dask_store_failing_worker_on_local_cluster(zt, tmp_path, client):
    import dask.array as da
    import zarrtx.dask

    path = tmp_path / "s.zarr"
    store = zt.open(path)
    before = store_fingerprint(store, path)
    lab = labels_array((1200, 1100))
    darr = da.from_array(lab, chunks=(400, 400)).map_blocks(_boom_anywhere, dtype=lab.dtype)
    with pytest.raises(ValueError, match=r"worker failure in block \(1, 1\)"):
        zarrtx.dask.store(darr, store, "lab", kind="labels", chunks=(512, 512), client=client)
    assert store_fingerprint(store, path) == before
    assert "lab" not in store.elements() and "lab" not in sdata_names(read_sdata(path))
    # the same store accepts the element afterwards, from good data: here a numpy array, scattered part by part
    zarrtx.dask.store(lab, store, "lab", kind="labels", chunks=(512, 512), client=client)
    assert len(plan_of(store, "lab")["plan"]["parts"]) == 4
    np.testing.assert_array_equal(np.asarray(store.read_element("lab").data), lab)
    assert_clean(store)
