//! Pieces shared by points and shapes: transformation checks and JSON, the element group document, pandas schema
//! metadata, parquet writer settings and the durable fsync pass.

use crate::error::{Error, Result};
use crate::name::ElementName;
use crate::transform::{to_ngff_json, Transformation, DEFAULT_COORDINATE_SYSTEM};
use arrow_schema::{DataType, Schema};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

pub(crate) fn invalid(name: &ElementName, reason: impl Into<String>) -> Error {
    Error::InvalidElement { name: name.to_string(), reason: reason.into() }
}

/// Checks every transformation against the element's axes (`x`, `y`[, `z`]).
pub(crate) fn check_transformations(
    name: &ElementName,
    transformations: &BTreeMap<String, Transformation>,
    axes: &[&str],
) -> Result<()> {
    for (cs, t) in transformations {
        if cs.is_empty() || cs.chars().any(|c| c.is_control()) {
            return Err(invalid(name, format!("coordinate system name {cs:?} is empty or holds control characters")));
        }
        crate::transform::check_against_axes(t, axes)
            .map_err(|e| invalid(name, format!("transformation to coordinate system '{cs}': {e}")))?;
    }
    Ok(())
}

/// The `coordinateTransformations` list; an empty map means identity into `global`.
pub(crate) fn transformations_json(transformations: &BTreeMap<String, Transformation>, axes: &[&str]) -> Value {
    if transformations.is_empty() {
        return json!([to_ngff_json(&Transformation::Identity, axes, DEFAULT_COORDINATE_SYSTEM)]);
    }
    Value::Array(transformations.iter().map(|(cs, t)| to_ngff_json(t, axes, cs)).collect())
}

/// The element group's `zarr.json` document with `attributes`, as spatialdata writes it.
pub(crate) fn group_document(attributes: Value) -> Value {
    json!({"attributes": attributes, "zarr_format": 3, "node_type": "group"})
}

pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Io { path: path.into(), source: std::io::Error::other(e) })?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Parquet settings: snappy, as dask and geopandas write by default.
pub(crate) fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("zarrtx {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Opens a Parquet writer for `schema` whose schema-level metadata (`pandas`, `geo`) is also stored as the
/// file's key-value metadata, where pyarrow, dask and geopandas look for it.
pub(crate) fn open_writer(
    name: &ElementName,
    path: &Path,
    schema: &arrow_schema::SchemaRef,
) -> Result<parquet::arrow::ArrowWriter<File>> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))
        .map_err(|e| parquet_write_error(name, path, e))?;
    let mut meta: Vec<(&String, &String)> = schema.metadata().iter().collect();
    meta.sort();
    for (k, v) in meta {
        w.append_key_value_metadata(parquet::file::metadata::KeyValue::new(k.clone(), v.clone()));
    }
    Ok(w)
}

/// pandas' (`pandas_type`, `numpy_type`) for an Arrow type, as pyarrow records them in the `pandas` metadata.
/// `numpy_type` must be a dtype string pandas can parse; anything unusual is recorded as `object`.
fn pandas_types(dt: &DataType) -> (String, String, Value) {
    let same = |s: &str| (s.to_string(), s.to_string(), Value::Null);
    match dt {
        DataType::Boolean => same("bool"),
        DataType::Int8 => same("int8"),
        DataType::Int16 => same("int16"),
        DataType::Int32 => same("int32"),
        DataType::Int64 => same("int64"),
        DataType::UInt8 => same("uint8"),
        DataType::UInt16 => same("uint16"),
        DataType::UInt32 => same("uint32"),
        DataType::UInt64 => same("uint64"),
        DataType::Float16 => same("float16"),
        DataType::Float32 => same("float32"),
        DataType::Float64 => same("float64"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("unicode".into(), "object".into(), Value::Null),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            ("bytes".into(), "object".into(), Value::Null)
        }
        DataType::Dictionary(key, _) => {
            let (_, idx, _) = pandas_types(key);
            ("categorical".into(), idx, json!({"num_categories": Value::Null, "ordered": false}))
        }
        _ => ("object".into(), "object".into(), Value::Null),
    }
}

/// The `pandas` schema metadata for `schema`, whose column `index` (if any) is the DataFrame index.
pub(crate) fn pandas_metadata(schema: &Schema, index: Option<&str>) -> String {
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let (pt, nt, meta) = pandas_types(f.data_type());
            let name = if Some(f.name().as_str()) == index { Value::Null } else { json!(f.name()) };
            json!({"name": name, "field_name": f.name(), "pandas_type": pt, "numpy_type": nt, "metadata": meta})
        })
        .collect();
    let mut m = Map::new();
    m.insert("index_columns".into(), json!(index.into_iter().collect::<Vec<_>>()));
    m.insert(
        "column_indexes".into(),
        json!([{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"}}]),
    );
    m.insert("columns".into(), Value::Array(columns));
    m.insert("creator".into(), json!({"library": "zarrtx", "version": env!("CARGO_PKG_VERSION")}));
    m.insert("pandas_version".into(), json!("2.2.3"));
    Value::Object(m).to_string()
}

/// fsyncs every file under `dir`, then every directory, deepest first (shared with rasters and tables).
pub(crate) use crate::durable::sync_tree;

/// A parquet error while writing `path`: the data could not be encoded (an unsupported column type, ...).
pub(crate) fn parquet_write_error(name: &ElementName, path: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => Error::io(path, *io),
            Err(other) => invalid(name, format!("writing {} failed: {other}", path.display())),
        },
        other => invalid(name, format!("the data cannot be stored as Parquet: {other}")),
    }
}

/// A parquet error while reading a committed element's file.
pub(crate) fn parquet_read_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::CorruptMetadata { path: path.to_path_buf(), reason: format!("unreadable Parquet file: {e}") }
}
