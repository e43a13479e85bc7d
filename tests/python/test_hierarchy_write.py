"""Parallel writes of ONE array of a plain Zarr v3 hierarchy (issue 5, item 3): an NWB file written by the real
hdmf-zarr 0.14 (Zarr v3, consolidated metadata at the root), whose large dataset zarrtx fills with processes and
a real ``distributed.LocalCluster``; a new dataset added to it; a part writer SIGKILLed and its plan resumed;
readers (zarr-python, pynwb through hdmf-zarr) seeing the array before or after the commit, never in between.

Run: .venv-py312/bin/python -m pytest tests/python/test_hierarchy_write.py
"""
from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import pickle
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest


T, C = 6000, 24  # samples x channels
CHUNKS = (500, 24)


def recording(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-3000, 3000, (T, C), dtype=np.int16)


def write_nwb(path: Path, data: np.ndarray) -> None:
    """An NWB file written by hdmf-zarr with one ElectricalSeries-like TimeSeries holding ``data`` (zeros make
    an 'allocated, not yet written' dataset: zarr stores no chunk of them)."""
    from hdmf_zarr.nwb import NWBZarrIO
    from hdmf_zarr.utils import ZarrDataIO
    from pynwb import NWBFile, TimeSeries

    nwb = NWBFile(
        session_description="zarrtx parallel fill",
        identifier="zarrtx-test",
        session_start_time=datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc),
    )
    nwb.add_acquisition(
        TimeSeries(name="ts", data=ZarrDataIO(data=data, chunks=CHUNKS), unit="volts", rate=30000.0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBZarrIO(str(path), mode="w") as io:
            io.write(nwb)


def read_nwb_data(path: Path) -> np.ndarray:
    from hdmf_zarr.nwb import NWBZarrIO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBZarrIO(str(path), mode="r") as io:
            nwb = io.read()
            return np.asarray(nwb.acquisition["ts"].data[:])


def consolidated_keys(path: Path) -> set[str]:
    doc = json.loads((path / "zarr.json").read_text())
    return set(doc.get("consolidated_metadata", {}).get("metadata", {}))


def read_zarr(path: Path, key: str, consolidated: bool) -> np.ndarray:
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = zarr.open_group(str(path), mode="r", use_consolidated=consolidated)
        return np.asarray(group[key][...])


def test_hdmf_zarr_nwb_dataset_filled_by_processes_reads_back_through_pynwb(tmp_path, zt):
    path = tmp_path / "rec.nwb.zarr"
    write_nwb(path, np.zeros((T, C), np.int16))
    assert not [p for p in (path / "acquisition/ts/data").rglob("*") if p.name != "zarr.json"], "allocated, empty"
    before = (path / "acquisition/ts/data/zarr.json").read_text()
    data = recording()
    h = zt.open_hierarchy(path)
    commit = h.write_array("acquisition/ts/data", data, fill=True, n_jobs=2, executor="processes")
    assert commit["mode"] == "fill" and commit["path"] == "acquisition/ts/data"
    assert (path / "acquisition/ts/data/zarr.json").read_text() == before, "the array's metadata is unchanged"
    np.testing.assert_array_equal(read_nwb_data(path), data)
    np.testing.assert_array_equal(read_zarr(path, "acquisition/ts/data", consolidated=True), data)
    np.testing.assert_array_equal(read_zarr(path, "acquisition/ts/data", consolidated=False), data)
    assert h.plans()[0]["committed"]["mode"] == "fill"


def test_new_dataset_from_a_dask_cluster_with_unaligned_chunks(tmp_path, zt):
    import dask.array as da
    import zarrtx.dask
    from distributed import Client, LocalCluster

    path = tmp_path / "rec.nwb.zarr"
    write_nwb(path, recording(1))
    data = recording(2)
    darr = da.from_array(data, chunks=(777, 13))  # blocks straddle the 500 x 24 chunks
    h = zt.open_hierarchy(path)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            commit = zarrtx.dask.store_array(
                darr, h, "analysis/spikes/data", chunks=CHUNKS, dimension_names=["time", "channel"],
                attributes={"unit": "volts"}, client=client,
            )
    assert commit == {**commit, "mode": "create", "consolidated": True}
    keys = consolidated_keys(path)
    assert {"analysis/spikes", "analysis/spikes/data"} <= keys
    np.testing.assert_array_equal(read_zarr(path, "analysis/spikes/data", consolidated=True), data)
    np.testing.assert_array_equal(read_zarr(path, "analysis/spikes/data", consolidated=False), data)
    meta = h.metadata("analysis/spikes/data")
    assert meta["attributes"] == {"unit": "volts"} and meta["dimension_names"] == ["time", "channel"]
    np.testing.assert_array_equal(read_nwb_data(path), recording(1))  # the NWB file still reads


def _slow_part_writer(path: str, plan_id: str, part: int, region, seed: int) -> None:
    import zarrtx

    h = zarrtx.open_hierarchy(path)
    full = recording(seed)
    (t0, t1), (c0, c1) = region

    def blocks():
        for s in range(t0, t1, 100):
            time.sleep(0.2)
            yield (s, c0), full[s : min(s + 100, t1), c0:c1]

    h.write_part(plan_id, part, blocks=blocks())


def test_a_killed_part_writer_is_resumed_and_readers_never_see_the_array_early(tmp_path, zt):
    import zarr
    import zarrtx.dask

    path = tmp_path / "h.zarr"
    h = zt.open_hierarchy(path, create=True)
    data = recording(3)
    plan = h.create_plan("raw/data", shape=data.shape, dtype="int16", chunks=CHUNKS, parts=4)
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=_slow_part_writer, args=(str(path), plan["plan_id"], 1, plan["parts"][1], 3))
    victim.start()
    started = path / ".zarrtx/plans" / plan["plan_id"] / "parts/1.claim.0"
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    assert victim.exitcode == -signal.SIGKILL
    status = h.plan_status(plan["plan_id"])
    assert 1 in status["started"] and 1 in status["missing"]
    # Before the commit a plain reader finds no array, and the hidden .zarrtx directory disturbs nothing.
    group = zarr.open_group(str(path), mode="r")
    assert [name for name, _ in group.members()] == []
    commit = zarrtx.dask.resume(h, plan["plan_id"], data)
    assert commit["mode"] == "create"
    np.testing.assert_array_equal(read_zarr(path, "raw/data", consolidated=False), data)
    assert zarrtx.dask.resume(h, plan["plan_id"], data) == commit, "resuming a committed plan returns its commit"


def test_bad_array_plans_are_refused_and_change_nothing(tmp_path, zt):
    from zarrtx.errors import ElementExists, InvalidElement, StorageError

    path = tmp_path / "rec.nwb.zarr"
    write_nwb(path, recording())
    h = zt.open_hierarchy(path)

    def snapshot():
        return sorted(
            (str(p.relative_to(path)), p.stat().st_size)
            for p in path.rglob("*")
            if p.is_file() and ".zarrtx" not in p.parts
        )

    before = snapshot()
    with pytest.raises(ElementExists, match="acquisition/ts/data"):
        h.write_array("acquisition/ts/data", recording())
    with pytest.raises(InvalidElement, match="fill=True"):
        h.create_plan("acquisition/ts/data", fill=True, shape=(T, C), parts=2)
    with pytest.raises(InvalidElement, match="shape"):
        h.write_array("acquisition/ts/data", recording()[:10], fill=True)
    with pytest.raises(InvalidElement, match="overlap"):
        h.create_plan("new", shape=(T, C), dtype="int16", chunks=CHUNKS, parts=[[(0, 1000), (0, 24)], [(500, 1500), (0, 24)]])
    assert snapshot() == before
    with pytest.raises(StorageError, match="SpatialData store"):
        zt.open_hierarchy(zt.open(tmp_path / "sd.zarr").path)


def test_a_hierarchy_pickles_to_its_path(tmp_path, zt):
    h = zt.open_hierarchy(tmp_path / "h.zarr", create=True)
    blob = pickle.dumps(h)
    assert len(blob) < 400
    h2 = pickle.loads(blob)
    assert h2.path == h.path and h2.metadata("")["node_type"] == "group"
