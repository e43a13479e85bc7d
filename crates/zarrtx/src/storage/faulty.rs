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

/// Which side of an operation a [`Hook`] is called on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the operation runs (after the faults that fail it were applied).
    Before,
    /// After it succeeded.
    After,
}

/// A test hook, called on the calling thread with the operation's name (`"get"`, `"put_relaxed"`, `"rename"`, ...),
/// its key (of a move: the source for `rename` and `exchange`, the destination for `replace_file` and `hard_link`) and
/// the [`Phase`]: it can pause a thread at an exact point, or check the store at every step.
pub type Hook = Arc<dyn Fn(&str, &str, Phase) + Send + Sync>;

/// Wraps a backend and injects [`Fault`]s.
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    faults: Mutex<Vec<Fault>>,
    ops: AtomicU64,
    written: AtomicU64,
    hook: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for FaultyStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStorage").field("inner", &self.inner).field("ops", &self.ops()).finish()
    }
}

impl FaultyStorage {
    /// Wraps `inner`, injecting nothing yet.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        FaultyStorage {
            inner,
            faults: Mutex::new(Vec::new()),
            ops: AtomicU64::new(0),
            written: AtomicU64::new(0),
            hook: Mutex::new(None),
        }
    }

    /// Sets (or removes) the hook called around every operation.
    pub fn set_hook(&self, hook: Option<Hook>) {
        if let Ok(mut h) = self.hook.lock() {
            *h = hook;
        }
    }

    fn call_hook(&self, op: &str, key: &str, phase: Phase) {
        let hook = self.hook.lock().ok().and_then(|h| h.clone());
        if let Some(hook) = hook {
            hook(op, key, phase);
        }
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
        self.apply_faults(key, write_bytes)
    }

    /// Runs the read `op` on `key`: faults, hook, the operation, hook.
    fn read<T>(&self, op: &str, key: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.before(key, None)?;
        self.call_hook(op, key, Phase::Before);
        let out = f()?;
        self.call_hook(op, key, Phase::After);
        Ok(out)
    }

    fn apply_faults(&self, key: &str, write_bytes: Option<usize>) -> Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        for f in &faults {
            match f {
                Fault::FailNth(k) if *k == n => return Err(self.injected(key, &format!("operation {n} fails"))),
                Fault::FailFrom(k) if n >= *k => return Err(self.injected(key, &format!("dead from operation {k}"))),
                Fault::Delay { key_contains, duration } if key.contains(key_contains.as_str()) => std::thread::sleep(*duration),
                Fault::FullAfter(limit) => {
                    // Only writes that add bytes fail on a full medium (deletes, renames still work).
                    if let Some(b) = write_bytes.filter(|&b| b > 0) {
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

    fn write<T>(&self, op: &str, key: &str, bytes: usize, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.before(key, Some(bytes))?;
        self.call_hook(op, key, Phase::Before);
        let out = f()?;
        self.call_hook(op, key, Phase::After);
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
        self.read("get", key, || self.inner.get(key))
    }
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Option<Vec<u8>>> {
        self.read("get_range", key, || self.inner.get_range(key, range))
    }
    fn size(&self, key: &str) -> Result<Option<u64>> {
        self.read("size", key, || self.inner.size(key))
    }
    fn exists(&self, key: &str) -> Result<bool> {
        self.read("exists", key, || self.inner.exists(key))
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write("put", key, bytes.len(), || self.inner.put(key, bytes))
    }
    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write("put_relaxed", key, bytes.len(), || self.inner.put_relaxed(key, bytes))
    }
    fn put_private(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write("put_private", key, bytes.len(), || self.inner.put_private(key, bytes))
    }
    fn sync(&self, keys: &[String]) -> Result<()> {
        self.read("sync", keys.first().map(String::as_str).unwrap_or(""), || self.inner.sync(keys))
    }
    fn sync_prefix(&self, prefix: &str) -> Result<()> {
        self.read("sync_prefix", prefix, || self.inner.sync_prefix(prefix))
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome> {
        self.write("put_if_absent", key, bytes.len(), || self.inner.put_if_absent(key, bytes))
    }
    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, Tag)>> {
        self.read("get_tagged", key, || self.inner.get_tagged(key))
    }
    fn put_if_match(&self, key: &str, bytes: &[u8], expected: Option<&Tag>) -> Result<CasOutcome> {
        self.write("put_if_match", key, bytes.len(), || self.inner.put_if_match(key, bytes, expected))
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.write("delete", key, 0, || self.inner.delete(key))
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.read("list", prefix, || self.inner.list(prefix))
    }
    fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.read("list_recursive", prefix, || self.inner.list_recursive(prefix))
    }
    fn has_children(&self, prefix: &str) -> Result<bool> {
        self.read("has_children", prefix, || self.inner.has_children(prefix))
    }
    fn delete_tree(&self, key: &str) -> Result<u64> {
        self.write("delete_tree", key, 0, || self.inner.delete_tree(key))
    }
    fn create_dir(&self, key: &str) -> Result<()> {
        self.write("create_dir", key, 0, || self.inner.create_dir(key))
    }
    fn modified(&self, key: &str) -> Result<Option<SystemTime>> {
        self.read("modified", key, || self.inner.modified(key))
    }
    fn rename(&self, from: &str, to: &str) -> Result<MoveOutcome> {
        self.write("rename", from, 0, || self.inner.rename(from, to))
    }
    fn replace_file(&self, from: &str, to: &str) -> Result<bool> {
        self.write("replace_file", to, 0, || self.inner.replace_file(from, to))
    }
    fn hard_link(&self, from: &str, to: &str) -> Result<()> {
        self.write("hard_link", to, 0, || self.inner.hard_link(from, to))
    }
    fn exchange(&self, a: &str, b: &str) -> Result<bool> {
        self.write("exchange", a, 0, || self.inner.exchange(a, b))
    }
    fn identity(&self, key: &str) -> Result<Option<String>> {
        self.read("identity", key, || self.inner.identity(key))
    }
    fn locks(&self) -> &dyn Locks {
        self.inner.locks()
    }
}
