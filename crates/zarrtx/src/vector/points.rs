//! Points elements: a dask-style directory of Parquet part files (`points.parquet/part.N.parquet`) with columns
//! `x`, `y` (optionally `z`) plus any others, and a group `zarr.json` as spatialdata 0.8 writes it.

use super::common::{
    check_transformations, group_document, invalid, pandas_metadata, parquet_read_error, parquet_reader,
    transformations_json, ParquetBuffer,
};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::storage::DataHandle;
use crate::transform::Transformation;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// The index column dask writes (and reads back as the DataFrame index).
pub const DASK_INDEX: &str = "__null_dask_index__";

/// Rows per part file: input batches are gathered into parts of about this many rows.
pub const PART_ROWS: usize = 1 << 20;

/// How to store a points element besides its data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointsSpec {
    /// The column holding each point's feature (gene, ...): categorical (an Arrow dictionary of strings) or strings.
    pub feature_key: Option<String>,
    /// The column holding each point's instance (cell id, ...).
    pub instance_key: Option<String>,
    /// Transformations into target coordinate systems, over the axes `x, y[, z]` (empty: identity into `global`).
    pub transformations: BTreeMap<String, Transformation>,
}

/// The axes of a points element with these columns: `["x","y"]` or `["x","y","z"]`.
pub fn axes_of(schema: &Schema) -> Vec<&'static str> {
    if schema.column_with_name("z").is_some() {
        vec!["x", "y", "z"]
    } else {
        vec!["x", "y"]
    }
}

fn is_coordinate_type(dt: &DataType) -> bool {
    matches!(dt, DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64)
}

fn is_string(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Checks the batches and spec against spatialdata's rules (`PointsModel`) before anything is written: at least
/// one batch, one schema for all, unique column names, `x` and `y` (and `z` if present) of int32/int64/float32/
/// float64 without nulls, the feature and instance key columns present with suitable types, transformations over
/// the element's axes. Returns the element's axes.
pub fn validate(name: &ElementName, batches: &[RecordBatch], spec: &PointsSpec) -> Result<Vec<&'static str>> {
    let first = batches.first().ok_or_else(|| {
        invalid(name, "no data: pass at least one record batch (it may have zero rows) with columns x and y")
    })?;
    let schema = first.schema();
    let mut seen = HashSet::new();
    for f in schema.fields() {
        if !seen.insert(f.name().as_str()) {
            return Err(invalid(name, format!("column '{}' appears twice: column names must be unique", f.name())));
        }
    }
    for (i, b) in batches.iter().enumerate().skip(1) {
        if !same_columns(&schema, &b.schema()) {
            return Err(invalid(
                name,
                format!(
                    "record batch {i} has columns {} but batch 0 has {}: every batch must have the same columns and \
                     types",
                    describe_schema(&b.schema()),
                    describe_schema(&schema)
                ),
            ));
        }
    }
    let axes = axes_of(&schema);
    for axis in ["x", "y", "z"] {
        let Some((idx, field)) = schema.column_with_name(axis) else {
            if axis == "z" {
                continue;
            }
            return Err(invalid(
                name,
                format!(
                    "column '{axis}' is missing (columns: {}): points need x and y coordinate columns (and \
                     optionally z); rename your coordinate columns",
                    describe_schema(&schema)
                ),
            ));
        };
        if !is_coordinate_type(field.data_type()) {
            return Err(invalid(
                name,
                format!(
                    "column '{axis}' has type {} but coordinates must be int32, int64, float32 or float64: cast it",
                    field.data_type()
                ),
            ));
        }
        let nulls: usize = batches.iter().map(|b| b.column(idx).null_count()).sum();
        if nulls > 0 {
            return Err(invalid(
                name,
                format!("column '{axis}' holds {nulls} null value(s): every point needs coordinates; drop those rows"),
            ));
        }
    }
    if let Some(key) = &spec.feature_key {
        let field = schema.field_with_name(key).map_err(|_| {
            invalid(name, format!("feature_key '{key}' is not a column (columns: {})", describe_schema(&schema)))
        })?;
        let ok = match field.data_type() {
            DataType::Dictionary(k, v) => k.is_integer() && is_string(v),
            dt => is_string(dt),
        };
        if !ok {
            return Err(invalid(
                name,
                format!(
                    "feature_key column '{key}' has type {}; it must be categorical (an Arrow dictionary of strings) \
                     or strings",
                    field.data_type()
                ),
            ));
        }
    }
    if let Some(key) = &spec.instance_key {
        let field = schema.field_with_name(key).map_err(|_| {
            invalid(name, format!("instance_key '{key}' is not a column (columns: {})", describe_schema(&schema)))
        })?;
        let dt = field.data_type();
        let ok = dt.is_integer() || is_string(dt) || matches!(dt, DataType::Dictionary(..));
        if !ok {
            return Err(invalid(
                name,
                format!("instance_key column '{key}' has type {dt}; it must hold integers or strings"),
            ));
        }
    }
    if let Some((idx, field)) = schema.column_with_name(DASK_INDEX) {
        if field.data_type() != &DataType::Int64 || batches.iter().any(|b| b.column(idx).null_count() > 0) {
            return Err(invalid(
                name,
                format!("column '{DASK_INDEX}' is the DataFrame index and must be int64 without nulls; rename it"),
            ));
        }
    }
    check_transformations(name, &spec.transformations, &axes)?;
    Ok(axes)
}

fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn describe_schema(s: &Schema) -> String {
    s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}

/// The group `zarr.json` of a points element, as spatialdata 0.8 writes it.
pub fn group_json(axes: &[&str], spec: &PointsSpec) -> Value {
    let mut sd = Map::new();
    if let Some(k) = &spec.instance_key {
        sd.insert("instance_key".into(), json!(k));
    }
    if let Some(k) = &spec.feature_key {
        sd.insert("feature_key".into(), json!(k));
    }
    sd.insert("version".into(), json!("0.2"));
    group_document(json!({
        "encoding-type": "ngff:points",
        "axes": axes,
        "coordinateTransformations": transformations_json(&spec.transformations, axes),
        "spatialdata_attrs": sd,
    }))
}

/// The data of a points element: a directory of part files, relative to the element.
pub const DATA: &str = "points.parquet";

/// Writes the complete element below `handle` (a fresh prefix, owned by the caller): `points.parquet/part.N.parquet`
/// (each part encoded in memory, then stored: memory holds one part at a time), then `zarr.json`; with `durable`,
/// makes every object durable. Validates first. Returns the element's `zarr.json` tree.
pub fn write_element(
    handle: &DataHandle,
    name: &ElementName,
    batches: &[RecordBatch],
    spec: &PointsSpec,
    durable: bool,
) -> Result<NodeTree> {
    let axes = validate(name, batches, spec)?;
    let in_schema = batches[0].schema();
    let has_index = in_schema.column_with_name(DASK_INDEX).is_some();
    let schema = out_schema(&in_schema, has_index);
    let mut written = Vec::new();
    let mut offset = 0i64;
    let mut part: Option<(ParquetBuffer<'_>, usize)> = None;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    for b in batches.iter().filter(|b| b.num_rows() > 0 || total == 0) {
        if part.as_ref().is_some_and(|(_, rows)| *rows >= PART_ROWS) {
            let (full, _) = part.take().expect("checked");
            written.push(full.store()?);
        }
        if part.is_none() {
            let rel = format!("{DATA}/part.{}.parquet", written.len());
            part = Some((ParquetBuffer::open(name, handle, rel, &schema)?, 0));
        }
        let (w, rows) = part.as_mut().expect("opened");
        let mut columns: Vec<ArrayRef> = b.columns().to_vec();
        if !has_index {
            let n = b.num_rows() as i64;
            columns.push(Arc::new(Int64Array::from_iter_values(offset..offset + n)));
            offset += n;
        }
        let out = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| invalid(name, format!("record batch does not fit the schema: {e}")))?;
        w.write(&out)?;
        *rows += b.num_rows();
        if total == 0 {
            break;
        }
    }
    if let Some((last, _)) = part {
        written.push(last.store()?);
    }
    let group = group_json(&axes, spec);
    handle.put_json("zarr.json", &group)?;
    written.push("zarr.json".into());
    if durable {
        handle.sync(&written)?;
    }
    Ok(NodeTree::from([(String::new(), group)]))
}

/// The stored schema: the input's fields (without schema-level metadata) plus the dask index, and `pandas`
/// metadata naming the index.
fn out_schema(input: &Schema, has_index: bool) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
    if !has_index {
        fields.push(Arc::new(Field::new(DASK_INDEX, DataType::Int64, false)));
    }
    let bare = Schema::new(fields.clone());
    let meta = HashMap::from([("pandas".to_string(), pandas_metadata(&bare, Some(DASK_INDEX)))]);
    Arc::new(Schema::new_with_metadata(fields, meta))
}

/// The part files of a points element stored below `handle`, as keys relative to it, in order
/// (`points.parquet/part.0.parquet`, `points.parquet/part.1.parquet`, ... by number; other `.parquet` names after
/// them), or `points.parquet` alone when it is a single file.
pub fn part_files(handle: &DataHandle) -> Result<Vec<String>> {
    if handle.size(DATA)?.is_some() {
        return Ok(vec![DATA.to_string()]);
    }
    let names = handle.list(DATA)?;
    if names.is_empty() && !handle.exists(DATA)? {
        return Err(Error::io(handle.describe(DATA), std::io::ErrorKind::NotFound.into()));
    }
    let mut parts = Vec::new();
    for file_name in names {
        if file_name.ends_with(".parquet") && !file_name.starts_with('.') && !file_name.starts_with('_') {
            let number = file_name
                .strip_prefix("part.")
                .and_then(|s| s.strip_suffix(".parquet"))
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            parts.push((number, format!("{DATA}/{file_name}")));
        }
    }
    parts.sort();
    Ok(parts.into_iter().map(|(_, rel)| rel).collect())
}

/// Reads one part file (`rel`, as listed by [`part_files`]) of the points element below `handle`, without the dask
/// index column and without schema-level metadata (field metadata is kept). A part without rows gives one empty
/// batch, so the schema is always known.
pub fn read_part(handle: &DataHandle, rel: &str) -> Result<Vec<RecordBatch>> {
    let reader = parquet_reader(handle, rel)?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| parquet_read_error(handle, rel, e))?;
    let schema = reader.schema();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_read_error(handle, rel, e))?;
        out.push(strip(handle, rel, &batch)?);
    }
    if out.is_empty() {
        out.push(strip(handle, rel, &RecordBatch::new_empty(schema))?);
    }
    Ok(out)
}

/// Reads every row of the points element below `handle`, part by part (see [`read_part`]).
pub fn read_element(handle: &DataHandle) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for rel in part_files(handle)? {
        out.extend(read_part(handle, &rel)?);
    }
    Ok(out)
}

fn strip(handle: &DataHandle, rel: &str, b: &RecordBatch) -> Result<RecordBatch> {
    let schema = b.schema();
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| schema.field(i).name() != DASK_INDEX).collect();
    let fields: Vec<Arc<Field>> = keep.iter().map(|&i| schema.fields()[i].clone()).collect();
    let columns: Vec<ArrayRef> = keep.iter().map(|&i| b.column(i).clone()).collect();
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)
        .map_err(|e| Error::CorruptMetadata { path: handle.describe(rel), reason: e.to_string() })
}
