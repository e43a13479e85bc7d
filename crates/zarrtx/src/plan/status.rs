//! Where plans stand: parts done, started, missing; committed or not.

use super::finish::committed;
use super::part::done_keys;
use crate::storage::json::get_json;
use super::record::PlanRecord;
use super::{canonical_id, parts_dir_key, plan_json_key, PartRecord, PlanInfo, PlanStatus};
use crate::storage::Storage;
use crate::error::{Error, Result};
use crate::layout;
use crate::store::Store;
use std::collections::BTreeSet;

/// [`Store::plan_info`].
pub(crate) fn info(store: &Store, plan_id: &str) -> Result<PlanInfo> {
    PlanRecord::load(store.storage(), plan_id)?.info()
}

/// [`Store::plan_status`].
pub(crate) fn status(store: &Store, plan_id: &str) -> Result<PlanStatus> {
    let storage = store.storage();
    let id = canonical_id(plan_id)?;
    let record = PlanRecord::load(storage, &id)?;
    let (done, started, missing) = part_progress(storage, &id, record.parts.len())?;
    // Only a complete plan can have been committed: incomplete ones skip the log scan.
    let committed = if missing.is_empty() { committed(store, &record)? } else { None };
    Ok(PlanStatus { plan: record.info()?, done, started, missing, committed })
}

/// The parts of plan `id` (of `n` parts) that are finished (their records), started but not finished, and not
/// finished (including the started ones).
pub(crate) fn part_progress(
    storage: &dyn Storage,
    id: &str,
    n: usize,
) -> Result<(Vec<PartRecord>, Vec<usize>, Vec<usize>)> {
    let mut claimed = BTreeSet::new();
    for file in storage.list(&parts_dir_key(id))? {
        let Some((part, kind)) = file.split_once('.') else { continue };
        let Ok(part) = part.parse::<usize>() else { continue };
        if kind.starts_with("claim.") || kind == "started" {
            claimed.insert(part);
        }
    }
    let mut done = Vec::new();
    let mut missing = Vec::new();
    for (part, key) in done_keys(storage, id, n)?.into_iter().enumerate() {
        match key.map(|k| get_json::<PartRecord>(storage, &k, "not a valid part record")).transpose()?.flatten() {
            Some(r) => done.push(r),
            None => missing.push(part),
        }
    }
    let started = missing.iter().copied().filter(|p| claimed.contains(p)).collect();
    Ok((done, started, missing))
}

/// [`Store::list_plans`]: every plan of the store, oldest first (plan ids are time-ordered UUIDs).
pub(crate) fn list(store: &Store) -> Result<Vec<PlanStatus>> {
    let storage = store.storage();
    let mut out = Vec::new();
    for name in storage.list(layout::PLANS_DIR)? {
        let Ok(id) = canonical_id(&name) else { continue };
        if id != name || !storage.exists(&plan_json_key(&id))? {
            // Debris of a plan that was never completely created, or was being reclaimed: gc's business.
            continue;
        }
        match status(store, &id) {
            Ok(s) => out.push(s),
            // Reclaimed by gc since it was listed.
            Err(Error::PlanNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
