//! Writing one part of a plan: under the part's lock, into the plan's staging directory, then recording the
//! part's completion with create-if-absent.

use super::record::PlanRecord;
use super::{
    canonical_id, part_done_key, part_lock_key, part_started_key, plan_json_key, region_text, PartOutcome, PartRecord,
    PlanOptions,
};
use crate::error::{Error, Result};
use crate::log::entry::now_ms;
use crate::log::WriterInfo;
use crate::raster::planned::{StagedLevel, StagedRaster};
use std::ops::Range;
use crate::raster::RasterBlock;
use crate::storage::json::{get_json, json_bytes};
use crate::storage::{PutOutcome, Storage};
use crate::store::Store;
use serde_json::json;
use std::time::Instant;

/// The completion record of part `part`, if it is finished.
pub(super) fn read_done(storage: &dyn Storage, id: &str, part: usize) -> Result<Option<PartRecord>> {
    get_json(storage, &part_done_key(id, part), "not a valid part record")
}

/// What the part protocol needs from the owner of a plan: a SpatialData store's element plan or a plain
/// hierarchy's array plan.
pub(crate) struct PartContext<'a> {
    /// The storage the plan lives in.
    pub storage: &'a dyn Storage,
    /// Make the part's files durable before recording its completion.
    pub durable: bool,
    /// The plan's canonical id.
    pub id: &'a str,
    /// The element or array the plan writes, for messages.
    pub subject: &'a str,
    /// The plan's parts.
    pub parts: &'a [Vec<Range<u64>>],
}

/// [`Store::write_part`].
pub(crate) fn write(
    store: &Store,
    plan_id: &str,
    part: usize,
    blocks: impl IntoIterator<Item = Result<RasterBlock>>,
    options: &PlanOptions<'_>,
) -> Result<PartOutcome> {
    store.ensure_writable()?;
    let storage = store.storage();
    let id = canonical_id(plan_id)?;
    let record = PlanRecord::load(storage, &id)?;
    let subject = record.name.to_string();
    let ctx = PartContext { storage, durable: store.durable(), id: &id, subject: &subject, parts: &record.parts };
    let staged = || {
        let (dir, spec, dtype) = record.staged_array(store)?;
        StagedRaster { dir: &dir, name: &record.name, spec: &spec, shape: &record.shape, dtype }.level0_target()
    };
    run_part(&ctx, part, staged, blocks, options)
}

/// Writes part `part` of the plan `ctx` describes into the staged array `staged` opens: the part's lock, the
/// completion check, the clean-up of an interrupted attempt, the writing, and the completion record.
pub(crate) fn run_part(
    ctx: &PartContext<'_>,
    part: usize,
    staged: impl FnOnce() -> Result<StagedLevel>,
    blocks: impl IntoIterator<Item = Result<RasterBlock>>,
    options: &PlanOptions<'_>,
) -> Result<PartOutcome> {
    let (storage, id) = (ctx.storage, ctx.id);
    let Some(region) = ctx.parts.get(part) else {
        return Err(Error::InvalidPlan {
            name: ctx.subject.to_string(),
            reason: format!(
                "part {part} does not exist: plan {id} has {} parts, numbered 0 to {}",
                ctx.parts.len(),
                ctx.parts.len().saturating_sub(1)
            ),
        });
    };
    if let Some(done) = read_done(storage, id, part)? {
        return Ok(PartOutcome::AlreadyDone(done));
    }
    let Some(_lock) = storage.locks().try_lock_exclusive(&part_lock_key(id, part))? else {
        return Err(Error::Conflict {
            name: ctx.subject.to_string(),
            reason: format!(
                "part {part} of write plan {id} is being written by another writer right now (or gc is reclaiming \
                 the abandoned plan); run each part once at a time. If that writer dies, its lock is released and \
                 the part can be run again"
            ),
        });
    };
    // Under the lock: the plan may have been reclaimed, or another writer may have finished the part meanwhile.
    if !storage.exists(&plan_json_key(id))? {
        return Err(Error::PlanNotFound {
            plan_id: id.to_string(),
            reason: "gc reclaimed it as abandoned while this writer started".into(),
        });
    }
    if let Some(done) = read_done(storage, id, part)? {
        return Ok(PartOutcome::AlreadyDone(done));
    }
    let raster = staged()?;
    let started = part_started_key(id, part);
    if storage.exists(&started)? {
        // An earlier attempt was interrupted: start from nothing, so this attempt leaves exactly its blocks.
        raster.clear_part(region)?;
    }
    let attempt = json!({
        "part": part, "region": region_text(region), "started_ms": now_ms(), "writer": WriterInfo::current()
    });
    storage.put(&started, attempt.to_string().as_bytes())?;
    let t0 = Instant::now();
    raster.write_part(part, region, blocks, options.progress, options.memory_limit)?;
    let (chunks, bytes) = raster.settle_part(region, ctx.durable)?;
    let done = PartRecord {
        part,
        chunks,
        bytes,
        elapsed_ms: t0.elapsed().as_millis() as u64,
        finished_ms: now_ms(),
        writer: WriterInfo::current(),
    };
    let key = part_done_key(id, part);
    match storage.put_if_absent(&key, &json_bytes(storage, &key, &done)?)? {
        PutOutcome::Created => Ok(PartOutcome::Written(done)),
        // Only a lock-less medium lets two writers get here; the first record stands.
        PutOutcome::AlreadyExists => read_done(storage, id, part)?.map(PartOutcome::AlreadyDone).ok_or_else(|| {
            Error::CorruptMetadata { path: storage.location().join(&key), reason: "the part record vanished".into() }
        }),
    }
}
