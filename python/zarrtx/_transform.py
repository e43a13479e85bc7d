"""spatialdata coordinate transformations <-> the NGFF dicts that cross the ``zarrtx._core`` boundary.

The dicts are exactly what spatialdata 0.8 stores in ``coordinateTransformations`` (see
``spatialdata._io._utils.overwrite_coordinate_transformations_raster`` / ``..._non_raster``): one dict per target
coordinate system, each with ``type``, its parameters, and ``input`` / ``output`` coordinate systems whose
``output["name"]`` is the target system. Both directions use spatialdata's own code, so what zarrtx stores and reads
back is what spatialdata itself would have written and read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["to_ngff", "from_ngff", "get_transformations", "set_transformations"]


def to_ngff(transformations: Mapping[str, Any], axes: Sequence[str]) -> list[dict[str, Any]]:
    """Encodes ``{coordinate system: spatialdata BaseTransformation}`` for an element with intrinsic ``axes``
    (``("c", "y", "x")`` for a 2-D image, ``("x", "y")`` for points/shapes) as the list of NGFF dicts spatialdata
    writes. An empty mapping gives ``[]`` (the engine then stores identity into ``global``)."""
    from spatialdata.models._utils import _validate_mapping_to_coordinate_system_type
    from spatialdata.transformations.transformations import _get_current_output_axes

    _validate_mapping_to_coordinate_system_type(dict(transformations))
    input_axes = tuple(axes)
    out: list[dict[str, Any]] = []
    for target, t in transformations.items():
        output_axes = _get_current_output_axes(transformation=t, input_axes=input_axes)
        out.append(
            t.to_ngff(
                input_axes=input_axes,
                output_axes=tuple(output_axes),
                output_coordinate_system_name=target,
            ).to_dict()
        )
    return out


def from_ngff(dicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Decodes a list of NGFF dicts (as stored or as returned by the engine) into ``{coordinate system:
    BaseTransformation}`` with spatialdata's own reader. An empty list gives ``{"global": Identity()}``, which is
    what the engine means by it."""
    from spatialdata._io._utils import _get_transformations_from_ngff_dict

    if not dicts:
        from spatialdata.transformations import Identity

        return {"global": Identity()}
    return dict(_get_transformations_from_ngff_dict([dict(d) for d in dicts]))


def get_transformations(element: Any) -> dict[str, Any]:
    """All transformations of a spatialdata element (``get_transformation(el, get_all=True)``); for a DataTree,
    those of its full-resolution level, which is what spatialdata stores."""
    from spatialdata.transformations import get_transformation

    t = get_transformation(element, get_all=True)
    if not isinstance(t, dict):  # pragma: no cover - get_all=True always returns a dict
        raise TypeError(f"expected a dict of transformations, got {type(t).__name__}")
    return dict(t)


def set_transformations(element: Any, transformations: Mapping[str, Any]) -> None:
    """Sets ``transformations`` on an element in memory, the way spatialdata's readers do."""
    from spatialdata.transformations._utils import _set_transformations

    _set_transformations(element, dict(transformations))
