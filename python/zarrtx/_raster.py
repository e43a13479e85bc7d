"""Images and labels: spatialdata's ``DataArray`` / ``DataTree`` <-> ``zarrtx._core`` calls.

Writing: the element is validated with spatialdata's own model (``get_model``), then described to the engine as
kind, dims, dtype, channel names (the ``c`` coordinate) and transformations (NGFF dicts). Dask-backed data is
streamed to the engine block by block (never computed as a whole); numpy data is passed as one array. The lower
levels of a ``DataTree`` are passed as given levels, stored verbatim.

Reading: every level becomes a lazy dask array whose chunks are the stored chunks and whose tasks read through a
pinned snapshot (``(store path, version, name, level)`` only, so the graph pickles), assembled exactly as
spatialdata's reader (``spatialdata._io.io_raster._read_multiscale``) assembles them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .errors import InvalidElement

__all__ = ["add_raster_args", "read_raster", "iter_dask_blocks", "RasterLevel"]

# Zarr v3 data type names the engine stores (numpy's names for the same types).
_DTYPES = {"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"}

# Streaming: how many bytes of dask blocks may be computed at once (several blocks are computed together, in
# parallel, as long as they fit; one block always goes alone whatever its size).
_STREAM_WINDOW_BYTES = 64 << 20


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def _levels(element: Any) -> list[Any]:
    """The DataArrays of a raster element, finest first."""
    from xarray import DataArray

    if isinstance(element, DataArray):
        return [element]
    keys = [k for k in element.children if k.startswith("scale") and k[5:].isdigit()]
    keys.sort(key=lambda k: int(k[5:]))
    out = []
    for k in keys:
        variables = list(element[k].ds.data_vars.values())
        if len(variables) != 1:
            raise InvalidElement(
                f"level '{k}' holds {len(variables)} data variables; a spatialdata raster level holds exactly one "
                "(parse the element with spatialdata.models.Image2DModel.parse / Labels2DModel.parse)"
            )
        out.append(variables[0])
    return out


def _validate(name: str, element: Any) -> tuple[str, Any]:
    """Validates ``element`` with spatialdata's model; returns ("image"|"labels", model class)."""
    from spatialdata.models import Image2DModel, Image3DModel, Labels2DModel, Labels3DModel, get_model

    try:
        model = get_model(element, validate=False)
    except Exception as e:  # e.g. dims spatialdata cannot interpret
        raise InvalidElement(
            f"'{name}' is not a spatialdata raster element ({type(e).__name__}: {e}); parse it with "
            "spatialdata.models.Image2DModel.parse (or Image3DModel / Labels2DModel / Labels3DModel) first"
        ) from e
    try:
        model().validate(element)
    except Exception as e:
        raise InvalidElement(
            f"'{name}' fails spatialdata's {model.__name__} validation ({type(e).__name__}: {e}); parse it with "
            f"spatialdata.models.{model.__name__}.parse first"
        ) from e
    kind = "image" if model in (Image2DModel, Image3DModel) else "labels"
    assert model in (Image2DModel, Image3DModel, Labels2DModel, Labels3DModel)
    return kind, model


def _dtype_name(name: str, dtype: Any) -> str:
    dt = np.dtype(dtype)
    if dt.name not in _DTYPES:
        raise InvalidElement(
            f"'{name}' has dtype {dt.name}, which Zarr/spatialdata rasters do not store here; cast it to one of "
            f"{sorted(_DTYPES)} (e.g. element.astype('float32')) before adding it"
        )
    return dt.name


def _regular_chunk_shape(chunks: Sequence[Sequence[int]]) -> list[int] | None:
    """The Zarr chunk shape of a regular dask chunk grid (all blocks equal except a smaller last one per axis);
    None for an irregular grid (spatialdata's own test, ``_is_regular_dask_chunk_grid``)."""
    out = []
    for axis in chunks:
        axis = tuple(int(c) for c in axis)
        if len(axis) > 1 and (len(set(axis[:-1])) > 1 or axis[-1] > axis[0]):
            return None
        out.append(max(axis[0], 1) if axis else 1)
    return out


def iter_dask_blocks(
    arr: Any,
    dtype: Any,
    window_bytes: int = _STREAM_WINDOW_BYTES,
    *,
    origin: Sequence[int] | None = None,
    scheduler: str | None = None,
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yields ``(offset, block)`` for every block of the dask array ``arr`` in C order, as contiguous numpy arrays
    of ``dtype``. Blocks are computed a few at a time (together at most ``window_bytes``, at least one), never the
    whole array. ``origin`` shifts the offsets (``arr`` is a region of a larger array starting there);
    ``scheduler`` is passed to ``dask.compute`` (e.g. ``"sync"`` in a worker that is itself the unit of
    parallelism)."""
    import dask

    base = [0] * arr.ndim if origin is None else [int(o) for o in origin]
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in arr.chunks]
    itemsize = np.dtype(arr.dtype).itemsize
    delayed = arr.to_delayed(optimize_graph=True)
    pending: list[tuple[list[int], Any]] = []
    pending_bytes = 0
    compute_kwargs = {} if scheduler is None else {"scheduler": scheduler}

    def flush() -> Iterator[tuple[list[int], np.ndarray]]:
        results = list(dask.compute(*[d for _, d in pending], **compute_kwargs))
        offsets = [offset for offset, _ in pending]
        results.reverse()
        for offset in offsets:
            # Drop each computed block as soon as the engine has taken it (it copies what it keeps).
            block = results.pop()
            yield offset, np.ascontiguousarray(np.asarray(block), dtype=dtype)
            del block

    for idx in np.ndindex(*arr.numblocks):
        nbytes = itemsize * int(np.prod([arr.chunks[a][i] for a, i in enumerate(idx)]))
        if pending and pending_bytes + nbytes > window_bytes:
            yield from flush()
            pending, pending_bytes = [], 0
        pending.append(([base[a] + int(starts[a][i]) for a, i in enumerate(idx)], delayed[idx]))
        pending_bytes += nbytes
    if pending:
        yield from flush()


_REARRANGING_FUNCS = {
    ("dask.array.chunk", "getitem"),
    ("dask.array.core", "concatenate_shaped"),
    ("dask.array.core", "concatenate3"),
}


def numpy_behind(darr: Any) -> np.ndarray | None:
    """The numpy array a dask array merely re-chunks, or None. spatialdata's models wrap an in-memory array in a
    graph of one embedded copy plus slicing and concatenation tasks (its rechunk); such a graph holds the data
    already, and writing it block by block would copy every block again. Only a graph made of exactly one ndarray
    of the dask array's shape and dtype, aliases, step-1 slices and concatenations qualifies, so that the array it
    returns is the dask array's value."""
    try:
        graph = dict(darr.__dask_graph__())
    except Exception:  # pragma: no cover - not a dask collection after all
        return None
    found: list[np.ndarray] = []
    for task in graph.values():
        if isinstance(task, np.ndarray):
            found.append(task)
            continue
        if type(task).__name__ == "Alias":
            continue
        func = getattr(task, "func", None)
        if func is None or (getattr(func, "__module__", ""), getattr(func, "__name__", "")) not in _REARRANGING_FUNCS:
            return None
        for arg in getattr(task, "args", ()):
            if isinstance(arg, tuple) and not all(isinstance(i, slice) and i.step in (None, 1) for i in arg):
                return None
    if len(found) != 1:
        return None
    (arr,) = found
    if tuple(arr.shape) != tuple(int(s) for s in darr.shape) or arr.dtype != darr.dtype:
        return None
    return arr


def add_raster_args(name: str, element: Any) -> tuple[str, list[str], dict[str, Any]]:
    """Validates a spatialdata image/labels element and returns ``(kind, dims, kwargs)`` for
    ``_core.Store.add_raster(name, kind, dims, **kwargs)``."""
    import dask.array as da

    from ._transform import get_transformations, to_ngff

    kind, model = _validate(name, element)
    levels = _levels(element)
    if not levels:
        raise InvalidElement(f"'{name}' is a DataTree without scale0 level; parse it with spatialdata.models first")
    base = levels[0]
    dims = [str(d) for d in base.dims]
    dtype = _dtype_name(name, base.dtype)
    kwargs: dict[str, Any] = {
        "transformations": to_ngff(get_transformations(element), dims),
    }
    if kind == "image" and "c" in base.coords:
        values = base.coords["c"].values.tolist()
        # spatialdata's default channel names are the integers 0..n-1, stored as integer labels: leave them to the
        # engine's default (which writes exactly that) so they read back as integers.
        if values != list(range(len(values))):
            kwargs["channel_names"] = [str(c) for c in values]
    data = base.data
    behind = numpy_behind(data) if isinstance(data, da.Array) else None
    if behind is not None:
        chunk_shape = _regular_chunk_shape(data.chunks)
        if chunk_shape is not None:
            kwargs["chunks"] = chunk_shape
        data = behind  # spatialdata's parse of an in-memory array: written from numpy's buffer, not block copies
    if isinstance(data, da.Array):
        kwargs["shape"] = [int(s) for s in data.shape]
        kwargs["dtype"] = dtype
        kwargs["blocks"] = iter_dask_blocks(data, np.dtype(dtype))
        chunk_shape = _regular_chunk_shape(data.chunks)
        if chunk_shape is not None:
            kwargs["chunks"] = chunk_shape
    else:
        kwargs["data"] = np.ascontiguousarray(np.asarray(data))
    if len(levels) > 1:
        lower = []
        for i, lv in enumerate(levels[1:], start=1):
            if [str(d) for d in lv.dims] != dims:
                raise InvalidElement(
                    f"'{name}': level scale{i} has dims {list(lv.dims)} but scale0 has {dims}; every level must have "
                    f"the same dims (build the pyramid with spatialdata.models.{model.__name__}.parse(..., "
                    "scale_factors=...))"
                )
            arr = lv.data
            arr = arr.compute() if isinstance(arr, da.Array) else np.asarray(arr)
            lower.append(np.ascontiguousarray(arr, dtype=np.dtype(dtype)))
        kwargs["levels"] = lower
    return kind, dims, kwargs


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


class RasterLevel:
    """A lazily read level of a raster element pinned at one version: a small, picklable array-like that
    ``dask.array.from_array`` slices chunk by chunk. It carries the store path, version, element name and level,
    never an engine object."""

    __slots__ = ("path", "version", "name", "level", "shape", "dtype")

    def __init__(self, path: str, version: int, name: str, level: int, shape: Sequence[int], dtype: Any) -> None:
        self.path = path
        self.version = int(version)
        self.name = name
        self.level = int(level)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RasterLevel, (self.path, self.version, self.name, self.level, self.shape, self.dtype.str))

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("zarrtx.RasterLevel", self.path, self.version, self.name, self.level)

    def __repr__(self) -> str:
        return f"RasterLevel({self.path!r}, version={self.version}, name={self.name!r}, level={self.level})"

    def __getitem__(self, key: Any) -> np.ndarray:
        from . import _snapshots

        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        region: list[tuple[int, int]] = []
        post: list[Any] = []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step == 1:
                    region.append((start, max(start, stop)))
                    post.append(slice(None))
                else:
                    lo, hi = (start, stop) if step > 0 else (stop + 1, start + 1)
                    lo, hi = max(lo, 0), min(max(hi, lo), n)
                    region.append((lo, hi))
                    post.append(slice(start - lo, None if stop - lo < 0 else stop - lo, step))
            elif isinstance(k, (int, np.integer)):
                i = int(k) + n if int(k) < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"index {int(k)} is out of bounds for an axis of size {n}")
                region.append((i, i + 1))
                post.append(0)
            else:
                return np.asarray(self[(slice(None),) * self.ndim])[key]
        if any(a == b for a, b in region):
            out = np.empty([b - a for a, b in region], dtype=self.dtype)
        else:
            out = _snapshots.get(self.path, self.version).read_raster(self.name, self.level, region)
        post_t = tuple(post)
        if any(p != slice(None) for p in post_t):
            out = out[post_t]
        return out


def read_raster(path: str, version: int, name: str, info: dict[str, Any]) -> Any:
    """Builds the lazy ``DataArray`` (one level) or ``DataTree`` (several levels: ``scale0``, ``scale1``, ...) of
    raster element ``name`` from its ``raster_info``, exactly as spatialdata's reader shapes it."""
    import dask.array as da

    from ._transform import from_ngff

    dims = list(info["dims"])
    dtype = np.dtype(info["dtype"])
    arrays = []
    for i, level in enumerate(info["levels"]):
        shape = tuple(int(s) for s in level["shape"])
        chunks = tuple(min(max(int(c), 1), max(s, 1)) for c, s in zip(level["chunks"], shape, strict=True))
        src = RasterLevel(path, version, name, i, shape, dtype)
        token = f"zarrtx-{os.path.basename(path.rstrip('/'))}-{name}-v{int(version)}-s{i}-" + _short_hash(path)
        arrays.append(
            da.from_array(
                src,
                chunks=chunks,
                name=token,
                lock=False,
                asarray=False,
                fancy=False,
                meta=np.empty((0,) * len(shape), dtype=dtype),
            )
        )
    channels: list[Any] | None = None
    if info.get("kind") == "image":
        labels = info.get("channel_labels")
        if labels is None:
            labels = info.get("channel_names")
        channels = list(labels) if labels is not None else None
        if channels is None and "c" in dims:
            channels = list(range(int(info["levels"][0]["shape"][dims.index("c")])))
    transformations = from_ngff(info.get("transformations") or [])
    return _assemble(arrays, dims, channels, transformations)


def _assemble(arrays: list[Any], dims: list[str], channels: list[Any] | None, transformations: dict[str, Any]) -> Any:
    """spatialdata's reader (``_read_multiscale``): one level -> a DataArray named "image"; several -> a DataTree
    with ``scale0``, ``scale1``, ...; then the transformations and the coordinates."""
    from spatialdata.models.pyramids_utils import dask_arrays_to_datatree
    from spatialdata.transformations._utils import compute_coordinates
    from xarray import DataArray

    from ._transform import set_transformations

    if len(arrays) > 1:
        msi = dask_arrays_to_datatree(arrays, dims=dims, channels=channels)
        set_transformations(msi, transformations)
        return compute_coordinates(msi)
    si = DataArray(arrays[0], name="image", dims=dims, coords={"c": channels} if channels is not None else {})
    set_transformations(si, transformations)
    return compute_coordinates(si)


def _short_hash(s: str) -> str:
    import hashlib

    return hashlib.sha1(s.encode("utf-8", "surrogateescape")).hexdigest()[:10]
