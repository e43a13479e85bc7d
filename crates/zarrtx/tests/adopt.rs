//! Opening a store written by spatialdata adopts its content as version 0 without rewriting any data.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use zarrtx::{ElementType, RasterArray};

fn write_json(path: &Path, v: serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn array_doc(shape: &[u64], chunks: &[u64], dtype: &str, dims: &[&str]) -> serde_json::Value {
    json!({"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {}, "dimension_names": dims})
}

fn cs(name: &str, axes: &[&str]) -> serde_json::Value {
    let axes: Vec<_> = axes
        .iter()
        .map(|a| if *a == "c" { json!({"name": "c", "type": "channel"}) } else { json!({"name": a, "type": "space", "unit": "unit"}) })
        .collect();
    json!({"name": name, "axes": axes})
}

/// A store laid out as spatialdata 0.8 writes it: one 3-channel image and one labels element, uncompressed.
fn write_spatialdata_like_store(root: &Path) {
    let group = |attrs| json!({"zarr_format": 3, "node_type": "group", "attributes": attrs});
    write_json(&root.join("zarr.json"), group(json!({"spatialdata_attrs": {"version": "0.2", "spatialdata_software_version": "0.8.0"}})));
    for t in ["images", "labels", "points", "shapes", "tables"] {
        write_json(&root.join(t).join("zarr.json"), group(json!({})));
    }
    write_json(&root.join("images/img/zarr.json"), group(json!({"ome": {"version": "0.5-dev-spatialdata",
        "multiscales": [{"axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [{"path": "s0"}],
            "coordinateTransformations": [{"type": "identity", "input": cs("cyx", &["c", "y", "x"]), "output": cs("global", &["c", "y", "x"])}]}],
        "omero": {"channels": [{"label": "r"}, {"label": "g"}, {"label": "b"}]}}, "spatialdata_attrs": {"version": "0.3"}})));
    write_json(&root.join("images/img/s0/zarr.json"), array_doc(&[3, 4, 4], &[3, 4, 4], "uint8", &["c", "y", "x"]));
    let pixels: Vec<u8> = (0..48).collect();
    std::fs::create_dir_all(root.join("images/img/s0/c/0/0")).unwrap();
    std::fs::write(root.join("images/img/s0/c/0/0/0"), &pixels).unwrap();
    write_json(&root.join("labels/lab/zarr.json"), group(json!({"ome": {"version": "0.5-dev-spatialdata",
        "multiscales": [{"axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}], "datasets": [{"path": "s0"}],
            "coordinateTransformations": [{"type": "scale", "scale": [2.0, 2.0], "input": cs("yx", &["y", "x"]), "output": cs("global", &["y", "x"])}]}]},
        "spatialdata_attrs": {"version": "0.3"}})));
    write_json(&root.join("labels/lab/s0/zarr.json"), array_doc(&[4, 4], &[4, 4], "int32", &["y", "x"]));
    std::fs::create_dir_all(root.join("labels/lab/s0/c/0")).unwrap();
    let lab: Vec<u8> = (0..16i32).flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(root.join("labels/lab/s0/c/0/0"), &lab).unwrap();
}

#[test]
fn a_spatialdata_store_is_adopted_without_rewriting_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sd.zarr");
    write_spatialdata_like_store(&root);
    let chunk = root.join("images/img/s0/c/0/0/0");
    let mtime = std::fs::metadata(&chunk).unwrap().modified().unwrap();
    // Several processes' worth of handles adopt at once: one version 0.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| open(&root));
        }
    });
    let store = open(&root);
    assert_eq!(store.version().unwrap(), 0);
    let snap = store.snapshot(None).unwrap();
    let listed: Vec<(String, ElementType)> = snap.elements().into_iter().map(|e| (e.name, e.element_type)).collect();
    assert_eq!(listed, [("img".to_string(), ElementType::Images), ("lab".to_string(), ElementType::Labels)]);
    match snap.read_raster("img", 0, None).unwrap() {
        RasterArray::U8(a) => assert_eq!(a.iter().copied().collect::<Vec<_>>(), (0..48).collect::<Vec<u8>>()),
        other => panic!("{:?}", other.data_type()),
    }
    assert_eq!(std::fs::metadata(&chunk).unwrap().modified().unwrap(), mtime, "data untouched");
    let info = snap.raster_info("img").unwrap();
    assert_eq!(info.channel_names, Some(vec!["r".into(), "g".into(), "b".into()]));
    // The root keeps spatialdata's attributes and gains the consolidated view.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("zarr.json")).unwrap()).unwrap();
    assert_eq!(doc["attributes"]["spatialdata_attrs"]["spatialdata_software_version"], "0.8.0");
    assert!(doc["consolidated_metadata"]["metadata"]["images/img/s0"].is_object());
    // And it can be extended and trimmed like any zarrtx store.
    add_labels(&store, "more", 16, false).unwrap();
    store.delete("lab").unwrap();
    let names: Vec<String> = store.snapshot(None).unwrap().elements().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["img", "more"]);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
