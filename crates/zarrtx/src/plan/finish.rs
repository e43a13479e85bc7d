//! Committing a plan: every part present, the pyramid computed from level 0 on disk, then one commit through the
//! same path as every add. A plan is committed at most once; committing again answers with the first commit.

use super::part::done_keys;
use super::record::PlanRecord;
use super::claim;
use super::{canonical_id, commit_base, committed_key, plan_json_key, reclaimed_key, PlanCommit, PlanOptions};
use crate::error::{Error, Result};
use crate::log::entry::now_ms;
use crate::log::reader::read_entry;
use crate::raster::planned::StagedRaster;
use crate::storage::json::get_json;
use crate::storage::Storage;
use crate::store::{CommitInfo, Store};

/// The parts of `record` that are not finished, in order.
pub(super) fn missing_parts(storage: &dyn Storage, record: &PlanRecord) -> Result<Vec<usize>> {
    let keys = done_keys(storage, &record.plan_id, record.parts.len())?;
    Ok(keys.iter().enumerate().filter(|(_, k)| k.is_none()).map(|(part, _)| part).collect())
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
    if !missing_parts(storage, record)?.is_empty() {
        return Ok(None);
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
    // Committers of one plan take turns (a claim: any node, no lock): the pyramid is computed into a directory only
    // the holder writes. A committer that died is taken over once its lease expires.
    let gone = || -> Result<()> {
        if !storage.exists(&plan_json_key(&id))? || storage.exists(&reclaimed_key(&id))? {
            return Err(Error::PlanNotFound {
                plan_id: plan_id.to_string(),
                reason: "gc reclaimed it (idle for the grace period) while this commit waited for its turn".into(),
            });
        }
        Ok(())
    };
    let held = claim::claim_waiting(&store.inner.storage, &commit_base(&id), store.settings().lease_timeout(), gone)?;
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
    held.check()?;
    let info =
        store.commit_add(txn, &record.name, record.element_type, record.overwrite, staged, tree, Vec::new(), held.lease())?;
    record_commit(storage, &id, &PlanCommit { version: info.version, txn: info.txn.clone(), committed_ms: now_ms() });
    Ok(info)
}
