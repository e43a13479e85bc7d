//! A fault-injecting wrapper around any backend, for tests of what the protocol does when the medium misbehaves:
//! the N-th operation fails, every operation from the N-th on fails (the writer "dies" there), a write happens but
//! reports an error (a lost response), operations are delayed, or the medium is full.
//!
//! Operations are counted from 0 in the order the wrapper sees them; [`FaultyStorage::ops`] tells how many ran, so
//! a test can first count the operations of a clean run and then fail each one in turn.

use super::locks::Locks;
use super::{CasOutcome, Capabilities, MoveOutcome, PutOutcome, Storage, Tag};
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One injected misbehaviour.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Operation number `n` fails with an I/O error (nothing is done).
    FailNth(u64),
    /// Every operation from number `n` on fails (nothing is done): a writer that died at that point.
    FailFrom(u64),
    /// The next `times` writes of a key containing the text are performed, then reported as failed (a lost reply).
    LoseResponse {
        /// Part of the key.
        key_contains: String,
        /// How many writes lose their response.
        times: u32,
    },
    /// Every operation on a key containing the text sleeps first.
    Delay {
        /// Part of the key.
        key_contains: String,
        /// How long.
        duration: Duration,
    },
    /// Writes fail with "no space left" once this many bytes were written through the wrapper.
    FullAfter(u64),
}

/// Wraps a backend and injects [`Fault`]s.
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    faults: Mutex<Vec<Fault>>,
    ops: AtomicU64,
    written: AtomicU64,
}

impl FaultyStorage {
    /// Wraps `inner`, injecting nothing yet.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        FaultyStorage { inner, faults: Mutex::new(Vec::new()), ops: AtomicU64::new(0), written: AtomicU64::new(0) }
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        if let Ok(mut f) = self.faults.lock() {
            f.push(fault);
        }
    }

    /// Removes every fault (counters keep running).
    pub fn clear(&self) {
        if let Ok(mut f) = self.faults.lock() {
            f.clear();
        }
    }

    /// How many operations ran through the wrapper so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Resets the operation counter (faults are numbered from the reset).
    pub fn reset_ops(&self) {
        self.ops.store(0, Ordering::SeqCst);
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    fn injected(&self, key: &str, what: &str) -> Error {
        Error::Io {
            path: self.inner.location().join(key),
            source: std::io::Error::other(format!("injected fault: {what}")),
        }
    }

    /// Counts one operation on `key` and applies the faults that concern it before it runs.
    fn before(&self, key: &str, write_bytes: Option<usize>) -> Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        for f in &faults {
            match f {
                Fault::FailNth(k) if *k == n => return Err(self.injected(key, &format!("operation {n} fails"))),
                Fault::FailFrom(k) if n >= *k => return Err(self.injected(key, &format!("dead from operation {k}"))),
                Fault::Delay { key_contains, duration } if key.contains(key_contains.as_str()) => std::thread::sleep(*duration),
                Fault::FullAfter(limit) => {
                    if let Some(b) = write_bytes {
                        let total = self.written.fetch_add(b as u64, Ordering::SeqCst) + b as u64;
                        if total > *limit {
                            return Err(Error::StorageFull { path: self.inner.location().join(key) });
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// After a write that succeeded: whether its response is to be lost.
    fn lose_response(&self, key: &str) -> bool {
        let Ok(mut faults) = self.faults.lock() else { return false };
        for f in faults.iter_mut() {
            if let Fault::LoseResponse { key_contains, times } = f {
                if *times > 0 && key.contains(key_contains.as_str()) {
                    *times -= 1;
                    return true;
                }
            }
        }
        false
    }

    fn write<T>(&self, key: &str, bytes: usize, op: impl FnOnce() -> Result<T>) -> Result<T> {
        self.before(key, Some(bytes))?;
        let out = op()?;
        if self.lose_response(key) {
            return Err(self.injected(key, "the write happened but its response was lost"));
        }
        Ok(out)
    }
}

impl Storage for FaultyStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> PathBuf {
        self.inner.location()
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.before(key, None)?;
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Option<Vec<u8>>> {
        self.before(key, None)?;
        self.inner.get_range(key, range)
    }
    fn size(&self, key: &str) -> Result<Option<u64>> {
        self.before(key, None)?;
        self.inner.size(key)
    }
    fn exists(&self, key: &str) -> Result<bool> {
        self.before(key, None)?;
        self.inner.exists(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write(key, bytes.len(), || self.inner.put(key, bytes))
    }
    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write(key, bytes.len(), || self.inner.put_relaxed(key, bytes))
    }
    fn put_private(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write(key, bytes.len(), || self.inner.put_private(key, bytes))
    }
    fn sync(&self, keys: &[String]) -> Result<()> {
        self.before(keys.first().map(String::as_str).unwrap_or(""), None)?;
        self.inner.sync(keys)
    }
    fn sync_prefix(&self, prefix: &str) -> Result<()> {
        self.before(prefix, None)?;
        self.inner.sync_prefix(prefix)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome> {
        self.write(key, bytes.len(), || self.inner.put_if_absent(key, bytes))
    }
    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, Tag)>> {
        self.before(key, None)?;
        self.inner.get_tagged(key)
    }
    fn put_if_match(&self, key: &str, bytes: &[u8], expected: Option<&Tag>) -> Result<CasOutcome> {
        self.write(key, bytes.len(), || self.inner.put_if_match(key, bytes, expected))
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.write(key, 0, || self.inner.delete(key))
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.before(prefix, None)?;
        self.inner.list(prefix)
    }
    fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.before(prefix, None)?;
        self.inner.list_recursive(prefix)
    }
    fn has_children(&self, prefix: &str) -> Result<bool> {
        self.before(prefix, None)?;
        self.inner.has_children(prefix)
    }
    fn delete_tree(&self, key: &str) -> Result<u64> {
        self.write(key, 0, || self.inner.delete_tree(key))
    }
    fn create_dir(&self, key: &str) -> Result<()> {
        self.write(key, 0, || self.inner.create_dir(key))
    }
    fn modified(&self, key: &str) -> Result<Option<SystemTime>> {
        self.before(key, None)?;
        self.inner.modified(key)
    }
    fn rename(&self, from: &str, to: &str) -> Result<MoveOutcome> {
        self.write(to, 0, || self.inner.rename(from, to))
    }
    fn replace_file(&self, from: &str, to: &str) -> Result<bool> {
        self.write(to, 0, || self.inner.replace_file(from, to))
    }
    fn hard_link(&self, from: &str, to: &str) -> Result<()> {
        self.write(to, 0, || self.inner.hard_link(from, to))
    }
    fn exchange(&self, a: &str, b: &str) -> Result<bool> {
        self.write(a, 0, || self.inner.exchange(a, b))
    }
    fn identity(&self, key: &str) -> Result<Option<String>> {
        self.before(key, None)?;
        self.inner.identity(key)
    }
    fn locks(&self) -> &dyn Locks {
        self.inner.locks()
    }
    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.inner.local_path(key)
    }
}
