//! G7 (with G1–G5, G9 for tables): concurrent row appends from threads and OS processes, creation by the first
//! appender, snapshot isolation of appends, SIGKILL during appends, and bad rows refused with the store unchanged.

mod common;

use arrow_array::types::Int8Type;
use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, Int8Array, RecordBatch, StringArray};
use common::*;
use ndarray::Array2;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use zarrtx::table::{Annotation, Matrix, TableData};
use zarrtx::storage::{MemoryStorage, Storage};
use zarrtx::{Error, OpenOptions, RasterArray, Store};

const VARS: usize = 5;

/// `n` rows for `region`, instance ids `first..first+n`; X[i, j] = id * 10 + j so every row is checkable.
fn rows(region: &str, first: i32, n: usize) -> TableData {
    let ids: Vec<i32> = (first..first + n as i32).collect();
    let index: Vec<String> = ids.iter().map(|i| format!("{region}-{i}")).collect();
    let keys = Int8Array::from(vec![0i8; n]);
    let region_col = DictionaryArray::<Int8Type>::try_new(keys, Arc::new(StringArray::from(vec![region]))).unwrap();
    let obs = RecordBatch::try_from_iter(vec![
        ("cell", Arc::new(StringArray::from(index)) as ArrayRef),
        ("region", Arc::new(region_col) as ArrayRef),
        ("instance_id", Arc::new(Int32Array::from(ids.clone())) as ArrayRef),
        ("area", Arc::new(Float64Array::from(ids.iter().map(|&i| i as f64 * 0.5).collect::<Vec<_>>())) as ArrayRef),
    ])
    .unwrap();
    let var = RecordBatch::try_from_iter(vec![(
        "gene",
        Arc::new(StringArray::from((0..VARS).map(|j| format!("g{j}")).collect::<Vec<_>>())) as ArrayRef,
    )])
    .unwrap();
    let x = Array2::from_shape_fn((n, VARS), |(r, j)| (ids[r] * 10 + j as i32) as f32).into_dyn();
    TableData {
        obs,
        obs_index: "cell".into(),
        var,
        var_index: "gene".into(),
        x: Some(Matrix::Dense(RasterArray::F32(x))),
        layers: BTreeMap::new(),
        obsm: BTreeMap::new(),
        varm: BTreeMap::new(),
        uns: BTreeMap::new(),
        annotation: Some(Annotation { region: vec![region.into()], region_key: "region".into(), instance_key: "instance_id".into() }),
    }
}

/// (region, instance id) of every row, and a check that X matches each row's id.
fn table_rows(store: &Store, version: Option<u64>, name: &str) -> Vec<(String, i64)> {
    let t = store.snapshot(version).unwrap().read_table(name).unwrap();
    let a = t.annotation.as_ref().expect("annotated");
    let by_region = zarrtx::table::ids::ids_by_region(name, &t.obs, &a.region_key, &a.instance_key).unwrap();
    let present: BTreeSet<&String> = by_region.keys().collect();
    assert_eq!(present, a.region.iter().collect(), "uns region equals the regions present");
    let ids = t.obs.column_by_name("instance_id").unwrap();
    let ids = ids.as_any().downcast_ref::<Int32Array>().expect("instance ids stay int32");
    if let Some(Matrix::Dense(RasterArray::F32(x))) = &t.x {
        assert_eq!(x.shape(), [t.obs.num_rows(), VARS]);
        for r in 0..t.obs.num_rows() {
            assert_eq!(x[[r, 1]], (ids.value(r) * 10 + 1) as f32, "row {r} of X belongs to its obs row");
        }
    } else {
        panic!("X is dense float32");
    }
    let mut out: Vec<(String, i64)> = by_region.into_iter().flat_map(|(r, v)| v.into_iter().map(move |i| (r.clone(), i))).collect();
    out.sort();
    out
}

fn expected(regions: &[(&str, i32, usize)]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = regions
        .iter()
        .flat_map(|(r, f, n)| (*f..*f + *n as i32).map(move |i| (r.to_string(), i as i64)))
        .collect();
    v.sort();
    v
}

#[test]
fn sixteen_threads_append_their_regions_and_every_row_is_there_once() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    let store = open(&path);
    store.add_table("cells", &rows("r0", 0, 10), &Default::default()).unwrap();
    std::thread::scope(|s| {
        for t in 1..=16 {
            let path = path.clone();
            s.spawn(move || {
                let store = open(&path);
                let n = 100 + 60 * t;
                store.append("cells", &rows(&format!("r{t}"), 0, n / 2)).unwrap();
                store.append("cells", &rows(&format!("r{t}"), (n / 2) as i32, n - n / 2)).unwrap();
            });
        }
    });
    let mut want = vec![("r0", 0, 10usize)];
    let names: Vec<String> = (1..=16).map(|t| format!("r{t}")).collect();
    for (t, name) in names.iter().enumerate() {
        want.push((name.as_str(), 0, 100 + 60 * (t + 1)));
    }
    assert_eq!(table_rows(&store, None, "cells"), expected(&want));
    assert_eq!(store.version().unwrap(), 1 + 32);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Tables need no local path: a store on the in-memory backend adds a table, appends to it (each append staged and
/// installed through the storage) and reads every version back.
#[test]
fn tables_live_on_an_in_memory_store() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let store = Store::open_with_storage(storage.clone(), &OpenOptions::default()).unwrap();
    let v0 = store.add_table("cells", &rows("a", 0, 5000), &Default::default()).unwrap().version;
    let v1 = store.append("cells", &rows("a", 5000, 100)).unwrap().version;
    store.append("cells", &rows("b", 0, 50)).unwrap();
    assert_eq!(table_rows(&store, None, "cells"), expected(&[("a", 0, 5100), ("b", 0, 50)]));
    assert_eq!(table_rows(&store, Some(v1), "cells"), expected(&[("a", 0, 5100)]));
    assert_eq!(table_rows(&store, Some(v0), "cells"), expected(&[("a", 0, 5000)]));
    assert!(storage.list(zarrtx::layout::STAGING_DIR).unwrap().is_empty(), "no staging area is left behind");
    let err = store.append("cells", &rows("a", 10, 5)).unwrap_err();
    assert!(matches!(&err, Error::InvalidElement { reason, .. } if reason.contains("already exists")), "{err}");
    assert_eq!(table_rows(&store, None, "cells"), expected(&[("a", 0, 5100), ("b", 0, 50)]));
}

#[test]
fn the_first_appenders_create_the_table_exactly_once() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    open(&path);
    std::thread::scope(|s| {
        for t in 0..8 {
            let path = path.clone();
            s.spawn(move || open(&path).append("t", &rows(&format!("r{t}"), 0, 50)).unwrap());
        }
    });
    let store = open(&path);
    let want: Vec<(String, i32, usize)> = (0..8).map(|t| (format!("r{t}"), 0, 50)).collect();
    let want: Vec<(&str, i32, usize)> = want.iter().map(|(r, f, n)| (r.as_str(), *f, *n)).collect();
    assert_eq!(table_rows(&store, None, "t"), expected(&want));
    let adds = store.history().unwrap().iter().filter(|c| c.summary.iter().any(|s| s.starts_with("add tables/t"))).count();
    assert_eq!(adds, 1, "created once, then appended to");
}

#[test]
#[ignore = "child process entry point, started by other tests"]
fn child_appender() {
    let Some((store, spec)) = child_store("SPEC") else { return };
    // SPEC = region,first,count,batches
    let p: Vec<&str> = spec.split(',').collect();
    let (region, first, count, batches): (&str, i32, usize, usize) = (p[0], p[1].parse().unwrap(), p[2].parse().unwrap(), p[3].parse().unwrap());
    let per = count / batches;
    for b in 0..batches {
        let n = if b + 1 == batches { count - per * b } else { per };
        let c = store.append("cells", &rows(region, first + (per * b) as i32, n)).unwrap();
        println!("RESULT ok {}", c.version);
    }
}

#[test]
fn sixteen_processes_append_to_own_and_shared_regions() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    open(&path).add_table("cells", &rows("r0", 0, 100), &Default::default()).unwrap();
    let children: Vec<_> = (0..16)
        .map(|p| {
            // Even processes: their own region; odd ones: disjoint id ranges of one shared region.
            let spec = if p % 2 == 0 { format!("own{p},0,{},2", 100 + 50 * p) } else { format!("shared,{},{},2", 10_000 * p, 300) };
            spawn_child("child_appender", &[("STORE", place.node(p).display().to_string()), ("SPEC", spec)])
        })
        .collect();
    let results: Vec<String> = children.into_iter().flat_map(child_results).collect();
    assert_eq!(results.len(), 32);
    let store = open(&path);
    let owned: Vec<(String, i32, usize)> = (0..16)
        .map(|p| if p % 2 == 0 { (format!("own{p}"), 0, 100 + 50 * p) } else { ("shared".to_string(), 10_000 * p as i32, 300) })
        .chain(std::iter::once(("r0".to_string(), 0, 100)))
        .collect();
    let owned: Vec<(&str, i32, usize)> = owned.iter().map(|(r, f, n)| (r.as_str(), *f, *n)).collect();
    assert_eq!(table_rows(&store, None, "cells"), expected(&owned));
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_pinned_snapshot_sees_exactly_its_rows_while_appends_continue() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    let store = open(&path);
    store.add_table("cells", &rows("a", 0, 30), &Default::default()).unwrap();
    store.append("cells", &rows("a", 30, 30)).unwrap();
    let pinned = store.snapshot(None).unwrap();
    store.append("cells", &rows("b", 0, 70)).unwrap();
    store.append("cells", &rows("a", 60, 5)).unwrap();
    assert_eq!(table_rows(&store, Some(pinned.version()), "cells"), expected(&[("a", 0, 60)]));
    assert_eq!(pinned.read_table("cells").unwrap().obs.num_rows(), 60);
    assert_eq!(table_rows(&store, None, "cells"), expected(&[("a", 0, 65), ("b", 0, 70)]));
    assert_eq!(store.snapshot(None).unwrap().table_info("cells").unwrap().n_obs, 135);
}

#[test]
#[ignore = "child process entry point, started by other tests"]
fn child_endless_appender() {
    let Some((store, round)) = child_store("ROUND") else { return };
    for i in 0.. {
        store.append("cells", &rows(&format!("k{round}"), i * 37, 37)).unwrap();
    }
}

#[test]
fn sigkilled_appenders_leave_the_table_at_a_committed_length() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    open(&path).add_table("cells", &rows("base", 0, 10), &Default::default()).unwrap();
    let mut rng = Rng::new();
    for round in 0..8 {
        let watcher = open(&path);
        let n_obs = || watcher.snapshot(None).unwrap().table_info("cells").unwrap().n_obs;
        let before = n_obs();
        let mut child = spawn_child("child_endless_appender", &[("STORE", place.node(round).display().to_string()), ("ROUND", round.to_string())]);
        // Killed at a random point once it has committed at least one batch (however slow the medium is).
        let started = std::time::Instant::now();
        while n_obs() == before {
            assert!(started.elapsed() < Duration::from_secs(120), "round {round}: the appender committed nothing in 120 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        child.kill().unwrap();
        child.wait().unwrap();
        let store = open(&path);
        let got = table_rows(&store, None, "cells");
        // Every region's ids form a prefix of whole 37-row batches: nothing torn, nothing duplicated.
        let mut per_region: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (r, i) in got {
            per_region.entry(r).or_default().push(i);
        }
        for (r, ids) in per_region {
            let n = ids.len() as i64;
            assert_eq!(ids, (0..n).collect::<Vec<_>>(), "{r}: rows form a committed prefix");
            if r != "base" {
                assert_eq!(n % 37, 0, "{r}: whole batches only");
            }
        }
    }
    let store = open(&path);
    let appended = store.snapshot(None).unwrap().table_info("cells").unwrap().n_obs - 10;
    assert!(appended >= 37 * 8, "every appender committed a batch before it was killed ({appended} rows)");
    wait_for_leases_to_expire();
    store.gc(Duration::ZERO).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn bad_rows_are_refused_and_the_table_is_unchanged() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    let store = open(&path);
    store.add_table("cells", &rows("a", 0, 20), &Default::default()).unwrap();
    let v = store.version().unwrap();
    // Duplicate instance ids: within the batch, and against committed rows of the same region.
    let mut dup = rows("a", 100, 3);
    dup.obs = {
        let ids = Arc::new(Int32Array::from(vec![100, 101, 100])) as ArrayRef;
        let mut cols = dup.obs.columns().to_vec();
        cols[2] = ids;
        RecordBatch::try_new(dup.obs.schema(), cols).unwrap()
    };
    assert!(matches!(store.append("cells", &dup), Err(Error::InvalidElement { .. })));
    let err = store.append("cells", &rows("a", 10, 5)).unwrap_err();
    assert!(matches!(&err, Error::InvalidElement { reason, .. } if reason.contains("already exists")), "{err}");
    // The same ids in another region are fine.
    store.append("cells", &rows("b", 10, 5)).unwrap();
    let v = v + 1;
    // Schema mismatches.
    let mut extra = rows("a", 50, 2);
    extra.obs = {
        let mut fields: Vec<_> = extra.obs.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(arrow_schema::Field::new("new_col", arrow_schema::DataType::Float64, false)));
        let mut cols = extra.obs.columns().to_vec();
        cols.push(Arc::new(Float64Array::from(vec![1.0, 2.0])));
        RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), cols).unwrap()
    };
    let err = store.append("cells", &extra).unwrap_err();
    assert!(err.to_string().contains("new_col"), "{err}");
    let mut missing = rows("a", 50, 2);
    missing.obs = missing.obs.project(&[0, 1, 2]).unwrap();
    let err = store.append("cells", &missing).unwrap_err();
    assert!(err.to_string().contains("area"), "{err}");
    let mut other_var = rows("a", 50, 2);
    other_var.var = RecordBatch::try_from_iter(vec![(
        "gene",
        Arc::new(StringArray::from((0..VARS).map(|j| format!("h{j}")).collect::<Vec<_>>())) as ArrayRef,
    )])
    .unwrap();
    assert!(store.append("cells", &other_var).is_err());
    // int8 instance ids and a non-categorical region column.
    let mut int8 = rows("a", 50, 2);
    int8.obs = {
        let mut fields: Vec<_> = int8.obs.schema().fields().iter().cloned().collect();
        fields[2] = Arc::new(arrow_schema::Field::new("instance_id", arrow_schema::DataType::Int8, false));
        let mut cols = int8.obs.columns().to_vec();
        cols[2] = Arc::new(Int8Array::from(vec![50i8, 51]));
        RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), cols).unwrap()
    };
    assert!(store.append("cells", &int8).is_err());
    let mut plain_region = rows("a", 50, 2);
    plain_region.obs = {
        let mut fields: Vec<_> = plain_region.obs.schema().fields().iter().cloned().collect();
        fields[1] = Arc::new(arrow_schema::Field::new("region", arrow_schema::DataType::Utf8, false));
        let mut cols = plain_region.obs.columns().to_vec();
        cols[1] = Arc::new(StringArray::from(vec!["a", "a"]));
        RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), cols).unwrap()
    };
    assert!(store.append("cells", &plain_region).is_err());
    assert_eq!(store.version().unwrap(), v, "nothing was committed");
    assert_eq!(table_rows(&store, None, "cells"), expected(&[("a", 0, 20), ("b", 10, 5)]));
    store.gc(Duration::ZERO).unwrap();
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn appends_race_with_element_adds_deletes_and_readers() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    let store = open(&path);
    store.add_table("cells", &rows("seed", 0, 5), &Default::default()).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let store = open(&path);
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let snap = store.snapshot(None).unwrap();
                let got = table_rows(&store, Some(snap.version()), "cells");
                // Every region holds whole batches of 20 rows (the seed region 5).
                let mut per: BTreeMap<String, usize> = BTreeMap::new();
                for (r, _) in got {
                    *per.entry(r).or_default() += 1;
                }
                for (r, n) in per {
                    assert!(r == "seed" || n % 20 == 0, "{r}: {n} rows is not a committed state");
                }
                for e in snap.elements().into_iter().filter(|e| e.element_type == zarrtx::ElementType::Labels) {
                    assert_eq!(read_labels(&store, Some(snap.version()), &e.name), labels_data(&e.name, 32));
                }
                reads += 1;
            }
            reads
        });
        let appenders: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                s.spawn(move || {
                    let store = open(&path);
                    for b in 0..5 {
                        store.append("cells", &rows(&format!("w{t}"), b * 20, 20)).unwrap();
                    }
                })
            })
            .collect();
        let editors: Vec<_> = (0..2)
            .map(|t| {
                let path = path.clone();
                s.spawn(move || {
                    let store = open(&path);
                    for i in 0..5 {
                        let name = format!("l{t}_{i}");
                        add_labels(&store, &name, 32, false).unwrap();
                        if i % 2 == 0 {
                            store.delete(&name).unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in appenders.into_iter().chain(editors) {
            h.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
    });
    let want = [("seed", 0, 5usize), ("w0", 0, 100), ("w1", 0, 100), ("w2", 0, 100), ("w3", 0, 100)];
    assert_eq!(table_rows(&store, None, "cells"), expected(&want));
    assert_eq!(store.snapshot(None).unwrap().elements().len(), 1 + 2 * 2);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn verify_reports_a_table_whose_rows_spatialdata_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.zarr");
    let store = open(&path);
    store.add_table("cells", &rows("a", 0, 20), &Default::default()).unwrap();
    store.append("cells", &rows("b", 0, 20)).unwrap();
    assert!(store.verify().unwrap().is_clean(), "a table zarrtx wrote reads back");
    // Another writer, bypassing the commits (as two nodes sharing one boundary chunk under node-local locks did),
    // overwrites the region codes of every row with region "a": the metadata still lists ["a", "b"].
    let fs = Arc::new(zarrs::filesystem::FilesystemStore::new(&path).unwrap());
    let codes = zarrs::array::Array::open(fs, "/tables/cells/obs/region/codes").unwrap();
    let n = codes.shape()[0];
    let subset = zarrs::array::ArraySubset::new_with_shape(vec![n]);
    // The codes' integer width follows the number of categories, as anndata writes them: zero bytes are code 0.
    let width = codes.data_type().fixed_size().expect("fixed-size integer codes");
    let zeros = zarrs::array::ArrayBytes::new_flen(vec![0u8; n as usize * width]);
    codes.store_array_subset(&subset, zeros).unwrap();
    let report = store.verify().unwrap();
    assert!(
        report.problems.iter().any(|p| p.starts_with("tables/cells:") && p.contains("spatialdata")),
        "verify must report the table spatialdata refuses: {report:?}"
    );
}
