//! Advisory locks of a storage medium: readers-writer locks named by key, used to make writers wait for each
//! other instead of retrying — never to decide a race (that is `put_if_absent`'s job).
//!
//! Where locks are node-local (NFS `local_lock`, Lustre `localflock`, FUSE mounts) or switched off ([`NoLocks`]),
//! every guarantee still holds: writers on different nodes simply retry more often.

use crate::error::Result;
use std::fmt::Debug;

/// Readers-writer advisory locks named by key. Every call is a holder of its own (two calls of one process
/// exclude each other exactly as two processes do); a lock is released when its guard drops or the holding
/// process dies.
pub trait Locks: Send + Sync + Debug {
    /// True for real locks (possibly node-local); false for [`NoLocks`], which grants everything at once.
    fn enabled(&self) -> bool;
    /// Takes the exclusive lock named `key`, waiting for it.
    fn lock_exclusive(&self, key: &str) -> Result<LockGuard>;
    /// Takes the exclusive lock named `key` if nobody holds it (shared or exclusive); `None` when it is held.
    fn try_lock_exclusive(&self, key: &str) -> Result<Option<LockGuard>>;
    /// Takes the shared lock named `key`, waiting while an exclusive holder has it. A signal handler installed
    /// without `SA_RESTART` may end the wait with an `Error::Io` of kind `Interrupted` (not retried here), so that a
    /// caller such as the Python binding can run its signal handlers.
    fn lock_shared(&self, key: &str) -> Result<LockGuard>;
    /// Takes the shared lock named `key` if no exclusive holder has it; `None` when one has.
    fn try_lock_shared(&self, key: &str) -> Result<Option<LockGuard>>;
}

/// Holds a lock until dropped.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send>);

impl LockGuard {
    /// Wraps whatever keeps the lock held (an open file, an entry in a lock table, ...).
    pub fn new(holder: Box<dyn Send>) -> Self {
        LockGuard(holder)
    }
}

impl Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

/// Locks that lock nothing: every acquisition succeeds at once. What a medium without locks gives, and what
/// `ZARRTX_LOCKS=off` (or [`crate::OpenOptions::advisory_locks`] `false`) selects — the protocol stays correct.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLocks;

impl Locks for NoLocks {
    fn enabled(&self) -> bool {
        false
    }
    fn lock_exclusive(&self, _key: &str) -> Result<LockGuard> {
        Ok(LockGuard::new(Box::new(())))
    }
    fn try_lock_exclusive(&self, _key: &str) -> Result<Option<LockGuard>> {
        Ok(Some(LockGuard::new(Box::new(()))))
    }
    fn lock_shared(&self, _key: &str) -> Result<LockGuard> {
        Ok(LockGuard::new(Box::new(())))
    }
    fn try_lock_shared(&self, _key: &str) -> Result<Option<LockGuard>> {
        Ok(Some(LockGuard::new(Box::new(()))))
    }
}

/// Whether advisory locks are used, from the environment: `ZARRTX_LOCKS=off` (or `0`, `false`, `no`) switches
/// them off for every store a process opens; anything else (or nothing) leaves them on.
pub fn locks_enabled_by_env() -> bool {
    !matches!(
        std::env::var("ZARRTX_LOCKS").map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Ok("off" | "0" | "false" | "no")
    )
}
