"""`zarrtx demo` (parallel workers writing into one store) produces a store spatialdata reads completely."""
from __future__ import annotations

import numpy as np
import pytest

import zxutil
from zxutil import element_array, read_sdata

pytestmark = pytest.mark.timeout(900)


def test_demo_store_readable_by_spatialdata(zx, tmp_path):
    store = tmp_path / "demo.zarr"
    workers, per_worker = 4, 1
    p = zx.run("demo", "--store", store, "--workers", workers, "--per-worker", per_worker, "--size", 128, timeout=900)
    assert store.is_dir(), f"demo wrote no store at {store}\n{p.stdout[-2000:]}"

    info = zx.info(store)
    listed = {e["name"]: e for e in info["elements"]}
    assert len(listed) >= workers * per_worker, f"demo committed {len(listed)} elements, want >= {workers * per_worker}"

    sdata = read_sdata(store)
    seen = zxutil.all_names(sdata)
    assert set(listed) == seen, f"zarrtx lists {sorted(listed)}, spatialdata reads {sorted(seen)}"

    # Every raster element the workers wrote: spatialdata's values equal zarrtx's own read of the same element.
    rasters = 0
    for name in sorted(seen):
        kind = zxutil.element_kind(sdata, name)
        if kind not in ("images", "labels"):
            continue
        rasters += 1
        got = element_array(sdata[name])
        assert got.size > 0
        assert tuple(got.shape[-2:]) == (128, 128), f"{name}: shape {got.shape}; --size 128 means 128x128 pixels"
        via_cli = zx.read(store, name, tmp_path / f"{name}.npy")
        np.testing.assert_array_equal(got, via_cli, err_msg=name)
    assert rasters >= workers * per_worker

    # Each worker also adds one points element (transcripts in its cells) and one shapes element (cell circles).
    assert len(listed) == workers * (2 * per_worker + 2) + 1, sorted(listed)
    for w in range(workers):
        pname, sname = f"w{w:02d}_points", f"w{w:02d}_cells"
        assert pname in sdata.points, f"spatialdata reads no points {pname}: {sorted(sdata.points.keys())}"
        assert sname in sdata.shapes, f"spatialdata reads no shapes {sname}: {sorted(sdata.shapes.keys())}"
        pts = sdata.points[pname].compute()
        assert 0 < len(pts) == listed[pname]["rows"], pname
        assert {"x", "y", "gene", "cell_id"} <= set(pts.columns), list(pts.columns)
        assert str(pts["gene"].dtype) == "category", pts.dtypes
        assert 3 <= len(pts["gene"].cat.categories) <= 5
        assert str(pts["cell_id"].dtype) == "int32", pts.dtypes
        assert (pts["cell_id"] > 0).all()
        assert pts["x"].between(0, 128).all() and pts["y"].between(0, 128).all()
        attrs = sdata.points[pname].attrs["spatialdata_attrs"]
        assert attrs.get("feature_key") == "gene" and attrs.get("instance_key") == "cell_id", attrs
        circles = sdata.shapes[sname]
        assert 0 < len(circles) == listed[sname]["rows"], sname
        assert (circles.geometry.geom_type == "Point").all()
        assert (circles["radius"] > 0).all()
    zx.verify_clean(store)
