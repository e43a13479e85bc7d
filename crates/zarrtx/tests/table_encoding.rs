//! AnnData table encoding: round trips of every supported column/matrix/uns type, appends (content, snapshot
//! safety, cost), and the validation errors. `python_interop_fixture` (ignored) writes stores for
//! `tests/python/test_table_encoding_interop.py`.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::*;
use arrow_schema::{DataType, Field, Schema};
use ndarray::{ArrayD, IxDyn};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use zarrtx::meta::NodeTree;
use zarrtx::storage::{DataHandle, PosixStorage, Storage};
use zarrtx::table::{self, Annotation, Matrix, TableData, UnsValue};
use zarrtx::{ElementName, Error, RasterArray};

fn name() -> ElementName {
    ElementName::new("cells").unwrap()
}

fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), a.null_count() > 0 || matches!(a.data_type(), DataType::Dictionary(..))))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn dict(values: &[&str], keys: Vec<Option<i32>>) -> ArrayRef {
    let keys = Int32Array::from(keys);
    Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(values.to_vec()))).unwrap())
}

fn f32_2d(rows: usize, cols: usize, seed: f32) -> RasterArray {
    RasterArray::F32(ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| seed + (i[0] * cols + i[1]) as f32))
}

fn var(n: usize) -> RecordBatch {
    let genes: Vec<String> = (0..n).map(|i| format!("gene{i}")).collect();
    batch(vec![
        ("gene", Arc::new(StringArray::from(genes)) as ArrayRef),
        ("highly_variable", Arc::new(BooleanArray::from((0..n).map(|i| i % 2 == 0).collect::<Vec<_>>()))),
    ])
}

/// A CSR matrix with a few values per row, deterministic in `offset` (the first row's global number).
fn csr(rows: usize, n_vars: usize, offset: usize) -> Matrix {
    let (mut data, mut indices, mut indptr) = (Vec::new(), Vec::new(), vec![0i64]);
    for r in 0..rows {
        let g = r + offset;
        for c in 0..n_vars {
            if (g + c).is_multiple_of(3) {
                data.push((g * 10 + c) as f32);
                indices.push(c as i64);
            }
        }
        indptr.push(data.len() as i64);
    }
    let n = data.len();
    Matrix::Csr {
        shape: [rows as u64, n_vars as u64],
        data: RasterArray::F32(ArrayD::from_shape_vec(IxDyn(&[n]), data).unwrap()),
        indices,
        indptr,
    }
}

/// An annotated table of `rows` rows starting at global row `offset`, in the given regions (round robin).
fn cells(rows: usize, offset: usize, regions: &[&str], n_vars: usize) -> TableData {
    let ids: Vec<String> = (offset..offset + rows).map(|i| format!("cell{i}")).collect();
    let region_keys: Vec<Option<i32>> = (0..rows).map(|i| Some((i % regions.len()) as i32)).collect();
    let instance: Vec<i64> = (offset..offset + rows).map(|i| i as i64 + 1).collect();
    let kinds = ["T", "B", "NK"];
    let obs = batch(vec![
        ("cell_id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("region", dict(regions, region_keys)),
        ("instance_id", Arc::new(Int64Array::from(instance))),
        ("area", Arc::new(Float64Array::from((offset..offset + rows).map(|i| i as f64 * 0.5).collect::<Vec<_>>()))),
        ("n_counts", Arc::new(Int32Array::from((offset..offset + rows).map(|i| (i % 1000) as i32).collect::<Vec<_>>()))),
        (
            "cell_type",
            dict(&kinds, (offset..offset + rows).map(|i| if i % 7 == 0 { None } else { Some((i % 3) as i32) }).collect()),
        ),
        ("label", Arc::new(StringArray::from((offset..offset + rows).map(|i| format!("l{}", i % 5)).collect::<Vec<_>>()))),
    ]);
    let mut t = TableData::new(obs, "cell_id", var(n_vars), "gene");
    t.x = Some(csr(rows, n_vars, offset));
    t.obsm.insert("spatial".into(), f32_2d(rows, 2, offset as f32 * 2.0));
    t.annotation = Some(Annotation {
        region: regions.iter().map(|s| s.to_string()).collect(),
        region_key: "region".into(),
        instance_key: "instance_id".into(),
    });
    t
}

/// Column `name` of `b` as comparable strings (dictionaries resolved, nulls as "∅").
fn column_strings(b: &RecordBatch, name: &str) -> Vec<String> {
    let a = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
    let a: ArrayRef = match a.data_type() {
        DataType::Dictionary(k, _) => {
            let keys: Vec<Option<i64>> = match k.as_ref() {
                DataType::Int8 => a.as_dictionary::<Int8Type>().keys().iter().map(|k| k.map(i64::from)).collect(),
                DataType::Int16 => a.as_dictionary::<Int16Type>().keys().iter().map(|k| k.map(i64::from)).collect(),
                DataType::Int32 => a.as_dictionary::<Int32Type>().keys().iter().map(|k| k.map(i64::from)).collect(),
                DataType::Int64 => a.as_dictionary::<Int64Type>().keys().iter().collect(),
                other => panic!("{other}"),
            };
            let values = a.as_any_dictionary().values().clone();
            let idx = Int64Array::from(keys);
            arrow_select::take::take(values.as_ref(), &idx, None).unwrap()
        }
        _ => a.clone(),
    };
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                "∅".to_string()
            } else {
                match a.data_type() {
                    DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
                    DataType::Boolean => a.as_boolean().value(i).to_string(),
                    DataType::Int8 => a.as_primitive::<Int8Type>().value(i).to_string(),
                    DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
                    DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
                    DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
                    DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).to_string(),
                    DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).to_string(),
                    DataType::Float32 => format!("{:?}", a.as_primitive::<Float32Type>().value(i)),
                    DataType::Float64 => format!("{:?}", a.as_primitive::<Float64Type>().value(i)),
                    other => panic!("{other}"),
                }
            }
        })
        .collect()
}

/// Asserts that `got` holds the same columns (by name and value) as `want`.
fn assert_same_frame(got: &RecordBatch, want: &RecordBatch) {
    assert_eq!(got.num_rows(), want.num_rows());
    assert_eq!(got.num_columns(), want.num_columns(), "{:?} vs {:?}", got.schema(), want.schema());
    for f in want.schema().fields() {
        assert_eq!(column_strings(got, f.name()), column_strings(want, f.name()), "column {}", f.name());
    }
}

/// Dense row-major values of a matrix.
fn dense(m: &Matrix) -> (Vec<u64>, Vec<f64>) {
    fn f64s(a: &RasterArray) -> Vec<f64> {
        match a {
            RasterArray::F32(x) => x.iter().map(|&v| v as f64).collect(),
            RasterArray::F64(x) => x.iter().copied().collect(),
            RasterArray::I32(x) => x.iter().map(|&v| v as f64).collect(),
            other => panic!("{other:?}"),
        }
    }
    match m {
        Matrix::Dense(a) => (a.shape(), f64s(a)),
        Matrix::Csr { shape, data, indices, indptr } => {
            let d = f64s(data);
            let mut out = vec![0.0; (shape[0] * shape[1]) as usize];
            for r in 0..shape[0] as usize {
                for k in indptr[r] as usize..indptr[r + 1] as usize {
                    out[r * shape[1] as usize + indices[k] as usize] = d[k];
                }
            }
            (shape.to_vec(), out)
        }
    }
}

fn concat(a: &TableData, b: &TableData) -> (RecordBatch, Vec<f64>, Vec<f64>) {
    let obs = arrow_select::concat::concat_batches(&a.obs.schema(), [&a.obs, &b.obs]).unwrap();
    let mut x = dense(a.x.as_ref().unwrap()).1;
    x.extend(dense(b.x.as_ref().unwrap()).1);
    let f = |t: &TableData| match &t.obsm["spatial"] {
        RasterArray::F32(s) => s.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let mut spatial = f(a);
    spatial.extend(f(b));
    (obs, x, spatial)
}

/// The table stored in directory `dir`, as a handle on a POSIX storage rooted at its parent directory (so that an
/// append's staging area can sit next to it, as a store's staging areas sit next to its elements).
fn at(dir: &Path) -> DataHandle {
    let storage: Arc<dyn Storage> = Arc::new(PosixStorage::new(dir.parent().unwrap(), false));
    DataHandle::new(storage, dir.file_name().unwrap().to_str().unwrap())
}

/// Stages the planned append next to the table in `dir` ([`table::write_append`] writes nothing into the table),
/// then moves the staged files over the table's in the order returned (what the commit protocol does once the
/// append is committed) and removes the staging area.
fn write_append(
    dir: &Path,
    name: &ElementName,
    tree: &NodeTree,
    plan: &table::AppendPlan,
    rows: &TableData,
    durable: bool,
) -> zarrtx::Result<()> {
    static STAGED: AtomicUsize = AtomicUsize::new(0);
    let live = at(dir);
    let staging = DataHandle::new(live.storage().clone(), format!(".staging-{}", STAGED.fetch_add(1, Ordering::Relaxed)));
    let keys = table::write_append(&live, &staging, name, tree, plan, rows, durable)?;
    for k in &keys {
        assert!(live.storage().replace_file(&staging.key(&table::staged_key(k)), &live.key(k))?, "{k} was staged");
    }
    assert!(staging.list_recursive("")?.is_empty(), "every staged file is installed");
    staging.delete_tree("")?;
    Ok(())
}

/// Writes the `zarr.json` documents of `tree` under `dir` (what publication does).
fn publish_tree(dir: &Path, tree: &NodeTree) {
    for (p, meta) in tree {
        let d = if p.is_empty() { dir.to_path_buf() } else { dir.join(p) };
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("zarr.json"), serde_json::to_vec_pretty(meta).unwrap()).unwrap();
    }
}

fn publish(dir: &Path, plan: &table::AppendPlan) {
    publish_tree(dir, &plan.tree);
    for (rel, bytes) in &plan.replaced_files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

fn expect_invalid<T: std::fmt::Debug>(r: zarrtx::Result<T>, needles: &[&str]) -> String {
    match r {
        Err(Error::InvalidElement { name, reason }) => {
            assert_eq!(name, "cells");
            for n in needles {
                assert!(reason.contains(n), "{reason:?} lacks {n:?}");
            }
            reason
        }
        other => panic!("expected InvalidElement, got {other:?}"),
    }
}

#[test]
fn round_trip_every_column_type_matrix_and_uns() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 6;
    let obs = batch(vec![
        ("_index", Arc::new(StringArray::from((0..n).map(|i| format!("c{i}")).collect::<Vec<_>>())) as ArrayRef),
        ("i64", Arc::new(Int64Array::from(vec![1, -2, 3, 4, 5, i64::MAX]))),
        ("i32", Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5, 6]))),
        ("u16", Arc::new(UInt16Array::from(vec![1, 2, 3, 4, 5, 65535]))),
        ("f32", Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5, 3.5, 4.5, 5.5]))),
        ("f64", Arc::new(Float64Array::from(vec![0.25, 1.0, -2.0, 3.0, 1e300, 0.0]))),
        ("flag", Arc::new(BooleanArray::from(vec![true, false, true, false, true, false]))),
        ("s", Arc::new(StringArray::from(vec!["a", "bé", "", "d", "e", "f"]))),
        ("s_null", Arc::new(StringArray::from(vec![Some("a"), None, Some("c"), None, Some("e"), Some("f")]))),
        ("int_null", Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4), None, Some(6)]))),
        ("bool_null", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false), Some(true), None, Some(false)]))),
        ("cat", dict(&["x", "y", "unused"], vec![Some(0), Some(1), None, Some(0), Some(1), Some(0)])),
        ("region", dict(&["lab", "lab2"], vec![Some(0), Some(0), Some(1), Some(1), Some(0), Some(1)])),
        ("instance_id", Arc::new(Int32Array::from(vec![1, 2, 1, 2, 3, 3]))),
    ]);
    let mut t = TableData::new(obs, "_index", var(3), "gene");
    t.x = Some(Matrix::Dense(f32_2d(n, 3, 0.0)));
    t.layers.insert("counts".into(), csr(n, 3, 0));
    t.layers.insert("dense64".into(), Matrix::Dense(RasterArray::F64(ArrayD::from_elem(IxDyn(&[n, 3]), 2.5))));
    t.obsm.insert("spatial".into(), f32_2d(n, 2, 100.0));
    t.varm.insert("loadings".into(), RasterArray::I32(ArrayD::from_elem(IxDyn(&[3, 4]), 7)));
    let mut inner = BTreeMap::new();
    inner.insert("deep".into(), UnsValue::Dict(BTreeMap::from([("z".to_string(), UnsValue::Str("w".into()))])));
    inner.insert("x".into(), UnsValue::Int(1));
    t.uns = BTreeMap::from([
        ("s".to_string(), UnsValue::Str("hello".into())),
        ("i".to_string(), UnsValue::Int(-3)),
        ("f".to_string(), UnsValue::Float(2.5)),
        ("b".to_string(), UnsValue::Bool(true)),
        ("strs".to_string(), UnsValue::Strings(vec!["p".into(), "q".into()])),
        ("empty_strs".to_string(), UnsValue::Strings(vec![])),
        ("arr".to_string(), UnsValue::Array(RasterArray::I64(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1, 2, 3, 4]).unwrap()))),
        ("d".to_string(), UnsValue::Dict(inner)),
    ]);
    t.annotation = Some(Annotation {
        region: vec!["lab".into(), "lab2".into()],
        region_key: "region".into(),
        instance_key: "instance_id".into(),
    });
    let dir = tmp.path().join("cells");
    let tree = table::write_table(&at(&dir), &name(), &t, true).unwrap();
    // The tree is what is on disk.
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(dir.join("obs/zarr.json")).unwrap()).unwrap(), tree["obs"]);
    assert_eq!(tree[""]["attributes"]["encoding-type"], "anndata");
    assert_eq!(tree[""]["attributes"]["version"], "0.2");
    assert_eq!(tree[""]["attributes"]["region"], serde_json::json!(["lab", "lab2"]));
    assert_eq!(tree["obs/region/codes"]["data_type"], "int16");
    assert_eq!(tree["obs/cat/codes"]["data_type"], "int8");
    assert_eq!(tree["obs/s_null"]["attributes"]["encoding-type"], "nullable-string-array");
    assert_eq!(tree["obs/int_null"]["attributes"]["encoding-type"], "nullable-integer");
    assert_eq!(tree["obs/bool_null"]["attributes"]["encoding-type"], "nullable-boolean");
    assert_eq!(tree["X"]["attributes"]["encoding-type"], "array");
    assert_eq!(tree["layers/counts"]["attributes"]["encoding-type"], "csr_matrix");
    assert_eq!(tree["uns/b"]["attributes"]["encoding-type"], "numeric-scalar");
    assert_eq!(tree["uns/s"]["attributes"]["encoding-type"], "string");

    let back = table::read_table(&at(&dir), &name(), &tree).unwrap();
    assert_same_frame(&back.obs, &t.obs);
    assert_eq!(back.obs_index, "_index");
    assert_same_frame(&back.var, &t.var);
    assert_eq!(back.var_index, "gene");
    assert_eq!(back.x, t.x);
    assert_eq!(back.layers, t.layers);
    assert_eq!(back.obsm, t.obsm);
    assert_eq!(back.varm, t.varm);
    assert_eq!(back.uns, t.uns);
    assert_eq!(back.annotation, t.annotation);
    // Unused categories survive; types are as documented.
    let cat = back.obs.column_by_name("cat").unwrap();
    assert_eq!(cat.data_type(), &DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)));
    assert_eq!(cat.as_any_dictionary().values().len(), 3);
    assert_eq!(back.obs.schema().field_with_name("u16").unwrap().data_type(), &DataType::UInt16);

    let info = table::describe(&tree).unwrap();
    assert_eq!((info.n_obs, info.n_vars), (6, 3));
    assert_eq!(info.columns.len(), 13);
    assert_eq!(info.columns[0].name, "i64");
    assert_eq!(info.x.as_deref(), Some("dense float32"));
    assert_eq!(info.regions, vec!["lab", "lab2"]);
    assert_eq!(info.region_key.as_deref(), Some("region"));
    assert_eq!(info.instance_key.as_deref(), Some("instance_id"));
    assert_eq!(info.layers, vec!["counts", "dense64"]);
}

#[test]
fn empty_table_and_unannotated_table() {
    let tmp = tempfile::tempdir().unwrap();
    let obs = batch(vec![("_index", Arc::new(StringArray::from(Vec::<String>::new())) as ArrayRef)]);
    let t = TableData::new(obs, "_index", var(0), "gene");
    let dir = tmp.path().join("t");
    let tree = table::write_table(&at(&dir), &name(), &t, false).unwrap();
    let back = table::read_table(&at(&dir), &name(), &tree).unwrap();
    assert_eq!(back.obs.num_rows(), 0);
    assert_eq!(back.annotation, None);
    assert!(!tree.contains_key("uns/spatialdata_attrs"));
}

#[test]
fn append_equals_concatenation_and_old_tree_reads_old_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cells");
    let base = cells(5000, 0, &["lab"], 5);
    let tree0 = table::write_table(&at(&dir), &name(), &base, false).unwrap();
    let rows = cells(1234, 5000, &["lab", "lab2"], 5);
    let plan = table::plan_append(&at(&dir), &name(), &tree0, &rows).unwrap();
    assert_eq!((plan.base_rows, plan.new_rows), (5000, 1234));
    assert_eq!(plan.tree[""]["attributes"]["region"], serde_json::json!(["lab", "lab2"]));
    assert_eq!(plan.tree["obs/region/categories"]["shape"], serde_json::json!([2]));
    assert_eq!(plan.replaced_files.len(), 1);
    assert_eq!(plan.replaced_files[0].0, "uns/spatialdata_attrs/region/c/0");
    write_append(&dir, &name(), &tree0, &plan, &rows, true).unwrap();

    // Snapshot safety: before publication (and after), the old tree reads the old table.
    let old = table::read_table(&at(&dir), &name(), &tree0).unwrap();
    assert_same_frame(&old.obs, &base.obs);
    assert_eq!(dense(old.x.as_ref().unwrap()), dense(base.x.as_ref().unwrap()));
    assert_eq!(old.obsm, base.obsm);
    publish(&dir, &plan);
    let old = table::read_table(&at(&dir), &name(), &tree0).unwrap();
    assert_same_frame(&old.obs, &base.obs);
    assert_eq!(old.annotation, base.annotation);

    let new = table::read_table(&at(&dir), &name(), &plan.tree).unwrap();
    let (obs, x, spatial) = concat(&base, &rows);
    assert_same_frame(&new.obs, &obs);
    assert_eq!(dense(new.x.as_ref().unwrap()).1, x);
    match &new.obsm["spatial"] {
        RasterArray::F32(s) => assert_eq!(s.iter().map(|&v| v as f64).collect::<Vec<_>>(), spatial),
        other => panic!("{other:?}"),
    }
    assert_eq!(new.annotation.unwrap().region, vec!["lab", "lab2"]);
    let info = table::describe(&plan.tree).unwrap();
    assert_eq!(info.n_obs, 6234);

    // A second append on top of the grown tree; the first tree still reads the first table.
    let more = cells(10, 6234, &["lab3"], 5);
    let plan2 = table::plan_append(&at(&dir), &name(), &plan.tree, &more).unwrap();
    write_append(&dir, &name(), &plan.tree, &plan2, &more, false).unwrap();
    publish(&dir, &plan2);
    let all = table::read_table(&at(&dir), &name(), &plan2.tree).unwrap();
    assert_eq!(all.obs.num_rows(), 6244);
    assert_eq!(all.annotation.unwrap().region, vec!["lab", "lab2", "lab3"]);
    assert_eq!(column_strings(&all.obs, "region")[6243], "lab3");
    let first = table::read_table(&at(&dir), &name(), &tree0).unwrap();
    assert_same_frame(&first.obs, &base.obs);
}

#[test]
fn append_dense_x_layers_nullable_columns_and_new_categories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cells");
    let mk = |rows: usize, offset: usize, cats: &[&str]| {
        let obs = batch(vec![
            ("_index", Arc::new(StringArray::from((offset..offset + rows).map(|i| format!("c{i}")).collect::<Vec<_>>())) as ArrayRef),
            ("score", Arc::new(Int32Array::from((offset..offset + rows).map(|i| if i % 4 == 0 { None } else { Some(i as i32) }).collect::<Vec<_>>()))),
            ("tag", Arc::new(StringArray::from((offset..offset + rows).map(|i| if i % 5 == 0 { None } else { Some(format!("t{i}")) }).collect::<Vec<_>>()))),
            ("kind", dict(cats, (0..rows).map(|i| Some((i % cats.len()) as i32)).collect())),
        ]);
        let mut t = TableData::new(obs, "_index", var(4), "gene");
        t.x = Some(Matrix::Dense(f32_2d(rows, 4, offset as f32 * 4.0)));
        t.layers.insert("raw".into(), csr(rows, 4, offset));
        t
    };
    let base = mk(4100, 0, &["a", "b"]);
    let tree0 = table::write_table(&at(&dir), &name(), &base, false).unwrap();
    // The batch's dictionary orders categories differently and adds one.
    let rows = mk(50, 4100, &["c", "b", "a"]);
    let plan = table::plan_append(&at(&dir), &name(), &tree0, &rows).unwrap();
    assert!(plan.replaced_files.is_empty());
    write_append(&dir, &name(), &tree0, &plan, &rows, false).unwrap();
    let new = table::read_table(&at(&dir), &name(), &plan.tree).unwrap();
    let obs = arrow_select::concat::concat_batches(&base.obs.schema(), [&base.obs, &rows.obs]).unwrap();
    assert_same_frame(&new.obs, &obs);
    let kind = new.obs.column_by_name("kind").unwrap();
    let cats: Vec<&str> = kind.as_any_dictionary().values().as_string::<i32>().iter().map(|s| s.unwrap()).collect();
    assert_eq!(cats, vec!["a", "b", "c"], "existing categories keep their codes, new ones follow");
    let mut x = dense(base.x.as_ref().unwrap()).1;
    x.extend(dense(rows.x.as_ref().unwrap()).1);
    assert_eq!(dense(new.x.as_ref().unwrap()).1, x);
    let mut l = dense(&base.layers["raw"]).1;
    l.extend(dense(&rows.layers["raw"]).1);
    assert_eq!(dense(&new.layers["raw"]).1, l);
    let old = table::read_table(&at(&dir), &name(), &tree0).unwrap();
    assert_same_frame(&old.obs, &base.obs);
    assert_eq!(old.x, base.x);
    assert_eq!(old.layers, base.layers);
}

#[test]
fn concurrent_reader_of_the_old_tree_always_sees_the_old_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cells");
    let base = cells(300, 0, &["lab"], 3);
    let tree0 = table::write_table(&at(&dir), &name(), &base, false).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (dir, tree0, stop, want) = (dir.clone(), tree0.clone(), stop.clone(), base.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                let t = table::read_table(&at(&dir), &name(), &tree0).unwrap();
                assert_same_frame(&t.obs, &want.obs);
                assert_eq!(dense(t.x.as_ref().unwrap()), dense(want.x.as_ref().unwrap()));
                reads += 1;
            }
            reads
        })
    };
    let mut tree = tree0.clone();
    let mut n = 300;
    for k in 0..15 {
        let rows = cells(7 + k, n, &["lab"], 3);
        let plan = table::plan_append(&at(&dir), &name(), &tree, &rows).unwrap();
        write_append(&dir, &name(), &tree, &plan, &rows, false).unwrap();
        n += 7 + k;
        tree = plan.tree;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(table::read_table(&at(&dir), &name(), &tree).unwrap().obs.num_rows(), n);
}

/// Inode and content of every file under `dir`, by relative path (a replaced file gets a new inode).
fn snapshot(dir: &Path) -> HashMap<PathBuf, (u64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let ino = std::fs::metadata(&p).unwrap().ino();
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), (ino, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn append_cost_is_o1_chunk_files_per_array() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cells");
    let base = cells(100_000, 0, &["lab"], 4);
    let tree0 = table::write_table(&at(&dir), &name(), &base, false).unwrap();
    let before = snapshot(&dir);
    let rows = cells(1000, 100_000, &["lab"], 4);
    let plan = table::plan_append(&at(&dir), &name(), &tree0, &rows).unwrap();
    write_append(&dir, &name(), &tree0, &plan, &rows, false).unwrap();
    let after = snapshot(&dir);
    let changed: Vec<&PathBuf> = after.keys().filter(|p| before.get(*p) != after.get(*p)).collect();
    assert!(before.keys().all(|p| after.contains_key(p)), "no file disappears");
    assert!(changed.iter().all(|p| !p.ends_with("zarr.json")), "no zarr.json is modified");
    let mut per_array: HashMap<String, usize> = HashMap::new();
    for p in &changed {
        let s = p.to_string_lossy();
        let array = s.split("/c/").next().unwrap().to_string();
        *per_array.entry(array).or_default() += 1;
    }
    let arrays = plan.tree.values().filter(|m| m["node_type"] == "array").count();
    assert!(per_array.values().all(|&k| k <= 2), "{per_array:?}");
    assert!(changed.len() <= 2 * arrays, "{} files changed for {arrays} arrays", changed.len());
    // The row-indexed arrays were all touched.
    for a in ["obs/cell_id", "obs/region/codes", "obs/instance_id", "X/data", "X/indices", "X/indptr", "obsm/spatial"] {
        assert!(per_array.contains_key(a), "{a} not written: {per_array:?}");
    }
    let new = table::read_table(&at(&dir), &name(), &plan.tree).unwrap();
    assert_eq!(new.obs.num_rows(), 101_000);
    assert_eq!(column_strings(&new.obs, "cell_id")[100_999], "cell100999");
}

#[test]
fn schema_mismatches_are_refused_naming_the_column() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cells");
    let base = cells(10, 0, &["lab"], 3);
    let tree = table::write_table(&at(&dir), &name(), &base, false).unwrap();
    let good = cells(5, 10, &["lab"], 3);
    let with_obs = |obs: RecordBatch| {
        let mut t = good.clone();
        t.obs = obs;
        t
    };
    let cols = |skip: &str| -> Vec<(&str, ArrayRef)> {
        good.obs
            .schema()
            .fields()
            .iter()
            .zip(good.obs.columns())
            .filter(|(f, _)| f.name() != skip)
            .map(|(f, c)| (f.name().as_str(), c.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(n, c)| (Box::leak(n.to_string().into_boxed_str()) as &str, c))
            .collect()
    };
    // Missing column.
    let missing = with_obs(batch(cols("area")));
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &missing), &["'area'", "missing"]);
    // Extra column.
    let mut c = cols("");
    c.push(("extra", Arc::new(Int32Array::from(vec![1; 5]))));
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &with_obs(batch(c))), &["'extra'", "not in the table"]);
    // Retyped column: n_counts int32 → int64.
    let mut c = cols("n_counts");
    c.push(("n_counts", Arc::new(Int64Array::from(vec![1; 5]))));
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &with_obs(batch(c))), &["'n_counts'", "Int64", "int32"]);
    // Nulls into a column stored without a mask.
    let mut c = cols("n_counts");
    c.push(("n_counts", Arc::new(Int32Array::from(vec![Some(1), None, Some(1), Some(1), Some(1)]))));
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &with_obs(batch(c))), &["'n_counts'", "nulls"]);
    // Different var index.
    let mut other_var = good.clone();
    other_var.var = batch(vec![("gene", Arc::new(StringArray::from(vec!["gene0", "geneX", "gene2"])) as ArrayRef)]);
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &other_var), &["var index", "outer join", "geneX"]);
    // X of another kind.
    let mut dense_x = good.clone();
    dense_x.x = Some(Matrix::Dense(f32_2d(5, 3, 0.0)));
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &dense_x), &["X", "dense"]);
    // Missing obsm.
    let mut no_obsm = good.clone();
    no_obsm.obsm.clear();
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &no_obsm), &["obsm"]);
    // Duplicate instance ids within the batch.
    let mut c = cols("instance_id");
    c.push(("instance_id", Arc::new(Int64Array::from(vec![1, 2, 3, 2, 5]))));
    expect_invalid(table::plan_append(&at(&dir), &name(), &tree, &with_obs(batch(c))), &["instance id 2", "'lab'"]);
    // A stale plan is refused by write_append.
    let plan = table::plan_append(&at(&dir), &name(), &tree, &good).unwrap();
    let other = cells(6, 10, &["lab"], 3);
    expect_invalid(write_append(&dir, &name(), &tree, &plan, &other, false), &["plan_append again"]);
    // The good batch goes through.
    write_append(&dir, &name(), &tree, &plan, &good, false).unwrap();
}

#[test]
fn validation_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x");
    let good = cells(6, 0, &["lab", "lab2"], 3);
    table::validate(&name(), &good).unwrap();
    let replace = |col: &str, arr: ArrayRef| {
        let mut t = good.clone();
        let schema = t.obs.schema();
        let cols: Vec<(&str, ArrayRef)> = schema
            .fields()
            .iter()
            .zip(t.obs.columns())
            .map(|(f, c)| (f.name().as_str(), if f.name() == col { arr.clone() } else { c.clone() }))
            .collect();
        t.obs = batch(cols);
        t
    };
    // Duplicate instance ids within a region (the same id in two regions is fine).
    let dup = replace("instance_id", Arc::new(Int64Array::from(vec![1, 1, 2, 2, 1, 3])));
    expect_invalid(table::validate(&name(), &dup), &["instance id 1", "'lab'", "unique within each region"]);
    let ok = replace("instance_id", Arc::new(Int64Array::from(vec![1, 1, 2, 2, 3, 3])));
    table::validate(&name(), &ok).unwrap();
    // Region column not categorical.
    let plain = replace("region", Arc::new(StringArray::from(vec!["lab", "lab2", "lab", "lab2", "lab", "lab2"])));
    expect_invalid(table::write_table(&at(&dir), &name(), &plain, false), &["'region'", "categorical"]);
    assert!(!dir.exists(), "nothing is written for an invalid table");
    // int8 instance ids.
    let i8s = replace("instance_id", Arc::new(Int8Array::from(vec![1, 2, 3, 4, 5, 6])));
    expect_invalid(table::validate(&name(), &i8s), &["int8", "int32"]);
    let u8s = replace("instance_id", Arc::new(UInt8Array::from(vec![1, 2, 3, 4, 5, 6])));
    expect_invalid(table::validate(&name(), &u8s), &["uint8"]);
    // Null instance id.
    let nul = replace("instance_id", Arc::new(Int64Array::from(vec![Some(1), None, Some(2), Some(3), Some(4), Some(5)])));
    expect_invalid(table::validate(&name(), &nul), &["null"]);
    // Region set mismatch.
    let mut mism = good.clone();
    mism.annotation.as_mut().unwrap().region = vec!["lab".into(), "other".into()];
    expect_invalid(table::validate(&name(), &mism), &["do not match", "other", "lab2"]);
    // Duplicate obs index.
    let dupidx = replace("cell_id", Arc::new(StringArray::from(vec!["a", "b", "c", "a", "e", "f"])));
    expect_invalid(table::validate(&name(), &dupidx), &["not unique", "'a'"]);
    // X shape.
    let mut badx = good.clone();
    badx.x = Some(Matrix::Dense(f32_2d(6, 2, 0.0)));
    expect_invalid(table::validate(&name(), &badx), &["X", "(n_obs, n_vars) = (6, 3)"]);
    // Var index not unique.
    let mut badvar = good.clone();
    badvar.var = batch(vec![("gene", Arc::new(StringArray::from(vec!["g", "g", "h"])) as ArrayRef)]);
    expect_invalid(table::validate(&name(), &badvar), &["var index", "'g'"]);
    // Invalid column names.
    let mut c: Vec<(&str, ArrayRef)> = vec![("cell_id", good.obs.column(0).clone())];
    c.push(("bad name", Arc::new(Int32Array::from(vec![1; 6]))));
    let mut badname = good.clone();
    badname.obs = batch(c);
    badname.annotation = None;
    expect_invalid(table::validate(&name(), &badname), &["'bad name'"]);
    let mut c: Vec<(&str, ArrayRef)> = vec![("cell_id", good.obs.column(0).clone())];
    c.push(("_index", Arc::new(Int32Array::from(vec![1; 6]))));
    let mut reserved = badname.clone();
    reserved.obs = batch(c);
    expect_invalid(table::validate(&name(), &reserved), &["'_index'", "reserved"]);
    // Reserved uns key.
    let mut sd = good.clone();
    sd.uns.insert("spatialdata_attrs".into(), UnsValue::Int(1));
    expect_invalid(table::validate(&name(), &sd), &["spatialdata_attrs"]);
    // Unsupported column type.
    let mut c: Vec<(&str, ArrayRef)> = vec![("cell_id", good.obs.column(0).clone())];
    c.push(("d", Arc::new(Date32Array::from(vec![1; 6]))));
    let mut date = badname.clone();
    date.obs = batch(c);
    expect_invalid(table::validate(&name(), &date), &["'d'", "Date32"]);
}

/// Writes a directory `$TABLE_OUT` for `tests/python/test_table_encoding_interop.py`:
/// - `store.zarr`: a SpatialData store (root + `tables/` groups) with `tables/full` (a table written whole) and
///   `tables/appended` (its first rows written, the rest appended and published), which must read equal;
///   `tables/kinds`, with every column kind, X dense, CSR layer, uns nesting.
/// - With `$TABLE_IN` (a table written by anndata/spatialdata, single region `lab`), appends 3 rows in a new region
///   `lab_new` to it in place (publishing the grown metadata) so Python can read it back.
#[test]
#[ignore]
fn python_interop_fixture() {
    let Some(out) = std::env::var_os("TABLE_OUT") else { return };
    let out = PathBuf::from(out);
    let store = out.join("store.zarr");
    let _ = std::fs::remove_dir_all(&store);
    std::fs::create_dir_all(store.join("tables")).unwrap();
    std::fs::write(store.join("zarr.json"), r#"{"zarr_format":3,"node_type":"group","attributes":{"spatialdata_attrs":{"version":"0.2"}}}"#).unwrap();
    std::fs::write(store.join("tables/zarr.json"), r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#).unwrap();

    let a = cells(5000, 0, &["lab"], 6);
    let b = cells(321, 5000, &["lab", "lab2"], 6);
    let mut full = cells(5321, 0, &["lab"], 6);
    {
        // The concatenation, written whole: regions interleave as in a then b.
        let (obs, _, _) = concat(&a, &b);
        full.obs = obs;
        let xa = a.x.clone().unwrap();
        let xb = b.x.clone().unwrap();
        if let (Matrix::Csr { data: da, indices: ia, indptr: pa, .. }, Matrix::Csr { data: db, indices: ib, indptr: pb, .. }) = (xa, xb) {
            let (RasterArray::F32(da), RasterArray::F32(db)) = (da, db) else { panic!() };
            let mut data: Vec<f32> = da.iter().copied().collect();
            let shift = data.len() as i64;
            data.extend(db.iter().copied());
            let mut indices = ia.clone();
            indices.extend(ib);
            let mut indptr = pa.clone();
            indptr.extend(pb.iter().skip(1).map(|p| p + shift));
            let n = data.len();
            full.x = Some(Matrix::Csr {
                shape: [5321, 6],
                data: RasterArray::F32(ArrayD::from_shape_vec(IxDyn(&[n]), data).unwrap()),
                indices,
                indptr,
            });
        }
        let (RasterArray::F32(sa), RasterArray::F32(sb)) = (&a.obsm["spatial"], &b.obsm["spatial"]) else { panic!() };
        let v: Vec<f32> = sa.iter().chain(sb.iter()).copied().collect();
        full.obsm.insert("spatial".into(), RasterArray::F32(ArrayD::from_shape_vec(IxDyn(&[5321, 2]), v).unwrap()));
        full.annotation.as_mut().unwrap().region = vec!["lab".into(), "lab2".into()];
    }
    table::write_table(&at(&store.join("tables/full")), &ElementName::new("full").unwrap(), &full, true).unwrap();
    let appended = store.join("tables/appended");
    let an = ElementName::new("appended").unwrap();
    let tree = table::write_table(&at(&appended), &an, &a, true).unwrap();
    let plan = table::plan_append(&at(&appended), &an, &tree, &b).unwrap();
    write_append(&appended, &an, &tree, &plan, &b, true).unwrap();
    publish(&appended, &plan);

    // Every kind of column, dense X, CSR layer, uns.
    let n = 4;
    let obs = batch(vec![
        ("_index", Arc::new(StringArray::from(vec!["a", "b", "c", "d"])) as ArrayRef),
        ("i64", Arc::new(Int64Array::from(vec![1, -2, 3, 4]))),
        ("u16", Arc::new(UInt16Array::from(vec![1, 2, 3, 65535]))),
        ("f32", Arc::new(Float32Array::from(vec![Some(0.5), None, Some(2.5), Some(3.5)]))),
        ("flag", Arc::new(BooleanArray::from(vec![true, false, true, false]))),
        ("s", Arc::new(StringArray::from(vec!["a", "bé", "", "d"]))),
        ("s_null", Arc::new(StringArray::from(vec![Some("a"), None, Some("c"), None]))),
        ("int_null", Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)]))),
        ("bool_null", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false), Some(true)]))),
        ("cat", dict(&["x", "y", "unused"], vec![Some(0), Some(1), None, Some(0)])),
        ("region", dict(&["lab"], vec![Some(0); 4])),
        ("instance_id", Arc::new(Int32Array::from(vec![1, 2, 3, 4]))),
    ]);
    let mut t = TableData::new(obs, "_index", var(3), "gene");
    t.x = Some(Matrix::Dense(f32_2d(n, 3, 0.0)));
    t.layers.insert("counts".into(), csr(n, 3, 0));
    t.obsm.insert("spatial".into(), f32_2d(n, 2, 100.0));
    t.varm.insert("loadings".into(), RasterArray::F64(ArrayD::from_elem(IxDyn(&[3, 2]), 0.5)));
    t.uns = BTreeMap::from([
        ("s".to_string(), UnsValue::Str("hello".into())),
        ("i".to_string(), UnsValue::Int(-3)),
        ("f".to_string(), UnsValue::Float(2.5)),
        ("b".to_string(), UnsValue::Bool(true)),
        ("strs".to_string(), UnsValue::Strings(vec!["p".into(), "q".into()])),
        ("arr".to_string(), UnsValue::Array(RasterArray::I64(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1, 2, 3, 4]).unwrap()))),
        ("d".to_string(), UnsValue::Dict(BTreeMap::from([("x".to_string(), UnsValue::Int(1)), ("y".to_string(), UnsValue::Dict(BTreeMap::from([("z".to_string(), UnsValue::Str("w".into()))])))]))),
    ]);
    t.annotation = Some(Annotation { region: vec!["lab".into()], region_key: "region".into(), instance_key: "instance_id".into() });
    table::write_table(&at(&store.join("tables/kinds")), &ElementName::new("kinds").unwrap(), &t, true).unwrap();

    if let Some(input) = std::env::var_os("TABLE_IN") {
        let input = PathBuf::from(input);
        let tree = load_tree(&input);
        let tn = ElementName::new("table").unwrap();
        let existing = table::read_table(&at(&input), &tn, &tree).unwrap();
        let n0 = existing.obs.num_rows();
        let ids: Vec<String> = (0..3).map(|i| format!("new{i}")).collect();
        let schema = existing.obs.schema();
        let mut cols: Vec<(&str, ArrayRef)> = Vec::new();
        for f in schema.fields() {
            let arr: ArrayRef = match f.name().as_str() {
                n if n == existing.obs_index => Arc::new(StringArray::from(ids.clone())),
                "region" => dict(&["lab_new"], vec![Some(0); 3]),
                "instance_id" => Arc::new(Int32Array::from(vec![1, 2, 3])),
                other => panic!("unexpected column {other}"),
            };
            cols.push((Box::leak(f.name().to_string().into_boxed_str()), arr));
        }
        let mut rows = TableData::new(batch(cols), &existing.obs_index, existing.var.clone(), &existing.var_index);
        rows.x = existing.x.as_ref().map(|_| Matrix::Dense(f32_2d(3, existing.n_vars() as usize, 0.0)));
        let plan = table::plan_append(&at(&input), &tn, &tree, &rows).unwrap();
        write_append(&input, &tn, &tree, &plan, &rows, true).unwrap();
        publish(&input, &plan);
        // Remove the consolidated metadata the table group may carry (it would describe the old shapes).
        eprintln!("appended 3 rows to {} rows of {}", n0, input.display());
    }
}

/// Loads every `zarr.json` under `dir` into a tree keyed by relative path, dropping consolidated metadata.
fn load_tree(dir: &Path) -> NodeTree {
    let mut tree = NodeTree::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = d.join("zarr.json");
        if meta.exists() {
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
            if let Some(o) = v.as_object_mut() {
                o.remove("consolidated_metadata");
            }
            let rel = d.strip_prefix(dir).unwrap().to_string_lossy().to_string();
            tree.insert(rel, v);
        }
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && p.join("zarr.json").exists() {
                stack.push(p);
            }
        }
    }
    tree
}
