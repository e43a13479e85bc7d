//! Summaries of a table from its metadata alone.

use super::chunks::{meta_dtype, meta_shape};
use super::columns::{corrupt, kind_from_tree};
use super::read::{dataframe_attrs, leaf};
use super::uns::children;
use super::{ColumnInfo, TableInfo};
use crate::error::Result;
use crate::meta::NodeTree;
use crate::name::ElementName;
use serde_json::Value;

/// The number of rows of the dataframe at `path` (the length of its index array).
pub(crate) fn dataframe_rows(name: &ElementName, tree: &NodeTree, path: &str) -> Result<u64> {
    let (index, _) = dataframe_attrs(name, tree, path)?;
    let p = format!("{path}/{index}");
    let node = tree.get(&p).ok_or_else(|| corrupt(name, &p, "the index's zarr.json is missing"))?;
    let array = if node.get("node_type").and_then(Value::as_str) == Some("group") {
        let v = format!("{p}/values");
        tree.get(&v).ok_or_else(|| corrupt(name, &v, "the index values' zarr.json is missing"))?
    } else {
        node
    };
    meta_shape(array)
        .and_then(|s| s.first().copied())
        .ok_or_else(|| corrupt(name, &p, "no shape"))
}

/// The region list of the table group's attributes (a string or a list of strings; empty when absent).
pub(crate) fn group_regions(tree: &NodeTree) -> Vec<String> {
    match tree.get("").and_then(|r| r.pointer("/attributes/region")) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Describes a matrix node for [`TableInfo::x`].
fn matrix_kind(tree: &NodeTree, path: &str) -> Option<String> {
    let node = tree.get(path)?;
    match node.pointer("/attributes/encoding-type").and_then(Value::as_str)? {
        "array" => Some(format!("dense {}", meta_dtype(node)?)),
        other => Some(format!("{} {}", other.trim_end_matches("_matrix"), meta_dtype(tree.get(&format!("{path}/data"))?)?)),
    }
}

/// Summarizes a table from its metadata tree (keyed as [`write_table`](super::write_table) returns it): numbers of
/// observations and variables, the obs columns with their encodings and the Arrow types
/// [`read_table`](super::read_table) returns, X, layers, obsm, and the annotation from the table group's
/// attributes.
pub fn describe(tree: &NodeTree) -> Result<TableInfo> {
    // Errors name the table generically: the tree does not carry the element's name.
    let name = ElementName::new("table")?;
    let n_obs = dataframe_rows(&name, tree, "obs")?;
    let n_vars = dataframe_rows(&name, tree, "var")?;
    let (obs_index, order) = dataframe_attrs(&name, tree, "obs")?;
    let mut columns = Vec::new();
    for col in order {
        let kind = kind_from_tree(&name, tree, &format!("obs/{col}"))?;
        columns.push(ColumnInfo {
            name: col,
            encoding: kind.encoding().to_string(),
            data_type: kind.arrow_type(),
        });
    }
    let attrs = tree.get("").and_then(|r| r.get("attributes")).cloned().unwrap_or(Value::Null);
    let key = |k: &str| attrs.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(TableInfo {
        n_obs,
        n_vars,
        obs_index,
        columns,
        x: matrix_kind(tree, "X"),
        layers: children(tree, "layers").iter().map(|p| leaf(p)).collect(),
        obsm: children(tree, "obsm").iter().map(|p| leaf(p)).collect(),
        regions: group_regions(tree),
        region_key: key("region_key"),
        instance_key: key("instance_key"),
    })
}
