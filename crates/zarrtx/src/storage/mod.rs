//! The storage trait: the few operations the protocol needs. Everything that decides a race goes through
//! [`Storage::put_if_absent`]; nothing depends on rename-no-replace, locks or overwrite-with-condition, so an
//! object-store backend (conditional PUT with `If-None-Match: *`) fits behind the same trait.

pub mod json;
pub mod posix;

use crate::error::Result;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::SystemTime;

pub use posix::PosixStorage;

/// What a create-if-absent write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The key did not exist and now holds our bytes.
    Created,
    /// The key already existed; nothing was written. The caller reads it back to see whose it is.
    AlreadyExists,
}

/// What a tree move found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The source now lives at the target.
    Moved,
    /// The source did not exist (already moved, or never written).
    SourceMissing,
    /// The target already existed; nothing was moved.
    TargetExists,
}

/// A store's storage medium. Keys are `/`-separated paths relative to the store root.
pub trait Storage: Send + Sync + Debug {
    /// Reads a whole file, or `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// True when the key exists (a file or a directory). On NFS this opens the file (close-to-open
    /// consistency) rather than trusting cached attributes.
    fn exists(&self, key: &str) -> Result<bool>;
    /// Atomically replaces (or creates) a file: readers see the old or the new content, never a mix.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Like [`Storage::put`] (atomic replace), but the file is not made durable yet: call [`Storage::sync`] on the
    /// keys before relying on them after a power failure. Lets a batch of files share one round of flushes.
    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put(key, bytes)
    }
    /// Makes files written with [`Storage::put_relaxed`] (and their directory entries) durable, in parallel.
    fn sync(&self, keys: &[String]) -> Result<()> {
        let _ = keys;
        Ok(())
    }
    /// Creates a file with the complete content `bytes` only if the key does not exist: the one arbitration
    /// primitive of the protocol. On an ambiguous failure the caller reads the key back.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome>;
    /// Deletes a file; a missing file is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Names of the direct children of a directory key (empty when it does not exist).
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Moves a whole tree to a key that must not exist. On POSIX a single rename(2).
    fn move_tree(&self, from: &str, to: &str) -> Result<MoveOutcome>;
    /// Deletes a whole tree, returning the number of bytes freed; a missing tree is not an error.
    fn delete_tree(&self, key: &str) -> Result<u64>;
    /// Creates a directory and its parents.
    fn create_dir(&self, key: &str) -> Result<()>;
    /// Last modification time of a key, or `None` when it does not exist.
    fn modified(&self, key: &str) -> Result<Option<SystemTime>>;
    /// The local filesystem path of a key, for libraries (zarrs) that write element data directly.
    /// `None` for backends without local paths.
    fn local_path(&self, key: &str) -> Option<PathBuf>;
    /// A human-readable location of the store, for messages.
    fn location(&self) -> PathBuf;
    /// Takes the exclusive advisory lock named `key`, waiting for it. It is released when the guard drops or
    /// the holding process dies. Every call is a holder of its own (on POSIX: its own open file description), so
    /// two calls of one process exclude each other exactly as two processes do. Used to serialize work
    /// (installing and publishing, appends to one table, user locks), never to decide a commit race.
    fn lock_exclusive(&self, key: &str) -> Result<LockGuard>;
    /// Takes the exclusive lock named `key` if nobody holds it (shared or exclusive); `None` when it is held.
    fn try_lock_exclusive(&self, key: &str) -> Result<Option<LockGuard>>;
    /// Takes the shared advisory lock named `key`, waiting while an exclusive holder has it. Any number of shared
    /// holders may hold it at once; an exclusive holder excludes them all. Released like
    /// [`Storage::lock_exclusive`]'s lock (guard dropped, or the holding process dies), and likewise every call is
    /// a holder of its own.
    fn lock_shared(&self, key: &str) -> Result<LockGuard>;
    /// Takes the shared lock named `key` if no exclusive holder has it; `None` when one has.
    fn try_lock_shared(&self, key: &str) -> Result<Option<LockGuard>>;
}

/// Holds a lock taken with [`Storage::lock_exclusive`] or [`Storage::lock_shared`] until dropped.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send>);

impl LockGuard {
    /// Wraps whatever keeps the lock held (an open file, a lease renewer, ...).
    pub fn new(holder: Box<dyn Send>) -> Self {
        LockGuard(holder)
    }
}

impl Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}
