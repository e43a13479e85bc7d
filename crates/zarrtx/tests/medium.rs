//! G8: a medium that does not honour create-if-absent is refused for writing (unless single-writer mode is asked
//! for), because it could not decide races.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use zarrtx::storage::{Capabilities, Locks, MoveOutcome, PosixStorage, PutOutcome, Storage};
use zarrtx::{Error, OpenOptions, Result, Store};

/// A backend that, like some gateways and FUSE mounts, silently overwrites on "create if absent".
#[derive(Debug)]
struct OverwritingStorage(PosixStorage);

impl Storage for OverwritingStorage {
    fn capabilities(&self) -> Capabilities { self.0.capabilities() }
    fn location(&self) -> PathBuf { self.0.location() }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> { self.0.get(key) }
    fn exists(&self, key: &str) -> Result<bool> { self.0.exists(key) }
    // The optional operations POSIX implements itself (the defaults would `get` a directory, which fails).
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Option<Vec<u8>>> { self.0.get_range(key, range) }
    fn size(&self, key: &str) -> Result<Option<u64>> { self.0.size(key) }
    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> { self.0.put_relaxed(key, bytes) }
    fn put_private(&self, key: &str, bytes: &[u8]) -> Result<()> { self.0.put_private(key, bytes) }
    fn sync(&self, keys: &[String]) -> Result<()> { self.0.sync(keys) }
    fn sync_prefix(&self, prefix: &str) -> Result<()> { self.0.sync_prefix(prefix) }
    fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, u64)>> { self.0.list_recursive(prefix) }
    fn has_children(&self, prefix: &str) -> Result<bool> { self.0.has_children(prefix) }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> { self.0.put(key, bytes) }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome> {
        self.0.put(key, bytes)?;
        Ok(PutOutcome::Created)
    }
    fn delete(&self, key: &str) -> Result<()> { self.0.delete(key) }
    fn list(&self, dir: &str) -> Result<Vec<String>> { self.0.list(dir) }
    fn rename(&self, from: &str, to: &str) -> Result<MoveOutcome> { self.0.rename(from, to) }
    fn replace_file(&self, from: &str, to: &str) -> Result<bool> { self.0.replace_file(from, to) }
    fn hard_link(&self, from: &str, to: &str) -> Result<()> { self.0.hard_link(from, to) }
    fn delete_tree(&self, key: &str) -> Result<u64> { self.0.delete_tree(key) }
    fn create_dir(&self, key: &str) -> Result<()> { self.0.create_dir(key) }
    fn modified(&self, key: &str) -> Result<Option<SystemTime>> { self.0.modified(key) }
    fn locks(&self) -> &dyn Locks { self.0.locks() }
}

#[test]
fn a_medium_without_create_if_absent_is_refused_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(OverwritingStorage(PosixStorage::new(dir.path(), false)));
    let err = Store::open_with_storage(storage.clone(), &OpenOptions::default()).unwrap_err();
    match &err {
        Error::UnsafeMedium { reason, .. } => assert!(reason.contains("create-if-absent"), "{reason}"),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("single_writer"), "the message names the way out: {err}");
    // Single-writer mode is an explicit, documented choice; then writing works.
    let store = Store::open_with_storage(storage, &OpenOptions { single_writer: true, ..Default::default() }).unwrap();
    common::add_labels(&store, "a", 16, false).unwrap();
    assert_eq!(store.version().unwrap(), 1);
}

#[test]
fn a_posix_directory_passes_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(PosixStorage::new(dir.path(), false));
    zarrtx::probe::check_medium(storage.as_ref(), false).unwrap();
    assert!(storage.list(zarrtx::layout::PROBE_DIR).unwrap().is_empty(), "the probe cleans up");
}
