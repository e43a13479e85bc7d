"""Round trips through `zarrtx.Store` of every SpatialData element type, checked against spatialdata's own reader.

Each element is made by spatialdata's models, added with `Store.add`, and read back twice — by the real,
unmodified `spatialdata.read_zarr(path)` and by `Store.read_element(name)` — and compared with the input (values,
dims, dtypes, channel names, pyramid levels, columns, categories, index, sparse matrices, layers, obsm, uns) and,
for what spatialdata normalises on its own (transformation axes, uns types), with what spatialdata makes of the
same element when it writes it itself.

Also: a dask image larger than one chunk is streamed (not materialised in Python); overwrite and delete; snapshot
reads at an old version, also of lazy arrays computed after the overwrite; laziness of `Store.read`;
`elements()` / `version` / `history()` fresh across processes; pickling (location and options only) into fresh
interpreters, ProcessPoolExecutor-style and Dask.
"""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import zxutil
from _api_helpers import HERE, read_sdata, run_fresh, sdata_names

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def store(zt, path):
    return zt.open(path)


# --------------------------------------------------------------------------------------------------------------
# Reference: what spatialdata itself makes of an element it writes and reads
# --------------------------------------------------------------------------------------------------------------

KIND_OF_MODEL = {
    "Image2DModel": "images",
    "Image3DModel": "images",
    "Labels2DModel": "labels",
    "Labels3DModel": "labels",
    "PointsModel": "points",
    "ShapesModel": "shapes",
    "TableModel": "tables",
}


def kind_of(element) -> str:
    from spatialdata.models import get_model

    return KIND_OF_MODEL[get_model(element).__name__]


def spatialdata_reference(tmp_path: Path, name: str, element):
    """Writes `element` with spatialdata itself into a separate store and reads it back with spatialdata."""
    import spatialdata as sd

    ref = tmp_path / f"ref_{name}.zarr"
    sd.SpatialData(**{kind_of(element): {name: element}}).write(ref)
    return read_sdata(ref)[name]


def levels(elem) -> list:
    return zxutil.element_levels(elem)


def values(a) -> np.ndarray:
    d = a.data
    return np.asarray(d.compute() if hasattr(d, "compute") else d)


def _structure(t, axes) -> tuple:
    """A comparable description of a transformation: its type tree, with parameters. Affines are compared as the
    map they are over `axes` (the engine stores an affine over the element's own axes, so an affine given with
    permuted output axes comes back as the same map with the axes in the element's order — see
    crates/zarrtx/src/transform.rs)."""
    from spatialdata.transformations import Affine, Sequence

    if isinstance(t, Sequence):
        return ("sequence", tuple(_structure(x, axes) for x in t.transformations))
    if isinstance(t, Affine):
        return ("affine", tuple(map(tuple, np.round(t.to_affine_matrix(axes, axes), 9))))
    return zxutil.describe_transform(t)


def assert_transformations(got, want_input, ref, axes) -> None:
    """Same maps as the input (affine matrices over `axes`) and the same structure as spatialdata's own read-back."""
    from spatialdata.transformations import get_transformation

    g = get_transformation(got, get_all=True)
    w = get_transformation(want_input, get_all=True)
    r = get_transformation(ref, get_all=True)
    assert set(g) == set(w) == set(r), f"coordinate systems: got {sorted(g)}, want {sorted(w)}"
    for cs in w:
        np.testing.assert_allclose(
            g[cs].to_affine_matrix(axes, axes), w[cs].to_affine_matrix(axes, axes), err_msg=f"transformation to {cs}"
        )
        assert _structure(g[cs], axes) == _structure(r[cs], axes), (
            f"transformation to {cs!r} differs from spatialdata's own round trip:\n got  {g[cs]}\n want {r[cs]}"
        )


def assert_raster_like(got, inp, ref, who: str) -> None:
    from spatialdata.models import get_channel_names, get_model

    assert type(got) is type(ref), f"{who}: a {type(got).__name__}, spatialdata reads a {type(ref).__name__}"
    assert get_model(got) is get_model(inp), f"{who}: model {get_model(got).__name__}, want {get_model(inp).__name__}"
    gl, il = levels(got), levels(inp)
    assert len(gl) == len(il), f"{who}: {len(gl)} levels, want {len(il)}"
    for k, (g, i) in enumerate(zip(gl, il)):
        assert tuple(g.dims) == tuple(i.dims), (who, k, g.dims, i.dims)
        assert g.shape == i.shape, (who, k, g.shape, i.shape)
        assert g.dtype == i.dtype, (who, k, g.dtype, i.dtype)
        np.testing.assert_array_equal(values(g), values(i), err_msg=f"{who}: level {k}")
    dims = tuple(il[0].dims)
    if "c" in dims:
        assert list(get_channel_names(got)) == list(get_channel_names(inp)), f"{who}: channel names"
    spatial = tuple(d for d in dims if d != "c")
    assert_transformations(got, inp, ref, spatial)


def assert_points_like(got, inp, ref, who: str) -> None:
    import dask.dataframe as dd
    from spatialdata.models import get_axes_names

    assert isinstance(got, dd.DataFrame), f"{who}: {type(got)} is not a dask DataFrame"
    g, i, r = got.compute(), inp.compute(), ref.compute()
    assert list(g.columns) == list(r.columns), f"{who}: columns {list(g.columns)}, spatialdata: {list(r.columns)}"
    assert set(g.columns) == set(i.columns)
    assert len(g) == len(i)
    for c in i.columns:
        assert g[c].dtype == r[c].dtype, (who, c, g[c].dtype, r[c].dtype)
        if isinstance(i[c].dtype, pd.CategoricalDtype):
            assert list(g[c].astype(str)) == list(i[c].astype(str)), (who, c)
            assert set(g[c].cat.categories) == set(i[c].cat.categories), (who, c)
        else:
            np.testing.assert_array_equal(g[c].to_numpy(), i[c].to_numpy(), err_msg=f"{who}: {c}")
    assert got.attrs["spatialdata_attrs"] == ref.attrs["spatialdata_attrs"], who
    assert tuple(get_axes_names(got)) == tuple(get_axes_names(inp))
    assert_transformations(got, inp, ref, tuple(get_axes_names(inp)))


def assert_shapes_like(got, inp, ref, who: str) -> None:
    import geopandas as gpd

    assert isinstance(got, gpd.GeoDataFrame), f"{who}: {type(got)}"
    assert len(got) == len(inp)
    assert list(got.columns) == list(ref.columns), f"{who}: columns {list(got.columns)}, spatialdata: {list(ref.columns)}"
    for k, (g, w) in enumerate(zip(got.geometry, inp.geometry)):
        assert g.equals_exact(w, 0), f"{who}: geometry {k}: {g.wkt} != {w.wkt}"
    for c in inp.columns:
        if c == "geometry":
            continue
        np.testing.assert_array_equal(got[c].to_numpy(), inp[c].to_numpy(), err_msg=f"{who}: {c}")
        assert got[c].dtype == ref[c].dtype, (who, c, got[c].dtype, ref[c].dtype)
    assert list(got.index) == list(ref.index), f"{who}: index"
    assert list(got.index) == list(inp.index), f"{who}: index"
    assert_transformations(got, inp, ref, ("x", "y"))


def _norm(v):
    """uns values as comparable plain Python (anndata turns lists of strings into arrays, scalars into 0-d)."""
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_norm(x) for x in v.tolist()] if v.ndim else _norm(v.item())
    if isinstance(v, np.generic):
        return v.item()
    return v


def _dense(m) -> np.ndarray:
    return m.toarray() if hasattr(m, "toarray") else np.asarray(m)


def assert_table_like(got, inp, ref, who: str) -> None:
    import anndata as ad
    import scipy.sparse as sp

    assert isinstance(got, ad.AnnData), f"{who}: {type(got)}"
    assert got.shape == inp.shape, (who, got.shape, inp.shape)
    assert list(got.obs_names) == list(inp.obs_names), f"{who}: obs_names"
    assert list(got.var_names) == list(inp.var_names), f"{who}: var_names"
    assert list(got.obs.columns) == list(inp.obs.columns), f"{who}: obs columns"
    for c in inp.obs.columns:
        gi, ii, ri = got.obs[c], inp.obs[c], ref.obs[c]
        if not pd.api.types.is_string_dtype(ri.dtype) or isinstance(ri.dtype, pd.CategoricalDtype):
            assert gi.dtype == ri.dtype, (who, c, gi.dtype, ri.dtype)  # strings: test_table_string_column_dtype
        if isinstance(ii.dtype, pd.CategoricalDtype):
            assert list(gi.cat.categories) == list(ii.cat.categories), (who, c, "categories (and their order)")
            assert list(gi.astype(str)) == list(ii.astype(str)), (who, c)
        else:
            np.testing.assert_array_equal(gi.to_numpy(), ii.to_numpy(), err_msg=f"{who}: obs {c}")
    assert sp.issparse(got.X) == sp.issparse(inp.X), f"{who}: X sparse {sp.issparse(got.X)}, want {sp.issparse(inp.X)}"
    if sp.issparse(inp.X):
        assert got.X.format == inp.X.format, (who, got.X.format)
    assert got.X.dtype == inp.X.dtype, (who, got.X.dtype, inp.X.dtype)
    np.testing.assert_array_equal(_dense(got.X), _dense(inp.X), err_msg=f"{who}: X")
    assert set(got.layers.keys()) == set(inp.layers.keys()), who
    for k in inp.layers.keys():
        assert got.layers[k].dtype == inp.layers[k].dtype
        np.testing.assert_array_equal(_dense(got.layers[k]), _dense(inp.layers[k]), err_msg=f"{who}: layer {k}")
    assert set(got.obsm.keys()) == set(inp.obsm.keys()), who
    for k in inp.obsm.keys():
        np.testing.assert_array_equal(np.asarray(got.obsm[k]), np.asarray(inp.obsm[k]), err_msg=f"{who}: obsm {k}")
    assert _norm(dict(got.uns)) == _norm(dict(ref.uns)), f"{who}: uns {dict(got.uns)} vs spatialdata's {dict(ref.uns)}"
    assert _norm(dict(got.uns)) == _norm(dict(inp.uns)), f"{who}: uns {dict(got.uns)} vs input {dict(inp.uns)}"


def round_trip(store, path, tmp_path, name, element, compare) -> None:
    """Adds `element`, then compares what spatialdata.read_zarr and Store.read_element return."""
    v = store.add(name, element)
    assert isinstance(v, int) and v == store.version
    kind = kind_of(element)
    assert dict(store.elements())[name] == kind
    ref = spatialdata_reference(tmp_path, name, element)
    sdata = read_sdata(path)
    assert sdata_names(sdata).get(name) == kind, f"spatialdata.read_zarr lists {sdata_names(sdata)}"
    compare(sdata[name], element, ref, "spatialdata.read_zarr")
    compare(store.read_element(name), element, ref, "Store.read_element")
    compare(store.read()[name], element, ref, "Store.read")


# --------------------------------------------------------------------------------------------------------------
# Elements
# --------------------------------------------------------------------------------------------------------------


def _image_2d(multiscale: bool, seed: int = 1):
    from spatialdata.models import Image2DModel
    from spatialdata.transformations import Scale, Sequence, Translation

    data = zxutil.image_data(seed, (3, 64, 48), "uint16")
    kw = {"scale_factors": [2, 2]} if multiscale else {}
    return Image2DModel.parse(
        data,
        dims=("c", "y", "x"),
        c_coords=["dapi", "cd45", "cd3"],
        transformations={
            "global": Scale([0.5, 0.5], axes=("y", "x")),
            "aligned": Sequence([Translation([3.0, 4.0], axes=("x", "y")), Scale([2.0, 2.0], axes=("y", "x"))]),
        },
        **kw,
    )


def _image_3d(multiscale: bool):
    from spatialdata.models import Image3DModel
    from spatialdata.transformations import Translation

    data = zxutil.image_data(3, (2, 8, 32, 40), "float32")
    kw = {"scale_factors": [2]} if multiscale else {}
    return Image3DModel.parse(
        data, dims=("c", "z", "y", "x"), c_coords=["nuclei", "membrane"],
        transformations={"global": Translation([1.0, 2.0, 3.0], axes=("z", "y", "x"))}, **kw,
    )


def _labels_2d(multiscale: bool):
    from spatialdata.models import Labels2DModel
    from spatialdata.transformations import Affine

    data = zxutil.labels_data(5, (64, 80), "int32")
    kw = {"scale_factors": [2]} if multiscale else {}
    aff = Affine(np.array([[0.0, 1.0, 5.0], [1.0, 0.0, -3.0], [0.0, 0.0, 1.0]]), input_axes=("x", "y"), output_axes=("x", "y"))
    return Labels2DModel.parse(data, dims=("y", "x"), transformations={"global": aff}, **kw)


def _labels_3d():
    from spatialdata.models import Labels3DModel

    return Labels3DModel.parse(zxutil.labels_data(6, (6, 32, 32), "uint16"), dims=("z", "y", "x"))


RASTERS = {
    "image2d": lambda: _image_2d(False),
    "image2d_multiscale": lambda: _image_2d(True),
    "image3d": lambda: _image_3d(False),
    "image3d_multiscale": lambda: _image_3d(True),
    "labels2d": lambda: _labels_2d(False),
    "labels2d_multiscale": lambda: _labels_2d(True),
    "labels3d": _labels_3d,
}


@pytest.mark.parametrize("case", list(RASTERS))
def test_raster_round_trip(zt, store, path, tmp_path, case):
    round_trip(store, path, tmp_path, f"el_{case}", RASTERS[case](), assert_raster_like)


def _points(z: bool = False, seed: int = 2):
    from spatialdata.models import PointsModel
    from spatialdata.transformations import Scale

    rng = np.random.default_rng(seed)
    n = 150
    df = pd.DataFrame({"x": rng.uniform(0, 100, n), "y": rng.uniform(-50, 50, n)})
    coords = {"x": "x", "y": "y"}
    if z:
        df["z"] = rng.uniform(0, 10, n)
        coords["z"] = "z"
    df["gene"] = pd.Categorical(rng.choice(["Actb", "Gapdh", "Cd3e"], n))
    df["cell_id"] = rng.integers(0, 20, n).astype(np.int64)
    df["quality"] = rng.normal(size=n).astype(np.float32)
    axes = ("x", "y", "z") if z else ("x", "y")
    return PointsModel.parse(
        df, coordinates=coords, feature_key="gene", instance_key="cell_id",
        transformations={"global": Scale([2.0] * len(axes), axes=axes)},
    )


def _circles():
    import geopandas as gpd
    from shapely.geometry import Point
    from spatialdata.models import ShapesModel
    from spatialdata.transformations import Translation

    rng = np.random.default_rng(11)
    n = 12
    gdf = gpd.GeoDataFrame(
        {"geometry": [Point(*p) for p in rng.uniform(0, 100, (n, 2))], "radius": rng.uniform(0.5, 5, n),
         "area": rng.integers(1, 1000, n).astype(np.int64)},
        index=pd.Index([f"cell_{i}" for i in range(n)]),
    )
    return ShapesModel.parse(gdf, transformations={"global": Translation([10.0, -5.0], axes=("x", "y"))})


def _polygons():
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, Polygon
    from spatialdata.models import ShapesModel

    hole = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], holes=[[(2, 2), (2, 4), (4, 4), (4, 2)]])
    tri = Polygon([(20, 0), (23, 0), (20, 3)])
    multi = MultiPolygon([Polygon([(30, 0), (31, 0), (31, 1), (30, 1)]), Polygon([(40, 0), (42, 0), (42, 2)])])
    return ShapesModel.parse(gpd.GeoDataFrame({"geometry": [hole, tri, multi], "label": [1, 2, 3]}, index=pd.Index([7, 8, 9])))


def test_points_round_trip(zt, store, path, tmp_path):
    round_trip(store, path, tmp_path, "transcripts", _points(), assert_points_like)


def test_points_3d_round_trip(zt, store, path, tmp_path):
    round_trip(store, path, tmp_path, "transcripts3d", _points(z=True, seed=4), assert_points_like)


def test_pandas_points_are_accepted(zt, store, path):
    """A pandas DataFrame carrying the points metadata (a computed points element) is a points element too."""
    from spatialdata.models import PointsModel

    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0], "gene": pd.Categorical(["a", "b", "a"])})
    computed = PointsModel.parse(df, coordinates={"x": "x", "y": "y"}, feature_key="gene").compute()
    assert isinstance(computed, pd.DataFrame)
    store.add("plain_points", computed)
    got = read_sdata(path)["plain_points"].compute()
    np.testing.assert_array_equal(got["x"].to_numpy(), df["x"].to_numpy())
    np.testing.assert_array_equal(got["y"].to_numpy(), df["y"].to_numpy())
    assert list(got["gene"].astype(str)) == ["a", "b", "a"]


def test_circles_round_trip(zt, store, path, tmp_path):
    round_trip(store, path, tmp_path, "cells_circles", _circles(), assert_shapes_like)


def test_polygons_round_trip(zt, store, path, tmp_path):
    round_trip(store, path, tmp_path, "cells_polygons", _polygons(), assert_shapes_like)


def _table(annotated: bool = True, sparse: bool = True, n: int = 50, n_vars: int = 6, seed: int = 8):
    import anndata as ad
    import scipy.sparse as sp
    from spatialdata.models import TableModel

    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.7, size=(n, n_vars)).astype(np.float32)
    X = sp.csr_matrix(dense) if sparse else dense
    obs = pd.DataFrame(
        {
            "kind": pd.Categorical(rng.choice(["z", "a", "m"], n), categories=["z", "a", "m"]),
            "score": rng.normal(size=n),
            "count": rng.integers(0, 100, n).astype(np.int32),
            "flag": rng.integers(0, 2, n).astype(bool),
            "label": [f"cell {i}" for i in range(n)],
        },
        index=pd.Index([f"c{i}" for i in range(n)]),
    )
    if annotated:
        obs["region"] = pd.Categorical(np.where(np.arange(n) < n // 2, "lab_a", "lab_b"))
        obs["instance_id"] = np.r_[np.arange(1, n // 2 + 1), np.arange(1, n - n // 2 + 1)].astype(np.int64)
    a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(n_vars)]))
    a.layers["counts"] = rng.integers(0, 50, size=(n, n_vars)).astype(np.int32)
    a.obsm["spatial"] = rng.uniform(0, 100, size=(n, 2))
    a.uns["title"] = "round trip"
    a.uns["n_cells"] = n
    a.uns["pi"] = 3.25
    a.uns["names"] = ["alpha", "beta"]
    a.uns["arr"] = np.arange(5, dtype=np.int64)
    a.uns["nested"] = {"key": "value", "weights": np.linspace(0, 1, 3)}
    if annotated:
        return TableModel.parse(a, region=["lab_a", "lab_b"], region_key="region", instance_key="instance_id")
    return TableModel.parse(a)


def test_table_round_trip(zt, store, path, tmp_path):
    round_trip(store, path, tmp_path, "cells", _table(), assert_table_like)


def test_table_string_column_dtype(zt, store, path, tmp_path):
    """A string obs column (pandas 3 `str`) comes back with the dtype spatialdata's own round trip gives it."""
    t = _table()
    store.add("cells", t)
    ref = spatialdata_reference(tmp_path, "cells", t)
    for who, got in (("spatialdata.read_zarr", read_sdata(path).tables["cells"]), ("Store.read_element", store.read_element("cells"))):
        assert got.obs["label"].dtype == ref.obs["label"].dtype, (
            f"{who}: obs['label'] is {got.obs['label'].dtype}; written by spatialdata itself it reads back as "
            f"{ref.obs['label'].dtype} (input: {t.obs['label'].dtype})"
        )
        assert list(got.obs["label"]) == list(t.obs["label"])


def test_table_dense_without_annotation_round_trip(zt, store, path, tmp_path):
    round_trip(store, path, tmp_path, "plain_table", _table(annotated=False, sparse=False, seed=9), assert_table_like)


def test_append_grows_the_table_and_keeps_spatialdata_attrs(zt, store, path):
    import anndata as ad

    a = _table(seed=1)
    store.add("cells", a)
    b = _table(seed=2)
    b.obs_names = [f"d{i}" for i in range(b.n_obs)]
    b.obs["instance_id"] = b.obs["instance_id"] + 1000
    v = store.append("cells", b)
    assert v == store.version
    want = ad.concat([a, b])
    for who, got in (("spatialdata.read_zarr", read_sdata(path).tables["cells"]), ("Store.read_element", store.read_element("cells"))):
        assert got.n_obs == a.n_obs + b.n_obs, who
        assert list(got.obs_names) == list(want.obs_names), who
        np.testing.assert_array_equal(_dense(got.X), _dense(want.X), err_msg=who)
        np.testing.assert_array_equal(got.obs["instance_id"].to_numpy(), want.obs["instance_id"].to_numpy(), err_msg=who)
        np.testing.assert_array_equal(np.asarray(got.obsm["spatial"]), np.asarray(want.obsm["spatial"]), err_msg=who)
        np.testing.assert_array_equal(_dense(got.layers["counts"]), _dense(want.layers["counts"]), err_msg=who)
        assert list(got.obs["kind"].astype(str)) == list(want.obs["kind"].astype(str)), who
        attrs = got.uns["spatialdata_attrs"]
        assert sorted(np.atleast_1d(attrs["region"]).astype(str)) == ["lab_a", "lab_b"], who


def test_whole_store_read_matches_spatialdata(zt, store, path):
    """Every element type in one store: Store.read() and spatialdata.read_zarr list the same elements; a selection
    reads only the selected ones."""
    els = {"img": _image_2d(True), "lab": _labels_2d(False), "pts": _points(), "circ": _circles(), "poly": _polygons(), "tab": _table()}
    for name, el in els.items():
        store.add(name, el)
    want = {name: kind_of(el) for name, el in els.items()}
    assert dict(store.elements()) == want
    assert sdata_names(read_sdata(path)) == want
    assert sdata_names(store.read()) == want
    assert sdata_names(store.read(selection=["img", "tab"])) == {"img": "images", "tab": "tables"}


# --------------------------------------------------------------------------------------------------------------
# Streaming a dask image
# --------------------------------------------------------------------------------------------------------------


def _gradient_block(block_info=None):
    (c0, c1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    yy = (np.arange(y0, y1, dtype=np.uint32) * 31) % 65521
    xx = (np.arange(x0, x1, dtype=np.uint32) * 7) % 65521
    return ((yy[:, None] + xx[None, :]) % 65521).astype(np.uint16)[None].repeat(c1 - c0, axis=0)


def _gradient_image(h: int, w: int, chunk: int):
    import dask.array as da
    from spatialdata.models import Image2DModel

    arr = da.map_blocks(
        _gradient_block, chunks=((1,), (chunk,) * (h // chunk), (chunk,) * (w // chunk)), dtype=np.uint16
    )
    return Image2DModel.parse(arr, dims=("c", "y", "x"), c_coords=["dapi"])


def _expected_gradient(y0, y1, x0, x1) -> np.ndarray:
    return _gradient_block({None: {"array-location": [(0, 1), (y0, y1), (x0, x1)]}})


def test_dask_image_larger_than_one_chunk_is_streamed(zt, store, path):
    """A 512 MiB dask image is written without ever holding it whole in Python memory (traced numpy allocations
    stay well below its size), and reads back equal, also across chunk boundaries."""
    import dask.array as da
    import tracemalloc

    store.add("warm_up", _gradient_image(256, 256, 128))  # imports and caches before measuring
    h = w = 16384
    image = _gradient_image(h, w, 2048)  # 512 MiB in 64 blocks of 8 MiB
    total = h * w * 2
    assert image.data.numblocks == (1, 8, 8)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        store.add("big", image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.75 * total, (
        f"adding a {total >> 20} MiB dask image allocated {peak >> 20} MiB in Python at once: it was materialised, "
        "not streamed block by block"
    )
    windows = [(0, 64, 0, 64), (2000, 2100, 2040, 2060), (16300, 16384, 16320, 16384), (8190, 8194, 0, 16384)]
    sd_big = read_sdata(path)["big"]
    lazy = store.read_element("big")
    assert isinstance(lazy.data, da.Array)
    assert lazy.shape == (1, h, w) and sd_big.shape == (1, h, w)
    for y0, y1, x0, x1 in windows:
        want = _expected_gradient(y0, y1, x0, x1)
        np.testing.assert_array_equal(np.asarray(sd_big.data[:, y0:y1, x0:x1]), want, err_msg=f"spatialdata {y0, x0}")
        np.testing.assert_array_equal(np.asarray(lazy.data[:, y0:y1, x0:x1]), want, err_msg=f"read_element {y0, x0}")


# --------------------------------------------------------------------------------------------------------------
# Overwrite, delete, snapshots, laziness
# --------------------------------------------------------------------------------------------------------------


def _labels_filled(v: int, shape=(32, 32)):
    from spatialdata.models import Labels2DModel

    return Labels2DModel.parse(np.full(shape, v, dtype=np.int32), dims=("y", "x"))


def test_overwrite_replaces_and_old_version_still_reads(zt, store, path):
    v1 = store.add("seg", _labels_filled(1))
    with pytest.raises(zt.ElementExists):
        store.add("seg", _labels_filled(2))
    assert store.version == v1
    v2 = store.add("seg", _labels_filled(2, (16, 24)), overwrite=True)
    assert v2 > v1 and store.version == v2
    assert dict(store.elements()) == {"seg": "labels"}
    np.testing.assert_array_equal(values(read_sdata(path)["seg"]), np.full((16, 24), 2))
    np.testing.assert_array_equal(values(store.read_element("seg")), np.full((16, 24), 2))
    # time travel
    np.testing.assert_array_equal(values(store.read_element("seg", version=v1)), np.full((32, 32), 1))
    np.testing.assert_array_equal(values(store.read(version=v1)["seg"]), np.full((32, 32), 1))
    np.testing.assert_array_equal(values(store.read(version=v2)["seg"]), np.full((16, 24), 2))


def test_overwrite_table_and_points(zt, store, path):
    store.add("tab", _table(seed=1))
    store.add("tab", _table(seed=2, n=20), overwrite=True)
    assert read_sdata(path).tables["tab"].n_obs == 20
    store.add("pts", _points(seed=1))
    p2 = _points(seed=5)
    store.add("pts", p2, overwrite=True)
    np.testing.assert_array_equal(read_sdata(path)["pts"].compute()["x"].to_numpy(), p2.compute()["x"].to_numpy())


def test_delete(zt, store, path):
    store.add("keep", _labels_filled(1))
    v_before = store.add("gone", _labels_filled(7))
    v = store.delete("gone")
    assert isinstance(v, int) and v == v_before + 1 == store.version
    assert dict(store.elements()) == {"keep": "labels"}
    assert sdata_names(read_sdata(path)) == {"keep": "labels"}
    assert sdata_names(store.read()) == {"keep": "labels"}
    with pytest.raises(zt.ElementNotFound):
        store.read_element("gone")
    # still readable at the version before the delete
    np.testing.assert_array_equal(values(store.read_element("gone", version=v_before)), np.full((32, 32), 7))
    assert set(sdata_names(store.read(version=v_before))) == {"keep", "gone"}
    # the name is free again
    store.add("gone", _labels_filled(8))
    np.testing.assert_array_equal(values(read_sdata(path)["gone"]), np.full((32, 32), 8))


def test_gc_reclaims_old_versions(zt, store, path):
    """Old versions read until gc reclaims them (default grace: recent ones stay); then VersionNotAvailable. The
    store verifies clean before and after."""
    v1 = store.add("seg", _labels_filled(1))
    store.add("seg", _labels_filled(2), overwrite=True)
    store.add("gone", _labels_filled(3))
    store.delete("gone")
    report = store.verify()
    assert report["problems"] == [] and report["leftovers"] == [], report
    store.gc()  # the default grace period keeps what was displaced just now
    np.testing.assert_array_equal(values(store.read_element("seg", version=v1)), np.full((32, 32), 1))
    store.gc(grace_seconds=0)
    with pytest.raises(zt.VersionNotAvailable):
        values(store.read_element("seg", version=v1))
    np.testing.assert_array_equal(values(store.read_element("seg")), np.full((32, 32), 2))
    report = store.verify()
    assert report["problems"] == [] and report["leftovers"] == [], report
    assert sdata_names(read_sdata(path)) == {"seg": "labels"}


def test_table_snapshot_after_append(zt, store):
    v = store.add("tab", _table(seed=1, n=30))
    more = _table(seed=3, n=10)
    more.obs_names = [f"x{i}" for i in range(10)]
    more.obs["instance_id"] = more.obs["instance_id"] + 500
    store.append("tab", more)
    assert store.read(version=v).tables["tab"].n_obs == 30
    assert store.read_element("tab", version=v).n_obs == 30
    assert store.read_element("tab").n_obs == 40


def test_read_is_lazy(zt, store):
    import dask.array as da
    import dask.dataframe as dd

    store.add("img", _image_2d(False))
    store.add("ms", _image_2d(True))
    store.add("lab", _labels_2d(False))
    store.add("pts", _points())
    sdata = store.read()
    assert isinstance(sdata["img"].data, da.Array), type(sdata["img"].data)
    assert isinstance(sdata["lab"].data, da.Array), type(sdata["lab"].data)
    for lvl in levels(sdata["ms"]):
        assert isinstance(lvl.data, da.Array), type(lvl.data)
    assert isinstance(sdata["pts"], dd.DataFrame), type(sdata["pts"])
    assert isinstance(store.read_element("img").data, da.Array)
    for lvl in levels(store.read_element("ms")):
        assert isinstance(lvl.data, da.Array)


def test_lazy_reads_are_snapshots(zt, store):
    """Lazy arrays and points taken before an overwrite or delete compute the data of their version."""
    store.add("seg", _labels_filled(1))
    store.add("img", _image_2d(False, seed=1))
    p1 = _points(seed=1)
    store.add("pts", p1)
    old = store.read()
    old_seg = store.read_element("seg")
    old_pts = store.read_element("pts")
    store.add("seg", _labels_filled(2), overwrite=True)
    store.delete("img")
    store.add("pts", _points(seed=2), overwrite=True)
    np.testing.assert_array_equal(values(old["seg"]), np.full((32, 32), 1))
    np.testing.assert_array_equal(values(old_seg), np.full((32, 32), 1))
    np.testing.assert_array_equal(values(old["img"]), values(_image_2d(False, seed=1)))
    np.testing.assert_array_equal(old["pts"].compute()["x"].to_numpy(), p1.compute()["x"].to_numpy())
    np.testing.assert_array_equal(old_pts.compute()["x"].to_numpy(), p1.compute()["x"].to_numpy())
    # and the new state
    np.testing.assert_array_equal(values(store.read()["seg"]), np.full((32, 32), 2))


# --------------------------------------------------------------------------------------------------------------
# Fresh handles across processes; history
# --------------------------------------------------------------------------------------------------------------

CHILD_ADD = """
import json, os, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
import zarrtx
from spatialdata.models import Labels2DModel
store = zarrtx.open(sys.argv[1])
v = store.add(sys.argv[2], Labels2DModel.parse(np.full((8, 8), 3, dtype=np.int32), dims=("y", "x")))
print(json.dumps({"pid": os.getpid(), "version": v}))
"""

CHILD_WATCH = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import zarrtx
store = zarrtx.open(sys.argv[1])
v0 = store.version
Path(sys.argv[3]).write_text(str(v0))
deadline = time.monotonic() + 120
while sys.argv[2] not in store.elements():
    if time.monotonic() > deadline:
        sys.exit("never saw " + sys.argv[2])
    time.sleep(0.01)
print(json.dumps({"v0": v0, "version": store.version, "kind": store.elements()[sys.argv[2]]}))
"""


def test_elements_version_history_fresh_across_processes(zt, store, path, tmp_path):
    store.add("first", _labels_filled(1))
    v0 = store.version
    names0 = dict(store.elements())
    # another process commits; this handle sees it at once, without reopening
    out = json.loads(run_fresh(CHILD_ADD, str(path), "from_child").stdout.strip().splitlines()[-1])
    assert store.version == out["version"] == v0 + 1
    assert dict(store.elements()) == names0 | {"from_child": "labels"}
    hist = store.history()
    assert [h["version"] for h in hist] == sorted(h["version"] for h in hist)
    assert hist[-1]["version"] == store.version
    last = hist[-1]
    assert "from_child" in json.dumps(last["summary"], default=str), last
    assert str(out["pid"]) in json.dumps(last["writer"], default=str), f"history does not say which process wrote: {last}"
    assert any("first" in json.dumps(h["summary"], default=str) for h in hist)
    # and a handle in another process sees this process's commit
    ready = tmp_path / "ready"
    watcher = subprocess.Popen(
        [sys.executable, "-c", CHILD_WATCH, str(path), "from_parent", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env(),
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert watcher.poll() is None, watcher.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    v = store.add("from_parent", _labels_filled(2))
    so, se = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, se
    seen = json.loads(so.strip().splitlines()[-1])
    assert seen["v0"] == v - 1 and seen["version"] == v and seen["kind"] == "labels"


def _child_env() -> dict:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def test_version_is_an_int_property(zt, store):
    assert isinstance(store.version, int)
    v = store.add("x", _labels_filled(1))
    assert store.version == v


# --------------------------------------------------------------------------------------------------------------
# Pickling
# --------------------------------------------------------------------------------------------------------------

CHILD_UNPICKLE = """
import json, os, pickle, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
store = pickle.loads(open(sys.argv[1], "rb").read())
from spatialdata.models import Labels2DModel
img = store.read_element("marker")
total = int(np.asarray(img.data).astype(np.int64).sum())
v = store.add("from_unpickled", Labels2DModel.parse(np.full((8, 8), 5, dtype=np.int32), dims=("y", "x")))
print(json.dumps({"sum": total, "version": v, "elements": dict(store.elements())}))
"""

CHILD_UNPICKLE_RO = """
import pickle, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
import zarrtx
from spatialdata.models import Labels2DModel
store = pickle.loads(open(sys.argv[1], "rb").read())
assert "marker" in store.elements()
try:
    store.add("nope", Labels2DModel.parse(np.ones((4, 4), dtype=np.int32), dims=("y", "x")))
except zarrtx.StorageError as e:
    print("StorageError:", e)
else:
    sys.exit("a read-only store accepted a write after unpickling")
"""


def _marker_image():
    from spatialdata.models import Image2DModel

    marker = np.frombuffer(b"\xde\xad\xbe\xef\x13\x37\xca\xfe" * 2048, dtype=np.uint16).reshape(1, 64, 128).copy()
    return Image2DModel.parse(marker, dims=("c", "y", "x")), marker


def test_pickle_is_location_and_options_only(zt, store, path, tmp_path):
    empty = pickle.dumps(store)
    image, marker = _marker_image()
    store.add("marker", image)
    store.read()
    store.read_element("marker").data.compute()
    data = pickle.dumps(store)
    assert data == empty, "the pickle changed with the store's content: it must hold the location and options only"
    assert len(data) < 2048, f"a pickled Store is {len(data)} bytes"
    assert b"\xde\xad\xbe\xef\x13\x37" not in data
    assert str(path).encode() in data or path.name.encode() in data
    # works in a fresh interpreter
    pk = tmp_path / "store.pkl"
    pk.write_bytes(data)
    out = json.loads(run_fresh(CHILD_UNPICKLE, str(pk)).stdout.strip().splitlines()[-1])
    assert out["sum"] == int(marker.astype(np.int64).sum())
    assert out["version"] == store.version
    assert out["elements"] == {"marker": "images", "from_unpickled": "labels"}
    assert dict(store.elements()) == out["elements"]
    # options travel with it: a read-only store stays read-only
    ro = zt.open(path, read_only=True)
    pk.write_bytes(pickle.dumps(ro))
    run_fresh(CHILD_UNPICKLE_RO, str(pk))
    assert dict(store.elements()) == out["elements"]


def dask_add_labels(store, i: int) -> int:
    from spatialdata.models import Labels2DModel

    return store.add(f"dask_{i}", Labels2DModel.parse(np.full((16, 16), i, dtype=np.int32), dims=("y", "x")))


def test_store_in_dask_process_workers(zt, store, path):
    import dask

    tasks = [dask.delayed(dask_add_labels)(store, i) for i in range(1, 7)]
    versions = dask.compute(*tasks, scheduler="processes", num_workers=2)
    assert len(set(versions)) == 6
    sdata = read_sdata(path)
    assert set(sdata.labels) == {f"dask_{i}" for i in range(1, 7)}
    for i in range(1, 7):
        np.testing.assert_array_equal(values(sdata[f"dask_{i}"]), np.full((16, 16), i))


def test_in_memory_elements_are_written_from_numpy_and_other_graphs_are_not_mistaken_for_it(tmp_path, zt):
    """spatialdata's parse wraps numpy in a graph that only re-chunks it: Store.add writes that array directly.
    Graphs that compute something (arithmetic, reversed slices, a transpose) must not be taken for it."""
    import dask.array as da
    from spatialdata.models import Image2DModel

    from zarrtx._raster import numpy_behind

    a = np.random.default_rng(5).integers(0, 9999, (2, 700, 900), dtype=np.uint16)
    el = Image2DModel.parse(a, dims=("c", "y", "x"), chunks=(2, 256, 256))
    behind = numpy_behind(el.data)
    assert behind is not None
    np.testing.assert_array_equal(behind, a)
    np.testing.assert_array_equal(numpy_behind(da.from_array(a).rechunk((2, 128, 512))), a)
    base = da.from_array(a, chunks=(2, 300, 300))
    for other in (base + 1, base[:, ::-1, :], base.transpose(0, 2, 1), base.astype(np.int32), da.zeros_like(base)):
        assert numpy_behind(other) is None
    store = zt.open(tmp_path / "s.zarr")
    store.add("img", el)
    np.testing.assert_array_equal(store.read_element("img").data.compute(), a)
