//! Describing a points or shapes element for `info`: row count (from the Parquet footers, read by byte ranges: no
//! data pages are read), columns with their types, geometry types, keys, axes and transformations.

use super::common::{parquet_footer, parquet_read_error};
use super::points::{part_files, DASK_INDEX};
use super::shapes::PANDAS_INDEX;
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementType;
use crate::storage::DataHandle;
use crate::transform::{from_ngff_json, Transformation};
use serde_json::Value;
use std::collections::BTreeMap;

/// What `info` shows about a points or shapes element.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorInfo {
    /// Points or shapes.
    pub element_type: ElementType,
    /// Number of rows (points or geometries).
    pub n_rows: u64,
    /// Columns (without index columns) and their Arrow types, e.g. `("x", "Float64")`.
    pub columns: Vec<(String, String)>,
    /// Axes (`x, y[, z]`).
    pub axes: Vec<String>,
    /// Shapes: the geometry types from the GeoParquet metadata (`Point`, `Polygon`, `MultiPolygon`).
    pub geometry_types: Vec<String>,
    /// Points: the feature key column.
    pub feature_key: Option<String>,
    /// Points: the instance key column.
    pub instance_key: Option<String>,
    /// Number of Parquet files holding the data.
    pub files: usize,
    /// Transformations by target coordinate system.
    pub transformations: BTreeMap<String, Transformation>,
}

fn corrupt(handle: &DataHandle, reason: impl Into<String>) -> Error {
    Error::CorruptMetadata { path: handle.describe("zarr.json"), reason: reason.into() }
}

/// Describes the points or shapes element stored below `handle` with committed metadata `tree`.
pub fn describe(element_type: ElementType, handle: &DataHandle, tree: &NodeTree) -> Result<VectorInfo> {
    let attrs = tree.get("").and_then(|g| g.get("attributes")).ok_or_else(|| corrupt(handle, "no group attributes"))?;
    let mut transformations = BTreeMap::new();
    for t in attrs.get("coordinateTransformations").and_then(Value::as_array).into_iter().flatten() {
        let (cs, t) = from_ngff_json(t).map_err(|e| corrupt(handle, format!("coordinateTransformations: {e}")))?;
        transformations.insert(cs, t);
    }
    let sd = attrs.get("spatialdata_attrs");
    let key = |k: &str| sd.and_then(|s| s.get(k)).and_then(Value::as_str).map(str::to_string);
    let files = match element_type {
        ElementType::Points => part_files(handle)?,
        ElementType::Shapes => vec![super::shapes::DATA.to_string()],
        other => return Err(corrupt(handle, format!("{other} is not a points or shapes element"))),
    };
    let mut n_rows = 0u64;
    let mut columns = Vec::new();
    let mut geometry_types = Vec::new();
    for (k, rel) in files.iter().enumerate() {
        let footer = parquet_footer(handle, rel)?;
        n_rows += footer.file_metadata().num_rows().max(0) as u64;
        if k > 0 {
            continue;
        }
        let schema = parquet::arrow::parquet_to_arrow_schema(
            footer.file_metadata().schema_descr(),
            footer.file_metadata().key_value_metadata(),
        )
        .map_err(|e| parquet_read_error(handle, rel, e))?;
        columns = schema
            .fields()
            .iter()
            .filter(|f| f.name() != DASK_INDEX && f.name() != PANDAS_INDEX)
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect();
        if element_type == ElementType::Shapes {
            let geo = footer
                .file_metadata()
                .key_value_metadata()
                .and_then(|kv| kv.iter().find(|e| e.key == "geo").and_then(|e| e.value.clone()))
                .and_then(|g| serde_json::from_str::<Value>(&g).ok());
            if let Some(geo) = geo {
                let primary = geo.get("primary_column").and_then(Value::as_str).unwrap_or("geometry");
                geometry_types = geo
                    .get("columns")
                    .and_then(|c| c.get(primary))
                    .and_then(|c| c.get("geometry_types"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
            }
        }
    }
    let axes = attrs
        .get("axes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_else(|| {
            let mut v = vec!["x".to_string(), "y".to_string()];
            if columns.iter().any(|(c, _)| c == "z") {
                v.push("z".into());
            }
            v
        });
    Ok(VectorInfo {
        element_type,
        n_rows,
        columns,
        axes,
        geometry_types,
        feature_key: key("feature_key"),
        instance_key: key("instance_key"),
        files: files.len(),
        transformations,
    })
}
