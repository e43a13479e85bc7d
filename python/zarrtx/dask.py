"""Writing one image or labels element of a zarrtx store from a Dask cluster.

::

    from distributed import Client, LocalCluster
    import dask.array as da, zarrtx, zarrtx.dask

    store = zarrtx.open("/shared/cells.zarr")           # every worker must see the store at the same path
    with LocalCluster(n_workers=4) as cluster, Client(cluster) as client:
        darr = da.from_zarr("/shared/raw.zarr")          # (c, y, x), any dask chunks, aligned or not
        version = zarrtx.dask.store(darr, store, "slide_7", scale_factors=[2, 2, 2], client=client)

:func:`store` creates a write plan in the calling process (name checked before any pixel is written), runs one
Dask task per part on the workers — each task's dependencies are the part's blocks of ``darr``'s own graph, so the
cluster computes them and the task writes them; pixels never pass through the client or the scheduler unless
``darr``'s graph embeds them (``da.from_array`` of an in-memory array does) — and commits the element from the
calling process once every part is written. Readers (zarrtx snapshots, ``spatialdata.read_zarr``, zarr-python) see
nothing of the element before that commit and all of it after. A failed part is retried once (``retries=1``);
if it fails again its exception is raised, nothing is committed and the plan stays for :func:`resume` or for
``Store.gc``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from . import _parallel
from .errors import InvalidElement

__all__ = ["store", "store_array", "resume"]


def _default_client() -> Any:
    """The current ``distributed.Client`` (as ``dask.compute`` would use it), or None."""
    mod = sys.modules.get("distributed")
    if mod is None:
        return None
    try:
        return mod.default_client()
    except ValueError:
        return None


def _open(store: Any) -> Any:
    from ._store import Store

    if isinstance(store, Store):
        return store
    if isinstance(store, (str, os.PathLike)):
        return Store(store)
    raise InvalidElement(f"store must be a zarrtx.Store or a path, got {type(store).__name__}")


def _default_dims(kind: str, ndim: int) -> tuple[str, ...]:
    """The engine's default axes (``zarrtx.raster::default_dims``) for ``ndim`` dimensions."""
    from . import _core

    dims = _core.default_dims(kind, ndim)
    if dims is None:
        raise InvalidElement(
            f"a {ndim}-D array is not a spatialdata {kind} element: images are (c, y, x) or (c, z, y, x), labels "
            "(y, x) or (z, y, x); pass dims=... (e.g. a 2-D image needs a channel axis: darr[None])"
        )
    return tuple(dims)


def _from_xarray(
    name: str, darr: Any, kind: str, dims: Any, transformations: Any, channel_names: Any, scale_factors: Any
) -> tuple[Any, Any, Any, Any]:
    """(data, dims, transformations, channel_names) of an xarray DataArray / DataTree, the explicit arguments
    winning over what the object carries."""
    from xarray import DataArray, DataTree

    if isinstance(darr, DataTree):
        from ._raster import _levels

        levels = _levels(darr)
        if not levels:
            raise InvalidElement(f"'{name}': the DataTree has no scale0 level")
        if len(levels) > 1 and not scale_factors:
            raise InvalidElement(
                f"'{name}': the DataTree has {len(levels)} levels; zarrtx.dask.store writes level 0 and computes the "
                "lower levels at the commit: pass scale_factors=[...] (or use store.add(name, tree) to store the "
                "given levels as they are)"
            )
        tree, base = darr, levels[0]
    elif isinstance(darr, DataArray):
        tree, base = darr, darr
    else:  # pragma: no cover - the caller checks
        raise TypeError(type(darr))
    own_dims = tuple(str(d) for d in base.dims)
    if dims is not None and tuple(dims) != own_dims:
        raise InvalidElement(f"'{name}': dims={tuple(dims)} but the DataArray has dims {own_dims}")
    if transformations is None and "transform" in base.attrs:  # a spatialdata element (a DataTree's: on scale0)
        from ._transform import get_transformations

        transformations = get_transformations(tree)
    if channel_names is None and kind == "image" and "c" in base.coords:
        values = base.coords["c"].values.tolist()
        if values != list(range(len(values))):  # spatialdata's default names: left to the engine's default
            channel_names = [str(c) for c in values]
    return base.data, own_dims, transformations, channel_names


def _source(name: str, data: Any) -> Any:
    import dask.array as da

    if isinstance(data, da.Array):
        return data
    if isinstance(data, np.ndarray):
        return data
    raise InvalidElement(
        f"'{name}': expected a dask array, an xarray DataArray or a numpy array, got {type(data).__module__}."
        f"{type(data).__qualname__}"
    )


def _parts(parts: Any) -> int | list[list[tuple[int, int]]] | None:
    if parts is None:
        return None
    if isinstance(parts, (int, np.integer)) and not isinstance(parts, bool):
        return int(parts)
    return [[(int(a), int(b)) for a, b in region] for region in parts]


def store(
    darr: Any,
    store: Any,
    name: str,
    *,
    kind: Literal["image", "labels"] = "image",
    dims: Sequence[str] | None = None,
    transformations: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    channel_names: Sequence[str] | None = None,
    scale_factors: Sequence[int] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    compression: str = "zstd",
    parts: int | Sequence[Sequence[tuple[int, int]]] | None = None,
    client: Any = None,
) -> int:
    """Writes ``darr`` as image or labels element ``name`` of ``store`` from Dask workers; returns the version.

    ``darr``: a dask array (any chunks: blocks that do not line up with the Zarr chunks are assembled by the
    engine, each chunk written once by one worker), an ``xarray.DataArray`` (its ``.data`` and ``dims``; for a
    spatialdata element also its transformations and channel names, unless given here), a ``DataTree`` with
    ``scale_factors`` (its ``scale0`` is written and the pyramid computed), or a numpy array (scattered to the
    workers part by part). ``store``: a :class:`zarrtx.Store` or a path.

    ``kind``: ``"image"`` or ``"labels"``. ``dims``: default ``("c", "y", "x")`` / ``("c", "z", "y", "x")`` for
    images, ``("y", "x")`` / ``("z", "y", "x")`` for labels. ``transformations``: ``{coordinate system:
    spatialdata transformation}`` or NGFF dicts (default identity into ``global``). ``channel_names``: one per
    channel. ``scale_factors``: a pyramid computed by zarrtx at the commit, from level 0 on disk, level by level
    (mean for images, mode for labels). ``chunks`` / ``shards``: the Zarr chunk (and shard) shape (default: all
    channels up to 16, one z plane, 1024 x 1024). ``compression``: ``"zstd"``, ``"zstd:3"``, ``"blosc-lz4"``,
    ``"blosc-zstd"`` or ``"none"``. ``parts``: the number of parts (default: two per worker thread, at most
    ~16 MiB each, so that a worker holding a part stays small; never more than the write units) or explicit
    regions on write-unit boundaries.

    ``client``: a ``distributed.Client``; default the current one (``distributed.default_client()``), and
    without one the parts are written by a local thread pool, one thread per core. Every Dask worker must see
    the store at the same path (a shared filesystem).

    Raises :class:`zarrtx.ElementExists` (before anything is written) when the name is taken; a part's exception
    after one retry (nothing committed; the plan id is in the exception's notes, for :func:`resume`).
    """
    from xarray import DataArray, DataTree

    h_store = _open(store)
    if kind not in ("image", "labels"):
        raise InvalidElement(f"'{name}': kind must be 'image' or 'labels', got {kind!r}")
    if isinstance(darr, (DataArray, DataTree)):
        data, dims, transformations, channel_names = _from_xarray(
            name, darr, kind, dims, transformations, channel_names, scale_factors
        )
    else:
        data = darr
    data = _source(name, data)
    dims = tuple(str(d) for d in dims) if dims is not None else _default_dims(kind, data.ndim)
    if len(dims) != data.ndim:
        raise InvalidElement(f"'{name}': dims {dims} do not match the array's {data.ndim} axes")
    from ._raster import _dtype_name

    dtype = _dtype_name(name, data.dtype)
    ngff: list[dict[str, Any]] | None = None
    if transformations is not None:
        if isinstance(transformations, Mapping):
            from ._transform import to_ngff

            ngff = to_ngff(transformations, dims)
        else:
            ngff = [dict(t) for t in transformations]
    from . import _core

    compression = _core.parse_compression(name, str(compression))
    if client is None:
        client = _default_client()
    executor: Any = client if client is not None else "threads"
    workers = _parallel.resolve_workers(None, executor)
    plan = _parallel.create_plan(
        h_store,
        name,
        kind,
        dims,
        shape=[int(s) for s in data.shape],
        dtype=dtype,
        parts=_parts(parts),
        workers=workers,
        channel_names=None if channel_names is None else [str(c) for c in channel_names],
        transformations=ngff,
        scale_factors=None if scale_factors is None else [int(f) for f in scale_factors],
        chunks=None if chunks is None else [int(c) for c in chunks],
        shards=None if shards is None else [int(s) for s in shards],
        compression=compression,
    )
    return int(_parallel.run_plan(h_store, plan, _parallel.PlanSource(data, dtype), executor=executor))


def store_array(
    darr: Any,
    hierarchy: Any,
    path: str,
    *,
    fill: bool = False,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    compression: str = "zstd",
    fill_value: Any = None,
    dimension_names: Sequence[str] | None = None,
    attributes: Mapping[str, Any] | None = None,
    parts: int | Sequence[Sequence[tuple[int, int]]] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Writes ``darr`` (a dask or numpy array) as the array at ``path`` of a plain Zarr v3 hierarchy (an NWB file
    written by hdmf-zarr, any zarr-python group) from Dask workers, and commits it from the calling process;
    returns the commit. ``hierarchy``: a :class:`zarrtx.Hierarchy` or a path.

    ``fill=False`` creates the array (see :meth:`zarrtx.Hierarchy.write_array` for ``chunks``, ``shards``,
    ``compression``, ``fill_value``, ``dimension_names`` and ``attributes``); ``fill=True`` writes into the
    existing array. One Dask task per part, built from the part's blocks of ``darr``'s own graph, as
    :func:`store` does; a part is retried once, and a failed write leaves the plan for :func:`resume`.
    ``client``: default the current ``distributed`` client, else a local thread pool."""
    from ._hierarchy import Hierarchy

    h = hierarchy if isinstance(hierarchy, Hierarchy) else Hierarchy(hierarchy)
    if client is None:
        client = _default_client()
    executor: Any = client if client is not None else "threads"
    return h.write_array(
        path,
        _source(path, darr),
        fill=fill,
        chunks=chunks,
        shards=shards,
        compression=compression,
        fill_value=fill_value,
        dimension_names=dimension_names,
        attributes=attributes,
        parts=parts,
        executor=executor,
    )


def resume(store: Any, plan_id: str, darr: Any, *, client: Any = None) -> Any:
    """Finishes write plan ``plan_id`` (from a failed :func:`store`, :func:`store_array`, ``Store.add(...,
    n_jobs=...)`` or ``Hierarchy.write_array``, or from ``zarrtx write-plan`` / ``array-plan``) with the same
    data, and commits it. Finished parts are not rewritten; a part whose writer died is rewritten from scratch.
    Returns the version (a store's element) or the commit (a hierarchy's array); a plan committed already
    returns that."""
    from xarray import DataArray

    from ._hierarchy import Hierarchy

    target = store if isinstance(store, Hierarchy) else _open(store)
    h = target._handle()
    status = dict(h.plan_status(plan_id))
    plan = dict(status["plan"])
    label = plan.get("name") or plan.get("path")
    if status.get("committed") is not None:
        done = h.commit_plan(plan_id)
        return dict(done) if isinstance(target, Hierarchy) else int(done)
    data = _source(label, darr.data if isinstance(darr, DataArray) else darr)
    if [int(s) for s in data.shape] != [int(s) for s in plan["shape"]]:
        raise InvalidElement(
            f"'{label}': plan {plan_id} is for shape {list(plan['shape'])}, the data has shape "
            f"{list(data.shape)}: resume it with the data it was created for"
        )
    if client is None:
        client = _default_client()
    executor: Any = client if client is not None else "threads"
    source = _parallel.PlanSource(data, plan["dtype"])
    done = _parallel.run_plan(target, plan, source, executor=executor, only=list(status["missing"]))
    return dict(done) if isinstance(target, Hierarchy) else int(done)
