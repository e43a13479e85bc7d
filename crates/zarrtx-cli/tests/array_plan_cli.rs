//! `zarrtx array-plan` / `write-part` / `commit-plan` / `plans` on a plain Zarr v3 hierarchy, end to end with the
//! real binary: one array of an NWB-like hierarchy (as hdmf-zarr writes it) created by four `write-part` processes
//! running at once from one `.npy`, then read back with zarrs as any Zarr reader would; an existing (sharded) array
//! written by another tool filled the same way; bad plans and inputs refused with exit 2 naming the path, leaving
//! the hierarchy as it was.

mod common;

use common::{fails, files, json, ok, run, spawn, values, write_npy};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const DATA: &str = "acquisition/ts/data";

/// An NWB-like hierarchy as hdmf-zarr writes it: a root group with inline consolidated metadata listing an
/// `acquisition` group.
fn nwb_like(path: &Path) {
    std::fs::create_dir_all(path.join("acquisition")).unwrap();
    let group = json!({"zarr_format": 3, "node_type": "group", "attributes": {}});
    let mut listed = group.clone();
    listed["consolidated_metadata"] = json!({"kind": "inline", "must_understand": false, "metadata": {}});
    let root = json!({"zarr_format": 3, "node_type": "group", "attributes": {"nwb_version": "2.9.0"},
        "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": {"acquisition": listed}}});
    std::fs::write(path.join("zarr.json"), serde_json::to_vec_pretty(&root).unwrap()).unwrap();
    std::fs::write(path.join("acquisition/zarr.json"), serde_json::to_vec_pretty(&group).unwrap()).unwrap();
}

/// The array at `path` of the hierarchy at `root`, read whole with zarrs: its shape and values in C order.
fn read(root: &Path, path: &str) -> (Vec<u64>, Vec<u16>) {
    let fs = Arc::new(zarrs::filesystem::FilesystemStore::new(root).unwrap());
    let array =
        zarrs::array::Array::open(fs, &format!("/{path}")).unwrap_or_else(|e| panic!("{path} does not open: {e}"));
    let subset = zarrs::array::ArraySubset::new_with_shape(array.shape().to_vec());
    let data: ndarray::ArrayD<u16> = array.retrieve_array_subset(&subset).unwrap();
    (array.shape().to_vec(), data.iter().copied().collect())
}

/// The root's consolidated metadata entries.
fn consolidated(root: &Path) -> serde_json::Map<String, Value> {
    let doc: Value = serde_json::from_slice(&std::fs::read(root.join("zarr.json")).unwrap()).unwrap();
    doc["consolidated_metadata"]["metadata"].as_object().cloned().unwrap_or_default()
}

/// The hierarchy's files, without zarrtx's private ones.
fn hierarchy_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    files(root).into_iter().filter(|(k, _)| !k.starts_with(".zarrtx")).collect()
}

fn plan_id(plan: &Value) -> String {
    plan["plan_id"].as_str().expect("the plan has an id").to_string()
}

#[test]
fn four_processes_write_an_nwb_array_and_commit_plan_publishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("f.nwb.zarr");
    nwb_like(&root);
    let shape = [1000u64, 12];
    let data = values(1000 * 12);
    let input = dir.path().join("ts.npy");
    write_npy(&input, &shape, &data);
    let plan = json(&[
        &"array-plan", &root, &DATA, &"--parts", &"4", &"--shape", &"1000,12", &"--dtype", &"uint16", &"--chunks",
        &"50,12", &"--dimension-names", &"num_times,num_channels", &"--attrs", &r#"{"unit": "volts"}"#, &"--json",
    ]);
    let id = plan_id(&plan);
    assert_eq!((plan["path"].as_str(), plan["mode"].as_str()), (Some(DATA), Some("create")));
    let parts = json!([[[0, 250], [0, 12]], [[250, 500], [0, 12]], [[500, 750], [0, 12]], [[750, 1000], [0, 12]]]);
    assert_eq!(plan["parts"], parts, "4 parts of 5 chunks along time");
    assert_eq!(plan["chunks"], json!([50, 12]));
    assert_eq!(plan["metadata"]["attributes"]["unit"], "volts");

    // The four parts of the job array, each in its own process, all at once, from the same file.
    let children: Vec<_> =
        (0..4).map(|p| (p, spawn(&[&"write-part", &root, &id, &p.to_string(), &"--input", &input]))).collect();
    for (p, c) in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "part {p}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("wrote part {p}/4 of array {DATA}")), "{stdout}");
    }
    assert!(!root.join("acquisition/ts").exists(), "the array is visible before commit-plan");
    assert!(!consolidated(&root).keys().any(|k| k.starts_with("acquisition/ts")), "listed before commit-plan");

    // A re-run task finds its part done.
    let again = ok(&[&"write-part", &root, &id, &"2", &"--input", &input]);
    assert!(again.contains("part 2 of array acquisition/ts/data") && again.contains("was already written"), "{again}");
    let again = json(&[&"write-part", &root, &id, &"2", &"--input", &input, &"--json"]);
    assert_eq!((again["outcome"].as_str(), again["path"].as_str()), (Some("already_done"), Some(DATA)));
    let status = json(&[&"plans", &root, &id, &"--json"]);
    assert_eq!((status["complete"].as_bool(), status["committed"].is_null()), (Some(true), true));
    assert!(ok(&[&"plans", &root, &id]).contains("part 3 [750..1000, 0..12]: done"));

    let out = ok(&[&"commit-plan", &root, &id]);
    assert!(out.contains("committed array acquisition/ts/data") && out.contains("consolidated metadata"), "{out}");
    let again = json(&[&"commit-plan", &root, &id, &"--json"]);
    assert_eq!(again["already_committed"], true);

    assert_eq!(read(&root, DATA), (shape.to_vec(), data), "zarrs reads the .npy's data");
    let listed = consolidated(&root);
    assert_eq!(listed[DATA]["shape"], json!([1000, 12]));
    assert_eq!(listed[DATA]["attributes"]["unit"], "volts");
    assert_eq!(listed[DATA]["dimension_names"], json!(["num_times", "num_channels"]));
    assert_eq!(listed["acquisition/ts"]["node_type"], "group");
    assert!(listed.contains_key("acquisition"), "existing entries are kept");

    let all = json(&[&"plans", &root, &"--json"]);
    let listed: Vec<&Value> = all.as_array().unwrap().iter().filter(|p| p["plan_id"] == id.as_str()).collect();
    assert_eq!(listed.len(), 1, "{all}");
    assert_eq!((listed[0]["path"].as_str(), listed[0]["mode"].as_str()), (Some(DATA), Some("create")));
    assert_eq!(listed[0]["committed"]["consolidated"], true, "{all}");
    let text = ok(&[&"plans", &root]);
    assert!(text.contains("array acquisition/ts/data (create)  4/4 parts done  committed at"), "{text}");
}

/// An existing sharded uint16 array written by another tool (zarrs, as zarr-python would): shards of 100 × 10 of
/// chunks 25 × 10.
fn existing_sharded_array(root: &Path, path: &str, shape: &[u64], data: &[u16]) {
    let fs = Arc::new(zarrs::filesystem::FilesystemStore::new(root).unwrap());
    let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
    let doc = json!({"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [100, 10]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [25, 10], "codecs": [bytes],
                    "index_codecs": [bytes, {"name": "crc32c"}], "index_location": "end"}}],
        "attributes": {"written_by": "another tool"}});
    let meta: zarrs::array::ArrayMetadata = serde_json::from_value(doc).unwrap();
    let array = zarrs::array::Array::new_with_metadata(fs, &format!("/{path}"), meta).unwrap();
    array.store_metadata().unwrap();
    let subset = zarrs::array::ArraySubset::new_with_shape(shape.to_vec());
    array.store_array_subset(&subset, data.to_vec()).unwrap();
}

#[test]
fn fill_writes_into_an_existing_sharded_array() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h.zarr");
    std::fs::create_dir_all(root.join("g")).unwrap();
    for group in [root.clone(), root.join("g")] {
        std::fs::write(group.join("zarr.json"), br#"{"zarr_format":3,"node_type":"group","attributes":{}}"#).unwrap();
    }
    let shape = [300u64, 10];
    let old: Vec<u16> = values(3000).iter().map(|v| v.wrapping_add(1000)).collect();
    existing_sharded_array(&root, "g/data", &shape, &old);
    let metadata_before = std::fs::read(root.join("g/data/zarr.json")).unwrap();
    let new = values(3000);
    let input = dir.path().join("new.npy");
    write_npy(&input, &shape, &new);

    let plan = json(&[&"array-plan", &root, &"g/data", &"--fill", &"--parts", &"3", &"--json"]);
    let id = plan_id(&plan);
    assert_eq!(plan["mode"], "fill");
    assert_eq!(plan["write_unit"], json!([100, 10]), "parts are whole shards");
    assert_eq!(plan["chunks"], json!([25, 10]), "input blocks follow the inner chunks");
    assert_eq!(plan["metadata"]["attributes"]["written_by"], "another tool");
    let children: Vec<_> =
        (0..3).map(|p| spawn(&[&"write-part", &root, &id, &p.to_string(), &"--input", &input])).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(read(&root, "g/data").1, old, "nothing changes before commit-plan");
    let out = ok(&[&"commit-plan", &root, &id]);
    assert!(out.contains("committed array g/data") && out.contains("filled"), "{out}");
    assert_eq!(read(&root, "g/data"), (shape.to_vec(), new));
    assert_eq!(std::fs::read(root.join("g/data/zarr.json")).unwrap(), metadata_before, "the metadata is kept");
    let text = ok(&[&"plans", &root]);
    assert!(text.contains("array g/data (fill)") && text.contains("committed at"), "{text}");
}

#[test]
fn bad_plans_and_inputs_exit_2_naming_the_path_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("f.nwb.zarr");
    nwb_like(&root);
    let new_array = |path: &str, extra: &[&str]| -> Vec<String> {
        let root = root.display().to_string();
        let mut args: Vec<String> =
            ["array-plan", &root, path, "--shape", "100,8", "--dtype", "int16"].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let refused = |args: Vec<String>| {
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        fails(2, &refs)
    };
    let before = hierarchy_files(&root);
    for (path, extra, needles) in [
        ("acquisition", vec!["--parts", "2"], vec!["'acquisition'", "a group is there", "--fill"]),
        (DATA, vec!["--parts", "11", "--chunks", "10,8"], vec![DATA, "at most 10 parts"]),
        (DATA, vec!["--parts", "2", "--chunks", "10"], vec![DATA, "--chunks has 1 entries"]),
        (DATA, vec!["--parts", "2", "--chunks", "10,8", "--shards", "15,8"], vec![DATA, "whole number of chunks"]),
        (DATA, vec!["--parts", "1", "--fill-value", "\"NaN\""], vec![DATA, "fill value"]),
        ("a/../b", vec!["--parts", "2"], vec!["a/../b", "'..' is not a valid node name"]),
    ] {
        let err = refused(new_array(path, &extra));
        for needle in needles {
            assert!(err.contains(needle), "{path} {extra:?}: no '{needle}' in {err}");
        }
    }
    let err = fails(2, &[&"array-plan", &root, &"acquisition/missing", &"--fill", &"--parts", &"2"]);
    assert!(err.contains("'acquisition/missing'") && err.contains("no array is there to fill"), "{err}");
    let err = fails(2, &[&"array-plan", &root, &"x", &"--fill", &"--shape", &"4", &"--parts", &"1"]);
    assert!(err.contains("--fill") && err.contains("--shape"), "clap refuses new-array options with --fill: {err}");
    assert_eq!(hierarchy_files(&root), before, "a refused plan changed the hierarchy");
    assert_eq!(json(&[&"plans", &root, &"--json"]), json!([]), "a refused plan was recorded");

    // Paths that hold no hierarchy: refused unless --create-hierarchy, which makes one.
    let fresh = dir.path().join("fresh.zarr");
    let err = fails(2, &[&"array-plan", &fresh, &"raw", &"--shape", &"8", &"--dtype", &"uint8", &"--parts", &"1"]);
    assert!(err.contains("--create-hierarchy"), "{err}");
    assert!(!fresh.exists(), "a hierarchy was made without --create-hierarchy");
    let err = fails(2, &[&"plans", &fresh]);
    assert!(err.contains("neither a zarrtx store nor a Zarr v3 hierarchy"), "{err}");
    let create = "--create-hierarchy";
    ok(&[&"array-plan", &fresh, &"raw", &"--shape", &"8", &"--dtype", &"uint8", &"--parts", &"1", &create]);
    assert!(fresh.join("zarr.json").exists(), "--create-hierarchy made the root group");
    let store = dir.path().join("store.zarr");
    ok(&[&"init", &store]);
    let err = fails(2, &[&"array-plan", &store, &"raw", &"--shape", &"8", &"--dtype", &"uint8", &"--parts", &"1"]);
    assert!(err.contains("SpatialData store") && err.contains("zarrtx write-plan"), "{err}");

    // A good plan, then inputs and parts it does not have, a commit with parts missing, and a path now taken.
    let id = plan_id(&json(&[
        &"array-plan", &root, &DATA, &"--shape", &"100,8", &"--dtype", &"uint16", &"--chunks", &"25,8", &"--parts",
        &"4", &"--json",
    ]));
    let input = dir.path().join("in.npy");
    write_npy(&input, &[100, 8], &values(800));
    let other = dir.path().join("other.npy");
    write_npy(&other, &[100, 9], &values(900));
    let err = fails(2, &[&"write-part", &root, &id, &"0", &"--input", &other]);
    assert!(err.contains(&format!("array '{DATA}'")) && err.contains("shape [100, 9]"), "{err}");
    let err = fails(2, &[&"write-part", &root, &id, &"4", &"--input", &input]);
    assert!(err.contains(&format!("array '{DATA}'")) && err.contains("part 4 does not exist"), "{err}");
    ok(&[&"write-part", &root, &id, &"1", &"--input", &input]);
    let err = fails(2, &[&"commit-plan", &root, &id]);
    assert!(err.contains(DATA) && err.contains("parts 0, 2, 3"), "{err}");
    assert!(!root.join(DATA).exists(), "a commit with parts missing published the array");
    let (code, out, _) = run(&[&"plans", &root, &id]);
    assert_eq!(code, 0);
    assert!(out.contains("part 0 [0..25, 0..8]: to write") && out.contains("part 1 [25..50, 0..8]: done"), "{out}");
    for p in [0, 2, 3] {
        ok(&[&"write-part", &root, &id, &p.to_string(), &"--input", &input]);
    }
    ok(&[&"commit-plan", &root, &id]);
    let err = fails(2, &[&"array-plan", &root, &DATA, &"--shape", &"4", &"--dtype", &"uint8", &"--parts", &"1"]);
    assert!(err.contains(&format!("'{DATA}'")) && err.contains("array is there") && err.contains("--fill"), "{err}");
}


#[test]
fn gc_reclaims_a_hierarchys_abandoned_plan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h.zarr");
    let create = "--create-hierarchy";
    ok(&[&"array-plan", &root, &"raw", &"--shape", &"64", &"--dtype", &"uint8", &"--chunks", &"16", &"--parts", &"2", &create]);
    assert_eq!(json(&[&"plans", &root, &"--json"]).as_array().map(Vec::len), Some(1));
    let kept = json(&[&"gc", &root, &"--grace-seconds", &"3600", &"--json"]);
    assert_eq!(kept["removed_count"], 0, "a fresh plan is kept for the grace period: {kept}");
    let report = json(&[&"gc", &root, &"--grace-seconds", &"0", &"--json"]);
    assert_eq!(report["removed_count"], 1, "{report}");
    assert!(report["published_version"].is_null(), "a hierarchy has no versions: {report}");
    assert_eq!(json(&[&"plans", &root, &"--json"]), json!([]));
}
