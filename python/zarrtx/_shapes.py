"""Shapes: spatialdata's ``GeoDataFrame`` <-> ``zarrtx._core`` calls.

Writing: the element is validated with ``ShapesModel``; geometries go as WKB (shapely), circles with their
``radius`` column, the other columns as one Arrow record batch, the index as integers or strings (a default
``RangeIndex`` is left to the engine, so that it reads back as a ``RangeIndex`` as it does from spatialdata's own
writer), transformations as NGFF dicts.

Reading: inside ``Snapshot.read_with`` (relocation-safe) with spatialdata's own shapes reader
(``spatialdata._io.io_shapes._read_shapes``), which reads the GeoParquet file and the element's transformations.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidElement

__all__ = ["add_shapes_args", "read_shapes"]

RADIUS = "radius"


def _validate(name: str, element: Any) -> None:
    from geopandas import GeoDataFrame
    from spatialdata.models import ShapesModel

    if not isinstance(element, GeoDataFrame):
        raise InvalidElement(
            f"'{name}' is a {type(element).__name__}, not a shapes element; parse it with "
            "spatialdata.models.ShapesModel.parse first"
        )
    try:
        ShapesModel.validate(element)
    except Exception as e:
        raise InvalidElement(
            f"'{name}' fails spatialdata's ShapesModel validation ({type(e).__name__}: {e}); parse it with "
            "spatialdata.models.ShapesModel.parse first"
        ) from e


def _index(name: str, index: Any) -> list[int] | list[str] | None:
    import pandas as pd

    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return None
    if pd.api.types.is_integer_dtype(index.dtype):
        return [int(v) for v in index]
    if pd.api.types.is_string_dtype(index.dtype) or pd.api.types.is_object_dtype(index.dtype):
        values = list(index)
        if all(isinstance(v, str) for v in values):
            return values
    raise InvalidElement(
        f"'{name}' has an index of dtype {index.dtype}; shapes indices must be integers or strings "
        "(e.g. gdf.index = gdf.index.astype(str), or gdf.reset_index(drop=True))"
    )


def add_shapes_args(name: str, element: Any) -> dict[str, Any]:
    """Validates a shapes element and returns the kwargs for ``_core.Store.add_shapes(name, **kwargs)``."""
    import numpy as np
    import pyarrow as pa
    import shapely
    from spatialdata.models import get_axes_names

    from ._transform import get_transformations, to_ngff

    _validate(name, element)
    axes = [str(a) for a in get_axes_names(element)]
    geometry = element.geometry
    wkb = shapely.to_wkb(np.asarray(geometry.values), output_dimension=len(axes))
    kwargs: dict[str, Any] = {
        "geometry_wkb": [bytes(b) for b in wkb],
        "transformations": to_ngff(get_transformations(element), axes),
    }
    geom_col = geometry.name
    types = set(shapely.get_type_id(np.asarray(geometry.values)).tolist())
    is_circles = types == {int(shapely.GeometryType.POINT)}
    if is_circles and RADIUS in element.columns:
        kwargs["radius"] = np.ascontiguousarray(element[RADIUS].to_numpy(dtype="float64"))
    extra = [c for c in element.columns if c != geom_col and not (is_circles and c == RADIUS)]
    if extra:
        for c in extra:
            if not isinstance(c, str):
                raise InvalidElement(f"'{name}': column name {c!r} is not a string; rename the column")
        import pandas as pd

        df = pd.DataFrame(element[extra]).reset_index(drop=True)
        try:
            kwargs["columns"] = pa.RecordBatch.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise InvalidElement(
                f"'{name}': a column cannot be converted to Arrow ({e}); cast it to a plain type"
            ) from e
    index = _index(name, element.index)
    if index is not None:
        kwargs["index"] = index
    return kwargs


def _read_dir(element_dir: str) -> Any:
    """spatialdata's own shapes reader on one element directory."""
    from spatialdata._io.io_shapes import _read_shapes

    return _read_shapes(element_dir)


def read_shapes(snapshot: Any, name: str, info: dict[str, Any] | None = None) -> Any:
    """The ``GeoDataFrame`` of shapes element ``name`` at the snapshot's version, as spatialdata returns it."""
    return snapshot.read_with(name, _read_dir)
