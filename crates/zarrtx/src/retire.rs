//! Keeping replaced files alive for readers on other NFS clients.
//!
//! An NFS client that opened a file reads it through a file handle naming the inode; when another client replaces
//! the file (a rename over it) and the old inode loses its last name, the server frees it and the reader gets
//! `ESTALE` — zarrtx's own reads retry, but plain readers (spatialdata, zarr-python) fail. So before replacing a
//! file that plain readers read — the root view, a type group's `zarr.json`, a table's grown `zarr.json` files and
//! boundary chunks — zarrtx gives its inode a second name under `.zarrtx/retired/<minute>/` (a hard link, where the
//! medium has them), and names the new file there too before it replaces the old one (so that a file replaced by
//! another writer right after it appeared is covered as well); those names are removed after [`RETAIN`]. Object stores need none of this: a GET is a whole.

use crate::layout;
use crate::storage::Storage;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a replaced file stays readable under its retired name.
pub(crate) const RETAIN: Duration = Duration::from_secs(600);

fn minute_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}

/// Gives the file at `key` (about to be replaced) a second name, so that readers that opened it keep reading it.
/// Best effort: a medium without hard links, or a file that is not there, is left alone.
pub(crate) fn keep_alive(storage: &dyn Storage, key: &str) {
    if !storage.capabilities().hard_links {
        return;
    }
    let _ = storage.hard_link(key, &retired_key());
}

/// Replaces the file at `key` with `bytes` such that both the replaced file and the new one have a retired name:
/// a reader that opened either keeps reading it for [`RETAIN`] — even when other writers replace the file again
/// between this writer's [`keep_alive`] and its rename (the new file was named before it became visible). Without
/// hard links: a plain replace.
pub(crate) fn replace(storage: &dyn Storage, key: &str, bytes: &[u8]) -> crate::error::Result<()> {
    if !storage.capabilities().hard_links {
        return storage.put_relaxed(key, bytes);
    }
    keep_alive(storage, key);
    let named = retired_key();
    storage.put_relaxed(&named, bytes)?;
    let moving = format!("{}/{}.retired", layout::TMP_DIR, uuid::Uuid::new_v4());
    // Best effort, like keep_alive: where the link fails, the new file goes in place without its retired name.
    let from = if storage.hard_link(&named, &moving).is_ok() { moving } else { named };
    storage.replace_file(&from, key)?;
    Ok(())
}

fn retired_key() -> String {
    format!("{}/{}/{}", layout::RETIRED_DIR, minute_now(), uuid::Uuid::new_v4())
}

/// Removes the retired names older than `older_than` (whole minutes).
pub(crate) fn sweep(storage: &dyn Storage, older_than: Duration) -> u64 {
    let cutoff = minute_now().saturating_sub(older_than.as_secs().div_ceil(60));
    let mut freed = 0;
    for bucket in storage.list(layout::RETIRED_DIR).unwrap_or_default() {
        if bucket.parse::<u64>().is_ok_and(|m| m < cutoff || older_than.is_zero()) {
            freed += storage.delete_tree(&format!("{}/{bucket}", layout::RETIRED_DIR)).unwrap_or(0);
        }
    }
    freed
}
