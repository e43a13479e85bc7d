//! The protocol on every backend of the storage seam: the in-memory backend with compare-and-swap and locks, the
//! in-memory backend without compare-and-swap and without locks (what a POSIX filesystem whose locks are node-local
//! offers: the publish fence decides), and local disk with advisory locks switched off. Threads play the
//! processes and nodes (each its own `Store` handle on one storage); a fault-injecting wrapper plays crashes (every
//! operation from the N-th on fails, for every N), lost responses and a full medium.

mod common;

use common::{add_constant, add_labels, labels_data};
use ndarray::ArrayD;
use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use zarrtx::storage::{Fault, FaultyStorage, MemoryOptions, MemoryStorage, PosixStorage, Storage};
use zarrtx::{Error, OpenOptions, PartLayout, PlanOptions, RasterArray, Store};

/// A way to make fresh stores.
struct Backend {
    name: &'static str,
    fresh: fn() -> (Arc<dyn Storage>, Option<tempfile::TempDir>),
}

fn backends() -> Vec<Backend> {
    vec![
        Backend { name: "memory, compare-and-swap, locks", fresh: || (Arc::new(MemoryStorage::new()), None) },
        Backend {
            name: "memory, no compare-and-swap, no locks",
            fresh: || {
                let o = MemoryOptions { conditional_replace: false, locks: false, ..MemoryOptions::default() };
                (Arc::new(MemoryStorage::with_options(o)), None)
            },
        },
        Backend {
            name: "local disk, locks off",
            fresh: || {
                let dir = tempfile::tempdir().unwrap();
                (Arc::new(PosixStorage::new(dir.path(), false).with_locks(false)), Some(dir))
            },
        },
    ]
}

/// Stores with a short fence and lease, so that a test can let a dead writer's lease expire at every step.
const FAST: zarrtx::settings::StoreSettings = zarrtx::settings::StoreSettings { publish_fence_ms: 100, lease_ms: 800 };

fn options() -> OpenOptions {
    OpenOptions { advisory_locks: false, settings: FAST, ..OpenOptions::default() }
}

fn open(storage: &Arc<dyn Storage>) -> Store {
    Store::open_with_storage(storage.clone(), &options()).unwrap()
}

fn labels(store: &Store, name: &str) -> ArrayD<i32> {
    match store.snapshot(None).unwrap().read_raster(name, 0, None).unwrap() {
        RasterArray::I32(a) => a,
        other => panic!("{name}: {:?}", other.data_type()),
    }
}

/// Every labels element the published root lists has, in the storage, the metadata the root lists for it.
fn view_is_consistent(storage: &dyn Storage) -> std::result::Result<(), String> {
    let Some(bytes) = storage.get("zarr.json").unwrap() else { return Ok(()) };
    let view: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    for (key, doc) in view["consolidated_metadata"]["metadata"].as_object().cloned().unwrap_or_default() {
        if key.split('/').count() == 2 && ["labels", "images", "points", "shapes", "tables"].contains(&key.split('/').next().unwrap_or("")) {
            let on_disk = storage.get(&format!("{key}/zarr.json")).unwrap().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            if on_disk.as_ref() != Some(&doc) {
                return Err(format!("the view lists {key}, whose zarr.json is {on_disk:?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn threads_as_processes_add_distinct_elements_and_race_on_one_name() {
    for b in backends() {
        let (storage, _dir) = (b.fresh)();
        open(&storage);
        let barrier = Barrier::new(8);
        let outcomes: Vec<std::result::Result<u64, String>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let (storage, barrier) = (&storage, &barrier);
                    s.spawn(move || {
                        let store = open(storage);
                        barrier.wait();
                        add_labels(&store, &format!("own{i}"), 40, false).unwrap();
                        match add_labels(&store, "Shared", 40, false) {
                            Ok(c) => Ok(c.version),
                            Err(Error::ElementExists { .. }) => Err("exists".to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{}: exactly one writer adds 'Shared': {outcomes:?}", b.name);
        assert!(outcomes.iter().all(|o| o.is_ok() || o.as_ref().unwrap_err() == "exists"), "{}: {outcomes:?}", b.name);
        let store = open(&storage);
        let names: BTreeSet<String> = store.snapshot(None).unwrap().elements().into_iter().map(|e| e.name).collect();
        let mut want: BTreeSet<String> = (0..8).map(|i| format!("own{i}")).collect();
        want.insert("Shared".into());
        assert_eq!(names, want, "{}: no add is lost", b.name);
        for n in &names {
            assert_eq!(labels(&store, n), labels_data(n, 40), "{}: {n}", b.name);
        }
        view_is_consistent(storage.as_ref()).unwrap();
        let report = store.verify().unwrap();
        assert!(report.is_clean(), "{}: {report:?}", b.name);
    }
}

#[test]
fn overwrites_and_deletes_keep_snapshots_and_the_view_consistent() {
    for b in backends() {
        let (storage, _dir) = (b.fresh)();
        let store = open(&storage);
        add_labels(&store, "a", 32, false).unwrap();
        add_labels(&store, "b", 32, false).unwrap();
        let before = store.snapshot(None).unwrap();
        add_constant(&store, "a", 48, 3, true).unwrap();
        view_is_consistent(storage.as_ref()).unwrap();
        store.delete("b").unwrap();
        view_is_consistent(storage.as_ref()).unwrap();
        add_constant(&store, "b", 16, 4, false).unwrap(); // a new generation evicts the deleted one
        view_is_consistent(storage.as_ref()).unwrap();
        // The snapshot pinned before reads the old generations, wherever they went.
        match before.read_raster("a", 0, None).unwrap() {
            RasterArray::I32(a) => assert_eq!(a, labels_data("a", 32), "{}", b.name),
            _ => unreachable!(),
        }
        match before.read_raster("b", 0, None).unwrap() {
            RasterArray::I32(a) => assert_eq!(a, labels_data("b", 32), "{}", b.name),
            _ => unreachable!(),
        }
        assert_eq!(labels(&store, "a"), ArrayD::from_elem(vec![48, 48], 3));
        assert_eq!(labels(&store, "b"), ArrayD::from_elem(vec![16, 16], 4));
        store.gc(Duration::ZERO).unwrap();
        assert!(matches!(before.read_raster("a", 0, None), Err(Error::VersionNotAvailable { .. })), "{}: reclaimed by gc", b.name);
        let report = store.verify().unwrap();
        assert!(report.is_clean() && report.retained.is_empty(), "{}: {report:?}", b.name);
    }
}

/// What one writer does, for the crash test: an add, an overwrite and a delete.
fn work(store: &Store) -> zarrtx::Result<()> {
    add_labels(store, "x", 40, false)?;
    add_constant(store, "a", 40, 9, true)?;
    store.delete("b")?;
    Ok(())
}

#[test]
fn a_writer_that_dies_at_any_operation_leaves_a_store_that_opens_reads_and_verifies() {
    for b in backends() {
        // Count the operations of a clean run.
        let count = {
            let (inner, _dir) = (b.fresh)();
            let faulty = Arc::new(FaultyStorage::new(inner));
            let storage: Arc<dyn Storage> = faulty.clone();
            let store = open(&storage);
            add_labels(&store, "a", 40, false).unwrap();
            add_labels(&store, "b", 40, false).unwrap();
            faulty.reset_ops();
            work(&store).unwrap();
            faulty.ops()
        };
        assert!(count > 20, "{}: {count} operations", b.name);
        // Let the writer die at every one of them (every operation from the N-th on fails, the process is gone).
        let started = std::time::Instant::now();
        for n in 0..count {
            let (inner, _dir) = (b.fresh)();
            let faulty = Arc::new(FaultyStorage::new(inner.clone()));
            let storage: Arc<dyn Storage> = faulty.clone();
            let store = open(&storage);
            add_labels(&store, "a", 40, false).unwrap();
            add_labels(&store, "b", 40, false).unwrap();
            faulty.reset_ops();
            faulty.inject(Fault::FailFrom(n));
            let _ = work(&store);
            drop(store);
            // Whatever the dead writer left: the view lists only complete elements...
            view_is_consistent(inner.as_ref()).unwrap_or_else(|e| panic!("{} died at {n}: {e}", b.name));
            // ...and a new process opens, reads every committed element, and after gc finds nothing left over.
            let store = open(&inner);
            let snap = store.snapshot(None).unwrap();
            for e in snap.elements() {
                let want = match e.name.as_str() {
                    "a" if snap.element("a").unwrap().version > 2 => ArrayD::from_elem(vec![40, 40], 9),
                    name => labels_data(name, 40),
                };
                assert_eq!(labels(&store, &e.name), want, "{} died at {n}: {}", b.name, e.name);
            }
            view_is_consistent(inner.as_ref()).unwrap_or_else(|e| panic!("{} died at {n}, reopened: {e}", b.name));
            let report = store.verify().unwrap();
            assert!(report.problems.is_empty(), "{} died at {n}: {report:?}", b.name);
            // What it left is reclaimed once its lease expired (every fifth death, to keep the test short).
            if n % 5 == 0 {
                std::thread::sleep(Duration::from_millis(FAST.lease_ms + 100));
                store.gc(Duration::ZERO).unwrap();
                let report = store.verify().unwrap();
                assert!(report.is_clean(), "{} died at {n}, after gc: {report:?}", b.name);
            }
        }
        eprintln!("{}: {count} deaths checked in {:.1} s", b.name, started.elapsed().as_secs_f64());
    }
}

#[test]
fn lost_responses_of_log_entries_and_views_commit_exactly_once() {
    for b in backends() {
        let (inner, _dir) = (b.fresh)();
        let faulty = Arc::new(FaultyStorage::new(inner));
        let storage: Arc<dyn Storage> = faulty.clone();
        let store = open(&storage);
        faulty.inject(Fault::LoseResponse { key_contains: ".zarrtx/log/".into(), times: 3 });
        let first = add_labels(&store, "a", 32, false).expect("a lost reply of our own entry is a success");
        let second = add_labels(&store, "b", 32, false).unwrap();
        assert_eq!((first.version, second.version), (1, 2), "{}: one entry each, no duplicate", b.name);
        faulty.clear();
        faulty.inject(Fault::LoseResponse { key_contains: "zarr.json".into(), times: 2 });
        let third = add_labels(&store, "c", 32, false);
        faulty.clear();
        assert!(third.is_ok() || matches!(third, Err(Error::Io { .. })), "{}: {third:?}", b.name);
        let store = open(&storage);
        let names: Vec<String> = store.snapshot(None).unwrap().elements().into_iter().map(|e| e.name).collect();
        assert!(names.starts_with(&["a".to_string(), "b".to_string()]), "{}: {names:?}", b.name);
        assert_eq!(store.history().unwrap().len() as u64, store.version().unwrap() + 1);
        store.publish().unwrap();
        view_is_consistent(storage.as_ref()).unwrap();
    }
}

#[test]
fn a_full_medium_fails_the_add_and_leaves_the_store_as_it_was() {
    for b in backends() {
        let (inner, _dir) = (b.fresh)();
        let faulty = Arc::new(FaultyStorage::new(inner.clone()));
        let storage: Arc<dyn Storage> = faulty.clone();
        let store = open(&storage);
        add_labels(&store, "a", 32, false).unwrap();
        let visible = |s: &dyn Storage| -> Vec<(String, u64)> {
            s.list_recursive("").unwrap().into_iter().filter(|(k, _)| !k.starts_with(".zarrtx/tmp") && !k.starts_with(".zarrtx/probe") && !k.starts_with(".zarrtx/staging")).collect()
        };
        let before = visible(inner.as_ref());
        faulty.inject(Fault::FullAfter(2_000));
        let big = RasterArray::I32(ArrayD::from_elem(vec![256, 256], 1));
        let err = store.add_raster("big", &common::labels_spec(), zarrtx::RasterSource::InMemory(big), &Default::default()).unwrap_err();
        assert!(matches!(err, Error::StorageFull { .. }), "{}: {err}", b.name);
        faulty.clear();
        assert_eq!(visible(inner.as_ref()), before, "{}: the store is as it was", b.name);
        assert!(inner.list(".zarrtx/staging").unwrap().iter().all(|n| n.ends_with(".lease")), "{}: the staged data was removed", b.name);
    }
}

#[test]
fn write_plans_written_by_threads_commit_once_on_every_backend() {
    use zarrtx::{DataType, RasterBlock, RasterKind, RasterSpec};
    for b in backends() {
        let (storage, _dir) = (b.fresh)();
        let store = open(&storage);
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.chunk_shape = Some(vec![16, 16]);
        let info = store.create_plan("p", &spec, &[64, 48], DataType::I32, PartLayout::Count(4)).unwrap();
        let data = ArrayD::from_shape_fn(vec![64, 48], |ix| (ix[0] * 48 + ix[1]) as i32);
        std::thread::scope(|s| {
            for part in 0..4 {
                let (storage, info, data) = (&storage, &info, &data);
                s.spawn(move || {
                    let store = open(storage);
                    let r = &info.parts[part];
                    let block = data.slice(ndarray::s![r[0].start as usize..r[0].end as usize, r[1].start as usize..r[1].end as usize]).to_owned().into_dyn();
                    let blocks = vec![Ok(RasterBlock { offset: vec![r[0].start, r[1].start], data: RasterArray::I32(block) })];
                    store.write_part(&info.plan_id, part, blocks, &PlanOptions::default()).unwrap();
                });
            }
        });
        // Two committers at once: one commit.
        let commits: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2).map(|_| s.spawn(|| open(&storage).commit_plan(&info.plan_id).unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(commits[0].version, commits[1].version, "{}", b.name);
        assert_eq!(labels(&store, "p"), data, "{}", b.name);
        assert_eq!(store.version().unwrap(), 1, "{}: one commit", b.name);
        view_is_consistent(storage.as_ref()).unwrap();
    }
}
