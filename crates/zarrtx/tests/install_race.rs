//! G1 and G2 when publishers race to install the same committed element, without any lock: the one that looks at
//! the element's location after another one installed the element there must not take it for a stranger's files and
//! move it away (the view would then list an element whose files sit in the trash — seen on two NFS nodes). A storage
//! hook holds one publisher at an exact point of its look while the writer's own publication installs the element.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use zarrtx::settings::StoreSettings;
use zarrtx::storage::{FaultyStorage, Hook, Phase, PosixStorage, Storage};
use zarrtx::{OpenOptions, Store};

/// A flag one thread raises and another waits for (at most 30 s, so a broken protocol fails instead of hanging).
#[derive(Default)]
struct Signal(Mutex<bool>, Condvar);

impl Signal {
    fn raise(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }
    fn wait(&self) -> bool {
        let guard = self.0.lock().unwrap();
        *self.1.wait_timeout_while(guard, Duration::from_secs(30), |up| !*up).unwrap().0
    }
}

/// `.zarrtx/staging/<txn>` itself (not its lease, not a file inside).
fn is_staging_area(key: &str) -> bool {
    key.strip_prefix(".zarrtx/staging/").is_some_and(|rest| !rest.contains('/') && !rest.ends_with(".lease"))
}

/// The writer adds `c` (after deleting an earlier `c` whose files stay at `labels/c` until the add evicts them,
/// when `deleted_first`) while another publisher is held mid-look; then the store is checked.
fn race(deleted_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let posix: Arc<dyn Storage> = Arc::new(PosixStorage::new(dir.path(), false).with_locks(false));
    let storage = Arc::new(FaultyStorage::new(posix));
    let options = OpenOptions {
        advisory_locks: false,
        settings: StoreSettings { publish_fence_ms: 1_000, lease_ms: 3_000 },
        ..OpenOptions::default()
    };
    let writer = Store::open_with_storage(storage.clone(), &options).unwrap();
    common::add_labels(&writer, "a", 16, false).unwrap();
    if deleted_first {
        common::add_constant(&writer, "c", 16, 3, false).unwrap();
        writer.delete("c").unwrap();
        // Both publishers know of the delete for longer than the fence: the old files may move at once.
        std::thread::sleep(Duration::from_millis(1_200));
    }
    let other = Store::open_with_storage(storage.clone(), &options).unwrap();
    if deleted_first {
        std::thread::sleep(Duration::from_millis(1_200));
    }

    let committed = Arc::new(Signal::default());
    let other_looking = Arc::new(Signal::default());
    let installed = Arc::new(Signal::default());
    let looks = Arc::new(AtomicU32::new(0));
    let hook: Hook = {
        let (committed, other_looking, installed, looks) = (committed.clone(), other_looking.clone(), installed.clone(), looks.clone());
        Arc::new(move |op, key, phase| {
            let thread = std::thread::current().name().map(str::to_string);
            match thread.as_deref() {
                Some("writer") => {
                    if op == "put_if_absent" && key.starts_with(".zarrtx/log/") && phase == Phase::After {
                        committed.raise();
                    }
                    // The writer's own publication installs the element only once the other publisher is mid-look.
                    if op == "rename" && is_staging_area(key) && phase == Phase::Before {
                        assert!(other_looking.wait(), "the other publisher never reached its look at the staged data");
                    }
                    if op == "rename" && is_staging_area(key) && phase == Phase::After {
                        installed.raise();
                    }
                }
                // The first look at the staged data asks whether the entry is installed; the second is part of
                // deciding what must move out of the way. Hold it there until the element is installed.
                Some("other")
                    if op == "exists" && is_staging_area(key) && phase == Phase::After && looks.fetch_add(1, Ordering::SeqCst) == 1 =>
                {
                    other_looking.raise();
                    assert!(installed.wait(), "the writer never installed the element");
                }
                _ => {}
            }
        })
    };
    storage.set_hook(Some(hook));
    let w = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || common::add_labels(&writer, "c", 16, false).map(|_| ()))
        .unwrap();
    assert!(committed.wait(), "the writer never committed");
    let o = std::thread::Builder::new().name("other".into()).spawn(move || other.publish().map(|_| ())).unwrap();
    w.join().unwrap().unwrap();
    o.join().unwrap().unwrap();
    storage.set_hook(None);
    assert!(looks.load(Ordering::SeqCst) >= 2, "the other publisher did not look at the staged data twice");

    let store = common::open(dir.path());
    store.publish().unwrap();
    let mut names = common::check_published_view(dir.path(), 16);
    names.sort();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(common::read_labels(&store, None, "c"), common::labels_data("c", 16), "c is where the view says");
    let trash = dir.path().join(".zarrtx/trash");
    let trashed: Vec<_> = std::fs::read_dir(&trash).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert_eq!(trashed.len(), usize::from(deleted_first), "only the deleted generation is in the trash: {trashed:?}");
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn a_publisher_that_looks_while_another_installs_leaves_the_element_in_place() {
    race(false);
}

#[test]
fn a_publisher_that_looks_while_another_evicts_a_deleted_generation_and_installs_leaves_the_element_in_place() {
    race(true);
}
