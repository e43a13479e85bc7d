//! The commit pipeline of a store, in one place: the state cache, the commit loop and staging claims. `Store`,
//! write plans, table appends and snapshots all go through a [`Committer`].
//!
//! ```text
//!   writer                          Committer                                   storage
//!   ──────                          ─────────                                   ───────
//!   stage data ──(lease)──────────► .zarrtx/staging/<txn>/  (private, leased)
//!   commit(txn, build) ──────────► latest_state()  ── probe log/<v+1> ───────► one small read when unchanged
//!                                   build(state) → ops  (re-checks names, table generations)
//!                                   try_commit(v+1) ── put_if_absent(log/<v+1>) ─► exactly one winner
//!                                     lost  → replay, rebuild, retry at v+2 (jittered backoff)
//!                                     error → read log/<v+1> back: our txn id there means we won
//!                                   head hint, checkpoint every 64 versions
//!                                   publish::publish() ── install in log order, root view ──► plain readers
//! ```
//!
//! Exactly one primitive decides races: create-if-absent of the next log entry. Threads of one process queue on
//! an in-process mutex instead of racing through the filesystem; nothing else (no advisory lock) is needed for a
//! commit to be decided. See `docs/design.md#the-write-path`. The second protocol of the crate, array plans of
//! plain hierarchies (no log), lives in `hierarchy/commit.rs`.

use crate::error::{Error, Result};
use crate::layout;
use crate::log::reader::{self, read_entry};
use crate::log::{LogEntry, Op, StoreState, WriterInfo};
use crate::publish;
use crate::settings::StoreSettings;
use crate::storage::{PutOutcome, Storage};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound on attempts before giving up with [`Error::Contention`].
pub const MAX_ATTEMPTS: u32 = 10_000;

/// What a commit builder decided against the state it was given.
pub(crate) enum Build {
    /// Commit these operations.
    Ops(Vec<Op>),
    /// This transaction is committed already, at this version (a repeated or concurrent commit of the same
    /// write plan); nothing is written.
    Committed(u64),
}

/// Outcome of one attempt to create entry `version`.
pub(crate) enum Attempt {
    /// Our entry is now version `entry.version`.
    Committed(LogEntry),
    /// Another transaction holds that version; re-read and retry.
    Lost,
}

/// What a successful commit produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The version the commit created.
    pub version: u64,
    /// The transaction id recorded in the log.
    pub txn: String,
    /// How many attempts it took (more than 1 when other writers won races first; 0 when the transaction had been
    /// committed before).
    pub attempts: u32,
    /// Whether the view that plain readers see includes this commit already. `false` only when publishing
    /// failed after the commit (the commit stands and is published by the next writer, `gc` or `verify`).
    pub published: bool,
}

/// The commit pipeline of one open store: its storage, settings, state cache and publication bookkeeping.
pub(crate) struct Committer {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) root: PathBuf,
    /// Why writes are refused, if they are.
    pub(crate) write_refusal: Option<Error>,
    /// fsync element data before committing it.
    pub(crate) durable: bool,
    pub(crate) settings: StoreSettings,
    cache: Mutex<Arc<StoreState>>,
    /// The newest state whose operations this process saw installed (the base of the next publication).
    installed: Mutex<Option<Arc<StoreState>>>,
    /// Threads of this process commit one at a time.
    queue: Mutex<()>,
    /// When this process opened the store: it saw every version committed before then no later than this.
    opened: Instant,
    /// When this process first saw each version it saw committed after opening.
    seen: Mutex<BTreeMap<u64, Instant>>,
}

impl Committer {
    /// A committer for `storage` whose latest state is `state`.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        write_refusal: Option<Error>,
        durable: bool,
        settings: StoreSettings,
        state: StoreState,
    ) -> Committer {
        Committer {
            root: storage.location(),
            storage,
            write_refusal,
            durable,
            settings,
            cache: Mutex::new(Arc::new(state)),
            installed: Mutex::new(None),
            queue: Mutex::new(()),
            opened: Instant::now(),
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Refuses writes on read-only stores and unsafe media.
    pub(crate) fn ensure_writable(&self) -> Result<()> {
        match &self.write_refusal {
            None => Ok(()),
            Some(e) => Err(refusal_clone(e, &self.root)),
        }
    }

    /// The newest committed state, refreshed with one existence check (plus replay of new entries).
    pub(crate) fn latest_state(&self) -> Result<Arc<StoreState>> {
        let cached = self.cache.lock().map_err(|_| poisoned())?.clone();
        if !self.storage.exists(&layout::log_key(cached.version + 1))? {
            return Ok(cached);
        }
        let mut fresh = (*cached).clone();
        reader::replay(self.storage.as_ref(), &mut fresh, None)?;
        self.saw(cached.version + 1..=fresh.version);
        Ok(self.offer(Arc::new(fresh)))
    }

    /// Keeps `state` as the latest when it is newer than the cached one; returns the latest.
    fn offer(&self, state: Arc<StoreState>) -> Arc<StoreState> {
        match self.cache.lock() {
            Ok(mut slot) => {
                if slot.version < state.version {
                    *slot = state;
                }
                slot.clone()
            }
            Err(_) => state,
        }
    }

    /// Records that this process saw `versions` committed just now.
    fn saw(&self, versions: std::ops::RangeInclusive<u64>) {
        let now = Instant::now();
        if let Ok(mut seen) = self.seen.lock() {
            for v in versions {
                seen.entry(v).or_insert(now);
            }
            // Only recent versions matter (the fence is short): keep the map small.
            let fence = self.settings.publish_fence();
            seen.retain(|_, t| now.duration_since(*t) <= fence * 4);
        }
    }

    /// When this process first saw `version` committed (its opening time for versions it found at open). Always
    /// after the commit itself: what the publish fence is measured from.
    pub(crate) fn seen_at(&self, version: u64) -> Instant {
        self.seen.lock().ok().and_then(|s| s.get(&version).copied()).unwrap_or(self.opened)
    }

    /// The state at the newest version this process knows to be installed, at least `version` (loaded from a
    /// checkpoint and the log when the cached one is older).
    pub(crate) fn installed_state(&self, version: u64) -> Result<Arc<StoreState>> {
        if let Some(s) = self.installed.lock().map_err(|_| poisoned())?.clone() {
            if s.version >= version {
                return Ok(s);
            }
        }
        let latest = self.latest_state()?;
        let state = if latest.version == version {
            latest
        } else {
            Arc::new(reader::load_state(self.storage.as_ref(), Some(version))?)
        };
        self.set_installed(state.clone());
        Ok(state)
    }

    /// Remembers `state` as installed (when newer than what was remembered).
    pub(crate) fn set_installed(&self, state: Arc<StoreState>) {
        if let Ok(mut slot) = self.installed.lock() {
            if slot.as_ref().is_none_or(|s| s.version < state.version) {
                *slot = Some(state);
            }
        }
    }

    /// Commits the operations `build` derives from the newest state, retrying when other writers win the race.
    /// `build` is called again after every lost race, so its checks (name conflicts, table generations) see what
    /// the winners did. Publishes after committing.
    pub(crate) fn commit(
        &self,
        txn: &str,
        what: &str,
        mut build: impl FnMut(&StoreState) -> Result<Build>,
    ) -> Result<CommitInfo> {
        self.ensure_writable()?;
        // Threads of one process queue here instead of racing through the filesystem.
        let queue = self.queue.lock().map_err(|_| poisoned())?;
        for attempt in 1..=MAX_ATTEMPTS {
            let state = self.latest_state()?;
            let ops = match build(&state)? {
                Build::Ops(ops) => ops,
                Build::Committed(version) => {
                    drop(queue);
                    let published = self.publish().is_ok_and(|v| v >= version);
                    return Ok(CommitInfo { version, txn: txn.to_string(), attempts: 0, published });
                }
            };
            match try_commit(self.storage.as_ref(), state.version + 1, txn, ops)? {
                Attempt::Lost => backoff(attempt),
                Attempt::Committed(entry) => {
                    let mut next = (*state).clone();
                    next.apply(&entry)?;
                    self.saw(entry.version..=entry.version);
                    let next = Arc::new(next);
                    self.offer(next.clone());
                    drop(queue);
                    reader::write_head_hint(self.storage.as_ref(), entry.version);
                    if entry.version % layout::CHECKPOINT_INTERVAL == 0 {
                        let _ = reader::write_checkpoint(self.storage.as_ref(), &next);
                    }
                    let published = self.publish().is_ok_and(|v| v >= entry.version);
                    return Ok(CommitInfo { version: entry.version, txn: txn.to_string(), attempts: attempt, published });
                }
            }
        }
        Err(Error::Contention { name: what.to_string(), attempts: MAX_ATTEMPTS })
    }

    /// Installs and publishes everything committed; returns the version the published view reflects.
    pub(crate) fn publish(&self) -> Result<u64> {
        publish::publish(self)
    }

    /// Makes sure operations up to `version` are installed (installing them when this handle may write);
    /// `false` when they are not and this handle cannot install them.
    pub(crate) fn ensure_installed(&self, version: u64) -> Result<bool> {
        if publish::applied_version(self.storage.as_ref())?.is_some_and(|a| a >= version) {
            return Ok(true);
        }
        if self.write_refusal.is_some() {
            return Ok(false);
        }
        self.publish()?;
        // What this process installed itself counts: the `applied` hint may lag behind it (a slower publisher can
        // write an older value after ours).
        let installed_here = self.installed.lock().map_err(|_| poisoned())?.as_ref().is_some_and(|s| s.version >= version);
        Ok(installed_here || publish::applied_version(self.storage.as_ref())?.is_some_and(|a| a >= version))
    }
}

/// Tries to commit `ops` as entry `version` (the one after the state they were built from). Decides ambiguous
/// outcomes by reading the entry back and looking for our transaction id.
pub(crate) fn try_commit(storage: &dyn Storage, version: u64, txn: &str, ops: Vec<Op>) -> Result<Attempt> {
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
            // Reading back can fail too (the medium is down): then the outcome is unknown and the error stands;
            // the staged data stays referenced by nothing gc could reclaim before its lease expires.
            if ours(storage).unwrap_or(false) {
                Ok(Attempt::Committed(entry))
            } else {
                Err(e)
            }
        }
    }
}

/// Sleeps a little, growing with the attempt number and randomised so that racing processes spread out.
pub(crate) fn backoff(attempt: u32) {
    let cap_ms = (1u64 << attempt.min(6)).min(50);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (cap_ms * 1000 + 1);
    std::thread::sleep(Duration::from_micros(jitter));
}

/// A copy of a remembered write refusal (`Error` is not `Clone`): the same `UnsafeMedium` or `ReadOnly`, anything
/// else as `ReadOnly` of `root`.
pub(crate) fn refusal_clone(e: &Error, root: &Path) -> Error {
    match e {
        Error::UnsafeMedium { path, reason } => Error::UnsafeMedium { path: path.clone(), reason: reason.clone() },
        Error::ReadOnly { path, reason } => Error::ReadOnly { path: path.clone(), reason: reason.clone() },
        other => Error::ReadOnly { path: root.to_path_buf(), reason: other.to_string() },
    }
}

pub(crate) fn poisoned() -> Error {
    Error::Io {
        path: PathBuf::new(),
        source: std::io::Error::other("a thread panicked while holding the store's state lock"),
    }
}
