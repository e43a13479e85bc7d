//! Shapes elements: one GeoParquet file (`shapes.parquet`, WKB geometry, `geo` metadata 1.1.0) holding circles
//! (points with a `radius`) or polygons and multipolygons, plus a group `zarr.json` as spatialdata 0.8 writes it.

use super::common::{
    check_transformations, group_document, invalid, pandas_metadata, transformations_json, ParquetBuffer,
};
use super::wkb;
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::storage::DataHandle;
use crate::transform::Transformation;
use arrow_array::{
    Array, ArrayRef, BinaryArray, Float32Array, Float64Array, Int64Array, LargeBinaryArray, LargeStringArray,
    RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Axes of shapes elements (spatialdata's shapes are 2-D).
pub const AXES: [&str; 2] = ["x", "y"];

/// The GeoParquet file of a shapes element, relative to the element.
pub const DATA: &str = "shapes.parquet";

/// The column pandas uses for a non-default index.
pub const PANDAS_INDEX: &str = "__index_level_0__";

/// One geometry of a shapes element.
#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    /// The centre of a circle (its radius is in [`ShapesData::radius`]).
    Point([f64; 2]),
    /// A polygon: the exterior ring, then any holes; each ring closed (first point == last point).
    Polygon(Vec<Vec<[f64; 2]>>),
    /// Several polygons.
    MultiPolygon(Vec<Vec<Vec<[f64; 2]>>>),
}

impl Geometry {
    /// The GeoParquet geometry type name (`Point`, `Polygon`, `MultiPolygon`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Geometry::Point(_) => "Point",
            Geometry::Polygon(_) => "Polygon",
            Geometry::MultiPolygon(_) => "MultiPolygon",
        }
    }

    fn coords(&self) -> Box<dyn Iterator<Item = &[f64; 2]> + '_> {
        match self {
            Geometry::Point(p) => Box::new(std::iter::once(p)),
            Geometry::Polygon(r) => Box::new(r.iter().flatten()),
            Geometry::MultiPolygon(p) => Box::new(p.iter().flatten().flatten()),
        }
    }
}

/// The index (row labels) of a shapes element: what tables annotate it by.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapesIndex {
    /// Integer labels.
    Int(Vec<i64>),
    /// String labels.
    Str(Vec<String>),
}

impl ShapesIndex {
    fn len(&self) -> usize {
        match self {
            ShapesIndex::Int(v) => v.len(),
            ShapesIndex::Str(v) => v.len(),
        }
    }

    fn to_array(&self) -> ArrayRef {
        match self {
            ShapesIndex::Int(v) => Arc::new(Int64Array::from(v.clone())),
            ShapesIndex::Str(v) => Arc::new(StringArray::from_iter_values(v)),
        }
    }
}

/// The content of a shapes element.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShapesData {
    /// One geometry per row: all points (circles) or all polygons/multipolygons.
    pub geometry: Vec<Geometry>,
    /// Circle radii, one per row, finite and > 0 (required for circles, absent for polygons).
    pub radius: Option<Vec<f64>>,
    /// Extra columns, one row per geometry.
    pub columns: Option<RecordBatch>,
    /// Row labels (default: 0, 1, 2, ...).
    pub index: Option<ShapesIndex>,
}

/// How to store a shapes element besides its data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapesSpec {
    /// Transformations into target coordinate systems, over the axes `x, y` (empty: identity into `global`).
    pub transformations: BTreeMap<String, Transformation>,
}

/// Whether a shapes element holds circles or polygons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapesKind {
    /// Points with a radius.
    Circles,
    /// Polygons and multipolygons.
    Polygons,
}

fn check_ring(name: &ElementName, row: usize, what: &str, ring: &[[f64; 2]]) -> Result<()> {
    if ring.len() < 4 {
        return Err(invalid(
            name,
            format!(
                "row {row}: {what} has {} point(s); a ring needs at least 4 (3 corners and the first point repeated \
                 to close it)",
                ring.len()
            ),
        ));
    }
    if ring.first() != ring.last() {
        return Err(invalid(
            name,
            format!(
                "row {row}: {what} is not closed (starts at {:?}, ends at {:?}): repeat the first point at the end",
                ring[0],
                ring[ring.len() - 1]
            ),
        ));
    }
    let twice_area: f64 = ring.windows(2).map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1]).sum();
    if twice_area == 0.0 {
        return Err(invalid(name, format!("row {row}: {what} is degenerate (zero area, e.g. all points on a line)")));
    }
    Ok(())
}

fn check_polygon(name: &ElementName, row: usize, rings: &[Vec<[f64; 2]>], prefix: &str) -> Result<()> {
    if rings.is_empty() {
        return Err(invalid(name, format!("row {row}: {prefix}polygon has no rings; give at least its exterior ring")));
    }
    for (k, ring) in rings.iter().enumerate() {
        let what = if k == 0 { format!("the exterior ring of {prefix}polygon") } else { format!("hole {k} of {prefix}polygon") };
        check_ring(name, row, &what, ring)?;
    }
    Ok(())
}

/// Checks shapes data against spatialdata's rules (`ShapesModel`) before anything is written: at least one row;
/// all circles or all polygons/multipolygons; finite coordinates; closed, non-degenerate rings; a radius > 0 per
/// circle and none for polygons; extra columns and index of the same length, without reserved or duplicate names;
/// transformations over `x, y`.
pub fn validate(name: &ElementName, data: &ShapesData, spec: &ShapesSpec) -> Result<ShapesKind> {
    let n = data.geometry.len();
    if n == 0 {
        return Err(invalid(name, "no geometries: a shapes element needs at least one row"));
    }
    let kind = if matches!(data.geometry[0], Geometry::Point(_)) { ShapesKind::Circles } else { ShapesKind::Polygons };
    for (row, g) in data.geometry.iter().enumerate() {
        let is_point = matches!(g, Geometry::Point(_));
        if is_point != (kind == ShapesKind::Circles) {
            return Err(invalid(
                name,
                format!(
                    "row {row} is a {} but row 0 is a {}: one shapes element holds either circles (points) or \
                     polygons/multipolygons; split them into two elements",
                    g.type_name(),
                    data.geometry[0].type_name()
                ),
            ));
        }
        if let Some(p) = g.coords().find(|p| !p[0].is_finite() || !p[1].is_finite()) {
            return Err(invalid(name, format!("row {row}: coordinate {p:?} is NaN or infinite; use finite numbers")));
        }
        match g {
            Geometry::Point(_) => {}
            Geometry::Polygon(rings) => check_polygon(name, row, rings, "the ")?,
            Geometry::MultiPolygon(polys) => {
                if polys.is_empty() {
                    return Err(invalid(name, format!("row {row}: the multipolygon is empty")));
                }
                for (k, rings) in polys.iter().enumerate() {
                    check_polygon(name, row, rings, &format!("part {k} of the multi"))?;
                }
            }
        }
    }
    match (kind, &data.radius) {
        (ShapesKind::Circles, None) => {
            return Err(invalid(name, "the geometries are points (circles) but no radius is given: give one radius > 0 per circle"));
        }
        (ShapesKind::Circles, Some(r)) => {
            if r.len() != n {
                return Err(invalid(name, format!("{} radii for {n} circles: give exactly one radius per circle", r.len())));
            }
            if let Some((row, v)) = r.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
                return Err(invalid(name, format!("row {row}: radius {v} is not a finite number > 0; circles need a positive radius")));
            }
        }
        (ShapesKind::Polygons, Some(_)) => {
            return Err(invalid(name, "a radius is given but the geometries are polygons: radius is only for circles (point geometries)"));
        }
        (ShapesKind::Polygons, None) => {}
    }
    if let Some(cols) = &data.columns {
        if cols.num_rows() != n {
            return Err(invalid(name, format!("the extra columns have {} rows but there are {n} geometries", cols.num_rows())));
        }
        let mut seen = HashSet::new();
        for f in cols.schema().fields() {
            let reserved = ["geometry", "radius", PANDAS_INDEX];
            if reserved.contains(&f.name().as_str()) {
                return Err(invalid(name, format!("extra column '{}' uses a reserved name ({}); rename it", f.name(), reserved.join(", "))));
            }
            if !seen.insert(f.name().clone()) {
                return Err(invalid(name, format!("column '{}' appears twice: column names must be unique", f.name())));
            }
        }
    }
    if let Some(index) = &data.index {
        if index.len() != n {
            return Err(invalid(name, format!("the index has {} labels but there are {n} geometries", index.len())));
        }
    }
    check_transformations(name, &spec.transformations, &AXES)?;
    Ok(kind)
}

/// The group `zarr.json` of a shapes element, as spatialdata 0.8 writes it.
pub fn group_json(spec: &ShapesSpec) -> Value {
    group_document(json!({
        "encoding-type": "ngff:shapes",
        "axes": AXES,
        "coordinateTransformations": transformations_json(&spec.transformations, &AXES),
        "spatialdata_attrs": {"version": "0.3"},
    }))
}

/// The GeoParquet `geo` metadata for these geometries.
fn geo_metadata(geometry: &[Geometry]) -> String {
    let types: BTreeSet<&str> = geometry.iter().map(Geometry::type_name).collect();
    let mut bbox = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    for p in geometry.iter().flat_map(Geometry::coords) {
        bbox = [bbox[0].min(p[0]), bbox[1].min(p[1]), bbox[2].max(p[0]), bbox[3].max(p[1])];
    }
    json!({
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "crs": null, "geometry_types": types, "bbox": bbox}},
        "version": "1.1.0",
        "creator": {"library": "zarrtx", "version": env!("CARGO_PKG_VERSION")},
    })
    .to_string()
}

/// The record batch stored in `shapes.parquet` (geometry, radius, extra columns, index) with its metadata.
pub fn to_record_batch(name: &ElementName, data: &ShapesData) -> Result<RecordBatch> {
    let wkb_field = Field::new("geometry", DataType::Binary, false).with_metadata(HashMap::from([
        ("ARROW:extension:name".to_string(), "geoarrow.wkb".to_string()),
        ("ARROW:extension:metadata".to_string(), "{}".to_string()),
    ]));
    let mut offsets = Vec::with_capacity(data.geometry.len() + 1);
    let mut bytes = Vec::new();
    offsets.push(0i32);
    for g in &data.geometry {
        wkb::encode_into(g, &mut bytes);
        let end = i32::try_from(bytes.len())
            .map_err(|_| invalid(name, "the geometries exceed 2 GiB of WKB; split the element"))?;
        offsets.push(end);
    }
    let geometry = BinaryArray::try_new(
        arrow_buffer::OffsetBuffer::new(offsets.into()),
        arrow_buffer::Buffer::from_vec(bytes),
        None,
    )
    .map_err(|e| invalid(name, e.to_string()))?;
    let mut fields = vec![Arc::new(wkb_field)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(geometry)];
    if let Some(r) = &data.radius {
        fields.push(Arc::new(Field::new("radius", DataType::Float64, false)));
        columns.push(Arc::new(Float64Array::from(r.clone())));
    }
    if let Some(extra) = &data.columns {
        fields.extend(extra.schema().fields().iter().cloned());
        columns.extend(extra.columns().iter().cloned());
    }
    if let Some(index) = &data.index {
        let a = index.to_array();
        fields.push(Arc::new(Field::new(PANDAS_INDEX, a.data_type().clone(), false)));
        columns.push(a);
    }
    let bare = Schema::new(fields.clone());
    let mut meta = HashMap::from([("geo".to_string(), geo_metadata(&data.geometry))]);
    if data.index.is_some() {
        meta.insert("pandas".into(), pandas_metadata(&bare, Some(PANDAS_INDEX)));
    }
    RecordBatch::try_new(Arc::new(Schema::new_with_metadata(fields, meta)), columns)
        .map_err(|e| invalid(name, format!("the columns do not form a table: {e}")))
}

/// Writes the complete element below `handle` (a fresh prefix, owned by the caller): `shapes.parquet` (encoded in
/// memory, then stored), then `zarr.json`; with `durable`, makes both durable. Validates first. Returns the element's
/// `zarr.json` tree.
pub fn write_element(
    handle: &DataHandle,
    name: &ElementName,
    data: &ShapesData,
    spec: &ShapesSpec,
    durable: bool,
) -> Result<NodeTree> {
    validate(name, data, spec)?;
    let batch = to_record_batch(name, data)?;
    let mut w = ParquetBuffer::open(name, handle, DATA.to_string(), &batch.schema())?;
    w.write(&batch)?;
    let mut written = vec![w.store()?];
    let group = group_json(spec);
    handle.put_json("zarr.json", &group)?;
    written.push("zarr.json".into());
    if durable {
        handle.sync(&written)?;
    }
    Ok(NodeTree::from([(String::new(), group)]))
}

/// Decodes a GeoParquet file (as written by zarrtx, geopandas or spatialdata; in memory as [`Bytes`], or a `File`)
/// into [`ShapesData`]: the primary geometry column (WKB) decoded, `radius` as float64, the pandas index column (if
/// any) as the index, every other column as an extra column. The error is the reason the file cannot be read; the
/// caller names the file.
pub fn read_geoparquet<R: ChunkReader + 'static>(reader: R) -> std::result::Result<ShapesData, String> {
    let corrupt = |reason: String| reason;
    let unreadable = |e: parquet::errors::ParquetError| format!("unreadable Parquet file: {e}");
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).map_err(unreadable)?;
    let schema = builder.schema().clone();
    let kv: HashMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().filter_map(|e| Some((e.key.clone(), e.value.clone()?))).collect())
        .unwrap_or_default();
    let geo: Value = kv
        .get("geo")
        .ok_or_else(|| corrupt("no 'geo' metadata: not a GeoParquet file".into()))
        .and_then(|g| serde_json::from_str(g).map_err(|e| corrupt(format!("'geo' metadata is not JSON: {e}"))))?;
    let primary = geo.get("primary_column").and_then(Value::as_str).unwrap_or("geometry").to_string();
    let encoding = geo
        .get("columns")
        .and_then(|c| c.get(&primary))
        .and_then(|c| c.get("encoding"))
        .and_then(Value::as_str)
        .unwrap_or("WKB");
    if !encoding.eq_ignore_ascii_case("wkb") {
        return Err(corrupt(format!("geometry encoding '{encoding}' is not supported (only WKB)")));
    }
    let index_column = kv
        .get("pandas")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p.get("index_columns")?.as_array()?.first()?.as_str().map(str::to_string))
        .or_else(|| schema.column_with_name(PANDAS_INDEX).map(|_| PANDAS_INDEX.to_string()));
    let reader = builder.with_batch_size(64 * 1024).build().map_err(unreadable)?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("unreadable Parquet file: {e}"))?;
    let bare = Arc::new(Schema::new(schema.fields().clone()));
    let batches: Vec<RecordBatch> = batches
        .into_iter()
        .map(|b| b.with_schema(bare.clone()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| corrupt(e.to_string()))?;
    let all = arrow_select::concat::concat_batches(&bare, &batches).map_err(|e| corrupt(e.to_string()))?;

    let geo_idx = schema.index_of(&primary).map_err(|_| corrupt(format!("geometry column '{primary}' is missing")))?;
    let geom_col = all.column(geo_idx);
    let wkb_at = |i: usize| -> Option<&[u8]> {
        if geom_col.is_null(i) {
            return None;
        }
        if let Some(a) = geom_col.as_any().downcast_ref::<BinaryArray>() {
            Some(a.value(i))
        } else {
            geom_col.as_any().downcast_ref::<LargeBinaryArray>().map(|a| a.value(i))
        }
    };
    let mut geometry = Vec::with_capacity(all.num_rows());
    for i in 0..all.num_rows() {
        let bytes = wkb_at(i).ok_or_else(|| corrupt(format!("row {i}: geometry is null or not binary WKB")))?;
        geometry.push(wkb::decode(bytes).map_err(|e| corrupt(format!("row {i}: {e}")))?);
    }
    let mut radius = None;
    let mut index = None;
    let mut extra_fields = Vec::new();
    let mut extra_columns = Vec::new();
    for (k, f) in schema.fields().iter().enumerate() {
        let col = all.column(k);
        if k == geo_idx {
            continue;
        }
        if f.name() == "radius" {
            radius = Some(float_values(col).ok_or_else(|| corrupt(format!("column radius has type {}", f.data_type())))?);
        } else if let Some(ix) = index_values(col).filter(|_| Some(f.name()) == index_column.as_ref()) {
            index = Some(ix);
        } else {
            extra_fields.push(f.clone());
            extra_columns.push(col.clone());
        }
    }
    let columns = if extra_fields.is_empty() {
        None
    } else {
        Some(RecordBatch::try_new(Arc::new(Schema::new(extra_fields)), extra_columns).map_err(|e| corrupt(e.to_string()))?)
    };
    Ok(ShapesData { geometry, radius, columns, index })
}

fn float_values(col: &ArrayRef) -> Option<Vec<f64>> {
    if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
        return Some((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }).collect());
    }
    let a = col.as_any().downcast_ref::<Float32Array>()?;
    Some((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) as f64 }).collect())
}

fn index_values(col: &ArrayRef) -> Option<ShapesIndex> {
    if col.null_count() > 0 {
        return None;
    }
    if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
        return Some(ShapesIndex::Int(a.values().to_vec()));
    }
    if let Some(a) = col.as_any().downcast_ref::<StringArray>() {
        return Some(ShapesIndex::Str(a.iter().map(|s| s.unwrap_or_default().to_string()).collect()));
    }
    let a = col.as_any().downcast_ref::<LargeStringArray>()?;
    Some(ShapesIndex::Str(a.iter().map(|s| s.unwrap_or_default().to_string()).collect()))
}

/// Reads the shapes element stored below `handle`.
pub fn read_element(handle: &DataHandle) -> Result<ShapesData> {
    let bytes = Bytes::from(handle.read(DATA)?);
    read_geoparquet(bytes).map_err(|reason| Error::CorruptMetadata { path: handle.describe(DATA), reason })
}
