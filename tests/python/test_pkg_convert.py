"""Unit tests of the pure-Python conversion layer of the zarrtx package (spatialdata objects <-> _core calls).

Most of these run without the compiled engine: reads are exercised through a fake snapshot that serves data
from stores written by spatialdata itself, and the results are compared with ``spatialdata.read_zarr`` on the
same stores. The end-to-end tests at the bottom need ``zarrtx._core.Store`` and are skipped without it.
"""
from __future__ import annotations

import json
import pickle
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

warnings.simplefilter("ignore")

sd = pytest.importorskip("spatialdata")

import zarrtx  # noqa: E402
from zarrtx import _snapshots  # noqa: E402
from zarrtx._lock import StoreLock  # noqa: E402
from zarrtx._points import add_points_args, read_points  # noqa: E402
from zarrtx._raster import _regular_chunk_shape, add_raster_args, iter_dask_blocks, read_raster  # noqa: E402
from zarrtx._shapes import add_shapes_args, read_shapes  # noqa: E402
from zarrtx._table import from_table_dict, to_table_dict  # noqa: E402
from zarrtx._transform import from_ngff, get_transformations, to_ngff  # noqa: E402

from zxutil import assert_transformations_equal, read_sdata, spatialdata_fixture_objects  # noqa: E402


def _has_core_store() -> bool:
    try:
        from zarrtx import _core

        return hasattr(_core, "Store")
    except ImportError:
        return False


needs_core = pytest.mark.skipif(not _has_core_store(), reason="zarrtx._core.Store is not built yet")


# ----------------------------------------------------------------------------------------------------------------
# Fixtures: stores written by spatialdata itself, and a fake snapshot serving them
# ----------------------------------------------------------------------------------------------------------------


def _rich_objects():
    """A SpatialData with multiscale rasters, several coordinate systems and a 3-D image."""
    from spatialdata.models import Image2DModel, Image3DModel, Labels2DModel
    from spatialdata.transformations import Affine, Scale, Sequence, Translation

    rng = np.random.default_rng(7)
    t_img = {
        "global": Sequence([Scale([0.5, 0.5], axes=("y", "x")), Translation([10.0, -3.0], axes=("x", "y"))]),
        "aligned": Affine(
            np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 6.0], [0.0, 0.0, 1.0]]), input_axes=("x", "y"), output_axes=("x", "y")
        ),
    }
    ms_img = Image2DModel.parse(
        rng.integers(0, 1000, (2, 64, 48), dtype=np.uint16),
        dims=("c", "y", "x"),
        c_coords=["dapi", "cd45"],
        scale_factors=[2, 2],
        transformations=t_img,
        chunks=(1, 16, 16),
    )
    ms_lab = Labels2DModel.parse(
        rng.integers(0, 9, (64, 64)).astype(np.int32),
        dims=("y", "x"),
        scale_factors=[2],
        transformations={"global": Scale([2.0, 2.0], axes=("y", "x"))},
    )
    img3 = Image3DModel.parse(rng.random((1, 4, 16, 16)).astype(np.float32), dims=("c", "z", "y", "x"))
    return sd.SpatialData(images={"ms_img": ms_img, "img3": img3}, labels={"ms_lab": ms_lab})


@pytest.fixture(scope="session")
def fixture_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "sd_fixture.zarr"
    spatialdata_fixture_objects().write(str(path))
    return path


@pytest.fixture(scope="session")
def rich_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "sd_rich.zarr"
    _rich_objects().write(str(path))
    return path


class FakeSnapshot:
    """Serves elements of a spatialdata-written store the way _core.Snapshot does."""

    def __init__(self, root: Path, version: int = 3) -> None:
        self.root = Path(root)
        self.version = version
        self.path = str(root)
        self.reads: list[tuple[str, int, list]] = []

    def _attrs(self, typ: str, name: str) -> dict:
        return json.loads((self.root / typ / name / "zarr.json").read_text())["attributes"]

    def _type_of(self, name: str) -> str:
        for typ in ("images", "labels", "points", "shapes", "tables"):
            if (self.root / typ / name).is_dir():
                return typ
        raise KeyError(name)

    def raster_info(self, name: str) -> dict:
        import zarr

        typ = self._type_of(name)
        ome = self._attrs(typ, name)["ome"]
        ms = ome["multiscales"][0]
        levels = []
        dtype = None
        for d in ms["datasets"]:
            a = zarr.open_array(str(self.root / typ / name / d["path"]), mode="r")
            levels.append({"path": d["path"], "shape": list(a.shape), "chunks": list(a.chunks)})
            dtype = str(a.dtype)
        channels = [c["label"] for c in ome["omero"]["channels"]] if "omero" in ome else None
        return {
            "kind": "image" if typ == "images" else "labels",
            "dims": [a["name"] for a in ms["axes"]],
            "dtype": dtype,
            "levels": levels,
            "channel_names": channels,
            "transformations": ms["coordinateTransformations"],
        }

    def read_raster(self, name: str, level: int = 0, region=None) -> np.ndarray:
        import zarr

        typ = self._type_of(name)
        ms = self._attrs(typ, name)["ome"]["multiscales"][0]
        a = zarr.open_array(str(self.root / typ / name / ms["datasets"][level]["path"]), mode="r")
        self.reads.append((name, level, region))
        if region is None:
            return a[...]
        return a[tuple(slice(lo, hi) for lo, hi in region)]

    def vector_info(self, name: str) -> dict:
        typ = self._type_of(name)
        attrs = self._attrs(typ, name)
        sd_attrs = attrs.get("spatialdata_attrs", {})
        return {
            "type": typ,
            "feature_key": sd_attrs.get("feature_key"),
            "instance_key": sd_attrs.get("instance_key"),
            "transformations": attrs["coordinateTransformations"],
        }

    def _element(self, name: str) -> Path:
        return self.root / self._type_of(name) / name

    def metadata(self, name: str) -> dict:
        base = self._element(name)
        return {
            ("" if f.parent == base else str(f.parent.relative_to(base))): json.loads(f.read_text())
            for f in base.rglob("zarr.json")
        }

    def points_parts(self, name: str) -> list[str]:
        data = self._element(name) / "points.parquet"
        if data.is_file():
            return ["points.parquet"]
        parts = sorted(
            (int(f.name[len("part.") : -len(".parquet")]), f.name) for f in data.iterdir() if f.name.startswith("part.")
        )
        return [f"points.parquet/{f}" for _, f in parts]

    def read_element_file(self, name: str, rel: str, start=None, end=None) -> bytes:
        data = (self._element(name) / rel).read_bytes()
        return data if start is None and end is None else data[start or 0 : end]

    def element_file_size(self, name: str, rel: str) -> int:
        return (self._element(name) / rel).stat().st_size


def _fake(root: Path, version: int = 3) -> FakeSnapshot:
    snap = FakeSnapshot(root, version)
    _snapshots.put(str(root), version, snap)
    return snap


# ----------------------------------------------------------------------------------------------------------------
# Transformations
# ----------------------------------------------------------------------------------------------------------------


def test_to_ngff_is_what_spatialdata_writes(rich_store: Path, fixture_store: Path) -> None:
    """The dicts built from an element's transformations equal the ones spatialdata stored for it."""
    objs = {**dict(_rich_objects().images), **dict(_rich_objects().labels)}
    for name, el in objs.items():
        typ = "images" if name in ("ms_img", "img3") else "labels"
        stored = json.loads((rich_store / typ / name / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
        dims = [a["name"] for a in stored["axes"]]
        assert to_ngff(get_transformations(el), dims) == stored["coordinateTransformations"], name
    fx = spatialdata_fixture_objects()
    for name, el in dict(fx.points).items():
        stored = json.loads((fixture_store / "points" / name / "zarr.json").read_text())["attributes"]
        from spatialdata.models import get_axes_names

        assert to_ngff(get_transformations(el), get_axes_names(el)) == stored["coordinateTransformations"]
    for name, el in dict(fx.shapes).items():
        stored = json.loads((fixture_store / "shapes" / name / "zarr.json").read_text())["attributes"]
        assert to_ngff(get_transformations(el), ("x", "y")) == stored["coordinateTransformations"]


@pytest.mark.parametrize("axes", [("c", "y", "x"), ("y", "x"), ("c", "z", "y", "x"), ("x", "y"), ("x", "y", "z")])
def test_transformations_round_trip(axes) -> None:
    from spatialdata.transformations import Affine, Identity, MapAxis, Scale, Sequence, Translation

    sp = tuple(a for a in axes if a != "c")
    ts = {
        "global": Identity(),
        "scaled": Scale([2.0] * len(sp), axes=sp),
        "moved": Translation([1.5] * len(sp), axes=sp),
        "seq": Sequence([Scale([3.0] * len(sp), axes=sp), Translation(list(range(len(sp))), axes=sp)]),
        "aff": Affine(np.eye(len(sp) + 1), input_axes=sp, output_axes=sp),
        "swap": MapAxis({sp[0]: sp[1], sp[1]: sp[0]}),
    }
    back = from_ngff(to_ngff(ts, axes))
    # What spatialdata itself reads back from what it writes is the reference: it equals ours exactly.
    from spatialdata._io._utils import _get_transformations_from_ngff_dict

    reference = _get_transformations_from_ngff_dict(to_ngff(ts, axes))
    assert set(back) == set(ts)
    assert_transformations_equal(back, reference, axes)
    for cs in ts:
        np.testing.assert_allclose(
            back[cs].to_affine_matrix(input_axes=sp, output_axes=sp),
            ts[cs].to_affine_matrix(input_axes=sp, output_axes=sp),
            err_msg=cs,
        )


def test_empty_transformations_mean_identity_into_global() -> None:
    from spatialdata.transformations import Identity

    assert to_ngff({}, ("y", "x")) == []
    assert from_ngff([]) == {"global": Identity()}


# ----------------------------------------------------------------------------------------------------------------
# Rasters
# ----------------------------------------------------------------------------------------------------------------


def test_raster_args_numpy_image_and_labels() -> None:
    fx = spatialdata_fixture_objects()
    kind, dims, kw = add_raster_args("sd_image", fx.images["sd_image"])
    assert (kind, dims) == ("image", ["c", "y", "x"])
    assert kw["channel_names"] == ["r", "g", "b"]
    assert "data" in kw or "blocks" in kw
    kind, dims, kw = add_raster_args("sd_labels", fx.labels["sd_labels"])
    assert (kind, dims) == ("labels", ["y", "x"]) and "channel_names" not in kw
    assert kw["transformations"][0]["type"] == "scale" and kw["transformations"][0]["scale"] == [2.0, 2.0]


def test_raster_args_dask_are_streamed_in_blocks() -> None:
    import dask.array as da
    from spatialdata.models import Image2DModel

    arr = np.arange(3 * 50 * 70, dtype=np.uint16).reshape(3, 50, 70)
    el = Image2DModel.parse(da.from_array(arr, chunks=(1, 16, 32)), dims=("c", "y", "x"))
    kind, dims, kw = add_raster_args("tile", el)
    assert "data" not in kw and kw["shape"] == [3, 50, 70] and kw["dtype"] == "uint16"
    assert kw["chunks"] == [1, 16, 32]
    out = np.zeros_like(arr)
    n = 0
    for offset, block in kw["blocks"]:
        assert block.flags.c_contiguous and block.dtype == np.uint16
        out[tuple(slice(o, o + s) for o, s in zip(offset, block.shape))] = block
        n += 1
    assert n == 3 * 4 * 3
    np.testing.assert_array_equal(out, arr)


def test_stream_window_never_computes_whole_array() -> None:
    import dask.array as da

    computed = []

    def mark(b):
        computed.append(b.size)
        return b

    arr = da.ones((64, 64), chunks=(16, 16), dtype=np.int32).map_blocks(mark, dtype=np.int32)
    sizes = []
    for _, block in iter_dask_blocks(arr, np.int32, window_bytes=2 * 16 * 16 * 4):
        sizes.append(block.size)
    assert sizes == [256] * 16 and max(computed) == 256


def test_irregular_chunks_are_not_passed_as_chunk_shape() -> None:
    assert _regular_chunk_shape(((4, 4, 2), (3,))) == [4, 3]
    assert _regular_chunk_shape(((4, 3, 4),)) is None
    assert _regular_chunk_shape(((4, 4, 5),)) is None


def test_raster_args_datatree_levels_given() -> None:
    el = _rich_objects().images["ms_img"]
    kind, dims, kw = add_raster_args("ms_img", el)
    assert kind == "image" and kw["channel_names"] == ["dapi", "cd45"]
    assert [lv.shape for lv in kw["levels"]] == [(2, 32, 24), (2, 16, 12)]
    assert all(lv.dtype == np.uint16 for lv in kw["levels"])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, 8, 8)),
        "not an element",
        None,
    ],
)
def test_non_elements_are_refused_with_a_fix(bad, tmp_path) -> None:
    from zarrtx._store import _classify

    with pytest.raises(zarrtx.InvalidElement, match="parse it with spatialdata.models"):
        _classify("x", bad)


def test_unparsed_dataarray_is_refused() -> None:
    import xarray as xr

    with pytest.raises(zarrtx.InvalidElement, match=r"'raw'.*Image2DModel\.parse"):
        add_raster_args("raw", xr.DataArray(np.zeros((3, 8, 8)), dims=("c", "y", "x")))


@pytest.mark.parametrize("name", ["ms_img", "img3", "ms_lab"])
def test_raster_read_matches_spatialdata_reader(rich_store: Path, name: str) -> None:
    import xarray as xr

    snap = _fake(rich_store)
    got = read_raster(str(rich_store), snap.version, name, snap.raster_info(name))
    ref_sdata = read_sdata(rich_store)
    want = ref_sdata[name]
    assert type(got) is type(want)
    if isinstance(want, xr.DataTree):
        assert list(got.children) == list(want.children)
        for k in want.children:
            g = got[k].ds
            w = want[k].ds
            assert list(g.data_vars) == list(w.data_vars)
            (var,) = list(w.data_vars)
            assert g[var].dims == w[var].dims and g[var].dtype == w[var].dtype and g[var].shape == w[var].shape
            for c in w[var].coords:
                np.testing.assert_array_equal(g[var].coords[c].values, w[var].coords[c].values)
            np.testing.assert_array_equal(g[var].data.compute(), w[var].data.compute())
    else:
        assert got.name == want.name and got.dims == want.dims and got.dtype == want.dtype
        xr.testing.assert_equal(got.compute(), want.compute())
        for c in want.coords:
            np.testing.assert_array_equal(got.coords[c].values, want.coords[c].values)
    from spatialdata.models import get_axes_names
    from spatialdata.transformations import get_transformation

    assert_transformations_equal(
        get_transformation(got, get_all=True), get_transformation(want, get_all=True), get_axes_names(want)
    )


def test_raster_read_is_lazy_chunked_and_picklable(rich_store: Path) -> None:
    import dask
    import cloudpickle

    snap = _fake(rich_store, version=11)
    got = read_raster(str(rich_store), 11, "ms_img", snap.raster_info("ms_img"))
    arr = got["scale0"]["image"].data
    assert arr.chunksize == (1, 16, 16)
    assert snap.reads == []  # nothing read yet
    sub = arr[1, 16:32, 0:16].compute()
    assert len(snap.reads) == 1 and snap.reads[0][2] == [(1, 2), (16, 32), (0, 16)]
    assert sub.shape == (16, 16)
    # The graph holds plain data only: pickles without the snapshot, and no engine object is in it.
    blob = cloudpickle.dumps(dict(arr.__dask_graph__()))
    assert b"FakeSnapshot" not in blob
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(arr)).compute(), arr.compute())


# ----------------------------------------------------------------------------------------------------------------
# Points
# ----------------------------------------------------------------------------------------------------------------


def test_points_args() -> None:
    import pyarrow as pa

    pts = spatialdata_fixture_objects().points["sd_points"]
    batches, kw = add_points_args("sd_points", pts)
    assert kw["feature_key"] == "gene" and kw["instance_key"] == "cell_id"
    assert kw["transformations"][0]["output"]["name"] == "global"
    assert sum(b.num_rows for b in batches) == 50
    schema = batches[0].schema
    assert pa.types.is_dictionary(schema.field("gene").type)
    assert schema.field("__null_dask_index__").type == pa.int64()
    assert schema.metadata is None
    assert not pts["gene"].cat.known or True  # the caller's frame is not modified by as_known()


def test_points_multi_partition_unknown_categories() -> None:
    import dask.dataframe as dd
    from spatialdata.models import PointsModel

    df = pd.DataFrame({"x": np.arange(10.0), "y": np.arange(10.0), "g": pd.Categorical(list("ababababcc"))})
    ddf = dd.from_pandas(df, npartitions=3)
    ddf["g"] = ddf["g"].cat.as_unknown()
    pts = PointsModel.parse(ddf, feature_key="g")
    batches, kw = add_points_args("p", pts)
    assert len(batches) == 3 and len({b.schema for b in batches}) == 1
    assert all(b.column("g").dictionary.to_pylist() == ["a", "b", "c"] for b in batches)
    idx = np.concatenate([b.column("__null_dask_index__").to_numpy() for b in batches])
    np.testing.assert_array_equal(idx, np.arange(10))


def test_pandas_points_without_metadata_are_refused() -> None:
    with pytest.raises(zarrtx.InvalidElement, match="PointsModel.parse"):
        add_points_args("p", pd.DataFrame({"x": [1.0], "y": [2.0]}))


def test_points_read_matches_spatialdata_reader(fixture_store: Path) -> None:
    snap = _fake(fixture_store, version=5)
    got = read_points(snap, str(fixture_store), 5, "sd_points", snap.vector_info("sd_points"))
    want = read_sdata(fixture_store)["sd_points"]
    assert type(got) is type(want)
    assert got.npartitions == want.npartitions
    assert list(got.columns) == list(want.columns)
    assert dict(got.dtypes) == dict(want.dtypes)
    assert got["gene"].cat.known == want["gene"].cat.known
    assert got.attrs["spatialdata_attrs"] == want.attrs["spatialdata_attrs"]
    assert_transformations_equal(got.attrs["transform"], want.attrs["transform"], ("x", "y"))
    g, w = got.compute(), want.compute()
    pd.testing.assert_frame_equal(g, w)
    # picklable graph
    import dask

    with dask.config.set(scheduler="sync"):
        pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(got)).compute(), w)


# ----------------------------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------------------------


def test_shapes_args_circles_and_polygons() -> None:
    import shapely

    fx = spatialdata_fixture_objects()
    kw = add_shapes_args("sd_circles", fx.shapes["sd_circles"])
    assert kw["radius"].tolist() == [1.0, 2.0, 3.0] and "columns" not in kw and "index" not in kw
    assert shapely.from_wkb(kw["geometry_wkb"][1]).equals(shapely.Point(3, 4))
    poly = fx.shapes["sd_polys"].copy()
    poly["area_um"] = [1.5, 2.5]
    poly.index = ["a", "b"]
    kw = add_shapes_args("sd_polys", poly)
    assert "radius" not in kw and kw["index"] == ["a", "b"]
    assert kw["columns"].column_names == ["area_um"]


def test_shapes_read_matches_spatialdata_reader(fixture_store: Path) -> None:
    snap = _fake(fixture_store)
    ref = read_sdata(fixture_store)
    for name in ("sd_circles", "sd_polys"):
        got = read_shapes(snap, name)
        want = ref[name]
        pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(want))
        assert_transformations_equal(got.attrs["transform"], want.attrs["transform"], ("x", "y"))


# ----------------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------------


def _table():
    import anndata as ad
    import scipy.sparse as sp
    from spatialdata.models import TableModel

    rng = np.random.default_rng(3)
    n = 6
    obs = pd.DataFrame(
        {
            "region": pd.Categorical(["a", "a", "b", "b", "b", "a"]),
            "cell": np.arange(n, dtype=np.int64),
            "score": rng.random(n).astype(np.float32),
            "flag": [True, False, True, True, False, True],
            "name": [f"n{i}" for i in range(n)],
            "maybe": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
            "ok": pd.array([True, None, False, True, True, None], dtype="boolean"),
            "note": pd.array(["x", None, "y", "z", "w", None], dtype="string"),
            "kind": pd.Categorical(["t", "u", None, "t", "u", "t"]),
        },
        index=[f"c{i}" for i in range(n)],
    )
    var = pd.DataFrame({"gene_ids": [f"g{i}" for i in range(4)]}, index=[f"G{i}" for i in range(4)])
    X = sp.random(n, 4, density=0.5, format="csr", dtype=np.float32, random_state=1)
    a = ad.AnnData(X=X, obs=obs, var=var)
    a.layers["counts"] = np.arange(n * 4, dtype=np.int32).reshape(n, 4)
    a.obsm["spatial"] = rng.random((n, 2))
    a.varm["pcs"] = rng.random((4, 3))
    a.uns["params"] = {"k": 3, "alpha": 0.5, "on": True, "label": "x", "names": ["p", "q"], "vec": np.arange(3)}
    return TableModel.parse(a, region=["a", "b"], region_key="region", instance_key="cell")


def _engine_like(batch):
    """Marks fields nullable as the engine does on read: dictionary, and int/bool/string columns holding nulls."""
    import pyarrow as pa

    fields = []
    for f, col in zip(batch.schema, batch.columns):
        t = f.type
        if pa.types.is_large_string(t):
            col = col.cast(pa.string())
            t = pa.string()
        nullable = pa.types.is_dictionary(t) or (col.null_count > 0 and not pa.types.is_floating(t))
        fields.append(pa.field(f.name, t, nullable))
    return pa.RecordBatch.from_arrays(batch.columns, schema=pa.schema(fields))


def test_table_dict_structure() -> None:
    import pyarrow as pa

    td = to_table_dict("cells", _table())
    assert td["obs_index"] == "_index" and td["var_index"] == "_index"
    obs = td["obs"]
    assert obs.column_names[0] == "_index" and obs.column("_index").to_pylist() == [f"c{i}" for i in range(6)]
    assert pa.types.is_dictionary(obs.schema.field("region").type)
    assert obs.column("maybe").null_count == 2 and obs.column("ok").null_count == 2
    assert obs.column("note").null_count == 2 and obs.column("kind").null_count == 1
    assert obs.schema.field("name").type == pa.string()
    assert td["X"]["format"] == "csr" and td["X"]["shape"] == (6, 4)
    assert td["layers"]["counts"].dtype == np.int32
    assert td["obsm"]["spatial"].shape == (6, 2) and td["varm"]["pcs"].shape == (4, 3)
    assert "spatialdata_attrs" not in td["uns"]
    assert td["uns"]["params"]["names"] == ["p", "q"] and isinstance(td["uns"]["params"]["vec"], np.ndarray)
    assert td["annotation"] == {"region": ["a", "b"], "region_key": "region", "instance_key": "cell"}


def test_table_round_trip_values() -> None:
    a = _table()
    td = to_table_dict("cells", a)
    td["obs"] = _engine_like(td["obs"])
    td["var"] = _engine_like(td["var"])
    b = from_table_dict(td)
    assert b.shape == a.shape
    assert list(b.obs_names) == list(a.obs_names) and list(b.var_names) == list(a.var_names)
    assert (b.X != a.X).nnz == 0 and type(b.X).__name__ == "csr_matrix"
    for c in a.obs.columns:
        assert b.obs[c].astype(object).where(b.obs[c].notna(), None).tolist() == a.obs[c].astype(object).where(
            a.obs[c].notna(), None
        ).tolist(), c
    assert str(b.obs["maybe"].dtype) == "Int64" and str(b.obs["ok"].dtype) == "boolean"
    assert isinstance(b.obs["region"].dtype, pd.CategoricalDtype)
    assert b.uns["spatialdata_attrs"] == {"region": ["a", "b"], "region_key": "region", "instance_key": "cell"}
    np.testing.assert_array_equal(b.obsm["spatial"], a.obsm["spatial"])
    np.testing.assert_array_equal(b.layers["counts"], a.layers["counts"])
    assert b.uns["params"]["k"] == 3 and list(b.uns["params"]["names"]) == ["p", "q"]
    from spatialdata.models import TableModel

    TableModel.validate(b)


def test_table_named_index_and_errors() -> None:
    import anndata as ad

    a = _table()
    a.obs.index.name = "cell_name"
    assert to_table_dict("t", a)["obs_index"] == "cell_name"
    b = ad.AnnData(obs=pd.DataFrame({"when": pd.to_datetime(["2020-01-01"])}, index=["c0"]))
    with pytest.raises(zarrtx.InvalidElement, match="'when'.*datetime"):
        to_table_dict("t", b)
    c = _table()
    c.uns["df"] = pd.DataFrame({"a": [1]})
    with pytest.raises(zarrtx.InvalidElement, match="uns\\['df'\\]"):
        to_table_dict("t", c)
    with pytest.raises(zarrtx.InvalidElement, match="TableModel.parse"):
        to_table_dict("t", "nope")


# ----------------------------------------------------------------------------------------------------------------
# Locks (with a fake engine)
# ----------------------------------------------------------------------------------------------------------------


class _FakeGuard:
    def __init__(self, log, name, mode):
        self.log, self.name, self.mode = log, name, mode
        log.append(("acquire", name, mode))

    def release(self):
        self.log.append(("release", self.name, self.mode))


def _lock(log, name=None, mode="w", key="/s"):
    return StoreLock(lambda n, m, t: _FakeGuard(log, n, m), key, name, mode, None)


def test_lock_reentrancy_rules() -> None:
    log: list = []
    with _lock(log, "Cells", "w"):
        with _lock(log, "cells", "r"):  # weaker, same name (case-insensitive): counted only
            with _lock(log, "CELLS", "w"):
                pass
    assert log == [("acquire", "Cells", "w"), ("release", "Cells", "w")]
    log.clear()
    with _lock(log, None, "w"):
        with _lock(log, "a", "w"):  # implied by the store-wide w
            with _lock(log, "a", "w"):
                pass
        with _lock(log, None, "r"):
            pass
    assert log == [("acquire", None, "w"), ("release", None, "w")]
    log.clear()
    with _lock(log, "a", "r"):
        with pytest.raises(zarrtx.ZarrtxError, match="upgrad"):
            _lock(log, "a", "w").acquire()
        with pytest.raises(zarrtx.ZarrtxError, match="store-wide"):
            _lock(log, None, "w").acquire()
        with _lock(log, None, "r"):  # shared store lock inside a named lock: fine
            pass
    assert log == [("acquire", "a", "r"), ("acquire", None, "r"), ("release", None, "r"), ("release", "a", "r")]
    with pytest.raises(zarrtx.InvalidElement, match="mode"):
        _lock(log, None, "x")


def test_lock_registry_is_per_thread() -> None:
    log: list = []
    results = []
    with _lock(log, "a", "w"):
        t = threading.Thread(target=lambda: results.append(_lock(log, "a", "w").__enter__()))
        t.start()
        t.join()
    assert [e for e in log if e[0] == "acquire"] == [("acquire", "a", "w"), ("acquire", "a", "w")]


# ----------------------------------------------------------------------------------------------------------------
# End to end (needs zarrtx._core.Store)
# ----------------------------------------------------------------------------------------------------------------


def _worker_add(store, i):
    from spatialdata.models import Labels2DModel

    return store.add(f"lab_{i}", Labels2DModel.parse(np.full((16, 16), i, dtype=np.int32), dims=("y", "x")))


@needs_core
def test_store_pickles_to_path_and_options(tmp_path: Path) -> None:
    store = zarrtx.open(tmp_path / "s.zarr", durable=False)
    s2 = pickle.loads(pickle.dumps(store))
    assert s2.path == store.path and s2._core is None
    assert s2.version == store.version


@needs_core
def test_end_to_end_all_element_types(tmp_path: Path) -> None:
    import xarray as xr

    path = tmp_path / "e2e.zarr"
    store = zarrtx.open(path, durable=False)
    fx = spatialdata_fixture_objects()
    rich = _rich_objects()
    elements = {}
    for _, name, el in fx.gen_elements():
        elements[name] = el
    for _, name, el in rich.gen_elements():
        elements[name] = el
    for name, el in elements.items():
        store.add(name, el)
    v = store.version
    assert set(store.elements()) == set(elements)
    ours = store.read()
    theirs = read_sdata(path)
    for name in elements:
        a, b = ours[name], theirs[name]
        assert type(a) is type(b), name
        if isinstance(b, xr.DataArray):
            xr.testing.assert_equal(a.compute(), b.compute())
            assert a.name == b.name
        elif isinstance(b, xr.DataTree):
            assert list(a.children) == list(b.children)
    assert ours.path is None
    # snapshot isolation: delete then read the old version
    store.delete("sd_labels")
    old = store.read(["sd_labels"], version=v)
    np.testing.assert_array_equal(old["sd_labels"].values, fx.labels["sd_labels"].values)
    with pytest.raises(zarrtx.ElementNotFound, match="sd_labels"):
        store.read(["sd_labels"])


@needs_core
def test_end_to_end_process_pool_spawn(tmp_path: Path) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    store = zarrtx.open(tmp_path / "pp.zarr")
    _worker_add(store, 100)  # the parent has used the engine (durable writes) before the workers start
    with ProcessPoolExecutor(4, mp_context=mp.get_context("spawn")) as pool:
        versions = list(pool.map(_worker_add, [store] * 8, range(8)))
    assert len(set(versions)) == 8
    assert set(store.elements()) == {"lab_100"} | {f"lab_{i}" for i in range(8)}


@needs_core
def test_end_to_end_process_pool_fork_after_engine_use(tmp_path: Path) -> None:
    import multiprocessing as mp

    store = zarrtx.open(tmp_path / "fork.zarr")
    _worker_add(store, 100)
    pool = mp.get_context("fork").Pool(2)
    try:
        versions = pool.starmap_async(_worker_add, [(store, i) for i in range(4)]).get(timeout=30)
    finally:
        pool.terminate()
        pool.join()
    assert len(set(versions)) == 4


@needs_core
def test_end_to_end_vectors_match_spatialdata(tmp_path: Path) -> None:
    import dask.dataframe as dd
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, Point, Polygon
    from spatialdata.models import PointsModel, ShapesModel
    from spatialdata.transformations import Affine, Scale

    path = tmp_path / "vec.zarr"
    store = zarrtx.open(path, durable=False)
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "x": rng.random(20), "y": rng.random(20), "z": rng.random(20),
            "gene": pd.Categorical(rng.choice(list("abc"), 20)), "cell": rng.integers(0, 5, 20),
            "note": [f"n{i}" for i in range(20)],
        }
    )
    p3 = PointsModel.parse(df, feature_key="gene", instance_key="cell",
                           transformations={"global": Scale([1, 2, 3], axes=("x", "y", "z"))})
    pdf = p3.compute()
    pdf.attrs.update(p3.attrs)
    p2 = PointsModel.parse(dd.from_pandas(df.drop(columns="z"), npartitions=4), feature_key="gene")
    circ = ShapesModel.parse(
        gpd.GeoDataFrame(
            {"geometry": [Point(1, 2), Point(3, 4)], "radius": [1.0, 2.0], "kind": pd.Categorical(["u", "v"]),
             "label": ["a", "b"], "n": [1, 2]},
            index=pd.Index(["c1", "c2"]),
        ),
        transformations={"global": Affine(np.array([[1, 0, 2], [0, 1, 3], [0, 0, 1]]), input_axes=("x", "y"),
                                          output_axes=("x", "y"))},
    )
    mp_ = ShapesModel.parse(
        gpd.GeoDataFrame(
            {"geometry": [MultiPolygon([Polygon([(0, 0), (1, 0), (1, 1)]), Polygon([(2, 2), (3, 2), (3, 3)])]),
                          Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2), (1, 2)]])]},
            index=[10, 20],
        )
    )
    inputs = {"p3": p3, "p3_pandas": pdf, "p2": p2, "circ": circ, "mp": mp_}
    for name, el in inputs.items():
        store.add(name, el)
    ours, theirs = store.read(), read_sdata(path)
    for name in ("p3", "p3_pandas", "p2"):
        a, b = ours[name], theirs[name]
        assert dict(a.dtypes) == dict(b.dtypes) and a.attrs["spatialdata_attrs"] == b.attrs["spatialdata_attrs"]
        pd.testing.assert_frame_equal(a.compute(), b.compute())
        orig = (p3 if name != "p2" else p2).compute()
        pd.testing.assert_frame_equal(a.compute(), orig, check_categorical=False)
    for name in ("circ", "mp"):
        a, b = ours[name], theirs[name]
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
        assert list(a.index) == list(inputs[name].index)
        assert a.geometry.geom_equals(inputs[name].geometry).all()
        assert_transformations_equal(a.attrs["transform"], inputs[name].attrs["transform"], ("x", "y"))


@needs_core
def test_adopted_spatialdata_table_reads_like_spatialdata(tmp_path: Path) -> None:
    """A table written by spatialdata (pandas 3 `str` columns: nullable-string-array with na-value NaN, a single
    region as a 0-d string) reads back through zarrtx exactly as spatialdata.read_zarr reads it."""
    path = tmp_path / "adopt.zarr"
    fx = spatialdata_fixture_objects()
    t = _table()
    t.obs["s_str"] = pd.array([f"v{i}" for i in range(6)], dtype="str")
    t.obs["s_str_na"] = pd.array(["a", None, "b", "c", "d", "e"], dtype="str")
    fx.tables["cells"] = t
    fx.write(str(path))
    store = zarrtx.open(path)
    ours, theirs = store.read(), read_sdata(path)
    for name in ("cells", "sd_table"):
        a, b = ours[name], theirs[name]
        pd.testing.assert_frame_equal(a.obs, b.obs)
        pd.testing.assert_frame_equal(a.var, b.var)
        assert a.uns["spatialdata_attrs"] == b.uns["spatialdata_attrs"]
    assert ours["sd_table"].uns["spatialdata_attrs"]["region"] == "sd_labels"
    # written by zarrtx, read by both
    store.add("cells2", t)
    a, b = store.read_element("cells2"), read_sdata(path)["cells2"]
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert [k for k in a.layers.keys() if k is not None] == ["counts"]


@needs_core
def test_adopted_multi_part_points_and_shapes_are_read_through_the_engine(tmp_path: Path) -> None:
    """Points written by spatialdata as several dask part files, and its shapes, read back through the engine's
    byte reads (no element directory is handed to Python) exactly as spatialdata.read_zarr reads them: one lazy
    partition per part file, in part order, pinned to the version."""
    import dask.dataframe as dd
    from spatialdata.models import PointsModel

    from zarrtx import _core

    path = tmp_path / "parts.zarr"
    fx = spatialdata_fixture_objects()
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.random(30), "y": rng.random(30), "gene": pd.Categorical(rng.choice(list("ab"), 30))})
    fx.points["many"] = PointsModel.parse(dd.from_pandas(df, npartitions=3), feature_key="gene")
    fx.write(str(path))
    store = zarrtx.open(path)
    snap = _core.Store(str(path)).snapshot()
    assert not hasattr(snap, "read_with")
    parts = snap.points_parts("many")
    assert parts == [f"points.parquet/part.{i}.parquet" for i in range(3)]
    whole = snap.read_element_file("many", parts[1])
    assert snap.element_file_size("many", parts[1]) == len(whole)
    assert snap.read_element_file("many", parts[1], len(whole) - 4, None) == b"PAR1" == whole[-4:]
    assert snap.metadata("sd_circles")[""]["attributes"]["encoding-type"] == "ngff:shapes"
    with pytest.raises(zarrtx.InvalidElement):
        snap.read_element_file("many", "../sd_points/zarr.json")
    with pytest.raises(zarrtx.InvalidElement):
        snap.points_parts("sd_circles")

    ours, theirs = store.read(), read_sdata(path)
    for name in ("many", "sd_points"):
        a, b = ours[name], theirs[name]
        assert a.npartitions == b.npartitions
        assert dict(a.dtypes) == dict(b.dtypes) and a.attrs["spatialdata_attrs"] == b.attrs["spatialdata_attrs"]
        pd.testing.assert_frame_equal(a.compute(), b.compute())
        for i in range(a.npartitions):
            pd.testing.assert_frame_equal(a.get_partition(i).compute(), b.get_partition(i).compute())
    for name in ("sd_circles", "sd_polys"):
        a, b = ours[name], theirs[name]
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
        assert type(a) is type(b) and a.crs == b.crs
        assert_transformations_equal(a.attrs["transform"], b.attrs["transform"], ("x", "y"))


@needs_core
def test_append_and_lock_end_to_end(tmp_path: Path) -> None:
    from spatialdata.models import TableModel
    import anndata as ad

    store = zarrtx.open(tmp_path / "app.zarr", durable=False)

    def rows(region, n, start):
        obs = pd.DataFrame({"region": pd.Categorical([region] * n), "iid": np.arange(start, start + n)},
                           index=[f"{region}_{i}" for i in range(n)])
        return TableModel.parse(ad.AnnData(np.ones((n, 3), dtype=np.float32), obs=obs), region=region,
                                region_key="region", instance_key="iid")

    v1 = store.append("cells", rows("r1", 5, 0))
    with store.lock("cells"):
        with store.lock("CELLS", "r"):
            v2 = store.append("cells", rows("r2", 4, 0))
    assert v2 == v1 + 1
    t = store.read_element("cells")
    assert t.n_obs == 9 and sorted(t.uns["spatialdata_attrs"]["region"]) == ["r1", "r2"]
    assert store.read_element("cells", version=v1).n_obs == 5
    with pytest.raises(zarrtx.ElementNotFound, match="nope"):
        store.read_element("nope")
