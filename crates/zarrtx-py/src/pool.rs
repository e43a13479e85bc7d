//! Engine work runs on a rayon pool owned by the calling Python thread, created in the current process.
//!
//! Two reasons. (1) Fork safety: ProcessPoolExecutor forks by default on Linux, and a child of a process whose
//! global rayon pool has started inherits that pool's state without its threads, so its first parallel encode or
//! fsync would wait for ever; a pool is therefore (re)built whenever the process id changes. (2) No cross-call
//! stealing: a pool serves one Python thread, which makes one engine call at a time, so a worker never picks up
//! another caller's operation while a lock is held lower on its stack.

use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static POOL: RefCell<Option<(u32, Arc<ThreadPool>)>> = const { RefCell::new(None) };
}

/// This thread's pool in this process (built on first use, and again after a fork).
fn pool() -> Option<Arc<ThreadPool>> {
    let pid = std::process::id();
    POOL.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some((owner, pool)) = slot.as_ref() {
            if *owner == pid {
                return Some(pool.clone());
            }
        }
        // A pool inherited through fork has no threads in this process: never touch (or drop) it.
        if let Some(inherited) = slot.take() {
            std::mem::forget(inherited);
        }
        let pool = Arc::new(ThreadPoolBuilder::new().thread_name(|i| format!("zarrtx-{i}")).build().ok()?);
        *slot = Some((pid, pool.clone()));
        Some(pool)
    })
}

/// Runs `f` with the GIL released, on this thread's pool (or, if no pool can be built, on the calling thread).
pub fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let pool = pool();
    py.detach(move || match pool {
        Some(pool) => pool.install(f),
        None => f(),
    })
}
