"""``zarrtx.Store``: one SpatialData Zarr store that many threads, processes and nodes write at once.

A ``Store`` is a light handle: it pickles to its location and options only and re-opens the engine lazily
wherever it is unpickled (ProcessPoolExecutor workers, Dask workers), so pass it around freely. Every call sees
the newest committed state; nothing is cached between calls except the open engine handle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from . import _snapshots
from ._handle import EngineHandle
from ._lock import StoreLock, check_mode
from .errors import ElementNotFound, InvalidElement

if TYPE_CHECKING:  # pragma: no cover
    from spatialdata import SpatialData

__all__ = ["Store", "open"]

ElementType = Literal["images", "labels", "points", "shapes", "tables"]

_PARSE_HINT = (
    "parse it with spatialdata.models first: Image2DModel.parse / Image3DModel.parse (e.g. "
    "Image2DModel.parse(array, dims=('c', 'y', 'x'))) or Labels2DModel.parse / Labels3DModel.parse for arrays, "
    "PointsModel.parse for point coordinates, ShapesModel.parse for geometries, TableModel.parse for an AnnData"
)


def _classify(name: str, element: Any) -> str:
    """"raster" | "points" | "shapes" | "table" for a spatialdata element; InvalidElement otherwise."""
    import pandas as pd

    try:
        from anndata import AnnData

        if isinstance(element, AnnData):
            return "table"
    except ImportError:  # pragma: no cover
        pass
    try:
        from geopandas import GeoDataFrame

        if isinstance(element, GeoDataFrame):
            return "shapes"
    except ImportError:  # pragma: no cover
        pass
    try:
        from xarray import DataArray, DataTree

        if isinstance(element, (DataArray, DataTree)):
            return "raster"
    except ImportError:  # pragma: no cover
        pass
    try:
        import dask.dataframe as dd

        if isinstance(element, dd.DataFrame):
            return "points"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(element, pd.DataFrame):
        return "points"
    raise InvalidElement(
        f"'{name}': a {type(element).__module__}.{type(element).__qualname__} is not a spatialdata element; "
        + _PARSE_HINT
    )


class Store(EngineHandle):
    """A SpatialData Zarr store written through zarrtx: concurrent, atomic, crash-safe adds, overwrites, deletes
    and table appends, and consistent snapshot reads by version.

    Open one with :func:`zarrtx.open`. The store stays a plain SpatialData store that ``spatialdata.read_zarr``
    reads at any moment. A ``Store`` is thread-safe and picklable (it pickles to its path and options; the engine
    is re-opened lazily in the receiving process).
    """

    _CORE_CLASS = "Store"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        read_only: bool = False,
        single_writer: bool = False,
        durable: bool = True,
    ) -> None:
        """Opens (or, with ``create``, creates or adopts) the store at ``path``. See :func:`zarrtx.open`."""
        options = {"create": create, "read_only": read_only, "single_writer": single_writer, "durable": durable}
        self._setup(path, options)

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._lock_key = os.path.realpath(self._path)

    def __repr__(self) -> str:
        return f"zarrtx.Store({self._path!r}{self._flags()})"

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The newest committed version (read fresh on every access)."""
        return int(self._handle().version())

    def elements(self) -> dict[str, ElementType]:
        """``{name: "images" | "labels" | "points" | "shapes" | "tables"}`` of every element at the newest version
        (read fresh on every call)."""
        return {name: typ for name, typ in self._handle().elements()}

    def history(self) -> list[dict[str, Any]]:
        """Every commit, oldest first: ``{"version", "txn", "timestamp_ms", "writer": {"host", "pid", "label"},
        "summary": [...]}``."""
        return list(self._handle().history())

    def verify(self) -> dict[str, Any]:
        """Checks that log, published view and data agree: ``{"problems": [...], "leftovers": [...],
        "retained": [...]}`` (all empty lists for a clean store)."""
        return dict(self._handle().verify())

    def gc(self, grace_seconds: float | None = None) -> dict[str, Any]:
        """Rolls interrupted writers forward and reclaims data older than ``grace_seconds`` (default: the engine's,
        one hour) that no current element needs: displaced generations (snapshots of versions older than that
        then raise :class:`zarrtx.VersionNotAvailable`), dead staging, debris."""
        h = self._handle()
        return dict(h.gc() if grace_seconds is None else h.gc(float(grace_seconds)))

    # -- writing ----------------------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        element: Any,
        *,
        overwrite: bool = False,
        n_jobs: int | None = None,
        executor: Any = None,
    ) -> int:
        """Adds one spatialdata element under ``name`` atomically and returns the new version.

        ``element`` is what ``spatialdata.models`` produce: an image or labels ``xarray.DataArray`` /
        ``xarray.DataTree`` (image vs labels decided as spatialdata does; transformations and channel names kept;
        dask-backed data is streamed block by block, never computed as a whole), a points dask (or pandas)
        DataFrame, a shapes ``geopandas.GeoDataFrame`` or a table ``anndata.AnnData``. Names are unique
        case-insensitively across all element types: :class:`zarrtx.ElementExists` unless ``overwrite=True``.
        Anything else, or an element failing spatialdata's validation, raises :class:`zarrtx.InvalidElement` and
        writes nothing.

        **Many workers for one image or labels element.** With ``n_jobs`` > 1 (``-1``: every core) or an
        ``executor``, a single-scale image or labels element (a ``DataArray``, or a ``DataTree`` holding only
        ``scale0``) is written through a write plan: level 0 is cut into parts of whole chunks (at least two per
        worker, at most about 16 MiB each), each part is computed (``element.data[part]``: a dask slice computed
        on the worker, or the numpy slice) and written by one worker, and the calling process commits the element
        once every part is there — invisible to every reader until then, all of it at once after. ``executor`` is
        ``"threads"`` (the default when only ``n_jobs`` is given), ``"processes"`` (a ``ProcessPoolExecutor`` of
        ``n_jobs`` workers, default start method), any ``concurrent.futures.Executor`` (``n_jobs`` defaults to
        its size), or a ``distributed.Client`` (the parts are Dask tasks; every worker must see the store at the
        same path). The result is the same element, pixel for pixel, as without ``n_jobs``. A part
        that fails is run once more (its failed attempt is discarded, finished parts are kept); if it fails again
        its exception is raised here, nothing is committed, and the abandoned plan is reclaimed by :meth:`gc`.

        A ``DataTree`` with lower levels (``parse(..., scale_factors=...)``) is written as spatialdata writes it:
        its levels stored exactly as given, by the calling process (a ``UserWarning`` says that ``n_jobs`` /
        ``executor`` did not apply). To write a large pyramid in parallel, give its full-resolution level to
        :func:`zarrtx.dask.store` with ``scale_factors``: the levels are then computed by zarrtx at the commit
        (mean for images, mode for labels), which can differ slightly from spatialdata's own downsampling.

        ``overwrite=True`` with ``n_jobs`` / ``executor`` replaces an existing element at the plan's commit, as
        atomically as a single writer does. Points, shapes and tables are always written by the calling process;
        ``n_jobs`` / ``executor`` are ignored for them.
        """
        kind = _classify(name, element)
        h = self._handle()
        if n_jobs is not None or executor is not None:
            from ._parallel import check_executor, check_n_jobs

            check_n_jobs(n_jobs)
            check_executor(executor)
        if kind == "raster":
            if n_jobs is not None or executor is not None:
                from ._parallel import add_raster_parallel

                version = add_raster_parallel(
                    self, name, element, overwrite=overwrite, n_jobs=n_jobs, executor=executor
                )
                if version is not None:
                    return version
            from ._raster import add_raster_args

            raster_kind, dims, kwargs = add_raster_args(name, element)
            return int(h.add_raster(name, raster_kind, dims, overwrite=overwrite, **kwargs))
        if kind == "points":
            from ._points import add_points_args

            batches, kwargs = add_points_args(name, element)
            return int(h.add_points(name, batches, overwrite=overwrite, **kwargs))
        if kind == "shapes":
            from ._shapes import add_shapes_args

            return int(h.add_shapes(name, overwrite=overwrite, **add_shapes_args(name, element)))
        from ._table import to_table_dict

        return int(h.add_table(name, to_table_dict(name, element), overwrite=overwrite))

    def append(self, table_name: str, adata: Any) -> int:
        """Appends the rows of ``adata`` to table ``table_name`` (creating the table if it is missing) and returns
        the new version. Safe to call from many processes at once: every row lands exactly once. The rows must have
        the table's obs columns and types, variables and X kind; instance ids must be unique within each region
        (parse the rows with ``spatialdata.models.TableModel.parse`` with the table's region_key/instance_key)."""
        from ._table import to_table_dict

        return int(self._handle().append(table_name, to_table_dict(table_name, adata)))

    def delete(self, name: str) -> int:
        """Deletes element ``name`` atomically and returns the new version (:class:`zarrtx.ElementNotFound` if it
        does not exist). Snapshots of earlier versions keep reading it until ``gc`` reclaims it."""
        return int(self._handle().delete(name))

    # -- reading ----------------------------------------------------------------------------------------------

    def _snapshot(self, version: int | None) -> Any:
        snap = self._handle().snapshot(None if version is None else int(version))
        _snapshots.put(self._path, int(snap.version), snap)
        return snap

    @staticmethod
    def _resolve(snap: Any, names: Iterable[str]) -> list[tuple[str, str]]:
        listing = list(snap.elements())
        exact = dict(listing)
        folded = {n.lower(): (n, t) for n, t in listing}
        out = []
        for n in names:
            if n in exact:
                out.append((n, exact[n]))
            elif isinstance(n, str) and n.lower() in folded:
                out.append(folded[n.lower()])
            else:
                known = ", ".join(sorted(exact)) or "none"
                raise ElementNotFound(
                    f"element '{n}' is not in the store at version {snap.version} (elements: {known}); check the "
                    "name, or read an earlier version with version=..."
                )
        return out

    def _read_one(self, snap: Any, name: str, typ: str) -> Any:
        version = int(snap.version)
        if typ in ("images", "labels"):
            from ._raster import read_raster

            return read_raster(self._path, version, name, snap.raster_info(name))
        if typ == "points":
            from ._points import read_points

            return read_points(snap, self._path, version, name, snap.vector_info(name))
        if typ == "shapes":
            from ._shapes import read_shapes

            return read_shapes(snap, name)
        if typ == "tables":
            from ._table import from_table_dict, read_encodings

            table = snap.read_table(name)
            return from_table_dict(table, read_encodings(snap.metadata(name)))
        raise ElementNotFound(f"element '{name}' has unknown type {typ!r}")  # pragma: no cover

    def read(self, selection: Iterable[str] | str | None = None, version: int | None = None) -> SpatialData:
        """The store as one consistent ``spatialdata.SpatialData``: every element as of ONE committed version
        (the newest, or ``version``), however many writers are active.

        Rasters and points are lazy (dask); their chunks read through the pinned version, so later deletes and
        overwrites do not change what they return, and their graphs pickle (store path + version + name) to any
        Dask worker. Shapes and tables are read eagerly. ``selection`` lists element names to read (all when
        None); an unknown name raises :class:`zarrtx.ElementNotFound`.

        The returned object is in memory: its ``path`` is NOT set, so spatialdata's own write methods
        (``write_element``, ``write``, ...) cannot bypass zarrtx by accident. Write through :meth:`add`,
        :meth:`append` and :meth:`delete`.
        """
        from spatialdata import SpatialData

        snap = self._snapshot(version)
        if selection is None:
            chosen = list(snap.elements())
        else:
            chosen = self._resolve(snap, [selection] if isinstance(selection, str) else list(selection))
        groups: dict[str, dict[str, Any]] = {t: {} for t in ("images", "labels", "points", "shapes", "tables")}
        for name, typ in chosen:
            groups[typ][name] = self._read_one(snap, name, typ)
        return SpatialData(**groups)

    def read_element(self, name: str, version: int | None = None) -> Any:
        """One element as spatialdata returns it (lazy for rasters and points), as of the newest version or
        ``version``; :class:`zarrtx.ElementNotFound` if it does not exist there."""
        snap = self._snapshot(version)
        ((resolved, typ),) = self._resolve(snap, [name])
        return self._read_one(snap, resolved, typ)

    # -- locks ------------------------------------------------------------------------------------------------

    def _acquire_lock(self, name: str | None, mode: str, timeout: float | None) -> Any:
        return self._handle().lock(name, mode, timeout)

    def lock(self, name: str | None = None, mode: Literal["r", "w"] = "w", timeout: float | None = None) -> StoreLock:
        """A readers-writer lock on the whole store (``name=None``) or on one name, as a context manager::

            with store.lock("cells"):          # exclusive ("w"); "r" is shared
                table = store.read_element("cells")
                ...

        It is reentrant per thread (a held lock may be taken again with the same or a weaker mode; a named lock
        inside a held store-wide "w" is implied) and works across threads, processes and nodes. Asking for "w"
        while holding "r" raises :class:`zarrtx.ZarrtxError` (it would deadlock). ``timeout`` in seconds
        (None waits forever, 0 tries once) raises :class:`zarrtx.LockTimeout`. zarrtx's own writes do not need
        it; it orders your read-modify-write sequences.
        """
        check_mode(mode)
        if name is not None and not isinstance(name, str):
            raise InvalidElement(f"lock name {name!r} is not a string; pass an element name, or None for the store")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise InvalidElement(f"lock timeout {timeout!r} is not valid: pass seconds >= 0, or None to wait forever")
        return StoreLock(self._acquire_lock, self._lock_key, name, mode, None if timeout is None else float(timeout))


def open(
    path: str | os.PathLike[str],
    *,
    create: bool = True,
    read_only: bool = False,
    single_writer: bool = False,
    durable: bool = True,
) -> Store:
    """Opens the zarrtx store at ``path``.

    With ``create`` (the default) a missing store is created and a store written by spatialdata is adopted
    (nothing is rewritten). ``read_only`` opens for reading only. ``single_writer`` skips the refusal of media
    that cannot arbitrate concurrent commits (only safe when one process writes). ``durable=False`` skips fsync
    (faster; a machine crash may lose recent commits, never corrupt the store).
    """
    return Store(path, create=create, read_only=read_only, single_writer=single_writer, durable=durable)
