"""G9 through the Python API: every kind of bad input surfaces as the right `zarrtx` exception (also the matching
built-in one), with a message that names the element, and leaves the store exactly as it was — same version, same
elements, same published files (root zarr.json and element trees, byte for byte)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _api_helpers import read_sdata, sdata_names, store_fingerprint

pytestmark = pytest.mark.timeout(600)


def _labels(v: int = 1, shape=(16, 16), dtype=np.int32):
    from spatialdata.models import Labels2DModel

    return Labels2DModel.parse(np.full(shape, v, dtype=dtype), dims=("y", "x"))


def _image(shape=(2, 16, 16)):
    from spatialdata.models import Image2DModel

    return Image2DModel.parse(np.ones(shape, dtype=np.uint16), dims=("c", "y", "x"), c_coords=["a", "b"][: shape[0]])


def _table(region: str = "cells_seg", ids=range(10), n_vars: int = 4, columns=("a", "b")):
    import anndata as ad
    from spatialdata.models import TableModel

    ids = np.asarray(list(ids), dtype=np.int64)
    obs = pd.DataFrame({c: np.arange(len(ids), dtype=np.float64) for c in columns}, index=[f"{region}_{i}" for i in ids])
    obs["region"] = pd.Categorical([region] * len(ids))
    obs["instance_id"] = ids
    a = ad.AnnData(np.ones((len(ids), n_vars), dtype=np.float32), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_vars)]))
    return TableModel.parse(a, region=region, region_key="region", instance_key="instance_id")


def _table_with_duplicate_ids(ids):
    """A parsed table whose instance ids are replaced afterwards (TableModel.parse itself refuses duplicates)."""
    t = _table(ids=range(1000, 1000 + len(ids)))
    t.obs["instance_id"] = np.asarray(ids, dtype=np.int64)
    return t


@pytest.fixture
def populated(zt, path):
    """A store with one element of each kind used below."""
    store = zt.open(path)
    store.add("cells", _image())
    store.add("cells_seg", _labels())
    store.add("table", _table())
    return store


class Unchanged:
    """with Unchanged(store, path): ... asserts the store's fingerprint is the same after the block, and that
    spatialdata still reads it."""

    def __init__(self, store, path):
        self.store, self.path = store, path

    def __enter__(self):
        self.before = store_fingerprint(self.store, self.path)
        return self

    def __exit__(self, *exc):
        after = store_fingerprint(self.store, self.path)
        assert after[0] == self.before[0], f"version changed: {self.before[0]} -> {after[0]}"
        assert after[1] == self.before[1], f"elements changed: {self.before[1]} -> {after[1]}"
        changed = {k for k in set(after[2]) | set(self.before[2]) if after[2].get(k) != self.before[2].get(k)}
        assert not changed, f"published files changed: {sorted(changed)[:10]}"
        assert sdata_names(read_sdata(self.path)) == self.before[1]
        return False


def _raises(exc_type, fn, *names):
    """fn() raises exc_type; its message names every one of `names`."""
    with pytest.raises(exc_type) as ei:
        fn()
    msg = str(ei.value)
    for n in names:
        assert n in msg, f"the message does not name {n!r}: {msg!r}"
    return ei.value


# --------------------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------------------

INVALID_NAMES = ["", ".", "..", "__reserved", ".hidden", "a/b", "with space", "semi;colon", "tab\tname", "a\\b", "star*"]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=[repr(n) for n in INVALID_NAMES])
def test_invalid_names_are_refused(zt, populated, path, name):
    with Unchanged(populated, path):
        # (names that print differently in a message, e.g. with a tab or backslash, are not looked for in it)
        names = (name,) if name.isprintable() and name.strip() and name not in (".", "..") and "\\" not in name else ()
        err = _raises(zt.InvalidElement, lambda: populated.add(name, _labels()), *names)
        assert isinstance(err, ValueError) and isinstance(err, zt.ZarrtxError)
        _raises(zt.InvalidElement, lambda: populated.append(name, _table()), *names)


def test_duplicate_name_is_refused(zt, populated, path):
    with Unchanged(populated, path):
        err = _raises(zt.ElementExists, lambda: populated.add("cells_seg", _labels(2)), "cells_seg")
        assert isinstance(err, zt.ZarrtxError)
        # across types too
        _raises(zt.ElementExists, lambda: populated.add("cells", _labels(2)), "cells")
        _raises(zt.ElementExists, lambda: populated.add("table", _image()), "table")


@pytest.mark.parametrize("name", ["CELLS", "Cells_Seg", "TABLE"])
def test_case_colliding_name_is_refused(zt, populated, path, name):
    with Unchanged(populated, path):
        err = _raises(zt.ElementExists, lambda: populated.add(name, _labels(3)), name)
        # the message also says which element holds the name
        assert name.lower() in str(err), str(err)


def test_overwrite_does_not_bypass_a_case_collision_silently(zt, populated, path):
    """overwrite=True replaces the element of that exact name; a different spelling must not create a second
    element whose name differs only by case."""
    try:
        populated.add("CELLS_SEG", _labels(4), overwrite=True)
    except zt.ElementExists:
        pass
    names = [n.lower() for n in populated.elements()]
    assert len(names) == len(set(names)), f"two elements differ only by case: {list(populated.elements())}"
    assert len(sdata_names(read_sdata(path))) == 3


# --------------------------------------------------------------------------------------------------------------
# Elements that are not valid SpatialData elements
# --------------------------------------------------------------------------------------------------------------


def _float_labels():
    """A labels DataArray (y, x) as Labels2DModel makes it, cast to float32 afterwards (parse itself refuses)."""
    return _labels().astype(np.float32)


def _wrong_dims_image():
    import xarray as xr

    img = _image()
    return xr.DataArray(img.data, dims=("y", "c", "x"), attrs=dict(img.attrs))


def _four_d_labels():
    import xarray as xr

    lab = _labels()
    return xr.DataArray(np.ones((2, 2, 16, 16), dtype=np.int32), dims=("t", "z", "y", "x"), attrs=dict(lab.attrs))


def _non_finite_transformation():
    from spatialdata.models import Labels2DModel
    from spatialdata.transformations import Scale

    return Labels2DModel.parse(
        np.ones((16, 16), dtype=np.int32), dims=("y", "x"),
        transformations={"global": Scale([float("nan"), 1.0], axes=("y", "x"))},
    )


BAD_ELEMENTS = {
    "float_labels": _float_labels,
    "wrong_dims": _wrong_dims_image,
    "four_d_labels": _four_d_labels,
    "non_finite_transformation": _non_finite_transformation,
    "numpy_array": lambda: np.ones((16, 16), dtype=np.int32),
    "dict": lambda: {"x": [1.0], "y": [2.0]},
    "string": lambda: "cells.tif",
    "none": lambda: None,
    "dataframe_without_xy": lambda: pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}),
    "spatialdata_object": lambda: __import__("spatialdata").SpatialData(),
}


@pytest.mark.parametrize("case", list(BAD_ELEMENTS))
def test_invalid_elements_are_refused(zt, populated, path, case):
    element = BAD_ELEMENTS[case]()
    with Unchanged(populated, path):
        err = _raises(zt.InvalidElement, lambda: populated.add("bad_one", element), "bad_one")
        assert isinstance(err, ValueError)


def test_float_labels_message_says_what_to_do(zt, populated, path):
    with Unchanged(populated, path):
        err = _raises(zt.InvalidElement, lambda: populated.add("bad_seg", _float_labels()), "bad_seg")
        msg = str(err).lower()
        assert "float" in msg or "integer" in msg, msg


# --------------------------------------------------------------------------------------------------------------
# Table appends
# --------------------------------------------------------------------------------------------------------------


def test_append_with_an_instance_id_already_in_the_table(zt, populated, path):
    with Unchanged(populated, path):
        err = _raises(zt.InvalidElement, lambda: populated.append("table", _table(ids=range(5, 15))), "table")
        assert "already exists" in str(err) or "duplicate" in str(err).lower(), str(err)
    # the same ids for another region are fine
    populated.append("table", _table(region="other_seg", ids=range(5, 15)))


def test_append_with_a_duplicate_instance_id_in_the_batch(zt, populated, path):
    with Unchanged(populated, path):
        _raises(zt.InvalidElement, lambda: populated.append("table", _table_with_duplicate_ids([100, 101, 100])), "table")


def test_append_with_a_missing_column(zt, populated, path):
    with Unchanged(populated, path):
        err = _raises(zt.InvalidElement, lambda: populated.append("table", _table(ids=range(50, 55), columns=("a",))), "table")
        assert "'b'" in str(err) or '"b"' in str(err) or " b " in str(err), f"the message does not name the column: {err}"


def test_append_with_an_extra_column(zt, populated, path):
    with Unchanged(populated, path):
        _raises(zt.InvalidElement, lambda: populated.append("table", _table(ids=range(50, 55), columns=("a", "b", "new_col"))),
                "table", "new_col")


def test_append_with_other_variables(zt, populated, path):
    with Unchanged(populated, path):
        _raises(zt.InvalidElement, lambda: populated.append("table", _table(ids=range(50, 55), n_vars=5)), "table")


def test_append_to_an_element_that_is_not_a_table(zt, populated, path):
    with Unchanged(populated, path):
        _raises(zt.InvalidElement, lambda: populated.append("cells_seg", _table(ids=range(50, 55))), "cells_seg")


def test_append_something_that_is_not_a_table(zt, populated, path):
    with Unchanged(populated, path):
        _raises(zt.InvalidElement, lambda: populated.append("table", pd.DataFrame({"a": [1.0]})), "table")


def test_add_table_with_duplicate_instance_ids(zt, populated, path):
    with Unchanged(populated, path):
        _raises(zt.InvalidElement, lambda: populated.add("table2", _table_with_duplicate_ids([1, 2, 2])), "table2")


# --------------------------------------------------------------------------------------------------------------
# Missing elements and versions
# --------------------------------------------------------------------------------------------------------------


def test_delete_missing_element(zt, populated, path):
    with Unchanged(populated, path):
        err = _raises(zt.ElementNotFound, lambda: populated.delete("no_such_thing"), "no_such_thing")
        assert isinstance(err, KeyError)


def test_read_missing_element(zt, populated, path):
    with Unchanged(populated, path):
        _raises(zt.ElementNotFound, lambda: populated.read_element("no_such_thing"), "no_such_thing")
        # also at an old version where it did not exist yet
        v_first = populated.history()[0]["version"]
        _raises(zt.ElementNotFound, lambda: populated.read_element("table", version=v_first), "table")


def test_read_at_a_version_that_does_not_exist(zt, populated, path):
    v = populated.version
    with Unchanged(populated, path):
        err = _raises(zt.VersionNotAvailable, lambda: populated.read(version=v + 100), str(v + 100))
        assert isinstance(err, zt.ZarrtxError)
        _raises(zt.VersionNotAvailable, lambda: populated.read_element("cells", version=v + 100), str(v + 100))


# --------------------------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------------------------


def test_read_only_open_refuses_writes(zt, populated, path):
    ro = zt.open(path, read_only=True)
    with Unchanged(populated, path):
        err = _raises(zt.StorageError, lambda: ro.add("new_seg", _labels()))
        assert isinstance(err, OSError)
        assert str(path) in str(err) or path.name in str(err) or "new_seg" in str(err), str(err)
        _raises(zt.StorageError, lambda: ro.delete("cells"))
        _raises(zt.StorageError, lambda: ro.append("table", _table(ids=range(50, 55))))
    # reading works
    assert dict(ro.elements()) == dict(populated.elements())
    assert sdata_names(ro.read()) == dict(populated.elements())


def test_open_without_create_on_a_missing_path(zt, tmp_path):
    missing = tmp_path / "missing.zarr"
    err = _raises(zt.StorageError, lambda: zt.open(missing, create=False), "missing.zarr")
    assert isinstance(err, OSError)
    assert not missing.exists(), "open(create=False) created the store"
    _raises(zt.StorageError, lambda: zt.open(missing, read_only=True), "missing.zarr")
    assert not missing.exists(), "open(read_only=True) created the store"


def test_open_without_create_on_a_directory_that_is_not_a_store(zt, tmp_path):
    d = tmp_path / "not_a_store"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    _raises(zt.StorageError, lambda: zt.open(d, create=False), "not_a_store")
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]


def test_store_on_a_read_only_directory(zt, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop root from writing, so a read-only directory "
                    "cannot be simulated with chmod (the engine's read-only remount test covers EROFS)")
    path = tmp_path / "ro.zarr"
    store = zt.open(path)
    store.add("cells_seg", _labels())
    before = store_fingerprint(store, path)
    modes = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            modes[p] = p.stat().st_mode
    modes[path] = path.stat().st_mode
    try:
        for p in sorted(modes, key=lambda p: -len(p.parts)):
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            s2 = zt.open(path)
        except zt.StorageError as e:
            assert path.name in str(e), str(e)
        else:
            err = _raises(zt.StorageError, lambda: s2.add("new_seg", _labels()))
            assert isinstance(err, OSError)
            assert dict(s2.elements()) == {"cells_seg": "labels"}
        assert sdata_names(read_sdata(path)) == {"cells_seg": "labels"}
    finally:
        for p, m in sorted(modes.items(), key=lambda kv: len(kv[0].parts)):
            p.chmod(m)
    assert store_fingerprint(store, path) == before
