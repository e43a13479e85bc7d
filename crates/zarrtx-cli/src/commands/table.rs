//! `zarrtx add-table` / `zarrtx append`: build an AnnData table from an obs file (Parquet or CSV), an optional
//! dense X (`.npy` or numeric Parquet) and var names, and add it to the store or append its rows to a table
//! (creating the table when it does not exist yet). Appends are safe from any number of processes at once.
//!
//! Input conventions:
//! - every obs column except the index becomes an obs column; a CSV column holding only `true`/`false` is read as
//!   boolean; the region column and `--categorical` columns become categorical (Arrow dictionaries);
//! - the obs index is `--index COLUMN`, else an `_index` column of the file, else generated: `<region>_<id>` for
//!   annotated rows (unique, as (region, instance id) is), row numbers otherwise;
//! - on `append`, input columns are converted to the types the table stores (int64 → int32, float64 → float32,
//!   strings → categorical, ...), X to the stored dtype, and var defaults to the table's var. Only the table's
//!   metadata and var are read, never its rows, so an append costs O(rows appended).

use super::open_write;
use crate::cli_error::{CliError, CliResult};
use crate::input::csv::read_csv;
use crate::input::npy::NpyInfo;
use crate::input::vector::read_parquet;
use crate::output::emit;
use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array,
    RecordBatch, StringArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use clap::Args;
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use zarrtx::meta::NodeTree;
use zarrtx::table::{Annotation, Matrix, TableData};
use zarrtx::{AddOptions, ElementName, ElementType, RasterArray, Store};

/// The table input shared by `add-table` and `append`.
#[derive(Debug, Args)]
pub struct TableInputArgs {
    /// The store directory.
    pub store: PathBuf,
    /// The table's name (letters, digits, '_', '-', '.').
    pub name: String,
    /// The obs dataframe (one row per observation): a .parquet file or a .csv file with a header.
    #[arg(long, value_name = "OBS")]
    pub obs: PathBuf,
    /// The dense matrix X (n_obs × n_vars): a 2-D .npy file, or a .parquet file of numeric columns (their names
    /// become the var names unless --var or --var-names is given).
    #[arg(long, value_name = "X")]
    pub x: Option<PathBuf>,
    /// Variable names, comma-separated (default: the X Parquet column names, else 0,1,2,...; on append: the
    /// table's).
    #[arg(long, value_delimiter = ',', num_args = 1, conflicts_with = "var", value_name = "NAMES")]
    pub var_names: Option<Vec<String>>,
    /// The var dataframe: a .parquet or .csv file whose first column (strings) is the var index.
    #[arg(long, value_name = "VAR")]
    pub var: Option<PathBuf>,
    /// The categorical obs column naming the element each row annotates (with --instance-key; on append the
    /// table's keys are the default).
    #[arg(long, value_name = "COLUMN", requires = "instance_key")]
    pub region_key: Option<String>,
    /// The integer obs column holding each row's instance id (label value or shape index) in its element.
    #[arg(long, value_name = "COLUMN", requires = "region_key")]
    pub instance_key: Option<String>,
    /// The annotated elements, comma-separated (default: the distinct values of the region column). With one
    /// name and no region column in the obs file, every row gets that region.
    #[arg(long, value_delimiter = ',', num_args = 1, value_name = "NAMES")]
    pub region: Option<Vec<String>>,
    /// The obs column to use as the index (default: an `_index` column, else generated).
    #[arg(long, value_name = "COLUMN")]
    pub index: Option<String>,
    /// Further obs columns to store as categorical, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1, value_name = "COLUMNS")]
    pub categorical: Option<Vec<String>>,
}

/// Arguments of `add-table`.
#[derive(Debug, Args)]
pub struct AddTableArgs {
    #[command(flatten)]
    pub input: TableInputArgs,
    /// Replace an existing element of the same name.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    #[command(flatten)]
    pub input: TableInputArgs,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("{}: {what}", path.display()))
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// Reads a Parquet or CSV file into one batch (CSV columns of only true/false become boolean).
pub fn read_frame(path: &Path) -> CliResult<RecordBatch> {
    match extension(path).as_str() {
        "parquet" | "pq" => {
            let batches = read_parquet(path)?;
            let b = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).map_err(|e| bad(path, e))?;
            normalize_strings(&b).map_err(|e| bad(path, e.message))
        }
        "csv" => {
            let b = read_csv(path)?;
            let mut fields = Vec::new();
            let mut cols = Vec::new();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                match bools_from_strings(c) {
                    Some(bools) => {
                        fields.push(Field::new(f.name(), DataType::Boolean, true));
                        cols.push(bools);
                    }
                    None => {
                        fields.push(f.as_ref().clone());
                        cols.push(c.clone());
                    }
                }
            }
            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| bad(path, e))
        }
        other => Err(bad(path, format!("unsupported input type '.{other}': give a .parquet or .csv file"))),
    }
}

/// Large and view strings as Utf8, dictionaries of them as `Dictionary(Int32, Utf8)` (as pyarrow writes pandas 3
/// strings and categoricals), so that every string column has the types the engine expects.
fn normalize_strings(b: &RecordBatch) -> CliResult<RecordBatch> {
    let mut out = b.clone();
    for f in b.schema().fields() {
        let c = b.column_by_name(f.name()).expect("own field");
        let conv: Option<ArrayRef> = match f.data_type() {
            DataType::LargeUtf8 | DataType::Utf8View => string_values(c.as_ref()).map(|v| Arc::new(StringArray::from(v)) as ArrayRef),
            DataType::Dictionary(_, v) if v.as_ref() != &DataType::Utf8 => {
                string_values(c.as_ref()).map(|vals| {
                    let mut b = StringDictionaryBuilder::<Int32Type>::new();
                    for v in vals {
                        b.append_option(v);
                    }
                    Arc::new(b.finish()) as ArrayRef
                })
            }
            _ => None,
        };
        if let Some(conv) = conv {
            out = set_column(&out, f.name(), conv)?;
        }
    }
    Ok(out)
}

/// A Utf8 column whose every non-null value is true/false (any case) as booleans.
fn bools_from_strings(c: &ArrayRef) -> Option<ArrayRef> {
    let s = c.as_string_opt::<i32>()?;
    let mut out = Vec::with_capacity(s.len());
    let mut any = false;
    for v in s.iter() {
        out.push(match v {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => return None,
        });
        any |= v.is_some();
    }
    any.then(|| Arc::new(BooleanArray::from(out)) as ArrayRef)
}

/// The values of a string-like column (Utf8, LargeUtf8, dictionary of strings, or integers as text).
fn string_values(c: &dyn Array) -> Option<Vec<Option<String>>> {
    if let Some(s) = c.as_string_opt::<i32>() {
        return Some(s.iter().map(|v| v.map(str::to_string)).collect());
    }
    if let Some(s) = c.as_string_opt::<i64>() {
        return Some(s.iter().map(|v| v.map(str::to_string)).collect());
    }
    if let Some(s) = c.as_string_view_opt() {
        return Some(s.iter().map(|v| v.map(str::to_string)).collect());
    }
    if let Some(d) = c.as_any_dictionary_opt() {
        let vals = string_values(d.values().as_ref())?;
        let keys = d.normalized_keys();
        return Some((0..c.len()).map(|i| if c.is_null(i) { None } else { vals[keys[i]].clone() }).collect());
    }
    let ints = integer_values(c)?;
    Some(ints.into_iter().map(|v| v.map(|x| x.to_string())).collect())
}

/// A string-like column as a categorical (dictionary) column.
fn to_dictionary(c: &dyn Array) -> Option<ArrayRef> {
    if matches!(c.data_type(), DataType::Dictionary(_, v) if v.as_ref() == &DataType::Utf8) {
        return Some(arrow_array::make_array(c.to_data()));
    }
    let vals = string_values(c)?;
    let mut b = StringDictionaryBuilder::<Int32Type>::new();
    for v in vals {
        b.append_option(v);
    }
    Some(Arc::new(b.finish()))
}

fn integer_values(c: &dyn Array) -> Option<Vec<Option<i128>>> {
    macro_rules! ints {
        ($($t:ty),*) => {
            match c.data_type() {
                $(d if d == &<$t as ArrowPrimitiveType>::DATA_TYPE => {
                    Some(c.as_primitive::<$t>().iter().map(|v| v.map(|x| x as i128)).collect())
                })*
                _ => None,
            }
        };
    }
    ints!(Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type)
}

fn float_values(c: &dyn Array) -> Option<Vec<Option<f64>>> {
    match c.data_type() {
        DataType::Float32 => Some(c.as_primitive::<Float32Type>().iter().map(|v| v.map(f64::from)).collect()),
        DataType::Float64 => Some(c.as_primitive::<Float64Type>().iter().collect()),
        _ => integer_values(c).map(|v| v.into_iter().map(|x| x.map(|x| x as f64)).collect()),
    }
}

/// Converts column `c` (named `col`) to `target`, when that is lossless for its values; `Ok(None)` when no
/// conversion applies (the engine then reports the mismatch).
fn convert(col: &str, c: &ArrayRef, target: &DataType) -> CliResult<Option<ArrayRef>> {
    if c.data_type() == target {
        return Ok(Some(c.clone()));
    }
    macro_rules! to_int {
        ($arr:ty, $t:ty) => {{
            let Some(v) = integer_values(c.as_ref()) else { return Ok(None) };
            let out: Option<Vec<Option<$t>>> =
                v.into_iter().map(|x| match x { None => Some(None), Some(x) => <$t>::try_from(x).ok().map(Some) }).collect();
            let out = out.ok_or_else(|| {
                CliError::usage(format!("obs column '{col}': a value does not fit the table's type {target}"))
            })?;
            Ok(Some(Arc::new(<$arr>::from(out)) as ArrayRef))
        }};
    }
    match target {
        DataType::Int8 => to_int!(Int8Array, i8),
        DataType::Int16 => to_int!(Int16Array, i16),
        DataType::Int32 => to_int!(Int32Array, i32),
        DataType::Int64 => to_int!(Int64Array, i64),
        DataType::UInt8 => to_int!(UInt8Array, u8),
        DataType::UInt16 => to_int!(UInt16Array, u16),
        DataType::UInt32 => to_int!(UInt32Array, u32),
        DataType::UInt64 => to_int!(UInt64Array, u64),
        DataType::Float32 => Ok(float_values(c.as_ref())
            .map(|v| Arc::new(Float32Array::from(v.into_iter().map(|x| x.map(|x| x as f32)).collect::<Vec<_>>())) as ArrayRef)),
        DataType::Float64 => Ok(float_values(c.as_ref()).map(|v| Arc::new(Float64Array::from(v)) as ArrayRef)),
        DataType::Boolean => Ok(integer_values(c.as_ref()).and_then(|v| {
            let b: Option<Vec<Option<bool>>> =
                v.into_iter().map(|x| match x { None => Some(None), Some(0) => Some(Some(false)), Some(1) => Some(Some(true)), _ => None }).collect();
            b.map(|b| Arc::new(BooleanArray::from(b)) as ArrayRef)
        })),
        DataType::Utf8 => Ok(string_values(c.as_ref()).map(|v| Arc::new(StringArray::from(v)) as ArrayRef)),
        DataType::Dictionary(..) => Ok(to_dictionary(c.as_ref())),
        _ => Ok(None),
    }
}

/// What an append needs to know of an existing table: its obs schema (a zero-row obs batch), var, annotation and
/// X kind — read from its metadata and var only.
pub struct StoredTable {
    /// obs with no rows (the stored column types), the full var and the annotation; no X.
    pub schema: TableData,
    /// Committed rows.
    pub n_obs: u64,
    /// `"dense <dtype>"` or `"csr <dtype>"`.
    pub x: Option<String>,
}

/// Reads the schema of table `name`, or `None` when the store has no element of that name.
pub fn stored_table(store: &Store, name: &str) -> CliResult<Option<StoredTable>> {
    let snap = store.snapshot(None)?;
    let element = match snap.element(name) {
        Ok(e) => e,
        Err(zarrtx::Error::ElementNotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if element.element_type != ElementType::Tables {
        return Err(CliError::usage(format!(
            "'{}' is a {} element, not a table; choose another table name",
            element.name, element.element_type
        )));
    }
    let info = snap.table_info(name)?;
    let ename = ElementName::new(&element.name)?;
    let schema = snap.read_with(name, |dir, tree| {
        let mut pruned = NodeTree::new();
        for (k, v) in tree {
            let keep = k.is_empty()
                || ["obs", "var", "uns/spatialdata_attrs"].iter().any(|g| k == g || k.starts_with(&format!("{g}/")))
                || k == "uns";
            if !keep {
                continue;
            }
            let mut v = v.clone();
            if k.starts_with("obs/") && !k.ends_with("/categories") {
                if let Some(first) = v.get_mut("shape").and_then(|s| s.as_array_mut()).and_then(|s| s.first_mut()) {
                    *first = serde_json::json!(0);
                }
            }
            pruned.insert(k.clone(), v);
        }
        zarrtx::table::read_table(dir, &ename, &pruned)
    })?;
    Ok(Some(StoredTable { schema, n_obs: info.n_obs, x: info.x }))
}

/// Casts a numeric raster to the zarr dtype `dtype`.
fn cast_raster(a: RasterArray, dtype: &str) -> Option<RasterArray> {
    macro_rules! to_f64 {
        ($($v:ident),*) => {
            match &a { $(RasterArray::$v(x) => x.mapv(|v| v as f64),)* RasterArray::Bool(x) => x.mapv(|v| v as u8 as f64) }
        };
    }
    if a.data_type().zarr_name() == dtype {
        return Some(a);
    }
    let f: ArrayD<f64> = to_f64!(U8, U16, U32, U64, I8, I16, I32, I64, F32, F64);
    Some(match dtype {
        "float32" => RasterArray::F32(f.mapv(|v| v as f32)),
        "float64" => RasterArray::F64(f),
        "int32" => RasterArray::I32(f.mapv(|v| v as i32)),
        "int64" => RasterArray::I64(f.mapv(|v| v as i64)),
        "int16" => RasterArray::I16(f.mapv(|v| v as i16)),
        "uint8" => RasterArray::U8(f.mapv(|v| v as u8)),
        "uint16" => RasterArray::U16(f.mapv(|v| v as u16)),
        "uint32" => RasterArray::U32(f.mapv(|v| v as u32)),
        _ => return None,
    })
}

/// Loads X: a 2-D .npy, or a Parquet/CSV file of numeric columns (also returning their names).
fn load_x(path: &Path) -> CliResult<(RasterArray, Option<Vec<String>>)> {
    if extension(path) == "npy" {
        let a = NpyInfo::open(path)?.load()?;
        if a.shape().len() != 2 {
            return Err(bad(path, format!("X must be 2-D (n_obs × n_vars), got shape {:?}", a.shape())));
        }
        return Ok((a, None));
    }
    let b = read_frame(path)?;
    let (rows, cols) = (b.num_rows(), b.num_columns());
    let all_f32 = b.schema().fields().iter().all(|f| f.data_type() == &DataType::Float32);
    let mut data = vec![0f64; rows * cols];
    for (j, (f, c)) in b.schema().fields().iter().zip(b.columns()).enumerate() {
        let v = float_values(c.as_ref())
            .ok_or_else(|| bad(path, format!("X column '{}' has type {}; X needs numeric columns", f.name(), f.data_type())))?;
        for (i, x) in v.into_iter().enumerate() {
            data[i * cols + j] = x.unwrap_or(f64::NAN);
        }
    }
    let a = ArrayD::from_shape_vec(IxDyn(&[rows, cols]), data).expect("shape matches");
    let a = if all_f32 { RasterArray::F32(a.mapv(|v| v as f32)) } else { RasterArray::F64(a) };
    Ok((a, Some(b.schema().fields().iter().map(|f| f.name().clone()).collect())))
}

fn string_batch(column: &str, values: Vec<String>) -> RecordBatch {
    RecordBatch::try_from_iter(vec![(column, Arc::new(StringArray::from(values)) as ArrayRef)]).expect("one column")
}

/// Replaces (or appends) column `name` of `batch`.
fn set_column(batch: &RecordBatch, name: &str, col: ArrayRef) -> CliResult<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut cols = batch.columns().to_vec();
    let field = Field::new(name, col.data_type().clone(), col.null_count() > 0 || col.is_nullable());
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = field;
            cols[i] = col;
        }
        Err(_) => {
            fields.push(field);
            cols.push(col);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| CliError::failure(e.to_string()))
}

/// Builds the table (or the batch of rows to append) from the inputs; `stored` is the existing table, if any.
pub fn build_table(args: &TableInputArgs, stored: Option<&StoredTable>) -> CliResult<TableData> {
    let mut obs = read_frame(&args.obs)?;
    let n = obs.num_rows();
    let obs_path = &args.obs;

    // Annotation keys: given, else the table's.
    let keys = match (&args.region_key, &args.instance_key) {
        (Some(r), Some(i)) => Some((r.clone(), i.clone())),
        _ => stored.and_then(|s| s.schema.annotation.as_ref()).map(|a| (a.region_key.clone(), a.instance_key.clone())),
    };
    let mut regions_present: Vec<String> = Vec::new();
    if let Some((rk, ik)) = &keys {
        let region_col = match obs.column_by_name(rk) {
            Some(c) => to_dictionary(c.as_ref())
                .ok_or_else(|| bad(obs_path, format!("region column '{rk}' has type {}; it must hold strings", c.data_type())))?,
            None => match args.region.as_deref() {
                Some([one]) => to_dictionary(&StringArray::from(vec![one.as_str(); n])).expect("strings"),
                _ => {
                    return Err(bad(
                        obs_path,
                        format!("obs has no region column '{rk}': add it, or give --region NAME to put every row in one region"),
                    ))
                }
            },
        };
        for v in string_values(region_col.as_ref()).unwrap_or_default().into_iter().flatten() {
            if !regions_present.contains(&v) {
                regions_present.push(v);
            }
        }
        obs = set_column(&obs, rk, region_col)?;
        if obs.column_by_name(ik).is_none() {
            return Err(bad(obs_path, format!("obs has no instance id column '{ik}' (integers)")));
        }
    }
    for c in args.categorical.iter().flatten() {
        let col = obs.column_by_name(c).ok_or_else(|| bad(obs_path, format!("--categorical: no obs column '{c}'")))?;
        let dict = to_dictionary(col.as_ref())
            .ok_or_else(|| bad(obs_path, format!("--categorical: column '{c}' has type {}; it must hold strings", col.data_type())))?;
        obs = set_column(&obs, c, dict)?;
    }

    // The obs index.
    let index = match &args.index {
        Some(ix) => {
            let col = obs.column_by_name(ix).ok_or_else(|| bad(obs_path, format!("--index: no obs column '{ix}'")))?;
            let vals = string_values(col.as_ref())
                .ok_or_else(|| bad(obs_path, format!("--index column '{ix}' has type {}; use strings or integers", col.data_type())))?;
            obs = set_column(&obs, ix, Arc::new(StringArray::from(vals)))?;
            ix.clone()
        }
        None if obs.column_by_name("_index").is_some() => {
            let col = obs.column_by_name("_index").expect("present");
            let vals = string_values(col.as_ref()).ok_or_else(|| bad(obs_path, "column '_index' must hold strings"))?;
            obs = set_column(&obs, "_index", Arc::new(StringArray::from(vals)))?;
            "_index".into()
        }
        None => {
            let generated: Vec<String> = match &keys {
                Some((rk, ik)) => {
                    let r = string_values(obs.column_by_name(rk).expect("set above").as_ref()).unwrap_or_default();
                    let ids = obs.column_by_name(ik).expect("checked above");
                    let ids = integer_values(ids.as_ref()).ok_or_else(|| {
                        bad(obs_path, format!("instance id column '{ik}' has type {}; it must hold integers", ids.data_type()))
                    })?;
                    r.iter()
                        .zip(ids)
                        .map(|(r, i)| format!("{}_{}", r.as_deref().unwrap_or(""), i.map(|i| i.to_string()).unwrap_or_default()))
                        .collect()
                }
                None => {
                    let base = stored.map(|s| s.n_obs).unwrap_or(0);
                    (0..n as u64).map(|i| (base + i).to_string()).collect()
                }
            };
            obs = set_column(&obs, "_index", Arc::new(StringArray::from(generated)))?;
            "_index".into()
        }
    };
    // Index first, as anndata lists it.
    let order: Vec<usize> = std::iter::once(obs.schema().index_of(&index).expect("set"))
        .chain((0..obs.num_columns()).filter(|&i| obs.schema().field(i).name() != &index))
        .collect();
    obs = obs.project(&order).map_err(|e| CliError::failure(e.to_string()))?;

    // Conform to the stored types.
    if let Some(s) = stored {
        let stored_schema = s.schema.obs.schema();
        for f in stored_schema.fields() {
            if f.name() == &s.schema.obs_index {
                continue;
            }
            if let Some(c) = obs.column_by_name(f.name()).cloned() {
                if let Some(conv) = convert(f.name(), &c, f.data_type())? {
                    obs = set_column(&obs, f.name(), conv)?;
                }
            }
        }
        if let Some((_, ik)) = &keys {
            // A table written by another tool may carry the instance column under the same name but not in
            // its schema (it always is); nothing more to do.
            let _ = ik;
        }
    }

    // X.
    let (x, x_names) = match &args.x {
        Some(p) => {
            let (mut a, names) = load_x(p)?;
            if a.shape()[0] != n as u64 {
                return Err(bad(p, format!("X has {} rows but obs has {n}", a.shape()[0])));
            }
            if let Some(desc) = stored.and_then(|s| s.x.as_deref()) {
                match desc.split_once(' ') {
                    Some(("dense", dtype)) => {
                        a = cast_raster(a, dtype).ok_or_else(|| bad(p, format!("cannot convert X to the table's {dtype}")))?;
                    }
                    _ => return Err(bad(p, format!("the table's X is {desc}; appending supports dense X only"))),
                }
            }
            (Some(a), names)
        }
        None => (None, None),
    };

    // var.
    let (var, var_index) = if let Some(names) = &args.var_names {
        (string_batch("_index", names.clone()), "_index".to_string())
    } else if let Some(p) = &args.var {
        let b = read_frame(p)?;
        if b.num_columns() == 0 {
            return Err(bad(p, "the var file has no columns; its first column is the var index"));
        }
        let first = b.schema().field(0).name().clone();
        let vals = string_values(b.column(0).as_ref())
            .ok_or_else(|| bad(p, format!("the first column '{first}' (the var index) must hold strings")))?;
        (set_column(&b, &first, Arc::new(StringArray::from(vals)))?, first)
    } else if let Some(s) = stored {
        (s.schema.var.clone(), s.schema.var_index.clone())
    } else if let Some(names) = x_names {
        (string_batch("_index", names), "_index".to_string())
    } else {
        let k = x.as_ref().map(|a| a.shape()[1]).unwrap_or(0);
        (string_batch("_index", (0..k).map(|j| j.to_string()).collect()), "_index".to_string())
    };

    let mut t = TableData::new(obs, &index, var, &var_index);
    t.x = x.map(Matrix::Dense);
    if let Some((rk, ik)) = keys {
        let region = match &args.region {
            Some(r) if r.len() > 1 || regions_present.len() > 1 => r.clone(),
            _ => regions_present,
        };
        t.annotation = Some(Annotation { region, region_key: rk, instance_key: ik });
    }
    Ok(t)
}

/// Runs `add-table`.
pub fn run_add(args: AddTableArgs, single_writer: bool) -> CliResult<i32> {
    let name = ElementName::new(&args.input.name)?;
    let store = open_write(&args.input.store, single_writer)?;
    if !args.overwrite {
        store.check_name_free(&name)?;
    }
    let t = build_table(&args.input, None)?;
    let started = Instant::now();
    let c = store.add_table(name.as_str(), &t, &AddOptions { overwrite: args.overwrite, ..Default::default() })?;
    emit(&format!(
        "added tables/{name} at version {}: {} rows × {} vars{} in {:.3} s",
        c.version,
        t.n_obs(),
        t.n_vars(),
        t.annotation.as_ref().map(|a| format!(", regions {}", a.region.join(","))).unwrap_or_default(),
        started.elapsed().as_secs_f64()
    ));
    Ok(0)
}

/// Runs `append`.
pub fn run_append(args: AppendArgs, single_writer: bool) -> CliResult<i32> {
    let name = ElementName::new(&args.input.name)?;
    let store = open_write(&args.input.store, single_writer)?;
    let stored = stored_table(&store, name.as_str())?;
    let rows = build_table(&args.input, stored.as_ref())?;
    let started = Instant::now();
    let c = store.append(name.as_str(), &rows)?;
    let total = store.snapshot(Some(c.version))?.table_info(name.as_str()).map(|i| i.n_obs).unwrap_or(0);
    emit(&format!(
        "appended {} rows to tables/{name} at version {}: the table has {total} rows{} ({:.3} s)",
        rows.n_obs(),
        c.version,
        if total == rows.n_obs() { " (created it)" } else { "" },
        started.elapsed().as_secs_f64()
    ));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let c: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(300)]));
        let i32c = convert("c", &c, &DataType::Int32).unwrap().unwrap();
        assert_eq!(i32c.data_type(), &DataType::Int32);
        assert_eq!(i32c.null_count(), 1);
        assert!(convert("c", &c, &DataType::Int8).is_err(), "300 does not fit int8");
        let f = convert("c", &c, &DataType::Float32).unwrap().unwrap();
        assert_eq!(f.data_type(), &DataType::Float32);
        let s: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a"]));
        let d = convert("s", &s, &DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8))).unwrap().unwrap();
        assert!(matches!(d.data_type(), DataType::Dictionary(..)));
        assert_eq!(string_values(d.as_ref()).unwrap(), vec![Some("a".into()), Some("b".into()), Some("a".into())]);
        let back = convert("s", &d, &DataType::Utf8).unwrap().unwrap();
        assert_eq!(back.data_type(), &DataType::Utf8);
        let b: ArrayRef = Arc::new(StringArray::from(vec![Some("True"), None, Some("false")]));
        assert_eq!(bools_from_strings(&b).unwrap().data_type(), &DataType::Boolean);
        let not: ArrayRef = Arc::new(StringArray::from(vec!["yes"]));
        assert!(bools_from_strings(&not).is_none());
    }

    #[test]
    fn x_casts() {
        let a = RasterArray::F64(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![1.5, 2.0]).unwrap());
        let f = cast_raster(a, "float32").unwrap();
        assert_eq!(f.data_type().zarr_name(), "float32");
    }
}
