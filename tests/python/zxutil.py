"""Helpers shared by the tests and by the helper processes they spawn (reader loops).

Nothing here imports spatialdata at module import time, so worker processes that only run the CLI stay light.
"""
from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------------------------
# Running the CLI
# --------------------------------------------------------------------------------------------------------------


class ZarrtxError(AssertionError):
    pass


class Zarrtx:
    """Runs the zarrtx binary and checks exit codes."""

    def __init__(self, binary: Path | str):
        self.binary = str(binary)

    def argv(self, *args: Any) -> list[str]:
        return [self.binary, *(str(a) for a in args)]

    def run(self, *args: Any, expect: int | None = 0, timeout: float = 600, env: dict | None = None):
        """Run `zarrtx ARGS`; assert the exit code equals `expect` (None: don't check). Returns CompletedProcess."""
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        p = subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL
        )
        if expect is not None and p.returncode != expect:
            raise ZarrtxError(
                f"`zarrtx {' '.join(str(a) for a in args)}` exited {p.returncode}, expected {expect}\n"
                f"--- stdout ---\n{p.stdout[-4000:]}\n--- stderr ---\n{p.stderr[-4000:]}"
            )
        return p

    def fails(self, *args: Any, timeout: float = 600):
        """Run and assert a non-zero exit code; returns CompletedProcess."""
        p = self.run(*args, expect=None, timeout=timeout)
        if p.returncode == 0:
            raise ZarrtxError(
                f"`zarrtx {' '.join(str(a) for a in args)}` succeeded but was expected to fail\n"
                f"--- stdout ---\n{p.stdout[-4000:]}\n--- stderr ---\n{p.stderr[-4000:]}"
            )
        return p

    def json(self, *args: Any, timeout: float = 600) -> Any:
        p = self.run(*args, timeout=timeout)
        try:
            return json.loads(p.stdout)
        except json.JSONDecodeError as e:
            raise ZarrtxError(f"`zarrtx {' '.join(map(str, args))}` did not print JSON: {e}\n{p.stdout[:2000]}")

    def popen(self, *args: Any, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("text", True)
        return subprocess.Popen(self.argv(*args), **kw)

    def info(self, store: Path, *extra: Any) -> dict:
        return self.json("info", store, "--json", *extra)

    def element_names(self, store: Path) -> set[str]:
        return {e["name"] for e in self.info(store)["elements"]}

    def read(self, store: Path, name: str, out: Path, *extra: Any) -> np.ndarray:
        self.run("read", store, name, out, *extra)
        return np.load(out)

    def verify_clean(self, store: Path) -> None:
        self.run("verify", store)


# --------------------------------------------------------------------------------------------------------------
# Deterministic test data: the data of an element can be recomputed from its name by any process.
# --------------------------------------------------------------------------------------------------------------


def labels_data(seed: int, shape: Sequence[int] = (128, 128), dtype="int32") -> np.ndarray:
    """Labels with many distinct ids (incl. 0) so that a mixed-up chunk would be noticed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5000, size=tuple(shape)).astype(dtype)


def image_data(seed: int, shape: Sequence[int] = (2, 64, 64), dtype="uint16") -> np.ndarray:
    rng = np.random.default_rng(10_000 + seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(size=tuple(shape)).astype(dt)
    hi = min(np.iinfo(dt).max, 60000)
    return rng.integers(0, hi, size=tuple(shape)).astype(dt)


def expected_for_name(name: str) -> np.ndarray | None:
    """Data of elements whose names follow the convention `lab_<seed>` (128x128 int32 labels), `big_<seed>`
    (1024x1024 int32 labels, written in many chunks) or `img_<seed>` (2x64x64 uint16 image); None otherwise."""
    kind, _, seed = name.partition("_")
    if not seed.isdigit():
        return None
    if kind == "lab":
        return labels_data(int(seed))
    if kind == "big":
        return labels_data(int(seed), (1024, 1024))
    if kind == "img":
        return image_data(int(seed))
    return None


def save_npy(directory: Path, name: str, arr: np.ndarray) -> Path:
    p = Path(directory) / f"{name}.npy"
    np.save(p, arr)
    return p


# --------------------------------------------------------------------------------------------------------------
# Reading back with spatialdata
# --------------------------------------------------------------------------------------------------------------


def quiet():
    import logging

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)


def read_sdata(path: Path):
    import spatialdata as sd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sd.read_zarr(str(path))


def element_levels(elem) -> list:
    """The DataArrays of a raster element, finest first (a single-scale element gives a list of one)."""
    import xarray as xr

    if isinstance(elem, xr.DataArray):
        return [elem]
    # DataTree: children scale0, scale1, ... each with one data variable ("image").
    keys = sorted(elem.keys(), key=lambda k: int(k.replace("scale", "")))
    out = []
    for k in keys:
        ds = elem[k].ds
        (var,) = list(ds.data_vars)
        out.append(ds[var])
    return out


def element_array(elem, level: int = 0) -> np.ndarray:
    return np.asarray(element_levels(elem)[level].data.compute())


def element_kind(sdata, name: str) -> str:
    for kind in ("images", "labels", "points", "shapes", "tables"):
        if name in getattr(sdata, kind):
            return kind
    raise KeyError(name)


def all_names(sdata) -> set[str]:
    names = set()
    for kind in ("images", "labels", "points", "shapes", "tables"):
        names |= set(getattr(sdata, kind).keys())
    return names


# --------------------------------------------------------------------------------------------------------------
# Transformations
# --------------------------------------------------------------------------------------------------------------


def _axes(t) -> tuple:
    for attr in ("axes", "input_axes"):
        if hasattr(t, attr):
            return tuple(getattr(t, attr))
    return ()


def describe_transform(t) -> Any:
    """A comparable structural description of a spatialdata transformation."""
    from spatialdata.transformations import Affine, Identity, Scale, Sequence, Translation

    if isinstance(t, Sequence):
        return ("sequence", [describe_transform(x) for x in t.transformations])
    if isinstance(t, Identity):
        return ("identity",)
    if isinstance(t, Scale):
        return ("scale", tuple(t.axes), tuple(np.round(np.asarray(t.scale, float), 9)))
    if isinstance(t, Translation):
        return ("translation", tuple(t.axes), tuple(np.round(np.asarray(t.translation, float), 9)))
    if isinstance(t, Affine):
        m = np.round(np.asarray(t.matrix, float), 9)
        return ("affine", tuple(t.input_axes), tuple(t.output_axes), tuple(map(tuple, m)))
    return (type(t).__name__, repr(t))


def assert_transformations_equal(got: dict, want: dict, axes: Sequence[str]) -> None:
    """Same coordinate systems; per system the same transformation structure (types, axes, parameters) and the
    same affine matrix over `axes`."""
    assert set(got) == set(want), f"coordinate systems differ: got {sorted(got)}, want {sorted(want)}"
    axes = tuple(axes)
    for cs in want:
        g, w = got[cs], want[cs]
        mg = g.to_affine_matrix(input_axes=axes, output_axes=axes)
        mw = w.to_affine_matrix(input_axes=axes, output_axes=axes)
        np.testing.assert_allclose(mg, mw, err_msg=f"affine matrix of coordinate system {cs!r}")
        assert describe_transform(g) == describe_transform(w), (
            f"transformation to {cs!r} differs structurally:\n got  {describe_transform(g)}\n want {describe_transform(w)}"
        )


# --------------------------------------------------------------------------------------------------------------
# A store written by spatialdata itself
# --------------------------------------------------------------------------------------------------------------

SD_FIXTURE_ELEMENTS = {
    "sd_image": "images",
    "sd_labels": "labels",
    "sd_points": "points",
    "sd_circles": "shapes",
    "sd_polys": "shapes",
    "sd_table": "tables",
}


def spatialdata_fixture_objects():
    """The in-memory SpatialData written by `write_spatialdata_fixture_store` (deterministic)."""
    import anndata as ad
    import geopandas as gpd
    import pandas as pd
    import spatialdata as sd
    from shapely.geometry import Point, Polygon
    from spatialdata.models import Image2DModel, Labels2DModel, PointsModel, ShapesModel, TableModel
    from spatialdata.transformations import Scale

    rng = np.random.default_rng(42)
    img = Image2DModel.parse(
        rng.integers(0, 255, (3, 64, 64), dtype=np.uint8), dims=("c", "y", "x"), c_coords=["r", "g", "b"]
    )
    lab = Labels2DModel.parse(
        rng.integers(0, 6, (64, 64)).astype(np.int32),
        dims=("y", "x"),
        transformations={"global": Scale([2.0, 2.0], axes=("y", "x"))},
    )
    df = pd.DataFrame(
        {
            "x": rng.uniform(0, 64, 50),
            "y": rng.uniform(0, 64, 50),
            "gene": pd.Categorical(rng.choice(["a", "b", "c"], 50)),
            "cell_id": np.arange(50, dtype=np.int64),
        }
    )
    pts = PointsModel.parse(df, coordinates={"x": "x", "y": "y"}, feature_key="gene", instance_key="cell_id")
    circ = ShapesModel.parse(gpd.GeoDataFrame({"geometry": [Point(1, 2), Point(3, 4), Point(5, 6)], "radius": [1.0, 2.0, 3.0]}))
    poly = ShapesModel.parse(gpd.GeoDataFrame({"geometry": [Polygon([(0, 0), (4, 0), (4, 4)]), Polygon([(5, 5), (9, 5), (9, 9)])]}))
    a = ad.AnnData(rng.normal(size=(5, 3)).astype(np.float32))
    a.obs_names = [f"cell{i}" for i in range(1, 6)]
    a.obs["region"] = pd.Categorical(["sd_labels"] * 5)
    a.obs["instance_id"] = np.arange(1, 6, dtype=np.int64)
    tab = TableModel.parse(a, region="sd_labels", region_key="region", instance_key="instance_id")
    return sd.SpatialData(
        images={"sd_image": img},
        labels={"sd_labels": lab},
        points={"sd_points": pts},
        shapes={"sd_circles": circ, "sd_polys": poly},
        tables={"sd_table": tab},
    )


def write_spatialdata_fixture_store(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spatialdata_fixture_objects().write(str(path))


# --------------------------------------------------------------------------------------------------------------
# Raw zarr.json access
# --------------------------------------------------------------------------------------------------------------


def load_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def raster_group_attrs(store: Path, kind: str, name: str) -> dict:
    return load_json(Path(store) / kind / name / "zarr.json")["attributes"]


def raster_level_paths(store: Path, kind: str, name: str) -> list[str]:
    attrs = raster_group_attrs(store, kind, name)
    return [d["path"] for d in attrs["ome"]["multiscales"][0]["datasets"]]


def codec_names(array_meta: dict) -> list[str]:
    """Codec names of an array, flattening a sharding codec into `sharding_indexed[inner...]`."""
    out = []
    for c in array_meta["codecs"]:
        if c["name"] == "sharding_indexed":
            inner = [x["name"] for x in c["configuration"]["codecs"]]
            out.append("sharding_indexed[" + ",".join(inner) + "]")
        else:
            out.append(c["name"])
    return out


def iter_codecs(array_meta: dict) -> Iterable[dict]:
    for c in array_meta["codecs"]:
        yield c
        if c["name"] == "sharding_indexed":
            yield from c["configuration"]["codecs"]
