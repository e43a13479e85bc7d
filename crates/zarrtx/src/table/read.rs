//! Reading a table back into [`TableData`], bounded by a committed metadata tree.

use super::chunks::{meta_shape, Io, Vals};
use super::columns::{corrupt, decode_column, invalid, kind_from_tree, ColKind};
use super::uns::{children, decode_annotation, decode_uns, read_all, vals_raster};
use super::{Matrix, TableData};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::raster::RasterArray;
use crate::storage::DataHandle;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reads the table stored at `handle` as described by `tree` (its committed metadata, keyed as [`write_table`]
/// returns it). Every array is read up to the shape `tree` gives it, so chunks written beyond (by an append not
/// yet committed, or an interrupted one) are never seen. The obs and var batches hold the index column first,
/// then the columns in `column-order`; categoricals come back as `Dictionary(Int8|Int16|Int32|Int64, Utf8)` per
/// their stored codes type.
///
/// [`write_table`]: super::write_table
///
/// A table with no data at `handle` is an I/O error naming it (zarrs would read missing chunks as fill values).
pub fn read_table(handle: &DataHandle, name: &ElementName, tree: &NodeTree) -> Result<TableData> {
    if !handle.exists("")? {
        return Err(Error::io(handle.describe(""), std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let root = tree.get("").ok_or_else(|| corrupt(name, "", "the table group's zarr.json is missing"))?;
    let ty = root.pointer("/attributes/encoding-type").and_then(Value::as_str);
    if ty != Some("anndata") {
        return Err(corrupt(name, "", format!("encoding-type is {ty:?}, expected \"anndata\"")));
    }
    let io = Io::new(handle, name);
    let (obs, obs_index) = read_dataframe(&io, tree, "obs")?;
    let (var, var_index) = read_dataframe(&io, tree, "var")?;
    let x = if tree.contains_key("X") { Some(read_matrix(&io, tree, "X")?) } else { None };
    let mut layers = BTreeMap::new();
    for p in children(tree, "layers") {
        layers.insert(leaf(&p), read_matrix(&io, tree, &p)?);
    }
    let arrays = |group: &str| -> Result<BTreeMap<String, RasterArray>> {
        let mut out = BTreeMap::new();
        for p in children(tree, group) {
            match read_matrix(&io, tree, &p)? {
                Matrix::Dense(a) => out.insert(leaf(&p), a),
                Matrix::Csr { .. } => return Err(invalid(name, format!("'{p}' is sparse; zarrtx reads dense {group} only"))),
            };
        }
        Ok(out)
    };
    let obsm = arrays("obsm")?;
    let varm = arrays("varm")?;
    let mut uns = BTreeMap::new();
    for p in children(tree, "uns") {
        if p != "uns/spatialdata_attrs" {
            uns.insert(leaf(&p), decode_uns(&io, tree, &p)?);
        }
    }
    let annotation = decode_annotation(&io, tree)?;
    Ok(TableData {
        obs,
        obs_index,
        var,
        var_index,
        x,
        layers,
        obsm,
        varm,
        uns,
        annotation,
    })
}

/// The last path component.
pub(crate) fn leaf(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

/// The `_index` and `column-order` of the dataframe group at `path`.
pub(crate) fn dataframe_attrs(name: &ElementName, tree: &NodeTree, path: &str) -> Result<(String, Vec<String>)> {
    let node = tree.get(path).ok_or_else(|| corrupt(name, path, "the dataframe's zarr.json is missing"))?;
    let attrs = node.get("attributes").cloned().unwrap_or(Value::Null);
    if attrs.get("encoding-type").and_then(Value::as_str) != Some("dataframe") {
        return Err(corrupt(name, path, "not a dataframe group"));
    }
    let index = attrs
        .get("_index")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(name, path, "no _index attribute"))?
        .to_string();
    let order = match attrs.get("column-order") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt(name, path, "column-order holds a non-string"))?,
        // anndata writes an empty list as an empty array; tolerate its absence.
        _ => Vec::new(),
    };
    Ok((index, order))
}

/// The kind of the index column of dataframe `path` (string-array or nullable-string-array).
pub(crate) fn index_kind(name: &ElementName, tree: &NodeTree, path: &str, index: &str) -> Result<ColKind> {
    let p = format!("{path}/{index}");
    let kind = kind_from_tree(name, tree, &p)?;
    match kind {
        ColKind::Str | ColKind::NullableStr => Ok(kind),
        other => Err(invalid(
            name,
            format!("the index '{p}' is stored as {}; zarrtx supports string indexes only", other.describe()),
        )),
    }
}

/// Reads one column (or index) stored at `path` with `kind`.
pub(crate) fn read_column(io: &Io<'_>, tree: &NodeTree, path: &str, kind: &ColKind) -> Result<ArrayRef> {
    decode_column(io.name, path, kind, |child| {
        let p = if child.is_empty() { path.to_string() } else { format!("{path}/{child}") };
        read_all(io, tree, &p)
    })
}

/// Reads the dataframe at `path`: the batch (index first) and the index column's name.
fn read_dataframe(io: &Io<'_>, tree: &NodeTree, path: &str) -> Result<(RecordBatch, String)> {
    let name = io.name;
    let (index, order) = dataframe_attrs(name, tree, path)?;
    let ikind = index_kind(name, tree, path, &index)?;
    let mut fields = vec![Field::new(&index, arrow_schema::DataType::Utf8, false)];
    let idx = read_column(io, tree, &format!("{path}/{index}"), &ikind)?;
    if idx.null_count() > 0 {
        return Err(corrupt(name, &format!("{path}/{index}"), "the index holds missing values"));
    }
    let n = idx.len();
    let mut columns = vec![idx];
    for col in &order {
        let p = format!("{path}/{col}");
        let kind = kind_from_tree(name, tree, &p)?;
        let a = read_column(io, tree, &p, &kind)?;
        if a.len() != n {
            return Err(corrupt(name, &p, format!("{} rows, but the index has {n}", a.len())));
        }
        fields.push(Field::new(col, kind.arrow_type(), kind.nullable()));
        columns.push(a);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| corrupt(name, path, format!("cannot assemble the dataframe: {e}")))?;
    Ok((batch, index))
}

/// Integer values as i64.
pub(crate) fn as_i64(v: Vals) -> Option<Vec<i64>> {
    Some(match v {
        Vals::I32(v) => v.into_iter().map(i64::from).collect(),
        Vals::I64(v) => v,
        Vals::U32(v) => v.into_iter().map(i64::from).collect(),
        Vals::U64(v) => v.into_iter().map(i64::try_from).collect::<Result<Vec<_>, _>>().ok()?,
        Vals::I16(v) => v.into_iter().map(i64::from).collect(),
        Vals::U16(v) => v.into_iter().map(i64::from).collect(),
        Vals::I8(v) => v.into_iter().map(i64::from).collect(),
        Vals::U8(v) => v.into_iter().map(i64::from).collect(),
        _ => return None,
    })
}

/// Reads the dense array or CSR group at `path`.
fn read_matrix(io: &Io<'_>, tree: &NodeTree, path: &str) -> Result<Matrix> {
    let name = io.name;
    let node = tree.get(path).ok_or_else(|| corrupt(name, path, "the node's zarr.json is missing"))?;
    let ty = node.pointer("/attributes/encoding-type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "array" => {
            let shape = meta_shape(node).ok_or_else(|| corrupt(name, path, "no shape"))?;
            let vals = read_all(io, tree, path)?;
            let a = vals_raster(vals, &shape).ok_or_else(|| corrupt(name, path, "unexpected data"))?;
            Ok(Matrix::Dense(a))
        }
        "csr_matrix" => {
            let shape: Vec<u64> = node
                .pointer("/attributes/shape")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(Value::as_u64).collect())
                .ok_or_else(|| corrupt(name, path, "no shape attribute"))?;
            let [r, c] = shape[..] else { return Err(corrupt(name, path, "shape is not 2-D")) };
            let data_path = format!("{path}/data");
            let data = read_all(io, tree, &data_path)?;
            let n = data.len() as u64;
            let data = vals_raster(data, &[n]).ok_or_else(|| corrupt(name, &data_path, "unexpected data"))?;
            let ints = |child: &str| -> Result<Vec<i64>> {
                let p = format!("{path}/{child}");
                as_i64(read_all(io, tree, &p)?).ok_or_else(|| corrupt(name, &p, "not integers"))
            };
            Ok(Matrix::Csr {
                shape: [r, c],
                data,
                indices: ints("indices")?,
                indptr: ints("indptr")?,
            })
        }
        other => Err(invalid(
            name,
            format!("'{path}' has encoding {other:?}; zarrtx reads dense arrays and csr_matrix only"),
        )),
    }
}
