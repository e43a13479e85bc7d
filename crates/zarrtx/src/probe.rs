//! The startup probe of the storage medium (guarantee G8): can this store decide "exactly one winner"?
//!
//! It creates a probe file with create-if-absent, then tries to create it again with other content: the second
//! attempt must report that the file exists. A medium that silently overwrites (some FUSE/SMB mounts, gateways
//! that drop conditional headers) or cannot make hard links is refused for concurrent writing. Advisory locks are
//! not probed: correctness never depends on them (they may be node-local, or missing, on a cluster).

use crate::error::{Error, Result};
use crate::layout;
use crate::storage::{PutOutcome, Storage};

/// Checks that `storage` is writable and arbitrates create-if-absent. With `single_writer`, a medium without
/// arbitration is accepted (the caller promises that nobody else writes); read-only media are refused anyway.
pub fn check_medium(storage: &dyn Storage, single_writer: bool) -> Result<()> {
    storage.create_dir(layout::TMP_DIR)?;
    storage.create_dir(layout::PROBE_DIR)?;
    let key = format!("{}/{}", layout::PROBE_DIR, uuid::Uuid::new_v4());
    let unsafe_medium = |reason: String| -> Result<()> {
        if single_writer {
            Ok(())
        } else {
            Err(Error::UnsafeMedium { path: storage.location(), reason })
        }
    };
    let outcome = (|| -> Result<(PutOutcome, PutOutcome)> {
        let first = storage.put_if_absent(&key, b"first")?;
        let second = storage.put_if_absent(&key, b"second")?;
        Ok((first, second))
    })();
    let _ = storage.delete(&key);
    match outcome {
        Ok((PutOutcome::Created, PutOutcome::AlreadyExists)) => {}
        Ok((first, second)) => {
            return unsafe_medium(format!(
                "create-if-absent is not honoured (creating a new file twice gave {first:?} then {second:?})"
            ))
        }
        Err(e @ (Error::ReadOnly { .. } | Error::StorageFull { .. })) => return Err(e),
        Err(e) => return unsafe_medium(format!("create-if-absent failed ({e}); hard links may be unsupported")),
    }
    // Installing elements moves staged trees into place with one atomic rename (object stores, which have none,
    // need the installation of the object-store backend).
    if !storage.capabilities().rename {
        return Err(storage.unsupported("atomic rename (installing staged elements)", ""));
    }
    // Advisory locks are not needed: where they fail (NFS without a lock manager), writers retry instead of queueing.
    Ok(())
}
