//! Creating an array plan: check the path and the array, lay out the parts, write the array's `zarr.json` into
//! the plan's staging directory, then record `plan.json` (create-if-absent, last).

use super::array_spec::level_of;
use super::nodes::{a_node, missing_ancestors, node_path, node_type, read_doc};
use super::record::{ArrayPlanRecord, ARRAY_PLAN_KIND};
use super::{ArrayMode, ArrayPlanInfo, ArrayTarget, Hierarchy};
use crate::error::{Error, Result};
use crate::layout;
use crate::log::entry::now_ms;
use crate::log::WriterInfo;
use crate::name::ElementName;
use crate::plan::{layout_parts, parts_dir_key, plan_json_key, staged_key, PartLayout, PLAN_FORMAT};
use crate::storage::json::json_bytes;
use crate::storage::{DataHandle, PutOutcome};

/// [`Hierarchy::create_plan`].
pub(crate) fn create(h: &Hierarchy, path: &str, target: ArrayTarget, parts: PartLayout) -> Result<ArrayPlanInfo> {
    h.ensure_writable()?;
    let path = node_path(path)?;
    let storage = h.storage();
    let existing = read_doc(storage, &path)?;
    let (mode, metadata) = match target {
        ArrayTarget::Create(spec) => {
            spec.check().map_err(|reason| Error::InvalidPlan { name: path.clone(), reason })?;
            // Fail fast (both are checked again at commit): nobody should write gigabytes for a taken path.
            missing_ancestors(storage, h.root(), &path)?;
            if let Some(doc) = &existing {
                return Err(Error::NodeExists {
                    hierarchy: h.root().to_path_buf(),
                    path,
                    reason: format!(
                        "{} is there: choose another path, or write into an existing array with ArrayTarget::Fill",
                        a_node(doc)
                    ),
                });
            }
            if storage.exists(&path)? {
                return Err(Error::NodeExists {
                    hierarchy: h.root().to_path_buf(),
                    path,
                    reason: "a directory without zarr.json is there: remove it or choose another path".into(),
                });
            }
            (ArrayMode::Create, spec.document())
        }
        ArrayTarget::Fill => match existing {
            Some(doc) if node_type(&doc) == "array" => (ArrayMode::Fill, doc),
            Some(doc) => {
                return Err(Error::InvalidPlan {
                    name: path,
                    reason: format!("it is {}, not an array: fill an array", a_node(&doc)),
                })
            }
            None => {
                return Err(Error::InvalidPlan {
                    name: path,
                    reason: "no array is there to fill: create it with ArrayTarget::Create".into(),
                })
            }
        },
    };
    let (level, dtype) = level_of(&path, &metadata)?;
    let unit = level.grid_chunk().to_vec();
    let dims: Vec<String> = match metadata.get("dimension_names").and_then(|d| d.as_array()) {
        Some(names) if names.len() == level.shape.len() => {
            names.iter().enumerate().map(|(i, n)| n.as_str().map_or_else(|| format!("dim_{i}"), str::to_string)).collect()
        }
        _ => (0..level.shape.len()).map(|i| format!("dim_{i}")).collect(),
    };
    // Axis names only label messages here: no name is "c", so a count splits axis 0 first.
    let dims: Vec<String> = dims.into_iter().map(|d| if d == "c" { "c_".into() } else { d }).collect();
    let parts = layout_parts(&ElementName::label(&path), &dims, &level.shape, &unit, parts)?;
    let plan_id = uuid::Uuid::now_v7().hyphenated().to_string();
    let staging = staged_key(&plan_id);
    let base = layout::plan_key(&plan_id);
    let result = (|| -> Result<(PutOutcome, ArrayPlanRecord)> {
        storage.create_dir(&staging)?;
        storage.create_dir(&parts_dir_key(&plan_id))?;
        DataHandle::new(h.storage.clone(), staging.clone()).put_json(layout::ROOT_ZARR_JSON, &metadata)?;
        // How a commit interrupted after moving the staged tree recognizes it at the target later.
        let staged_identity = storage.identity(&staging)?;
        let plan = ArrayPlanInfo {
            plan_id: plan_id.clone(),
            path: path.clone(),
            mode,
            metadata: metadata.clone(),
            shape: level.shape.clone(),
            data_type: dtype,
            write_unit: unit.clone(),
            parts: parts.clone(),
            staging: staging.clone(),
            created_ms: now_ms(),
            writer: WriterInfo::current(),
        };
        let record =
            ArrayPlanRecord { format: PLAN_FORMAT, kind: ARRAY_PLAN_KIND.into(), plan, staged_identity, staged_id: None };
        // zarrs must accept the array (codecs, fill value) before any worker starts.
        h.staged_level(&record)?.check().map_err(|e| match e {
            Error::Zarr { reason, .. } => Error::InvalidPlan {
                name: path.clone(),
                reason: format!("zarrs cannot write this array: {reason}"),
            },
            e => e,
        })?;
        let key = plan_json_key(&plan_id);
        Ok((storage.put_if_absent(&key, &json_bytes(storage, &key, &record)?)?, record))
    })();
    match result {
        Ok((PutOutcome::Created, record)) => Ok(record.plan),
        Ok((PutOutcome::AlreadyExists, _)) => Err(Error::Conflict {
            name: path,
            reason: format!("a plan with the fresh id {plan_id} already exists; create the plan again"),
        }),
        Err(e) => {
            let _ = storage.delete_tree(&base);
            Err(e)
        }
    }
}
