//! `zarrtx._core.LockGuard`: one acquired user lock (per-thread reentrancy is added in Python).

use pyo3::prelude::*;
use std::sync::Mutex;
use zarrtx::{LockMode, UserLock};

/// One acquired user lock, held until `release()` or until the process dies.
#[pyclass(module = "zarrtx._core", name = "LockGuard", frozen)]
pub struct PyLockGuard {
    guard: Mutex<Option<UserLock>>,
    mode: LockMode,
}

impl PyLockGuard {
    /// Wraps an acquired engine lock.
    pub fn new(guard: UserLock) -> Self {
        PyLockGuard { mode: guard.mode(), guard: Mutex::new(Some(guard)) }
    }
}

#[pymethods]
impl PyLockGuard {
    /// Releases the lock (a second call does nothing).
    fn release(&self) {
        if let Ok(mut slot) = self.guard.lock() {
            slot.take();
        }
    }

    /// `"r"` or `"w"`.
    #[getter]
    fn mode(&self) -> &'static str {
        match self.mode {
            LockMode::Read => "r",
            LockMode::Write => "w",
        }
    }

    /// Whether the lock is still held.
    #[getter]
    fn held(&self) -> bool {
        self.guard.lock().map(|g| g.is_some()).unwrap_or(false)
    }
}
