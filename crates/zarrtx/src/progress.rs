//! Progress reporting for long operations, implemented by the CLI (progress bars) and the Python layer.

/// Receives progress of a long operation. Implementations must be cheap and thread-safe: they are called from
/// encoding threads.
pub trait Progress: Send + Sync {
    /// Sets (or grows) the total amount of work, in bytes or units of the operation.
    fn set_total(&self, total: u64);
    /// Reports `delta` more units done.
    fn advance(&self, delta: u64);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _total: u64) {}
    fn advance(&self, _delta: u64) {}
}
