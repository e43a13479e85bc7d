//! G2 for deletes and overwrites: the published view stops listing an element before its files move, so a plain
//! reader never finds a listed element with missing chunks (which zarr readers would silently read as zeros).

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use zarrtx::storage::{Capabilities, Locks, MoveOutcome, PosixStorage, PutOutcome, Storage};
use zarrtx::{Result, Store};

/// Checks, at every move of an installed element, that the current root view no longer lists it.
#[derive(Debug)]
struct ViewWatchingStorage {
    inner: PosixStorage,
    checked_moves: AtomicUsize,
}

impl Storage for ViewWatchingStorage {
    fn capabilities(&self) -> Capabilities { self.inner.capabilities() }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> { self.inner.get(key) }
    fn exists(&self, key: &str) -> Result<bool> { self.inner.exists(key) }
    // The optional operations POSIX implements itself (the defaults would `get` a directory, which fails).
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Option<Vec<u8>>> { self.inner.get_range(key, range) }
    fn size(&self, key: &str) -> Result<Option<u64>> { self.inner.size(key) }
    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> { self.inner.put_relaxed(key, bytes) }
    fn put_private(&self, key: &str, bytes: &[u8]) -> Result<()> { self.inner.put_private(key, bytes) }
    fn sync(&self, keys: &[String]) -> Result<()> { self.inner.sync(keys) }
    fn sync_prefix(&self, prefix: &str) -> Result<()> { self.inner.sync_prefix(prefix) }
    fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, u64)>> { self.inner.list_recursive(prefix) }
    fn has_children(&self, prefix: &str) -> Result<bool> { self.inner.has_children(prefix) }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> { self.inner.put(key, bytes) }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome> { self.inner.put_if_absent(key, bytes) }
    fn delete(&self, key: &str) -> Result<()> { self.inner.delete(key) }
    fn list(&self, dir: &str) -> Result<Vec<String>> { self.inner.list(dir) }
    fn rename(&self, from: &str, to: &str) -> Result<MoveOutcome> {
        if !from.starts_with(".zarrtx") && self.inner.exists(&format!("{from}/zarr.json"))? {
            let view: serde_json::Value =
                serde_json::from_slice(&self.inner.get("zarr.json")?.expect("root view")).unwrap();
            let listed = view["consolidated_metadata"]["metadata"].as_object().unwrap();
            assert!(
                !listed.keys().any(|k| k == from || k.starts_with(&format!("{from}/"))),
                "{from} is moved away while the published view still lists it"
            );
            self.checked_moves.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.rename(from, to)
    }
    fn delete_tree(&self, key: &str) -> Result<u64> { self.inner.delete_tree(key) }
    fn create_dir(&self, key: &str) -> Result<()> { self.inner.create_dir(key) }
    fn modified(&self, key: &str) -> Result<Option<SystemTime>> { self.inner.modified(key) }
    fn location(&self) -> PathBuf { self.inner.location() }
    fn replace_file(&self, from: &str, to: &str) -> Result<bool> { self.inner.replace_file(from, to) }
    fn locks(&self) -> &dyn Locks { self.inner.locks() }
}

#[test]
fn deleted_and_overwritten_elements_leave_the_view_before_their_files_move() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(ViewWatchingStorage {
        inner: PosixStorage::new(dir.path(), false),
        checked_moves: AtomicUsize::new(0),
    });
    let store = Store::open_with_storage(storage.clone(), &common::test_options()).unwrap();
    common::add_labels(&store, "a", 32, false).unwrap();
    common::add_labels(&store, "b", 32, false).unwrap();
    common::add_labels(&store, "c", 32, false).unwrap();
    common::add_constant(&store, "a", 32, 5, true).unwrap(); // overwrite: the old generation moves at install
    assert_eq!(storage.checked_moves.load(Ordering::SeqCst), 1, "the overwrite's move was checked");
    store.delete("b").unwrap();
    store.delete("c").unwrap();
    assert_eq!(storage.checked_moves.load(Ordering::SeqCst), 1, "a delete leaves the data in place");
    assert!(dir.path().join("labels/b/zarr.json").exists() && dir.path().join("labels/c/zarr.json").exists());
    common::add_constant(&store, "c", 32, 9, false).unwrap(); // a new generation of c evicts the old one first
    assert_eq!(storage.checked_moves.load(Ordering::SeqCst), 2, "the eviction by the re-add was checked");
    store.gc(std::time::Duration::ZERO).unwrap(); // evicts b (then reclaims the trash)
    assert_eq!(storage.checked_moves.load(Ordering::SeqCst), 3, "gc's eviction was checked");
    // And afterwards the view lists the new generations of `a` and `c`, and not `b`.
    let view: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("zarr.json")).unwrap()).unwrap();
    let listed = view["consolidated_metadata"]["metadata"].as_object().unwrap();
    assert!(listed.contains_key("labels/a/s0") && listed.contains_key("labels/c/s0") && !listed.contains_key("labels/b"));
    assert!(!dir.path().join("labels/b").exists());
    assert_eq!(common::read_labels(&store, None, "c"), ndarray::ArrayD::from_elem(vec![32, 32], 9));
    assert!(store.verify().unwrap().is_clean());
}
