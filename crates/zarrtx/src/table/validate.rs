//! Checks a table against anndata's and spatialdata's rules before anything is written (G9).

use super::columns::{dictionary, integers, invalid, kind_for_arrow, strings};
use super::uns::raster_len;
use super::{Annotation, Matrix, TableData, UnsValue};
use crate::error::Result;
use crate::name::ElementName;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Checks table `t` (to be stored as element `name`) against the rules anndata and spatialdata 0.8 apply when they
/// read it, so that a table zarrtx writes always loads:
/// - obs/var: the index column exists, is Utf8, has no nulls and unique values; column names are valid
///   spatialdata names (letters, digits, `_-.`, not starting with `__`), not `_index`, unique case-insensitively;
///   every column has a supported type (integer, float, boolean, Utf8, Dictionary of Utf8; repeated dictionary
///   values are merged into one category);
/// - X and layers are `n_obs × n_vars` (CSR: consistent `indptr`, `indices` within `n_vars`); obsm/varm arrays are
///   2-D with `n_obs`/`n_vars` rows; keys of layers/obsm/varm/uns are valid names; `uns` does not hold
///   `spatialdata_attrs` (it is written from `annotation`);
/// - annotation: `region` is a non-empty list of distinct valid element names; the `region_key` column is
///   categorical, without nulls, and the set of its values equals the set of `region`; the `instance_key` column
///   is an integer column other than int8/uint8 (which spatialdata refuses), without nulls, and its values are
///   unique within each region.
pub fn validate(name: &ElementName, t: &TableData) -> Result<()> {
    check_dataframe(name, "obs", &t.obs, &t.obs_index)?;
    check_dataframe(name, "var", &t.var, &t.var_index)?;
    let (n_obs, n_vars) = (t.n_obs(), t.n_vars());
    if let Some(x) = &t.x {
        check_matrix(name, "X", x, n_obs, n_vars)?;
    }
    check_keys(name, "layers", t.layers.keys())?;
    for (k, m) in &t.layers {
        check_matrix(name, &format!("layers/{k}"), m, n_obs, n_vars)?;
    }
    for (group, arrays, rows, what) in [("obsm", &t.obsm, n_obs, "n_obs"), ("varm", &t.varm, n_vars, "n_vars")] {
        check_keys(name, group, arrays.keys())?;
        for (k, a) in arrays {
            let shape = a.shape();
            if shape.len() != 2 || shape[0] != rows {
                return Err(invalid(
                    name,
                    format!("{group}['{k}'] has shape {shape:?}; it must be 2-D with {what} = {rows} rows"),
                ));
            }
        }
    }
    check_keys(name, "uns", t.uns.keys())?;
    if t.uns.contains_key("spatialdata_attrs") {
        return Err(invalid(
            name,
            "uns['spatialdata_attrs'] is reserved: give the annotation as TableData::annotation instead",
        ));
    }
    check_uns(name, "uns", &t.uns)?;
    if let Some(a) = &t.annotation {
        check_annotation(name, t, a)?;
    }
    Ok(())
}

/// Checks `key` the way spatialdata's `check_valid_name` does (plus `zarr.json`, which would clash with metadata).
pub(crate) fn check_key(name: &ElementName, what: &str, key: &str) -> Result<()> {
    if let Err(crate::Error::InvalidName { reason, .. }) = ElementName::new(key) {
        return Err(invalid(name, format!("{what} '{key}' is not a valid key: {reason}")));
    }
    if key.eq_ignore_ascii_case("zarr.json") {
        return Err(invalid(name, format!("{what} '{key}' is not a valid key: it clashes with Zarr metadata files")));
    }
    Ok(())
}

fn check_keys<'k>(name: &ElementName, group: &str, keys: impl Iterator<Item = &'k String>) -> Result<()> {
    let mut seen = HashMap::new();
    for k in keys {
        check_key(name, &format!("{group} key"), k)?;
        if let Some(prev) = seen.insert(k.to_ascii_lowercase(), k) {
            return Err(invalid(
                name,
                format!("{group} keys '{prev}' and '{k}' are equal ignoring case; spatialdata requires distinct keys"),
            ));
        }
    }
    Ok(())
}

fn check_uns(name: &ElementName, path: &str, d: &BTreeMap<String, UnsValue>) -> Result<()> {
    for (k, v) in d {
        if path != "uns" {
            check_key(name, &format!("{path} key"), k)?;
        }
        match v {
            UnsValue::Dict(inner) => {
                check_keys(name, &format!("{path}/{k}"), inner.keys())?;
                check_uns(name, &format!("{path}/{k}"), inner)?;
            }
            UnsValue::Array(a) if a.shape().iter().product::<u64>() != raster_len(a) as u64 => {
                return Err(invalid(name, format!("{path}/{k}: inconsistent array")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Example of a duplicated value, if any.
fn first_duplicate<'a>(values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = HashSet::new();
    values.into_iter().find(|v| !seen.insert(*v))
}

fn check_dataframe(name: &ElementName, which: &str, batch: &RecordBatch, index: &str) -> Result<()> {
    let schema = batch.schema();
    let Some((pos, _)) = schema.column_with_name(index) else {
        return Err(invalid(
            name,
            format!("{which} has no column '{index}' to use as its index: add it or set {which}_index to an existing Utf8 column"),
        ));
    };
    let col = batch.column(pos);
    let Some((vals, nulls)) = strings(col.as_ref()) else {
        return Err(invalid(name, format!("{which} index '{index}' has type {}; it must be Utf8", col.data_type())));
    };
    if nulls.iter().any(|&m| m) {
        return Err(invalid(name, format!("{which} index '{index}' holds nulls; every row needs an index value")));
    }
    if let Some(d) = first_duplicate(vals.iter().map(String::as_str)) {
        return Err(invalid(
            name,
            format!("{which} index '{index}' is not unique: '{d}' appears more than once; make the index values unique"),
        ));
    }
    if index != "_index" {
        check_key(name, &format!("{which} index name"), index)?;
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        let c = field.name().as_str();
        if let Some(prev) = seen.insert(c.to_ascii_lowercase(), c) {
            return Err(invalid(
                name,
                format!("{which} columns '{prev}' and '{c}' are equal ignoring case; spatialdata requires distinct names"),
            ));
        }
        if c == index {
            continue;
        }
        if c == "_index" {
            return Err(invalid(name, format!("{which} column '_index' is reserved by anndata: rename it")));
        }
        check_key(name, &format!("{which} column"), c)?;
        kind_for_arrow(name, c, col.as_ref(), false)?;
        if let Some((keys, cats)) = dictionary(col.as_ref()) {
            if keys.iter().any(|&k| k >= cats.len() as i64) {
                return Err(invalid(name, format!("{which} column '{c}': a dictionary key is out of range")));
            }
        }
    }
    Ok(())
}

/// Checks a matrix of `n_obs × n_vars`.
pub(crate) fn check_matrix(name: &ElementName, what: &str, m: &Matrix, n_obs: u64, n_vars: u64) -> Result<()> {
    let bad = |reason: String| Err(invalid(name, format!("{what}: {reason}")));
    match m {
        Matrix::Dense(a) => {
            if a.shape() != [n_obs, n_vars] {
                return bad(format!("shape {:?} is not (n_obs, n_vars) = ({n_obs}, {n_vars})", a.shape()));
            }
        }
        Matrix::Csr { shape, data, indices, indptr } => {
            if *shape != [n_obs, n_vars] {
                return bad(format!("shape {shape:?} is not (n_obs, n_vars) = ({n_obs}, {n_vars})"));
            }
            if data.shape().len() != 1 {
                return bad(format!("CSR data must be 1-D, got shape {:?}", data.shape()));
            }
            let nnz = raster_len(data) as i64;
            if indices.len() as i64 != nnz {
                return bad(format!("CSR has {nnz} values but {} indices", indices.len()));
            }
            if indptr.len() as u64 != n_obs + 1 {
                return bad(format!("CSR indptr has {} entries; it needs n_obs + 1 = {}", indptr.len(), n_obs + 1));
            }
            if indptr.first() != Some(&0) || indptr.last() != Some(&nnz) || indptr.windows(2).any(|w| w[0] > w[1]) {
                return bad(format!("CSR indptr must start at 0, never decrease and end at the number of values {nnz}"));
            }
            if let Some(i) = indices.iter().find(|&&i| i < 0 || i as u64 >= n_vars) {
                return bad(format!("CSR column index {i} is outside [0, {n_vars})"));
            }
        }
    }
    Ok(())
}

/// The obs column named `key`, or an error saying which role it plays.
fn obs_column<'b>(name: &ElementName, t: &'b TableData, key: &str, role: &str) -> Result<&'b dyn Array> {
    t.obs
        .column_by_name(key)
        .map(|c| c.as_ref())
        .ok_or_else(|| invalid(name, format!("the {role} column '{key}' is not in obs: add it or fix the annotation")))
}

/// Checks the region and instance columns of `t` (or of a batch of appended rows, whose `present` regions are then
/// returned in order of first appearance). Instance ids must be unique within each region.
pub(crate) fn check_region_instances(
    name: &ElementName,
    t: &TableData,
    region_key: &str,
    instance_key: &str,
) -> Result<Vec<String>> {
    if region_key == instance_key {
        return Err(invalid(name, format!("region_key and instance_key are both '{region_key}'; use two columns")));
    }
    let region_col = obs_column(name, t, region_key, "region_key")?;
    let Some((keys, cats)) = dictionary(region_col) else {
        return Err(invalid(
            name,
            format!(
                "the region_key column '{region_key}' has type {}; spatialdata requires it to be categorical: \
                 store it as an Arrow Dictionary(Int16, Utf8) array",
                region_col.data_type()
            ),
        ));
    };
    if keys.iter().any(|&k| k < 0) {
        return Err(invalid(name, format!("the region_key column '{region_key}' holds nulls; every row needs a region")));
    }
    let instance_col = obs_column(name, t, instance_key, "instance_key")?;
    if matches!(instance_col.data_type(), DataType::Int8 | DataType::UInt8) {
        return Err(invalid(
            name,
            format!(
                "the instance_key column '{instance_key}' is {}; spatialdata refuses int8/uint8 instance ids: use \
                 int32 or int64",
                instance_col.data_type()
            ),
        ));
    }
    let Some(ids) = integers(instance_col) else {
        return Err(invalid(
            name,
            format!(
                "the instance_key column '{instance_key}' has type {}; zarrtx requires integer instance ids \
                 (int16/int32/int64 or unsigned)",
                instance_col.data_type()
            ),
        ));
    };
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(cats.len());
    for (i, c) in cats.iter().enumerate() {
        first.entry(c.as_str()).or_insert(i);
    }
    let mut present: Vec<String> = Vec::new();
    let mut seen_region = vec![false; cats.len()];
    let mut seen: HashSet<(i64, i128)> = HashSet::with_capacity(ids.len());
    for (row, (&k, id)) in keys.iter().zip(&ids).enumerate() {
        let ku = k as usize;
        let Some(region) = cats.get(ku) else {
            return Err(invalid(name, format!("the region_key column '{region_key}': dictionary key {k} is out of range")));
        };
        if !seen_region[ku] {
            seen_region[ku] = true;
            if !present.contains(region) {
                present.push(region.clone());
            }
        }
        let Some(id) = id else {
            return Err(invalid(
                name,
                format!("the instance_key column '{instance_key}' holds a null at row {row}; every row needs an instance id"),
            ));
        };
        // Dictionary values are unique (checked elsewhere) or compared by key: map to the first equal category.
        let canon = first.get(region.as_str()).copied().unwrap_or(ku) as i64;
        if !seen.insert((canon, *id)) {
            return Err(invalid(
                name,
                format!(
                    "instance id {id} appears more than once for region '{region}' (again at row {row}); instance \
                     ids must be unique within each region"
                ),
            ));
        }
    }
    Ok(present)
}

fn check_annotation(name: &ElementName, t: &TableData, a: &Annotation) -> Result<()> {
    if a.region.is_empty() {
        return Err(invalid(name, "the annotation lists no region: give the annotated element names"));
    }
    for r in &a.region {
        if let Err(crate::Error::InvalidName { reason, .. }) = ElementName::new(r) {
            return Err(invalid(name, format!("annotated region '{r}' is not a valid element name: {reason}")));
        }
    }
    if let Some(d) = first_duplicate(a.region.iter().map(String::as_str)) {
        return Err(invalid(name, format!("the annotation lists region '{d}' twice")));
    }
    let present = check_region_instances(name, t, &a.region_key, &a.instance_key)?;
    let want: HashSet<&str> = a.region.iter().map(String::as_str).collect();
    let have: HashSet<&str> = present.iter().map(String::as_str).collect();
    if want != have {
        let mut missing: Vec<&str> = want.difference(&have).copied().collect();
        let mut extra: Vec<&str> = have.difference(&want).copied().collect();
        missing.sort_unstable();
        extra.sort_unstable();
        return Err(invalid(
            name,
            format!(
                "the regions in column '{}' do not match the annotation's region list (spatialdata: \"Regions in \
                 the AnnData object and `region` do not match\"): listed but absent {missing:?}, present but not \
                 listed {extra:?}",
                a.region_key
            ),
        ));
    }
    Ok(())
}
