//! GeoJSON input for shapes: a FeatureCollection (or one Feature, or one bare geometry) of Point (circles; the
//! radius comes from the `radius` property), Polygon or MultiPolygon geometries. Other properties become columns
//! (int64, float64, bool or utf8; values of mixed types are stored as their JSON text); feature `id`s become the
//! index when every feature has one.

use crate::cli_error::{CliError, CliResult};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use zarrtx::{Geometry, ShapesData, ShapesIndex};

fn position(v: &Value, at: &str) -> Result<[f64; 2], String> {
    let a = v.as_array().ok_or_else(|| format!("{at}: a position must be an array [x, y]"))?;
    if a.len() != 2 {
        return Err(format!("{at}: position {v} has {} values; shapes are 2-D, give [x, y]", a.len()));
    }
    let num = |k: usize| a[k].as_f64().ok_or_else(|| format!("{at}: position {v} holds a non-number"));
    Ok([num(0)?, num(1)?])
}

fn ring(v: &Value, at: &str) -> Result<Vec<[f64; 2]>, String> {
    v.as_array()
        .ok_or_else(|| format!("{at}: a ring must be an array of positions"))?
        .iter()
        .map(|p| position(p, at))
        .collect()
}

fn polygon(v: &Value, at: &str) -> Result<Vec<Vec<[f64; 2]>>, String> {
    v.as_array()
        .ok_or_else(|| format!("{at}: polygon coordinates must be an array of rings"))?
        .iter()
        .map(|r| ring(r, at))
        .collect()
}

/// Converts one GeoJSON geometry object.
pub fn geometry(g: &Value, at: &str) -> Result<Geometry, String> {
    let ty = g.get("type").and_then(Value::as_str).ok_or_else(|| format!("{at}: geometry without a 'type'"))?;
    let coords = g.get("coordinates").ok_or_else(|| format!("{at}: {ty} without 'coordinates'"));
    match ty {
        "Point" => Ok(Geometry::Point(position(coords?, at)?)),
        "Polygon" => Ok(Geometry::Polygon(polygon(coords?, at)?)),
        "MultiPolygon" => Ok(Geometry::MultiPolygon(
            coords?
                .as_array()
                .ok_or_else(|| format!("{at}: MultiPolygon coordinates must be an array of polygons"))?
                .iter()
                .map(|p| polygon(p, at))
                .collect::<Result<_, _>>()?,
        )),
        other => Err(format!(
            "{at}: geometry type {other} is not supported: spatialdata shapes are Point (circles, with a 'radius' \
             property), Polygon or MultiPolygon"
        )),
    }
}

fn property_column(values: &[Option<&Value>]) -> ArrayRef {
    let present = || values.iter().flatten().filter(|v| !v.is_null());
    if present().next().is_some() && present().all(|v| v.is_i64()) {
        return Arc::new(values.iter().map(|v| v.and_then(Value::as_i64)).collect::<Int64Array>());
    }
    if present().next().is_some() && present().all(|v| v.is_number()) {
        return Arc::new(values.iter().map(|v| v.and_then(Value::as_f64)).collect::<Float64Array>());
    }
    if present().next().is_some() && present().all(|v| v.is_boolean()) {
        return Arc::new(values.iter().map(|v| v.and_then(Value::as_bool)).collect::<BooleanArray>());
    }
    Arc::new(
        values
            .iter()
            .map(|v| match v {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            })
            .collect::<StringArray>(),
    )
}

/// Parses GeoJSON text into shapes data (see the module documentation).
pub fn parse_geojson(text: &str) -> Result<ShapesData, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let features: Vec<Value> = match doc.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => doc
            .get("features")
            .and_then(Value::as_array)
            .cloned()
            .ok_or("a FeatureCollection without a 'features' array")?,
        Some("Feature") => vec![doc],
        Some(_) => vec![serde_json::json!({"type": "Feature", "geometry": doc, "properties": {}})],
        None => return Err("no 'type': expected a GeoJSON FeatureCollection, Feature or geometry".into()),
    };
    let mut geometries = Vec::with_capacity(features.len());
    let mut keys: Vec<String> = Vec::new();
    for (i, f) in features.iter().enumerate() {
        let at = format!("feature {i}");
        let g = f.get("geometry").filter(|g| !g.is_null()).ok_or_else(|| format!("{at} has no geometry"))?;
        geometries.push(geometry(g, &at)?);
        if let Some(props) = f.get("properties").and_then(Value::as_object) {
            for k in props.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    let prop = |f: &Value, k: &str| f.get("properties").and_then(|p| p.get(k)).cloned();
    let mut radius = None;
    let mut fields: Vec<(String, ArrayRef)> = Vec::new();
    for k in &keys {
        if k == "radius" && matches!(geometries.first(), Some(Geometry::Point(_))) {
            let r = features
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    prop(f, k)
                        .and_then(|v| v.as_f64())
                        .ok_or_else(|| format!("feature {i}: property 'radius' is missing or not a number"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            radius = Some(r);
            continue;
        }
        let values: Vec<Option<Value>> = features.iter().map(|f| prop(f, k)).collect();
        let refs: Vec<Option<&Value>> = values.iter().map(Option::as_ref).collect();
        fields.push((k.clone(), property_column(&refs)));
    }
    let ids: Vec<Option<&Value>> = features.iter().map(|f| f.get("id")).collect();
    let index = if !ids.is_empty() && ids.iter().all(|v| v.is_some_and(Value::is_i64)) {
        Some(ShapesIndex::Int(ids.iter().map(|v| v.and_then(Value::as_i64).unwrap()).collect()))
    } else if !ids.is_empty() && ids.iter().all(|v| v.is_some_and(Value::is_string)) {
        Some(ShapesIndex::Str(ids.iter().map(|v| v.and_then(Value::as_str).unwrap().to_string()).collect()))
    } else {
        None
    };
    let columns = if fields.is_empty() { None } else { Some(RecordBatch::try_from_iter(fields).map_err(|e| e.to_string())?) };
    Ok(ShapesData { geometry: geometries, radius, columns, index })
}

/// Reads a GeoJSON file into shapes data.
pub fn read_geojson(path: &Path) -> CliResult<ShapesData> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    parse_geojson(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_feature_collections() {
        let s = parse_geojson(
            r#"{"type":"FeatureCollection","features":[
              {"type":"Feature","id":"a","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]},"properties":{"n":1,"kind":"x"}},
              {"type":"Feature","id":"b","geometry":{"type":"MultiPolygon","coordinates":[[[[0,0],[2,0],[2,2],[0,0]]]]},"properties":{"n":2.5}}]}"#,
        )
        .unwrap();
        assert_eq!(s.geometry.len(), 2);
        assert!(matches!(s.geometry[1], Geometry::MultiPolygon(_)));
        assert_eq!(s.index, Some(ShapesIndex::Str(vec!["a".into(), "b".into()])));
        let cols = s.columns.unwrap();
        assert_eq!(cols.schema().field(0).data_type(), &arrow_schema::DataType::Float64);
        assert_eq!(cols.column(1).null_count(), 1);
    }

    #[test]
    fn points_take_their_radius_and_other_types_are_refused() {
        let s = parse_geojson(r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"radius":3}}"#).unwrap();
        assert_eq!((s.geometry, s.radius, s.columns), (vec![Geometry::Point([1.0, 2.0])], Some(vec![3.0]), None));
        let e = parse_geojson(r#"{"type":"LineString","coordinates":[[0,0],[1,1]]}"#).unwrap_err();
        assert!(e.contains("LineString"), "{e}");
        assert!(parse_geojson(r#"{"type":"Point","coordinates":[1,2,3]}"#).unwrap_err().contains("2-D"));
    }
}
