//! The commit log: immutable entries, state replay, checkpoints.

pub mod entry;
pub mod reader;
pub mod state;

pub use entry::{ElementDescriptor, LogEntry, Op, WriterInfo};
pub use state::{ElementRecord, StoreState};
