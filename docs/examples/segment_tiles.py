"""Segment the tiles of one image in parallel, writing every result into ONE SpatialData store with zarrtx.

    python docs/examples/segment_tiles.py STORE [--image NAME] [--tile 512] [--workers 4] [--demo-size 2048]

If STORE has no image NAME yet, a synthetic two-channel image (--demo-size pixels square) is added first, so the
script runs on its own. Then one worker process per tile (a pool of --workers):

1. reads only its tile, lazily: ``store.read_element(NAME).data[:, y0:y1, x0:x1]``;
2. segments it (threshold + connected components; swap in cellpose, stardist, ... here);
3. adds one labels element per tile, ``tile_<row>_<col>``, placed in the image's coordinate systems by a
   translation to the tile's corner;
4. appends that tile's cells to the one shared table ``cells`` (region = the tile's labels element, instance id =
   the label id), creating the table on the first append.

No locks, no final concatenation: zarrtx decides every race. Afterwards the store is read with the unmodified
``spatialdata.read_zarr``. See docs/tutorial-tiles.md for a walk-through.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

TABLE = "cells"


def demo_image(size: int, channels: int = 2, n_cells: int | None = None, seed: int = 0) -> np.ndarray:
    """A synthetic fluorescence image (uint16, c, y, x): round cells of random size on a noisy background."""
    rng = np.random.default_rng(seed)
    n_cells = n_cells or max(4, size * size // 900)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.zeros((channels, size, size), dtype=np.float32)
    for _ in range(n_cells):
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(3, 8)
        y0, y1 = int(max(0, cy - 4 * r)), int(min(size, cy + 4 * r + 1))
        x0, x1 = int(max(0, cx - 4 * r)), int(min(size, cx + 4 * r + 1))
        blob = np.exp(-((yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2) / (2 * r * r))
        for c in range(channels):
            img[c, y0:y1, x0:x1] += rng.uniform(500, 2000) * blob
    img += rng.uniform(0, 60, img.shape).astype(np.float32)
    return img.astype(np.uint16)


def segment(pixels: np.ndarray) -> np.ndarray:
    """Labels (int32, 0 = background) of one 2-D tile: threshold above mean + std, then connected components."""
    from scipy import ndimage

    mask = pixels > pixels.mean() + pixels.std()
    labels, _ = ndimage.label(mask)
    return labels.astype(np.int32)


def tiles(height: int, width: int, tile: int) -> list[tuple[int, int, int, int, int, int]]:
    """(row, col, y0, y1, x0, x1) of every tile, row by row; edge tiles are smaller."""
    return [
        (r, c, y0, min(y0 + tile, height), x0, min(x0 + tile, width))
        for r, y0 in enumerate(range(0, height, tile))
        for c, x0 in enumerate(range(0, width, tile))
    ]


def full_resolution(element):
    """The full-resolution DataArray of an image (a DataTree for multiscale images, a DataArray otherwise)."""
    import xarray as xr

    if isinstance(element, xr.DataArray):
        return element
    level = element["scale0"].ds
    return level[next(iter(level.data_vars))]


def cell_table(labels: np.ndarray, pixels: np.ndarray, region: str, y0: int, x0: int, channel_names: list[str]):
    """One row per cell of a tile: area, centroid (image pixels), mean intensity per channel (X)."""
    import anndata as ad
    import pandas as pd
    from scipy import ndimage
    from spatialdata.models import TableModel

    ids = np.unique(labels)
    ids = ids[ids != 0]
    ones = np.ones(labels.shape, dtype=np.float64)
    area = ndimage.sum_labels(ones, labels, ids)
    centroids = np.asarray(ndimage.center_of_mass(ones, labels, ids), dtype=np.float64).reshape(-1, 2)
    X = np.stack([ndimage.mean(pixels[c].astype(np.float64), labels, ids) for c in range(pixels.shape[0])], axis=1)
    obs = pd.DataFrame(
        {
            "region": pd.Categorical([region] * len(ids)),
            "instance_id": ids.astype(np.int64),
            "area": area.astype(np.float64),
            "centroid_y": centroids[:, 0] + y0,
            "centroid_x": centroids[:, 1] + x0,
        },
        index=[f"{region}_{i}" for i in ids],
    )
    table = ad.AnnData(X=X.astype(np.float32), obs=obs, var=pd.DataFrame(index=list(channel_names)))
    table.obsm["spatial"] = np.c_[obs["centroid_x"].to_numpy(), obs["centroid_y"].to_numpy()]
    return TableModel.parse(table, region=region, region_key="region", instance_key="instance_id")


def process_tile(store, image_name: str, row: int, col: int, y0: int, y1: int, x0: int, x1: int) -> tuple[str, int, int]:
    """Worker: segment one tile, add its labels element, append its cells. Returns (labels name, cells, version)."""
    from spatialdata.models import Labels2DModel, get_channel_names
    from spatialdata.transformations import Sequence, Translation, get_transformation

    image = store.read_element(image_name)  # lazy: no pixels are read yet
    full = full_resolution(image)
    pixels = np.asarray(full.data[:, y0:y1, x0:x1])  # reads only the chunks of this tile
    labels = segment(pixels[0])  # channel 0 holds the nuclei

    # Place the tile where it lies in the image, in every coordinate system the image has.
    offset = Translation([y0, x0], axes=("y", "x"))
    transformations = {cs: Sequence([offset, t]) for cs, t in get_transformation(image, get_all=True).items()}
    name = f"tile_{row}_{col}"
    version = store.add(name, Labels2DModel.parse(labels, dims=("y", "x"), transformations=transformations))

    n_cells = int(len(np.unique(labels[labels != 0])))
    if n_cells:
        table = cell_table(labels, pixels, name, y0, x0, [str(c) for c in get_channel_names(full)])
        version = store.append(TABLE, table)  # concurrent-safe; the first append creates the table
    return name, n_cells, version


def main(argv: list[str] | None = None) -> int:
    import zarrtx

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store")
    p.add_argument("--image", default="image")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--demo-size", type=int, default=2048)
    args = p.parse_args(argv)

    store = zarrtx.open(args.store)
    if args.image not in store.elements():
        from spatialdata.models import Image2DModel

        pixels = demo_image(args.demo_size)
        store.add(args.image, Image2DModel.parse(pixels, dims=("c", "y", "x"), c_coords=["nuclei", "membrane"],
                                                 chunks=(1, args.tile, args.tile)))
        print(f"added a {args.demo_size}x{args.demo_size} demo image '{args.image}'")

    _, height, width = full_resolution(store.read_element(args.image)).shape
    jobs = tiles(height, width, args.tile)
    print(f"segmenting {len(jobs)} tiles of {args.tile} px with {args.workers} worker processes")
    t0 = time.perf_counter()
    # "spawn": every worker is a fresh interpreter that receives the pickled Store (its path and options only);
    # the same on Linux, macOS and Windows, and what Dask or a cluster scheduler does too.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        futures = [pool.submit(process_tile, store, args.image, *job) for job in jobs]
        for f in as_completed(futures):
            name, n_cells, version = f.result()
            print(f"  {name}: {n_cells} cells (version {version})")
    print(f"done in {time.perf_counter() - t0:.1f} s")

    import logging

    import spatialdata

    logging.getLogger("ome_zarr").setLevel(logging.ERROR)  # quiet ome-zarr's notes about labels without a parent
    sdata = spatialdata.read_zarr(args.store)  # the unmodified reader
    n_tiles = sum(1 for n in sdata.labels if n.startswith("tile_"))
    n_cells = sdata.tables[TABLE].n_obs if TABLE in sdata.tables else 0
    print(f"spatialdata.read_zarr: {n_tiles} tile labels elements, table '{TABLE}' with {n_cells} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
