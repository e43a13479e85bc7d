"""Writers and readers on two cluster nodes whose locks are not shared.

Run by `scripts/test-two-nodes.sh` with `ZARRTX_NFS_NODE_A` / `ZARRTX_NFS_NODE_B` naming two mounts of one real NFS
export (nfs-ganesha on 127.0.0.1, mounted twice through FUSE by tools/nfs-node): each mount has its own caches and
its own lock table, like two nodes of a cluster. Without the rig (the normal test run) the same tests run on one
local directory with advisory locks switched off (`ZARRTX_LOCKS=off`), which is what a node sees of the other's
locks.

- The user's scenario that lost data before (issue "One storage seam..."): 16 processes, 8 per node, each adding
  two labels elements and appending rows for three regions to one table: every element and every row is there once,
  spatialdata reads the table (its region check passes) on the other node, and `verify` is clean.
- spatialdata reads the store on node B in a loop while writers on both nodes add elements: never an error, never
  an element listed with missing or other data.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import zxutil
from zxutil import expected_for_name, save_npy

pytestmark = pytest.mark.timeout(1200)

HERE = Path(__file__).resolve().parent
REGION_KEY, INSTANCE_KEY = "region", "instance_id"


@pytest.fixture
def nodes(tmp_path: Path):
    """(store seen from node A, store seen from node B, whether they are two real nodes)."""
    a, b = os.environ.get("ZARRTX_NFS_NODE_A"), os.environ.get("ZARRTX_NFS_NODE_B")
    if a and b:
        unique = f"py-{uuid.uuid4()}"
        da, db = Path(a) / unique, Path(b) / unique
        da.mkdir(parents=True)
        assert db.is_dir(), f"{da} is not visible through node B"
        yield da / "store.zarr", db / "store.zarr", True
        shutil.rmtree(da, ignore_errors=True)
    else:
        yield tmp_path / "store.zarr", tmp_path / "store.zarr", False


def _locks_env(two_nodes: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not two_nodes:
        env["ZARRTX_LOCKS"] = "off"
    return env


def _rows(region: str, first_id: int, n: int):
    import anndata as ad
    import pandas as pd
    from spatialdata.models import TableModel

    obs = pd.DataFrame(
        {REGION_KEY: pd.Categorical([region] * n), INSTANCE_KEY: np.arange(first_id, first_id + n, dtype=np.int64)},
        index=[f"{region}-{first_id + i}" for i in range(n)],
    )
    x = np.full((n, 3), float(first_id), dtype=np.float32)
    return TableModel.parse(ad.AnnData(x, obs=obs), region=region, region_key=REGION_KEY, instance_key=INSTANCE_KEY)


def _worker(store_path: str, worker: int, locks_off: bool) -> list[str]:
    """Adds two labels elements and appends 40 rows for each of three regions of its own."""
    if locks_off:
        os.environ["ZARRTX_LOCKS"] = "off"
    import zarrtx
    from spatialdata.models import Labels2DModel

    store = zarrtx.open(store_path, create=False)
    done = []
    for k in range(2):
        name = f"w{worker}_lab{k}"
        store.add(name, Labels2DModel.parse(expected_for_name(f"lab_{worker * 10 + k}"), dims=("y", "x")))
        done.append(name)
    for r in range(3):
        store.append("cells", _rows(f"w{worker}_lab{r % 2}" if r < 2 else f"w{worker}_extra", 1000 * r, 40))
    return done


def test_sixteen_processes_on_two_nodes_add_labels_and_append_to_one_table(zt, nodes):
    a, b, two = nodes
    zt.open(str(a), create=True)
    ctx = mp.get_context("spawn")
    with ctx.Pool(16) as pool:
        results = pool.starmap(_worker, [(str(a if w % 2 == 0 else b), w, not two) for w in range(16)])
    names = {n for r in results for n in r}
    assert len(names) == 32

    import spatialdata

    zxutil.quiet()
    sdata = spatialdata.read_zarr(b)  # on the other node: fails loudly if the regions did not match
    assert set(sdata.labels) == names
    for w in range(16):
        for k in range(2):
            np.testing.assert_array_equal(
                zxutil.element_array(sdata[f"w{w}_lab{k}"]), expected_for_name(f"lab_{w * 10 + k}")
            )
    table = sdata["cells"]
    assert table.n_obs == 16 * 3 * 40, "every appended row is there once"
    pairs = list(zip(table.obs[REGION_KEY].astype(str), table.obs[INSTANCE_KEY]))
    assert len(set(pairs)) == len(pairs), "no row is there twice"
    assert set(table.uns["spatialdata_attrs"]["region"]) == set(table.obs[REGION_KEY].astype(str))
    report = zt.open(str(b)).verify()
    assert not report["problems"] and not report["leftovers"], report


def test_spatialdata_reads_on_node_b_while_writers_on_both_nodes_add(zx, nodes, tmp_path: Path):
    a, b, two = nodes
    env = _locks_env(two)
    zx.run("init", a)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    stop, report = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen(
        [sys.executable, str(HERE / "reader_loop.py"), str(b), str(stop), str(report), "--min-iterations", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    ready = Path(str(stop) + ".ready")
    deadline = time.time() + 120
    while not ready.exists():
        assert reader.poll() is None, f"reader died early: {reader.communicate()[1][-2000:]}"
        assert time.time() < deadline, "reader did not start within 120 s"
        time.sleep(0.1)
    written, procs = [], []
    for lane in range(6):
        for k in range(3):
            name = f"lab_{lane * 100 + k}"
            src = save_npy(inputs, name, expected_for_name(name))
            target = a if lane % 2 == 0 else b
            procs.append((name, subprocess.Popen(zx.argv("add-labels", target, name, src, "--dims", "yx"),
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    for name, p in procs:
        so, se = p.communicate(timeout=600)
        assert p.returncode == 0, f"{name}: {se[-500:]}"
        written.append(name)
    stop.touch()
    so, se = reader.communicate(timeout=600)
    assert reader.returncode == 0, f"reader crashed: {se[-2000:]}"
    rep = json.loads(report.read_text())
    assert rep["n_errors"] == 0, "spatialdata on node B failed while node A wrote:\n" + "\n".join(rep["errors"][:5])
    assert rep["counts"][-1] == len(written)
    assert zxutil.all_names(zxutil.read_sdata(b)) == set(written)
    zx.verify_clean(b)
