"""Type stubs for ``zarrtx._core``, the compiled engine (PyO3).

This module is the narrow, primitive-typed boundary between Python and the Rust engine: numpy arrays (zero-copy
through rust-numpy where the layout allows), pyarrow RecordBatches (through Arrow's C data interface), and plain
dicts/lists of JSON-like values. Everything that knows about spatialdata, anndata, xarray, geopandas or dask lives
in the pure-Python layer (``zarrtx._store`` and friends). Users import ``zarrtx``, not this module.

Errors: every engine error is raised as the matching class of ``zarrtx.errors`` (imported lazily by the engine):
ElementExists, ElementNotFound, InvalidElement, Conflict, StorageError, VersionNotAvailable, LockTimeout, all
derived from ZarrtxError. The message names the element and the fix.

The GIL is released while the engine does I/O, encoding, waiting for locks and committing.

Transformations are exchanged as lists of NGFF-style dicts exactly as spatialdata 0.8 stores them in
``coordinateTransformations`` (each with ``type``, its parameters, ``input`` and ``output`` coordinate systems,
the target coordinate system name being ``output["name"]``). An empty list means identity into ``global``.
"""

import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

ElementType = Literal["images", "labels", "points", "shapes", "tables"]

# Table dict ("TableDict"), used by add_table / append / read_table:
# {
#   "obs": pa.RecordBatch,          # obs columns INCLUDING the index column named by obs_index
#   "obs_index": str,               # name of the index column in "obs" ("_index" for an unnamed pandas index)
#   "var": pa.RecordBatch,          # same for var
#   "var_index": str,
#   "X": Matrix | None,
#   "layers": dict[str, Matrix],
#   "obsm": dict[str, np.ndarray],  # 2-D, n_obs rows
#   "varm": dict[str, np.ndarray],  # 2-D, n_vars rows
#   "uns": dict[str, Uns],          # Uns = str | int | float | bool | list[str] | np.ndarray | dict[str, Uns]
#                                   # (uns["spatialdata_attrs"] is NOT included: use "annotation")
#   "annotation": {"region": list[str], "region_key": str, "instance_key": str} | None,
# }
# Matrix = np.ndarray (2-D, dense)
#        | {"format": "csr", "data": np.ndarray (1-D), "indices": np.ndarray (int64 or int32),
#           "indptr": np.ndarray (int64 or int32), "shape": tuple[int, int]}
# obs/var column types: int8..int64, uint8..uint64, float32/64, bool, string (utf8 or large_utf8),
# dictionary<int*, string> (categoricals), nullable ints/bools/strings (Arrow nulls).
# Reads return "indices"/"indptr" as int64, strings as utf8, categoricals as dictionary<int*, utf8>.

def default_raster_chunks(dims: list[str], shape: list[int]) -> list[int]:
    """The engine's default chunk shape of a raster (all channels up to 16, one z plane, up to 1024 x 1024)."""

def default_array_chunks(shape: list[int], dtype: str) -> list[int]:
    """The engine's default chunk shape of a new hierarchy array (longest axis halved until at most 4 MiB)."""

def parse_compression(name: str, text: str) -> str:
    """The compression ``text`` in canonical form (``"zstd"``, ``"zstd:3"``, ``"blosc-lz4:5"``, ``"none"``); raises
    InvalidElement naming ``name`` and the accepted forms (none, zstd[:LEVEL], blosc-CNAME[:LEVEL], blosc,
    blosc:CNAME:LEVEL)."""

def default_dims(kind: str, ndim: int) -> list[str] | None:
    """The engine's default axes of an ``"image"`` (3-D c,y,x; 4-D c,z,y,x) or ``"labels"`` (2-D y,x; 3-D z,y,x)
    array of ``ndim`` dimensions; None otherwise."""

class Snapshot:
    """The store as of one committed version. Immutable; reads are relocation-safe (a concurrent delete or
    overwrite does not disturb them, until gc reclaims the data: VersionNotAvailable)."""

    @property
    def version(self) -> int: ...
    @property
    def path(self) -> str: ...
    def elements(self) -> list[tuple[str, ElementType]]:
        """(name, type) of every element at this version, sorted by name."""
    def raster_info(self, name: str) -> dict[str, Any]:
        """{"kind": "image"|"labels", "dims": [...], "dtype": "uint16", "levels": [{"path": "s0", "shape": [...],
        "chunks": [...]}, ...], "channel_names": [...] | None, "channel_labels": [str | int, ...] | None (as stored),
        "transformations": [ngff dicts]}"""
    def read_raster(
        self, name: str, level: int = 0, region: list[tuple[int, int]] | None = None
    ) -> np.ndarray:
        """Pixels of one pyramid level, optionally a region (one [start, stop) per axis)."""
    def vector_info(self, name: str) -> dict[str, Any]:
        """{"type": "points"|"shapes", "n_rows": int, "columns": [[name, arrow type], ...], "axes": [...],
        "geometry_types": [...], "feature_key": str | None, "instance_key": str | None, "files": int,
        "transformations": [ngff dicts]}"""
    def read_table(self, name: str) -> dict[str, Any]:
        """The table exactly as of this version (a TableDict, see above)."""
    def table_info(self, name: str) -> dict[str, Any]:
        """{"n_obs", "n_vars", "obs_index", "columns": [[name, encoding], ...], "x", "layers", "obsm", "regions",
        "region_key", "instance_key"}"""
    def metadata(self, name: str) -> dict[str, dict[str, Any]]:
        """The element's committed zarr.json documents at this version, by path relative to the element ("" is the
        element's own group; e.g. "obs", "obs/cell_type" for a table)."""
    def points_parts(self, name: str) -> list[str]:
        """The part files of a points element in the engine's read order, as keys relative to the element
        ("points.parquet/part.0.parquet", ...; "points.parquet" when the data is one file). InvalidElement for
        other element types."""
    def read_element_file(self, name: str, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of one object of the element at this version (`rel` relative to the element, e.g.
        "shapes.parquet"), whole or only [start, end) (clipped to its end). Relocation-safe: read wherever this
        version's data lives now, again if a concurrent overwrite or delete moves it meanwhile. InvalidElement for a
        key with empty, "." or ".." segments or end < start; StorageError when the element has no such object."""
    def element_file_size(self, name: str, rel: str) -> int:
        """The size in bytes of one object of the element at this version (see read_element_file)."""

class LockGuard:
    """One acquired user lock (not reentrant: zarrtx.Store.lock adds per-thread reentrancy on top). Held until
    release() or until the owning process dies (the kernel releases it)."""

    def release(self) -> None: ...
    @property
    def mode(self) -> Literal["r", "w"]: ...
    @property
    def held(self) -> bool: ...

class Store:
    """A handle on one store (opening is cheap; every call sees the newest committed state)."""

    def __init__(
        self,
        path: str,
        *,
        create: bool = True,
        read_only: bool = False,
        single_writer: bool = False,
        durable: bool = True,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    def version(self) -> int:
        """The newest committed version (fresh on every call)."""
    def elements(self) -> list[tuple[str, ElementType]]:
        """(name, type) of every element at the newest version, sorted by name (fresh on every call)."""
    def history(self) -> list[dict[str, Any]]:
        """Oldest first: {"version": int, "txn": str, "timestamp_ms": int, "writer": {"host": str, "pid": int,
        "label": str | None}, "summary": [str, ...]}"""
    def snapshot(self, version: int | None = None) -> Snapshot: ...
    def delete(self, name: str) -> int:
        """Deletes an element; returns the new version. ElementNotFound if absent."""
    def add_raster(
        self,
        name: str,
        kind: Literal["image", "labels"],
        dims: list[str],
        *,
        data: np.ndarray | None = None,
        shape: list[int] | None = None,
        dtype: str | None = None,
        blocks: Iterable[tuple[list[int], np.ndarray]] | None = None,
        channel_names: list[str] | None = None,
        transformations: list[dict[str, Any]] | None = None,
        scale_factors: list[int] | None = None,
        levels: list[np.ndarray] | None = None,
        chunks: list[int] | None = None,
        shards: list[int] | None = None,
        compression: str = "zstd",
        overwrite: bool = False,
    ) -> int:
        """Adds an image or labels element; returns the new version. Give either `data` (the whole
        full-resolution array) or `shape` + `dtype` + `blocks` (an iterable of (offset, block) pairs, blocks of
        any shape, non-overlapping, pulled one by one with the GIL held only while pulling). Pyramid: either
        `scale_factors` (computed levels) or `levels` (the lower levels, given, in memory). Dtype names are
        Zarr v3 names ("uint16", ...)."""
    def add_points(
        self,
        name: str,
        batches: list[pa.RecordBatch],
        *,
        feature_key: str | None = None,
        instance_key: str | None = None,
        transformations: list[dict[str, Any]] | None = None,
        overwrite: bool = False,
    ) -> int:
        """Columns x, y (optionally z) plus any others; returns the new version."""
    def add_shapes(
        self,
        name: str,
        *,
        geometry_wkb: list[bytes],
        radius: np.ndarray | None = None,
        columns: pa.RecordBatch | None = None,
        index: list[int] | list[str] | None = None,
        transformations: list[dict[str, Any]] | None = None,
        overwrite: bool = False,
    ) -> int:
        """Geometries as WKB (2-D points with `radius` for circles; polygons / multipolygons otherwise)."""
    def add_table(self, name: str, table: dict[str, Any], *, overwrite: bool = False) -> int: ...
    def append(self, name: str, rows: dict[str, Any]) -> int:
        """Appends rows (a TableDict with the table's columns) under the table's lock; creates the table when it
        is missing. Returns the new version."""
    def lock(
        self, name: str | None = None, mode: Literal["r", "w"] = "w", timeout: float | None = None
    ) -> LockGuard:
        """Acquires a user lock (readers-writer; name None = the whole store; a named lock also holds the store
        lock in "r" mode, so a store-wide "w" excludes every named lock). Blocks with the GIL released;
        LockTimeout after `timeout` seconds (None = wait forever, 0 = try once)."""
    def verify(self) -> dict[str, Any]:
        """{"version": int, "published_version": int | None, "problems": [str], "leftovers": [str],
        "retained": [str]}"""
    def gc(self, grace_seconds: float = 3600.0) -> dict[str, Any]:
        """{"removed": [str], "bytes_freed": int, "published_version": int}"""
    # Write plans: one raster element written part by part by many processes or nodes.
    def create_plan(
        self,
        name: str,
        kind: Literal["image", "labels"],
        dims: list[str],
        *,
        shape: list[int],
        dtype: str,
        parts: int | list[list[tuple[int, int]]],
        channel_names: list[str] | None = None,
        transformations: list[dict[str, Any]] | None = None,
        scale_factors: list[int] | None = None,
        chunks: list[int] | None = None,
        shards: list[int] | None = None,
        compression: str = "zstd",
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """{"plan_id", "name", "type", "dims", "shape", "dtype", "write_unit", "parts": [[(start, stop), ...], ...],
        "created_version", "overwrite"}. parts: a count (split on write-unit boundaries) or explicit aligned,
        disjoint regions (overlaps raise InvalidElement). The element stays invisible until commit_plan; with
        overwrite, the commit replaces the element of the same name atomically."""
    def lease_ms(self) -> int:
        """The lease timeout in milliseconds (how long a dead writer's part stays claimed)."""
        ...
    def write_part(
        self,
        plan_id: str,
        part: int,
        *,
        data: np.ndarray | None = None,
        blocks: Iterable[tuple[list[int], np.ndarray]] | None = None,
        memory_limit: int | None = None,
    ) -> dict[str, Any]:
        """Writes one part: `data` covers exactly the part's region, or `blocks` are (absolute offset, block) pairs
        inside it. {"part", "written": False when it was already done (nothing rewritten), "chunks", "bytes",
        "elapsed_ms"}. A concurrent writer of the same part raises Conflict."""
    def plan_status(self, plan_id: str) -> dict[str, Any]:
        """{"plan": {...}, "done": [int], "started": [int], "missing": [int], "committed": int | None}"""
    def commit_plan(self, plan_id: str) -> int:
        """Publishes the element once every part is done (Conflict naming the missing parts otherwise); computes
        the pyramid; idempotent. Returns the version."""

class Hierarchy:
    """A plain Zarr v3 hierarchy whose arrays are written by array plans."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        read_only: bool = False,
        single_writer: bool = False,
        durable: bool = True,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    def node_metadata(self, path: str) -> dict[str, Any] | None: ...
    def create_plan(
        self,
        path: str,
        *,
        parts: int | list[list[tuple[int, int]]],
        fill: bool = False,
        shape: list[int] | None = None,
        dtype: str | None = None,
        chunks: list[int] | None = None,
        shards: list[int] | None = None,
        compression: str = "zstd",
        fill_value: Any = None,
        dimension_names: list[str] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...
    def lease_ms(self) -> int:
        """The lease timeout in milliseconds (how long a dead writer's part stays claimed)."""
        ...
    def write_part(
        self,
        plan_id: str,
        part: int,
        *,
        data: np.ndarray | None = None,
        blocks: Iterable[tuple[Sequence[int], np.ndarray]] | None = None,
        memory_limit: int | None = None,
    ) -> dict[str, Any]: ...
    def plan_status(self, plan_id: str) -> dict[str, Any]: ...
    def list_plans(self) -> list[dict[str, Any]]: ...
    def commit_plan(self, plan_id: str) -> dict[str, Any]: ...
    def gc(self, grace_seconds: float) -> list[tuple[str, int]]: ...
