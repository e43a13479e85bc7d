"""A store written by spatialdata 0.8 itself, extended by zarrtx, read back by spatialdata with everything intact."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import zxutil
from zxutil import SD_FIXTURE_ELEMENTS, element_array, image_data, labels_data, read_sdata, save_npy

pytestmark = pytest.mark.timeout(600)


def test_fixture_store_is_valid_spatialdata(sd_written_store):
    """Sanity check of the fixture itself (needs no zarrtx binary)."""
    sdata = read_sdata(sd_written_store)
    assert zxutil.all_names(sdata) == set(SD_FIXTURE_ELEMENTS)
    for name, kind in SD_FIXTURE_ELEMENTS.items():
        assert zxutil.element_kind(sdata, name) == kind


def _assert_original_elements_intact(sdata, original, skip=()):
    """Every element of the spatialdata-written original (except `skip`) equals the in-memory original."""
    import geopandas as gpd  # noqa: F401
    from spatialdata.transformations import get_transformation

    for name in ("sd_image", "sd_labels"):
        if name in skip:
            continue
        np.testing.assert_array_equal(element_array(sdata[name]), element_array(original[name]), err_msg=name)
        zxutil.assert_transformations_equal(
            get_transformation(sdata[name], get_all=True), get_transformation(original[name], get_all=True),
            tuple(sdata[name].dims),
        )
    if "sd_points" not in skip:
        got = sdata["sd_points"].compute().reset_index(drop=True)
        want = original["sd_points"].compute().reset_index(drop=True)
        pd.testing.assert_frame_equal(got[["x", "y", "cell_id"]], want[["x", "y", "cell_id"]], check_dtype=False)
        assert list(got["gene"].astype(str)) == list(want["gene"].astype(str))
        assert sdata["sd_points"].attrs["spatialdata_attrs"] == original["sd_points"].attrs["spatialdata_attrs"]
    for name in ("sd_circles", "sd_polys"):
        if name in skip:
            continue
        got, want = sdata[name], original[name]
        assert len(got) == len(want)
        assert all(g.equals(w) for g, w in zip(got.geometry, want.geometry)), name
        if "radius" in want:
            np.testing.assert_allclose(got["radius"].to_numpy(), want["radius"].to_numpy())
    if "sd_table" not in skip:
        got, want = sdata.tables["sd_table"], original.tables["sd_table"]
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got.X), np.asarray(want.X))
        assert list(got.obs_names) == list(want.obs_names)
        assert list(got.obs["region"].astype(str)) == list(want.obs["region"].astype(str))
        assert got.obs["region"].dtype == "category"
        np.testing.assert_array_equal(got.obs["instance_id"].to_numpy(), want.obs["instance_id"].to_numpy())
        attrs = got.uns["spatialdata_attrs"]
        assert attrs["region"] in ("sd_labels", ["sd_labels"])
        assert attrs["region_key"] == "region" and attrs["instance_key"] == "instance_id"


def test_zarrtx_extends_spatialdata_written_store(zx, sd_written_store, inputs, tmp_path):
    original = zxutil.spatialdata_fixture_objects()
    store = sd_written_store

    img = image_data(21, (2, 64, 64), "uint16")
    lab = labels_data(22, (64, 64), "int32")
    zx.run("add-image", store, "zx_image", save_npy(inputs, "zx_image", img), "--dims", "cyx", "--channels", "u,v",
           "--transform", "global=scale:1,2,2")
    zx.run("add-labels", store, "zx_labels", save_npy(inputs, "zx_labels", lab), "--dims", "yx")

    sdata = read_sdata(store)
    assert zxutil.all_names(sdata) == set(SD_FIXTURE_ELEMENTS) | {"zx_image", "zx_labels"}
    np.testing.assert_array_equal(element_array(sdata["zx_image"]), img)
    np.testing.assert_array_equal(element_array(sdata["zx_labels"]), lab)
    _assert_original_elements_intact(sdata, original)

    # Names of spatialdata's own elements are taken, in any letter case and for any element type.
    for cmd, name, src, dims in [
        ("add-labels", "sd_labels", save_npy(inputs, "dup1", lab), "yx"),
        ("add-labels", "SD_IMAGE", save_npy(inputs, "dup2", lab), "yx"),
        ("add-image", "sd_points", save_npy(inputs, "dup3", img), "cyx"),
        ("add-labels", "sd_Table", save_npy(inputs, "dup4", lab), "yx"),
    ]:
        p = zx.fails(cmd, store, name, src, "--dims", dims)
        assert "already exists" in p.stderr.lower(), p.stderr

    # Remove one of spatialdata's own elements; everything else stays as it was.
    zx.run("rm", store, "sd_image")
    sdata = read_sdata(store)
    assert zxutil.all_names(sdata) == (set(SD_FIXTURE_ELEMENTS) - {"sd_image"}) | {"zx_image", "zx_labels"}
    _assert_original_elements_intact(sdata, original, skip=("sd_image",))
    np.testing.assert_array_equal(element_array(sdata["zx_image"]), img)

    # The removed name can be reused.
    zx.run("add-image", store, "sd_image", save_npy(inputs, "reuse", img), "--dims", "cyx")
    np.testing.assert_array_equal(element_array(read_sdata(store)["sd_image"]), img)

    # zarrtx itself lists spatialdata's elements too.
    names = zx.element_names(store)
    assert {"sd_labels", "sd_points", "sd_circles", "sd_polys", "sd_table", "zx_image", "zx_labels", "sd_image"} <= names
    zx.verify_clean(store)


def test_concurrent_adds_into_spatialdata_written_store(zx, sd_written_store, inputs):
    store = sd_written_store
    original = zxutil.spatialdata_fixture_objects()
    procs = [zx.popen("add-labels", store, f"lab_{i}", save_npy(inputs, f"lab_{i}", labels_data(i)), "--dims", "yx")
             for i in range(8)]
    for p in procs:
        so, se = p.communicate(timeout=600)
        assert p.returncode == 0, se
    sdata = read_sdata(store)
    assert zxutil.all_names(sdata) == set(SD_FIXTURE_ELEMENTS) | {f"lab_{i}" for i in range(8)}
    for i in range(8):
        np.testing.assert_array_equal(element_array(sdata[f"lab_{i}"]), labels_data(i))
    _assert_original_elements_intact(sdata, original)
