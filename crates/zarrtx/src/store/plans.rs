//! The store API of write plans: one image or labels element written by many processes or nodes (see
//! [`crate::plan`] and the "Write plans" section of `docs/design.md`).

use crate::error::Result;
use crate::plan::{self, PartLayout, PartOutcome, PlanInfo, PlanOptions, PlanStatus};
use crate::raster::{DataType, RasterBlock, RasterSpec};
use crate::store::{CommitInfo, Store};

impl Store {
    /// Plans writing the image or labels element `name` (level-0 `shape` of `data_type`) in parts, each written
    /// by [`Store::write_part`] in any process or node that opens this store, then committed once with
    /// [`Store::commit_plan`].
    ///
    /// The spec and name are validated (a name already committed gives `ElementExists` now, and again at commit);
    /// `parts` is laid out on the write units (shards when sharded, else chunks) so no two parts share a file:
    /// overlapping or unaligned regions give [`Error::PartsOverlap`](crate::Error::PartsOverlap) or
    /// [`Error::InvalidPlan`](crate::Error::InvalidPlan) and nothing is written. The plan is recorded under
    /// `.zarrtx/plans/<plan id>/`; nothing outside `.zarrtx/` changes and the element is invisible until committed.
    /// The pyramid must be single or computed (it is computed at commit).
    pub fn create_plan(
        &self,
        name: &str,
        spec: &RasterSpec,
        shape: &[u64],
        data_type: DataType,
        parts: PartLayout,
    ) -> Result<PlanInfo> {
        plan::create(self, name, spec, shape, data_type, parts, false)
    }

    /// [`Store::create_plan`] for an element that replaces the element of the same name, if there is one, when the
    /// plan is committed — atomically, as [`Store::add_raster`] with `overwrite` does: readers see the old element
    /// until the commit and the new one after; snapshots pinned to older versions keep reading the old data until
    /// `gc`. The name is not checked against existing elements.
    pub fn create_plan_replacing(
        &self,
        name: &str,
        spec: &RasterSpec,
        shape: &[u64],
        data_type: DataType,
        parts: PartLayout,
    ) -> Result<PlanInfo> {
        plan::create(self, name, spec, shape, data_type, parts, true)
    }

    /// Writes part `part` of plan `plan_id` from `blocks` (any shape, aligned to chunks or not, each inside the
    /// part's region; what the blocks do not cover reads as 0) and records its completion.
    ///
    /// The writer holds the part's lock: a second writer of the same part at the same time gets
    /// [`Error::Conflict`](crate::Error::Conflict) and writes nothing. A part finished before returns
    /// [`PartOutcome::AlreadyDone`] without reading the blocks or touching a file, so a job can simply be run again;
    /// a part interrupted by a crash is run again from its start (it rewrites only its own chunks). Chunks are
    /// encoded in parallel with bounded memory ([`PlanOptions::memory_limit`]) and made durable before the
    /// completion is recorded (unless the store was opened with `durable: false`).
    pub fn write_part(
        &self,
        plan_id: &str,
        part: usize,
        blocks: impl IntoIterator<Item = Result<RasterBlock>>,
        options: &PlanOptions<'_>,
    ) -> Result<PartOutcome> {
        plan::write(self, plan_id, part, blocks, options)
    }

    /// The plan `plan_id` as created (one small read; [`Store::plan_status`] also reads every part's record).
    pub fn plan_info(&self, plan_id: &str) -> Result<PlanInfo> {
        plan::info(self, plan_id)
    }

    /// Which parts of plan `plan_id` are finished, started or missing, and whether it is committed.
    pub fn plan_status(&self, plan_id: &str) -> Result<PlanStatus> {
        plan::status(self, plan_id)
    }

    /// Every write plan of the store (committed ones until `gc` reclaims their records), oldest first.
    pub fn list_plans(&self) -> Result<Vec<PlanStatus>> {
        plan::list(self)
    }

    /// Commits plan `plan_id`: refuses with [`Error::PlanIncomplete`](crate::Error::PlanIncomplete) (naming the
    /// missing parts) unless every part is finished; computes the pyramid level by level from level 0 on disk in
    /// tiles (never a whole level in memory), writes the element's metadata and commits it like any add (the name is
    /// re-checked: `ElementExists` if another writer took it meanwhile). Readers see the element from this commit on.
    ///
    /// Committing a committed plan is idempotent: it commits nothing and returns the first commit's version and
    /// transaction with `attempts: 0`. Concurrent committers of one plan queue on the plan's commit lock.
    pub fn commit_plan(&self, plan_id: &str) -> Result<CommitInfo> {
        self.commit_plan_with(plan_id, &PlanOptions::default())
    }

    /// [`Store::commit_plan`] with progress reporting (bytes of the pyramid levels) and a memory limit.
    pub fn commit_plan_with(&self, plan_id: &str, options: &PlanOptions<'_>) -> Result<CommitInfo> {
        plan::commit(self, plan_id, options)
    }
}
