//! `plan.json` of an array plan: the array's path, what the plan does to it, the array's `zarr.json`, and the
//! identity of the staged directory (how a repeated commit recognizes its own array after a crash).

use super::{ArrayMode, ArrayPlanInfo};
use crate::error::{Error, Result};
use crate::log::WriterInfo;
use crate::plan::{canonical_id, plan_json_key, PLAN_FORMAT};
use crate::raster::DataType;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::Range;
use std::path::Path;

/// The `kind` of an array plan's record (element plans of SpatialData stores have none).
pub(crate) const ARRAY_PLAN_KIND: &str = "array";

/// A directory's identity on its filesystem: it survives renames, so the commit can tell whether the array at the
/// target path is the one this plan staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DirId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl DirId {
    /// The identity of `path`, or `None` when nothing is there.
    pub fn of(path: &Path) -> Result<Option<DirId>> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(DirId { dev: m.dev(), ino: m.ino() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

/// The contents of an array plan's `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArrayPlanRecord {
    /// Layout format of this file.
    pub format: u32,
    /// Always [`ARRAY_PLAN_KIND`].
    pub kind: String,
    /// The plan's id.
    pub plan_id: String,
    /// The array's path inside the hierarchy (`a/b/c`).
    pub path: String,
    /// Create a new array, or fill an existing one.
    pub mode: ArrayMode,
    /// The array's `zarr.json` (for `fill`: as found when the plan was created; the commit refuses if it changed).
    pub metadata: Value,
    /// Shape.
    pub shape: Vec<u64>,
    /// Zarr data type name.
    pub data_type: String,
    /// The write unit parts are aligned to.
    pub write_unit: Vec<u64>,
    /// The parts.
    pub parts: Vec<Vec<Range<u64>>>,
    /// Key of the staging directory (the array the parts write into).
    pub staging: String,
    /// Identity of the staging directory.
    pub staged_id: DirId,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Who created it.
    pub writer: WriterInfo,
}

impl ArrayPlanRecord {
    /// Reads the array plan `plan_id`; `PlanNotFound` when there is none (or the plan is an element plan).
    pub fn load(storage: &dyn Storage, plan_id: &str) -> Result<ArrayPlanRecord> {
        let id = canonical_id(plan_id)?;
        let key = plan_json_key(&id);
        let not_found = |reason: &str| Error::PlanNotFound { plan_id: plan_id.to_string(), reason: reason.into() };
        let bytes = storage.get(&key)?.ok_or_else(|| {
            not_found("no such plan in this hierarchy (never created here, or reclaimed by gc after being abandoned)")
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
            path: storage.location().join(&key),
            reason: format!("not valid JSON: {e}"),
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

    /// The data type.
    pub fn dtype(&self) -> Result<DataType> {
        DataType::from_zarr_name(&self.data_type).ok_or_else(|| Error::CorruptMetadata {
            path: plan_json_key(&self.plan_id).into(),
            reason: format!("unknown data type '{}'", self.data_type),
        })
    }

    /// The public description.
    pub fn info(&self) -> Result<ArrayPlanInfo> {
        Ok(ArrayPlanInfo {
            plan_id: self.plan_id.clone(),
            path: self.path.clone(),
            mode: self.mode,
            metadata: self.metadata.clone(),
            shape: self.shape.clone(),
            data_type: self.dtype()?,
            write_unit: self.write_unit.clone(),
            parts: self.parts.clone(),
            staging: self.staging.clone(),
            created_ms: self.created_ms,
            writer: self.writer.clone(),
        })
    }
}
