"""The user-facing settings Python shares with the engine and the CLI: one compression syntax
(`zarrtx._core.parse_compression`, used by `zarrtx.dask` and `Hierarchy.write_array`) and the default axes."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)


def test_compression_syntax_is_the_engines(zt):
    from zarrtx import _core

    for text, canonical in [("zstd", "zstd"), ("zstd:3", "zstd:3"), ("none", "none"), ("blosc-lz4", "blosc-lz4:0"),
                            ("blosc-zstd:5", "blosc-zstd:5"), ("blosc", "blosc-lz4:5"), ("blosc:zstd:3", "blosc-zstd:3")]:
        assert _core.parse_compression("img", text) == canonical
    for bad in ["gzip", "zstd:x", "zstd:99", "blosc-snappy", "blosc-lz4:10", ""]:
        with pytest.raises(zt.InvalidElement, match="img"):
            _core.parse_compression("img", bad)


def test_default_dims(zt):
    from zarrtx import _core

    assert _core.default_dims("image", 3) == ["c", "y", "x"]
    assert _core.default_dims("image", 4) == ["c", "z", "y", "x"]
    assert _core.default_dims("labels", 2) == ["y", "x"]
    assert _core.default_dims("labels", 3) == ["z", "y", "x"]
    assert _core.default_dims("image", 2) is None
    assert _core.default_dims("labels", 4) is None


def test_dask_store_and_write_array_take_the_syntax(zt, tmp_path):
    import zarrtx.dask

    store = zt.open(tmp_path / "s.zarr")
    image = np.arange(2 * 40 * 30, dtype=np.uint16).reshape(2, 40, 30)
    zarrtx.dask.store(image, store, "img", compression="blosc-zstd:5")
    meta = json.loads((tmp_path / "s.zarr" / "images" / "img" / "s0" / "zarr.json").read_text())
    blosc = [c for c in meta["codecs"] if c["name"] == "blosc"]
    assert blosc and blosc[0]["configuration"]["cname"] == "zstd" and blosc[0]["configuration"]["clevel"] == 5
    with pytest.raises(zt.InvalidElement, match="unknown compression 'lzma'"):
        zarrtx.dask.store(image, store, "img2", compression="lzma")
    with pytest.raises(zt.InvalidElement, match="2-D array"):
        zarrtx.dask.store(image[0], store, "img3")

    h = zt.open_hierarchy(tmp_path / "h.zarr", create=True)
    h.write_array("a", np.ones((10, 4), np.int16), compression="zstd:3")
    codecs = json.loads((tmp_path / "h.zarr" / "a" / "zarr.json").read_text())["codecs"]
    assert [c["configuration"]["level"] for c in codecs if c["name"] == "zstd"] == [3], codecs
    with pytest.raises(zt.InvalidElement, match="zstd level"):
        h.write_array("b", np.ones((10, 4), np.int16), compression="zstd:x")
