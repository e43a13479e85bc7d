//! Committing an array plan: every part present, then the array published in one step — a new array renamed into
//! place (then the root's consolidated metadata updated), a filled array exchanged with a copy made of the parts'
//! chunks and hard links to its other chunks. A plan is committed at most once; committing again answers with
//! the first commit, and a commit interrupted by a crash is finished by the next one (the staged directory's
//! identity tells whether it was moved already).

use super::nodes::{a_node, add_to_consolidated, create_groups, missing_ancestors, read_doc};
use super::record::{ArrayPlanRecord, DirId};
use super::{ArrayCommit, ArrayMode, Hierarchy, HIERARCHY_LOCK};
use crate::error::{Error, Result};
use crate::layout;
use crate::log::entry::now_ms;
use crate::plan::claim;
use crate::plan::{canonical_id, commit_base, committed_key, part_progress, plan_json_key, reclaimed_key};
use crate::storage::json::{get_json, json_bytes};
use crate::storage::{join, MoveOutcome, Storage};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The commit of plan `id`, once committed.
pub(super) fn committed(storage: &dyn Storage, id: &str) -> Result<Option<ArrayCommit>> {
    get_json(storage, &committed_key(id), "not a valid commit record")
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
    let _held = claim::claim_waiting(h.storage_arc(), &commit_base(&id), h.settings.lease_timeout(), gone)?;
    if let Some(c) = committed(storage, &id)? {
        return Ok(c);
    }
    let (_, _, missing) = part_progress(storage, &id, record.plan.parts.len())?;
    if !missing.is_empty() {
        return Err(Error::PlanIncomplete { plan_id: id, name: record.plan.path, missing, parts: record.plan.parts.len() });
    }
    // Array commits of one hierarchy queue here: each sees the nodes and the consolidated metadata the previous
    // one left.
    let _hierarchy_lock = storage.locks().lock_exclusive(HIERARCHY_LOCK).ok();
    let staged = local(h, &record.plan.staging)?;
    let target = local(h, &record.plan.path)?;
    let done = match record.plan.mode {
        ArrayMode::Create => publish_new(h, &record, &staged, &target)?,
        ArrayMode::Fill => publish_filled(h, &record, &staged, &target)?,
    };
    let key = committed_key(&id);
    storage.put_if_absent(&key, &json_bytes(storage, &key, &done)?)?;
    Ok(done)
}

fn local(h: &Hierarchy, key: &str) -> Result<PathBuf> {
    h.storage().local_path(key).ok_or_else(|| Error::UnsafeMedium {
        path: h.root().to_path_buf(),
        reason: "this storage backend cannot publish arrays".into(),
    })
}

/// Whether the directory at `path` is the plan's staged directory (moved there by an earlier commit attempt).
fn is_ours(record: &ArrayPlanRecord, path: &Path) -> Result<bool> {
    Ok(DirId::of(path)? == Some(record.staged_id))
}

fn publish_new(h: &Hierarchy, record: &ArrayPlanRecord, staged: &Path, target: &Path) -> Result<ArrayCommit> {
    let storage = h.storage();
    let exists = |reason: String| Error::NodeExists { hierarchy: h.root().to_path_buf(), path: record.plan.path.clone(), reason };
    let groups = missing_ancestors(storage, h.root(), &record.plan.path)?;
    if !is_ours(record, target)? {
        if let Some(doc) = read_doc(storage, &record.plan.path)? {
            return Err(exists(format!(
                "{} was created there after the plan; nothing was published (the plan's data stays until gc): \
                 remove that node and commit again, or plan another path",
                a_node(&doc)
            )));
        }
        if h.durable() {
            storage.sync(&[join(&record.plan.staging, layout::ROOT_ZARR_JSON)])?;
        }
        create_groups(storage, &groups)?;
        match storage.rename(&record.plan.staging, &record.plan.path)? {
            MoveOutcome::Moved => {}
            MoveOutcome::TargetExists => {
                return Err(exists("a directory without zarr.json is there: remove it, then commit again".into()))
            }
            MoveOutcome::SourceMissing => {
                return Err(Error::CorruptMetadata {
                    path: staged.to_path_buf(),
                    reason: format!("the staged array of write plan {} is gone; create a new plan", record.plan.plan_id),
                })
            }
        }
    }
    let consolidated = add_to_consolidated(storage, &record.plan.path, &record.plan.metadata)?;
    Ok(ArrayCommit {
        path: record.plan.path.clone(),
        mode: ArrayMode::Create,
        kept_files: 0,
        consolidated,
        committed_ms: now_ms(),
    })
}

fn publish_filled(h: &Hierarchy, record: &ArrayPlanRecord, staged: &Path, target: &Path) -> Result<ArrayCommit> {
    let storage = h.storage();
    let mut kept = 0;
    let aside = format!("{}-old", record.plan.staging);
    if !target.exists() && storage.exists(&aside)? {
        // A commit without exchange died between its two renames: finish the second.
        storage.rename(&record.plan.staging, &record.plan.path)?;
    }
    if !is_ours(record, target)? {
        match read_doc(storage, &record.plan.path)? {
            Some(doc) if doc == record.plan.metadata => {}
            Some(_) => {
                return Err(Error::Conflict {
                    name: record.plan.path.clone(),
                    reason: "the array's zarr.json changed since the plan was created (shape, chunks, codecs or \
                             attributes); nothing was published: create a new plan for the array as it is now"
                        .into(),
                })
            }
            None => {
                return Err(Error::Conflict {
                    name: record.plan.path.clone(),
                    reason: "the array was removed since the plan was created; nothing was published".into(),
                })
            }
        }
        kept = link_kept_files(h, record, staged, target)?;
        if h.durable() {
            storage.sync_prefix(&record.plan.staging)?;
        }
        if !super::nodes::exchange(staged, target)? {
            // No atomic exchange on this filesystem: the old array goes aside first, so that for an instant the
            // path is missing (a reader fails loudly) rather than half-written.
            storage.rename(&record.plan.path, &aside)?;
            storage.rename(&record.plan.staging, &record.plan.path)?;
        }
    }
    // After the exchange the staging key holds the array as it was: nothing refers to it any more.
    if !is_ours(record, staged)? {
        storage.delete_tree(&record.plan.staging)?;
    }
    storage.delete_tree(&aside)?;
    Ok(ArrayCommit {
        path: record.plan.path.clone(),
        mode: ArrayMode::Fill,
        kept_files: kept,
        consolidated: false,
        committed_ms: now_ms(),
    })
}

/// Hard-links every file of the array at `target` that the plan's parts do not replace into `staged` (where the
/// parts' chunks are), except `zarr.json`. Returns how many files are kept.
fn link_kept_files(h: &Hierarchy, record: &ArrayPlanRecord, staged: &Path, target: &Path) -> Result<u64> {
    let level = h.staged_level(record)?;
    let replaced: HashSet<PathBuf> = level.files_of(&record.plan.parts)?.into_iter().map(PathBuf::from).collect();
    let mut kept = 0;
    let mut stack = vec![target.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(target) else { continue };
            if rel == Path::new(layout::ROOT_ZARR_JSON) || replaced.contains(rel) {
                continue;
            }
            let dest = staged.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            match std::fs::hard_link(&path, &dest) {
                Ok(()) => kept += 1,
                // An earlier attempt of this commit linked it already.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => kept += 1,
                Err(e) => return Err(Error::io(&dest, e)),
            }
        }
    }
    Ok(kept)
}
