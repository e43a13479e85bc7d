//! End-to-end tests of the `zarrtx` binary: every command, its output formats and its exit codes.

mod common;

use common::{fails, json, ok, read_npy, run, run_command, write_npy, zarrtx};
use serde_json::Value;
use std::fs::File;
use std::path::PathBuf;

fn image_values(n: usize) -> Vec<u16> {
    (0..n).map(|i| (i * 7 % 60000) as u16).collect()
}

fn label_values(n: usize) -> Vec<i32> {
    (0..n).map(|i| (i / 37 % 500) as i32).collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let store = root.join("store.zarr");
        let f = Fixture { _dir: dir, root, store };
        let out = ok(&[&"init", &f.store]);
        assert!(out.contains("created"), "{out}");
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn info(&self, extra: &[&str]) -> Value {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"info", &self.store, &"--json"];
        for e in extra {
            args.push(e);
        }
        json(&args)
    }

    fn names(&self) -> Vec<String> {
        self.info(&[])["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn add_info_read_rm_verify_gc_roundtrip() {
    let f = Fixture::new();
    let img = f.path("img.npy");
    write_npy(&img, &[2, 40, 30], &image_values(2 * 40 * 30));
    let out = ok(&[
        &"add-image",
        &f.store,
        &"img",
        &img,
        &"--channels",
        &"dapi,cd3",
        &"--scales",
        &"2",
        &"--chunks",
        &"1,16,16",
        &"--transform",
        &"global=identity",
        &"--transform",
        &"aligned=scale:1,2,2",
    ]);
    assert!(out.contains("added images/img at version 1"), "{out}");

    // Labels from a TIFF, committed under a writer label.
    let tif = f.path("lab.tif");
    {
        let mut enc = tiff::encoder::TiffEncoder::new(File::create(&tif).unwrap()).unwrap();
        enc.write_image::<tiff::encoder::colortype::GrayI32>(20, 10, &label_values(200))
            .unwrap();
    }
    let (code, out, err) = run_command(
        zarrtx().env("ZARRTX_WRITER_LABEL", "tester"),
        &[&"add-labels", &f.store, &"lab", &tif],
    );
    assert_eq!(code, 0, "{out}{err}");

    let info = f.info(&[]);
    assert_eq!(info["version"], 2);
    let els = info["elements"].as_array().unwrap();
    assert_eq!(els.len(), 2);
    let img_e = els.iter().find(|e| e["name"] == "img").unwrap();
    assert_eq!(img_e["type"], "images");
    assert_eq!(img_e["version"], 1);
    assert_eq!(img_e["dims"], serde_json::json!(["c", "y", "x"]));
    assert_eq!(img_e["dtype"], "uint16");
    assert_eq!(img_e["channels"], serde_json::json!(["dapi", "cd3"]));
    assert_eq!(img_e["levels"].as_array().unwrap().len(), 2);
    assert_eq!(img_e["levels"][0]["shape"], serde_json::json!([2, 40, 30]));
    assert_eq!(img_e["levels"][1]["shape"], serde_json::json!([2, 20, 15]));
    assert_eq!(img_e["coordinate_systems"], serde_json::json!(["aligned", "global"]));
    assert_eq!(img_e["transformations"]["aligned"], "scale:1,2,2");
    assert!(img_e["writer"]["pid"].as_u64().unwrap() > 0);
    let lab_e = els.iter().find(|e| e["name"] == "lab").unwrap();
    assert_eq!(lab_e["type"], "labels");
    assert_eq!(lab_e["dims"], serde_json::json!(["y", "x"]));
    assert_eq!(lab_e["dtype"], "int32");
    assert_eq!(lab_e["writer"]["label"], "tester");

    // Text output names the elements too.
    let text = ok(&[&"info", &f.store]);
    assert!(
        text.contains("images/img") && text.contains("labels/lab") && text.contains("tester"),
        "{text}"
    );

    // read returns exactly what was added, at every level asked for.
    let out_npy = f.path("out.npy");
    ok(&[&"read", &f.store, &"img", &out_npy]);
    assert_eq!(read_npy::<u16>(&out_npy), (vec![2, 40, 30], image_values(2400)));
    ok(&[&"read", &f.store, &"img", &out_npy, &"--level", &"1"]);
    assert_eq!(read_npy::<u16>(&out_npy).0, vec![2, 20, 15]);
    ok(&[&"read", &f.store, &"lab", &out_npy]);
    assert_eq!(read_npy::<i32>(&out_npy), (vec![10, 20], label_values(200)));

    // rm, then time travel to before the delete.
    let out = ok(&[&"rm", &f.store, &"lab"]);
    assert!(out.contains("deleted labels/lab at version 3"), "{out}");
    assert_eq!(f.names(), vec!["img"]);
    assert_eq!(f.info(&["--at-version", "2"])["elements"].as_array().unwrap().len(), 2);
    ok(&[&"read", &f.store, &"lab", &out_npy, &"--at-version", &"2"]);
    assert_eq!(read_npy::<i32>(&out_npy).1, label_values(200));
    let err = fails(2, &[&"read", &f.store, &"lab", &out_npy]);
    assert!(err.contains("'lab'"), "{err}");
    fails(2, &[&"rm", &f.store, &"lab"]);

    // log lists every commit with its writer.
    let log = json(&[&"log", &f.store, &"--json"]);
    let commits = log.as_array().unwrap();
    assert_eq!(
        commits
            .iter()
            .map(|c| c["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(commits[2]["writer"]["label"], "tester");
    assert!(commits[3]["summary"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s.as_str().unwrap().contains("lab")));
    assert!(commits[1]["time"].as_str().unwrap().ends_with('Z'));
    let text = ok(&[&"log", &f.store]);
    assert_eq!(text.lines().count(), 4, "{text}");

    // verify is clean; gc reclaims the deleted element's data once the grace period is over.
    let v = json(&[&"verify", &f.store, &"--json"]);
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(v["version"], 3);
    let text = ok(&[&"verify", &f.store]);
    assert!(text.contains("verdict: clean"), "{text}");
    let g = json(&[&"gc", &f.store, &"--json"]);
    assert_eq!(g["removed_count"], 0, "default grace keeps fresh data: {g}");
    let g = json(&[&"gc", &f.store, &"--grace-seconds", &"0", &"--json"]);
    assert!(g["removed_count"].as_u64().unwrap() >= 1, "{g}");
    assert!(g["bytes_freed"].as_u64().unwrap() > 0, "{g}");
    ok(&[&"verify", &f.store]);
    ok(&[&"read", &f.store, &"img", &out_npy]);
    assert_eq!(read_npy::<u16>(&out_npy).1, image_values(2400));
}

#[test]
fn verify_exits_1_on_leftovers_until_gc() {
    let f = Fixture::new();
    // What a writer killed while staging leaves behind.
    let debris = f.store.join(".zarrtx/staging/0000-crashed-writer");
    std::fs::create_dir_all(debris.join("s0")).unwrap();
    std::fs::write(debris.join("s0/zarr.json"), b"{}").unwrap();
    let (code, out, _) = run(&[&"verify", &f.store]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT clean"), "{out}");
    let (code, out, _) = run(&[&"verify", &f.store, &"--json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clean"], false);
    assert!(!v["leftovers"].as_array().unwrap().is_empty());
    ok(&[&"gc", &f.store, &"--grace-seconds", &"0"]);
    ok(&[&"verify", &f.store]);
}

#[test]
fn streamed_npy_matches_in_memory() {
    let f = Fixture::new();
    let img = f.path("big.npy");
    write_npy(&img, &[3, 70, 50], &image_values(3 * 70 * 50));
    let (code, out, err) = run_command(
        zarrtx().env("ZARRTX_STREAM_THRESHOLD_BYTES", "100"),
        &[
            &"add-image",
            &f.store,
            &"streamed",
            &img,
            &"--chunks",
            &"3,16,16",
            &"--scales",
            &"2",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(streamed)"), "{out}");
    ok(&[
        &"add-image",
        &f.store,
        &"whole",
        &img,
        &"--chunks",
        &"3,16,16",
        &"--scales",
        &"2",
    ]);
    for level in ["0", "1"] {
        let (a, b) = (f.path("a.npy"), f.path("b.npy"));
        ok(&[&"read", &f.store, &"streamed", &a, &"--level", &level]);
        ok(&[&"read", &f.store, &"whole", &b, &"--level", &level]);
        assert_eq!(read_npy::<u16>(&a), read_npy::<u16>(&b), "level {level}");
    }
    ok(&[&"verify", &f.store]);
}

#[test]
fn two_dimensional_image_gains_channel_axis() {
    let f = Fixture::new();
    let p = f.path("gray.npy");
    write_npy(&p, &[12, 9], &(0..108).map(|i| i as f32).collect::<Vec<_>>());
    ok(&[&"add-image", &f.store, &"gray", &p]);
    let info = f.info(&[]);
    assert_eq!(info["elements"][0]["levels"][0]["shape"], serde_json::json!([1, 12, 9]));
    // With explicit --dims the file must match.
    let err = fails(2, &[&"add-image", &f.store, &"gray2", &p, &"--dims", &"cyx"]);
    assert!(err.contains("--dims cyx"), "{err}");
}

#[test]
fn bad_input_exits_2_and_leaves_store_unchanged() {
    let f = Fixture::new();
    let lab = f.path("lab.npy");
    write_npy(&lab, &[8, 8], &label_values(64));
    ok(&[&"add-labels", &f.store, &"keep", &lab]);
    let root_before = std::fs::read(f.store.join("zarr.json")).unwrap();

    let err = fails(2, &[&"add-labels", &f.store, &"bad name", &lab]);
    assert!(err.contains("'bad name'"), "message names the element: {err}");
    let err = fails(2, &[&"add-labels", &f.store, &"__x", &lab]);
    assert!(err.contains("'__x'"), "{err}");
    let err = fails(2, &[&"add-labels", &f.store, &"KEEP", &lab]);
    assert!(err.contains("already exists"), "{err}");
    let flt = f.path("flt.npy");
    write_npy(&flt, &[8, 8], &[0.5f32; 64]);
    let err = fails(2, &[&"add-labels", &f.store, &"floaty", &flt]);
    assert!(err.contains("floaty"), "{err}");
    let err = fails(2, &[&"add-image", &f.store, &"nofile", &f.path("missing.npy")]);
    assert!(err.contains("missing.npy"), "{err}");
    let txt = f.path("data.txt");
    std::fs::write(&txt, b"1 2 3").unwrap();
    fails(2, &[&"add-image", &f.store, &"txt", &txt]);
    fails(2, &[&"add-labels", &f.store, &"x", &lab, &"--dims", &"cyx"]);
    fails(
        2,
        &[
            &"add-labels",
            &f.store,
            &"x",
            &lab,
            &"--transform",
            &"global=scale:1,2,3",
        ],
    );
    fails(
        2,
        &[&"add-labels", &f.store, &"x", &lab, &"--transform", &"global=warp:1"],
    );
    fails(2, &[&"add-labels", &f.store, &"x", &lab, &"--compression", &"lzma"]);
    fails(2, &[&"add-labels", &f.store, &"x", &lab, &"--chunks", &"a,b"]);
    fails(2, &[&"add-labels", &f.store, &"x", &lab, &"--channels", &"a"]);
    fails(
        2,
        &[
            &"add-labels",
            &f.store,
            &"x",
            &lab,
            &"--transform",
            &"g=identity",
            &"--transform",
            &"g=identity",
        ],
    );
    let img = f.path("img.npy");
    write_npy(&img, &[2, 8, 8], &image_values(128));
    fails(2, &[&"add-image", &f.store, &"badch", &img, &"--channels", &"a,b,c"]);
    fails(2, &[&"info", &f.store, &"--at-version", &"99"]);
    fails(2, &[&"read", &f.store, &"keep", &f.path("o.npy"), &"--level", &"7"]);
    fails(2, &[&"frobnicate"]);

    assert_eq!(
        std::fs::read(f.store.join("zarr.json")).unwrap(),
        root_before,
        "the published view changed"
    );
    assert_eq!(f.names(), vec!["keep"]);
    assert_eq!(f.info(&[])["version"], 1);
    ok(&[&"verify", &f.store]);
}

#[test]
fn commands_on_a_missing_store_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nope.zarr");
    for cmd in ["info", "log", "verify"] {
        let err = fails(2, &[&cmd, &nowhere]);
        assert!(err.contains("zarrtx init"), "{err}");
    }
    let lab = dir.path().join("lab.npy");
    write_npy(&lab, &[4, 4], &label_values(16));
    fails(2, &[&"add-labels", &nowhere, &"lab", &lab]);
    assert!(!nowhere.exists(), "add-labels created a store without init");
}

#[test]
fn overwrite_replaces_element() {
    let f = Fixture::new();
    let a = f.path("a.npy");
    let b = f.path("b.npy");
    write_npy(&a, &[4, 4], &[1i32; 16]);
    write_npy(&b, &[6, 5], &[2i32; 30]);
    ok(&[&"add-labels", &f.store, &"seg", &a]);
    ok(&[&"add-labels", &f.store, &"seg", &b, &"--overwrite"]);
    let o = f.path("o.npy");
    ok(&[&"read", &f.store, &"seg", &o]);
    assert_eq!(read_npy::<i32>(&o), (vec![6, 5], vec![2; 30]));
    ok(&[&"read", &f.store, &"seg", &o, &"--at-version", &"1"]);
    assert_eq!(read_npy::<i32>(&o), (vec![4, 4], vec![1; 16]));
}

#[test]
fn demo_writes_every_element_from_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo.zarr");
    let args: [&dyn AsRef<std::ffi::OsStr>; 9] = [
        &"demo",
        &"--store",
        &store,
        &"--workers",
        &"3",
        &"--per-worker",
        &"2",
        &"--size",
        &"64",
    ];
    let out = ok(&args);
    assert!(out.contains("verify: clean"), "{out}");
    // Per worker: 2 images, 2 labels, 1 points and 1 shapes element.
    assert!(out.contains("elements present: 18/18"), "{out}");
    assert!(out.contains("points and shapes: 3 points element(s) and 3 shapes element(s)"), "{out}");
    assert!(out.contains("spatialdata"), "{out}");
    let info = json(&[&"info", &store, &"--json"]);
    let all = info["elements"].as_array().unwrap();
    assert_eq!(all.len(), 19, "12 rasters, 3 points, 3 shapes and the shared table");
    let table = all.iter().find(|e| e["name"] == "cells").expect("the shared table");
    assert_eq!(table["type"], "tables");
    assert_eq!(table["regions"].as_array().unwrap().len(), 6, "one region per labels element");
    assert!(out.contains("every worker's cells present exactly once"), "{out}");
    let els: Vec<&serde_json::Value> = all.iter().filter(|e| e["name"] != "cells").collect();
    let mut pids = std::collections::BTreeSet::new();
    for e in &els {
        let name = e["name"].as_str().unwrap();
        let worker: usize = name[1..3].parse().unwrap();
        assert_eq!(e["writer"]["label"], format!("worker-{worker}"), "{name}");
        pids.insert(e["writer"]["pid"].as_u64().unwrap());
        match e["type"].as_str().unwrap() {
            "images" | "labels" => assert_eq!(e["levels"].as_array().unwrap().len(), 2, "{name}"),
            "points" => {
                assert!(name.ends_with("_points"), "{name}");
                assert!(e["rows"].as_u64().unwrap() > 0, "{name}");
                assert_eq!(e["feature_key"], "gene", "{name}");
                assert_eq!(e["instance_key"], "cell_id", "{name}");
            }
            "shapes" => {
                assert!(name.ends_with("_cells"), "{name}");
                assert!(e["rows"].as_u64().unwrap() > 0, "{name}");
            }
            other => panic!("unexpected element type {other} for {name}"),
        }
    }
    for w in 0..3 {
        assert!(els.iter().any(|e| e["name"] == format!("w{w:02}_points") && e["type"] == "points"));
        assert!(els.iter().any(|e| e["name"] == format!("w{w:02}_cells") && e["type"] == "shapes"));
    }
    assert_eq!(pids.len(), 3, "three distinct worker processes");
    assert!(els.iter().any(|e| e["name"] == "w02_labels_1" && e["dtype"] == "int32"));
    assert!(els.iter().any(|e| e["name"] == "w00_image_0" && e["dtype"] == "uint16"));

    // Running again replaces the previous demo store.
    ok(&args);
    // ... but never a store holding anything else.
    let other = dir.path().join("other.zarr");
    ok(&[&"init", &other]);
    let lab = dir.path().join("lab.npy");
    write_npy(&lab, &[4, 4], &label_values(16));
    ok(&[&"add-labels", &other, &"precious", &lab]);
    let err = fails(
        2,
        &[
            &"demo",
            &"--store",
            &other,
            &"--workers",
            &"1",
            &"--per-worker",
            &"1",
            &"--size",
            &"32",
        ],
    );
    assert!(err.contains("not a demo store"), "{err}");
    assert_eq!(json(&[&"info", &other, &"--json"])["elements"][0]["name"], "precious");
}

#[test]
fn help_and_version_exit_0() {
    let out = ok(&[&"--help"]);
    for cmd in [
        "init",
        "info",
        "log",
        "add-image",
        "add-labels",
        "rm",
        "read",
        "verify",
        "gc",
        "demo",
    ] {
        assert!(out.contains(cmd), "help lacks {cmd}: {out}");
    }
    assert!(!out.contains("demo-worker"), "hidden command shown");
    ok(&[&"add-image", &"--help"]);
    ok(&[&"--version"]);
}
