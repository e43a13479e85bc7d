//! Writing a complete table into a fresh (private) area.

use super::chunks::{array_meta, enc, group_meta, row_chunk, write_rows, write_whole, Io, Vals, NNZ_CHUNK, ROW_CHUNK};
use super::columns::{column_nodes, encode_column, kind_for_arrow, row_arrays, strings, ColData, ColKind};
use super::uns::{encode_annotation, encode_uns, raster_vals, root_attrs};
use super::validate::validate;
use super::{Matrix, TableData};
use crate::error::Result;
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::raster::RasterArray;
use crate::storage::DataHandle;
use arrow_array::RecordBatch;
use rayon::prelude::*;
use serde_json::{json, Value};

/// The metadata tree of a table being encoded and the array data to write.
#[derive(Default)]
pub(crate) struct Build {
    /// Every node's `zarr.json`, by path relative to the table.
    pub tree: NodeTree,
    /// Row ranges to write: (array path, first row, values).
    pub rows: Vec<(String, u64, Vals)>,
    /// Single-chunk arrays to write whole: (array path, values).
    pub whole: Vec<(String, Vals)>,
}

impl Build {
    /// Adds a node without data.
    pub fn node(&mut self, path: &str, meta: Value) {
        self.tree.insert(path.to_string(), meta);
    }

    /// Adds a row-chunked array node and its rows from `start`.
    pub fn rows(&mut self, path: &str, meta: Value, start: u64, vals: Vals) {
        self.tree.insert(path.to_string(), meta);
        self.rows.push((path.to_string(), start, vals));
    }

    /// Adds a single-chunk array node and its content.
    pub fn whole(&mut self, path: &str, meta: Value, vals: Vals) {
        self.tree.insert(path.to_string(), meta);
        self.whole.push((path.to_string(), vals));
    }

    /// Writes every array's data (in parallel), not the `zarr.json` documents.
    pub fn write_data(&self, io: &Io<'_>) -> Result<()> {
        let meta = |p: &str| {
            self.tree.get(p).ok_or_else(|| io.zarr_err(p, "no metadata (internal error)"))
        };
        self.rows.par_iter().try_for_each(|(p, start, v)| write_rows(io, p, meta(p)?, *start, v))?;
        self.whole.par_iter().try_for_each(|(p, v)| write_whole(io, p, meta(p)?, v))
    }
}

/// Writes the complete table `t` at `handle`, a fresh area the caller owns (a staging area: nobody reads it or
/// writes it until a commit publishes it): chunk data first, then every `zarr.json`. Returns the `zarr.json` of
/// every node keyed by path relative to the table (`""` = the table group, `"obs"`, `"obs/_index"`, `"X"`, ...).
///
/// The table is checked with [`validate`](super::validate) before anything is written. With `durable`, every
/// object written (and the directory entries naming them) is made durable before returning.
pub fn write_table(handle: &DataHandle, name: &ElementName, t: &TableData, durable: bool) -> Result<NodeTree> {
    validate(name, t)?;
    let build = build_table(name, t)?;
    let io = Io::new(handle, name);
    build.write_data(&io)?;
    let mut written = io.written();
    written.extend(handle.put_tree(&build.tree)?);
    if durable {
        handle.sync(&written)?;
    }
    Ok(build.tree)
}

/// Encodes a validated table.
pub(crate) fn build_table(name: &ElementName, t: &TableData) -> Result<Build> {
    let mut b = Build::default();
    b.node("", group_meta(root_attrs(t.annotation.as_ref())));
    let region_key = t.annotation.as_ref().map(|a| a.region_key.as_str());
    encode_dataframe(&mut b, name, "obs", &t.obs, &t.obs_index, region_key)?;
    encode_dataframe(&mut b, name, "var", &t.var, &t.var_index, None)?;
    let n_vars = t.n_vars();
    if let Some(x) = &t.x {
        encode_matrix(&mut b, "X", x, n_vars);
    }
    b.node("layers", group_meta(enc("dict", "0.1.0")));
    for (k, m) in &t.layers {
        encode_matrix(&mut b, &format!("layers/{k}"), m, n_vars);
    }
    for (group, arrays) in [("obsm", &t.obsm), ("varm", &t.varm)] {
        b.node(group, group_meta(enc("dict", "0.1.0")));
        for (k, a) in arrays {
            encode_rows_array(&mut b, &format!("{group}/{k}"), a, 0);
        }
    }
    b.node("obsp", group_meta(enc("dict", "0.1.0")));
    b.node("varp", group_meta(enc("dict", "0.1.0")));
    b.node("uns", group_meta(enc("dict", "0.1.0")));
    for (k, v) in &t.uns {
        encode_uns(&mut b, &format!("uns/{k}"), v);
    }
    if let Some(a) = &t.annotation {
        encode_annotation(&mut b, a);
    }
    Ok(b)
}

/// Adds dataframe `batch` (index column `index`) at `path`.
fn encode_dataframe(
    b: &mut Build,
    name: &ElementName,
    path: &str,
    batch: &RecordBatch,
    index: &str,
    region_key: Option<&str>,
) -> Result<()> {
    let n = batch.num_rows() as u64;
    let schema = batch.schema();
    let mut order = Vec::new();
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        let col_name = field.name().as_str();
        let is_index = col_name == index;
        let kind = if is_index {
            ColKind::Str
        } else {
            order.push(col_name.to_string());
            kind_for_arrow(name, col_name, col.as_ref(), Some(col_name) == region_key)?
        };
        let data = if is_index {
            let (v, _) = strings(col.as_ref())
                .ok_or_else(|| super::columns::invalid(name, format!("{path} index '{index}' is not a Utf8 column")))?;
            ColData::Plain(Vals::Str(v))
        } else {
            encode_column(name, col_name, &kind, col.as_ref(), None)?
        };
        let col_path = format!("{path}/{col_name}");
        let n_categories = match &data {
            ColData::Categorical { categories, .. } => categories.len() as u64,
            _ => 0,
        };
        for (p, meta) in column_nodes(&col_path, &kind, n, n_categories) {
            b.node(&p, meta);
        }
        for (p, v) in row_arrays(&col_path, &data) {
            b.rows.push((p, 0, v));
        }
        if let ColData::Categorical { categories, .. } = data {
            b.rows.push((format!("{col_path}/categories"), 0, Vals::Str(categories)));
        }
    }
    let mut attrs = json!({"_index": index, "column-order": order});
    attrs["encoding-type"] = json!("dataframe");
    attrs["encoding-version"] = json!("0.2.0");
    b.node(path, group_meta(attrs));
    Ok(())
}

/// The `zarr.json` of a dense row-indexed 2-D array of `dtype` with `shape`.
pub(crate) fn dense_meta(dtype: &str, shape: &[u64]) -> Value {
    let width = shape.get(1).copied().unwrap_or(1);
    let chunk: Vec<u64> = match shape.len() {
        1 => vec![ROW_CHUNK],
        _ => vec![row_chunk(width, dtype), width.max(1)],
    };
    array_meta(dtype, shape, &chunk, enc("array", "0.2.0"))
}

/// Adds a dense row-indexed array (obsm, varm, dense X) at `path`, writing its rows from `start`.
fn encode_rows_array(b: &mut Build, path: &str, a: &RasterArray, start: u64) {
    let vals = raster_vals(a);
    let meta = dense_meta(vals.zarr_type(), &a.shape());
    b.rows(path, meta, start, vals);
}

/// The zarr type of CSR indices for `n_vars` columns.
pub(crate) fn indices_type(n_vars: u64) -> &'static str {
    if n_vars <= i32::MAX as u64 {
        "int32"
    } else {
        "int64"
    }
}

/// Indices as `dtype` values.
pub(crate) fn index_vals(dtype: &str, v: &[i64]) -> Vals {
    if dtype == "int32" {
        Vals::I32(v.iter().map(|&x| x as i32).collect())
    } else {
        Vals::I64(v.to_vec())
    }
}

/// Adds matrix `m` at `path`.
fn encode_matrix(b: &mut Build, path: &str, m: &Matrix, n_vars: u64) {
    match m {
        Matrix::Dense(a) => encode_rows_array(b, path, a, 0),
        Matrix::Csr { shape, data, indices, indptr } => {
            let mut attrs = enc("csr_matrix", "0.1.0");
            attrs["shape"] = json!(shape);
            b.node(path, group_meta(attrs));
            let vals = raster_vals(data);
            let nnz = vals.len() as u64;
            let it = indices_type(n_vars);
            b.rows(&format!("{path}/data"), array_meta(vals.zarr_type(), &[nnz], &[NNZ_CHUNK], json!({})), 0, vals);
            b.rows(&format!("{path}/indices"), array_meta(it, &[nnz], &[NNZ_CHUNK], json!({})), 0, index_vals(it, indices));
            b.rows(
                &format!("{path}/indptr"),
                array_meta("int64", &[indptr.len() as u64], &[ROW_CHUNK], json!({})),
                0,
                Vals::I64(indptr.clone()),
            );
        }
    }
}
