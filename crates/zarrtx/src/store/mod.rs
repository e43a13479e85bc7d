//! The store API: open (create or adopt), add / overwrite / delete elements, snapshots, history, verify, gc.
//! The element-type parts of the API live beside this file (`tables.rs`, `vector.rs`, `plans.rs`); each method
//! delegates to the module that holds its logic.

mod plans;
mod tables;
mod vector;

use crate::adopt;
use crate::commit::{self, Build, Committer};
use crate::error::{Error, Result};
use crate::layout;
use crate::log::reader::{self, read_entry};
use crate::log::{ElementDescriptor, Op, StoreState, WriterInfo};
use crate::meta::NodeTree;
use crate::name::{ElementName, ElementType};
use crate::probe;
use crate::progress::{NoProgress, Progress};
use crate::publish;
use crate::raster::{self, RasterKind, RasterSource, RasterSpec};
use crate::settings::StoreSettings;
use crate::snapshot::Snapshot;
use crate::storage::lease::Lease;
use crate::storage::{DataHandle, PosixStorage, Storage};
use serde_json::{json, Map};
use std::path::Path;
use std::sync::Arc;

pub use crate::commit::CommitInfo;
pub(crate) use crate::commit::refusal_clone;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create an empty SpatialData store when the path holds none (default `true`).
    pub create: bool,
    /// Refuse every write (default `false`).
    pub read_only: bool,
    /// Write even when the medium cannot arbitrate concurrent writers; the caller guarantees a single writer
    /// (default `false`).
    pub single_writer: bool,
    /// fsync files before publishing them, so commits survive power loss, not only crashes (default `true`).
    pub durable: bool,
    /// Use the medium's advisory locks to make writers of one table, one publication or one plan queue instead of
    /// retrying (default `true`, or `false` when `ZARRTX_LOCKS=off`). Correctness never depends on them: with
    /// locks off, or node-local on a cluster, every guarantee holds. User locks ([`Store::lock`]) need them.
    pub advisory_locks: bool,
    /// Timing settings of a store created by this open (ignored when the store exists: its own settings, recorded
    /// at creation, apply). Default [`StoreSettings::default`].
    pub settings: StoreSettings,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: true,
            read_only: false,
            single_writer: false,
            durable: true,
            advisory_locks: crate::storage::locks::locks_enabled_by_env(),
            settings: StoreSettings::default(),
        }
    }
}

/// Options of one add.
pub struct AddOptions<'a> {
    /// Replace an element that holds the name (case-insensitively) instead of failing with `ElementExists`.
    pub overwrite: bool,
    /// Receives progress in bytes written.
    pub progress: &'a dyn Progress,
    /// In-flight memory limit of a raster write in bytes (see [`raster::WriteOptions::memory_limit`]); default
    /// [`raster::DEFAULT_MEMORY_LIMIT`] (256 MiB). Other element types ignore it.
    pub memory_limit: u64,
}

impl Default for AddOptions<'_> {
    fn default() -> Self {
        AddOptions {
            overwrite: false,
            progress: &NoProgress,
            memory_limit: raster::DEFAULT_MEMORY_LIMIT,
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRecord {
    /// Version created.
    pub version: u64,
    /// Transaction id.
    pub txn: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Who committed.
    pub writer: WriterInfo,
    /// One line per operation.
    pub summary: Vec<String>,
}

/// A handle on one store. Cheap to clone and safe to share between threads; every access sees the newest
/// committed state (checking costs one small read when nothing changed).
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Committer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.inner.root).finish()
    }
}

impl Store {
    /// Opens the store at `path` on the local filesystem (or a shared filesystem mounted there).
    ///
    /// A path holding a SpatialData store written by spatialdata is adopted (its elements become version 0;
    /// nothing is rewritten). An empty or missing path is initialised when `options.create` is set.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Store> {
        let root = path.as_ref().to_path_buf();
        if !root.exists() {
            if !options.create || options.read_only {
                return Err(Error::NotAStore { path: root, reason: "the path does not exist".into() });
            }
            PosixStorage::create_root(&root)?;
        }
        let storage: Arc<dyn Storage> =
            Arc::new(PosixStorage::new(&root, options.durable).with_locks(options.advisory_locks));
        Store::open_with_storage(storage, options)
    }

    /// Opens a store on any [`Storage`] backend.
    pub fn open_with_storage(storage: Arc<dyn Storage>, options: &OpenOptions) -> Result<Store> {
        let root = storage.location();
        let managed = storage.exists(&layout::log_key(0))?;
        let foreign = !managed && (storage.exists(layout::ROOT_ZARR_JSON)? || storage.exists(".zgroup")?);
        if !managed && !foreign && !options.create {
            // Refuse before the medium probe, which would leave a `.zarrtx/` directory behind.
            return Err(Error::NotAStore {
                path: root,
                reason: "it holds no SpatialData store (pass create to make one)".into(),
            });
        }
        let write_refusal = if options.read_only {
            Some(Error::ReadOnly { path: root.clone(), reason: "it was opened read-only".into() })
        } else {
            probe::check_medium(storage.as_ref(), options.single_writer).err()
        };
        if !managed {
            if let Some(refusal) = &write_refusal {
                return Err(match refusal {
                    Error::UnsafeMedium { .. } => refusal_clone(refusal, &root),
                    _ => Error::NotAStore {
                        path: root,
                        reason: format!(
                            "it is not (yet) a zarrtx store and cannot be initialised or adopted: {refusal}"
                        ),
                    },
                });
            }
            if foreign {
                Store::adopt(storage.as_ref(), &options.settings)?;
            } else {
                Store::initialise(storage.as_ref(), &options.settings)?;
            }
        }
        let state = reader::load_state(storage.as_ref(), None)?;
        let settings = StoreSettings::load(storage.as_ref(), StoreSettings::default())?;
        let store = Store { inner: Arc::new(Committer::new(storage, write_refusal, options.durable, settings, state)) };
        if store.inner.write_refusal.is_none() {
            // Roll forward what a crashed writer committed but did not publish.
            let latest = store.latest_state()?;
            let behind = |v: Option<u64>| v.is_none_or(|v| v < latest.version);
            if behind(publish::applied_version(store.storage())?) || behind(publish::published_version(store.storage())?) {
                store.inner.publish()?;
            }
        }
        Ok(store)
    }

    fn initialise(storage: &dyn Storage, settings: &StoreSettings) -> Result<()> {
        let mut attrs = Map::new();
        attrs.insert("spatialdata_attrs".into(), json!({"version": "0.2"}));
        Store::create_genesis(storage, settings, Op::Init { root_attributes: attrs })
    }

    fn adopt(storage: &dyn Storage, settings: &StoreSettings) -> Result<()> {
        let (root_attributes, elements) = adopt::scan_existing(storage)?;
        Store::create_genesis(storage, settings, Op::Adopt { root_attributes, elements })
    }

    fn create_genesis(storage: &dyn Storage, settings: &StoreSettings, op: Op) -> Result<()> {
        for dir in [layout::LOG_DIR, layout::STAGING_DIR, layout::TRASH_DIR, layout::TMP_DIR, layout::CHECKPOINT_DIR] {
            storage.create_dir(dir)?;
        }
        // The first creator's settings stand (create-if-absent); the others read them at open.
        let _ = storage.put_if_absent(layout::FORMAT, settings.format_document().to_string().as_bytes())?;
        // Entry 0 is raced like any other: exactly one creator or adopter wins, the others use its result.
        let txn = uuid::Uuid::new_v4().to_string();
        commit::try_commit(storage, 0, &txn, vec![op]).map(|_| ())
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        self.inner.storage.as_ref()
    }

    /// The newest committed state, refreshed with one existence check (plus replay of new entries).
    pub(crate) fn latest_state(&self) -> Result<Arc<StoreState>> {
        self.inner.latest_state()
    }

    /// The store's timing settings (recorded at creation).
    pub fn settings(&self) -> StoreSettings {
        self.inner.settings
    }

    /// The latest committed version.
    pub fn version(&self) -> Result<u64> {
        Ok(self.latest_state()?.version)
    }

    /// Refuses writes on read-only stores and unsafe media.
    pub(crate) fn ensure_writable(&self) -> Result<()> {
        self.inner.ensure_writable()
    }

    /// Commits the operations `build` derives from the newest state (see [`Committer::commit`]).
    pub(crate) fn commit(
        &self,
        txn: &str,
        what: &str,
        build: impl FnMut(&StoreState) -> Result<Build>,
    ) -> Result<CommitInfo> {
        self.inner.commit(txn, what, build)
    }

    /// Adds an image or labels element. The data is validated first (nothing is written for bad input), then
    /// written to a private staging directory, committed, and installed at `images/<name>` or `labels/<name>`.
    pub fn add_raster(
        &self,
        name: &str,
        spec: &RasterSpec,
        source: RasterSource<'_>,
        options: &AddOptions<'_>,
    ) -> Result<CommitInfo> {
        let name = ElementName::new(name)?;
        raster::validate::validate(&name, spec, &source.shape(), source.data_type())?;
        let element_type = match spec.kind {
            RasterKind::Image => ElementType::Images,
            RasterKind::Labels => ElementType::Labels,
        };
        let write_options =
            raster::write::WriteOptions { durable: self.inner.durable, memory_limit: options.memory_limit };
        self.add_staged(&name, element_type, options.overwrite, |data| {
            raster::write::write_element_with(data, &name, spec, source, options.progress, &write_options)
        })
    }

    /// Refuses `name` with `ElementExists` when a committed element holds it (case-insensitively, across types).
    /// Callers use it to fail fast before preparing large inputs; every add re-checks at commit.
    pub fn check_name_free(&self, name: &ElementName) -> Result<()> {
        self.latest_state()?.check_free(name)
    }

    /// Whether element data is fsynced before it is committed.
    pub fn durable(&self) -> bool {
        self.inner.durable
    }

    /// Adds an element of any type: `write` fills a fresh private directory with the element's complete tree and
    /// returns its `zarr.json` documents; the element is then committed and installed at `<type>/<name>`.
    /// Validate the input before calling this: nothing of the store changes when `write` fails.
    pub fn add_staged(
        &self,
        name: &ElementName,
        element_type: ElementType,
        overwrite: bool,
        write: impl FnOnce(&DataHandle) -> Result<NodeTree>,
    ) -> Result<CommitInfo> {
        self.add_staged_with_runs(name, element_type, overwrite, Vec::new(), write)
    }

    /// [`Store::add_staged`] for a table whose instance-id index runs (already written) the commit records.
    pub(crate) fn add_staged_with_runs(
        &self,
        name: &ElementName,
        element_type: ElementType,
        overwrite: bool,
        id_runs: Vec<String>,
        write: impl FnOnce(&DataHandle) -> Result<NodeTree>,
    ) -> Result<CommitInfo> {
        self.ensure_writable()?;
        if !overwrite {
            self.check_name_free(name)?;
        }
        let txn = uuid::Uuid::new_v4().to_string();
        let staged = layout::staging_key(&txn);
        // The lease tells gc (on every node) that the staging area is in use, however long the write takes; it is
        // renewed in the background and checked right before the commit (fencing).
        let lease = Lease::acquire(&self.inner.storage, &layout::staging_lease_key(&txn), self.inner.settings.lease_timeout())?
            .ok_or_else(|| Error::Conflict { name: name.to_string(), reason: "a staging lease of a fresh transaction id exists".into() })?;
        let since = self.latest_state()?.version;
        let result = (|| {
            self.storage().create_dir(&staged)?;
            let tree = write(&DataHandle::new(self.inner.storage.clone(), staged.clone()))?;
            self.commit_add(&txn, name, element_type, overwrite, &staged, tree, id_runs, Some(&lease))
        })();
        if result.is_err() && self.txn_committed(&txn, since).is_ok_and(|c| c.is_none()) {
            // Provably not committed: nothing references the staged data. (When the outcome is unknown — the medium
            // failed while the commit was decided — the data stays for gc, which keeps it while the log names it.)
            let _ = self.storage().delete_tree(&staged);
        }
        drop(lease);
        result
    }

    /// The version at which transaction `txn` was committed after version `since`, if it was.
    pub(crate) fn txn_committed(&self, txn: &str, since: u64) -> Result<Option<u64>> {
        let head = reader::discover_head(self.storage(), self.latest_state()?.version)?;
        for v in since + 1..=head {
            if read_entry(self.storage(), v)?.is_some_and(|e| e.txn == txn) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Commits the element whose complete tree (`zarr.json` documents in `tree`) is staged at key `staged`, as
    /// transaction `txn`; it is installed at `<type>/<name>` by the publication that follows. The name is re-checked
    /// against the state every attempt builds on (`ElementExists` unless `overwrite`); `lease`, when given, must
    /// still be held at every attempt. A transaction committed already (a repeated commit of a write plan) answers
    /// with its version. Nothing is deleted on failure.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit_add(
        &self,
        txn: &str,
        name: &ElementName,
        element_type: ElementType,
        overwrite: bool,
        staged: &str,
        tree: NodeTree,
        id_runs: Vec<String>,
        lease: Option<&Lease>,
    ) -> Result<CommitInfo> {
        let element = ElementDescriptor { name: name.clone(), element_type, tree };
        self.commit(txn, name.as_str(), |state| {
            if let Some(existing) = state.get(name).filter(|r| r.txn == txn) {
                return Ok(Build::Committed(existing.version));
            }
            if let Some(lease) = lease {
                lease.check()?;
            }
            let displaces = match state.get(name) {
                Some(old) if overwrite => Some((old.element_type, old.name.clone())),
                Some(_) => {
                    state.check_free(name)?;
                    None
                }
                None => None,
            };
            Ok(Build::Ops(vec![Op::Add {
                element: element.clone(),
                staged: staged.to_string(),
                displaces,
                id_runs: id_runs.clone(),
            }]))
        })
    }

    /// Deletes an element. The view stops listing it at once; its data stays (readers pinned to older versions keep
    /// reading it) until `gc` reclaims it after the grace period, or a later add of the name moves it to the trash.
    pub fn delete(&self, name: &str) -> Result<CommitInfo> {
        let name = ElementName::new(name)?;
        let txn = uuid::Uuid::new_v4().to_string();
        self.commit(&txn, name.as_str(), |state| {
            let record = state
                .get(&name)
                .ok_or_else(|| Error::ElementNotFound { name: name.to_string(), version: None })?;
            Ok(Build::Ops(vec![Op::Delete { element_type: record.element_type, name: record.name.clone() }]))
        })
    }

    /// A consistent view of the store at `version` (the latest when `None`).
    pub fn snapshot(&self, version: Option<u64>) -> Result<Snapshot> {
        let latest = self.latest_state()?;
        let state = match version {
            None => latest,
            Some(v) if v == latest.version => latest,
            Some(v) => Arc::new(reader::load_state(self.storage(), Some(v))?),
        };
        Ok(Snapshot::new(self.inner.clone(), state))
    }

    /// Every commit, oldest first.
    pub fn history(&self) -> Result<Vec<CommitRecord>> {
        let head = self.version()?;
        let mut out = Vec::with_capacity(head as usize + 1);
        for v in 0..=head {
            let entry = read_entry(self.storage(), v)?.ok_or_else(|| Error::CorruptMetadata {
                path: self.inner.root.join(layout::log_key(v)),
                reason: "a committed entry is missing".into(),
            })?;
            out.push(CommitRecord {
                version: entry.version,
                txn: entry.txn,
                timestamp_ms: entry.timestamp_ms,
                writer: entry.writer,
                summary: entry.ops.iter().map(Op::summary).collect(),
            });
        }
        Ok(out)
    }

    /// Makes sure operations up to `version` are installed (installing them when this handle may write).
    pub(crate) fn ensure_applied(&self, version: u64) -> Result<bool> {
        self.inner.ensure_installed(version)
    }

    /// Installs and publishes everything committed (normally done by every commit; this repairs after a
    /// crash between commit and publication). Returns the published version.
    pub fn publish(&self) -> Result<u64> {
        self.ensure_writable()?;
        self.inner.publish()
    }
}

