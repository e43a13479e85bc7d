//! End-to-end tests of `zarrtx add-table`, `zarrtx append` and `info` for tables.

mod common;

use arrow_array::types::Int16Type;
use arrow_array::{ArrayRef, DictionaryArray, Float32Array, Int32Array, RecordBatch, StringArray};
use common::{element, fails, info, new_store, ok, write_npy, write_parquet, write_text as write};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zarrtx::table::Matrix;
use zarrtx::{OpenOptions, RasterArray, Store};

/// A 2-D float64 .npy file of `f(row, col)`.
fn write_matrix(path: &Path, rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) {
    let data: Vec<f64> = (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))).map(|(r, c)| f(r, c)).collect();
    write_npy(path, &[rows as u64, cols as u64], &data);
}

fn table_json(store: &Path, name: &str) -> Value {
    element(&info(store), name).clone()
}

fn open(store: &Path) -> Store {
    Store::open(store, &OpenOptions { create: false, read_only: true, ..Default::default() }).unwrap()
}

/// Sorted (region, instance id) pairs of a table.
fn pairs(store: &Path, name: &str) -> Vec<(String, i64)> {
    let t = open(store).snapshot(None).unwrap().read_table(name).unwrap();
    let a = t.annotation.unwrap();
    let by = zarrtx::table::ids::ids_by_region(name, &t.obs, &a.region_key, &a.instance_key).unwrap();
    let mut v: Vec<(String, i64)> = by.into_iter().flat_map(|(r, ids)| ids.into_iter().map(move |i| (r.clone(), i))).collect();
    v.sort();
    v
}

fn obs_csv(dir: &Path, file: &str, region: &str, ids: std::ops::Range<i64>) -> PathBuf {
    let mut s = String::from("region,instance_id,area,ok,kind,label\n");
    for i in ids {
        s.push_str(&format!("{region},{i},{}.5,{},{},cell {i}\n", i, i % 2 == 0, ["a", "b", "c"][i as usize % 3]));
    }
    write(dir, file, &s)
}

#[test]
fn add_table_then_append_and_info() {
    let d = tempfile::tempdir().unwrap();
    let s = new_store(d.path());
    let obs = obs_csv(d.path(), "o1.csv", "lab", 0..10);
    let x = d.path().join("x.npy");
    write_matrix(&x, 10, 3, |r, c| (r * 10 + c) as f64);
    let out = ok(&[
        &"add-table", &s, &"cells", &"--obs", &obs, &"--x", &x, &"--var-names", &"g0,g1,g2", &"--region-key", &"region",
        &"--instance-key", &"instance_id", &"--categorical", &"kind",
    ]);
    assert!(out.contains("10 rows × 3 vars"), "{out}");

    // Append from Parquet with other integer/float widths: converted to the stored types.
    let keys = arrow_array::Int16Array::from(vec![0i16; 5]);
    let region = DictionaryArray::<Int16Type>::try_new(keys, Arc::new(StringArray::from(vec!["lab2"]))).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        ("region", Arc::new(region) as ArrayRef),
        ("instance_id", Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef),
        ("area", Arc::new(Float32Array::from(vec![0.5f32; 5])) as ArrayRef),
        ("ok", Arc::new(arrow_array::BooleanArray::from(vec![true; 5])) as ArrayRef),
        ("kind", Arc::new(StringArray::from(vec!["z"; 5])) as ArrayRef),
        ("label", Arc::new(StringArray::from(vec!["p"; 5])) as ArrayRef),
    ])
    .unwrap();
    let pq = d.path().join("o2.parquet");
    write_parquet(&pq, &batch);
    let x2 = d.path().join("x2.npy");
    write_matrix(&x2, 5, 3, |r, c| (1000 + r * 10 + c) as f64);
    let out = ok(&[&"append", &s, &"cells", &"--obs", &pq, &"--x", &x2]);
    assert!(out.contains("appended 5 rows") && out.contains("the table has 15 rows"), "{out}");

    let t = table_json(&s, "cells");
    assert_eq!(t["n_obs"], 15);
    assert_eq!(t["n_vars"], 3);
    assert_eq!(t["regions"], serde_json::json!(["lab", "lab2"]));
    assert_eq!(t["region_key"], "region");
    assert_eq!(t["instance_key"], "instance_id");
    assert_eq!(t["x"], "dense float64");
    let cols: Vec<(String, String)> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["encoding"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(String, String)> = [
        ("region", "categorical"),
        ("instance_id", "array"),
        ("area", "array"),
        ("ok", "array"),
        ("kind", "categorical"),
        ("label", "nullable-string-array"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(cols, want);
    let text = ok(&[&"info", &s]);
    assert!(text.contains("15 obs × 3 vars") && text.contains("regions (2): lab, lab2"), "{text}");

    let table = open(&s).snapshot(None).unwrap().read_table("cells").unwrap();
    let Some(Matrix::Dense(RasterArray::F64(x))) = &table.x else { panic!("dense float64 X") };
    assert_eq!(x[[12, 1]], 1021.0);
    assert_eq!(x[[3, 2]], 32.0);
    let idx = table.obs.column_by_name(&table.obs_index).unwrap();
    let idx = idx.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!((idx.value(0), idx.value(14)), ("lab_0", "lab2_5"), "generated index <region>_<id>");
}

#[test]
fn bad_input_exits_2_with_the_engines_message() {
    let d = tempfile::tempdir().unwrap();
    let s = new_store(d.path());
    let keys: [&dyn AsRef<std::ffi::OsStr>; 4] = [&"--region-key", &"region", &"--instance-key", &"instance_id"];
    let obs = obs_csv(d.path(), "o.csv", "lab", 0..4);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"add-table", &s, &"t", &"--obs", &obs];
    args.extend(keys);
    ok(&args);
    // Duplicate instance ids against the committed rows.
    let dup = obs_csv(d.path(), "dup.csv", "lab", 3..6);
    let err = fails(2, &[&"append", &s, &"t", &"--obs", &dup]);
    assert!(err.contains("instance id 3 already exists for region 'lab'"), "{err}");
    // Duplicates within the batch.
    let twice = write(d.path(), "twice.csv", "region,instance_id,area,ok,kind,label\nlab,9,1,true,a,x\nlab,9,1,true,a,x\n");
    let err = fails(2, &[&"append", &s, &"t", &"--obs", &twice]);
    assert!(err.contains("unique") || err.contains("twice") || err.contains("already"), "{err}");
    // Schema mismatch: a missing column, an extra column, a retyped column.
    let missing = write(d.path(), "m.csv", "region,instance_id,area\nlab,20,1\n");
    let err = fails(2, &[&"append", &s, &"t", &"--obs", &missing]);
    assert!(err.contains("'ok'") && err.contains("missing"), "{err}");
    let extra = write(d.path(), "e.csv", "region,instance_id,area,ok,kind,label,more\nlab,21,1,true,a,x,1\n");
    let err = fails(2, &[&"append", &s, &"t", &"--obs", &extra]);
    assert!(err.contains("'more'"), "{err}");
    let retyped = write(d.path(), "r.csv", "region,instance_id,area,ok,kind,label\nlab,22,notanumber,true,a,x\n");
    let err = fails(2, &[&"append", &s, &"t", &"--obs", &retyped]);
    assert!(err.contains("'area'"), "{err}");
    // Float instance ids, missing region column, a name taken by another table, a missing file.
    let float_ids = write(d.path(), "f.csv", "region,instance_id\nlab,1.5\n");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"add-table", &s, &"u", &"--obs", &float_ids];
    args.extend(keys);
    let err = fails(2, &args);
    assert!(err.contains("instance"), "{err}");
    let no_region = write(d.path(), "nr.csv", "instance_id\n1\n");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"add-table", &s, &"u", &"--obs", &no_region];
    args.extend(keys);
    let err = fails(2, &args);
    assert!(err.contains("--region"), "{err}");
    let err = fails(2, &[&"add-table", &s, &"t", &"--obs", &obs]);
    assert!(err.contains("exists") || err.contains("taken"), "{err}");
    fails(2, &[&"append", &s, &"t", &"--obs", &d.path().join("absent.csv")]);
    // X of the wrong width.
    let ok_rows = obs_csv(d.path(), "ok.csv", "lab", 100..102);
    let x = d.path().join("x.npy");
    write_matrix(&x, 2, 4, |_, _| 1.0);
    let err = fails(2, &[&"append", &s, &"t", &"--obs", &ok_rows, &"--x", &x]);
    assert!(err.contains("X") || err.contains("var"), "{err}");
    // Nothing of that was committed.
    assert_eq!(table_json(&s, "t")["n_obs"], 4);
    ok(&[&"verify", &s]);
}

#[test]
fn append_creates_the_table_and_fills_a_single_region() {
    let d = tempfile::tempdir().unwrap();
    let s = new_store(d.path());
    let rows = write(d.path(), "r.csv", "instance_id,score\n1,0.5\n2,0.25\n");
    let out = ok(&[
        &"append", &s, &"cells", &"--obs", &rows, &"--region-key", &"region", &"--instance-key", &"instance_id", &"--region",
        &"labelsA",
    ]);
    assert!(out.contains("created"), "{out}");
    // Later appends take the table's keys; --region fills the region column.
    ok(&[&"append", &s, &"cells", &"--obs", &rows, &"--region", &"labelsB"]);
    assert_eq!(
        pairs(&s, "cells"),
        vec![("labelsA".into(), 1), ("labelsA".into(), 2), ("labelsB".into(), 1), ("labelsB".into(), 2)]
    );
}

#[test]
fn unannotated_table_with_x_from_parquet_and_var_file() {
    let d = tempfile::tempdir().unwrap();
    let s = new_store(d.path());
    let obs = write(d.path(), "o.csv", "name,n\nc1,1\nc2,2\n");
    let xb = RecordBatch::try_from_iter(vec![
        ("CD3", Arc::new(Float32Array::from(vec![1.0f32, 2.0])) as ArrayRef),
        ("CD8", Arc::new(Float32Array::from(vec![3.0f32, 4.0])) as ArrayRef),
    ])
    .unwrap();
    let xp = d.path().join("x.parquet");
    write_parquet(&xp, &xb);
    ok(&[&"add-table", &s, &"plain", &"--obs", &obs, &"--x", &xp, &"--index", &"name"]);
    let t = table_json(&s, "plain");
    assert_eq!((t["n_obs"].as_u64(), t["n_vars"].as_u64(), t["x"].as_str()), (Some(2), Some(2), Some("dense float32")));
    assert_eq!(t["obs_index"], "name");
    let var = write(d.path(), "var.csv", "gene,panel\nCD3,a\nCD8,b\n");
    ok(&[&"add-table", &s, &"withvar", &"--obs", &obs, &"--x", &xp, &"--var", &var, &"--index", &"name"]);
    let table = open(&s).snapshot(None).unwrap().read_table("withvar").unwrap();
    assert_eq!(table.var_index, "gene");
    assert_eq!(table.var.num_columns(), 2);
    // Appending to it: var comes from the table.
    let more = write(d.path(), "m.csv", "name,n\nc3,3\n");
    let x3 = d.path().join("x3.npy");
    write_matrix(&x3, 1, 2, |_, c| c as f64);
    ok(&[&"append", &s, &"withvar", &"--obs", &more, &"--x", &x3, &"--index", &"name"]);
    assert_eq!(table_json(&s, "withvar")["n_obs"], 3);
    // --overwrite replaces.
    ok(&[&"add-table", &s, &"plain", &"--obs", &more, &"--index", &"name", &"--overwrite"]);
    assert_eq!(table_json(&s, "plain")["n_obs"], 1);
}

#[test]
fn concurrent_cli_appends_keep_every_row_once() {
    let d = tempfile::tempdir().unwrap();
    let s = new_store(d.path());
    let first = obs_csv(d.path(), "r0.csv", "r0", 0..20);
    ok(&[&"add-table", &s, &"cells", &"--obs", &first, &"--region-key", &"region", &"--instance-key", &"instance_id"]);
    let inputs: Vec<(PathBuf, PathBuf)> = (0..8)
        .map(|p| {
            (
                obs_csv(d.path(), &format!("own{p}.csv"), &format!("own{p}"), 0..30),
                obs_csv(d.path(), &format!("sh{p}.csv"), "shared", 1000 * p..1000 * p + 30),
            )
        })
        .collect();
    let children: Vec<_> = inputs
        .iter()
        .map(|(own, shared)| {
            let (s, own, shared) = (s.clone(), own.clone(), shared.clone());
            std::thread::spawn(move || {
                ok(&[&"append", &s, &"cells", &"--obs", &own]);
                ok(&[&"append", &s, &"cells", &"--obs", &shared]);
            })
        })
        .collect();
    for c in children {
        c.join().unwrap();
    }
    let got = pairs(&s, "cells");
    let mut want: BTreeSet<(String, i64)> = (0..20).map(|i| ("r0".to_string(), i)).collect();
    for p in 0..8i64 {
        want.extend((0..30).map(|i| (format!("own{p}"), i)));
        want.extend((1000 * p..1000 * p + 30).map(|i| ("shared".to_string(), i)));
    }
    assert_eq!(got.len(), want.len(), "every row exactly once");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    ok(&[&"verify", &s]);
}
