//! Creating a write plan: validate, lay out the parts, write level 0's array metadata into the plan's staging
//! directory, then record `plan.json` (create-if-absent, last, so a plan exists only once it is complete).

use super::partition::layout_parts;
use super::record::{PlanRecord, SpecRecord};
use super::{parts_dir_key, plan_json_key, staged_key, PartLayout, PlanInfo, PLAN_FORMAT};
use crate::error::{Error, Result};
use crate::layout;
use crate::log::entry::now_ms;
use crate::log::WriterInfo;
use crate::name::{ElementName, ElementType};
use crate::raster::planned::{write_unit, StagedRaster};
use crate::raster::{validate, DataType, Pyramid, RasterKind, RasterSpec};
use crate::storage::json::json_bytes;
use crate::storage::{DataHandle, PutOutcome};
use crate::store::Store;

/// [`Store::create_plan`].
pub(crate) fn create(
    store: &Store,
    name: &str,
    spec: &RasterSpec,
    shape: &[u64],
    dtype: DataType,
    parts: PartLayout,
    overwrite: bool,
) -> Result<PlanInfo> {
    store.ensure_writable()?;
    let name = ElementName::new(name)?;
    validate(&name, spec, shape, dtype)?;
    if let Pyramid::Given(_) = spec.pyramid {
        return Err(Error::InvalidPlan {
            name: name.to_string(),
            reason: "a write plan computes its pyramid from level 0 when it is committed, so it cannot take given \
                     levels: use a computed pyramid (Pyramid::Computed) or a single level"
                .into(),
        });
    }
    // Fail fast: nobody should write gigabytes for a name that is taken (re-checked at commit).
    if !overwrite {
        store.check_name_free(&name)?;
    }
    let unit = write_unit(spec, shape);
    let parts = layout_parts(&name, &spec.dims, shape, &unit, parts)?;
    let element_type = match spec.kind {
        RasterKind::Image => ElementType::Images,
        RasterKind::Labels => ElementType::Labels,
    };
    let plan_id = uuid::Uuid::now_v7().hyphenated().to_string();
    let storage = store.storage();
    let record = PlanRecord {
        format: PLAN_FORMAT,
        plan_id: plan_id.clone(),
        txn: plan_id.clone(),
        name: name.clone(),
        element_type,
        spec: SpecRecord::from_spec(spec),
        shape: shape.to_vec(),
        data_type: dtype.zarr_name().to_string(),
        write_unit: unit,
        parts,
        staging: staged_key(&plan_id),
        created_ms: now_ms(),
        created_version: store.version()?,
        writer: WriterInfo::current(),
        overwrite,
    };
    let base = layout::plan_key(&plan_id);
    let result = (|| -> Result<PutOutcome> {
        storage.create_dir(&record.staging)?;
        storage.create_dir(&parts_dir_key(&plan_id))?;
        let dir = DataHandle::new(store.inner.storage.clone(), record.staging.clone());
        StagedRaster { dir: &dir, name: &name, spec, shape, dtype }.init()?;
        let key = plan_json_key(&plan_id);
        storage.put_if_absent(&key, &json_bytes(storage, &key, &record)?)
    })();
    match result {
        Ok(PutOutcome::Created) => record.info(),
        // A fresh UUIDv7 never collides; if it did, the directory is the other plan's: leave it alone.
        Ok(PutOutcome::AlreadyExists) => Err(Error::Conflict {
            name: name.to_string(),
            reason: format!("a plan with the fresh id {plan_id} already exists; create the plan again"),
        }),
        Err(e) => {
            let _ = storage.delete_tree(&base);
            Err(e)
        }
    }
}
