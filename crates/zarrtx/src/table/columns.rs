//! Dataframe columns: how an Arrow column is stored (its anndata encoding, [`ColKind`]), its encoded values
//! ([`ColData`]), the metadata nodes of a column, and the way back to Arrow.

use super::chunks::{array_meta, enc, group_meta, meta_dtype, row_chunk, Vals, CATEGORY_CHUNK};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementName;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, BooleanArray, DictionaryArray, PrimitiveArray, StringArray};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::DataType;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// `InvalidElement` for table `name`.
pub(crate) fn invalid(name: &ElementName, reason: impl Into<String>) -> Error {
    Error::InvalidElement {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// `CorruptMetadata` for node `path` of table `name`.
pub(crate) fn corrupt(name: &ElementName, path: &str, reason: impl Into<String>) -> Error {
    Error::CorruptMetadata {
        path: format!("tables/{name}/{path}").into(),
        reason: reason.into(),
    }
}

/// How one dataframe column is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColKind {
    /// `array` of a numeric or bool zarr type.
    Array(String),
    /// `string-array`.
    Str,
    /// `nullable-integer` of an integer zarr type.
    NullableInt(String),
    /// `nullable-boolean`.
    NullableBool,
    /// `nullable-string-array`.
    NullableStr,
    /// `categorical` with codes of a signed integer zarr type.
    Categorical { codes: String, ordered: bool },
}

/// A column's encoded values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColData {
    /// `array` / `string-array` values.
    Plain(Vals),
    /// `values` and `mask` (true = missing).
    Nullable { values: Vals, mask: Vec<bool> },
    /// `codes` (-1 = missing) and the categories to store (all of them for a new column; only the ones to add
    /// after the existing ones for an append).
    Categorical { codes: Vals, categories: Vec<String> },
}

impl ColKind {
    /// The anndata `encoding-type`.
    pub fn encoding(&self) -> &'static str {
        match self {
            ColKind::Array(_) => "array",
            ColKind::Str => "string-array",
            ColKind::NullableInt(_) => "nullable-integer",
            ColKind::NullableBool => "nullable-boolean",
            ColKind::NullableStr => "nullable-string-array",
            ColKind::Categorical { .. } => "categorical",
        }
    }

    /// A human description for error messages.
    pub fn describe(&self) -> String {
        match self {
            ColKind::Array(t) => format!("{t} without nulls"),
            ColKind::Str => "strings without nulls".into(),
            ColKind::NullableInt(t) => format!("nullable {t}"),
            ColKind::NullableBool => "nullable bool".into(),
            ColKind::NullableStr => "nullable strings".into(),
            ColKind::Categorical { codes, .. } => format!("categorical (codes {codes})"),
        }
    }

    /// The Arrow type `read_table` returns for a column stored this way.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColKind::Array(t) | ColKind::NullableInt(t) => arrow_of(t),
            ColKind::Str | ColKind::NullableStr => DataType::Utf8,
            ColKind::NullableBool => DataType::Boolean,
            ColKind::Categorical { codes, .. } => {
                DataType::Dictionary(Box::new(arrow_of(codes)), Box::new(DataType::Utf8))
            }
        }
    }

    /// True when the column may hold nulls.
    pub fn nullable(&self) -> bool {
        !matches!(self, ColKind::Array(_) | ColKind::Str)
    }
}

fn arrow_of(zarr: &str) -> DataType {
    match zarr {
        "bool" => DataType::Boolean,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// The zarr type of an Arrow numeric/bool type.
pub(crate) fn zarr_of(dt: &DataType) -> Option<&'static str> {
    Some(match dt {
        DataType::Boolean => "bool",
        DataType::UInt8 => "uint8",
        DataType::UInt16 => "uint16",
        DataType::UInt32 => "uint32",
        DataType::UInt64 => "uint64",
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float32 => "float32",
        DataType::Float64 => "float64",
        _ => return None,
    })
}

/// The codes type pandas picks for `n` categories (`coerce_indexer_dtype`), at least `min` ("int8"/"int16").
pub(crate) fn codes_type(n: usize, min16: bool) -> &'static str {
    if n < 127 && !min16 {
        "int8"
    } else if n < 32767 {
        "int16"
    } else if n < i32::MAX as usize {
        "int32"
    } else {
        "int64"
    }
}

/// Largest code a codes type can hold.
pub(crate) fn codes_max(codes: &str) -> i64 {
    match codes {
        "int8" => i8::MAX as i64,
        "int16" => i16::MAX as i64,
        "int32" => i32::MAX as i64,
        _ => i64::MAX,
    }
}

/// True for Utf8 / LargeUtf8.
pub(crate) fn is_string(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8)
}

/// The strings of a Utf8/LargeUtf8 array (nulls as "") and whether each is null.
pub(crate) fn strings(arr: &dyn Array) -> Option<(Vec<String>, Vec<bool>)> {
    let mask: Vec<bool> = (0..arr.len()).map(|i| arr.is_null(i)).collect();
    let vals: Vec<String> = if let Some(a) = arr.as_string_opt::<i32>() {
        (0..a.len()).map(|i| if a.is_null(i) { String::new() } else { a.value(i).to_string() }).collect()
    } else if let Some(a) = arr.as_string_opt::<i64>() {
        (0..a.len()).map(|i| if a.is_null(i) { String::new() } else { a.value(i).to_string() }).collect()
    } else {
        return None;
    };
    Some((vals, mask))
}

/// Dictionary keys as i64 (null = -1) and the dictionary's string values.
pub(crate) fn dictionary(arr: &dyn Array) -> Option<(Vec<i64>, Vec<String>)> {
    macro_rules! keys {
        ($k:ty) => {{
            let d = arr.as_dictionary_opt::<$k>()?;
            let keys: Vec<i64> = (0..d.len())
                .map(|i| if d.keys().is_null(i) { -1 } else { d.keys().value(i) as i64 })
                .collect();
            (keys, strings(d.values().as_ref())?.0)
        }};
    }
    let DataType::Dictionary(k, v) = arr.data_type() else { return None };
    if !is_string(v) {
        return None;
    }
    Some(match k.as_ref() {
        DataType::Int8 => keys!(Int8Type),
        DataType::Int16 => keys!(Int16Type),
        DataType::Int32 => keys!(Int32Type),
        DataType::Int64 => keys!(Int64Type),
        DataType::UInt8 => keys!(UInt8Type),
        DataType::UInt16 => keys!(UInt16Type),
        DataType::UInt32 => keys!(UInt32Type),
        DataType::UInt64 => keys!(UInt64Type),
        _ => return None,
    })
}

/// Numeric/bool values of a primitive or boolean array: values (nulls as 0/false, or NaN for floats) and the
/// null mask.
pub(crate) fn numeric(arr: &dyn Array) -> Option<(Vals, Vec<bool>)> {
    let mask: Vec<bool> = (0..arr.len()).map(|i| arr.is_null(i)).collect();
    macro_rules! prim {
        ($t:ty, $w:ident, $null:expr) => {{
            let a = arr.as_primitive_opt::<$t>()?;
            Vals::$w((0..a.len()).map(|i| if a.is_null(i) { $null } else { a.value(i) }).collect())
        }};
    }
    let vals = match arr.data_type() {
        DataType::Boolean => {
            let a = arr.as_boolean_opt()?;
            Vals::Bool((0..a.len()).map(|i| !a.is_null(i) && a.value(i)).collect())
        }
        DataType::UInt8 => prim!(UInt8Type, U8, 0),
        DataType::UInt16 => prim!(UInt16Type, U16, 0),
        DataType::UInt32 => prim!(UInt32Type, U32, 0),
        DataType::UInt64 => prim!(UInt64Type, U64, 0),
        DataType::Int8 => prim!(Int8Type, I8, 0),
        DataType::Int16 => prim!(Int16Type, I16, 0),
        DataType::Int32 => prim!(Int32Type, I32, 0),
        DataType::Int64 => prim!(Int64Type, I64, 0),
        DataType::Float32 => prim!(Float32Type, F32, f32::NAN),
        DataType::Float64 => prim!(Float64Type, F64, f64::NAN),
        _ => return None,
    };
    Some((vals, mask))
}

/// Integer values of an integer column as i128 (None for nulls); `None` when the column is not an integer.
pub(crate) fn integers(arr: &dyn Array) -> Option<Vec<Option<i128>>> {
    let (vals, mask) = numeric(arr)?;
    let v: Vec<i128> = match vals {
        Vals::U8(v) => v.into_iter().map(i128::from).collect(),
        Vals::U16(v) => v.into_iter().map(i128::from).collect(),
        Vals::U32(v) => v.into_iter().map(i128::from).collect(),
        Vals::U64(v) => v.into_iter().map(i128::from).collect(),
        Vals::I8(v) => v.into_iter().map(i128::from).collect(),
        Vals::I16(v) => v.into_iter().map(i128::from).collect(),
        Vals::I32(v) => v.into_iter().map(i128::from).collect(),
        Vals::I64(v) => v.into_iter().map(i128::from).collect(),
        _ => return None,
    };
    Some(v.into_iter().zip(mask).map(|(v, m)| if m { None } else { Some(v) }).collect())
}

/// How a new column of `arr` is stored. `min16` raises categorical codes to at least int16 (the region column).
pub(crate) fn kind_for_arrow(name: &ElementName, col: &str, arr: &dyn Array, min16: bool) -> Result<ColKind> {
    let dt = arr.data_type();
    let nulls = arr.null_count() > 0;
    if let Some(z) = zarr_of(dt) {
        return Ok(match (nulls, z) {
            (false, _) | (true, "float32" | "float64") => ColKind::Array(z.to_string()),
            (true, "bool") => ColKind::NullableBool,
            (true, _) => ColKind::NullableInt(z.to_string()),
        });
    }
    if is_string(dt) {
        // anndata >= 0.12 with pandas 3 writes every `str` column this way (nulls or not); reading it back gives
        // pandas' `str` dtype, as for a table spatialdata wrote, and later appends may bring missing values.
        return Ok(ColKind::NullableStr);
    }
    if let Some((_, cats)) = dictionary(arr) {
        let distinct = cats.iter().collect::<std::collections::HashSet<_>>().len();
        return Ok(ColKind::Categorical {
            codes: codes_type(distinct, min16).to_string(),
            ordered: false,
        });
    }
    Err(invalid(
        name,
        format!(
            "column '{col}' has Arrow type {dt}, which has no anndata encoding here: use an integer, float, \
             boolean, Utf8 or Dictionary(integer, Utf8) column"
        ),
    ))
}

/// Reads the stored kind of the column node at `path` from `tree`.
pub(crate) fn kind_from_tree(name: &ElementName, tree: &NodeTree, path: &str) -> Result<ColKind> {
    let node = tree.get(path).ok_or_else(|| corrupt(name, path, "the column's zarr.json is missing"))?;
    let attrs = node.get("attributes").cloned().unwrap_or(Value::Null);
    let ty = attrs.get("encoding-type").and_then(Value::as_str).unwrap_or("");
    let child_dtype = |child: &str| -> Result<String> {
        let p = format!("{path}/{child}");
        tree.get(&p)
            .and_then(meta_dtype)
            .map(str::to_string)
            .ok_or_else(|| corrupt(name, &p, "missing array or data_type"))
    };
    Ok(match ty {
        "array" => {
            let t = meta_dtype(node).unwrap_or("");
            if zarr_of(&arrow_of(t)).is_none() {
                return Err(corrupt(name, path, format!("unsupported data type {t:?} of an 'array' column")));
            }
            ColKind::Array(t.to_string())
        }
        "string-array" => ColKind::Str,
        "nullable-integer" => ColKind::NullableInt(child_dtype("values")?),
        "nullable-boolean" => ColKind::NullableBool,
        "nullable-string-array" => ColKind::NullableStr,
        "categorical" => ColKind::Categorical {
            codes: child_dtype("codes")?,
            ordered: attrs.get("ordered").and_then(Value::as_bool).unwrap_or(false),
        },
        other => {
            return Err(invalid(
                name,
                format!("column at '{path}' has encoding-type {other:?}, which zarrtx cannot read or append to"),
            ))
        }
    })
}

/// Encodes `arr` (column `col`) as `kind`. For categoricals, `existing` holds the stored categories when
/// appending: codes then refer to the merged order (existing first, then the batch's used values not yet present,
/// which are returned as the categories to add).
pub(crate) fn encode_column(
    name: &ElementName,
    col: &str,
    kind: &ColKind,
    arr: &dyn Array,
    existing: Option<&[String]>,
) -> Result<ColData> {
    let mismatch = || {
        invalid(
            name,
            format!(
                "column '{col}' has Arrow type {} but the table stores it as {}: cast it to {}",
                arr.data_type(),
                kind.describe(),
                kind.arrow_type()
            ),
        )
    };
    match kind {
        ColKind::Array(t) | ColKind::NullableInt(t) => {
            if zarr_of(arr.data_type()) != Some(t.as_str()) {
                return Err(mismatch());
            }
            let (vals, mask) = numeric(arr).ok_or_else(mismatch)?;
            if matches!(kind, ColKind::NullableInt(_)) {
                Ok(ColData::Nullable { values: vals, mask })
            } else if mask.iter().any(|&m| m) && !matches!(vals, Vals::F32(_) | Vals::F64(_)) {
                Err(invalid(
                    name,
                    format!(
                        "column '{col}' holds nulls but the table stores it as {} (no mask): fill the nulls",
                        kind.describe()
                    ),
                ))
            } else {
                Ok(ColData::Plain(vals))
            }
        }
        ColKind::NullableBool => {
            if arr.data_type() != &DataType::Boolean {
                return Err(mismatch());
            }
            let (values, mask) = numeric(arr).ok_or_else(mismatch)?;
            Ok(ColData::Nullable { values, mask })
        }
        ColKind::Str | ColKind::NullableStr => {
            let (vals, mask) = strings(arr).ok_or_else(mismatch)?;
            if *kind == ColKind::NullableStr {
                Ok(ColData::Nullable { values: Vals::Str(vals), mask })
            } else if mask.iter().any(|&m| m) {
                Err(invalid(
                    name,
                    format!("column '{col}' holds nulls but the table stores it as strings without a mask: fill the nulls"),
                ))
            } else {
                Ok(ColData::Plain(Vals::Str(vals)))
            }
        }
        ColKind::Categorical { codes, .. } => {
            let (keys, dict) = dictionary(arr).ok_or_else(mismatch)?;
            let (codes_i64, categories) = match existing {
                None => {
                    if let Some(k) = keys.iter().find(|&&k| k >= dict.len() as i64) {
                        return Err(invalid(name, format!("column '{col}': dictionary key {k} is out of range")));
                    }
                    // Categories are the distinct dictionary values in order (a concatenation of dictionary arrays
                    // may repeat values); codes point at each value's first occurrence.
                    let mut first: HashMap<&str, i64> = HashMap::with_capacity(dict.len());
                    let mut categories = Vec::with_capacity(dict.len());
                    let remap: Vec<i64> = dict
                        .iter()
                        .map(|v| {
                            *first.entry(v.as_str()).or_insert_with(|| {
                                categories.push(v.clone());
                                categories.len() as i64 - 1
                            })
                        })
                        .collect();
                    let codes = keys.iter().map(|&k| if k < 0 { -1 } else { remap[k as usize] }).collect();
                    (codes, categories)
                }
                Some(existing) => {
                    let mut pos: HashMap<&str, i64> =
                        existing.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect();
                    let mut added: Vec<String> = Vec::new();
                    let mut map: Vec<Option<i64>> = vec![None; dict.len()];
                    let mut out = Vec::with_capacity(keys.len());
                    for &k in &keys {
                        if k < 0 {
                            out.push(-1);
                            continue;
                        }
                        let ku = k as usize;
                        let v = dict
                            .get(ku)
                            .ok_or_else(|| invalid(name, format!("column '{col}': dictionary key {k} is out of range")))?;
                        let code = match map[ku] {
                            Some(c) => c,
                            None => {
                                let c = match pos.get(v.as_str()) {
                                    Some(&c) => c,
                                    None => {
                                        let c = (existing.len() + added.len()) as i64;
                                        added.push(v.clone());
                                        c
                                    }
                                };
                                map[ku] = Some(c);
                                c
                            }
                        };
                        out.push(code);
                    }
                    for (i, s) in added.iter().enumerate() {
                        pos.insert(s.as_str(), (existing.len() + i) as i64);
                    }
                    (out, added)
                }
            };
            let total = existing.map_or(0, <[String]>::len) + categories.len();
            if total > 0 && (total as i64 - 1) > codes_max(codes) {
                return Err(invalid(
                    name,
                    format!(
                        "column '{col}' would have {total} categories, more than its stored {codes} codes can \
                         number: rewrite the table (a full write picks wider codes) before appending these rows"
                    ),
                ));
            }
            let codes = codes_vals(codes, &codes_i64);
            Ok(ColData::Categorical { codes, categories })
        }
    }
}

fn codes_vals(codes: &str, v: &[i64]) -> Vals {
    match codes {
        "int8" => Vals::I8(v.iter().map(|&c| c as i8).collect()),
        "int16" => Vals::I16(v.iter().map(|&c| c as i16).collect()),
        "int32" => Vals::I32(v.iter().map(|&c| c as i32).collect()),
        _ => Vals::I64(v.to_vec()),
    }
}

/// The row-indexed arrays of a column stored at `path`: (array path, values).
pub(crate) fn row_arrays(path: &str, data: &ColData) -> Vec<(String, Vals)> {
    match data {
        ColData::Plain(v) => vec![(path.to_string(), v.clone())],
        ColData::Nullable { values, mask } => vec![
            (format!("{path}/values"), values.clone()),
            (format!("{path}/mask"), Vals::Bool(mask.clone())),
        ],
        ColData::Categorical { codes, .. } => vec![(format!("{path}/codes"), codes.clone())],
    }
}

/// The metadata nodes of a new column stored at `path` with `n` rows (and `n_categories` categories).
pub(crate) fn column_nodes(path: &str, kind: &ColKind, n: u64, n_categories: u64) -> Vec<(String, Value)> {
    let row = |dtype: &str, attrs: Value| array_meta(dtype, &[n], &[row_chunk(1, dtype)], attrs);
    match kind {
        ColKind::Array(t) => vec![(path.to_string(), row(t, enc("array", "0.2.0")))],
        ColKind::Str => vec![(path.to_string(), row("string", enc("string-array", "0.2.0")))],
        ColKind::NullableInt(_) | ColKind::NullableBool | ColKind::NullableStr => {
            let (values_type, values_enc) = match kind {
                ColKind::NullableInt(t) => (t.as_str(), "array"),
                ColKind::NullableBool => ("bool", "array"),
                _ => ("string", "string-array"),
            };
            let mut attrs = enc(kind.encoding(), "0.1.0");
            if *kind == ColKind::NullableStr {
                // anndata's marker for pandas' default `str` dtype (missing = NaN); "NA" would read back as
                // `string[python]`.
                attrs["na-value"] = json!("NaN");
            }
            vec![
                (path.to_string(), group_meta(attrs)),
                (format!("{path}/values"), row(values_type, enc(values_enc, "0.2.0"))),
                (format!("{path}/mask"), row("bool", enc("array", "0.2.0"))),
            ]
        }
        ColKind::Categorical { codes, ordered } => {
            let mut attrs = enc("categorical", "0.2.0");
            attrs["ordered"] = json!(ordered);
            vec![
                (path.to_string(), group_meta(attrs)),
                (format!("{path}/codes"), row(codes, enc("array", "0.2.0"))),
                (
                    format!("{path}/categories"),
                    array_meta("string", &[n_categories], &[CATEGORY_CHUNK], enc("string-array", "0.2.0")),
                ),
            ]
        }
    }
}

/// Builds the Arrow column of `kind` from its stored arrays: `get(child)` reads the array at `path/child` (or
/// `path` itself for "").
pub(crate) fn decode_column(
    name: &ElementName,
    path: &str,
    kind: &ColKind,
    mut get: impl FnMut(&str) -> Result<Vals>,
) -> Result<ArrayRef> {
    let bad = |what: &str| corrupt(name, path, format!("unexpected stored data: {what}"));
    Ok(match kind {
        ColKind::Array(_) => plain_array(get("")?, None),
        ColKind::Str => match get("")? {
            Vals::Str(v) => Arc::new(StringArray::from(v)),
            _ => return Err(bad("a string-array that does not hold strings")),
        },
        ColKind::NullableInt(_) | ColKind::NullableBool | ColKind::NullableStr => {
            let values = get("values")?;
            let Vals::Bool(mask) = get("mask")? else { return Err(bad("a mask that is not bool")) };
            if mask.len() != values.len() {
                return Err(bad("values and mask of different lengths"));
            }
            match values {
                Vals::Str(v) => Arc::new(StringArray::from(
                    v.into_iter().zip(&mask).map(|(s, &m)| if m { None } else { Some(s) }).collect::<Vec<_>>(),
                )),
                other => plain_array(other, Some(&mask)),
            }
        }
        ColKind::Categorical { .. } => {
            let Vals::Str(cats) = get("categories")? else { return Err(bad("categories that are not strings")) };
            let values: ArrayRef = Arc::new(StringArray::from(cats));
            let codes = get("codes")?;
            macro_rules! dict {
                ($k:ty, $v:expr) => {{
                    let keys = PrimitiveArray::<$k>::new(
                        $v.iter().map(|&c| if c < 0 { 0 } else { c }).collect::<Vec<_>>().into(),
                        Some(NullBuffer::from($v.iter().map(|&c| c >= 0).collect::<Vec<bool>>())),
                    );
                    let d = DictionaryArray::<$k>::try_new(keys, values)
                        .map_err(|e| bad(&format!("categorical codes out of range: {e}")))?;
                    Arc::new(d) as ArrayRef
                }};
            }
            match codes {
                Vals::I8(v) => dict!(Int8Type, v),
                Vals::I16(v) => dict!(Int16Type, v),
                Vals::I32(v) => dict!(Int32Type, v),
                Vals::I64(v) => dict!(Int64Type, v),
                _ => return Err(bad("categorical codes that are not signed integers")),
            }
        }
    })
}

/// An Arrow array of numeric/bool values, with nulls where `mask` is true.
pub(crate) fn plain_array(vals: Vals, mask: Option<&[bool]>) -> ArrayRef {
    let nulls = mask.map(|m| NullBuffer::from(m.iter().map(|&x| !x).collect::<Vec<bool>>()));
    macro_rules! prim {
        ($t:ty, $v:expr) => {
            Arc::new(PrimitiveArray::<$t>::new($v.into(), nulls)) as ArrayRef
        };
    }
    match vals {
        Vals::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
        Vals::U8(v) => prim!(UInt8Type, v),
        Vals::U16(v) => prim!(UInt16Type, v),
        Vals::U32(v) => prim!(UInt32Type, v),
        Vals::U64(v) => prim!(UInt64Type, v),
        Vals::I8(v) => prim!(Int8Type, v),
        Vals::I16(v) => prim!(Int16Type, v),
        Vals::I32(v) => prim!(Int32Type, v),
        Vals::I64(v) => prim!(Int64Type, v),
        Vals::F32(v) => prim!(Float32Type, v),
        Vals::F64(v) => prim!(Float64Type, v),
        Vals::Str(v) => Arc::new(StringArray::from(
            v.into_iter()
                .enumerate()
                .map(|(i, s)| if mask.is_some_and(|m| m.get(i).copied().unwrap_or(false)) { None } else { Some(s) })
                .collect::<Vec<_>>(),
        )),
    }
}
