//! G2 and G10 on a POSIX filesystem without locks: a slow publisher never makes the root view list an element whose
//! files were moved — because a publisher writes a view only within the publish fence of reading the head (the
//! self-fence), and displaced data moves only a fence after its commit was seen. Two handles on one store play two
//! processes whose locks are not shared (advisory locks off); a storage hook pauses one of them at an exact point
//! of its publication while the other overwrites an element, and checks the store at every root write and every
//! move. Removing either half of the fence makes one of these tests fail.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use zarrtx::settings::StoreSettings;
use zarrtx::storage::{FaultyStorage, Hook, Phase, PosixStorage, Storage};
use zarrtx::{OpenOptions, Store};

const FENCE_MS: u64 = 1_000;

/// Problems the checks found: (what, when).
type Violations = Arc<Mutex<Vec<String>>>;

/// Every labels element the root view lists must have, on disk, the `s0/zarr.json` the view lists (else a plain
/// reader would read data of another generation, or nothing, under the listed metadata).
fn check_view(storage: &dyn Storage, violations: &Violations, when: &str) {
    let Ok(Some(bytes)) = storage.get("zarr.json") else { return };
    let Ok(view) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return };
    let Some(listed) = view["consolidated_metadata"]["metadata"].as_object() else { return };
    for (key, doc) in listed {
        if !(key.starts_with("labels/") && key.ends_with("/s0")) {
            continue;
        }
        let on_disk = storage.get(&format!("{key}/zarr.json")).ok().flatten().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if on_disk.as_ref() != Some(doc) {
            violations.lock().unwrap().push(format!("{when}: the view lists {key} but its files are {}", if on_disk.is_some() { "another generation's" } else { "gone" }));
        }
    }
}

struct Rig {
    storage: Arc<FaultyStorage>,
    writer: Store,
    slow: Store,
    violations: Violations,
}

/// How the slow publisher is held up.
#[derive(Clone, Copy)]
enum Pause {
    /// For this long, at the first operation the function matches.
    For(fn(&str, &str) -> bool, Duration),
    /// At the first operation the function matches, until the writer moved the old generation of `a`; the writer
    /// then waits (right after that move) until the slow publisher is done.
    UntilMoved(fn(&str, &str) -> bool),
}

/// A store on local disk with advisory locks off, two handles on it, and a hook that checks the view after every
/// root write and before every move of element data, and holds up the thread named `slow` as `pause` says.
fn rig(dir: &std::path::Path, pause: Pause, slow_done: Arc<(Mutex<bool>, std::sync::Condvar)>) -> (Rig, mpsc::Receiver<()>) {
    let posix: Arc<dyn Storage> = Arc::new(PosixStorage::new(dir, false).with_locks(false));
    let storage = Arc::new(FaultyStorage::new(posix));
    let options = OpenOptions {
        advisory_locks: false,
        settings: StoreSettings { publish_fence_ms: FENCE_MS, lease_ms: 3_000 },
        ..OpenOptions::default()
    };
    let writer = Store::open_with_storage(storage.clone(), &options).unwrap();
    let slow = Store::open_with_storage(storage.clone(), &options).unwrap();
    let violations: Violations = Arc::default();
    let (paused_tx, paused_rx) = mpsc::channel();
    let paused_tx = Mutex::new(paused_tx);
    let armed = AtomicBool::new(false);
    let moved = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let hook: Hook = {
        let (storage, violations) = (storage.clone(), violations.clone());
        Arc::new(move |op, key, phase| {
            let inner = storage.inner().as_ref();
            if matches!(op, "put_relaxed" | "replace_file") && key == "zarr.json" && phase == Phase::After {
                check_view(inner, &violations, "after a root write");
            }
            if op == "rename" && key.starts_with("labels/") && phase == Phase::Before {
                // The data about to move must not be listed by the view now.
                if let Ok(Some(bytes)) = inner.get("zarr.json") {
                    let view: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    if view["consolidated_metadata"]["metadata"].as_object().is_some_and(|m| m.contains_key(key)) {
                        violations.lock().unwrap().push(format!("{key} moves while the view lists it"));
                    }
                }
            }
            let slow_thread = std::thread::current().name() == Some("slow");
            match pause {
                Pause::For(at, pause) => {
                    if slow_thread && phase == Phase::Before && at(op, key) && !armed.swap(true, Ordering::SeqCst) {
                        let _ = paused_tx.lock().unwrap().send(());
                        std::thread::sleep(pause);
                    }
                }
                Pause::UntilMoved(at) => {
                    if slow_thread && phase == Phase::Before && at(op, key) && !armed.swap(true, Ordering::SeqCst) {
                        let _ = paused_tx.lock().unwrap().send(());
                        let (m, cv) = &*moved;
                        let _ = cv.wait_timeout_while(m.lock().unwrap(), Duration::from_secs(30), |moved| !*moved);
                    }
                    if !slow_thread && op == "rename" && key == "labels/a" && phase == Phase::After {
                        let (m, cv) = &*moved;
                        *m.lock().unwrap() = true;
                        cv.notify_all();
                        // Between the move and the final view: hold the writer until the slow publisher is done.
                        let (d, cv) = &*slow_done;
                        let _ = cv.wait_timeout_while(d.lock().unwrap(), Duration::from_secs(30), |done| !*done);
                    }
                }
            }
        })
    };
    storage.set_hook(Some(hook));
    (Rig { storage, writer, slow, violations }, paused_rx)
}

/// The slow handle adds `c` (its publication pauses where the rig says) while the writer overwrites `a` with data of
/// another shape; then both finish and the store is checked.
fn race(dir: &std::path::Path, pause: Pause) -> Vec<String> {
    let slow_done = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let (rig, paused) = rig(dir, pause, slow_done.clone());
    common::add_labels(&rig.writer, "a", 32, false).unwrap();
    common::add_labels(&rig.writer, "b", 32, false).unwrap();
    let slow = rig.slow.clone();
    let t = std::thread::Builder::new()
        .name("slow".into())
        .spawn(move || {
            common::add_labels(&slow, "c", 32, false).unwrap();
            let (d, cv) = &*slow_done;
            *d.lock().unwrap() = true;
            cv.notify_all();
        })
        .unwrap();
    paused.recv_timeout(Duration::from_secs(30)).expect("the slow publisher paused");
    // Committed after the slow publisher read the head: it does not know about this overwrite.
    common::add_constant(&rig.writer, "a", 48, 7, true).unwrap();
    t.join().unwrap();
    rig.storage.set_hook(None);
    let store = common::open(dir);
    store.publish().unwrap();
    assert_eq!(common::read_labels(&store, None, "a"), ndarray::ArrayD::from_elem(vec![48, 48], 7));
    let mut names = common::check_published_view(dir, 32);
    names.sort();
    assert_eq!(names, ["a", "b", "c"], "the newest view stands in the end");
    assert!(store.verify().unwrap().is_clean());
    let found = rig.violations.lock().unwrap().clone();
    found
}

#[test]
fn a_publisher_paused_past_the_fence_before_writing_its_view_does_not_write_it() {
    // Paused after it read the head and before its fence check (where it records the installed version), until the
    // writer has moved the old `a`, and resumed while the root still shows the version the slow publisher would
    // write: only its fence (it read the head more than a fence ago) keeps it from listing the moved data.
    let dir = tempfile::tempdir().unwrap();
    let violations = race(dir.path(), Pause::UntilMoved(|op, key| op == "put" && key == ".zarrtx/applied"));
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn displaced_data_moves_only_after_every_older_publisher_finished() {
    // Paused after its fence check, right before its root write, for less than the fence: the overwrite's
    // publisher must wait the fence before moving the old generation, or the stale view would land after the move.
    let dir = tempfile::tempdir().unwrap();
    let violations = race(dir.path(), Pause::For(|op, key| matches!(op, "put_relaxed" | "replace_file") && key == "zarr.json", Duration::from_millis(FENCE_MS / 2)));
    assert!(violations.is_empty(), "{violations:#?}");
}
