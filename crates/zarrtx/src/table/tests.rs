//! Unit tests of the table internals (chunking choices, adopted 0-d region lists, code overflow, atomic writes).

use super::chunks::{array_meta, enc, row_chunk, write_whole, Io, Vals};
use super::columns::codes_type;
use super::*;
use crate::name::ElementName;
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use std::sync::Arc;

fn name() -> ElementName {
    ElementName::new("t").unwrap()
}

fn obs(ids: std::ops::Range<usize>, cats: &[String], keys: Vec<i32>) -> RecordBatch {
    let n = ids.len();
    let index: ArrayRef = Arc::new(StringArray::from(ids.clone().map(|i| format!("c{i}")).collect::<Vec<_>>()));
    let dict: ArrayRef = Arc::new(
        DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), Arc::new(StringArray::from(cats.to_vec()))).unwrap(),
    );
    let inst: ArrayRef = Arc::new(Int32Array::from(ids.map(|i| i as i32 + 1).collect::<Vec<_>>()));
    assert_eq!(inst.len(), n);
    let schema = Schema::new(vec![
        Field::new("_index", index.data_type().clone(), false),
        Field::new("region", dict.data_type().clone(), true),
        Field::new("instance_id", inst.data_type().clone(), false),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![index, dict, inst]).unwrap()
}

fn empty_var() -> RecordBatch {
    let idx: ArrayRef = Arc::new(StringArray::from(Vec::<String>::new()));
    RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new("_index", idx.data_type().clone(), false)])), vec![idx]).unwrap()
}

fn table(ids: std::ops::Range<usize>, regions: &[&str]) -> TableData {
    let cats: Vec<String> = regions.iter().map(|s| s.to_string()).collect();
    let keys = ids.clone().map(|i| (i % regions.len()) as i32).collect();
    let mut t = TableData::new(obs(ids, &cats, keys), "_index", empty_var(), "_index");
    t.annotation = Some(Annotation {
        region: cats,
        region_key: "region".into(),
        instance_key: "instance_id".into(),
    });
    t
}

#[test]
fn chunking_choices() {
    assert_eq!(row_chunk(1, "int64"), 4096);
    assert_eq!(row_chunk(2, "float32"), 4096);
    assert_eq!(row_chunk(30_000, "float32"), 8);
    assert_eq!(row_chunk(10_000_000, "float64"), 1);
    assert_eq!(codes_type(2, false), "int8");
    assert_eq!(codes_type(126, false), "int8");
    assert_eq!(codes_type(127, false), "int16");
    assert_eq!(codes_type(2, true), "int16");
    assert_eq!(codes_type(40_000, false), "int32");
}

/// spatialdata writes a single region as a 0-d string (chunk file `c`); an append that adds a region turns it into
/// a 1-D array whose chunk keys (`c.0`) cannot clash with the old file.
#[test]
fn adopted_scalar_region_grows_into_a_list() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut tree = write_table(dir, &name(), &table(0..10, &["lab"]), false).unwrap();
    let path = "uns/spatialdata_attrs/region";
    let scalar = array_meta("string", &[], &[], enc("string", "0.2.0"));
    std::fs::remove_dir_all(dir.join(path).join("c")).unwrap();
    let n = name();
    let io = Io::new(dir, &n).unwrap();
    write_whole(&io, path, &scalar, &Vals::Str(vec!["lab".into()])).unwrap();
    tree.insert(path.into(), scalar);
    tree.get_mut("").unwrap()["attributes"]["region"] = serde_json::json!("lab");
    assert_eq!(read_table(dir, &name(), &tree).unwrap().annotation.unwrap().region, vec!["lab"]);
    assert_eq!(describe(&tree).unwrap().regions, vec!["lab"]);

    let rows = table(10..15, &["lab2"]);
    let plan = plan_append(dir, &name(), &tree, &rows).unwrap();
    assert_eq!(plan.tree[path]["chunk_key_encoding"]["configuration"]["separator"], ".");
    assert_eq!(plan.replaced_files.len(), 1);
    assert_eq!(plan.replaced_files[0].0, "uns/spatialdata_attrs/region/c.0");
    write_append(dir, &name(), &tree, &plan, &rows, false).unwrap();
    for (rel, bytes) in &plan.replaced_files {
        std::fs::write(dir.join(rel), bytes).unwrap();
    }
    let new = read_table(dir, &name(), &plan.tree).unwrap();
    assert_eq!(new.annotation.unwrap().region, vec!["lab", "lab2"]);
    assert_eq!(new.obs.num_rows(), 15);
    assert_eq!(read_table(dir, &name(), &tree).unwrap().annotation.unwrap().region, vec!["lab"]);
}

#[test]
fn category_overflow_of_stored_codes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // An unannotated table with an int8-coded categorical of 126 categories.
    let cats: Vec<String> = (0..126).map(|i| format!("k{i}")).collect();
    let keys: Vec<i32> = (0..126).collect();
    let mut t = TableData::new(obs(0..126, &cats, keys), "_index", empty_var(), "_index");
    t.annotation = None;
    let tree = write_table(dir, &name(), &t, false).unwrap();
    assert_eq!(tree["obs/region/codes"]["data_type"], "int8");
    // Two more categories fit (128 codes 0..=127), three do not.
    let more = |n: usize| {
        let cats: Vec<String> = (0..n).map(|i| format!("new{i}")).collect();
        TableData::new(obs(126..126 + n, &cats, (0..n as i32).collect()), "_index", empty_var(), "_index")
    };
    plan_append(dir, &name(), &tree, &more(2)).unwrap();
    match plan_append(dir, &name(), &tree, &more(3)) {
        Err(crate::Error::InvalidElement { reason, .. }) => assert!(reason.contains("129 categories"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn atomic_put_replaces_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let n = name();
    let io = Io::new(tmp.path(), &n).unwrap();
    let f = tmp.path().join("a/b/c");
    io.put_file(&f, b"one", true).unwrap();
    io.put_file(&f, b"two", true).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"two");
    assert_eq!(std::fs::read_dir(tmp.path().join("a/b")).unwrap().count(), 1);
    io.sync_written().unwrap();
}
