//! Writing one part of a plan: under the part's claim (an epoch taken with create-if-absent, kept alive by a lease),
//! into the plan's staging directory, then recording the part's completion for that epoch with create-if-absent.

use super::record::PlanRecord;
use super::claim::{self, Claimed};
use super::{
    canonical_id, legacy_done_key, part_base, part_done_key, plan_json_key, reclaimed_key, PartOutcome,
    PartRecord, PlanOptions,
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
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The completion record of part `part`, if it is finished: the record of the newest attempt (a record of an older
/// attempt, written by a writer that stalled while another took over, does not count), or the record of a plan
/// written before attempts were numbered.
pub(super) fn read_done(storage: &dyn Storage, id: &str, part: usize) -> Result<Option<PartRecord>> {
    match claim::current_epoch(storage, &part_base(id, part))? {
        Some(epoch) => get_json(storage, &part_done_key(id, part, epoch), "not a valid part record"),
        None => get_json(storage, &legacy_done_key(id, part), "not a valid part record"),
    }
}

/// Which record finishes each of the `n` parts of plan `id`, from one listing of its parts directory: the key of
/// the newest attempt's completion record where it exists.
pub(crate) fn done_keys(storage: &dyn Storage, id: &str, n: usize) -> Result<Vec<Option<String>>> {
    let mut epoch: Vec<Option<u64>> = vec![None; n];
    let mut done_epochs: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut legacy = vec![false; n];
    for file in storage.list(&super::parts_dir_key(id))? {
        let Some((part, rest)) = file.split_once('.') else { continue };
        let Some(part) = part.parse::<usize>().ok().filter(|&p| p < n) else { continue };
        if let Some(e) = rest.strip_prefix("claim.").and_then(|e| e.parse::<u64>().ok()) {
            epoch[part] = epoch[part].max(Some(e));
        } else if let Some(e) = rest.strip_prefix("done.").and_then(|e| e.parse::<u64>().ok()) {
            done_epochs[part].push(e);
        } else if rest == "done" {
            legacy[part] = true;
        }
    }
    Ok((0..n)
        .map(|part| match epoch[part] {
            Some(e) => done_epochs[part].contains(&e).then(|| part_done_key(id, part, e)),
            None => legacy[part].then(|| legacy_done_key(id, part)),
        })
        .collect())
}

/// What the part protocol needs from the owner of a plan: a SpatialData store's element plan or a plain
/// hierarchy's array plan.
pub(crate) struct PartContext<'a> {
    /// The storage the plan lives in.
    pub storage: &'a Arc<dyn Storage>,
    /// The lease timeout of the store (how long a dead part writer holds up a rerun of its part).
    pub lease_timeout: Duration,
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
    let ctx = PartContext {
        storage: &store.inner.storage,
        lease_timeout: store.settings().lease_timeout(),
        durable: store.durable(),
        id: &id,
        subject: &subject,
        parts: &record.parts,
    };
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
    let (storage, id) = (ctx.storage.as_ref(), ctx.id);
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
    let claim = match claim::try_claim(ctx.storage, &part_base(id, part), ctx.lease_timeout)? {
        Claimed::Held(c) => *c,
        Claimed::Busy(epoch) => {
            return Err(Error::Conflict {
                name: ctx.subject.to_string(),
                reason: format!(
                    "part {part} of write plan {id} is being written by another writer right now (attempt {epoch}, \
                     whose lease is alive); run each part once at a time. If that writer died, the part can be run \
                     again once its lease expires ({} s)",
                    ctx.lease_timeout.as_secs_f64()
                ),
            })
        }
    };
    // Claimed: the plan may have been reclaimed, or another writer may have finished the part meanwhile.
    if !storage.exists(&plan_json_key(id))? || storage.exists(&reclaimed_key(id))? {
        return Err(Error::PlanNotFound {
            plan_id: id.to_string(),
            reason: "gc reclaimed it as abandoned while this writer started".into(),
        });
    }
    if let Some(done) = read_done(storage, id, part)? {
        return Ok(PartOutcome::AlreadyDone(done));
    }
    let raster = staged()?;
    if claim.epoch > 0 || storage.exists(&format!("{}.started", part_base(id, part)))? {
        // An earlier attempt was interrupted: start from nothing, so this attempt leaves exactly its blocks.
        raster.clear_part(region)?;
    }
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
    // Fencing: a writer that stalled while another took the part over records nothing.
    claim.check()?;
    let key = part_done_key(id, part, claim.epoch);
    match storage.put_if_absent(&key, &json_bytes(storage, &key, &done)?)? {
        PutOutcome::Created => Ok(PartOutcome::Written(done)),
        PutOutcome::AlreadyExists => read_done(storage, id, part)?.map(PartOutcome::AlreadyDone).ok_or_else(|| {
            Error::CorruptMetadata { path: storage.location().join(&key), reason: "the part record vanished".into() }
        }),
    }
}
