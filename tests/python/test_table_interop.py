"""Tables written by `zarrtx add-table` and grown by `zarrtx append` (also from many processes at once) read back by
anndata 0.13 and spatialdata 0.8 with equal content; a table written by spatialdata grown by `zarrtx append`; the
demo's shared table."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import zxutil
from zxutil import read_sdata

pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).resolve().parent
NVARS = 4


def frame(region: str | list[str], ids, kinds=("a", "b", "c")) -> pd.DataFrame:
    ids = np.asarray(list(ids), dtype=np.int64)
    regions = region if isinstance(region, list) else [region] * len(ids)
    return pd.DataFrame(
        {
            "cell": [f"{r}-{i}" for r, i in zip(regions, ids)],
            "region": pd.Categorical(regions),
            "instance_id": ids,
            "area": ids * 0.5,
            "n_genes": (ids % 7).astype(np.int32),
            "is_big": ids % 2 == 0,
            "label": [f"cell {i}" for i in ids],
            "kind": pd.Categorical([kinds[int(i) % len(kinds)] for i in ids]),
        }
    )


def x_for(ids) -> np.ndarray:
    ids = np.asarray(list(ids), dtype=np.float32)
    return (ids[:, None] * 10 + np.arange(NVARS, dtype=np.float32)[None, :]).astype(np.float32)


def write_inputs(d: Path, stem: str, df: pd.DataFrame) -> tuple[Path, Path]:
    obs, x = d / f"{stem}.parquet", d / f"{stem}.npy"
    df.to_parquet(obs, index=False)
    np.save(x, x_for(df["instance_id"]))
    return obs, x


KEYS = ("--region-key", "region", "--instance-key", "instance_id")
VARS = ("--var-names", ",".join(f"g{j}" for j in range(NVARS)))


def assert_table(t, want: pd.DataFrame) -> None:
    """Table `t` (AnnData) holds exactly the rows of `want`, in order, X included."""
    obs = t.obs
    assert len(obs) == len(want)
    assert list(obs.index) == list(want["cell"])
    for col in ("instance_id", "area", "n_genes", "is_big"):
        np.testing.assert_array_equal(obs[col].to_numpy(), want[col].to_numpy(), err_msg=col)
        assert obs[col].dtype == want[col].dtype, (col, obs[col].dtype, want[col].dtype)
    assert list(obs["label"].astype(str)) == list(want["label"])
    for col in ("region", "kind"):
        assert isinstance(obs[col].dtype, pd.CategoricalDtype), col
        assert list(obs[col].astype(str)) == list(want[col].astype(str)), col
    np.testing.assert_array_equal(np.asarray(t.X), x_for(want["instance_id"]))
    assert list(t.var.index) == [f"g{j}" for j in range(NVARS)]
    regions = list(dict.fromkeys(want["region"].astype(str)))
    assert list(obs["region"].cat.categories) == regions
    attrs = t.uns["spatialdata_attrs"]
    assert list(np.atleast_1d(attrs["region"])) == regions
    assert (attrs["region_key"], attrs["instance_key"]) == ("region", "instance_id")


def test_add_table_and_appends_read_back_equal(zx, store, tmp_path):
    parts = [frame("lab", range(0, 60)), frame("lab", range(60, 100), kinds=("b", "z")), frame("lab2", range(1, 26))]
    o, x = write_inputs(tmp_path, "p0", parts[0])
    zx.run("add-table", store, "cells", "--obs", o, "--x", x, *VARS, *KEYS, "--index", "cell")
    for k, p in enumerate(parts[1:], 1):
        o, x = write_inputs(tmp_path, f"p{k}", p)
        zx.run("append", store, "cells", "--obs", o, "--x", x, "--index", "cell")
    want = pd.concat(parts, ignore_index=True)
    import anndata as ad

    assert_table(ad.read_zarr(store / "tables" / "cells"), want)
    sdata = read_sdata(store)
    assert_table(sdata.tables["cells"], want)
    info = zx.info(store)["elements"][0]
    assert (info["n_obs"], info["n_vars"], info["regions"]) == (125, NVARS, ["lab", "lab2"])
    zx.verify_clean(store)


def test_16_concurrent_appenders_own_and_shared_regions(zx, store, tmp_path):
    o, x = write_inputs(tmp_path, "base", frame("r0", range(100)))
    zx.run("add-table", store, "cells", "--obs", o, "--x", x, *VARS, *KEYS, "--index", "cell")
    procs = []
    for p in range(16):
        own = frame(f"own{p}", range(100))
        shared = frame("shared", range(1000 * p, 1000 * p + 100))
        df = pd.concat([own, shared], ignore_index=True)
        df["region"] = pd.Categorical(df["region"].astype(str))
        o, x = write_inputs(tmp_path, f"w{p}", df)
        procs.append(zx.popen("append", store, "cells", "--obs", o, "--x", x, "--index", "cell"))
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    sdata = read_sdata(store)
    t = sdata.tables["cells"]
    pairs = list(zip(t.obs["region"].astype(str), t.obs["instance_id"]))
    assert len(pairs) == 100 + 16 * 200
    assert len(set(pairs)) == len(pairs), "a row appears twice"
    want = {("r0", i) for i in range(100)}
    for p in range(16):
        want |= {(f"own{p}", i) for i in range(100)} | {("shared", i) for i in range(1000 * p, 1000 * p + 100)}
    assert set(pairs) == want
    regions = {"r0", "shared"} | {f"own{p}" for p in range(16)}
    assert set(t.obs["region"].cat.categories) == regions
    assert set(np.atleast_1d(t.uns["spatialdata_attrs"]["region"])) == regions
    np.testing.assert_array_equal(np.asarray(t.X)[:, 2], t.obs["instance_id"].to_numpy() * 10 + 2)
    zx.verify_clean(store)


def test_spatialdata_reader_sees_only_whole_batches_while_8_appenders_run(zx, store, tmp_path):
    batch, batches = 40, 6
    o, x = write_inputs(tmp_path, "base", frame("base", range(batch)))
    zx.run("add-table", store, "cells", "--obs", o, "--x", x, *VARS, *KEYS, "--index", "cell")
    stop, report = tmp_path / "stop", tmp_path / "report.json"
    reader = subprocess.Popen(
        [sys.executable, str(HERE / "table_reader_loop.py"), str(store), "cells", str(batch), str(stop), str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)  # let the reader start (imports) before the appenders
    inputs = {p: [write_inputs(tmp_path, f"a{p}_{b}", frame(f"a{p}", range(b * batch, (b + 1) * batch))) for b in range(batches)] for p in range(8)}
    script = " && ".join
    procs = []
    for p in range(8):
        cmds = [
            " ".join(map(str, [zx.binary, "append", store, "cells", "--obs", o, "--x", x, "--index", "cell"]))
            for o, x in inputs[p]
        ]
        procs.append(subprocess.Popen(["sh", "-c", script(cmds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    stop.touch()
    reader.communicate(timeout=300)
    r = json.loads(report.read_text())
    assert r["violations"] == [], r["violations"]
    assert r["reads"] >= 3, r
    assert r["sizes"][-1] == batch * (1 + 8 * batches), "the last read (after the appenders) sees every row"
    assert any(batch < s < batch * (1 + 8 * batches) for s in r["sizes"]) or r["reads"] < 5, (
        "no read saw an intermediate state",
        r["sizes"],
    )
    print("reader:", {k: r[k] for k in ("reads", "errors")}, "sizes seen:", sorted(set(r["sizes"]))[:20])


def test_append_to_a_table_written_by_spatialdata(zx, sd_written_store, tmp_path):
    before = read_sdata(sd_written_store).tables["sd_table"]
    rows = pd.DataFrame({"region": ["sd_labels"] * 3, "instance_id": np.array([6, 7, 8], dtype=np.int64)})
    rows.to_parquet(tmp_path / "r.parquet", index=False)
    np.save(tmp_path / "x.npy", np.full((3, 3), 2.5, dtype=np.float64))
    zx.run("append", sd_written_store, "sd_table", "--obs", tmp_path / "r.parquet", "--x", tmp_path / "x.npy")
    after = read_sdata(sd_written_store).tables["sd_table"]
    assert after.n_obs == 8
    assert list(after.obs["instance_id"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(after.obs.index[:5]) == list(before.obs.index)
    assert list(after.obs.index[5:]) == ["sd_labels_6", "sd_labels_7", "sd_labels_8"]
    np.testing.assert_array_equal(np.asarray(after.X[:5]), np.asarray(before.X))
    np.testing.assert_array_equal(np.asarray(after.X[5:]), np.full((3, 3), 2.5, dtype=np.float32))
    assert list(after.obs["region"].astype(str)) == ["sd_labels"] * 8
    # Its ids are checked against the rows spatialdata wrote.
    p = zx.fails("append", sd_written_store, "sd_table", "--obs", tmp_path / "r.parquet", "--x", tmp_path / "x.npy")
    assert p.returncode == 2 and "already exists" in p.stderr, p.stderr


def test_demo_shared_table_has_every_workers_cells(zx, tmp_path):
    store = tmp_path / "demo.zarr"
    # The acceptance: the shared table written by 8 concurrent workers reads in spatialdata 0.8.
    workers = 8
    zx.run("demo", "--store", store, "--workers", workers, "--per-worker", 1, "--size", 128)
    sdata = read_sdata(store)
    t = sdata.tables["cells"]
    regions = t.obs["region"].astype(str).to_numpy()
    ids = t.obs["instance_id"].to_numpy()
    assert len(set(zip(regions, ids))) == len(ids), "a cell appears twice"
    assert set(regions) == {f"w{i:02d}_labels_0" for i in range(workers)}
    for i in range(workers):
        region = f"w{i:02d}_labels_0"
        labels = zxutil.element_array(sdata.labels[region])
        want = np.unique(labels[labels != 0])
        np.testing.assert_array_equal(np.sort(ids[regions == region]), want, err_msg=region)
        # area = pixel count of the label
        area = dict(zip(ids[regions == region], t.obs["area"].to_numpy()[regions == region]))
        some = int(want[0])
        assert area[some] == (labels == some).sum()
    assert list(t.var.index) == ["gradient", "checker", "rings"]
