"""Shapes: spatialdata's ``GeoDataFrame`` <-> ``zarrtx._core`` calls.

Writing: the element is validated with ``ShapesModel``; geometries go as WKB (shapely), circles with their
``radius`` column, the other columns as one Arrow record batch, the index as integers or strings (a default
``RangeIndex`` is left to the engine, so that it reads back as a ``RangeIndex`` as it does from spatialdata's own
writer), transformations as NGFF dicts.

Reading: what spatialdata's own shapes reader (``spatialdata._io.io_shapes._read_shapes``) does for the GeoParquet
formats (0.2, 0.3; the only ones a Zarr v3 store holds), on bytes read through the engine instead of a directory:
``geopandas.read_parquet`` on the GeoParquet file's bytes (``Snapshot.read_element_file``: relocation-safe, pinned to
the snapshot's version, on any storage medium), then the transformations from the element's committed
``coordinateTransformations`` (``Snapshot.metadata``), parsed and attached with spatialdata's own helpers.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidElement

__all__ = ["add_shapes_args", "read_shapes"]

RADIUS = "radius"
DATA = "shapes.parquet"
GEOPARQUET_FORMATS = ("0.2", "0.3")


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


def read_shapes(snapshot: Any, name: str, info: dict[str, Any] | None = None) -> Any:
    """The ``GeoDataFrame`` of shapes element ``name`` at the snapshot's version, as spatialdata returns it."""
    import io

    from geopandas import read_parquet
    from spatialdata._io._utils import _get_transformations_from_ngff_dict
    from spatialdata.transformations._utils import _set_transformations

    attrs = (snapshot.metadata(name).get("") or {}).get("attributes") or {}
    version = (attrs.get("spatialdata_attrs") or {}).get("version")
    if version not in GEOPARQUET_FORMATS:
        raise InvalidElement(
            f"shapes element '{name}' has format version {version!r}; zarrtx reads the GeoParquet shapes formats "
            f"({', '.join(GEOPARQUET_FORMATS)}) that spatialdata writes into Zarr v3 stores; rewrite it with "
            "spatialdata 0.8"
        )
    geo_df = read_parquet(io.BytesIO(snapshot.read_element_file(name, DATA)))
    _set_transformations(geo_df, _get_transformations_from_ngff_dict(attrs["coordinateTransformations"]))
    return geo_df
