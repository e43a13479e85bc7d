"""docs/examples/segment_tiles.py (the tutorial docs/tutorial-tiles.md) runs as documented, and its result read by
the unmodified spatialdata.read_zarr is right: one labels element per tile equal to the tile's segmentation and
placed at the tile's corner, and one shared table holding every tile's cells exactly once with the right areas and
intensities."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from _api_helpers import HERE, REPO, read_sdata, require_zarrtx

pytestmark = pytest.mark.timeout(900)

SCRIPT = REPO / "docs" / "examples" / "segment_tiles.py"


@pytest.fixture(scope="module")
def tutorial():
    spec = importlib.util.spec_from_file_location("segment_tiles", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONPATH"] = str(HERE)
    p = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"segment_tiles.py exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    return p


def test_tutorial_script_segments_every_tile_into_one_store(tutorial, tmp_path):
    require_zarrtx()
    from scipy import ndimage
    from spatialdata.transformations import get_transformation

    store = tmp_path / "tiles.zarr"
    size, tile = 320, 128  # 3 x 3 tiles, the last row and column smaller
    p = _run(store, "--demo-size", size, "--tile", tile, "--workers", 2)
    assert "9 tile labels elements" in p.stdout, p.stdout

    sdata = read_sdata(store)
    image = np.asarray(sdata.images["image"].data.compute())
    np.testing.assert_array_equal(image, tutorial.demo_image(size))
    jobs = tutorial.tiles(size, size, tile)
    assert len(jobs) == 9
    assert set(sdata.labels) == {f"tile_{r}_{c}" for r, c, *_ in jobs}
    t = sdata.tables["cells"]
    regions = t.obs["region"].astype(str).to_numpy()
    ids = t.obs["instance_id"].to_numpy()
    assert len(set(zip(regions, ids))) == t.n_obs, "a cell appears twice"
    total = 0
    for r, c, y0, y1, x0, x1 in jobs:
        name = f"tile_{r}_{c}"
        labels = np.asarray(sdata.labels[name].data.compute())
        want = tutorial.segment(image[0, y0:y1, x0:x1])
        np.testing.assert_array_equal(labels, want, err_msg=name)
        # placed at the tile's corner in the global coordinate system
        m = get_transformation(sdata.labels[name], "global").to_affine_matrix(("y", "x"), ("y", "x"))
        np.testing.assert_allclose(m[:2, 2], [y0, x0], err_msg=name)
        cells = np.unique(want[want != 0])
        mask = regions == name
        np.testing.assert_array_equal(np.sort(ids[mask]), cells, err_msg=f"cells of {name}")
        if len(cells):
            order = np.argsort(ids[mask])
            area = t.obs["area"].to_numpy()[mask][order]
            np.testing.assert_array_equal(area, ndimage.sum_labels(np.ones(want.shape), want, cells), err_msg=name)
            mean0 = np.asarray(t.X)[mask][order][:, 0]
            np.testing.assert_allclose(mean0, ndimage.mean(image[0, y0:y1, x0:x1].astype(np.float64), want, cells), rtol=1e-5)
        total += len(cells)
    assert total > 20, "the demo image should have cells"
    assert t.n_obs == total
    assert set(np.atleast_1d(t.uns["spatialdata_attrs"]["region"]).astype(str)) == set(regions)
    assert list(t.var_names) == ["nuclei", "membrane"]


def test_tutorial_script_runs_again_on_an_existing_image(tutorial, tmp_path):
    """The store's image is used when present (the demo image is only made for an empty store)."""
    zarrtx = require_zarrtx()
    from spatialdata.models import Image2DModel

    store_path = tmp_path / "own.zarr"
    store = zarrtx.open(store_path)
    img = tutorial.demo_image(200, seed=3)
    store.add("my_image", Image2DModel.parse(img, dims=("c", "y", "x"), c_coords=["nuclei", "membrane"]))
    p = _run(store_path, "--image", "my_image", "--tile", 100, "--workers", 2)
    assert "demo image" not in p.stdout
    sdata = read_sdata(store_path)
    assert set(sdata.labels) == {"tile_0_0", "tile_0_1", "tile_1_0", "tile_1_1"}
    np.testing.assert_array_equal(np.asarray(sdata.labels["tile_1_1"].data.compute()), tutorial.segment(img[0, 100:200, 100:200]))
