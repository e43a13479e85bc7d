"""One array of a plain Zarr v3 hierarchy — an NWB file written by hdmf-zarr, any zarr-python group — created or
filled by many threads, processes or Dask workers at once, through the engine's array plans.

The guarantees are those of element plans: parts of whole chunks (or shards), so no file ever has two writers; a
part that fails is run again without touching finished parts; the array is invisible (a new one) or unchanged (a
filled one) until the commit, which publishes it in one step and, for a new array, adds it to the root's
consolidated metadata when the hierarchy has one (hdmf-zarr writes one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _parallel
from ._handle import EngineHandle
from .errors import InvalidElement

__all__ = ["Hierarchy", "open_hierarchy"]


class Hierarchy(EngineHandle):
    """A Zarr v3 hierarchy whose arrays zarrtx writes in parallel. Thread-safe and picklable (to its path and
    options), like :class:`zarrtx.Store`; open one with :func:`zarrtx.open_hierarchy`."""

    _CORE_CLASS = "Hierarchy"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        read_only: bool = False,
        single_writer: bool = False,
        durable: bool = True,
    ) -> None:
        """Opens the hierarchy whose root group is at ``path``. See :func:`zarrtx.open_hierarchy`."""
        options = {"create": create, "read_only": read_only, "single_writer": single_writer, "durable": durable}
        self._setup(path, options)

    def __repr__(self) -> str:
        return f"zarrtx.Hierarchy({self._path!r}{self._flags()})"

    def metadata(self, path: str = "") -> dict[str, Any] | None:
        """The ``zarr.json`` of the node at ``path`` (``""``: the root group), or None when there is none."""
        doc = self._handle().node_metadata(path)
        return None if doc is None else dict(doc)

    def write_array(
        self,
        path: str,
        data: Any,
        *,
        fill: bool = False,
        chunks: Sequence[int] | None = None,
        shards: Sequence[int] | None = None,
        compression: str = "zstd",
        fill_value: Any = None,
        dimension_names: Sequence[str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        parts: int | Sequence[Sequence[tuple[int, int]]] | None = None,
        n_jobs: int | None = None,
        executor: Any = None,
    ) -> dict[str, Any]:
        """Writes ``data`` (a numpy or dask array) as the array at ``path`` in parallel and commits it; returns
        the commit (``path``, ``mode``, ``kept_files``, ``consolidated``).

        ``fill=False`` creates a new array (missing parent groups are created; :class:`zarrtx.ElementExists` if a
        node is at the path) with ``chunks`` (default: at most 4 MiB per chunk, the longest axis halved first),
        ``shards``, ``compression`` (``"zstd"``, ``"zstd:3"``, ``"blosc-lz4"``, ``"blosc-zstd"``, ``"none"``),
        ``fill_value``, ``dimension_names`` and ``attributes``. ``fill=True`` writes into the existing array at
        ``path`` as it is (its shape, dtype and chunks; ``data`` must have its shape).

        ``n_jobs`` / ``executor``: as for :meth:`zarrtx.Store.add` — ``"threads"`` (default), ``"processes"``, a
        ``concurrent.futures.Executor`` or a ``distributed.Client``; ``parts``: a count or explicit regions on
        chunk (shard) boundaries. Every worker must see the hierarchy at the same path.
        """
        n = _parallel.check_n_jobs(n_jobs)
        _parallel.check_executor(executor)
        if executor is None:
            executor = "threads"
        data = _array_source(path, data)
        dtype = np.dtype(data.dtype)
        workers = _parallel.resolve_workers(n, executor)
        plan = self.create_plan(
            path,
            shape=None if fill else [int(s) for s in data.shape],
            dtype=None if fill else dtype.name,
            fill=fill,
            chunks=chunks,
            shards=shards,
            compression=compression,
            fill_value=fill_value,
            dimension_names=dimension_names,
            attributes=attributes,
            parts=parts,
            workers=workers,
        )
        if [int(s) for s in data.shape] != [int(s) for s in plan["shape"]]:
            raise InvalidElement(
                f"'{path}': the array has shape {list(plan['shape'])} but the data has shape {list(data.shape)}"
            )
        source = _parallel.PlanSource(data, plan["dtype"])
        return dict(_parallel.run_plan(self, plan, source, n_jobs=n, executor=executor))

    def create_plan(
        self,
        path: str,
        *,
        shape: Sequence[int] | None = None,
        dtype: Any = None,
        fill: bool = False,
        chunks: Sequence[int] | None = None,
        shards: Sequence[int] | None = None,
        compression: str = "zstd",
        fill_value: Any = None,
        dimension_names: Sequence[str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        parts: int | Sequence[Sequence[tuple[int, int]]] | None = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Creates an array plan (see :meth:`write_array` for the arguments) and returns it: ``plan_id``,
        ``path``, ``mode``, ``shape``, ``dtype``, ``write_unit``, ``parts`` and the array's ``metadata``.
        ``parts=None`` chooses two per worker (``workers``, default the number of cores), parts of at most about
        16 MiB (a Dask worker holds its part whole), never more than the array's chunks (shards)."""
        from . import _core

        h = self._handle()
        compression = _core.parse_compression(path, str(compression))
        if parts is None:
            if fill:
                meta = self.metadata(path) or {}
                shape_, dtype_ = meta.get("shape"), meta.get("data_type")
                unit = _grid_shape(meta)
            else:
                shape_, dtype_, unit = shape, dtype, None
            if shape_ is None or dtype_ is None:
                parts = 1  # the engine refuses the plan with the reason
            else:
                if unit is None:
                    unit = list(shards) if shards else (list(chunks) if chunks else _default_chunks(shape_, dtype_))
                parts = _parallel.choose_parts(
                    shape_, unit, np.dtype(dtype_).itemsize, workers or (os.cpu_count() or 1)
                )
        elif not isinstance(parts, (int, np.integer)):
            parts = [[(int(a), int(b)) for a, b in region] for region in parts]
        plan = h.create_plan(
            path,
            parts=parts,
            fill=fill,
            shape=None if shape is None else [int(s) for s in shape],
            dtype=None if dtype is None else np.dtype(dtype).name,
            chunks=None if chunks is None else [int(c) for c in chunks],
            shards=None if shards is None else [int(s) for s in shards],
            compression=compression,
            fill_value=_json_scalar(fill_value),
            dimension_names=None if dimension_names is None else [str(d) for d in dimension_names],
            attributes=None if attributes is None else dict(attributes),
        )
        return dict(plan)

    def write_part(self, plan_id: str, part: int, data: Any = None, *, blocks: Any = None) -> dict[str, Any]:
        """Writes part ``part`` of plan ``plan_id`` from ``data`` (a numpy array of exactly the part's region) or
        ``blocks`` (``(offset, numpy block)`` pairs inside the part). A finished part is not rewritten."""
        return dict(self._handle().write_part(plan_id, int(part), data=data, blocks=blocks))

    def plan_status(self, plan_id: str) -> dict[str, Any]:
        """The plan, its ``done``, ``started`` and ``missing`` parts, and its commit (or None)."""
        return dict(self._handle().plan_status(plan_id))

    def plans(self) -> list[dict[str, Any]]:
        """The status of every array plan of the hierarchy, oldest first."""
        return [dict(s) for s in self._handle().list_plans()]

    def commit_plan(self, plan_id: str) -> dict[str, Any]:
        """Publishes the array once every part is written; idempotent (returns the first commit)."""
        return dict(self._handle().commit_plan(plan_id))

    def gc(self, grace_seconds: float = 3600.0) -> list[tuple[str, int]]:
        """Reclaims plans (committed or abandoned) idle for ``grace_seconds``; returns the directories removed."""
        return list(self._handle().gc(float(grace_seconds)))


def open_hierarchy(
    path: str | os.PathLike[str],
    *,
    create: bool = False,
    read_only: bool = False,
    single_writer: bool = False,
    durable: bool = True,
) -> Hierarchy:
    """Opens the Zarr v3 hierarchy at ``path`` for parallel array writes (``create``: make an empty root group when
    there is none). zarrtx SpatialData stores and Zarr v2 hierarchies are refused (use :func:`zarrtx.open` for
    the former)."""
    return Hierarchy(path, create=create, read_only=read_only, single_writer=single_writer, durable=durable)


def _array_source(path: str, data: Any) -> Any:
    if isinstance(data, np.ndarray):
        return data
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - dask is a dependency of spatialdata, optional here
        da = None
    if da is not None and isinstance(data, da.Array):
        return data
    if hasattr(data, "__array__") and not hasattr(data, "chunks"):
        return np.asarray(data)
    raise InvalidElement(f"'{path}': expected a numpy or dask array, got {type(data).__module__}.{type(data).__qualname__}")


def _grid_shape(meta: Mapping[str, Any]) -> list[int] | None:
    try:
        return [int(c) for c in meta["chunk_grid"]["configuration"]["chunk_shape"]]
    except (KeyError, TypeError):
        return None


def _default_chunks(shape: Sequence[int], dtype: Any) -> list[int]:
    """The engine's default chunks for a new array (its rule, asked of the engine): used to count write units."""
    from . import _core

    return list(_core.default_array_chunks([int(n) for n in shape], np.dtype(dtype).name))


def _json_scalar(value: Any) -> Any:
    """A fill value as Zarr v3 JSON: numpy scalars to Python numbers, NaN and infinities to their names."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if np.isnan(value):
            return "NaN"
        if np.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value
