"""Points: spatialdata's dask (or pandas) DataFrames <-> ``zarrtx._core`` calls.

Writing: the element is validated with ``PointsModel``; its partitions are converted one at a time to Arrow record
batches (categoricals with known categories, like spatialdata's writer; the integer index as dask's
``__null_dask_index__`` column), with ``feature_key`` / ``instance_key`` from ``attrs["spatialdata_attrs"]`` and the
transformations as NGFF dicts.

Reading: a lazy dask DataFrame with one partition per stored part file (``dask.dataframe.from_map``), in the
engine's part order (``Snapshot.points_parts``). Each partition reads its part's bytes through the engine
(``Snapshot.read_element_file``: relocation-safe, pinned to the snapshot's version, on any storage medium) and
decodes them with pandas/pyarrow, shaped like ``dask.dataframe.read_parquet`` shapes them in spatialdata's points
reader (unnamed integer index, unknown categories, ``attrs`` with ``transform`` and ``spatialdata_attrs``). Building
the graph reads only the first part's Parquet footer (by byte ranges), for the partitions' metadata.
"""

from __future__ import annotations

import io
from typing import Any

from .errors import InvalidElement

__all__ = ["add_points_args", "read_points", "PointsPart"]

DASK_INDEX = "__null_dask_index__"


def _to_dask(name: str, element: Any) -> Any:
    """A dask DataFrame for a dask or pandas points element (attrs kept)."""
    import dask.dataframe as dd
    import pandas as pd

    if isinstance(element, dd.DataFrame):
        return element
    if isinstance(element, pd.DataFrame):
        attrs = dict(element.attrs)
        if "transform" not in attrs:
            raise InvalidElement(
                f"'{name}' is a pandas DataFrame without spatialdata metadata (attrs['transform']); parse it with "
                "spatialdata.models.PointsModel.parse(df, coordinates={'x': ..., 'y': ...}, feature_key=..., "
                "instance_key=...) first"
            )
        ddf = dd.from_pandas(element, npartitions=1)
        ddf.attrs.update(attrs)
        return ddf
    raise InvalidElement(
        f"'{name}' is a {type(element).__name__}, not a points element; parse it with "
        "spatialdata.models.PointsModel.parse first"
    )


def _validate(name: str, points: Any) -> None:
    from spatialdata.models import PointsModel

    try:
        PointsModel.validate(points)  # (it only warns about a missing feature_key column; the engine refuses it)
    except Exception as e:
        raise InvalidElement(
            f"'{name}' fails spatialdata's PointsModel validation ({type(e).__name__}: {e}); parse it with "
            "spatialdata.models.PointsModel.parse first"
        ) from e


def _partition_batch(name: str, pdf: Any, keep_index: bool) -> Any:
    import pandas as pd
    import pyarrow as pa

    df = pdf
    if keep_index:
        idx = df.index
        df = df.reset_index(drop=True)
        df[DASK_INDEX] = pd.Series(idx.to_numpy(dtype="int64"), index=df.index)
    for col in df.columns:
        if not isinstance(col, str):
            raise InvalidElement(f"'{name}': column name {col!r} is not a string; rename the column")
    try:
        return pa.RecordBatch.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise InvalidElement(f"'{name}': a column cannot be converted to Arrow ({e}); cast it to a plain type") from e


def add_points_args(name: str, element: Any) -> tuple[list[Any], dict[str, Any]]:
    """Validates a points element and returns ``(batches, kwargs)`` for ``_core.Store.add_points(name, batches,
    **kwargs)``. Partitions are computed one at a time."""
    import pandas as pd
    import pyarrow as pa
    from spatialdata.models import get_axes_names

    from ._transform import get_transformations, to_ngff

    points = _to_dask(name, element)
    _validate(name, points)
    attrs = dict(points.attrs)
    sd_attrs = dict(attrs.get("spatialdata_attrs") or {})
    axes = [str(a) for a in get_axes_names(points)]
    transformations = to_ngff(get_transformations(points), axes)

    # Known categories for every categorical column, as spatialdata's writer does (partitions would otherwise each
    # carry their own categories). On a shallow copy: the caller's DataFrame is left as it was.
    points = points.copy()
    for col in points.columns:
        c = points[col]
        if isinstance(c.dtype, pd.CategoricalDtype) and not c.cat.known:
            points[col] = c.cat.as_known()

    keep_index = pd.api.types.is_integer_dtype(points.index.dtype)
    batches: list[Any] = []
    schema = None
    for i in range(points.npartitions):
        pdf = points.get_partition(i).compute()
        b = _partition_batch(name, pdf, keep_index)
        if schema is None:
            schema = b.schema
        elif not b.schema.equals(schema):
            try:
                b = pa.RecordBatch.from_arrays(
                    [col.cast(f.type) for col, f in zip(b.columns, schema, strict=True)], schema=schema
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as e:
                raise InvalidElement(
                    f"'{name}': partition {i} has columns {b.schema} but partition 0 has {schema}; give every "
                    "partition the same column types"
                ) from e
        batches.append(b)
    kwargs: dict[str, Any] = {"transformations": transformations}
    if sd_attrs.get("feature_key") is not None:
        kwargs["feature_key"] = str(sd_attrs["feature_key"])
    if sd_attrs.get("instance_key") is not None:
        kwargs["instance_key"] = str(sd_attrs["instance_key"])
    return batches, kwargs


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


class ElementFile(io.RawIOBase):
    """One object of an element at a snapshot's version, as a read-only, seekable binary file whose reads are
    byte-range reads through the engine (so pyarrow can read a Parquet footer without reading the file)."""

    def __init__(self, snapshot: Any, name: str, rel: str) -> None:
        super().__init__()
        self._snapshot = snapshot
        self._name = name
        self._rel = rel
        self._size = int(snapshot.element_file_size(name, rel))
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._pos + len(view), self._size)
        if end <= self._pos:
            return 0
        data = self._snapshot.read_element_file(self._name, self._rel, self._pos, end)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _shape_partition(df: Any) -> Any:
    """What dask's read_parquet does to a part: the dask index column becomes an unnamed index."""
    if df.index.name == DASK_INDEX:
        df.index.name = None
    elif DASK_INDEX in df.columns:
        df = df.set_index(DASK_INDEX)
        df.index.name = None
    return df


class PointsPart:
    """Reads one part file of a points element pinned at one version (picklable: plain data only)."""

    def __init__(self, path: str, version: int, name: str) -> None:
        self.path = path
        self.version = int(version)
        self.name = name

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("zarrtx.PointsPart", self.path, self.version, self.name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (PointsPart, (self.path, self.version, self.name))

    def __call__(self, part: str) -> Any:
        import pandas as pd

        from . import _snapshots

        data = _snapshots.get(self.path, self.version).read_element_file(self.name, part)
        return _shape_partition(pd.read_parquet(io.BytesIO(data)))


def _meta(snapshot: Any, name: str, first_part: str) -> Any:
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    schema = pq.read_schema(ElementFile(snapshot, name, first_part))
    meta = _shape_partition(schema.empty_table().to_pandas())
    return dd.utils.clear_known_categories(meta)


def read_points(snapshot: Any, path: str, version: int, name: str, info: dict[str, Any]) -> Any:
    """The lazy dask DataFrame of points element ``name`` at the snapshot's version, as spatialdata's reader
    returns it."""
    import dask.dataframe as dd

    from ._transform import from_ngff, set_transformations

    parts = list(snapshot.points_parts(name))
    if not parts:
        raise InvalidElement(f"points element '{name}' has no part files")
    meta = _meta(snapshot, name, parts[0])
    points = dd.from_map(
        PointsPart(path, version, name),
        parts,
        meta=meta,
        divisions=[None] * (len(parts) + 1),
        label=f"zarrtx-points-{name}",
        enforce_metadata=False,
    )
    set_transformations(points, from_ngff(info.get("transformations") or []))
    sd_attrs: dict[str, Any] = {}
    if info.get("feature_key") is not None:
        sd_attrs["feature_key"] = info["feature_key"]
    if info.get("instance_key") is not None:
        sd_attrs["instance_key"] = info["instance_key"]
    if sd_attrs:
        points.attrs["spatialdata_attrs"] = sd_attrs
    return points
