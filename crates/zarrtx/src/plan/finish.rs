//! Committing a plan: every part present, the pyramid computed from level 0 on disk, then one commit through the
//! same path as every add. A plan is committed at most once; committing again answers with the first commit.

use super::part::read_done;
use super::record::PlanRecord;
use super::{canonical_id, commit_lock_key, committed_key, plan_json_key, PlanCommit, PlanOptions};
use crate::error::{Error, Result};
use crate::log::entry::now_ms;
use crate::log::reader::read_entry;
use crate::raster::planned::StagedRaster;
use crate::storage::json::get_json;
use crate::storage::Storage;
use crate::store::{CommitInfo, Store};

/// The parts of `record` that are not finished, in order.
pub(super) fn missing_parts(storage: &dyn Storage, record: &PlanRecord) -> Result<Vec<usize>> {
    let mut missing = Vec::new();
    for part in 0..record.parts.len() {
        if read_done(storage, &record.plan_id, part)?.is_none() {
            missing.push(part);
        }
    }
    Ok(missing)
}

/// The commit of `record`'s element, if it happened: from `committed.json`, else from the log (a committer may have
/// died between its commit and that record).
pub(super) fn committed(store: &Store, record: &PlanRecord) -> Result<Option<PlanCommit>> {
    let storage = store.storage();
    let key = committed_key(&record.plan_id);
    if let Some(c) = get_json::<PlanCommit>(storage, &key, "not a valid commit record")? {
        return Ok(Some(c));
    }
    // A plan is committed only once every part is done: an incomplete one needs no log scan.
    for part in 0..record.parts.len() {
        if !storage.exists(&super::part_done_key(&record.plan_id, part))? {
            return Ok(None);
        }
    }
    let head = store.version()?;
    for v in record.created_version + 1..=head {
        if let Some(entry) = read_entry(storage, v)? {
            if entry.txn == record.txn {
                return Ok(Some(PlanCommit { version: v, txn: entry.txn, committed_ms: entry.timestamp_ms }));
            }
        }
    }
    Ok(None)
}

fn record_commit(storage: &dyn Storage, id: &str, c: &PlanCommit) {
    // Best effort: the log is the truth, this file only saves a log scan and tells gc the plan is done.
    if let Ok(bytes) = serde_json::to_vec_pretty(c) {
        let _ = storage.put_if_absent(&committed_key(id), &bytes);
    }
}

/// [`Store::commit_plan_with`].
pub(crate) fn commit(store: &Store, plan_id: &str, options: &PlanOptions<'_>) -> Result<CommitInfo> {
    store.ensure_writable()?;
    let storage = store.storage();
    let id = canonical_id(plan_id)?;
    let record = PlanRecord::load(storage, &id)?;
    // Committers of one plan queue here: the pyramid is computed once, into a directory only they write.
    let _lock = storage.locks().lock_exclusive(&commit_lock_key(&id))?;
    if !storage.exists(&plan_json_key(&id))? {
        return Err(Error::PlanNotFound {
            plan_id: plan_id.to_string(),
            reason: "gc reclaimed it (idle for the grace period) while this commit waited for the plan's lock".into(),
        });
    }
    if let Some(c) = committed(store, &record)? {
        record_commit(storage, &id, &c);
        // Idempotent: the first commit's result; publish it if its committer died before publishing.
        let published = store.ensure_applied(c.version)?;
        return Ok(CommitInfo { version: c.version, txn: c.txn, attempts: 0, published });
    }
    let missing = missing_parts(storage, &record)?;
    if !missing.is_empty() {
        return Err(Error::PlanIncomplete {
            plan_id: id,
            name: record.name.to_string(),
            missing,
            parts: record.parts.len(),
        });
    }
    if !record.overwrite {
        store.check_name_free(&record.name)?;
    }
    let (dir, spec, dtype) = record.staged_array(store)?;
    let raster = StagedRaster { dir: &dir, name: &record.name, spec: &spec, shape: &record.shape, dtype };
    let tree = raster.finish(options.progress, options.memory_limit, store.durable())?;
    let (txn, staged) = (&record.txn, &record.staging);
    let info = store.commit_add(txn, &record.name, record.element_type, record.overwrite, staged, tree, Vec::new())?;
    record_commit(storage, &id, &PlanCommit { version: info.version, txn: info.txn.clone(), committed_ms: now_ms() });
    Ok(info)
}
