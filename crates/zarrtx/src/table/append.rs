//! Appending rows to a committed table: checking a batch against the table's schema, the table's metadata after
//! the append, writing every file the append changes into a staging area (never into the live table), and moving
//! the staged files over the live table's once the append is committed ([`install_staged_files`]).
//!
//! Cost is proportional to the rows appended: the only existing data read are the categories of categorical
//! columns, the var index, the region list and the one partially filled last chunk of each row-indexed array;
//! installation is one atomic move per file written.

use super::chunks::{encode_chunk, meta_chunk, meta_dtype, meta_shape, write_rows, Io, Vals};
use super::columns::{corrupt, encode_column, invalid, kind_from_tree, row_arrays, strings, ColData, ColKind};
use super::info::dataframe_rows;
use super::read::{dataframe_attrs, index_kind, leaf, read_column};
use super::uns::{children, decode_annotation, raster_vals, read_all, region_meta};
use super::validate::{check_key, check_matrix, check_region_instances};
use super::write::index_vals;
use super::{AppendPlan, Matrix, TableData};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::storage::{join, DataHandle, Storage};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// One row range to write: (array path, first row, values).
type Write = (String, u64, Vals);

/// Checks that `rows` can be appended to the table stored at `live` whose committed metadata is `tree`, and
/// computes what the append changes. Nothing is written; from `live` it reads the categories of categorical
/// columns, the var index and the region list.
///
/// `rows` must have the table's schema:
/// - the same obs columns (matched by name, any order; `rows.obs_index` names the batch's index column) with the
///   same stored types: a missing, extra or retyped column is an error naming it; a column stored without a mask
///   cannot receive nulls;
/// - the same var index, value for value (var columns, `varm` and `uns` of the batch are ignored): appending rows
///   with other variables would need an outer join, a separate explicit operation;
/// - X of the same kind (dense/CSR) and dtype, the same layers, the same obsm keys with the same widths and dtypes.
///
/// Annotation: the table's `region_key` and `instance_key` apply (a batch annotation naming other keys is an
/// error). The batch's region column must be categorical without nulls and its instance ids integers (not
/// int8/uint8), without nulls, unique within each region *within the batch*. Regions the batch introduces are
/// appended to the table's region list and to the region column's categories after the existing ones (existing
/// rows are never recoded; the batch's codes are remapped to the merged order). If a categorical column's codes
/// type cannot number the merged categories, the append is refused.
///
/// Not checked (each would cost a pass over the whole table): uniqueness of the batch's obs index values against
/// the existing index, and uniqueness of instance ids against existing rows of the same region; the caller keeps
/// a side index for the latter.
///
/// Tables with `obsp` matrices or a `raw` table cannot be appended to.
pub fn plan_append(live: &DataHandle, name: &ElementName, tree: &NodeTree, rows: &TableData) -> Result<AppendPlan> {
    Ok(prepare(&Io::new(live, name), tree, rows)?.0)
}

/// Writes every file the append planned by [`plan_append`] changes into `staging` (the file with key `rel`
/// relative to the table at [`staged_key`]`(rel)`), reading `live`, the live table, which is not written: rows
/// `[L, L + n)` of every row-indexed array (obs index and columns, categorical codes, nullable values and masks,
/// dense X/layers rows, CSR data and indices after the existing values and indptr extended with shifted offsets,
/// obsm rows), the new entries of grown categories arrays, and `plan.replaced_files`. No `zarr.json` is written.
///
/// Chunks lying entirely at or beyond the committed length are written fresh (so installing them overwrites any
/// file an interrupted append left there); the one chunk per array that also holds committed rows is read from
/// `live`, updated and written whole, its committed rows unchanged. Nothing of `live` changes, so an appender that
/// loses the race to commit leaves the table untouched; `staging` must be a private area (nobody reads or writes it
/// until the append commits) other than `live`. With `durable`, the staged files are durable before returning.
///
/// Returns the keys written (relative to the table), in the order [`install_staged_files`] must move them over the
/// live table's once the append is committed: categories before the codes that use them, the region list last
/// (the order publication writes the grown metadata in). Installing them never changes the meaning of a committed
/// row, so readers bounded by the committed metadata read the committed values throughout.
///
/// `plan` must come from [`plan_append`] with the same `tree` and `rows`; otherwise (for instance if the table
/// changed in between) an error asks to plan again.
pub fn write_append(
    live: &DataHandle,
    staging: &DataHandle,
    name: &ElementName,
    tree: &NodeTree,
    plan: &AppendPlan,
    rows: &TableData,
    durable: bool,
) -> Result<Vec<String>> {
    if overlaps(live, staging) {
        return Err(Error::Unsupported {
            path: staging.describe(""),
            operation: format!(
                "staging an append to table '{name}' inside its live data {} (stage it in a separate area)",
                live.describe("").display()
            ),
        });
    }
    let io = Io::staging(live, staging, name);
    let (fresh, writes) = prepare(&io, tree, rows)?;
    if fresh != *plan {
        return Err(invalid(
            name,
            "the append plan does not match this table and these rows (the table changed since it was planned, \
             or other rows were given): call plan_append again",
        ));
    }
    writes.par_iter().try_for_each(|(path, start, vals)| {
        let meta = plan
            .tree
            .get(path)
            .ok_or_else(|| corrupt(name, path, "the planned tree lacks this array (internal error)"))?;
        write_rows(&io, path, meta, *start, vals)
    })?;
    for (rel, bytes) in &plan.replaced_files {
        io.put_file(rel, bytes)?;
    }
    if durable {
        io.sync_written()?;
    }
    // Installation order: chunks of grown categories arrays, then every other chunk, then the replaced files.
    let categories: Vec<String> = writes
        .iter()
        .filter(|(p, _, _)| is_categories(tree, p))
        .map(|(p, _, _)| format!("{p}/"))
        .collect();
    let replaced: Vec<&str> = plan.replaced_files.iter().map(|(rel, _)| rel.as_str()).collect();
    let (mut first, mut keys): (Vec<String>, Vec<String>) = io
        .written()
        .into_iter()
        .filter(|k| !replaced.contains(&k.as_str()))
        .partition(|k| categories.iter().any(|c| k.starts_with(c.as_str())));
    first.append(&mut keys);
    first.extend(replaced.iter().map(|r| r.to_string()));
    Ok(first)
}

/// True when `path` is the `categories` array of a categorical column in `tree`.
fn is_categories(tree: &NodeTree, path: &str) -> bool {
    path.strip_suffix("/categories").is_some_and(|col| {
        tree.get(col).and_then(|n| n.pointer("/attributes/encoding-type")).and_then(Value::as_str) == Some("categorical")
    })
}

/// True when two handles on the same storage share keys (one prefix lies within the other).
fn overlaps(a: &DataHandle, b: &DataHandle) -> bool {
    let within = |x: &str, y: &str| x == y || y.is_empty() || x.starts_with(&format!("{y}/"));
    Arc::ptr_eq(a.storage(), b.storage()) && (within(a.prefix(), b.prefix()) || within(b.prefix(), a.prefix()))
}

/// The key, relative to an append's staging area, of the staged copy of the table file `rel`: one flat name per file
/// (`%` and `/` percent-encoded, so distinct keys stay distinct; a name longer than [`MAX_STAGED_NAME`] bytes
/// becomes `~` and a 128-bit hash of the key). Staging files flat creates one directory per append instead of a
/// copy of the table's directory tree: on POSIX the tree cost a `mkdir` and an `rmdir` per directory (metadata
/// round trips on NFS and Lustre), which made an append 2-3 times slower than writing into the live table.
pub fn staged_key(rel: &str) -> String {
    let flat = rel.replace('%', "%25").replace('/', "%2F");
    if flat.len() <= MAX_STAGED_NAME {
        return flat;
    }
    // FNV-1a, 128 bits: distinct keys of one staging area do not collide in practice.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in rel.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013b);
    }
    format!("~{h:032x}")
}

/// Longest staged name kept readable by [`staged_key`] (file names are limited to 255 bytes on most filesystems).
pub const MAX_STAGED_NAME: usize = 240;

/// Moves each staged file (at [`staged_key`]`(key)` of `staging_prefix`) over `<live_prefix>/<key>`, in the order
/// given (the order
/// [`write_append`] returns), each one atomically ([`Storage::replace_file`]: readers of the live file see the old
/// or the new one). Returns the store keys installed, for the caller to make durable ([`Storage::sync`]).
///
/// Installing again after an interruption is safe: a key whose staged file is gone while the live one exists was
/// moved already and is skipped. A staged file missing from both places is an error. Moves are required (a backend
/// without [`Capabilities::rename`](crate::storage::Capabilities) refuses with `Unsupported`): a copy would let a
/// delayed installer write stale bytes over a later append's chunk, where a move can only happen once.
pub(crate) fn install_staged_files(
    storage: &dyn Storage,
    staging_prefix: &str,
    live_prefix: &str,
    keys: &[String],
) -> Result<Vec<String>> {
    let mut installed = Vec::with_capacity(keys.len());
    for rel in keys {
        let (from, to) = (join(staging_prefix, &staged_key(rel)), join(live_prefix, rel));
        if storage.exists(&from)? {
            // A reader on another NFS client may be reading the file this one replaces, or (once it is replaced in
            // turn) this one: both keep a retired name.
            crate::retire::keep_alive(storage, &to);
            crate::retire::keep_alive(storage, &from);
        }
        if !storage.replace_file(&from, &to)? && !storage.exists(&to)? {
            return Err(Error::CorruptMetadata {
                path: storage.location().join(&from),
                reason: format!("the staged file to install at {to} is missing"),
            });
        }
        installed.push(to);
    }
    Ok(installed)
}

/// Sets the first dimension of the array at `path` in `tree` to `len`.
fn grow(name: &ElementName, tree: &mut NodeTree, path: &str, len: u64) -> Result<()> {
    let node = tree.get_mut(path).ok_or_else(|| corrupt(name, path, "the array's zarr.json is missing"))?;
    match node.get_mut("shape").and_then(Value::as_array_mut).and_then(|s| s.first_mut()) {
        Some(first) => {
            *first = json!(len);
            Ok(())
        }
        None => Err(corrupt(name, path, "not an array with a first dimension")),
    }
}

/// Queues rows `[base, base + n)` of the 1-D obs array at `path` and grows it in `new_tree`.
#[allow(clippy::too_many_arguments)]
fn push_rows(
    name: &ElementName,
    tree: &NodeTree,
    new_tree: &mut NodeTree,
    writes: &mut Vec<Write>,
    path: String,
    vals: Vals,
    base: u64,
    n: u64,
) -> Result<()> {
    if row_width(name, tree, &path)? != 1 || length(name, tree, &path)? != base {
        return Err(corrupt(name, &path, format!("not a 1-D array of the table's {base} rows")));
    }
    if vals.len() as u64 != n {
        return Err(corrupt(name, &path, "row count mismatch (internal error)"));
    }
    grow(name, new_tree, &path, base + n)?;
    writes.push((path, base, vals));
    Ok(())
}

/// Elements per row of the array at `path` (the product of its other dimensions).
fn row_width(name: &ElementName, tree: &NodeTree, path: &str) -> Result<u64> {
    let shape = tree
        .get(path)
        .and_then(meta_shape)
        .ok_or_else(|| corrupt(name, path, "no shape"))?;
    Ok(shape.iter().skip(1).product())
}

/// First row of `path` in `tree` (its committed length).
fn length(name: &ElementName, tree: &NodeTree, path: &str) -> Result<u64> {
    tree.get(path)
        .and_then(meta_shape)
        .and_then(|s| s.first().copied())
        .ok_or_else(|| corrupt(name, path, "no shape"))
}

/// Converts integer values to the stored integer type `dtype`, refusing overflow.
fn to_stored_ints(name: &ElementName, path: &str, dtype: &str, v: &[i64]) -> Result<Vals> {
    if dtype == "int32" {
        let out: Option<Vec<i32>> = v.iter().map(|&x| i32::try_from(x).ok()).collect();
        return out.map(Vals::I32).ok_or_else(|| {
            invalid(name, format!("'{path}' is stored as int32 and cannot hold the appended offsets: rewrite the table"))
        });
    }
    if dtype == "int64" {
        return Ok(Vals::I64(v.to_vec()));
    }
    Err(invalid(name, format!("'{path}' is stored as {dtype}; appends support int32/int64 sparse indices")))
}

/// Computes the plan and the row ranges to write, reading the committed table through `io`.
fn prepare(io: &Io<'_>, tree: &NodeTree, rows: &TableData) -> Result<(AppendPlan, Vec<Write>)> {
    let name = io.name;
    let root = tree.get("").ok_or_else(|| corrupt(name, "", "the table group's zarr.json is missing"))?;
    if root.pointer("/attributes/encoding-type").and_then(Value::as_str) != Some("anndata") {
        return Err(corrupt(name, "", "not an anndata group"));
    }
    if let Some(p) = children(tree, "obsp").first() {
        return Err(invalid(
            name,
            format!("the table has obsp matrix '{}' (n_obs × n_obs), which cannot grow by appending rows", leaf(p)),
        ));
    }
    if tree.get("raw").is_some_and(|r| r.pointer("/attributes/encoding-type").and_then(Value::as_str) != Some("null")) {
        return Err(invalid(name, "the table has a raw table, which zarrtx cannot append rows to"));
    }
    let base = dataframe_rows(name, tree, "obs")?;
    let n = rows.n_obs();
    let new_len = base + n;
    let mut new_tree = tree.clone();
    let mut writes: Vec<Write> = Vec::new();

    // --- obs ---
    let (index, order) = dataframe_attrs(name, tree, "obs")?;
    let batch_schema = rows.obs.schema();
    let index_col = rows.obs.column_by_name(&rows.obs_index).ok_or_else(|| {
        invalid(name, format!("the appended rows have no column '{}' to use as their obs index", rows.obs_index))
    })?;
    let (index_values, index_nulls) = strings(index_col.as_ref())
        .ok_or_else(|| invalid(name, format!("the appended rows' obs index '{}' is not Utf8", rows.obs_index)))?;
    if index_nulls.iter().any(|&m| m) {
        return Err(invalid(name, "the appended rows' obs index holds nulls"));
    }
    let mut seen = HashSet::with_capacity(index_values.len());
    if let Some(d) = index_values.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(invalid(name, format!("the appended rows' obs index holds '{d}' twice; index values must be unique")));
    }
    let ikind = index_kind(name, tree, "obs", &index)?;
    let idata = encode_column(name, &rows.obs_index, &ikind, index_col.as_ref(), None)?;
    for (p, v) in row_arrays(&format!("obs/{index}"), &idata) {
        push_rows(name, tree, &mut new_tree, &mut writes, p, v, base, n)?;
    }
    let stored: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let given: Vec<&str> = batch_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|c| *c != rows.obs_index)
        .collect();
    if let Some(extra) = given.iter().find(|c| !stored.contains(*c)) {
        return Err(invalid(
            name,
            format!(
                "obs column '{extra}' of the appended rows is not in the table (its columns: {order:?}): drop it; \
                 adding a column is a separate operation"
            ),
        ));
    }
    if let Some(missing) = order.iter().find(|c| !given.contains(&c.as_str())) {
        return Err(invalid(
            name,
            format!("obs column '{missing}' of the table is missing from the appended rows: every row needs every column"),
        ));
    }
    for col in &order {
        check_key(name, "obs column", col)?;
        let path = format!("obs/{col}");
        let kind = kind_from_tree(name, tree, &path)?;
        let arr = rows
            .obs
            .column_by_name(col)
            .ok_or_else(|| invalid(name, format!("obs column '{col}' is missing from the appended rows")))?;
        let existing = match kind {
            ColKind::Categorical { .. } => {
                let cats_path = format!("{path}/categories");
                match read_all(io, tree, &cats_path)? {
                    Vals::Str(v) => Some(v),
                    _ => return Err(corrupt(name, &cats_path, "categories are not strings")),
                }
            }
            _ => None,
        };
        let data = encode_column(name, col, &kind, arr.as_ref(), existing.as_deref())?;
        for (p, v) in row_arrays(&path, &data) {
            push_rows(name, tree, &mut new_tree, &mut writes, p, v, base, n)?;
        }
        if let (ColData::Categorical { categories, .. }, Some(existing)) = (&data, &existing) {
            if !categories.is_empty() {
                let cats_path = format!("{path}/categories");
                let k_old = existing.len() as u64;
                grow(name, &mut new_tree, &cats_path, k_old + categories.len() as u64)?;
                writes.push((cats_path, k_old, Vals::Str(categories.clone())));
            }
        }
    }

    // --- annotation ---
    let mut replaced_files = Vec::new();
    match (decode_annotation(io, tree)?, &rows.annotation) {
        (None, Some(_)) => {
            return Err(invalid(
                name,
                "the appended rows carry an annotation but the table annotates nothing: annotating a table is a \
                 separate operation (rewrite it with an annotation)",
            ))
        }
        (None, None) => {}
        (Some(a), given) => {
            if let Some(g) = given {
                if g.region_key != a.region_key || g.instance_key != a.instance_key {
                    return Err(invalid(
                        name,
                        format!(
                            "the appended rows are annotated with region_key '{}' / instance_key '{}' but the table \
                             uses '{}' / '{}'",
                            g.region_key, g.instance_key, a.region_key, a.instance_key
                        ),
                    ));
                }
            }
            let present = check_region_instances(name, rows, &a.region_key, &a.instance_key)?;
            let mut merged = a.region.clone();
            for r in present {
                if !merged.contains(&r) {
                    if let Err(crate::Error::InvalidName { reason, .. }) = ElementName::new(&r) {
                        return Err(invalid(name, format!("region '{r}' of the appended rows is not a valid element name: {reason}")));
                    }
                    merged.push(r);
                }
            }
            if merged.len() != a.region.len() {
                replaced_files = plan_regions(io, tree, &mut new_tree, a.region.len() as u64, &merged)?;
            }
            if let Some(attrs) = new_tree.get_mut("").and_then(|r| r.get_mut("attributes")).and_then(Value::as_object_mut) {
                attrs.insert("spatialdata-encoding-type".into(), json!("ngff:regions_table"));
                attrs.insert("region".into(), json!(merged));
                attrs.insert("region_key".into(), json!(a.region_key));
                attrs.insert("instance_key".into(), json!(a.instance_key));
            }
        }
    }

    // --- var ---
    let (vindex, _) = dataframe_attrs(name, tree, "var")?;
    let vkind = index_kind(name, tree, "var", &vindex)?;
    let stored_var = read_column(io, tree, &format!("var/{vindex}"), &vkind)?;
    let stored_var = strings(stored_var.as_ref()).map(|s| s.0).unwrap_or_default();
    let given_var = rows
        .var
        .column_by_name(&rows.var_index)
        .and_then(|c| strings(c.as_ref()))
        .map(|s| s.0)
        .ok_or_else(|| invalid(name, format!("the appended rows have no Utf8 var index column '{}'", rows.var_index)))?;
    if stored_var != given_var {
        let at = stored_var.iter().zip(&given_var).position(|(a, b)| a != b);
        let detail = match at {
            Some(i) => format!("position {i} holds '{}' in the table but '{}' in the rows", stored_var[i], given_var[i]),
            None => format!("the table has {} variables, the rows {}", stored_var.len(), given_var.len()),
        };
        return Err(invalid(
            name,
            format!(
                "the appended rows' var index differs from the table's ({detail}): appends require the same \
                 variables in the same order; combining different variables (an outer join) is a separate, explicit \
                 operation"
            ),
        ));
    }
    let n_vars = stored_var.len() as u64;

    // --- X and layers ---
    let mut matrices: Vec<(String, Option<&Matrix>)> = Vec::new();
    if tree.contains_key("X") || rows.x.is_some() {
        matrices.push(("X".into(), rows.x.as_ref()));
    }
    let stored_layers: BTreeSet<String> = children(tree, "layers").iter().map(|p| leaf(p)).collect();
    let given_layers: BTreeSet<String> = rows.layers.keys().cloned().collect();
    if stored_layers != given_layers {
        return Err(invalid(
            name,
            format!("the appended rows have layers {given_layers:?} but the table has {stored_layers:?}: give the same layers"),
        ));
    }
    for k in &stored_layers {
        matrices.push((format!("layers/{k}"), rows.layers.get(k)));
    }
    for (path, m) in matrices {
        let Some(m) = m else {
            return Err(invalid(name, format!("the table has {path} but the appended rows do not: give {path} for them")));
        };
        if !tree.contains_key(&path) {
            return Err(invalid(name, format!("the appended rows have {path} but the table does not: drop it")));
        }
        check_matrix(name, &format!("{path} of the appended rows"), m, n, n_vars)?;
        append_matrix(name, tree, &mut new_tree, &mut writes, &path, m, base, new_len)?;
    }

    // --- obsm ---
    let stored_obsm: BTreeSet<String> = children(tree, "obsm").iter().map(|p| leaf(p)).collect();
    let given_obsm: BTreeSet<String> = rows.obsm.keys().cloned().collect();
    if stored_obsm != given_obsm {
        return Err(invalid(
            name,
            format!("the appended rows have obsm {given_obsm:?} but the table has {stored_obsm:?}: give the same obsm arrays"),
        ));
    }
    for (k, a) in &rows.obsm {
        let path = format!("obsm/{k}");
        let meta = tree.get(&path).ok_or_else(|| corrupt(name, &path, "missing"))?;
        let (dtype, shape) = (meta_dtype(meta).unwrap_or(""), meta_shape(meta).unwrap_or_default());
        let vals = raster_vals(a);
        if vals.zarr_type() != dtype || a.shape().len() != shape.len() || a.shape()[1..] != shape[1..] || a.shape()[0] != n {
            return Err(invalid(
                name,
                format!(
                    "obsm['{k}'] of the appended rows is {} {:?}; the table stores {dtype} with rows of shape {:?} \
                     ({n} rows expected)",
                    vals.zarr_type(),
                    a.shape(),
                    &shape.get(1..).unwrap_or(&[])
                ),
            ));
        }
        grow(name, &mut new_tree, &path, new_len)?;
        writes.push((path, base, vals));
    }

    let plan = AppendPlan {
        base_rows: base,
        new_rows: n,
        tree: new_tree,
        replaced_files,
    };
    Ok((plan, writes))
}

/// Plans the append of matrix `m` (rows `[base, new_len)`) to the stored matrix at `path`.
#[allow(clippy::too_many_arguments)]
fn append_matrix(
    name: &ElementName,
    tree: &NodeTree,
    new_tree: &mut NodeTree,
    writes: &mut Vec<Write>,
    path: &str,
    m: &Matrix,
    base: u64,
    new_len: u64,
) -> Result<()> {
    let node = tree.get(path).ok_or_else(|| corrupt(name, path, "missing"))?;
    let ty = node.pointer("/attributes/encoding-type").and_then(Value::as_str).unwrap_or("");
    match (ty, m) {
        ("array", Matrix::Dense(a)) => {
            let vals = raster_vals(a);
            let dtype = meta_dtype(node).unwrap_or("");
            if vals.zarr_type() != dtype {
                return Err(invalid(
                    name,
                    format!("{path} of the appended rows is {} but the table stores {dtype}: cast it", vals.zarr_type()),
                ));
            }
            if length(name, tree, path)? != base {
                return Err(corrupt(name, path, format!("length differs from the table's {base} rows")));
            }
            grow(name, new_tree, path, new_len)?;
            writes.push((path.to_string(), base, vals));
        }
        ("csr_matrix", Matrix::Csr { data, indices, indptr, .. }) => {
            let (dp, ip, pp) = (format!("{path}/data"), format!("{path}/indices"), format!("{path}/indptr"));
            let vals = raster_vals(data);
            let dtype = tree.get(&dp).and_then(meta_dtype).unwrap_or("");
            if vals.zarr_type() != dtype {
                return Err(invalid(
                    name,
                    format!("{path} data of the appended rows is {} but the table stores {dtype}: cast it", vals.zarr_type()),
                ));
            }
            let nnz_old = length(name, tree, &dp)?;
            if length(name, tree, &ip)? != nnz_old || length(name, tree, &pp)? != base + 1 {
                return Err(corrupt(name, path, "data, indices and indptr lengths are inconsistent with the rows"));
            }
            let nnz_new = nnz_old + vals.len() as u64;
            let idtype = tree.get(&ip).and_then(meta_dtype).unwrap_or("");
            let ptype = tree.get(&pp).and_then(meta_dtype).unwrap_or("");
            let shift = i64::try_from(nnz_old).map_err(|_| corrupt(name, &dp, "too many values"))?;
            let shifted: Vec<i64> = indptr.iter().skip(1).map(|&p| p + shift).collect();
            let ivals = match idtype {
                "int32" | "int64" => index_vals(idtype, indices),
                other => return Err(invalid(name, format!("'{ip}' is stored as {other}; appends support int32/int64"))),
            };
            let pvals = to_stored_ints(name, &pp, ptype, &shifted)?;
            grow(name, new_tree, &dp, nnz_new)?;
            grow(name, new_tree, &ip, nnz_new)?;
            grow(name, new_tree, &pp, new_len + 1)?;
            if let Some(shape) = new_tree.get_mut(path).and_then(|g| g.pointer_mut("/attributes/shape")) {
                if let Some(first) = shape.as_array_mut().and_then(|s| s.first_mut()) {
                    *first = json!(new_len);
                }
            }
            writes.push((dp, nnz_old, vals));
            writes.push((ip, nnz_old, ivals));
            writes.push((pp, base + 1, pvals));
        }
        (stored, _) => {
            let given = match m {
                Matrix::Dense(_) => "dense",
                Matrix::Csr { .. } => "CSR",
            };
            return Err(invalid(
                name,
                format!("{path} of the appended rows is {given} but the table stores it as {stored:?}: convert it"),
            ));
        }
    }
    Ok(())
}

/// Grows `uns/spatialdata_attrs/region` from `m_old` to the `merged` regions in `new_tree` and returns the chunk
/// files holding the new entries (each with the committed entries unchanged in place). A 0-d region (one region as
/// spatialdata writes it) becomes a 1-D string-array whose chunk keys use `.` (`c.0`), so the old `c` file stays
/// valid for readers of the old metadata.
fn plan_regions(
    io: &Io<'_>,
    tree: &NodeTree,
    new_tree: &mut NodeTree,
    m_old: u64,
    merged: &[String],
) -> Result<Vec<(String, Vec<u8>)>> {
    let path = "uns/spatialdata_attrs/region";
    let old = tree.get(path).ok_or_else(|| corrupt(io.name, path, "missing"))?;
    let was_scalar = meta_shape(old).is_some_and(|s| s.is_empty());
    let m_new = merged.len() as u64;
    let (meta, first_new) = if was_scalar {
        let mut meta = region_meta(m_new);
        meta["chunk_key_encoding"] = json!({"name": "default", "configuration": {"separator": "."}});
        (meta, 0)
    } else {
        let mut meta = old.clone();
        meta["shape"] = json!([m_new]);
        (meta, m_old)
    };
    let chunk = meta_chunk(&meta)
        .and_then(|c| c.first().copied())
        .filter(|&c| c > 0)
        .ok_or_else(|| corrupt(io.name, path, "not a regular 1-D chunk grid"))?;
    let mut files = Vec::new();
    for ci in first_new / chunk..m_new.div_ceil(chunk) {
        let lo = (ci * chunk) as usize;
        let hi = ((ci + 1) * chunk).min(m_new) as usize;
        let mut buf: Vec<String> = merged[lo..hi].to_vec();
        buf.resize(chunk as usize, String::new());
        files.push(encode_chunk(io, path, &meta, &[ci], &Vals::Str(buf))?);
    }
    new_tree.insert(path.to_string(), meta);
    Ok(files)
}
