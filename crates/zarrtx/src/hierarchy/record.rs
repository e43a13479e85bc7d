//! `plan.json` of an array plan: the plan as [`ArrayPlanInfo`] describes it, the record's format and kind, and the
//! identity of the staged directory (how a repeated commit recognizes its own array after a crash).

use super::ArrayPlanInfo;
use crate::error::{Error, Result};
use crate::plan::{canonical_id, plan_json_key, PLAN_FORMAT};
use crate::storage::json::get_json;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `kind` of an array plan's record (element plans of SpatialData stores have none).
pub(crate) const ARRAY_PLAN_KIND: &str = "array";

/// The identity of a plan's staged directory as plans written before identities were strings recorded it (device
/// and inode on POSIX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DirId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// The contents of an array plan's `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArrayPlanRecord {
    /// Layout format of this file.
    pub format: u32,
    /// Always [`ARRAY_PLAN_KIND`].
    pub kind: String,
    /// The plan.
    #[serde(flatten)]
    pub plan: ArrayPlanInfo,
    /// Identity of the staging directory ([`Storage::identity`]): it survives renames, so a commit can tell whether
    /// the array at the target path is the one this plan staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_identity: Option<String>,
    /// The same, as plans written by earlier versions recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_id: Option<DirId>,
}

impl ArrayPlanRecord {
    /// Whether the tree at `key` is this plan's staged directory (moved there by an earlier commit attempt).
    pub fn is_staged_tree(&self, storage: &dyn Storage, key: &str) -> Result<bool> {
        let Some(found) = storage.identity(key)? else { return Ok(false) };
        Ok(match (&self.staged_identity, self.staged_id) {
            (Some(id), _) => *id == found,
            (None, Some(old)) => format!("{}:{}", old.dev, old.ino) == found,
            (None, None) => false,
        })
    }

    /// Reads the array plan `plan_id`; `PlanNotFound` when there is none (or the plan is an element plan).
    pub fn load(storage: &dyn Storage, plan_id: &str) -> Result<ArrayPlanRecord> {
        let id = canonical_id(plan_id)?;
        let key = plan_json_key(&id);
        let not_found = |reason: &str| Error::PlanNotFound { plan_id: plan_id.to_string(), reason: reason.into() };
        let value: Value = get_json(storage, &key, "not valid JSON")?.ok_or_else(|| {
            not_found("no such plan in this hierarchy (never created here, or reclaimed by gc after being abandoned)")
        })?;
        if value.get("kind").and_then(Value::as_str) != Some(ARRAY_PLAN_KIND) {
            return Err(not_found("it is an element plan of a SpatialData store: use the store's plan commands"));
        }
        let record: ArrayPlanRecord = serde_json::from_value(value).map_err(|e| Error::CorruptMetadata {
            path: storage.location().join(&key),
            reason: format!("not a valid array plan: {e}"),
        })?;
        if record.format > PLAN_FORMAT {
            return Err(Error::CorruptMetadata {
                path: storage.location().join(&key),
                reason: format!("plan format {} is newer than this zarrtx ({PLAN_FORMAT}); upgrade", record.format),
            });
        }
        Ok(record)
    }
}
