//! Plans in `verify` and `gc`: an uncommitted plan is a leftover; one untouched for longer than the grace period,
//! that no live worker has claimed (a part or the commit: see `claim`) and whose staged data no pending commit
//! references, is reclaimed whole (plan record, part records and staged data). A committed plan's directory (its
//! record, kept so that a repeated commit answers with the first one) is reclaimed after the grace period too.

use super::finish::committed;
use super::record::PlanRecord;
use super::claim;
use super::{commit_base, parts_dir_key, reclaimed_key};
use crate::error::Result;
use crate::layout;
use crate::storage::Storage;
use crate::store::Store;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How long a plan directory without a readable `plan.json` must be idle before `gc` reclaims it, whatever the grace
/// period: `create_plan` writes the staged array first and `plan.json` last.
const DEBRIS_MIN_IDLE: Duration = Duration::from_secs(60);

/// Plan directories `verify` reports as leftovers: plans not committed (running, or abandoned) and debris of
/// plans whose creation or reclamation was interrupted.
pub(crate) fn leftovers(store: &Store) -> Result<Vec<PathBuf>> {
    let storage = store.storage();
    let mut out = Vec::new();
    for name in storage.list(layout::PLANS_DIR)? {
        let key = layout::plan_key(&name);
        let done = match PlanRecord::load(storage, &name) {
            Ok(record) => committed(store, &record)?.is_some(),
            Err(_) => false,
        };
        if !done {
            out.push(storage.location().join(key));
        }
    }
    Ok(out)
}

/// How long ago anything of the plan at `key` last changed (its record, part records and locks, commit record).
fn idle_for(storage: &dyn Storage, key: &str, name: &str) -> Result<Duration> {
    let mut keys: Vec<String> =
        ["", "/plan.json", "/committed.json", "/staged"].iter().map(|f| format!("{key}{f}")).collect();
    let parts = parts_dir_key(name);
    keys.push(parts.clone());
    keys.extend(storage.list(&parts)?.into_iter().map(|f| format!("{parts}/{f}")));
    let mut newest: Option<SystemTime> = None;
    for k in keys {
        if let Some(m) = storage.modified(&k)? {
            newest = Some(newest.map_or(m, |n| n.max(m)));
        }
    }
    Ok(newest.and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default())
}

/// Reclaims the plans idle for at least `grace` that no writer or committer holds and whose staged data no
/// committed-but-uninstalled add (`pending`) references. Returns the keys removed with the bytes freed.
pub(crate) fn gc(store: &Store, grace: Duration, pending: &BTreeSet<String>) -> Result<Vec<(String, u64)>> {
    let storage = store.storage();
    let lease = store.settings().lease_timeout();
    gc_plans(storage, grace, lease, |name| PlanRecord::load(storage, name).ok().map(|r| pending.contains(&r.staging)))
}

/// Reclaims the plans under `.zarrtx/plans/` of `storage` idle for at least `grace` that no live worker claims.
/// `in_use(plan)` is `None` when the plan has no readable record (debris, reclaimed after a longer idle time),
/// `Some(true)` when something still needs its staged data (never reclaimed), `Some(false)` otherwise.
pub(crate) fn gc_plans(
    storage: &dyn Storage,
    grace: Duration,
    lease_timeout: Duration,
    in_use: impl Fn(&str) -> Option<bool>,
) -> Result<Vec<(String, u64)>> {
    let mut removed = Vec::new();
    'plans: for name in storage.list(layout::PLANS_DIR)? {
        let key = layout::plan_key(&name);
        let min_idle = match in_use(&name) {
            Some(true) => continue,
            Some(false) => grace,
            // No readable plan.json: possibly a plan being created right now (plan.json comes last).
            None => grace.max(DEBRIS_MIN_IDLE),
        };
        if idle_for(storage, &key, &name)? < min_idle {
            continue;
        }
        // A live writer or committer renews its lease for as long as it works: leave its plan alone.
        let parts = parts_dir_key(&name);
        let mut bases: Vec<String> = storage
            .list(&parts)?
            .iter()
            .filter_map(|f| f.split_once(".claim.").map(|(stem, _)| format!("{parts}/{stem}")))
            .collect();
        bases.dedup();
        bases.push(commit_base(&name));
        for base in &bases {
            if claim::busy(storage, base, lease_timeout)? {
                continue 'plans;
            }
        }
        // Writers that claim a part from now on see the marker and give up; one that claimed just before has its
        // lease deleted with the plan, so its own check before recording the part fails.
        storage.put(&reclaimed_key(&name), b"reclaimed")?;
        let bytes = storage.delete_tree(&key)?;
        removed.push((key, bytes));
    }
    Ok(removed)
}
