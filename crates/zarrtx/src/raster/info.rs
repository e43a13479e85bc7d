//! Describing a raster element from its metadata tree alone (no chunk is read). Works on trees written by zarrtx
//! and by spatialdata itself (Zarr v3 with attributes under `ome`; the v2 layout with top-level `multiscales` is
//! accepted too).

use super::{DataType, RasterKind};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::transform::{from_ngff_json, Transformation};
use serde_json::Value;
use std::collections::BTreeMap;

/// What a raster element holds, read from its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterInfo {
    /// Image or labels.
    pub kind: RasterKind,
    /// Axis names in order, e.g. `["c","y","x"]`.
    pub dims: Vec<String>,
    /// Element type of the level-0 array.
    pub data_type: DataType,
    /// The levels in pyramid order (level 0 = full resolution).
    pub levels: Vec<LevelInfo>,
    /// Channel labels (`ome.omero.channels[*].label`) as text, when present.
    pub channel_names: Option<Vec<String>>,
    /// The same labels as stored (strings, or integers for images written without channel names).
    pub channel_labels: Option<Vec<Value>>,
    /// Transformations by target coordinate system.
    pub transformations: BTreeMap<String, Transformation>,
}

/// One level of a raster element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelInfo {
    /// Path of the level array relative to the element group (`s0`, ...).
    pub path: String,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Shape of the array's chunk grid cells (the shard shape when the array is sharded).
    pub chunk_shape: Vec<u64>,
}

/// A metadata error naming the level's `zarr.json` relative to the element (readers make it absolute).
fn corrupt(path: &str, reason: impl Into<String>) -> Error {
    Error::CorruptMetadata {
        path: crate::storage::join(path, "zarr.json").into(),
        reason: reason.into(),
    }
}

/// The NGFF attributes of an element group document: `attributes.ome` (v3), else the attributes themselves (v2).
fn ngff_attrs(group: &Value) -> &Value {
    let attrs = group.get("attributes").unwrap_or(group);
    attrs.get("ome").unwrap_or(attrs)
}

/// `multiscales[0]` of an element group's `zarr.json` document.
pub(crate) fn multiscale(group: &Value) -> Result<&Value> {
    ngff_attrs(group)
        .get("multiscales")
        .and_then(|m| m.get(0))
        .ok_or_else(|| corrupt("", "the element group has no 'multiscales' entry (not an NGFF raster)"))
}

/// The dataset paths of an element group, level 0 first.
pub(crate) fn dataset_paths(group: &Value) -> Result<Vec<String>> {
    let ds = multiscale(group)?
        .get("datasets")
        .and_then(Value::as_array)
        .ok_or_else(|| corrupt("", "'multiscales[0].datasets' is missing"))?;
    if ds.is_empty() {
        return Err(corrupt("", "'multiscales[0].datasets' is empty"));
    }
    ds.iter()
        .map(|d| {
            d.get("path")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| corrupt("", "a dataset has no 'path'"))
        })
        .collect()
}

fn u64_list(v: Option<&Value>, path: &str, what: &str) -> Result<Vec<u64>> {
    v.and_then(Value::as_array)
        .ok_or_else(|| corrupt(path, format!("'{what}' is missing")))?
        .iter()
        .map(|x| x.as_u64().ok_or_else(|| corrupt(path, format!("'{what}' holds a non-integer {x}"))))
        .collect()
}

/// The element type of an array document.
pub(crate) fn array_data_type(meta: &Value, path: &str) -> Result<DataType> {
    let name = meta
        .get("data_type")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(path, "'data_type' is missing or not a string"))?;
    DataType::from_zarr_name(name).ok_or_else(|| {
        corrupt(
            path,
            format!("data type '{name}' is not supported (bool, (u)int8-64, float32, float64)"),
        )
    })
}

/// The shape of an array document.
pub(crate) fn array_shape(meta: &Value, path: &str) -> Result<Vec<u64>> {
    u64_list(meta.get("shape"), path, "shape")
}

fn level_info(tree: &NodeTree, path: &str) -> Result<(LevelInfo, DataType)> {
    let meta = tree
        .get(path)
        .ok_or_else(|| corrupt(path, format!("the level array '{path}' listed in datasets has no zarr.json")))?;
    let shape = array_shape(meta, path)?;
    let chunk_shape = u64_list(
        meta.get("chunk_grid").and_then(|g| g.get("configuration")).and_then(|c| c.get("chunk_shape")),
        path,
        "chunk_grid.configuration.chunk_shape",
    )?;
    let dt = array_data_type(meta, path)?;
    Ok((LevelInfo { path: path.to_string(), shape, chunk_shape }, dt))
}

fn channel_names(ngff: &Value) -> Option<Vec<String>> {
    let channels = ngff.get("omero")?.get("channels")?.as_array()?;
    channels
        .iter()
        .map(|c| match c.get("label")? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
        .collect()
}

/// Describes a raster element of `kind` from its metadata tree (`""` = the element group, plus one entry per
/// level array).
pub fn describe(kind: RasterKind, tree: &NodeTree) -> Result<RasterInfo> {
    let group = tree
        .get("")
        .ok_or_else(|| corrupt("", "the element group's zarr.json is missing from the tree"))?;
    let ms = multiscale(group)?;
    let dims = ms
        .get("axes")
        .and_then(Value::as_array)
        .ok_or_else(|| corrupt("", "'multiscales[0].axes' is missing"))?
        .iter()
        .map(|a| match a {
            Value::String(s) => Some(s.clone()),
            _ => a.get("name").and_then(Value::as_str).map(str::to_string),
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| corrupt("", "an axis in 'multiscales[0].axes' has no name"))?;
    let mut levels = Vec::new();
    let mut data_type = None;
    for path in dataset_paths(group)? {
        let (info, dt) = level_info(tree, &path)?;
        data_type.get_or_insert(dt);
        levels.push(info);
    }
    let data_type = data_type.ok_or_else(|| corrupt("", "no levels"))?;
    let mut transformations = BTreeMap::new();
    if let Some(list) = ms.get("coordinateTransformations").and_then(Value::as_array) {
        for t in list {
            let (cs, t) = from_ngff_json(t).map_err(|e| corrupt("", format!("multiscales[0].coordinateTransformations: {e}")))?;
            transformations.insert(cs, t);
        }
    }
    Ok(RasterInfo {
        kind,
        dims,
        data_type,
        levels,
        channel_names: channel_names(ngff_attrs(group)),
        channel_labels: ngff_attrs(group)
            .get("omero")
            .and_then(|o| o.get("channels"))
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter_map(|c| c.get("label").cloned()).collect()),
        transformations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A tree as spatialdata 0.8 writes it (zarr-python defaults), with a sharded second level.
    fn spatialdata_tree() -> NodeTree {
        let mut t = NodeTree::new();
        t.insert("".into(), json!({"zarr_format":3,"node_type":"group","attributes":{
            "ome":{"version":"0.5-dev-spatialdata","multiscales":[{
                "datasets":[
                  {"path":"s0","coordinateTransformations":[{"type":"scale","scale":[1.0,1.0,1.0]},{"type":"translation","translation":[0.0,0.0,0.0]}]},
                  {"path":"s1","coordinateTransformations":[{"type":"scale","scale":[1.0,2.0,2.0]},{"type":"translation","translation":[0.0,0.5,0.5]}]}],
                "name":"/images/img",
                "axes":[{"name":"c","type":"channel"},{"name":"y","type":"space"},{"name":"x","type":"space"}],
                "coordinateTransformations":[{"type":"scale","scale":[1.0,2.0,2.0],
                    "input":{"name":"cyx","axes":[{"name":"c","type":"channel"},{"name":"y","type":"space","unit":"unit"},{"name":"x","type":"space","unit":"unit"}]},
                    "output":{"name":"global","axes":[{"name":"c","type":"channel"},{"name":"y","type":"space","unit":"unit"},{"name":"x","type":"space","unit":"unit"}]}}]}],
              "omero":{"channels":[{"label":"r"},{"label":"g"},{"label":"b"}]}},
            "spatialdata_attrs":{"version":"0.3"}}}));
        t.insert("s0".into(), json!({"shape":[3,64,64],"data_type":"uint8",
            "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[3,32,32]}},
            "chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},
            "fill_value":0,"codecs":[{"name":"bytes"},{"name":"zstd","configuration":{"level":0,"checksum":false}}],
            "attributes":{},"dimension_names":["c","y","x"],"zarr_format":3,"node_type":"array","storage_transformers":[]}));
        t.insert("s1".into(), json!({"shape":[3,32,32],"data_type":"uint8",
            "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[3,32,32]}},
            "chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},
            "fill_value":0,"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[3,16,16],
                "codecs":[{"name":"bytes"}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],
                "index_location":"end"}}],
            "attributes":{},"zarr_format":3,"node_type":"array"}));
        t
    }

    #[test]
    fn describes_spatialdata_tree() {
        let info = describe(RasterKind::Image, &spatialdata_tree()).unwrap();
        assert_eq!(info.dims, vec!["c", "y", "x"]);
        assert_eq!(info.data_type, DataType::U8);
        assert_eq!(info.levels.len(), 2);
        assert_eq!(info.levels[0], LevelInfo { path: "s0".into(), shape: vec![3, 64, 64], chunk_shape: vec![3, 32, 32] });
        assert_eq!(info.levels[1].chunk_shape, vec![3, 32, 32]);
        assert_eq!(info.channel_names, Some(vec!["r".to_string(), "g".into(), "b".into()]));
        assert_eq!(info.transformations.get("global"), Some(&Transformation::Scale(vec![1.0, 2.0, 2.0])));
    }

    #[test]
    fn reports_missing_pieces() {
        let mut t = spatialdata_tree();
        t.remove("s1");
        assert!(matches!(describe(RasterKind::Image, &t), Err(Error::CorruptMetadata { .. })));
        assert!(matches!(describe(RasterKind::Image, &NodeTree::new()), Err(Error::CorruptMetadata { .. })));
    }
}
