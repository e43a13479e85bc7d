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
    zx.verify_clean(store)
