"""AnnData tables written (and appended to) by zarrtx's table encoding, read back by anndata 0.13 and spatialdata
0.8 with equal content.

The Rust side is the ignored test `python_interop_fixture` in crates/zarrtx/tests/table_encoding.rs, run here with
TABLE_OUT (where it writes a store with tables `full`, `appended` = first 5000 rows written then 321 appended, and
`kinds` = every column kind) and TABLE_IN (a table written by spatialdata itself, to which it appends 3 rows in a new
region in place)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.timeout(1200)

REPO = Path(__file__).resolve().parents[2]


def _spatialdata_table(path: Path) -> None:
    import spatialdata as sd
    from spatialdata.models import TableModel

    n = 5
    obs = pd.DataFrame(
        {"region": pd.Categorical(["lab"] * n), "instance_id": np.arange(1, n + 1, dtype=np.int32)},
        index=[f"c{i}" for i in range(n)],
    )
    a = ad.AnnData(X=np.ones((n, 3), dtype=np.float32), obs=obs, var=pd.DataFrame(index=["g0", "g1", "g2"]))
    t = TableModel.parse(a, region="lab", region_key="region", instance_key="instance_id")
    sd.SpatialData(tables={"table": t}).write(path, overwrite=True)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tables")
    _spatialdata_table(d / "sd.zarr")
    env = dict(os.environ, TABLE_OUT=str(d), TABLE_IN=str(d / "sd.zarr" / "tables" / "table"))
    subprocess.run(
        ["cargo", "test", "-q", "--release", "--locked", "-p", "zarrtx", "--test", "table_encoding", "python_interop_fixture", "--", "--ignored"],
        cwd=REPO,
        env=env,
        check=True,
    )
    # zarrtx regenerates the root view on publication; here the root's stale consolidated metadata is dropped.
    root = d / "sd.zarr" / "zarr.json"
    meta = json.loads(root.read_text())
    meta.pop("consolidated_metadata", None)
    root.write_text(json.dumps(meta))
    return d


def test_appended_table_equals_table_written_whole(out: Path):
    full = ad.read_zarr(out / "store.zarr" / "tables" / "full")
    app = ad.read_zarr(out / "store.zarr" / "tables" / "appended")
    assert app.shape == full.shape == (5321, 6)
    pd.testing.assert_frame_equal(app.obs, full.obs)
    pd.testing.assert_frame_equal(app.var, full.var)
    assert (app.X != full.X).nnz == 0
    assert type(app.X).__name__.startswith("csr")
    np.testing.assert_array_equal(app.obsm["spatial"], full.obsm["spatial"])
    for k in ("region", "region_key", "instance_key"):
        assert np.array_equal(app.uns["spatialdata_attrs"][k], full.uns["spatialdata_attrs"][k])
    assert list(app.obs["region"].cat.categories) == ["lab", "lab2"]
    assert list(app.uns["spatialdata_attrs"]["region"]) == ["lab", "lab2"]
    assert app.obs.index.name == "cell_id"
    assert app.obs.index[-1] == "cell5320"
    assert app.obs["instance_id"].dtype == np.int64
    assert app.obs["instance_id"].iloc[-1] == 5321
    # Values spot-checked against the Rust generator.
    assert app.obs["area"].iloc[5100] == 2550.0
    assert app.obs["cell_type"].isna().iloc[5005]  # 5005 % 7 == 0
    assert app.X[5001, 3] == 5001 * 10 + 3 and app.X[5001, 2] == 0  # stored where (row + col) % 3 == 0


def test_spatialdata_reads_every_table(out: Path):
    import spatialdata as sd

    with pytest.warns(UserWarning, match="not present"):
        sdata = sd.read_zarr(out / "store.zarr")
    assert set(sdata.tables) == {"full", "appended", "kinds"}
    assert sdata.tables["appended"].n_obs == 5321
    attrs = sdata.tables["appended"].uns["spatialdata_attrs"]
    assert list(attrs["region"]) == ["lab", "lab2"]
    assert attrs["region_key"] == "region" and attrs["instance_key"] == "instance_id"


def test_every_column_kind(out: Path):
    t = ad.read_zarr(out / "store.zarr" / "tables" / "kinds")
    o = t.obs
    assert list(o.index) == ["a", "b", "c", "d"]
    assert o.index.name is None
    assert o["i64"].dtype == np.int64 and list(o["i64"]) == [1, -2, 3, 4]
    assert o["u16"].dtype == np.uint16 and o["u16"].iloc[3] == 65535
    assert o["f32"].dtype == np.float32 and np.isnan(o["f32"].iloc[1]) and o["f32"].iloc[2] == 2.5
    assert o["flag"].dtype == bool and list(o["flag"]) == [True, False, True, False]
    assert list(o["s"]) == ["a", "bé", "", "d"]
    assert o["s_null"].isna().tolist() == [False, True, False, True] and o["s_null"].iloc[2] == "c"
    assert str(o["int_null"].dtype) == "Int32" and o["int_null"].isna().tolist() == [False, True, False, False]
    assert str(o["bool_null"].dtype) == "boolean" and o["bool_null"].isna().tolist() == [False, True, False, False]
    assert isinstance(o["cat"].dtype, pd.CategoricalDtype)
    assert list(o["cat"].cat.categories) == ["x", "y", "unused"] and not o["cat"].cat.ordered
    assert o["cat"].isna().tolist() == [False, False, True, False]
    assert list(o.columns) == ["i64", "u16", "f32", "flag", "s", "s_null", "int_null", "bool_null", "cat", "region", "instance_id"]
    assert list(t.var.index) == ["gene0", "gene1", "gene2"] and t.var.index.name == "gene"
    assert list(t.var["highly_variable"]) == [True, False, True]
    np.testing.assert_array_equal(t.X, np.arange(12, dtype=np.float32).reshape(4, 3))
    assert type(t.layers["counts"]).__name__.startswith("csr")
    np.testing.assert_array_equal(t.obsm["spatial"], 100 + np.arange(8, dtype=np.float32).reshape(4, 2))
    np.testing.assert_array_equal(t.varm["loadings"], np.full((3, 2), 0.5))
    u = t.uns
    assert u["s"] == "hello" and u["i"] == -3 and u["f"] == 2.5 and bool(u["b"]) is True
    assert list(u["strs"]) == ["p", "q"]
    np.testing.assert_array_equal(u["arr"], [[1, 2], [3, 4]])
    assert u["d"]["x"] == 1 and u["d"]["y"]["z"] == "w"
    assert u["spatialdata_attrs"]["region_key"] == "region"


def test_rows_appended_to_a_table_written_by_spatialdata(out: Path):
    import spatialdata as sd

    with pytest.warns(UserWarning, match="not present"):
        sdata = sd.read_zarr(out / "sd.zarr")
    t = sdata.tables["table"]
    assert t.n_obs == 8
    assert list(t.obs.index[-3:]) == ["new0", "new1", "new2"]
    assert list(t.obs["region"].cat.categories) == ["lab", "lab_new"]
    assert list(t.obs["region"]) == ["lab"] * 5 + ["lab_new"] * 3
    assert list(t.obs["instance_id"]) == [1, 2, 3, 4, 5, 1, 2, 3]
    assert list(t.uns["spatialdata_attrs"]["region"]) == ["lab", "lab_new"]
    np.testing.assert_array_equal(t.X[:5], np.ones((5, 3)))
    np.testing.assert_array_equal(t.X[5:], np.arange(9, dtype=np.float32).reshape(3, 3))
