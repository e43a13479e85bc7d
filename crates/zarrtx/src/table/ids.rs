//! The instance-id index of tables: per region, sorted runs of the instance ids committed so far, so that an
//! append checks "instance ids unique within a region" by binary search in the touched regions' runs instead of
//! reading the table. Runs are immutable files `.zarrtx/tableidx/<uuid>/<region as hex>` of little-endian `i64`;
//! a commit lists the runs it wrote, so runs of writers that crashed before committing are never consulted.

use crate::error::{Error, Result};
use crate::layout;
use crate::storage::Storage;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type, Int64Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType as ArrowType;
use std::collections::BTreeMap;

/// Instance ids of some rows, grouped by region.
pub type IdsByRegion = BTreeMap<String, Vec<i64>>;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn invalid(table: &str, reason: String) -> Error {
    Error::InvalidElement { name: table.to_string(), reason }
}

/// The (region, instance id) of every row of `obs`, grouped by region.
pub fn ids_by_region(table: &str, obs: &RecordBatch, region_key: &str, instance_key: &str) -> Result<IdsByRegion> {
    let region = obs.column_by_name(region_key).ok_or_else(|| {
        invalid(table, format!("obs has no region column '{region_key}'; add it as a categorical column"))
    })?;
    let dict = region.as_any_dictionary_opt().ok_or_else(|| {
        invalid(table, format!("obs column '{region_key}' must be categorical (an Arrow dictionary of strings)"))
    })?;
    let values = dict.values().as_string_opt::<i32>().ok_or_else(|| {
        invalid(table, format!("the categories of obs column '{region_key}' must be strings"))
    })?;
    let keys = dict.normalized_keys();
    let ids = obs.column_by_name(instance_key).ok_or_else(|| {
        invalid(table, format!("obs has no instance column '{instance_key}'"))
    })?;
    let id_at: Box<dyn Fn(usize) -> i64> = match ids.data_type() {
        ArrowType::Int16 => { let a = ids.as_primitive::<Int16Type>().clone(); Box::new(move |i| a.value(i) as i64) }
        ArrowType::Int32 => { let a = ids.as_primitive::<Int32Type>().clone(); Box::new(move |i| a.value(i) as i64) }
        ArrowType::Int64 => { let a = ids.as_primitive::<Int64Type>().clone(); Box::new(move |i| a.value(i)) }
        ArrowType::UInt16 => { let a = ids.as_primitive::<UInt16Type>().clone(); Box::new(move |i| a.value(i) as i64) }
        ArrowType::UInt32 => { let a = ids.as_primitive::<UInt32Type>().clone(); Box::new(move |i| a.value(i) as i64) }
        ArrowType::UInt64 => { let a = ids.as_primitive::<UInt64Type>().clone(); Box::new(move |i| a.value(i) as i64) }
        other => {
            return Err(invalid(
                table,
                format!("instance column '{instance_key}' has type {other}; use int16, int32 or int64 (spatialdata refuses int8/uint8 and floats)"),
            ))
        }
    };
    if ids.null_count() > 0 || region.null_count() > 0 {
        return Err(invalid(table, format!("'{instance_key}' and '{region_key}' must not contain nulls")));
    }
    let mut out = IdsByRegion::new();
    for (row, &k) in keys.iter().enumerate() {
        out.entry(values.value(k).to_string()).or_default().push(id_at(row));
    }
    Ok(out)
}

/// Refuses ids that repeat within the batch or collide with committed ids of the same region.
pub fn check_unique(table: &str, storage: &dyn Storage, runs: &[String], new: &IdsByRegion) -> Result<()> {
    for (region, ids) in new {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(
                table,
                format!("instance id {} appears twice for region '{region}' in the new rows; ids must be unique within a region", w[0]),
            ));
        }
        let suffix = format!("/{}", hex(region));
        for run in runs.iter().filter(|r| r.ends_with(&suffix)) {
            let bytes = storage.get(run)?.ok_or_else(|| Error::CorruptMetadata {
                path: storage.location().join(run),
                reason: "a committed instance-id index run is missing; run `zarrtx verify`".into(),
            })?;
            let committed: Vec<i64> = bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            if let Some(dup) = sorted.iter().find(|id| committed.binary_search(id).is_ok()) {
                return Err(invalid(
                    table,
                    format!("instance id {dup} already exists for region '{region}'; ids must be unique within a region"),
                ));
            }
        }
    }
    Ok(())
}

/// Writes one sorted run per region (before the commit that lists them) and returns their keys.
pub fn write_runs(storage: &dyn Storage, ids: &IdsByRegion) -> Result<Vec<String>> {
    let dir = format!("{}/{}", layout::TABLE_INDEX_DIR, uuid::Uuid::new_v4());
    let mut keys = Vec::new();
    for (region, values) in ids {
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let bytes: Vec<u8> = sorted.iter().flat_map(|v| v.to_le_bytes()).collect();
        let key = format!("{dir}/{}", hex(region));
        storage.put_relaxed(&key, &bytes)?;
        keys.push(key);
    }
    storage.sync(&keys)?;
    Ok(keys)
}
