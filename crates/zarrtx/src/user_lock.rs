//! User-level advisory locks ([`Store::lock`]): readers-writer locks on the whole store or on a name, for callers
//! that need to coordinate work of their own (zarrtx's commits never need them and never take them).
//!
//! Two levels, with an intention lock between them:
//!
//! - the whole-store lock (`.zarrtx/locks/user.lock`), taken in the caller's mode when no name is given;
//! - one lock per name (`.zarrtx/locks/user-<key>.lock`, `<key>` the lower-cased name), taken after the
//!   whole-store lock in [`LockMode::Read`] mode.
//!
//! So a whole-store writer excludes every named lock, whole-store readers and named locks coexist, and named locks
//! on different names never wait for each other. Names follow the element-name rules and compare
//! case-insensitively, like element names.
//!
//! Every acquisition opens its own file description and holds an `flock` on it: two threads of one process
//! exclude each other exactly like two processes, and the kernel releases the lock when the holder dies.

use crate::error::{Error, Result};
use crate::layout;
use crate::name::ElementName;
use crate::storage::{LockGuard, Storage};
use crate::store::Store;
use std::fmt;
use std::time::{Duration, Instant};

/// How a user lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Shared: any number of readers hold the lock at once; no writer holds it meanwhile.
    Read,
    /// Exclusive: the one holder excludes every other reader and writer.
    Write,
}

/// A held user lock, from [`Store::lock`]. Released when dropped (or with [`UserLock::release`]), or by the kernel
/// when the holding process dies. It does not borrow the store: it stays held after the `Store` handle is dropped.
#[must_use = "the lock is released as soon as the UserLock is dropped"]
pub struct UserLock {
    name: Option<String>,
    mode: LockMode,
    /// The named lock, in `mode`; `None` for the whole-store lock.
    named: Option<LockGuard>,
    /// The whole-store lock: in `mode` without a name, in read mode (the intention lock) with one.
    store: Option<LockGuard>,
}

impl UserLock {
    /// The mode the lock is held in.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// The lock's name as it was asked for (names compare case-insensitively); `None` for the whole-store lock.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Releases the lock now (the same as dropping it).
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for UserLock {
    fn drop(&mut self) {
        // The named part first, then the whole-store part it was taken under: a whole-store writer never gets in
        // while the named part is still held.
        drop(self.named.take());
        drop(self.store.take());
    }
}

impl fmt::Debug for UserLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLock").field("name", &self.name).field("mode", &self.mode).finish()
    }
}

/// First and longest sleep between two attempts while polling for a lock with a timeout.
const FIRST_SLEEP: Duration = Duration::from_millis(1);
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// How long an acquisition may wait.
enum Wait {
    /// Block in the kernel until the lock is free.
    Forever,
    /// Try, then poll with growing sleeps until `timeout` has passed since `start` (`timeout` 0: try once).
    Until { start: Instant, timeout: Duration },
}

/// Takes the lock file `key` in `mode`; `None` when the wait ran out.
fn acquire(storage: &dyn Storage, key: &str, mode: LockMode, wait: &Wait) -> Result<Option<LockGuard>> {
    match wait {
        Wait::Forever => match mode {
            LockMode::Read => storage.locks().lock_shared(key).map(Some),
            LockMode::Write => storage.locks().lock_exclusive(key).map(Some),
        },
        Wait::Until { start, timeout } => {
            let mut sleep = FIRST_SLEEP;
            loop {
                let held = match mode {
                    LockMode::Read => storage.locks().try_lock_shared(key)?,
                    LockMode::Write => storage.locks().try_lock_exclusive(key)?,
                };
                if held.is_some() {
                    return Ok(held);
                }
                let elapsed = start.elapsed();
                if elapsed >= *timeout {
                    return Ok(None);
                }
                std::thread::sleep(sleep.min(*timeout - elapsed));
                sleep = (sleep * 2).min(MAX_SLEEP);
            }
        }
    }
}

impl Store {
    /// Takes a user-level advisory lock: a readers-writer lock shared by every thread, process and node that uses
    /// this store (through `flock` on a file under `.zarrtx/locks/`).
    ///
    /// - `name`: `None` for the whole-store lock. A named lock first takes the whole-store lock in
    ///   [`LockMode::Read`] mode, then the named one in `mode`: a whole-store [`LockMode::Write`] excludes every
    ///   named lock, and named locks on different names do not wait for each other. Names follow the element-name
    ///   rules (else `InvalidName`) and compare case-insensitively (`"Cells"` and `"cells"` are one lock); they
    ///   need not name an element.
    /// - `mode`: [`LockMode::Read`] is shared with other readers, [`LockMode::Write`] excludes everyone.
    /// - `timeout`: `None` waits in the kernel until the lock is free; `Some(Duration::ZERO)` tries once;
    ///   `Some(d)` polls (sleeps growing from 1 ms to 50 ms) until `d` has passed, then returns
    ///   [`Error::LockTimeout`] holding nothing. The timeout covers both parts of a named lock.
    ///
    /// Every call is a holder of its own, also within one thread: locks are not reentrant, and a call that
    /// conflicts with a lock its own thread holds (a second `Write` on the same name, or a whole-store `Write`
    /// under a named lock) waits for itself — forever without a timeout. There is no upgrade from read to write.
    /// The lock is released when the returned [`UserLock`] drops or the process dies. A signal whose handler was
    /// installed without `SA_RESTART` (as Python's are) ends a wait without timeout with [`Error::Io`] of kind
    /// `Interrupted`, holding nothing, so that the caller can run its handlers and decide whether to wait again.
    ///
    /// Works on stores opened read-only; the lock files are created when missing, and a medium on which they
    /// cannot be created or opened for writing gives [`Error::ReadOnly`]. On shared filesystems the locks are as
    /// good as the filesystem's `flock` (Linux NFS clients map it to byte-range locks; Lustre needs `-o flock`).
    pub fn lock(&self, name: Option<&str>, mode: LockMode, timeout: Option<Duration>) -> Result<UserLock> {
        let name = name.map(ElementName::new).transpose()?;
        if !self.storage().locks().enabled() {
            return Err(self.storage().unsupported(
                "advisory locks (switched off with ZARRTX_LOCKS=off or OpenOptions::advisory_locks, or not offered by \
                 this medium); user locks need them",
                layout::USER_STORE_LOCK,
            ));
        }
        let start = Instant::now();
        let wait = match timeout {
            None => Wait::Forever,
            Some(timeout) => Wait::Until { start, timeout },
        };
        let timed_out = || Error::LockTimeout {
            name: name.as_ref().map(|n| n.as_str().to_string()),
            waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let storage = self.storage();
        let Some(name) = &name else {
            let store = acquire(storage, layout::USER_STORE_LOCK, mode, &wait)?.ok_or_else(timed_out)?;
            return Ok(UserLock { name: None, mode, named: None, store: Some(store) });
        };
        let store = acquire(storage, layout::USER_STORE_LOCK, LockMode::Read, &wait)?.ok_or_else(timed_out)?;
        let named = match acquire(storage, &layout::user_lock_key(&name.collision_key()), mode, &wait) {
            Ok(Some(named)) => named,
            Ok(None) => {
                drop(store); // release the intention lock before reporting the timeout
                return Err(timed_out());
            }
            Err(e) => {
                drop(store);
                return Err(e);
            }
        };
        Ok(UserLock { name: Some(name.as_str().to_string()), mode, named: Some(named), store: Some(store) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn a_user_lock_can_move_between_threads() {
        assert_send::<UserLock>();
        assert_send::<LockMode>();
    }

    #[test]
    fn the_timeout_message_names_the_lock_and_the_fix() {
        let named = Error::LockTimeout { name: Some("cells".into()), waited_ms: 250 }.to_string();
        assert!(named.contains("user lock 'cells'") && named.contains("250 ms"), "{named}");
        assert!(named.contains("another thread or process holds it") && named.contains("wait longer"), "{named}");
        let store = Error::LockTimeout { name: None, waited_ms: 0 }.to_string();
        assert!(store.contains("the whole-store user lock") && store.contains("find the holder"), "{store}");
    }
}
