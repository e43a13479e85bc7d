//! Plain Zarr v3 hierarchies: one array of any Zarr v3 hierarchy — an NWB file written by hdmf-zarr, a group
//! written by zarr-python — created or filled by many processes or cluster nodes at once, with the guarantees of
//! element plans ([`crate::plan`]).
//!
//! A [`Hierarchy`] keeps its private files in `.zarrtx/` at the hierarchy's root, as a store does: plans under
//! `.zarrtx/plans/<plan id>/` (the same layout as element plans, with `"kind": "array"` in `plan.json`), the commit
//! lock `.zarrtx/locks/hierarchy.lock`, and the medium probe's files. Nothing else of the hierarchy changes until
//! a plan is committed.
//!
//! * [`Hierarchy::create_plan`] with [`ArrayTarget::Create`] plans a new array at a path (its parent groups are
//!   created at commit when missing); with [`ArrayTarget::Fill`] it plans writing into the existing array at the
//!   path, whose `zarr.json` (shape, chunks, codecs, fill value) it takes as found.
//! * [`Hierarchy::write_part`] is the element plans' part writer: one lock per part, completion recorded with
//!   create-if-absent, a finished part never rewritten, an interrupted one run again from its start.
//! * [`Hierarchy::commit_plan`], once every part is done, publishes the array in one step. A new array: its
//!   staged directory is renamed into place (`rename(2)`), then the root's consolidated metadata, if it has one,
//!   gains the array. A filled array: the existing chunk files outside the plan's parts are hard-linked into the
//!   staged directory, which is then exchanged with the array's directory in one `renameat2(RENAME_EXCHANGE)`
//!   (where the filesystem cannot exchange, two renames: for an instant the path is missing — a reader fails
//!   loudly instead of reading a half-written array). Readers see the array before or after, never in between.

mod array_spec;
mod commit;
mod create;
mod nodes;
mod record;

pub use array_spec::ArraySpec;

use crate::error::{Error, Result};
use crate::layout;
use crate::log::WriterInfo;
use crate::plan::{self, PartContext, PartLayout, PartOutcome, PlanOptions, PlanStatus};
use crate::probe;
use crate::raster::planned::StagedLevel;
use crate::raster::{DataType, RasterBlock};
use crate::settings::StoreSettings;
use crate::store::OpenOptions;
use crate::storage::{DataHandle, PosixStorage, Storage};
use record::ArrayPlanRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;


/// What an array plan does to the array at its path.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a one-off argument, never stored in bulk
pub enum ArrayTarget {
    /// Create a new array described by the spec. Nothing may exist at the path (checked when the plan is created
    /// and again at commit: [`Error::NodeExists`]); missing parent groups are created at commit.
    Create(ArraySpec),
    /// Write into the existing array at the path, as it is (shape, chunks, codecs, fill value). The parts' regions
    /// are replaced whole (what their blocks leave uncovered reads as the fill value); the array's other chunks
    /// are kept. The commit refuses with [`Error::Conflict`] if the array's `zarr.json` changed since the plan was
    /// created.
    Fill,
}

/// [`ArrayTarget`] as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrayMode {
    /// A new array.
    Create,
    /// An existing array.
    Fill,
}

impl ArrayMode {
    /// `"create"` or `"fill"`, as recorded in `plan.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArrayMode::Create => "create",
            ArrayMode::Fill => "fill",
        }
    }
}

/// An array plan, as created (and as recorded in its `plan.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayPlanInfo {
    /// The plan's id (a UUID): what workers pass to `write_part` and `commit_plan`.
    pub plan_id: String,
    /// The array's path inside the hierarchy.
    pub path: String,
    /// Create or fill.
    pub mode: ArrayMode,
    /// The array's `zarr.json` document.
    pub metadata: Value,
    /// The array's shape.
    pub shape: Vec<u64>,
    /// Its element type.
    pub data_type: DataType,
    /// The write unit parts are aligned to: the shard shape when sharded, else the chunk shape.
    pub write_unit: Vec<u64>,
    /// The parts: one `start..end` range per axis each, indexed from 0.
    pub parts: Vec<Vec<Range<u64>>>,
    /// Key (relative to the hierarchy's root) of the staging directory the parts write into.
    pub staging: String,
    /// When the plan was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Who created the plan.
    pub writer: WriterInfo,
}

/// The commit of an array plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayCommit {
    /// The array's path.
    pub path: String,
    /// Created or filled.
    pub mode: ArrayMode,
    /// Chunk files of a filled array outside the plan's parts, kept (hard-linked) from the array as it was.
    pub kept_files: u64,
    /// Whether the root's consolidated metadata was updated (a created array in a consolidated hierarchy).
    pub consolidated: bool,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub committed_ms: u64,
}

/// Where an array plan stands.
pub type ArrayPlanStatus = PlanStatus<ArrayPlanInfo, ArrayCommit>;


/// A handle on a plain Zarr v3 hierarchy into which array plans write. Cheap to clone, safe to share.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    storage: Arc<dyn Storage>,
    root: PathBuf,
    write_refusal: Option<Arc<Error>>,
    durable: bool,
    pub(crate) settings: StoreSettings,
}

impl Hierarchy {
    /// Opens the Zarr v3 hierarchy whose root group is at `path` (with `create`, an empty group is made when there
    /// is none). Refuses zarrtx SpatialData stores (their images and labels are planned with
    /// [`Store::create_plan`](crate::Store::create_plan)), Zarr v2 hierarchies and arrays with
    /// [`Error::NotAHierarchy`]; writing is refused on media that cannot arbitrate concurrent writers, as for
    /// stores.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Hierarchy> {
        let root = path.as_ref().to_path_buf();
        let not = |reason: &str| Error::NotAHierarchy { path: root.clone(), reason: reason.into() };
        if !root.is_dir() {
            if root.exists() {
                return Err(not("it is a file, not a directory"));
            }
            if !options.create || options.read_only {
                return Err(not("it does not exist (pass create to make a new hierarchy)"));
            }
            PosixStorage::create_root(&root)?;
        }
        let storage: Arc<dyn Storage> =
            Arc::new(PosixStorage::new(&root, options.durable).with_locks(options.advisory_locks));
        Hierarchy::open_with_storage(storage, options)
    }

    /// Opens the hierarchy whose root group is at the root of `storage` (any backend), as [`Hierarchy::open`] does.
    pub fn open_with_storage(storage: Arc<dyn Storage>, options: &OpenOptions) -> Result<Hierarchy> {
        let root = storage.location();
        let not = |reason: &str| Error::NotAHierarchy { path: root.clone(), reason: reason.into() };
        if storage.exists(&layout::log_key(0))? {
            return Err(not(
                "it is a zarrtx SpatialData store: write its images and labels with Store::create_plan \
                 (`zarrtx write-plan`), which commit through the store's log",
            ));
        }
        if storage.exists(".zgroup")? || storage.exists(".zarray")? {
            return Err(not("it is a Zarr v2 hierarchy; zarrtx writes Zarr v3 (convert it, e.g. with zarr-python)"));
        }
        let root_doc = nodes::read_doc(storage.as_ref(), "")?;
        match &root_doc {
            Some(doc) if doc.get("zarr_format").and_then(Value::as_u64) != Some(3) => {
                return Err(not("its zarr.json is not Zarr v3"))
            }
            Some(doc) if nodes::node_type(doc) != "group" => {
                return Err(not("its root is an array, not a group: open the group that holds it"))
            }
            Some(_) => {}
            None if !options.create || options.read_only => {
                return Err(not("it has no zarr.json at its root (pass create to make an empty group)"))
            }
            None => {}
        }
        let write_refusal = if options.read_only {
            Some(Error::ReadOnly { path: root.clone(), reason: "it was opened read-only".into() })
        } else {
            probe::check_medium(storage.as_ref(), options.single_writer).err()
        };
        if root_doc.is_none() {
            if let Some(e) = write_refusal {
                return Err(e);
            }
            nodes::create_groups(storage.as_ref(), &[String::new()])?;
        }
        if write_refusal.is_none() {
            // The timing settings every writer of this hierarchy agrees on (the first creator's stand).
            let _ = storage.put_if_absent(layout::FORMAT, options.settings.format_document().to_string().as_bytes())?;
        }
        let settings = StoreSettings::load(storage.as_ref(), options.settings)?;
        Ok(Hierarchy { storage, root, write_refusal: write_refusal.map(Arc::new), durable: options.durable, settings })
    }

    /// The hierarchy's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The hierarchy's timing settings (recorded at creation).
    pub fn settings(&self) -> StoreSettings {
        self.settings
    }

    pub(crate) fn storage_arc(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub(crate) fn durable(&self) -> bool {
        self.durable
    }

    pub(crate) fn ensure_writable(&self) -> Result<()> {
        match self.write_refusal.as_deref() {
            None => Ok(()),
            Some(e) => Err(crate::store::refusal_clone(e, &self.root)),
        }
    }

    /// The `zarr.json` of the node at `path` (`""`: the root), if there is one.
    pub fn node_metadata(&self, path: &str) -> Result<Option<Value>> {
        let path = if path.trim_matches('/').is_empty() { String::new() } else { nodes::node_path(path)? };
        nodes::read_doc(self.storage(), &path)
    }

    /// Plans writing the array at `path` in parts (see [`ArrayTarget`]); each part is written by
    /// [`Hierarchy::write_part`] in any process or node that opens this hierarchy, then the plan is committed once
    /// with [`Hierarchy::commit_plan`]. Parts are laid out on the write units (shards when sharded, else chunks;
    /// a count splits axis 0 first), so no two parts share a file; overlapping or unaligned regions give
    /// [`Error::PartsOverlap`] or [`Error::InvalidPlan`] and nothing is written.
    pub fn create_plan(&self, path: &str, target: ArrayTarget, parts: PartLayout) -> Result<ArrayPlanInfo> {
        create::create(self, path, target, parts)
    }

    /// Writes part `part` of plan `plan_id` from `blocks` and records its completion — exactly as
    /// [`Store::write_part`](crate::Store::write_part): blocks of any shape inside the part, a second writer of
    /// the same part gets [`Error::Conflict`], a finished part returns [`PartOutcome::AlreadyDone`] untouched.
    pub fn write_part(
        &self,
        plan_id: &str,
        part: usize,
        blocks: impl IntoIterator<Item = Result<RasterBlock>>,
        options: &PlanOptions<'_>,
    ) -> Result<PartOutcome> {
        self.ensure_writable()?;
        let id = plan::canonical_id(plan_id)?;
        let record = ArrayPlanRecord::load(self.storage(), &id)?;
        let ctx = PartContext {
            storage: &self.storage,
            lease_timeout: self.settings.lease_timeout(),
            durable: self.durable,
            id: &id,
            subject: &record.plan.path,
            parts: &record.plan.parts,
        };
        plan::run_part(&ctx, part, || self.staged_level(&record), blocks, options)
    }

    /// The staged array of `record`, as its part writers and its commit see it.
    pub(crate) fn staged_level(&self, record: &ArrayPlanRecord) -> Result<StagedLevel> {
        let dir = DataHandle::new(self.storage.clone(), record.plan.staging.clone());
        if !dir.exists(layout::ROOT_ZARR_JSON)? {
            return Err(Error::CorruptMetadata {
                path: dir.describe(layout::ROOT_ZARR_JSON),
                reason: format!("the staged array of write plan {} is missing; create a new plan", record.plan.plan_id),
            });
        }
        let (level, dtype) = array_spec::level_of(&record.plan.path, &record.plan.metadata)?;
        let label = crate::name::ElementName::label(&record.plan.path);
        Ok(StagedLevel { dir, label, level, json: record.plan.metadata.clone(), dtype })
    }

    /// The plan `plan_id` as created.
    pub fn plan_info(&self, plan_id: &str) -> Result<ArrayPlanInfo> {
        Ok(ArrayPlanRecord::load(self.storage(), plan_id)?.plan)
    }

    /// Which parts of plan `plan_id` are finished, started or missing, and whether it is committed.
    pub fn plan_status(&self, plan_id: &str) -> Result<ArrayPlanStatus> {
        let id = plan::canonical_id(plan_id)?;
        let record = ArrayPlanRecord::load(self.storage(), &id)?;
        let (done, started, missing) = plan::part_progress(self.storage(), &id, record.plan.parts.len())?;
        let committed = commit::committed(self.storage(), &id)?;
        Ok(PlanStatus { plan: record.plan, done, started, missing, committed })
    }

    /// Every array plan of the hierarchy (committed ones until `gc` reclaims their records), oldest first.
    pub fn list_plans(&self) -> Result<Vec<ArrayPlanStatus>> {
        let mut out = Vec::new();
        for name in self.storage().list(layout::PLANS_DIR)? {
            match self.plan_status(&name) {
                Ok(s) if s.plan.plan_id == name => out.push(s),
                Ok(_) | Err(Error::PlanNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Commits plan `plan_id` (see the module documentation): refuses with [`Error::PlanIncomplete`] unless every
    /// part is finished, with [`Error::NodeExists`] when a node took the path of a new array meanwhile, and with
    /// [`Error::Conflict`] when a filled array's metadata changed. Committing again returns the first commit.
    pub fn commit_plan(&self, plan_id: &str) -> Result<ArrayCommit> {
        commit::commit(self, plan_id)
    }

    /// Reclaims the plans (committed, or abandoned) untouched for at least `grace` whose locks nobody holds.
    /// Returns the plan directories removed with the bytes freed.
    pub fn gc(&self, grace: Duration) -> Result<Vec<(String, u64)>> {
        self.ensure_writable()?;
        let storage = self.storage();
        let lease = self.settings.lease_timeout();
        plan::reclaim::gc_plans(storage, grace, lease, |name| ArrayPlanRecord::load(storage, name).ok().map(|_| false))
    }
}

