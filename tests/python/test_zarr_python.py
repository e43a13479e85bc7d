"""zarr-python 3 reads a zarrtx store directly: the root group (with and without its consolidated metadata), every
element group, and every pyramid level array, with values equal to what was written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zxutil import image_data, labels_data, load_json, raster_level_paths, save_npy

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def populated(zx, store, inputs):
    """A store with a few rasters of different shapes, codecs and pyramids; returns {name: (kind, data)}."""
    els = {
        "img_plain": ("images", image_data(1, (3, 64, 64), "uint8"), ["--dims", "cyx"]),
        "img_pyr": ("images", image_data(2, (2, 128, 96), "uint16"), ["--dims", "cyx", "--scales", "2,2", "--channels", "a,b"]),
        "img_3d": ("images", image_data(3, (1, 8, 32, 32), "float32"), ["--dims", "czyx", "--compression", "blosc:lz4:5"]),
        "img_sharded": ("images", image_data(4, (2, 128, 128), "uint16"),
                        ["--dims", "cyx", "--chunks", "1,32,32", "--shards", "1,64,64"]),
        "lab_plain": ("labels", labels_data(5, (100, 90), "int32"), ["--dims", "yx", "--compression", "none"]),
        "lab_pyr": ("labels", labels_data(6, (64, 64), "uint16"), ["--dims", "yx", "--scales", "2"]),
        "lab_3d": ("labels", labels_data(7, (8, 32, 32), "int32"), ["--dims", "zyx"]),
    }
    for name, (kind, data, args) in els.items():
        zx.run("add-image" if kind == "images" else "add-labels", store, name, save_npy(inputs, name, data), *args)
    return {n: (k, d) for n, (k, d, _) in els.items()}


def test_zarr_python_reads_every_array(zx, store, populated, tmp_path):
    import zarr

    for use_consolidated in (True, False):
        root = zarr.open_group(str(store), mode="r", use_consolidated=use_consolidated)
        assert {"images", "labels"} <= set(root.group_keys()), (use_consolidated, list(root.group_keys()))
        assert root.attrs["spatialdata_attrs"]["version"] == "0.2"
        for name, (kind, _) in populated.items():
            assert name in set(root[kind].group_keys()), (use_consolidated, name)

    for name, (kind, data) in populated.items():
        paths = raster_level_paths(store, kind, name)
        for level, p in enumerate(paths):
            arr = zarr.open_array(str(store / kind / name / p), mode="r")
            got = arr[...]
            assert got.dtype == data.dtype
            if level == 0:
                np.testing.assert_array_equal(got, data, err_msg=f"{name} level 0")
            else:
                via_cli = zx.read(store, name, tmp_path / f"{name}_{level}.npy", "--level", level)
                np.testing.assert_array_equal(got, via_cli, err_msg=f"{name} level {level}")
            # Also through the group hierarchy.
            grp = zarr.open_group(str(store), mode="r")
            np.testing.assert_array_equal(grp[f"{kind}/{name}/{p}"][...], got)


def test_consolidated_metadata_matches_files(store, populated):
    """If the root zarr.json carries consolidated metadata (spatialdata lists elements from it), every entry must
    equal the node's own zarr.json, and every element must have an entry."""
    root = load_json(store / "zarr.json")
    cm = root.get("consolidated_metadata")
    if not cm:
        pytest.skip("store publishes no consolidated metadata")
    meta = cm["metadata"]
    for name, (kind, _) in populated.items():
        assert f"{kind}/{name}" in meta, f"{kind}/{name} missing from consolidated metadata"
        for p in raster_level_paths(store, kind, name):
            assert f"{kind}/{name}/{p}" in meta
    for key, entry in meta.items():
        f = store / key / "zarr.json"
        assert f.is_file(), f"consolidated metadata lists {key}, which has no zarr.json"
        actual = load_json(f)
        for field in ("node_type", "shape", "data_type", "codecs", "chunk_grid", "attributes"):
            if field in entry or field in actual:
                assert _norm(entry.get(field) or None) == _norm(actual.get(field) or None), (
                    f"{key}: {field} differs: consolidated {entry.get(field)!r} vs file {actual.get(field)!r}"
                )


def _norm(x):
    """Normalize JSON for comparison (zarr-python may add default configuration blocks)."""
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items() if not (k == "configuration" and not v)}
    if isinstance(x, list):
        return [_norm(v) for v in x]
    return x
