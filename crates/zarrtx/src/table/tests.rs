//! Unit tests of the table internals (chunking choices, adopted 0-d region lists, code overflow) and of appends
//! through a staging area: on an in-memory storage end to end, the live table unchanged until installation, and a
//! losing appender changing nothing.

use super::chunks::{array_meta, enc, row_chunk, write_whole, Io, Vals};
use super::columns::codes_type;
use super::*;
use crate::name::ElementName;
use crate::storage::{DataHandle, MemoryOptions, MemoryStorage, PosixStorage, Storage};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::sync::Arc;

fn name() -> ElementName {
    ElementName::new("t").unwrap()
}

/// The table `tables/t` of a fresh in-memory storage.
fn memory() -> DataHandle {
    DataHandle::new(Arc::new(MemoryStorage::new()), "tables/t")
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

fn var(n: usize) -> RecordBatch {
    let idx: ArrayRef = Arc::new(StringArray::from((0..n).map(|i| format!("g{i}")).collect::<Vec<_>>()));
    RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new("_index", idx.data_type().clone(), false)])), vec![idx]).unwrap()
}

fn table(ids: std::ops::Range<usize>, regions: &[&str]) -> TableData {
    let cats: Vec<String> = regions.iter().map(|s| s.to_string()).collect();
    let keys = ids.clone().map(|i| (i % regions.len()) as i32).collect();
    let mut t = TableData::new(obs(ids, &cats, keys), "_index", var(0), "_index");
    t.annotation = Some(Annotation {
        region: cats,
        region_key: "region".into(),
        instance_key: "instance_id".into(),
    });
    t
}

/// [`table`] with 3 variables, a dense X and obsm `spatial` whose values derive from the global row number.
fn cells(ids: std::ops::Range<usize>, regions: &[&str]) -> TableData {
    let (first, n) = (ids.start, ids.len());
    let mut t = table(ids, regions);
    t.var = var(3);
    t.x = Some(Matrix::Dense(crate::RasterArray::F32(ArrayD::from_shape_fn(IxDyn(&[n, 3]), |i| {
        ((first + i[0]) * 3 + i[1]) as f32
    }))));
    t.obsm.insert(
        "spatial".into(),
        crate::RasterArray::F64(ArrayD::from_shape_fn(IxDyn(&[n, 2]), |i| (first + i[0]) as f64 + i[1] as f64 * 0.5)),
    );
    t
}

/// Every row of `t` as one comparable string: index, region (resolved), instance id, X row, spatial row.
fn rows_of(t: &TableData) -> Vec<String> {
    let index = t.obs.column_by_name(&t.obs_index).unwrap().as_string::<i32>().clone();
    let region = t.obs.column_by_name("region").unwrap();
    let dict = region.as_any_dictionary();
    let keys = dict.normalized_keys();
    let values = dict.values().as_string::<i32>().clone();
    let inst = t.obs.column_by_name("instance_id").unwrap();
    let inst: Vec<i64> = match inst.data_type() {
        arrow_schema::DataType::Int32 => inst.as_primitive::<Int32Type>().values().iter().map(|&v| v as i64).collect(),
        _ => inst.as_primitive::<Int64Type>().values().to_vec(),
    };
    let x: Vec<f32> = match &t.x {
        Some(Matrix::Dense(crate::RasterArray::F32(a))) => a.iter().copied().collect(),
        _ => Vec::new(),
    };
    let spatial: Vec<f64> = match t.obsm.get("spatial") {
        Some(crate::RasterArray::F64(a)) => a.iter().copied().collect(),
        _ => Vec::new(),
    };
    let (nx, ns) = (t.n_vars() as usize, 2);
    (0..t.obs.num_rows())
        .map(|r| {
            let xr = x.get(r * nx..(r + 1) * nx).unwrap_or_default();
            let sr = spatial.get(r * ns..(r + 1) * ns).unwrap_or_default();
            format!("{}|{}|{}|{xr:?}|{sr:?}", index.value(r), values.value(keys[r]), inst[r])
        })
        .collect()
}

/// Every object below `h` with its bytes.
fn dump(h: &DataHandle) -> BTreeMap<String, Vec<u8>> {
    h.list_recursive("").unwrap().into_iter().map(|(k, _)| (k.clone(), h.get(&k).unwrap().unwrap())).collect()
}

/// Stages the planned append in `staging/<tag>` of the live table's storage and returns that handle and the keys.
fn stage(live: &DataHandle, tag: &str, tree: &crate::meta::NodeTree, plan: &AppendPlan, rows: &TableData) -> (DataHandle, Vec<String>) {
    let staging = DataHandle::new(live.storage().clone(), format!("staging/{tag}"));
    let keys = write_append(live, &staging, &name(), tree, plan, rows, false).unwrap();
    (staging, keys)
}

/// Moves staged files over the live table's (what the commit protocol does once the append is committed).
fn install(live: &DataHandle, staging: &DataHandle, keys: &[String]) {
    install_staged_files(live.storage().as_ref(), staging.prefix(), live.prefix(), keys).unwrap();
}

/// Plans, stages and installs an append; returns the plan.
fn append(live: &DataHandle, tree: &crate::meta::NodeTree, rows: &TableData) -> AppendPlan {
    let plan = plan_append(live, &name(), tree, rows).unwrap();
    let (staging, keys) = stage(live, "s", tree, &plan, rows);
    install(live, &staging, &keys);
    assert!(staging.list_recursive("").unwrap().is_empty(), "every staged file was moved");
    plan
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
    let live = memory();
    let mut tree = write_table(&live, &name(), &table(0..10, &["lab"]), false).unwrap();
    let path = "uns/spatialdata_attrs/region";
    let scalar = array_meta("string", &[], &[], enc("string", "0.2.0"));
    live.delete_tree(&format!("{path}/c")).unwrap();
    let n = name();
    write_whole(&Io::new(&live, &n), path, &scalar, &Vals::Str(vec!["lab".into()])).unwrap();
    tree.insert(path.into(), scalar);
    tree.get_mut("").unwrap()["attributes"]["region"] = serde_json::json!("lab");
    assert_eq!(read_table(&live, &name(), &tree).unwrap().annotation.unwrap().region, vec!["lab"]);
    assert_eq!(describe(&tree).unwrap().regions, vec!["lab"]);

    let rows = table(10..15, &["lab2"]);
    let plan = plan_append(&live, &name(), &tree, &rows).unwrap();
    assert_eq!(plan.tree[path]["chunk_key_encoding"]["configuration"]["separator"], ".");
    assert_eq!(plan.replaced_files.len(), 1);
    assert_eq!(plan.replaced_files[0].0, "uns/spatialdata_attrs/region/c.0");
    let (staging, keys) = stage(&live, "s", &tree, &plan, &rows);
    assert_eq!(keys.last().map(String::as_str), Some("uns/spatialdata_attrs/region/c.0"), "the region list goes last");
    install(&live, &staging, &keys);
    let new = read_table(&live, &name(), &plan.tree).unwrap();
    assert_eq!(new.annotation.unwrap().region, vec!["lab", "lab2"]);
    assert_eq!(new.obs.num_rows(), 15);
    assert_eq!(read_table(&live, &name(), &tree).unwrap().annotation.unwrap().region, vec!["lab"]);
}

#[test]
fn category_overflow_of_stored_codes_is_refused() {
    let live = memory();
    // An unannotated table with an int8-coded categorical of 126 categories.
    let cats: Vec<String> = (0..126).map(|i| format!("k{i}")).collect();
    let keys: Vec<i32> = (0..126).collect();
    let mut t = TableData::new(obs(0..126, &cats, keys), "_index", var(0), "_index");
    t.annotation = None;
    let tree = write_table(&live, &name(), &t, false).unwrap();
    assert_eq!(tree["obs/region/codes"]["data_type"], "int8");
    // Two more categories fit (128 codes 0..=127), three do not.
    let more = |n: usize| {
        let cats: Vec<String> = (0..n).map(|i| format!("new{i}")).collect();
        TableData::new(obs(126..126 + n, &cats, (0..n as i32).collect()), "_index", var(0), "_index")
    };
    plan_append(&live, &name(), &tree, &more(2)).unwrap();
    match plan_append(&live, &name(), &tree, &more(3)) {
        Err(crate::Error::InvalidElement { reason, .. }) => assert!(reason.contains("129 categories"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// Writing, appending (twice) and reading a table entirely on the in-memory backend: no local path anywhere.
#[test]
fn write_append_read_on_memory_storage() {
    let storage = Arc::new(MemoryStorage::with_options(MemoryOptions { name: "tables-only".into(), ..Default::default() }));
    let live = DataHandle::new(storage, "tables/t");
    let base = cells(0..5000, &["a"]);
    let tree0 = write_table(&live, &name(), &base, true).unwrap();
    assert_eq!(rows_of(&read_table(&live, &name(), &tree0).unwrap()), rows_of(&base));
    let first = cells(5000..5100, &["a", "b"]);
    let plan1 = append(&live, &tree0, &first);
    let second = cells(5100..9000, &["c"]);
    let plan2 = append(&live, &plan1.tree, &second);
    let all = read_table(&live, &name(), &plan2.tree).unwrap();
    let want: Vec<String> = [&base, &first, &second].iter().flat_map(|t| rows_of(t)).collect();
    assert_eq!(rows_of(&all), want);
    assert_eq!(all.annotation.unwrap().region, vec!["a", "b", "c"]);
    // Each committed tree still reads its own table.
    assert_eq!(rows_of(&read_table(&live, &name(), &tree0).unwrap()), rows_of(&base));
    assert_eq!(read_table(&live, &name(), &plan1.tree).unwrap().obs.num_rows(), 5100);
    // A missing table is an error naming it, not a table of fill values.
    let err = read_table(&DataHandle::new(live.storage().clone(), "tables/gone"), &name(), &tree0).unwrap_err();
    assert!(err.to_string().contains("tables/gone"), "{err}");
}

/// `write_append` writes into the staging area only: the live table is byte-for-byte unchanged until the staged
/// files are installed, after which it reads back with the new rows (and the old tree with the old ones).
#[test]
fn staged_append_leaves_the_live_table_unchanged_until_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let posix: Arc<dyn Storage> = Arc::new(PosixStorage::new(tmp.path(), true));
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    for storage in [posix, mem] {
        let live = DataHandle::new(storage.clone(), "tables/t");
        let base = cells(0..5000, &["a"]);
        let tree0 = write_table(&live, &name(), &base, true).unwrap();
        let rows = cells(5000..5100, &["a", "b"]);
        let plan = plan_append(&live, &name(), &tree0, &rows).unwrap();
        let before = dump(&live);
        let staging = DataHandle::new(storage.clone(), "staging/x");
        let keys = write_append(&live, &staging, &name(), &tree0, &plan, &rows, true).unwrap();
        assert_eq!(dump(&live), before, "nothing of the live table changed");
        let staged: Vec<String> = staging.list_recursive("").unwrap().into_iter().map(|(k, _)| k).collect();
        let mut want: Vec<String> = keys.iter().map(|k| staged_key(k)).collect();
        want.sort();
        assert_eq!(staged, want, "exactly the returned keys are staged, flat (no directory tree)");
        assert_eq!(staging.list("").unwrap(), want);
        assert!(keys.iter().all(|k| !k.ends_with("zarr.json")));
        // The boundary chunks (holding committed rows 4096..5000) are staged whole, under the live keys.
        for k in ["obs/_index/c/1", "obs/instance_id/c/1", "obs/region/codes/c/1", "X/c/1/0", "obsm/spatial/c/1/0"] {
            assert!(keys.contains(&k.to_string()) && before.contains_key(k), "{k}: {keys:?}");
        }
        assert_eq!(keys.first().map(String::as_str), Some("obs/region/categories/c/0"), "categories first");
        assert_eq!(keys.last().map(String::as_str), Some("uns/spatialdata_attrs/region/c/0"), "region list last");

        let installed = install_staged_files(storage.as_ref(), staging.prefix(), live.prefix(), &keys).unwrap();
        assert_eq!(installed, keys.iter().map(|k| live.key(k)).collect::<Vec<_>>());
        storage.sync(&installed).unwrap();
        assert!(staging.list_recursive("").unwrap().is_empty());
        let new = read_table(&live, &name(), &plan.tree).unwrap();
        let want: Vec<String> = rows_of(&base).into_iter().chain(rows_of(&rows)).collect();
        assert_eq!(rows_of(&new), want);
        assert_eq!(rows_of(&read_table(&live, &name(), &tree0).unwrap()), rows_of(&base));
        // Installing again (a roll-forward after an interruption) finds everything moved and changes nothing.
        let after = dump(&live);
        install_staged_files(storage.as_ref(), staging.prefix(), live.prefix(), &keys).unwrap();
        assert_eq!(dump(&live), after);
        // A staged file that is in neither place is an error.
        let lost = vec!["obs/_index/c/99".to_string()];
        assert!(install_staged_files(storage.as_ref(), staging.prefix(), live.prefix(), &lost).is_err());
    }
}

/// Two appends planned against the same committed table: the second one's staging writes change nothing of the
/// live table, before or after the first one is installed, so the rows the first one committed stay intact.
#[test]
fn a_losing_appender_changes_nothing() {
    let live = memory();
    let base = cells(0..5000, &["a"]);
    let tree0 = write_table(&live, &name(), &base, false).unwrap();
    let winner = cells(5000..5100, &["a", "b"]);
    let loser = cells(7000..7050, &["c"]);
    let plan_w = plan_append(&live, &name(), &tree0, &winner).unwrap();
    let plan_l = plan_append(&live, &name(), &tree0, &loser).unwrap();
    assert_eq!((plan_w.base_rows, plan_l.base_rows), (5000, 5000));
    let (staging_w, keys_w) = stage(&live, "w", &tree0, &plan_w, &winner);
    let (_, keys_l) = stage(&live, "l1", &tree0, &plan_l, &loser);
    assert!(keys_l.iter().any(|k| keys_w.contains(k)), "both staged the same boundary chunks");
    install(&live, &staging_w, &keys_w);
    let installed = dump(&live);
    // The loser writes its staging again, now reading the winner's installed boundary chunks.
    let (_, keys_l2) = stage(&live, "l2", &tree0, &plan_l, &loser);
    assert_eq!(keys_l2, keys_l);
    assert_eq!(dump(&live), installed, "the loser's staging left the live table untouched");
    let want: Vec<String> = rows_of(&base).into_iter().chain(rows_of(&winner)).collect();
    assert_eq!(rows_of(&read_table(&live, &name(), &plan_w.tree).unwrap()), want);
    assert_eq!(rows_of(&read_table(&live, &name(), &tree0).unwrap()), rows_of(&base));
    assert_eq!(read_table(&live, &name(), &plan_w.tree).unwrap().annotation.unwrap().region, vec!["a", "b"]);
}

#[test]
fn staged_keys_are_flat_distinct_and_short() {
    assert_eq!(staged_key("obs/_index/c/1"), "obs%2F_index%2Fc%2F1");
    assert_eq!(staged_key("uns/spatialdata_attrs/region/c.0"), "uns%2Fspatialdata_attrs%2Fregion%2Fc.0");
    // Percent signs are escaped too, so no two keys share a staged name.
    assert_ne!(staged_key("a%2Fb"), staged_key("a/b"));
    assert_eq!(staged_key("a%2Fb"), "a%252Fb");
    // A name too long for a file name is replaced by a hash of the key.
    let long = format!("obs/{}/values/c/0", "x".repeat(240));
    let other = format!("obs/{}/values/c/1", "x".repeat(240));
    assert!(staged_key(&long).starts_with('~') && staged_key(&long).len() == 33);
    assert_ne!(staged_key(&long), staged_key(&other));
    assert!(!staged_key(&long).contains('/'));
}

#[test]
fn staging_inside_the_live_table_is_refused() {
    let live = memory();
    let tree = write_table(&live, &name(), &table(0..10, &["a"]), false).unwrap();
    let rows = table(10..12, &["a"]);
    let plan = plan_append(&live, &name(), &tree, &rows).unwrap();
    for prefix in ["tables/t", "tables/t/staging", "tables", ""] {
        let staging = DataHandle::new(live.storage().clone(), prefix);
        let err = write_append(&live, &staging, &name(), &tree, &plan, &rows, false).unwrap_err();
        assert!(matches!(err, crate::Error::Unsupported { .. }), "{prefix}: {err}");
    }
    // A staging area on another storage is fine for writing (it just cannot be installed by a move).
    let other = DataHandle::new(Arc::new(MemoryStorage::new()), "tables/t");
    write_append(&live, &other, &name(), &tree, &plan, &rows, false).unwrap();
}

/// A storage whose partial reads (`size`, `get_range`) fail, to show that table reads take every object whole, in
/// one `get`: a size followed by a range read can straddle the installation of an append's boundary chunk.
#[derive(Debug)]
struct WholeReadsOnly(MemoryStorage);

impl Storage for WholeReadsOnly {
    fn capabilities(&self) -> crate::storage::Capabilities {
        self.0.capabilities()
    }
    fn location(&self) -> std::path::PathBuf {
        self.0.location()
    }
    fn get(&self, key: &str) -> crate::Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    fn get_range(&self, key: &str, _: std::ops::Range<u64>) -> crate::Result<Option<Vec<u8>>> {
        Err(self.unsupported("partial reads", key))
    }
    fn size(&self, key: &str) -> crate::Result<Option<u64>> {
        Err(self.unsupported("partial reads", key))
    }
    fn exists(&self, key: &str) -> crate::Result<bool> {
        self.0.exists(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> crate::Result<()> {
        self.0.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> crate::Result<crate::storage::PutOutcome> {
        self.0.put_if_absent(key, bytes)
    }
    fn delete(&self, key: &str) -> crate::Result<()> {
        self.0.delete(key)
    }
    fn list(&self, prefix: &str) -> crate::Result<Vec<String>> {
        self.0.list(prefix)
    }
    fn list_recursive(&self, prefix: &str) -> crate::Result<Vec<(String, u64)>> {
        self.0.list_recursive(prefix)
    }
    fn modified(&self, key: &str) -> crate::Result<Option<std::time::SystemTime>> {
        self.0.modified(key)
    }
    fn replace_file(&self, from: &str, to: &str) -> crate::Result<bool> {
        self.0.replace_file(from, to)
    }
    fn locks(&self) -> &dyn crate::storage::Locks {
        self.0.locks()
    }
}

#[test]
fn table_reads_and_appends_read_each_object_whole() {
    let live = DataHandle::new(Arc::new(WholeReadsOnly(MemoryStorage::new())), "tables/t");
    let base = cells(0..5000, &["a"]);
    let tree0 = write_table(&live, &name(), &base, false).unwrap();
    // Rows 0..5000 end inside the second chunk of every row array: reading them decodes part of a chunk.
    assert_eq!(rows_of(&read_table(&live, &name(), &tree0).unwrap()), rows_of(&base));
    let rows = cells(5000..5010, &["a", "b"]);
    let plan = append(&live, &tree0, &rows);
    let want: Vec<String> = rows_of(&base).into_iter().chain(rows_of(&rows)).collect();
    assert_eq!(rows_of(&read_table(&live, &name(), &plan.tree).unwrap()), want);
}
