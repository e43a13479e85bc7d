//! Reading the log: single entries, the latest version (O(1) probes from a hint), checkpoints, and the state
//! at any version.

use super::entry::LogEntry;
use super::state::StoreState;
use crate::error::{Error, Result};
use crate::layout;
use crate::storage::{PutOutcome, Storage};

/// Reads and parses the entry for `version`, or `None` when it does not exist (yet).
pub fn read_entry(storage: &dyn Storage, version: u64) -> Result<Option<LogEntry>> {
    let key = layout::log_key(version);
    let Some(bytes) = storage.get(&key)? else {
        return Ok(None);
    };
    let entry: LogEntry = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
        path: storage.location().join(&key),
        reason: format!("commit entry does not parse: {e}"),
    })?;
    if entry.version != version {
        return Err(Error::CorruptMetadata {
            path: storage.location().join(&key),
            reason: format!("entry names version {}, its file version {version}", entry.version),
        });
    }
    Ok(Some(entry))
}

/// The hinted version (a committed version, possibly older than the latest), 0 when absent or unreadable.
pub fn read_head_hint(storage: &dyn Storage) -> u64 {
    storage
        .get(layout::HEAD_HINT)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Records `version` as a hint; failures are ignored (the hint is only an optimisation).
pub fn write_head_hint(storage: &dyn Storage, version: u64) {
    if read_head_hint(storage) < version {
        let _ = storage.put_relaxed(layout::HEAD_HINT, version.to_string().as_bytes());
    }
}

/// The latest committed version at or after `known` (a committed version): probes `known+1`, `known+2`, ...
/// until one is missing. Costs one small read when nothing changed.
pub fn discover_head(storage: &dyn Storage, known: u64) -> Result<u64> {
    let mut v = known;
    while storage.exists(&layout::log_key(v + 1))? {
        v += 1;
    }
    Ok(v)
}

/// The newest checkpoint at or below `version` (version 0 when there is none).
pub fn best_checkpoint(storage: &dyn Storage, version: u64) -> Result<Option<StoreState>> {
    let mut versions: Vec<u64> = storage
        .list(layout::CHECKPOINT_DIR)?
        .iter()
        .filter_map(|n| layout::parse_version_file(n))
        .filter(|&v| v <= version)
        .collect();
    versions.sort_unstable();
    while let Some(v) = versions.pop() {
        let key = layout::checkpoint_key(v);
        if let Some(bytes) = storage.get(&key)? {
            // An unreadable checkpoint is skipped: the log is the truth, checkpoints only shorten replay.
            if let Ok(state) = serde_json::from_slice::<StoreState>(&bytes) {
                if state.version == v {
                    return Ok(Some(state));
                }
            }
        }
    }
    Ok(None)
}

/// Writes a checkpoint of `state` (create-if-absent: any writer may, duplicates are identical).
pub fn write_checkpoint(storage: &dyn Storage, state: &StoreState) -> Result<()> {
    let bytes = serde_json::to_vec(state).map_err(|e| Error::CorruptMetadata {
        path: layout::checkpoint_key(state.version).into(),
        reason: e.to_string(),
    })?;
    let _: PutOutcome = storage.put_if_absent(&layout::checkpoint_key(state.version), &bytes)?;
    Ok(())
}

/// Replays entries after `state` up to and including `target` (or until the log ends when `target` is None).
pub fn replay(storage: &dyn Storage, state: &mut StoreState, target: Option<u64>) -> Result<()> {
    loop {
        if target.is_some_and(|t| state.version >= t) {
            return Ok(());
        }
        match read_entry(storage, state.version + 1)? {
            Some(entry) => state.apply(&entry)?,
            None => return Ok(()),
        }
    }
}

/// The state at `version` (the latest when `None`).
pub fn load_state(storage: &dyn Storage, version: Option<u64>) -> Result<StoreState> {
    let head = discover_head(storage, read_head_hint(storage))?;
    let target = version.unwrap_or(head);
    if target > head {
        return Err(Error::VersionNotAvailable {
            version: target,
            latest: head,
            reason: "it has not been committed".to_string(),
        });
    }
    let mut state = match best_checkpoint(storage, target)? {
        Some(s) => s,
        None => {
            let genesis = read_entry(storage, 0)?.ok_or_else(|| Error::NotAStore {
                path: storage.location(),
                reason: "the commit log has no version 0".to_string(),
            })?;
            StoreState::genesis(&genesis)?
        }
    };
    replay(storage, &mut state, Some(target))?;
    if state.version != target {
        return Err(Error::CorruptMetadata {
            path: storage.location().join(layout::log_key(state.version + 1)),
            reason: format!("the log ends at version {} although version {target} was seen", state.version),
        });
    }
    Ok(state)
}
