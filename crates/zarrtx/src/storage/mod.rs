//! The storage seam: every byte of a store or a hierarchy — log, checkpoints, view, element data of every type,
//! plan records and parts, table chunks, the instance-id index, locks — goes through [`Storage`].
//!
//! # The contract
//!
//! Keys are `/`-separated paths relative to the store root, without a leading `/`, `.` or `..` segments; `""` is
//! the root. A key names an *object* (a byte string) or, when other keys lie below it, a *prefix* (a directory
//! on POSIX). Every backend provides:
//!
//! - **get / get_range**: the whole object, or a byte range of it (`None` when it does not exist). A read never
//!   returns a mix of two writes of the object.
//! - **put** ([`Storage::put`]): replaces (or creates) an object atomically — readers see the old or the new
//!   bytes, never a mix, never a missing object — and durably on return when the backend is durable.
//!   [`Storage::put_relaxed`] is the same without the durability: [`Storage::sync`] makes a batch durable at
//!   once. [`Storage::put_private`] writes an object that no other writer touches and no reader looks at until a
//!   later commit publishes it (staging areas): the backend may write it in place, non-atomically.
//! - **put_if_absent** ([`Storage::put_if_absent`]): creates an object with its complete content only if the key
//!   does not exist — the one primitive that decides every race of the protocol (`link(2)` on POSIX, including
//!   NFS; `If-None-Match: *` on object stores). An ambiguous outcome (a lost reply: the write happened but an
//!   error or "already exists" came back) is resolved *inside* the backend by reading the key back: identical
//!   bytes mean the write was ours. Callers therefore write content that is unique to them (a transaction id),
//!   or content for which any writer's copy is as good as theirs (checkpoints).
//! - **delete**, **list** (direct children of a prefix, sorted), **exists** (object or prefix), **modified**
//!   (last modification of an object, or of a prefix: the newest below it where the backend cannot say better).
//! - **capabilities** ([`Capabilities`]): what else the backend offers. The engine asks before it uses any of
//!   the optional operations below, and refuses with a typed error (or uses another way) where one is missing.
//!
//! Optional operations (each one is announced in [`Capabilities`]; the default implementation says
//! `Unsupported`):
//!
//! - **rename** ([`Storage::rename`]): moves an object or a whole prefix to a key that does not exist, atomically
//!   (one `rename(2)` on POSIX). It never replaces an existing tree: exactly one of several movers succeeds.
//! - **replace_file** ([`Storage::replace_file`]): moves one object over another atomically (the target is
//!   replaced).
//! - **conditional replace** ([`Storage::get_tagged`], [`Storage::put_if_match`]): compare-and-swap of an object
//!   on its version tag (`If-Match` on object stores). POSIX filesystems do not have it.
//! - **hard links** ([`Storage::hard_link`]) and **exchange** ([`Storage::exchange`], `renameat2(RENAME_EXCHANGE)`).
//! - **advisory locks** ([`Storage::locks`]): readers-writer locks. They may be node-local (NFS with
//!   `local_lock`, Lustre with `localflock`, FUSE mounts) or switched off ([`NoLocks`]): the protocol uses them to
//!   make writers wait instead of retry, never to decide correctness.
//!
//! Backends: [`PosixStorage`] (local disks and shared filesystems), [`MemoryStorage`] (the reference backend for
//! tests, with configurable capabilities), and [`FaultyStorage`] (wraps any backend and injects failures: the
//! N-th operation fails, a write succeeds but reports an error, delays, a full medium). [`conformance`] is the
//! suite every backend passes. Element writers and readers see a [`DataHandle`] (a storage plus a key prefix),
//! which also hands zarrs a storage adapter ([`DataHandle::zarr_store`]).

pub mod conformance;
pub mod faulty;
pub mod handle;
pub mod json;
pub mod lease;
pub mod locks;
pub mod memory;
pub mod posix;
pub mod zarr_adapter;

use crate::error::{Error, Result};
use std::fmt::Debug;
use std::ops::Range;
use std::path::PathBuf;
use std::time::SystemTime;

pub use faulty::{Fault, FaultyStorage, Hook, Phase};
pub use handle::DataHandle;
pub use locks::{LockGuard, Locks, NoLocks};
pub use memory::{MemoryOptions, MemoryStorage};
pub use posix::PosixStorage;

/// What a create-if-absent write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The key did not exist and now holds our bytes (or held them already: a lost reply of our own write).
    Created,
    /// The key already existed with other bytes; nothing was written.
    AlreadyExists,
}

/// What a conditional replace found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The object held the expected version and now holds our bytes, with this new version tag.
    Replaced(Tag),
    /// The object changed (or appeared, or vanished) since the expected version was read; nothing was written.
    Changed,
}

/// The version of an object, for a conditional replace ([`Storage::put_if_match`]). `None` in
/// [`Storage::put_if_match`] means "the object must not exist".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(pub String);

/// What a move found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The source now lives at the target.
    Moved,
    /// The source did not exist (already moved, or never written).
    SourceMissing,
    /// The target already existed; nothing was moved.
    TargetExists,
}

/// What a backend offers beyond the required operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Storage::rename`] and [`Storage::replace_file`]: atomic moves of objects and prefixes.
    pub rename: bool,
    /// [`Storage::get_tagged`] / [`Storage::put_if_match`]: compare-and-swap of one object.
    pub conditional_replace: bool,
    /// [`Storage::hard_link`].
    pub hard_links: bool,
    /// [`Storage::exchange`] may succeed (it may still report that a given pair cannot be exchanged).
    pub exchange: bool,
    /// Files are made durable (fsync) where the contract says "durable".
    pub durable: bool,
    /// [`Storage::locks`] are real advisory locks (possibly node-local), not [`NoLocks`].
    pub advisory_locks: bool,
}

/// A store's storage medium (see the module documentation for the contract).
pub trait Storage: Send + Sync + Debug {
    /// What the backend offers beyond the required operations.
    fn capabilities(&self) -> Capabilities;

    /// A human-readable location of the store (a path or a URL), for messages. Errors name `location/key`.
    fn location(&self) -> PathBuf;

    /// Reads a whole object, or `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Reads `range` of an object (clipped to its end), or `None` when it does not exist.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Vec<u8>>> {
        Ok(self.get(key)?.map(|b| {
            let start = range.start.min(b.len() as u64) as usize;
            let end = (range.end.min(b.len() as u64) as usize).max(start);
            b[start..end].to_vec()
        }))
    }

    /// The size of an object, or `None` when it does not exist.
    fn size(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.get(key)?.map(|b| b.len() as u64))
    }

    /// True when the key names an object or a non-empty prefix. On NFS this opens the file (close-to-open
    /// consistency) rather than trusting cached attributes.
    fn exists(&self, key: &str) -> Result<bool>;

    /// Atomically replaces (or creates) an object; durable on return when the backend is durable.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// Like [`Storage::put`] (atomic replace), but not durable until [`Storage::sync`] is called on the key.
    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put(key, bytes)
    }

    /// Writes an object in an area that only this writer uses until a commit publishes it: no reader looks at it
    /// and nobody else writes it, so the backend may write in place (not atomically). Not durable until
    /// [`Storage::sync`]; a durable backend may start writing it back at once.
    fn put_private(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put_relaxed(key, bytes)
    }

    /// Makes objects written with [`Storage::put_relaxed`] / [`Storage::put_private`] durable, with the directory
    /// entries that name them, in parallel.
    fn sync(&self, keys: &[String]) -> Result<()> {
        let _ = keys;
        Ok(())
    }

    /// Makes every object below `prefix` durable, with the directories that hold them.
    fn sync_prefix(&self, prefix: &str) -> Result<()> {
        let keys: Vec<String> = self.list_recursive(prefix)?.into_iter().map(|(k, _)| k).collect();
        self.sync(&keys)
    }

    /// Creates an object with the complete content `bytes` only if the key does not exist: the one arbitration
    /// primitive of the protocol. Ambiguous outcomes are resolved by reading the key back (identical bytes: ours).
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome>;

    /// Reads an object with its version tag, for [`Storage::put_if_match`]; `None` when it does not exist.
    /// Only where [`Capabilities::conditional_replace`].
    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, Tag)>> {
        Err(self.unsupported("conditional replace", key))
    }

    /// Replaces an object only if its version is still `expected` (`None`: only if it does not exist).
    /// Only where [`Capabilities::conditional_replace`].
    fn put_if_match(&self, key: &str, bytes: &[u8], expected: Option<&Tag>) -> Result<CasOutcome> {
        let _ = (bytes, expected);
        Err(self.unsupported("conditional replace", key))
    }

    /// Deletes an object; a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Names of the direct children of a prefix (objects and sub-prefixes), sorted; empty when it has none.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Every object below `prefix` with its size, keys relative to the store root, sorted.
    fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut pending = vec![prefix.to_string()];
        while let Some(dir) = pending.pop() {
            for child in self.list(&dir)? {
                let key = join(&dir, &child);
                match self.size(&key)? {
                    Some(n) if !self.has_children(&key)? => out.push((key, n)),
                    _ => pending.push(key),
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// True when a prefix has at least one child.
    fn has_children(&self, prefix: &str) -> Result<bool> {
        Ok(!self.list(prefix)?.is_empty())
    }

    /// Deletes an object or everything below a prefix, returning the bytes freed; a missing key is not an error.
    fn delete_tree(&self, key: &str) -> Result<u64> {
        let mut freed = 0;
        if let Some(n) = self.size(key)? {
            if !self.has_children(key)? {
                self.delete(key)?;
                return Ok(n);
            }
        }
        for (k, n) in self.list_recursive(key)? {
            self.delete(&k)?;
            freed += n;
        }
        Ok(freed)
    }

    /// Prepares a prefix for writing below it (creates the directory on POSIX; nothing elsewhere).
    fn create_dir(&self, key: &str) -> Result<()> {
        let _ = key;
        Ok(())
    }

    /// Last modification time of an object (or, for a prefix, of the directory, or of its newest object where the
    /// backend has no directories), or `None` when it does not exist.
    fn modified(&self, key: &str) -> Result<Option<SystemTime>>;

    /// Moves an object or a whole prefix to `to`, which must not exist: atomically, and exactly one of several
    /// concurrent movers of the same source succeeds. Only where [`Capabilities::rename`].
    fn rename(&self, from: &str, to: &str) -> Result<MoveOutcome> {
        let _ = to;
        Err(self.unsupported("rename", from))
    }

    /// Moves one object over `to`, replacing it atomically (readers of `to` see the old or the new object).
    /// `Ok(false)` when `from` does not exist. Only where [`Capabilities::rename`].
    fn replace_file(&self, from: &str, to: &str) -> Result<bool> {
        let _ = to;
        Err(self.unsupported("rename", from))
    }

    /// Makes `to` a second name of the object `from` (creating `to`'s parents). Only where
    /// [`Capabilities::hard_links`].
    fn hard_link(&self, from: &str, to: &str) -> Result<()> {
        let _ = to;
        Err(self.unsupported("hard links", from))
    }

    /// Exchanges two prefixes atomically. `Ok(false)` when this pair cannot be exchanged (the filesystem does not
    /// support it), so the caller falls back to two moves. Only where [`Capabilities::exchange`].
    fn exchange(&self, a: &str, b: &str) -> Result<bool> {
        let _ = b;
        Err(self.unsupported("exchange", a))
    }

    /// An identity of the prefix (or object) at `key` that changes when another tree is moved there (an inode on
    /// POSIX), or `None` when it does not exist.
    fn identity(&self, key: &str) -> Result<Option<String>> {
        Err(self.unsupported("tree identity", key))
    }

    /// The backend's advisory locks ([`NoLocks`] where there are none or they are switched off).
    fn locks(&self) -> &dyn Locks;

    /// The error for an optional operation this backend does not offer.
    fn unsupported(&self, operation: &str, key: &str) -> Error {
        Error::Unsupported {
            path: self.location().join(key),
            operation: operation.to_string(),
        }
    }
}

/// `dir/child`, or `child` when `dir` is the root.
pub fn join(dir: &str, child: &str) -> String {
    match (dir.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{child}"),
    }
}

/// The parent prefix of a key (`""` for a key at the root).
pub fn parent(key: &str) -> &str {
    key.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}
