"""Points and shapes written by the zarrtx CLI, read back by spatialdata 0.8 with equal content: coordinates,
radius, geometries, extra columns, feature categories, index and transformations; concurrent writers; a store
written by spatialdata itself extended with points and shapes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import zxutil
from zxutil import SD_FIXTURE_ELEMENTS, read_sdata

pytestmark = pytest.mark.timeout(600)

GENES = ["Actb", "Gapdh", "Cd3e", "Ptprc"]


def points_df(seed: int, n: int = 200, z: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = {"x": rng.uniform(0, 100, n), "y": rng.uniform(-50, 50, n)}
    if z:
        d["z"] = rng.integers(0, 10, n).astype(np.int32)
    d["gene"] = rng.choice(GENES, n)
    d["cell_id"] = rng.integers(0, 20, n).astype(np.int64)
    d["quality"] = rng.normal(size=n).astype(np.float32)
    return pd.DataFrame(d)


def circles_gdf(seed: int, n: int = 12):
    import geopandas as gpd
    from shapely.geometry import Point

    rng = np.random.default_rng(1000 + seed)
    xy = rng.uniform(0, 100, (n, 2))
    return gpd.GeoDataFrame(
        {
            "geometry": [Point(*p) for p in xy],
            "radius": rng.uniform(0.5, 5, n),
            "area": rng.integers(1, 1000, n).astype(np.int64),
            "kind": rng.choice(["a", "b"], n),
        },
        index=pd.Index([f"cell_{seed}_{i}" for i in range(n)]),
    )


def polygons_gdf():
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, Polygon

    hole = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], holes=[[(2, 2), (2, 4), (4, 4), (4, 2)]])
    tri = Polygon([(20, 0), (23, 0), (20, 3)])
    multi = MultiPolygon([Polygon([(30, 0), (31, 0), (31, 1), (30, 1)]), Polygon([(40, 0), (42, 0), (42, 2)])])
    return gpd.GeoDataFrame({"geometry": [hole, tri, multi], "label": [1, 2, 3]}, index=pd.Index([7, 8, 9]))


def assert_points_equal(got_dask, want: pd.DataFrame):
    got = got_dask.compute().reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    for c in want.columns:
        if c == "gene":
            assert isinstance(got[c].dtype, pd.CategoricalDtype), got[c].dtype
            assert list(got[c].astype(str)) == list(want[c].astype(str))
        else:
            np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy(), err_msg=c)
            assert got[c].dtype == want[c].dtype, (c, got[c].dtype, want[c].dtype)


def assert_shapes_equal(got, want, check_index=True):
    assert len(got) == len(want)
    assert all(g.equals_exact(w, 0) for g, w in zip(got.geometry, want.geometry))
    for c in want.columns:
        if c == "geometry":
            continue
        np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy(), err_msg=c)
    if check_index:
        assert list(got.index) == list(want.index)


def test_points_round_trip_parquet_and_csv(zx, store, inputs):
    from spatialdata.models import PointsModel
    from spatialdata.transformations import Affine, Scale, get_transformation

    df = points_df(1)
    pq = inputs / "pts.parquet"
    df.to_parquet(pq, index=False)
    zx.run("add-points", store, "pts", pq, "--feature-key", "gene", "--instance-key", "cell_id",
           "--transform", "global=scale:2,0.5", "--transform", "aligned=affine:[[0,1,5],[1,0,-3]]")
    df3 = points_df(2, 80, z=True)
    csv = inputs / "pts3.csv"
    df3.to_csv(csv, index=False)
    zx.run("add-points", store, "pts3", csv, "--feature-key", "gene")

    sdata = read_sdata(store)
    assert_points_equal(sdata["pts"], df)
    attrs = sdata["pts"].attrs["spatialdata_attrs"]
    assert attrs == {"feature_key": "gene", "instance_key": "cell_id"}
    assert set(sdata["pts"]["gene"].compute().cat.categories) == set(df["gene"])
    zxutil.assert_transformations_equal(
        get_transformation(sdata["pts"], get_all=True),
        {"global": Scale([2.0, 0.5], axes=("x", "y")),
         "aligned": Affine(np.array([[0, 1, 5], [1, 0, -3], [0, 0, 1]], dtype=float), input_axes=("x", "y"), output_axes=("x", "y"))},
        ("x", "y"),
    )
    PointsModel.validate(sdata["pts"])

    got3 = sdata["pts3"].compute().reset_index(drop=True)
    np.testing.assert_allclose(got3[["x", "y", "quality"]].to_numpy(), df3[["x", "y", "quality"]].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(got3["z"].to_numpy(), df3["z"].to_numpy())
    assert list(got3["gene"].astype(str)) == list(df3["gene"])
    from spatialdata.models import get_axes_names
    assert tuple(get_axes_names(sdata["pts3"])) == ("x", "y", "z")
    PointsModel.validate(sdata["pts3"])

    info = zx.info(store)
    rows = {e["name"]: e.get("rows") for e in info["elements"]}
    assert rows == {"pts": 200, "pts3": 80}
    zx.verify_clean(store)


def test_shapes_round_trip_circles_polygons_multipolygons(zx, store, inputs):
    from spatialdata.models import ShapesModel
    from spatialdata.transformations import Scale, Translation, get_transformation

    circ = circles_gdf(1)
    circ.to_parquet(inputs / "circ.parquet")
    zx.run("add-shapes", store, "circ", inputs / "circ.parquet", "--transform", "global=translation:10,-5")

    poly = polygons_gdf()
    poly.to_parquet(inputs / "poly.parquet")
    zx.run("add-shapes", store, "poly", inputs / "poly.parquet", "--transform", "global=scale:0.5,0.5")
    (inputs / "poly.geojson").write_text(poly.to_json())
    zx.run("add-shapes", store, "poly_gj", inputs / "poly.geojson")

    plain = pd.DataFrame({"x": [1.0, 2.0, 3.5], "y": [4.0, 5.0, 6.0], "radius": [0.5, 1.0, 2.0], "tag": ["p", "q", "r"]})
    plain.to_csv(inputs / "circ.csv", index=False)
    zx.run("add-shapes", store, "circ_csv", inputs / "circ.csv")

    sdata = read_sdata(store)
    assert_shapes_equal(sdata["circ"], circ)
    assert_shapes_equal(sdata["poly"], poly)
    # GeoJSON feature ids are strings ("7", ...) and become the index; properties become columns.
    assert_shapes_equal(sdata["poly_gj"], poly, check_index=False)
    assert list(sdata["poly_gj"].index.astype(str)) == ["7", "8", "9"]
    got = sdata["circ_csv"]
    np.testing.assert_allclose(np.c_[got.geometry.x, got.geometry.y], plain[["x", "y"]].to_numpy())
    np.testing.assert_allclose(got["radius"], plain["radius"])
    assert list(got["tag"]) == ["p", "q", "r"]
    for name in ("circ", "poly", "poly_gj", "circ_csv"):
        ShapesModel.validate(sdata[name])
    zxutil.assert_transformations_equal(get_transformation(sdata["circ"], get_all=True),
                                        {"global": Translation([10.0, -5.0], axes=("x", "y"))}, ("x", "y"))
    zxutil.assert_transformations_equal(get_transformation(sdata["poly"], get_all=True),
                                        {"global": Scale([0.5, 0.5], axes=("x", "y"))}, ("x", "y"))
    info = {e["name"]: e for e in zx.info(store)["elements"]}
    assert info["circ"]["geometry_types"] == ["Point"]
    assert info["poly"]["geometry_types"] == ["MultiPolygon", "Polygon"]

    # The GeoParquet metadata is what geopandas itself writes.
    import pyarrow.parquet as pq

    geo = json.loads(pq.read_schema(store / "shapes" / "circ" / "shapes.parquet").metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["encoding"] == "WKB" and geo["columns"]["geometry"]["crs"] is None
    zx.verify_clean(store)


def test_bad_vector_input_is_refused_and_spatialdata_still_reads_the_store(zx, store, inputs):
    pd.DataFrame({"x": [1.0], "y": [2.0], "radius": [-1.0]}).to_csv(inputs / "neg.csv", index=False)
    p = zx.run("add-shapes", store, "neg", inputs / "neg.csv", expect=2)
    assert "radius" in p.stderr
    pd.DataFrame({"x": [1.0], "q": [2.0]}).to_parquet(inputs / "noy.parquet", index=False)
    p = zx.run("add-points", store, "noy", inputs / "noy.parquet", expect=2)
    assert "'y'" in p.stderr
    zx.run("add-points", store, "good", inputs / "noy.parquet", expect=2)
    assert zx.element_names(store) == set()


def _add_cmd(i: int, inputs: Path) -> list:
    if i % 2 == 0:
        path = inputs / f"p{i}.parquet"
        points_df(100 + i, 500).to_parquet(path, index=False)
        return ["add-points", f"pts_{i}", path, "--feature-key", "gene", "--instance-key", "cell_id"]
    path = inputs / f"c{i}.parquet"
    circles_gdf(100 + i).to_parquet(path)
    return ["add-shapes", f"circ_{i}", path]


def test_eight_processes_add_points_and_shapes_concurrently(zx, store, inputs):
    cmds = [_add_cmd(i, inputs) for i in range(8)]
    procs = [zx.popen(c[0], store, *c[1:]) for c in cmds]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    sdata = read_sdata(store)
    want = {f"pts_{i}" if i % 2 == 0 else f"circ_{i}" for i in range(8)}
    assert zxutil.all_names(sdata) == want
    for i in range(8):
        if i % 2 == 0:
            assert_points_equal(sdata[f"pts_{i}"], points_df(100 + i, 500))
        else:
            assert_shapes_equal(sdata[f"circ_{i}"], circles_gdf(100 + i))
    zx.verify_clean(store)


def test_spatialdata_written_store_extended_with_points_and_shapes(zx, sd_written_store, inputs):
    from test_spatialdata_store import _assert_original_elements_intact

    store = sd_written_store
    original = zxutil.spatialdata_fixture_objects()
    df = points_df(7, 120)
    df.to_parquet(inputs / "p.parquet", index=False)
    zx.run("add-points", store, "zx_points", inputs / "p.parquet", "--feature-key", "gene", "--instance-key", "cell_id")
    circ = circles_gdf(7)
    circ.to_parquet(inputs / "c.parquet")
    zx.run("add-shapes", store, "zx_circles", inputs / "c.parquet")
    poly = polygons_gdf()
    poly.to_parquet(inputs / "poly.parquet")
    zx.run("add-shapes", store, "zx_polys", inputs / "poly.parquet")
    # spatialdata's own names are taken, in any letter case and across element types.
    p = zx.run("add-points", store, "SD_points", inputs / "p.parquet", expect=2)
    assert "already exists" in p.stderr
    p = zx.run("add-shapes", store, "sd_labels", inputs / "c.parquet", expect=2)
    assert "already exists" in p.stderr

    sdata = read_sdata(store)
    assert zxutil.all_names(sdata) == set(SD_FIXTURE_ELEMENTS) | {"zx_points", "zx_circles", "zx_polys"}
    assert_points_equal(sdata["zx_points"], df)
    assert_shapes_equal(sdata["zx_circles"], circ)
    assert_shapes_equal(sdata["zx_polys"], poly)
    _assert_original_elements_intact(sdata, original)

    # zarrtx describes spatialdata's own (dask / geopandas written) points and shapes too.
    info = {e["name"]: e for e in zx.info(store)["elements"]}
    assert info["sd_points"]["rows"] == 50 and info["sd_points"]["feature_key"] == "gene"
    assert info["sd_circles"]["rows"] == 3 and info["sd_circles"]["geometry_types"] == ["Point"]
    assert info["sd_polys"]["geometry_types"] == ["Polygon"]

    # An overwrite of spatialdata's own points by zarrtx points reads back as the new data.
    zx.run("add-points", store, "sd_points", inputs / "p.parquet", "--feature-key", "gene", "--overwrite")
    sdata = read_sdata(store)
    assert_points_equal(sdata["sd_points"], df)
    _assert_original_elements_intact(sdata, original, skip=("sd_points",))
    zx.verify_clean(store)
