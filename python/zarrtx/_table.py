"""Tables: ``anndata.AnnData`` <-> the engine's table dict (``TableDict``, described in ``zarrtx/_core.pyi``).

Writing: the table is validated with spatialdata's ``TableModel`` (when it carries ``uns["spatialdata_attrs"]``),
obs/var become Arrow record batches with their index as a named column (``"_index"`` for an unnamed index, as
anndata stores it), categoricals become Arrow dictionaries, pandas nullable integers/booleans/strings become Arrow
nulls, sparse matrices become CSR dicts, ``uns`` becomes plain values and ``uns["spatialdata_attrs"]`` becomes the
``annotation``.

Reading: the reverse, building every column and value exactly as anndata's zarr reader builds it from the encoding
the engine stores (so ``Store.read`` returns what ``spatialdata.read_zarr`` returns for the same table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidElement

__all__ = ["to_table_dict", "from_table_dict", "annotation_of", "read_encodings"]

ATTRS_KEY = "spatialdata_attrs"
_NUMERIC = {"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"}


# ----------------------------------------------------------------------------------------------------------------
# AnnData -> TableDict
# ----------------------------------------------------------------------------------------------------------------


def _validate(name: str, adata: Any) -> Any:
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise InvalidElement(
            f"'{name}' is a {type(adata).__name__}, not a table; build an anndata.AnnData and parse it with "
            "spatialdata.models.TableModel.parse(adata, region=..., region_key=..., instance_key=...) first"
        )
    if adata.isbacked:
        adata = adata.to_memory()
    from spatialdata.models import TableModel

    try:
        TableModel.validate(adata)
    except Exception as e:
        raise InvalidElement(
            f"table '{name}' fails spatialdata's TableModel validation ({type(e).__name__}: {e}); parse it with "
            "spatialdata.models.TableModel.parse(adata, region=..., region_key=..., instance_key=...) first"
        ) from e
    if adata.raw is not None:
        raise InvalidElement(
            f"table '{name}' has .raw, which zarrtx does not store; move it into a layer "
            "(adata.layers['raw'] = adata.raw.X, if the variables match) and set adata.raw = None"
        )
    for what in ("obsp", "varp"):
        keys = list(getattr(adata, what).keys())
        if keys:
            raise InvalidElement(
                f"table '{name}' has {what} {keys}, which zarrtx does not store yet; remove them "
                f"(del adata.{what}[key]) or keep them in a separate file"
            )
    return adata


def annotation_of(adata: Any) -> dict[str, Any] | None:
    """The engine's ``annotation`` dict from ``uns["spatialdata_attrs"]`` (None when the table annotates
    nothing)."""
    attrs = adata.uns.get(ATTRS_KEY)
    if not attrs:
        return None
    region = attrs.get("region")
    region_key = attrs.get("region_key")
    instance_key = attrs.get("instance_key")
    if region is None or region_key is None or instance_key is None:
        return None
    if isinstance(region, str):
        regions = [region]
    else:
        regions = [str(r) for r in np.asarray(region, dtype=object).ravel().tolist()]
    return {"region": regions, "region_key": str(region_key), "instance_key": str(instance_key)}


def _string_values(name: str, what: str, col: str, s: Any) -> list[Any]:
    import pandas as pd

    values = s.tolist()
    out = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
        elif isinstance(v, str):
            out.append(v)
        else:
            raise InvalidElement(
                f"table '{name}': {what} column '{col}' holds a {type(v).__name__} ({v!r}) among strings; give it "
                f"one type (e.g. adata.{what}['{col}'] = adata.{what}['{col}'].astype(str))"
            )
    return out


def _column_to_arrow(name: str, what: str, col: str, s: Any) -> Any:
    import pandas as pd
    import pyarrow as pa

    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories
        if not all(isinstance(c, str) for c in cats):
            raise InvalidElement(
                f"table '{name}': {what} column '{col}' is categorical with non-string categories "
                f"({cats.dtype}); zarrtx stores string categories: "
                f"adata.{what}['{col}'] = adata.{what}['{col}'].astype(str).astype('category')"
            )
        codes = np.asarray(s.cat.codes.to_numpy())
        indices = pa.array(codes, mask=codes < 0)
        dictionary = pa.array(list(cats), type=pa.string())
        return pa.DictionaryArray.from_arrays(indices, dictionary, ordered=bool(dtype.ordered))
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        if dtype.name not in _NUMERIC:
            raise InvalidElement(
                f"table '{name}': {what} column '{col}' has dtype {dtype.name}; cast it to one of "
                f"{sorted(_NUMERIC)} (e.g. .astype('float32'))"
            )
        return pa.array(np.ascontiguousarray(s.to_numpy()))
    if pd.api.types.is_string_dtype(dtype) or dtype == object:
        return pa.array(_string_values(name, what, col, s), type=pa.string())
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and getattr(dtype, "kind", "?") in ("b", "i", "u", "f"):
        # pandas' nullable Int*/UInt*/boolean/Float* (and numeric pyarrow-backed) columns: NA becomes an Arrow null
        arr = pa.array(s.array, from_pandas=True)
        if not (pa.types.is_integer(arr.type) or pa.types.is_boolean(arr.type) or arr.type in (pa.float32(), pa.float64())):
            raise InvalidElement(
                f"table '{name}': {what} column '{col}' has dtype {dtype}; cast it to a 8-64 bit integer, float32, "
                "float64 or boolean dtype"
            )
        return arr
    raise InvalidElement(
        f"table '{name}': {what} column '{col}' has dtype {dtype}, which zarrtx does not store; use integers, "
        "floats, booleans (nullable ones too), strings or categoricals of strings (e.g. convert datetimes with "
        ".astype(str))"
    )


def _encoding_hint(dtype: Any) -> dict[bytes, bytes] | None:
    """The anndata encoding anndata itself would pick for a pandas dtype, as Arrow field metadata
    (``anndata:encoding`` / ``anndata:na-value``): pandas 3's ``str`` -> nullable-string-array with na-value NaN,
    ``string`` -> nullable-string-array with NA, object strings -> string-array, masked Int*/boolean ->
    nullable-integer / nullable-boolean even without missing values. An engine that honours the hint stores the
    column the way anndata does, so it reads back with the same dtype; one that does not ignores it."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return None
    if isinstance(dtype, pd.StringDtype):
        na = "NaN" if dtype.na_value is not pd.NA else "NA"
        return {b"anndata:encoding": b"nullable-string-array", b"anndata:na-value": na.encode()}
    if dtype == object:
        return {b"anndata:encoding": b"string-array"}
    if isinstance(dtype, pd.BooleanDtype):
        return {b"anndata:encoding": b"nullable-boolean"}
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and getattr(dtype, "kind", "?") in ("i", "u"):
        return {b"anndata:encoding": b"nullable-integer"}
    return None


def _frame_to_batch(name: str, what: str, df: Any) -> tuple[Any, str]:
    """An obs/var DataFrame as a record batch with its index as the first column; returns (batch, index name)."""
    import pyarrow as pa

    index_name = df.index.name if df.index.name is not None else "_index"
    if not isinstance(index_name, str):
        raise InvalidElement(f"table '{name}': the {what} index name {index_name!r} is not a string; rename it")
    columns = list(df.columns)
    for c in columns:
        if not isinstance(c, str):
            raise InvalidElement(f"table '{name}': {what} column name {c!r} is not a string; rename the column")
    if index_name in columns:
        raise InvalidElement(
            f"table '{name}': the {what} index is named '{index_name}' like one of its columns; rename the index "
            f"(adata.{what}.index.name = None)"
        )
    arrays = [pa.array([str(v) for v in df.index.tolist()], type=pa.string())]
    fields = [pa.field(index_name, pa.string(), metadata=_encoding_hint(df.index.dtype))]
    for c in columns:
        arr = _column_to_arrow(name, what, c, df[c])
        arrays.append(arr)
        fields.append(pa.field(c, arr.type, metadata=_encoding_hint(df[c].dtype)))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), index_name


def _matrix(name: str, what: str, m: Any, *, dense_only: bool = False) -> Any:
    """A matrix for the engine: a 2-D numpy array or a CSR dict."""
    import scipy.sparse as sp

    if m is None:
        return None
    if hasattr(m, "to_memory"):  # anndata's backed sparse datasets
        m = m.to_memory()
    try:
        import dask.array as da

        if isinstance(m, da.Array):
            m = m.compute()
    except ImportError:  # pragma: no cover
        pass
    if sp.issparse(m):
        if dense_only:
            raise InvalidElement(
                f"table '{name}': {what} is sparse; zarrtx stores dense arrays there: convert with .toarray()"
            )
        csr = sp.csr_matrix(m)
        data = np.ascontiguousarray(csr.data)
        if data.dtype.name not in _NUMERIC:
            raise InvalidElement(f"table '{name}': {what} has dtype {data.dtype}; cast it to float32 or float64")
        indptr = np.ascontiguousarray(csr.indptr)
        indices = np.ascontiguousarray(csr.indices)
        if indptr.dtype not in (np.int32, np.int64):
            indptr = indptr.astype(np.int64)
        if indices.dtype not in (np.int32, np.int64):
            indices = indices.astype(np.int64)
        return {
            "format": "csr",
            "data": data,
            "indices": indices,
            "indptr": indptr,
            "shape": (int(csr.shape[0]), int(csr.shape[1])),
        }
    if hasattr(m, "columns") and hasattr(m, "index"):
        raise InvalidElement(
            f"table '{name}': {what} is a DataFrame; zarrtx stores numeric 2-D arrays there: convert with "
            ".to_numpy()"
        )
    arr = np.ascontiguousarray(np.asarray(m))
    if arr.ndim != 2:
        raise InvalidElement(f"table '{name}': {what} has {arr.ndim} dimensions; it must be 2-D (reshape it)")
    if arr.dtype.name not in _NUMERIC:
        raise InvalidElement(
            f"table '{name}': {what} has dtype {arr.dtype}; cast it to one of {sorted(_NUMERIC)}"
        )
    return arr


def _uns_value(name: str, path: str, v: Any) -> Any:
    """A uns value as the engine takes it: str | int | float | bool | list[str] | np.ndarray | dict."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise InvalidElement(f"table '{name}': uns key {k!r} under '{path}' is not a string; rename it")
            out[k] = _uns_value(name, f"{path}/{k}", x)
        return out
    if isinstance(v, (list, tuple)) and v and any(isinstance(x, str) for x in v):
        if all(isinstance(x, str) for x in v):
            return list(v)
        raise InvalidElement(
            f"table '{name}': uns['{path}'] mixes strings and other values; zarrtx stores lists of strings or "
            "numeric arrays in uns (convert the entries to one type)"
        )
    if isinstance(v, (list, tuple, np.ndarray)):
        arr = np.asarray(v)
        if arr.dtype.kind in "UT" or (arr.dtype == object and arr.size and all(isinstance(x, str) for x in arr.ravel())):
            if arr.ndim == 1:
                return [str(x) for x in arr.tolist()]
            raise InvalidElement(
                f"table '{name}': uns['{path}'] is a {arr.ndim}-D array of strings; zarrtx stores 1-D string lists "
                "in uns (flatten it)"
            )
        if arr.dtype.name in _NUMERIC:
            if arr.ndim == 0:
                return arr.item()
            return np.ascontiguousarray(arr)
        if isinstance(v, (list, tuple)) and not v:
            return np.zeros((0,), dtype=np.float64)
    raise InvalidElement(
        f"table '{name}': uns['{path}'] is a {type(v).__name__}, which zarrtx does not store in uns; use strings, "
        "numbers, booleans, lists of strings, numeric numpy arrays or dicts of those (or drop the entry)"
    )


def to_table_dict(name: str, adata: Any) -> dict[str, Any]:
    """Validates an AnnData table and converts it into the engine's table dict."""
    adata = _validate(name, adata)
    obs, obs_index = _frame_to_batch(name, "obs", adata.obs)
    var, var_index = _frame_to_batch(name, "var", adata.var)
    uns = {k: _uns_value(name, k, v) for k, v in adata.uns.items() if k != ATTRS_KEY}
    for k in uns:
        if not isinstance(k, str):  # pragma: no cover - anndata keys are strings
            raise InvalidElement(f"table '{name}': uns key {k!r} is not a string")
    return {
        "obs": obs,
        "obs_index": obs_index,
        "var": var,
        "var_index": var_index,
        "X": _matrix(name, "X", adata.X),
        # anndata >= 0.13 lists X as layers[None]: it is stored as X, not as a layer
        "layers": {str(k): _matrix(name, f"layers['{k}']", v) for k, v in adata.layers.items() if k is not None},
        "obsm": {str(k): _matrix(name, f"obsm['{k}']", v, dense_only=True) for k, v in adata.obsm.items()},
        "varm": {str(k): _matrix(name, f"varm['{k}']", v, dense_only=True) for k, v in adata.varm.items()},
        "uns": uns,
        "annotation": annotation_of(adata),
    }


# ----------------------------------------------------------------------------------------------------------------
# TableDict -> AnnData (as anndata's zarr reader builds it)
# ----------------------------------------------------------------------------------------------------------------


def _strings(values: list[Any]) -> np.ndarray:
    """Strings as zarr 3 returns them to anndata (numpy StringDType)."""
    return np.array(["" if v is None else v for v in values], dtype=np.dtypes.StringDType())


def read_encodings(tree: Mapping[str, Any]) -> dict[str, dict[str, tuple[str, str | None]]]:
    """``{"obs"|"var": {column: (anndata encoding-type, na-value or None)}, "region": {"": (encoding, None)}}``
    from a table's committed metadata ``tree`` (``Snapshot.metadata(name)``: its ``zarr.json`` documents by path
    relative to the element; the index column included; "region" is the form of ``uns/spatialdata_attrs/region``).
    The tree is the one committed at the snapshot's version, so this is exact for that version. Columns without
    usable metadata are left out (their Arrow type decides)."""

    def attributes(path: str) -> Mapping[str, Any] | None:
        doc = tree.get(path)
        attrs = doc.get("attributes") if isinstance(doc, Mapping) else None
        return attrs if isinstance(attrs, Mapping) else None

    out: dict[str, dict[str, tuple[str, str | None]]] = {}
    for what in ("obs", "var"):
        cols: dict[str, tuple[str, str | None]] = {}
        attrs = attributes(what)
        names = [attrs.get("_index")] + list(attrs.get("column-order") or []) if attrs is not None else []
        for col in names:
            if not isinstance(col, str):
                continue
            a = attributes(f"{what}/{col}")
            if a is not None and isinstance(a.get("encoding-type"), str):
                na = a.get("na-value")
                cols[col] = (a["encoding-type"], na if isinstance(na, str) else None)
        out[what] = cols
    # spatialdata writes a single region as a 0-d string and reads it back as a str (a list stays a list)
    region_path = f"uns/{ATTRS_KEY}/region"
    if isinstance(tree.get(region_path), Mapping):
        out["region"] = {"": (str((attributes(region_path) or {}).get("encoding-type")), None)}
    return out


def _string_column(values: list[Any], encoding: tuple[str, str | None] | None, nullable: bool) -> Any:
    """Strings as anndata's reader returns them for the stored encoding: ``string-array`` -> a numpy StringDType
    array (pandas makes it an object column); ``nullable-string-array`` -> pandas ``StringDtype`` with the stored
    na-value (``"NaN"``: pandas 3's ``str``; ``"NA"``: ``string``)."""
    import pandas as pd

    kind, na = encoding if encoding is not None else ("nullable-string-array" if nullable else "string-array", "NA")
    if kind != "nullable-string-array":
        return _strings(values)
    dtype = pd.StringDtype(na_value=np.nan if na == "NaN" else pd.NA)
    out = pd.array(_strings(values).astype(np.dtypes.StringDType(na_object=dtype.na_value)), dtype=dtype)
    mask = np.array([v is None for v in values], dtype=bool)
    if mask.any():
        out[mask] = pd.NA
    return out


def _column_from_arrow(field: Any, arr: Any, encoding: tuple[str, str | None] | None = None) -> Any:
    import pandas as pd
    import pyarrow as pa

    t = arr.type
    if pa.types.is_dictionary(t):
        codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return pd.Categorical.from_codes(
            codes=codes, categories=_strings(arr.dictionary.to_pylist()), ordered=bool(t.ordered)
        )
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _string_column(arr.to_pylist(), encoding, bool(field.nullable))
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        masked = encoding[0] in ("nullable-integer", "nullable-boolean") if encoding is not None else field.nullable
        if masked:  # without metadata: the engine marks nullable-integer / nullable-boolean columns nullable
            mask = arr.is_null().to_numpy(zero_copy_only=False)
            values = arr.fill_null(False if pa.types.is_boolean(t) else 0).to_numpy(zero_copy_only=False)
            if pa.types.is_boolean(t):
                return pd.arrays.BooleanArray(values.astype(bool), mask=mask)
            return pd.arrays.IntegerArray(values, mask=mask)
        return arr.to_numpy(zero_copy_only=False)
    if pa.types.is_floating(t):
        return arr.to_numpy(zero_copy_only=False)
    return arr.to_pandas()


def _frame_from_batch(batch: Any, index_name: str, encodings: Mapping[str, tuple[str, str | None]] | None = None) -> Any:
    """obs/var as anndata's ``read_dataframe`` builds it."""
    import pandas as pd

    encodings = encodings or {}
    columns = [n for n in batch.schema.names if n != index_name]
    i = batch.schema.get_field_index(index_name)
    index = _string_column(batch.column(i).to_pylist(), encodings.get(index_name), batch.schema.field(i).nullable)
    data = {}
    for c in columns:
        i = batch.schema.get_field_index(c)
        data[c] = _column_from_arrow(batch.schema.field(i), batch.column(i), encodings.get(c))
    df = pd.DataFrame(data, index=index, columns=columns if columns else None)
    if index_name != "_index":
        df.index.name = index_name
    return df


def _matrix_from(m: Any) -> Any:
    import scipy.sparse as sp

    if m is None:
        return None
    if isinstance(m, Mapping):
        fmt = m.get("format", "csr")
        if fmt != "csr":  # pragma: no cover - the engine only returns CSR
            raise ValueError(f"unsupported sparse format {fmt!r}")
        return sp.csr_matrix((m["data"], m["indices"], m["indptr"]), shape=tuple(int(s) for s in m["shape"]))
    return np.asarray(m)


def _uns_from(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _uns_from(x) for k, x in v.items()}
    if isinstance(v, list):
        return _strings(v)
    return v


def from_table_dict(table: Mapping[str, Any], encodings: Mapping[str, Any] | None = None) -> Any:
    """An AnnData from the engine's table dict, as anndata's zarr reader (and so spatialdata's) returns it.
    ``encodings`` (from :func:`read_encodings`) makes string and nullable columns exact; without it the Arrow
    types and nullability decide."""
    import anndata as ad

    encodings = encodings or {}
    obs = _frame_from_batch(table["obs"], table["obs_index"], encodings.get("obs"))
    var = _frame_from_batch(table["var"], table["var_index"], encodings.get("var"))
    uns = {k: _uns_from(v) for k, v in (table.get("uns") or {}).items()}
    annotation = table.get("annotation")
    if annotation:
        region: Any = list(annotation["region"])
        if len(region) == 1 and encodings.get("region", {}).get("", ("",))[0] == "string":
            region = region[0]
        uns[ATTRS_KEY] = {
            "region": region,
            "region_key": annotation["region_key"],
            "instance_key": annotation["instance_key"],
        }
    return ad.AnnData(
        X=_matrix_from(table.get("X")),
        obs=obs,
        var=var,
        uns=uns,
        obsm={k: np.asarray(v) for k, v in (table.get("obsm") or {}).items()},
        varm={k: np.asarray(v) for k, v in (table.get("varm") or {}).items()},
        layers={k: _matrix_from(v) for k, v in (table.get("layers") or {}).items()},
    )
