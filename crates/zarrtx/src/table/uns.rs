//! `uns` (unstructured metadata) and `uns/spatialdata_attrs`: encoding [`UnsValue`]s as anndata writes them and
//! reading them back; numeric arrays ↔ [`Vals`].

use super::chunks::{array_meta, enc, group_meta, meta_shape, read_rows, Io, Vals, REGION_CHUNK};
use super::columns::{corrupt, invalid};
use super::write::Build;
use super::{Annotation, UnsValue};
use crate::error::Result;
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::raster::RasterArray;
use crate::with_raster_array;
use ndarray::{ArrayD, IxDyn};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The values of a raster array in C order.
pub(crate) fn raster_vals(a: &RasterArray) -> Vals {
    match a {
        RasterArray::Bool(x) => Vals::Bool(x.iter().copied().collect()),
        RasterArray::U8(x) => Vals::U8(x.iter().copied().collect()),
        RasterArray::U16(x) => Vals::U16(x.iter().copied().collect()),
        RasterArray::U32(x) => Vals::U32(x.iter().copied().collect()),
        RasterArray::U64(x) => Vals::U64(x.iter().copied().collect()),
        RasterArray::I8(x) => Vals::I8(x.iter().copied().collect()),
        RasterArray::I16(x) => Vals::I16(x.iter().copied().collect()),
        RasterArray::I32(x) => Vals::I32(x.iter().copied().collect()),
        RasterArray::I64(x) => Vals::I64(x.iter().copied().collect()),
        RasterArray::F32(x) => Vals::F32(x.iter().copied().collect()),
        RasterArray::F64(x) => Vals::F64(x.iter().copied().collect()),
    }
}

/// A raster array of `shape` from C-order values; `None` for strings or a size mismatch.
pub(crate) fn vals_raster(v: Vals, shape: &[u64]) -> Option<RasterArray> {
    let dims = IxDyn(&shape.iter().map(|&d| d as usize).collect::<Vec<_>>());
    macro_rules! mk {
        ($w:ident, $x:expr) => {
            RasterArray::$w(ArrayD::from_shape_vec(dims, $x).ok()?)
        };
    }
    Some(match v {
        Vals::Bool(x) => mk!(Bool, x),
        Vals::U8(x) => mk!(U8, x),
        Vals::U16(x) => mk!(U16, x),
        Vals::U32(x) => mk!(U32, x),
        Vals::U64(x) => mk!(U64, x),
        Vals::I8(x) => mk!(I8, x),
        Vals::I16(x) => mk!(I16, x),
        Vals::I32(x) => mk!(I32, x),
        Vals::I64(x) => mk!(I64, x),
        Vals::F32(x) => mk!(F32, x),
        Vals::F64(x) => mk!(F64, x),
        Vals::Str(_) => return None,
    })
}

/// Number of elements of a raster array.
pub(crate) fn raster_len(a: &RasterArray) -> usize {
    with_raster_array!(a, x => x.len())
}

/// Adds the nodes of `value` stored at `path` to `b`.
pub(crate) fn encode_uns(b: &mut Build, path: &str, value: &UnsValue) {
    let scalar = |dtype: &str, ty: &str| array_meta(dtype, &[], &[], enc(ty, "0.2.0"));
    match value {
        UnsValue::Str(s) => b.whole(path, scalar("string", "string"), Vals::Str(vec![s.clone()])),
        UnsValue::Int(i) => b.whole(path, scalar("int64", "numeric-scalar"), Vals::I64(vec![*i])),
        UnsValue::Float(f) => b.whole(path, scalar("float64", "numeric-scalar"), Vals::F64(vec![*f])),
        UnsValue::Bool(x) => b.whole(path, scalar("bool", "numeric-scalar"), Vals::Bool(vec![*x])),
        UnsValue::Strings(v) => {
            let n = v.len() as u64;
            let meta = array_meta("string", &[n], &[n.max(1)], enc("string-array", "0.2.0"));
            b.whole(path, meta, Vals::Str(pad(v.clone(), n.max(1) as usize)))
        }
        UnsValue::Array(a) => {
            let vals = raster_vals(a);
            let shape = a.shape();
            let chunk: Vec<u64> = shape.iter().map(|&d| d.max(1)).collect();
            let meta = array_meta(vals.zarr_type(), &shape, &chunk, enc("array", "0.2.0"));
            b.whole(path, meta, vals)
        }
        UnsValue::Dict(d) => {
            b.node(path, group_meta(enc("dict", "0.1.0")));
            for (k, v) in d {
                encode_uns(b, &format!("{path}/{k}"), v);
            }
        }
    }
}

fn pad(mut v: Vec<String>, n: usize) -> Vec<String> {
    v.resize(n, String::new());
    v
}

/// The `zarr.json` of `uns/spatialdata_attrs/region` holding `n` regions (1-D string-array).
pub(crate) fn region_meta(n: u64) -> Value {
    array_meta("string", &[n], &[REGION_CHUNK], enc("string-array", "0.2.0"))
}

/// Adds `uns/spatialdata_attrs` for `a` to `b`.
pub(crate) fn encode_annotation(b: &mut Build, a: &Annotation) {
    let base = "uns/spatialdata_attrs";
    b.node(base, group_meta(enc("dict", "0.1.0")));
    b.rows(&format!("{base}/region"), region_meta(a.region.len() as u64), 0, Vals::Str(a.region.clone()));
    let scalar = array_meta("string", &[], &[], enc("string", "0.2.0"));
    b.whole(&format!("{base}/region_key"), scalar.clone(), Vals::Str(vec![a.region_key.clone()]));
    b.whole(&format!("{base}/instance_key"), scalar, Vals::Str(vec![a.instance_key.clone()]));
}

/// Direct children of group `path` in `tree` (their full paths), sorted.
pub(crate) fn children(tree: &NodeTree, path: &str) -> Vec<String> {
    let prefix = format!("{path}/");
    tree.keys()
        .filter(|k| k.strip_prefix(&prefix).is_some_and(|rest| !rest.is_empty() && !rest.contains('/')))
        .cloned()
        .collect()
}

/// Reads the whole array at `path` as its tree metadata describes it.
pub(crate) fn read_all(io: &Io<'_>, tree: &NodeTree, path: &str) -> Result<Vals> {
    let meta = tree.get(path).ok_or_else(|| corrupt(io.name, path, "the array's zarr.json is missing"))?;
    let shape = meta_shape(meta).ok_or_else(|| corrupt(io.name, path, "no shape"))?;
    read_rows(io, path, meta, shape.first().copied().unwrap_or(1))
}

fn attr<'v>(node: &'v Value, key: &str) -> Option<&'v str> {
    node.get("attributes")?.get(key)?.as_str()
}

/// Reads the uns value at `path`.
pub(crate) fn decode_uns(io: &Io<'_>, tree: &NodeTree, path: &str) -> Result<UnsValue> {
    let name = io.name;
    let node = tree.get(path).ok_or_else(|| corrupt(name, path, "the node's zarr.json is missing"))?;
    let ty = attr(node, "encoding-type").unwrap_or("");
    let is_group = node.get("node_type").and_then(Value::as_str) == Some("group");
    if is_group {
        if ty != "dict" {
            return Err(unsupported(name, path, ty));
        }
        let mut d = BTreeMap::new();
        for c in children(tree, path) {
            let key = c.rsplit('/').next().unwrap_or(&c).to_string();
            d.insert(key, decode_uns(io, tree, &c)?);
        }
        return Ok(UnsValue::Dict(d));
    }
    let shape = meta_shape(node).ok_or_else(|| corrupt(name, path, "no shape"))?;
    let vals = read_all(io, tree, path)?;
    let bad = || corrupt(name, path, format!("{ty} holds unexpected data"));
    Ok(match ty {
        "string" => match vals {
            Vals::Str(v) => UnsValue::Str(v.into_iter().next().ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        "numeric-scalar" => match vals {
            Vals::Bool(v) => UnsValue::Bool(*v.first().ok_or_else(bad)?),
            Vals::F32(v) => UnsValue::Float(*v.first().ok_or_else(bad)? as f64),
            Vals::F64(v) => UnsValue::Float(*v.first().ok_or_else(bad)?),
            Vals::Str(_) => return Err(bad()),
            other => {
                let as_i64 = match other {
                    Vals::U8(v) => v.first().map(|&x| x as i64),
                    Vals::U16(v) => v.first().map(|&x| x as i64),
                    Vals::U32(v) => v.first().map(|&x| x as i64),
                    Vals::U64(v) => v.first().and_then(|&x| i64::try_from(x).ok()),
                    Vals::I8(v) => v.first().map(|&x| x as i64),
                    Vals::I16(v) => v.first().map(|&x| x as i64),
                    Vals::I32(v) => v.first().map(|&x| x as i64),
                    Vals::I64(v) => v.first().copied(),
                    _ => None,
                };
                UnsValue::Int(as_i64.ok_or_else(bad)?)
            }
        },
        "string-array" => match vals {
            Vals::Str(v) if shape.len() == 1 => UnsValue::Strings(v),
            _ => return Err(bad()),
        },
        "array" => UnsValue::Array(vals_raster(vals, &shape).ok_or_else(bad)?),
        other => return Err(unsupported(name, path, other)),
    })
}

fn unsupported(name: &ElementName, path: &str, ty: &str) -> crate::error::Error {
    invalid(
        name,
        format!(
            "'{path}' has anndata encoding {ty:?}, which zarrtx does not read in uns (supported: dict, string, \
             numeric-scalar, string-array, array); read this table with anndata instead"
        ),
    )
}

/// Reads `uns/spatialdata_attrs` (if any) as an [`Annotation`].
pub(crate) fn decode_annotation(io: &Io<'_>, tree: &NodeTree) -> Result<Option<Annotation>> {
    let base = "uns/spatialdata_attrs";
    if !tree.contains_key(base) {
        return Ok(None);
    }
    let name = io.name;
    let get = |key: &str| -> Result<UnsValue> {
        let p = format!("{base}/{key}");
        if !tree.contains_key(&p) {
            return Err(corrupt(name, &p, "spatialdata_attrs lacks this key"));
        }
        decode_uns(io, tree, &p)
    };
    let string = |key: &str| -> Result<String> {
        match get(key)? {
            UnsValue::Str(s) => Ok(s),
            _ => Err(corrupt(name, &format!("{base}/{key}"), "expected a string")),
        }
    };
    let region = match get("region")? {
        UnsValue::Str(s) => vec![s],
        UnsValue::Strings(v) => v,
        _ => return Err(corrupt(name, &format!("{base}/region"), "expected a string or a list of strings")),
    };
    Ok(Some(Annotation {
        region,
        region_key: string("region_key")?,
        instance_key: string("instance_key")?,
    }))
}

/// The table group's attributes for `annotation`.
pub(crate) fn root_attrs(annotation: Option<&Annotation>) -> Value {
    let mut attrs = enc("anndata", "0.1.0");
    attrs["version"] = json!("0.2");
    if let Some(a) = annotation {
        attrs["spatialdata-encoding-type"] = json!("ngff:regions_table");
        attrs["region"] = json!(a.region);
        attrs["region_key"] = json!(a.region_key);
        attrs["instance_key"] = json!(a.instance_key);
    }
    attrs
}
