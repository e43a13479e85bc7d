//! Committing an array plan — the second protocol of the crate (a hierarchy has no log): every part present, then
//! the array published in one step, through the storage seam and without locks.
//!
//! - **Turns.** Committers of one plan take turns with the plan's commit claim; commits touching one array path take
//!   turns with a claim on that path (`.zarrtx/arrays/<path>`), so a fill never links the chunks of an array that
//!   another fill is replacing. Claims are create-if-absent epochs with leases (see `plan::claim`): a committer that
//!   died is taken over once its lease expires, on any node.
//! - **A new array** (create): the staged tree is renamed to the path (one rename, which refuses an existing
//!   target), the plan's `committed.json` is recorded, then the root's inline consolidated metadata gains the array
//!   and its missing ancestor groups (see [`super::nodes::consolidate`]: every committed array, re-checked after
//!   writing, so concurrent committers never drop each other's entries).
//! - **A filled array**: every file of the array outside the plan's parts is linked (hard link, or copied where the
//!   medium has no links) into the staged tree, which then replaces the array: by one exchange where the medium has
//!   it (`renameat2(RENAME_EXCHANGE)` on local disks), else by two renames (for an instant the path is missing — a
//!   reader fails loudly rather than reading a half-written array; NFS has no exchange).
//! - **Recovery.** A plan is committed at most once; committing again answers with the first commit, and a commit
//!   interrupted by a crash is finished by the next one: the staged tree's identity tells whether it was moved to
//!   the path already.

use super::nodes::{a_node, consolidate, create_groups, has_consolidated, missing_ancestors, read_doc};
use super::record::ArrayPlanRecord;
use super::{ArrayCommit, ArrayMode, Hierarchy};
use crate::error::{Error, Result};
use crate::layout;
use crate::log::entry::now_ms;
use crate::plan::claim::{self, Claim};
use crate::plan::{canonical_id, commit_base, committed_key, part_progress, plan_json_key, reclaimed_key};
use crate::storage::json::{get_json, json_bytes};
use crate::storage::{join, MoveOutcome, Storage};
use std::collections::HashSet;

/// The commit of plan `id`, once committed.
pub(super) fn committed(storage: &dyn Storage, id: &str) -> Result<Option<ArrayCommit>> {
    get_json(storage, &committed_key(id), "not a valid commit record")
}

/// The claim base that serializes commits touching the array at `path`.
fn array_base(path: &str) -> String {
    format!("{}/arrays/{}", layout::META, path.replace('/', "%2F"))
}

/// [`Hierarchy::commit_plan`].
pub(crate) fn commit(h: &Hierarchy, plan_id: &str) -> Result<ArrayCommit> {
    h.ensure_writable()?;
    let storage = h.storage();
    let id = canonical_id(plan_id)?;
    let record = ArrayPlanRecord::load(storage, &id)?;
    let gone = || -> Result<()> {
        if !storage.exists(&plan_json_key(&id))? || storage.exists(&reclaimed_key(&id))? {
            return Err(Error::PlanNotFound {
                plan_id: plan_id.to_string(),
                reason: "gc reclaimed it (idle for the grace period) while this commit waited for its turn".into(),
            });
        }
        Ok(())
    };
    let lease = h.settings.lease_timeout();
    let _plan_turn = claim::claim_waiting(h.storage_arc(), &commit_base(&id), lease, gone)?;
    if let Some(c) = committed(storage, &id)? {
        // Committed before; make sure the consolidated metadata shows it (the committer may have died before).
        if c.mode == ArrayMode::Create {
            let consolidated = consolidate(storage)?;
            return Ok(ArrayCommit { consolidated, ..c });
        }
        return Ok(c);
    }
    let (_, _, missing) = part_progress(storage, &id, record.plan.parts.len())?;
    if !missing.is_empty() {
        return Err(Error::PlanIncomplete { plan_id: id, name: record.plan.path, missing, parts: record.plan.parts.len() });
    }
    let array_turn = claim::claim_waiting(h.storage_arc(), &array_base(&record.plan.path), lease, || Ok(()))?;
    let done = match record.plan.mode {
        ArrayMode::Create => publish_new(h, &record, &array_turn)?,
        ArrayMode::Fill => publish_filled(h, &record, &array_turn)?,
    };
    // The record comes before the consolidation, which lists every committed array: it says whether the root has
    // consolidated metadata to list this one in.
    let done = ArrayCommit { consolidated: done.mode == ArrayMode::Create && has_consolidated(storage)?, ..done };
    let key = committed_key(&id);
    storage.put_if_absent(&key, &json_bytes(storage, &key, &done)?)?;
    drop(array_turn);
    if done.mode == ArrayMode::Create {
        let consolidated = consolidate(storage)?;
        return Ok(ArrayCommit { consolidated, ..done });
    }
    Ok(done)
}

fn publish_new(h: &Hierarchy, record: &ArrayPlanRecord, turn: &Claim) -> Result<ArrayCommit> {
    let storage = h.storage();
    let (staging, path) = (&record.plan.staging, &record.plan.path);
    let exists = |reason: String| Error::NodeExists { hierarchy: h.root().to_path_buf(), path: path.clone(), reason };
    let groups = missing_ancestors(storage, h.root(), path)?;
    if !record.is_staged_tree(storage, path)? {
        if let Some(doc) = read_doc(storage, path)? {
            return Err(exists(format!(
                "{} was created there after the plan; nothing was published (the plan's data stays until gc): \
                 remove that node and commit again, or plan another path",
                a_node(&doc)
            )));
        }
        if h.durable() {
            storage.sync(&[join(staging, layout::ROOT_ZARR_JSON)])?;
        }
        create_groups(storage, &groups)?;
        turn.check()?;
        match storage.rename(staging, path)? {
            MoveOutcome::Moved => {}
            MoveOutcome::TargetExists => {
                return Err(exists("a directory without zarr.json is there: remove it, then commit again".into()))
            }
            MoveOutcome::SourceMissing => {
                return Err(Error::CorruptMetadata {
                    path: storage.location().join(staging),
                    reason: format!("the staged array of write plan {} is gone; create a new plan", record.plan.plan_id),
                })
            }
        }
    }
    Ok(ArrayCommit { path: path.clone(), mode: ArrayMode::Create, kept_files: 0, consolidated: false, committed_ms: now_ms() })
}

fn publish_filled(h: &Hierarchy, record: &ArrayPlanRecord, turn: &Claim) -> Result<ArrayCommit> {
    let storage = h.storage();
    let (staging, path) = (&record.plan.staging, &record.plan.path);
    let mut kept = 0;
    let aside = format!("{staging}-old");
    if !storage.exists(path)? && storage.exists(&aside)? {
        // A commit without exchange died between its two renames: finish the second.
        storage.rename(staging, path)?;
    }
    if !record.is_staged_tree(storage, path)? {
        match read_doc(storage, path)? {
            Some(doc) if doc == record.plan.metadata => {}
            Some(_) => {
                return Err(Error::Conflict {
                    name: path.clone(),
                    reason: "the array's zarr.json changed since the plan was created (shape, chunks, codecs or \
                             attributes); nothing was published: create a new plan for the array as it is now"
                        .into(),
                })
            }
            None => {
                return Err(Error::Conflict {
                    name: path.clone(),
                    reason: "the array was removed since the plan was created; nothing was published".into(),
                })
            }
        }
        kept = keep_other_files(h, record)?;
        if h.durable() {
            storage.sync_prefix(staging)?;
        }
        turn.check()?;
        let exchanged = storage.capabilities().exchange && storage.exchange(staging, path)?;
        if !exchanged {
            // No atomic exchange on this medium: the old array goes aside first, so that for an instant the path is
            // missing (a reader fails loudly) rather than half-written.
            storage.rename(path, &aside)?;
            storage.rename(staging, path)?;
        }
    }
    // After the exchange the staging key holds the array as it was: nothing refers to it any more.
    if !record.is_staged_tree(storage, staging)? {
        storage.delete_tree(staging)?;
    }
    storage.delete_tree(&aside)?;
    Ok(ArrayCommit { path: path.clone(), mode: ArrayMode::Fill, kept_files: kept, consolidated: false, committed_ms: now_ms() })
}

/// Puts every file of the array at the plan's path that the plan's parts do not replace (except `zarr.json`) into the
/// staged tree: a hard link where the medium has them, else a copy. Returns how many files are kept.
fn keep_other_files(h: &Hierarchy, record: &ArrayPlanRecord) -> Result<u64> {
    let storage = h.storage();
    let (staging, path) = (&record.plan.staging, &record.plan.path);
    let level = h.staged_level(record)?;
    let replaced: HashSet<String> = level.files_of(&record.plan.parts)?.into_iter().collect();
    let links = storage.capabilities().hard_links;
    let mut kept = 0;
    let base = format!("{path}/");
    for (key, _) in storage.list_recursive(path)? {
        let Some(rel) = key.strip_prefix(&base) else { continue };
        if rel == layout::ROOT_ZARR_JSON || replaced.contains(rel) {
            continue;
        }
        let dest = join(staging, rel);
        if storage.exists(&dest)? {
            // An earlier attempt of this commit kept it already.
            kept += 1;
            continue;
        }
        if links {
            storage.hard_link(&key, &dest)?;
        } else {
            let bytes = storage.get(&key)?.ok_or_else(|| Error::io(storage.location().join(&key), std::io::ErrorKind::NotFound.into()))?;
            storage.put_private(&dest, &bytes)?;
        }
        kept += 1;
    }
    Ok(kept)
}
