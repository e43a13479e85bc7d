//! Write plans: one image or labels element written by many processes or cluster nodes at once.
//!
//! [`Store::create_plan`](crate::Store::create_plan) splits level 0 of the element into parts — hyper-rectangles
//! of whole write units (shards when sharded, else chunks), so that no two parts share a file — and records the
//! plan under `.zarrtx/plans/<plan id>/` (`plan.json`, created with create-if-absent). Each worker then runs
//! [`Store::write_part`](crate::Store::write_part) for its part: it claims the part (`claim`: an epoch taken with
//! create-if-absent plus a lease — no lock), writes only the part's chunks into the plan's private staging
//! directory and records the part's completion for its epoch (`parts/<i>.done.<e>`, create-if-absent). A finished
//! part is never written again; an interrupted one is run again (by anyone, at once when its writer released it,
//! after the lease timeout when its writer died).
//! [`Store::commit_plan`](crate::Store::commit_plan) computes the pyramid from level 0 on disk, writes the
//! metadata and commits the element through the same commit and install path as every add, so the element is
//! invisible to every reader until then. `gc` reclaims plans abandoned for longer than its grace period.
//!
//! The directory of one plan:
//!
//! ```text
//! .zarrtx/plans/<plan id>/plan.json        the plan (immutable, create-if-absent; written last at creation)
//! .zarrtx/plans/<plan id>/staged/          the element tree: s0 filled by the parts; s1.. and zarr.json at commit
//! .zarrtx/plans/<plan id>/parts/<i>.claim.<e>     attempt e of part i (create-if-absent; e > 0 clears the part first)
//! .zarrtx/plans/<plan id>/parts/<i>.lease.<e>     its writer's lease, renewed while it writes
//! .zarrtx/plans/<plan id>/parts/<i>.released.<e>  the writer let go (done or failed): the next attempt need not wait
//! .zarrtx/plans/<plan id>/parts/<i>.done.<e>      part i is complete, written by attempt e (create-if-absent)
//! .zarrtx/plans/<plan id>/commit.{claim,lease,released}.<e>   the committer's claim
//! .zarrtx/plans/<plan id>/committed.json   the commit (version, txn), once committed
//! .zarrtx/plans/<plan id>/reclaimed        gc is deleting the plan (writers that start meanwhile give up)
//! ```

pub(crate) mod claim;
mod create;
mod finish;
mod part;
mod partition;
pub(crate) mod reclaim;
mod record;
mod status;

pub(crate) use create::create;
pub(crate) use finish::commit;
pub(crate) use part::{run_part, write, PartContext};
pub(crate) use partition::layout_parts;
pub(crate) use status::{info, list, part_progress, status};

use crate::error::{Error, Result};
use crate::layout;
use crate::log::WriterInfo;
use crate::name::ElementType;
use crate::progress::{NoProgress, Progress};
use crate::raster::{DataType, RasterSpec, DEFAULT_MEMORY_LIMIT};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// How level 0 of a planned element is split into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartLayout {
    /// Split the grid of write units (shards when sharded, else chunks) into this many hyper-rectangular parts of
    /// whole units, balanced: along the first spatial axis (`z` when present, else `y`) first, then the next when
    /// there are more parts than unit rows; the channel axis last. At most one part per write unit.
    Count(usize),
    /// Explicit parts, one `start..end` range per axis each. Every range must start and end on write-unit
    /// boundaries (or end at the array's edge), lie inside the array, and no two parts may overlap. Parts need not
    /// cover the array: what no part covers reads as the fill value 0.
    Regions(Vec<Vec<Range<u64>>>),
}

/// A write plan, as created.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInfo {
    /// The plan's id (a UUID): what workers pass to `write_part` and `commit_plan`.
    pub plan_id: String,
    /// The element the plan writes.
    pub name: String,
    /// `images` or `labels`.
    pub element_type: ElementType,
    /// The element's spec (pyramid single or computed).
    pub spec: RasterSpec,
    /// Shape of level 0.
    pub shape: Vec<u64>,
    /// Element type of the data.
    pub data_type: DataType,
    /// The write unit parts are aligned to: the shard shape when sharded, else the chunk shape.
    pub write_unit: Vec<u64>,
    /// The parts: one `start..end` range per axis each, indexed from 0.
    pub parts: Vec<Vec<Range<u64>>>,
    /// Key (relative to the store root) of the staging directory the parts write into.
    pub staging: String,
    /// When the plan was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The store version when the plan was created.
    pub created_version: u64,
    /// Who created the plan.
    pub writer: WriterInfo,
    /// Whether the commit replaces an element of the same name.
    pub overwrite: bool,
}

impl PlanInfo {
    /// Bytes of uncompressed level-0 data in part `part` (0 for a part that does not exist).
    pub fn part_bytes(&self, part: usize) -> u64 {
        self.parts
            .get(part)
            .map(|r| r.iter().map(|r| r.end - r.start).product::<u64>() * self.data_type.size() as u64)
            .unwrap_or(0)
    }
}

/// What a finished part recorded in `parts/<i>.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// The part's index.
    pub part: usize,
    /// Chunk (or shard) files the part stored (chunks holding only the fill value are not stored).
    pub chunks: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// How long the successful attempt took, in milliseconds.
    pub elapsed_ms: u64,
    /// When it finished, in milliseconds since the Unix epoch.
    pub finished_ms: u64,
    /// Who wrote it.
    pub writer: WriterInfo,
}

/// What [`Store::write_part`](crate::Store::write_part) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    /// The part was written by this call.
    Written(PartRecord),
    /// The part had been finished before; nothing was written (the blocks were not read).
    AlreadyDone(PartRecord),
}

impl PartOutcome {
    /// The part's completion record.
    pub fn record(&self) -> &PartRecord {
        match self {
            PartOutcome::Written(r) | PartOutcome::AlreadyDone(r) => r,
        }
    }
}

/// The commit that published a plan's element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCommit {
    /// The version the commit created.
    pub version: u64,
    /// Its transaction id (the plan's).
    pub txn: String,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub committed_ms: u64,
}

/// Where a write plan stands: `P` describes the plan, `C` its commit (an element plan of a SpatialData store by
/// default; [`ArrayPlanInfo`](crate::hierarchy::ArrayPlanInfo) and
/// [`ArrayCommit`](crate::hierarchy::ArrayCommit) for an array plan of a plain Zarr hierarchy).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStatus<P = PlanInfo, C = PlanCommit> {
    /// The plan.
    pub plan: P,
    /// The finished parts, in order.
    pub done: Vec<PartRecord>,
    /// Parts an attempt began on that are not finished: running now, or interrupted (run them again).
    pub started: Vec<usize>,
    /// Parts not finished (including `started`), in order.
    pub missing: Vec<usize>,
    /// The commit, once the plan is committed.
    pub committed: Option<C>,
}

impl<P, C> PlanStatus<P, C> {
    /// True when every part is finished (the plan can be committed).
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Options of [`Store::write_part`](crate::Store::write_part) and
/// [`Store::commit_plan_with`](crate::Store::commit_plan_with).
pub struct PlanOptions<'a> {
    /// Receives progress in bytes (the part's level-0 bytes; the pyramid's bytes when committing).
    pub progress: &'a dyn Progress,
    /// In-flight memory limit in bytes (see [`crate::raster::WriteOptions::memory_limit`]); default
    /// [`DEFAULT_MEMORY_LIMIT`].
    pub memory_limit: u64,
}

impl Default for PlanOptions<'_> {
    fn default() -> Self {
        PlanOptions { progress: &NoProgress, memory_limit: DEFAULT_MEMORY_LIMIT }
    }
}

/// Layout format of `plan.json`.
pub(crate) const PLAN_FORMAT: u32 = 1;

/// The canonical (lower-case, hyphenated) form of a plan id, or `PlanNotFound` when `id` is not a plan id. Only
/// canonical UUIDs ever reach a path, so an id cannot point outside the plans directory.
pub(crate) fn canonical_id(id: &str) -> Result<String> {
    uuid::Uuid::parse_str(id.trim()).map(|u| u.hyphenated().to_string()).map_err(|_| Error::PlanNotFound {
        plan_id: id.to_string(),
        reason: "it is not a plan id (the UUID `create_plan` / `zarrtx write-plan` printed)".into(),
    })
}

pub(crate) fn plan_json_key(id: &str) -> String {
    format!("{}/plan.json", layout::plan_key(id))
}

pub(crate) fn staged_key(id: &str) -> String {
    format!("{}/staged", layout::plan_key(id))
}

pub(crate) fn parts_dir_key(id: &str) -> String {
    format!("{}/parts", layout::plan_key(id))
}

/// The claim base of part `part` (see [`claim`]).
pub(crate) fn part_base(id: &str, part: usize) -> String {
    format!("{}/{part}", parts_dir_key(id))
}

/// The completion record of part `part` written by attempt `epoch`.
pub(crate) fn part_done_key(id: &str, part: usize, epoch: u64) -> String {
    format!("{}/{part}.done.{epoch}", parts_dir_key(id))
}

/// The completion record of plans written before attempts were numbered.
fn legacy_done_key(id: &str, part: usize) -> String {
    format!("{}/{part}.done", parts_dir_key(id))
}

/// The claim base of the plan's commit.
pub(crate) fn commit_base(id: &str) -> String {
    format!("{}/commit", layout::plan_key(id))
}

/// The marker gc writes before it deletes a plan.
pub(crate) fn reclaimed_key(id: &str) -> String {
    format!("{}/reclaimed", layout::plan_key(id))
}

pub(crate) fn committed_key(id: &str) -> String {
    format!("{}/committed.json", layout::plan_key(id))
}

/// `start..end` per axis, for messages.
pub(crate) fn region_text(region: &[Range<u64>]) -> String {
    let parts: Vec<String> = region.iter().map(|r| format!("{}..{}", r.start, r.end)).collect();
    format!("[{}]", parts.join(", "))
}
