"""The user's own pytest matrix (shared/seeds/spatialdata-concurrent-writes.txt), rewritten for zarrtx's Python API.

The seed adds Image2DModel images and appends TableModel tables (rows for region{n}) from a sequential executor, a
ThreadPoolExecutor and a ProcessPoolExecutor (10 workers on pools of min(8, n)); with plain spatialdata the thread
and process cases lose elements and rows. Here every worker writes through `zarrtx.Store` — the Store itself is
handed to the worker (pickled for processes) or the worker opens the path — and afterwards the real, unmodified
`spatialdata.read_zarr` and `Store.read()` must both show exactly the expected elements, regions and rows, every
worker's rows exactly once. Each case also runs with 32 tasks on pools of 8, and starting from a store that
spatialdata itself wrote (the seed's "backed" variants; zarrtx adopts it, concurrently).

Worker functions are module-level so that ProcessPoolExecutor can pickle them.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _api_helpers import read_sdata, run_tasks, sdata_names

pytestmark = pytest.mark.timeout(900)

INSTANCE_KEY = "instance_id"
REGION_KEY = "region"
TABLE = "table"
FUTURES_TIMEOUT = 300  # CI machines are 2 slow cores


class SequentialExecutor(Executor):
    """The seed's baseline executor: runs each task at submit time."""

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # like a real executor: the error surfaces from result()
            future.set_exception(e)
        return future


EXECUTORS = [ProcessPoolExecutor, ThreadPoolExecutor, SequentialExecutor]
EXECUTOR_IDS = ["process", "thread", "sequential"]


# --------------------------------------------------------------------------------------------------------------
# The seed's data, made reproducible per region so that the parent can check every worker's rows and pixels
# --------------------------------------------------------------------------------------------------------------


def _get_table(region: str = "region0", n_obs: int = 100, n_vars: int = 10):
    """The seed's table: n_obs x n_vars normal X, obs columns a, b, c, instance_id 0..n_obs-1, region; parsed by
    TableModel. The random numbers depend on the region only (the seed used one module-level RNG)."""
    from anndata import AnnData
    from spatialdata.models import TableModel

    rng = np.random.default_rng(int(region.removeprefix("region")))
    adata = AnnData(
        rng.normal(size=(n_obs, n_vars)),
        obs=pd.DataFrame(rng.normal(size=(n_obs, 3)), columns=["a", "b", "c"]),
    )
    adata.obs[INSTANCE_KEY] = np.arange(adata.n_obs)
    adata.obs[REGION_KEY] = region
    return TableModel.parse(adata=adata, region=region, region_key=REGION_KEY, instance_key=INSTANCE_KEY)


def _image(process_num: int, width: int):
    from spatialdata.models import Image2DModel

    return Image2DModel.parse(np.full(shape=(1, width, width), fill_value=process_num), dims=("c", "y", "x"))


def _labels_array(process_num: int, width: int) -> np.ndarray:
    return (np.arange(width * width, dtype=np.int32).reshape(width, width) % 7) + 10 * process_num


def _labels(process_num: int, width: int):
    from spatialdata.models import Labels2DModel

    return Labels2DModel.parse(_labels_array(process_num, width), dims=("y", "x"))


def _as_store(target):
    """Workers receive either a (pickled) Store or the store's path."""
    if isinstance(target, (str, Path)):
        import zarrtx

        return zarrtx.open(target)
    return target


def _who() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


# --------------------------------------------------------------------------------------------------------------
# Workers (module-level: picklable)
# --------------------------------------------------------------------------------------------------------------


def process_that_adds_image(target, process_num: int, width: int = 10):
    store = _as_store(target)
    version = store.add(f"image{process_num}", _image(process_num, width))
    return process_num, version, _who()


def process_that_adds_labels(target, process_num: int, width: int = 10):
    store = _as_store(target)
    version = store.add(f"labels{process_num}", _labels(process_num, width))
    return process_num, version, _who()


def process_that_appends_table(target, process_num: int, n_obs: int = 100, n_vars: int = 10):
    store = _as_store(target)
    version = store.append(TABLE, _get_table(region=f"region{process_num}", n_obs=n_obs, n_vars=n_vars))
    return process_num, version, _who()


def _run(executor_cls, fn, target, n_multi: int, mp_context=None, **kw) -> list[tuple]:
    """The seed's loop: n_multi tasks on a pool of min(8, n_multi), results awaited with a generous timeout (and a
    failure, not a hang, when a worker gets stuck)."""
    extra = {"mp_context": mp_context} if mp_context is not None else {}
    executor = executor_cls(max_workers=min(8, n_multi), **extra)
    calls = [(fn, (target, process_num), kw) for process_num in range(1, n_multi + 1)]
    return sorted(run_tasks(executor, calls, timeout=FUTURES_TIMEOUT))


def _check_versions(results, n_multi: int, before: int | None, store) -> None:
    versions = [v for _, v, _ in results]
    assert all(isinstance(v, int) for v in versions), versions
    assert len(set(versions)) == n_multi, f"two writers report the same version: {sorted(versions)}"
    if before is not None:
        assert min(versions) > before
        assert store.version == before + n_multi, (
            f"{n_multi} commits on top of version {before} should give version {before + n_multi}, got {store.version}"
        )
    assert store.version == max(versions)


def _element_values(elem) -> np.ndarray:
    import xarray as xr

    if isinstance(elem, xr.DataArray):
        return np.asarray(elem.data.compute() if hasattr(elem.data, "compute") else elem.data)
    ds = elem["scale0"].ds
    (var,) = list(ds.data_vars)
    return np.asarray(ds[var].data.compute())


# --------------------------------------------------------------------------------------------------------------
# Element adds
# --------------------------------------------------------------------------------------------------------------


def _start_store(zt, path: Path, start: str):
    """'new': a store zarrtx creates (the worker gets the Store); 'backed': a store spatialdata wrote (the
    seed's `SpatialData().write(path)`), adopted by the workers themselves, which get the path."""
    if start == "new":
        store = zt.open(path)
        return store, store, store.version
    from spatialdata import SpatialData

    SpatialData().write(path)
    return None, path, None


ADD_KINDS = {
    "images": (process_that_adds_image, "image"),
    "labels": (process_that_adds_labels, "labels"),
}


@pytest.mark.parametrize("start", ["new", "backed"])
@pytest.mark.parametrize("n_multi", [10, 32], ids=["n10", "n32"])
@pytest.mark.parametrize("executor_cls", EXECUTORS, ids=EXECUTOR_IDS)
@pytest.mark.parametrize("kind", ["images", "labels"])
def test_concurrently_add_element(zt, tmp_path: Path, kind, executor_cls, n_multi, start, width: int = 10):
    path = tmp_path / "spatialdata.zarr"
    store, target, before = _start_store(zt, path, start)
    fn, prefix = ADD_KINDS[kind]

    results = _run(executor_cls, fn, target, n_multi, width=width)

    store = store or zt.open(path)
    _check_versions(results, n_multi, before, store)
    expected = {f"{prefix}{n}": kind for n in range(1, n_multi + 1)}
    if executor_cls is ProcessPoolExecutor and n_multi > 1:
        assert len({who[0] for _, _, who in results}) > 1, "the process pool ran everything in one process"

    # The real, unmodified reader.
    sdata = read_sdata(path)
    assert sdata_names(sdata) == expected, f"spatialdata.read_zarr: missing {set(expected) - set(sdata_names(sdata))}"
    # zarrtx's own view.
    assert dict(store.elements()) == expected
    mine = store.read()
    assert sdata_names(mine) == expected
    for n in range(1, n_multi + 1):
        name = f"{prefix}{n}"
        want = np.full((1, width, width), n) if kind == "images" else _labels_array(n, width)
        for who, got in (("spatialdata.read_zarr", sdata[name]), ("Store.read", mine[name])):
            arr = _element_values(got)
            np.testing.assert_array_equal(arr, want, err_msg=f"{name} via {who}")
            assert arr.dtype == want.dtype, (name, who, arr.dtype, want.dtype)


def test_adds_from_spawned_processes_receiving_the_pickled_store(zt, tmp_path: Path, n_multi: int = 10, width: int = 10):
    """As above, with fresh interpreters (spawn: nothing inherited, everything unpickled), as Dask workers are."""
    path = tmp_path / "spatialdata.zarr"
    store = zt.open(path)
    before = store.version
    results = _run(
        ProcessPoolExecutor, process_that_adds_image, store, n_multi, mp_context=multiprocessing.get_context("spawn"),
        width=width,
    )
    _check_versions(results, n_multi, before, store)
    expected = {f"image{n}" for n in range(1, n_multi + 1)}
    sdata = read_sdata(path)
    assert set(sdata.images) == expected
    for n in range(1, n_multi + 1):
        np.testing.assert_array_equal(_element_values(sdata[f"image{n}"]), np.full((1, width, width), n))


# --------------------------------------------------------------------------------------------------------------
# Table appends
# --------------------------------------------------------------------------------------------------------------


def _check_table(t, n_multi: int, n_obs: int, n_vars: int, who: str) -> None:
    expected_regions = {f"region{n}" for n in range(0, n_multi + 1)}
    regions = t.obs[REGION_KEY].astype(str).to_numpy()
    assert set(regions) == expected_regions, f"{who}: regions {sorted(set(regions))}"
    assert t.n_obs == n_obs * (1 + n_multi), f"{who}: n_obs {t.n_obs}, want {n_obs * (1 + n_multi)}"
    assert t.n_vars == n_vars
    assert isinstance(t.obs[REGION_KEY].dtype, pd.CategoricalDtype), f"{who}: region column is not categorical"
    attrs = t.uns["spatialdata_attrs"]
    assert set(np.atleast_1d(attrs["region"]).astype(str)) == expected_regions, f"{who}: uns region {attrs['region']}"
    assert attrs["region_key"] == REGION_KEY and attrs["instance_key"] == INSTANCE_KEY
    X = t.X.toarray() if hasattr(t.X, "toarray") else np.asarray(t.X)
    ids = t.obs[INSTANCE_KEY].to_numpy()
    for n in range(0, n_multi + 1):
        region = f"region{n}"
        mask = regions == region
        order = np.argsort(ids[mask], kind="stable")
        # every worker's rows exactly once
        np.testing.assert_array_equal(ids[mask][order], np.arange(n_obs), err_msg=f"{who}: instance ids of {region}")
        want = _get_table(region, n_obs=n_obs, n_vars=n_vars)
        np.testing.assert_array_equal(X[mask][order], np.asarray(want.X), err_msg=f"{who}: X rows of {region}")
        for col in ("a", "b", "c"):
            np.testing.assert_array_equal(
                t.obs[col].to_numpy()[mask][order], want.obs[col].to_numpy(), err_msg=f"{who}: obs {col} of {region}"
            )


@pytest.mark.parametrize("start", ["new", "backed"])
@pytest.mark.parametrize("n_multi", [10, 32], ids=["n10", "n32"])
@pytest.mark.parametrize("executor_cls", EXECUTORS, ids=EXECUTOR_IDS)
def test_concurrently_write_to_table(zt, tmp_path: Path, executor_cls, n_multi, start, n_obs: int = 100, n_vars: int = 10):
    """The seed's table test: region0 is written first, then every worker appends the rows of its own region."""
    path = tmp_path / "spatialdata.zarr"
    if start == "new":
        store = zt.open(path)
        store.add(TABLE, _get_table(region="region0", n_obs=n_obs, n_vars=n_vars))
        target, before = store, store.version
    else:  # the seed's backed variant: spatialdata writes the first table itself
        from spatialdata import SpatialData

        SpatialData(tables={TABLE: _get_table(region="region0", n_obs=n_obs, n_vars=n_vars)}).write(path)
        store, target, before = None, path, None

    results = _run(executor_cls, process_that_appends_table, target, n_multi, n_obs=n_obs, n_vars=n_vars)

    store = store or zt.open(path)
    _check_versions(results, n_multi, before, store)
    sdata = read_sdata(path)
    assert sdata_names(sdata) == {TABLE: "tables"}
    _check_table(sdata.tables[TABLE], n_multi, n_obs, n_vars, "spatialdata.read_zarr")
    assert dict(store.elements()) == {TABLE: "tables"}
    mine = store.read()
    assert sdata_names(mine) == {TABLE: "tables"}
    _check_table(mine.tables[TABLE], n_multi, n_obs, n_vars, "Store.read")
    _check_table(store.read_element(TABLE), n_multi, n_obs, n_vars, "Store.read_element")


@pytest.mark.parametrize("executor_cls", EXECUTORS, ids=EXECUTOR_IDS)
def test_first_appenders_create_the_table(zt, tmp_path: Path, executor_cls, n_multi: int = 10, n_obs: int = 100):
    """No table yet: n + 1 appenders (region0 included) race; the table is created exactly once (a second creation
    would drop the first creator's rows) and every region's rows are there once."""
    path = tmp_path / "spatialdata.zarr"
    store = zt.open(path)
    before = store.version
    calls = [(process_that_appends_table, (store, n), {"n_obs": n_obs}) for n in range(0, n_multi + 1)]
    results = run_tasks(executor_cls(max_workers=min(8, n_multi)), calls, timeout=FUTURES_TIMEOUT)
    _check_versions(results, n_multi + 1, before, store)
    _check_table(read_sdata(path).tables[TABLE], n_multi, n_obs, 10, "spatialdata.read_zarr")
    _check_table(store.read_element(TABLE), n_multi, n_obs, 10, "Store.read_element")


@pytest.mark.parametrize("executor_cls", EXECUTORS, ids=EXECUTOR_IDS)
def test_adds_and_appends_mixed(zt, tmp_path: Path, executor_cls, n_multi: int = 10, width: int = 10):
    """Labels adds and table appends for the same regions at once (the seed's two requirements together)."""
    path = tmp_path / "spatialdata.zarr"
    store = zt.open(path)
    store.add(TABLE, _get_table("region0"))
    calls = []
    for n in range(1, n_multi + 1):
        calls.append((process_that_adds_labels, (store, n), {"width": width}))
        calls.append((process_that_appends_table, (str(path), n), {}))
    run_tasks(executor_cls(max_workers=min(8, n_multi)), calls, timeout=FUTURES_TIMEOUT)
    sdata = read_sdata(path)
    want = {f"labels{n}": "labels" for n in range(1, n_multi + 1)} | {TABLE: "tables"}
    assert sdata_names(sdata) == want
    assert dict(store.elements()) == want
    _check_table(sdata.tables[TABLE], n_multi, 100, 10, "spatialdata.read_zarr")
