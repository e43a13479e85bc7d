//! Loading points and shapes inputs: Parquet (plain or GeoParquet), CSV and GeoJSON files.

use super::csv::read_csv;
use super::geojson::read_geojson;
use crate::cli_error::{CliError, CliResult};
use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use zarrtx::{Geometry, ShapesData};

/// Rows per batch when reading Parquet input.
const BATCH_ROWS: usize = 256 * 1024;

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

fn bad_input(path: &Path, what: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("{}: {what}", path.display()))
}

/// Reads every batch of a Parquet file, without its schema-level metadata.
pub fn read_parquet(path: &Path) -> CliResult<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| bad_input(path, format!("cannot open: {e}")))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad_input(path, format!("not a readable Parquet file: {e}")))?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad_input(path, e))?;
    let schema = Arc::new(Schema::new(arrow_array::RecordBatchReader::schema(&reader).fields().clone()));
    let mut out = Vec::new();
    for b in reader {
        let b = b.map_err(|e| bad_input(path, format!("unreadable Parquet data: {e}")))?;
        out.push(b.with_schema(schema.clone()).map_err(|e| bad_input(path, e))?);
    }
    if out.is_empty() {
        out.push(RecordBatch::new_empty(schema));
    }
    Ok(out)
}

fn parquet_has_geo(path: &Path) -> CliResult<bool> {
    let file = File::open(path).map_err(|e| bad_input(path, format!("cannot open: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad_input(path, format!("not a readable Parquet file: {e}")))?;
    Ok(builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .is_some_and(|kv| kv.iter().any(|e| e.key == "geo")))
}

/// Turns a string column `key` into a categorical (dictionary) column, as spatialdata's `PointsModel.parse`
/// does with the feature key. Other types are left for the engine to judge.
fn categorize(batch: &RecordBatch, key: &str) -> CliResult<RecordBatch> {
    let Ok(idx) = batch.schema().index_of(key) else { return Ok(batch.clone()) };
    let col = batch.column(idx);
    let values: Vec<Option<&str>> = if let Some(a) = col.as_any().downcast_ref::<StringArray>() {
        a.iter().collect()
    } else if let Some(a) = col.as_any().downcast_ref::<LargeStringArray>() {
        a.iter().collect()
    } else {
        return Ok(batch.clone());
    };
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for v in values {
        b.append_option(v);
    }
    let dict: ArrayRef = Arc::new(b.finish());
    let schema = batch.schema();
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields[idx] = Arc::new(Field::new(key, dict.data_type().clone(), true));
    let mut columns = batch.columns().to_vec();
    columns[idx] = dict;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| CliError::failure(e.to_string()))
}

/// Loads points from a `.parquet` or `.csv` file; a string feature column becomes categorical.
pub fn load_points(path: &Path, feature_key: Option<&str>) -> CliResult<Vec<RecordBatch>> {
    let batches = match extension(path).as_str() {
        "parquet" | "pq" => read_parquet(path)?,
        "csv" => vec![read_csv(path)?],
        other => {
            return Err(bad_input(
                path,
                format!("unsupported input type '.{other}': give a .parquet or .csv file with columns x, y[, z]"),
            ))
        }
    };
    match feature_key {
        Some(k) => batches.iter().map(|b| categorize(b, k)).collect(),
        None => Ok(batches),
    }
}

/// Values of a numeric column as f64 (nulls as `None`).
pub fn f64_values(col: &ArrayRef) -> Option<Vec<Option<f64>>> {
    macro_rules! try_as {
        ($t:ty) => {
            if let Some(a) = col.as_any().downcast_ref::<$t>() {
                return Some(a.iter().map(|v| v.map(|x| x as f64)).collect());
            }
        };
    }
    try_as!(Float64Array);
    try_as!(Float32Array);
    try_as!(Int64Array);
    try_as!(Int32Array);
    None
}

/// Circles from a table with numeric columns `x`, `y` and `radius`; the other columns are kept.
pub fn circles_from_table(path: &Path, batch: &RecordBatch) -> CliResult<ShapesData> {
    let schema = batch.schema();
    let get = |name: &str| -> CliResult<Vec<f64>> {
        let idx = schema.index_of(name).map_err(|_| {
            bad_input(
                path,
                format!(
                    "column '{name}' is missing: circles need numeric columns x, y and radius (or give a GeoParquet \
                     or GeoJSON file)"
                ),
            )
        })?;
        let values = f64_values(batch.column(idx))
            .ok_or_else(|| bad_input(path, format!("column '{name}' has type {}; it must be numeric", schema.field(idx).data_type())))?;
        values
            .into_iter()
            .enumerate()
            .map(|(row, v)| v.ok_or_else(|| bad_input(path, format!("row {row}: column '{name}' is empty"))))
            .collect()
    };
    let (x, y, radius) = (get("x")?, get("y")?, get("radius")?);
    let keep: Vec<usize> =
        (0..schema.fields().len()).filter(|&i| !["x", "y", "radius"].contains(&schema.field(i).name().as_str())).collect();
    let columns = if keep.is_empty() {
        None
    } else {
        Some(batch.project(&keep).map_err(|e| CliError::failure(e.to_string()))?)
    };
    Ok(ShapesData {
        geometry: x.iter().zip(&y).map(|(&x, &y)| Geometry::Point([x, y])).collect(),
        radius: Some(radius),
        columns,
        index: None,
    })
}

fn concat(path: &Path, batches: &[RecordBatch]) -> CliResult<RecordBatch> {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).map_err(|e| bad_input(path, e))
}

/// Loads shapes from a GeoParquet file, a plain Parquet or CSV file with columns x, y and radius (circles), or a
/// GeoJSON file.
pub fn load_shapes(path: &Path) -> CliResult<ShapesData> {
    match extension(path).as_str() {
        "parquet" | "pq" | "geoparquet" => {
            if parquet_has_geo(path)? {
                let file = File::open(path).map_err(|e| bad_input(path, format!("cannot open: {e}")))?;
                zarrtx::vector::shapes::read_geoparquet(file).map_err(|reason| bad_input(path, reason))
            } else {
                let batches = read_parquet(path)?;
                circles_from_table(path, &concat(path, &batches)?)
            }
        }
        "csv" => circles_from_table(path, &read_csv(path)?),
        "geojson" | "json" => read_geojson(path),
        other => Err(bad_input(
            path,
            format!("unsupported input type '.{other}': give a .parquet (GeoParquet, or x,y,radius), .csv (x,y,radius) or .geojson file"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;

    #[test]
    fn feature_column_becomes_categorical() {
        let b = super::super::csv::parse_csv("x,y,gene\n1,2,a\n3,4,b\n5,6,a\n").unwrap();
        let c = categorize(&b, "gene").unwrap();
        assert!(matches!(c.schema().field(2).data_type(), DataType::Dictionary(..)));
        assert_eq!(c.num_rows(), 3);
    }

    #[test]
    fn circles_need_x_y_radius() {
        let p = Path::new("in.csv");
        let b = super::super::csv::parse_csv("x,y,radius,kind\n1,2,0.5,a\n").unwrap();
        let s = circles_from_table(p, &b).unwrap();
        assert_eq!(s.geometry, vec![Geometry::Point([1.0, 2.0])]);
        assert_eq!(s.radius, Some(vec![0.5]));
        assert_eq!(s.columns.unwrap().num_columns(), 1);
        let b = super::super::csv::parse_csv("x,y\n1,2\n").unwrap();
        assert!(circles_from_table(p, &b).unwrap_err().message.contains("radius"));
    }
}
