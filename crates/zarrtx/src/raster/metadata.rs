//! The raster element group's `zarr.json`, exactly as spatialdata 0.8 writes and reads it (container format 0.2,
//! raster format 0.3, `spatialdata-format.md` §2.1 and §9): everything under `ome` (version
//! `0.5-dev-spatialdata`, one multiscale with axes, datasets and the element's coordinate transformations,
//! `omero` channel labels for images, `image-label` for labels) plus `spatialdata_attrs`.

use super::{RasterKind, RasterSpec};
use crate::name::ElementName;
use crate::transform::{to_ngff_json, Transformation, DEFAULT_COORDINATE_SYSTEM};
use serde_json::{json, Value};

/// The `ome.version` spatialdata 0.8 requires for Zarr v3 rasters.
pub const NGFF_VERSION: &str = "0.5-dev-spatialdata";
/// The raster format version spatialdata 0.8 writes in `spatialdata_attrs`.
pub const RASTER_FORMAT_VERSION: &str = "0.3";
/// The `image-label` version ome-zarr writes for labels in NGFF 0.5.
pub const IMAGE_LABEL_VERSION: &str = "0.5";

/// One dataset (level) as listed in `multiscales[0].datasets`.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetEntry {
    /// Path of the level array relative to the element group (`s0`, `s1`, ...).
    pub path: String,
    /// Cumulative scale of the level relative to level 0, one factor per axis (1 on `c`).
    pub scale: Vec<f64>,
}

/// The type group an element of `kind` lives in (`images` or `labels`).
pub fn type_group(kind: RasterKind) -> &'static str {
    match kind {
        RasterKind::Image => "images",
        RasterKind::Labels => "labels",
    }
}

/// The multiscale `axes`: `c` is a `channel` axis, the others `space`, without units.
fn axes_json(dims: &[String]) -> Value {
    Value::Array(
        dims.iter()
            .map(|d| {
                let ty = if d == "c" { "channel" } else { "space" };
                json!({"name": d, "type": ty})
            })
            .collect(),
    )
}

/// The element's coordinate transformations in spatialdata's JSON; an empty map means identity into `global`.
pub fn transformations_json(dims: &[String], transformations: &std::collections::BTreeMap<String, Transformation>) -> Value {
    let axes: Vec<&str> = dims.iter().map(String::as_str).collect();
    if transformations.is_empty() {
        return json!([to_ngff_json(&Transformation::Identity, &axes, DEFAULT_COORDINATE_SYSTEM)]);
    }
    Value::Array(
        transformations
            .iter()
            .map(|(cs, t)| to_ngff_json(t, &axes, cs))
            .collect(),
    )
}

/// The channel labels written to `omero.channels`: the spec's names, or the integers `0`, `1`, ... (what
/// spatialdata writes for an image parsed without channel names; it reads them back as integer `c` coordinates).
pub fn channel_labels(spec: &RasterSpec, n_channels: u64) -> Vec<Value> {
    match &spec.channel_names {
        Some(names) => names.iter().map(|n| json!(n)).collect(),
        None => (0..n_channels).map(|i| json!(i)).collect(),
    }
}

/// The `attributes` of the element group for `spec`, with the levels in `datasets` and `n_channels` entries on
/// the `c` axis (ignored for labels).
pub fn element_attributes(name: &ElementName, spec: &RasterSpec, datasets: &[DatasetEntry], n_channels: u64) -> Value {
    let datasets: Vec<Value> = datasets
        .iter()
        .map(|d| json!({"path": d.path, "coordinateTransformations": [{"type": "scale", "scale": d.scale}]}))
        .collect();
    let multiscale = json!({
        "datasets": datasets,
        "name": format!("/{}/{}", type_group(spec.kind), name),
        "axes": axes_json(&spec.dims),
        "coordinateTransformations": transformations_json(&spec.dims, &spec.transformations),
    });
    let mut ome = serde_json::Map::new();
    ome.insert("version".into(), json!(NGFF_VERSION));
    ome.insert("multiscales".into(), json!([multiscale]));
    match spec.kind {
        RasterKind::Image => {
            let channels: Vec<Value> = channel_labels(spec, n_channels)
                .into_iter()
                .map(|l| json!({"label": l}))
                .collect();
            ome.insert("omero".into(), json!({"channels": channels}));
        }
        RasterKind::Labels => {
            ome.insert("image-label".into(), json!({"version": IMAGE_LABEL_VERSION}));
        }
    }
    json!({"ome": Value::Object(ome), "spatialdata_attrs": {"version": RASTER_FORMAT_VERSION}})
}

/// The complete `zarr.json` of the element group.
pub fn element_group_json(name: &ElementName, spec: &RasterSpec, datasets: &[DatasetEntry], n_channels: u64) -> Value {
    json!({
        "zarr_format": 3,
        "node_type": "group",
        "attributes": element_attributes(name, spec, datasets, n_channels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datasets() -> Vec<DatasetEntry> {
        vec![
            DatasetEntry { path: "s0".into(), scale: vec![1.0, 1.0, 1.0] },
            DatasetEntry { path: "s1".into(), scale: vec![1.0, 2.0, 2.0] },
        ]
    }

    #[test]
    fn image_group_matches_spatialdata() {
        let mut spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
        spec.channel_names = Some(vec!["r".into(), "g".into(), "b".into()]);
        let j = element_group_json(&ElementName::new("img").unwrap(), &spec, &datasets(), 3);
        let ome = &j["attributes"]["ome"];
        assert_eq!(ome["version"], "0.5-dev-spatialdata");
        assert_eq!(ome["omero"]["channels"], json!([{"label": "r"}, {"label": "g"}, {"label": "b"}]));
        let ms = &ome["multiscales"][0];
        assert!(ms.get("version").is_none());
        assert_eq!(ms["name"], "/images/img");
        assert_eq!(ms["axes"], json!([{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]));
        assert_eq!(ms["datasets"][1]["path"], "s1");
        assert_eq!(ms["datasets"][1]["coordinateTransformations"], json!([{"type": "scale", "scale": [1.0, 2.0, 2.0]}]));
        let ct = &ms["coordinateTransformations"];
        assert_eq!(ct.as_array().unwrap().len(), 1);
        assert_eq!(ct[0]["type"], "identity");
        assert_eq!(ct[0]["input"]["name"], "cyx");
        assert_eq!(ct[0]["output"]["name"], "global");
        assert_eq!(j["attributes"]["spatialdata_attrs"], json!({"version": "0.3"}));
        assert!(j["attributes"].get("omero").is_none());
    }

    #[test]
    fn labels_group_and_default_channels() {
        let spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        let ds = vec![DatasetEntry { path: "s0".into(), scale: vec![1.0, 1.0] }];
        let j = element_group_json(&ElementName::new("lab").unwrap(), &spec, &ds, 0);
        let ome = &j["attributes"]["ome"];
        assert_eq!(ome["image-label"], json!({"version": "0.5"}));
        assert!(ome.get("omero").is_none());
        assert_eq!(ome["multiscales"][0]["name"], "/labels/lab");

        let img = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
        let j = element_group_json(&ElementName::new("i").unwrap(), &img, &datasets(), 2);
        assert_eq!(j["attributes"]["ome"]["omero"]["channels"], json!([{"label": 0}, {"label": 1}]));
    }

    #[test]
    fn several_coordinate_systems() {
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.transformations.insert("global".into(), Transformation::Identity);
        spec.transformations.insert("um".into(), Transformation::Scale(vec![0.5, 0.5]));
        let j = transformations_json(&spec.dims, &spec.transformations);
        assert_eq!(j[0]["output"]["name"], "global");
        assert_eq!(j[1]["output"]["name"], "um");
        assert_eq!(j[1]["scale"], json!([0.5, 0.5]));
    }
}
