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
use crate::raster::planned::StagedRaster;
use crate::raster::RasterBlock;
use crate::storage::{PutOutcome, Storage};
use crate::store::Store;
use serde_json::json;
use std::time::Instant;

/// The completion record of part `part`, if it is finished.
pub(super) fn read_done(storage: &dyn Storage, id: &str, part: usize) -> Result<Option<PartRecord>> {
    let key = part_done_key(id, part);
    match storage.get(&key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::CorruptMetadata {
            path: storage.location().join(&key),
            reason: format!("not a valid part record: {e}"),
        }),
    }
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
    let Some(region) = record.parts.get(part) else {
        return Err(Error::InvalidPlan {
            name: record.name.to_string(),
            reason: format!(
                "part {part} does not exist: plan {id} has {} parts, numbered 0 to {}",
                record.parts.len(),
                record.parts.len().saturating_sub(1)
            ),
        });
    };
    if let Some(done) = read_done(storage, &id, part)? {
        return Ok(PartOutcome::AlreadyDone(done));
    }
    let Some(_lock) = storage.try_lock_exclusive(&part_lock_key(&id, part))? else {
        return Err(Error::Conflict {
            name: record.name.to_string(),
            reason: format!(
                "part {part} of write plan {id} is being written by another writer right now (or gc is reclaiming \
                 the abandoned plan); run each part once at a time. If that writer dies, its lock is released and \
                 the part can be run again"
            ),
        });
    };
    // Under the lock: the plan may have been reclaimed, or another writer may have finished the part meanwhile.
    if !storage.exists(&plan_json_key(&id))? {
        return Err(Error::PlanNotFound {
            plan_id: plan_id.to_string(),
            reason: "gc reclaimed it as abandoned while this writer started".into(),
        });
    }
    if let Some(done) = read_done(storage, &id, part)? {
        return Ok(PartOutcome::AlreadyDone(done));
    }
    let (dir, spec, dtype) = record.staged_array(store)?;
    let raster = StagedRaster { dir: &dir, name: &record.name, spec: &spec, shape: &record.shape, dtype };
    let started = part_started_key(&id, part);
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
    let (chunks, bytes) = raster.settle_part(region, store.durable())?;
    let done = PartRecord {
        part,
        chunks,
        bytes,
        elapsed_ms: t0.elapsed().as_millis() as u64,
        finished_ms: now_ms(),
        writer: WriterInfo::current(),
    };
    let key = part_done_key(&id, part);
    let body = serde_json::to_vec_pretty(&done).map_err(|e| Error::Io {
        path: storage.location().join(&key),
        source: std::io::Error::other(e),
    })?;
    match storage.put_if_absent(&key, &body)? {
        PutOutcome::Created => Ok(PartOutcome::Written(done)),
        // Only a lock-less medium lets two writers get here; the first record stands.
        PutOutcome::AlreadyExists => read_done(storage, &id, part)?.map(PartOutcome::AlreadyDone).ok_or_else(|| {
            Error::CorruptMetadata { path: storage.location().join(&key), reason: "the part record vanished".into() }
        }),
    }
}
