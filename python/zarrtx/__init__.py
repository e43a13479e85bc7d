"""zarrtx: many writers, one SpatialData store.

Threads, processes and cluster nodes add, overwrite and delete elements of ONE SpatialData Zarr store and append
rows to its tables at the same time; every change is atomic and crash-safe, and the store stays readable by plain
``spatialdata.read_zarr`` at every moment::

    import zarrtx
    from concurrent.futures import ProcessPoolExecutor
    from spatialdata.models import Labels2DModel

    store = zarrtx.open("cells.zarr")                      # creates, opens, or adopts a spatialdata store

    def segment(store, i):                                 # a Store pickles to its path: pass it to workers
        return store.add(f"tile_{i}_seg", Labels2DModel.parse(run_segmentation(i), dims=("y", "x")))

    with ProcessPoolExecutor(8) as pool:
        list(pool.map(segment, [store] * 16, range(16)))   # 16 labels elements, none lost
    store.append("cells", tile_table)                      # concurrent-safe row append (creates the table)
    sdata = store.read()                                   # one consistent snapshot; lazy rasters and points

See :class:`zarrtx.Store` for the whole API.
"""

from __future__ import annotations

from ._hierarchy import Hierarchy, open_hierarchy
from ._store import Store, open
from .errors import (
    Conflict,
    ElementExists,
    ElementNotFound,
    InvalidElement,
    LockTimeout,
    StorageError,
    VersionNotAvailable,
    ZarrtxError,
)


def _version() -> str:
    try:
        from ._core import __version__ as v

        return str(v)
    except ImportError:  # pragma: no cover - the compiled engine is missing
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("zarrtx")
        except PackageNotFoundError:
            return "0+unknown"


__version__ = _version()

__all__ = [
    "open",
    "Store",
    "open_hierarchy",
    "Hierarchy",
    "ZarrtxError",
    "ElementExists",
    "ElementNotFound",
    "InvalidElement",
    "Conflict",
    "StorageError",
    "VersionNotAvailable",
    "LockTimeout",
    "__version__",
]
