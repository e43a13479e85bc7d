//! The commit loop: build operations against the newest state, create the next log entry with
//! create-if-absent, and on losing the race re-read, re-check and retry at the next version.

use crate::error::{Error, Result};
use crate::layout;
use crate::log::reader::read_entry;
use crate::log::{LogEntry, Op, WriterInfo};
use crate::storage::{PutOutcome, Storage};
use std::time::Duration;

/// Upper bound on attempts before giving up with [`Error::Contention`].
pub const MAX_ATTEMPTS: u32 = 10_000;

/// Outcome of one attempt to create entry `version`.
pub enum Attempt {
    /// Our entry is now version `entry.version`.
    Committed(LogEntry),
    /// Another transaction holds that version; re-read and retry.
    Lost,
}

/// Tries to commit `ops` as entry `version` (the one after the state they were built from). Decides ambiguous
/// outcomes by reading the entry back and looking for our transaction id.
pub fn try_commit(storage: &dyn Storage, version: u64, txn: &str, ops: Vec<Op>) -> Result<Attempt> {
    let entry = LogEntry {
        format: layout::FORMAT_VERSION,
        version,
        txn: txn.to_string(),
        timestamp_ms: crate::log::entry::now_ms(),
        writer: WriterInfo::current(),
        ops,
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| Error::CorruptMetadata {
        path: layout::log_key(entry.version).into(),
        reason: format!("cannot encode the commit entry: {e}"),
    })?;
    let key = layout::log_key(entry.version);
    let outcome = storage.put_if_absent(&key, &bytes);
    let ours = |storage: &dyn Storage| -> Result<bool> {
        Ok(read_entry(storage, entry.version)?.is_some_and(|e| e.txn == txn))
    };
    match outcome {
        Ok(PutOutcome::Created) => Ok(Attempt::Committed(entry)),
        Ok(PutOutcome::AlreadyExists) => {
            if ours(storage)? {
                Ok(Attempt::Committed(entry))
            } else {
                Ok(Attempt::Lost)
            }
        }
        Err(e) => {
            // The write may have happened although an error came back (a lost reply): look before failing.
            if ours(storage).unwrap_or(false) {
                Ok(Attempt::Committed(entry))
            } else {
                Err(e)
            }
        }
    }
}

/// Sleeps a little, growing with the attempt number and randomised so that racing processes spread out.
pub fn backoff(attempt: u32) {
    let cap_ms = (1u64 << attempt.min(6)).min(50);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (cap_ms * 1000 + 1);
    std::thread::sleep(Duration::from_micros(jitter));
}
