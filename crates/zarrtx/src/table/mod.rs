//! AnnData tables: writing and reading them in the Zarr v3 encoding anndata ≥0.12 and spatialdata 0.8 read, and
//! the chunk-level primitives for appending rows to a committed table.
//!
//! # Layout written
//!
//! The table group carries `{"encoding-type":"anndata","encoding-version":"0.1.0","version":"0.2"}` and, when the
//! table annotates elements, spatialdata's `spatialdata-encoding-type`, `region` (always a list), `region_key` and
//! `instance_key`. Under it:
//! - `obs` and `var`: `dataframe` groups (`_index`, `column-order`). The index column is stored under its own name
//!   with `_index` naming it, exactly as anndata stores a *named* pandas index; name it `"_index"` for an unnamed
//!   pandas index. Column encodings: integer/float/bool → `array`; strings → `nullable-string-array` with
//!   `na-value` `"NaN"` (as anndata writes pandas 3 `str` columns; the index is a `string-array`); integers/booleans with nulls →
//!   `nullable-integer`/`nullable-boolean` (`values` + `mask`, `true` = missing); float nulls are written as NaN;
//!   Arrow dictionaries of strings → `categorical` (`codes` int8/int16/int32/int64 as pandas picks them from the
//!   number of categories, except the region column whose codes are at least int16 so that appends can add
//!   regions; `-1` = missing; `categories` string-array; `ordered` false).
//! - `X` and `layers/*`: dense `array` or `csr_matrix` groups (`data`, `indices` int32/int64, `indptr` int64,
//!   `shape` attribute). `obsm/*`, `varm/*`: dense 2-D arrays. Empty `layers`, `obsm`, `obsp`, `varm`, `varp` dict
//!   groups are written as anndata writes them.
//! - `uns`: `dict` groups, 0-d `string`/`numeric-scalar` scalars, `string-array` and `array` arrays;
//!   `uns/spatialdata_attrs` holds `region` (a 1-D `string-array`, the form spatialdata writes for a list of
//!   regions), `region_key` and `instance_key` (0-d strings).
//!
//! Arrays are plain (unsharded) Zarr v3 arrays with zstd level 0. Row-indexed arrays are chunked along rows only
//! (4096 rows for 1-D arrays, fewer for wide 2-D arrays so a chunk stays under 1 MiB; CSR `data`/`indices` in
//! chunks of 65536 values), so an append rewrites at most the one partially filled last chunk of each array.
//!
//! # Appends
//!
//! [`plan_append`] checks that a batch of rows has the table's schema and computes the table's metadata after the
//! append; [`write_append`] writes every file the append changes (the rows' chunks, the boundary chunk of each
//! array rewritten whole with its committed rows unchanged, new category entries, the grown region list) into a
//! staging area, one flat file per table file ([`staged_key`]), and writes nothing into the live table. Once the
//! append is committed, `install_staged_files` moves them over the live table's files one by one (atomic
//! replacements that never change a committed row), and publication writes the grown `zarr.json` documents. An
//! appender that loses the race to commit has changed nothing. Readers bounded by the committed metadata never see
//! uncommitted rows.
//!
//! Every byte goes through a [`DataHandle`](crate::storage::DataHandle) (a storage and a key prefix), so tables
//! live on any [`Storage`](crate::storage::Storage) backend.

mod append;
mod chunks;
mod columns;
pub mod ids;
mod join;
mod info;
mod read;
mod uns;
mod validate;
mod write;

#[cfg(test)]
mod tests;

use crate::meta::NodeTree;
use crate::raster::RasterArray;
use std::collections::BTreeMap;

pub(crate) use append::install_staged_files;
pub use append::{plan_append, staged_key, write_append, MAX_STAGED_NAME};
pub use info::describe;
pub use read::read_table;
pub use validate::validate;
pub use write::write_table;

/// An AnnData table: observations (rows, e.g. cells) × variables (columns, e.g. genes) plus annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct TableData {
    /// The obs dataframe (one row per observation). Includes the index column named by `obs_index`.
    pub obs: arrow_array::RecordBatch,
    /// Name of the Utf8 column of `obs` that is the dataframe index (unique, no nulls). `"_index"` gives an unnamed
    /// pandas index; any other name gives a pandas index of that name, as anndata stores it.
    pub obs_index: String,
    /// The var dataframe (one row per variable). Includes the index column named by `var_index`.
    pub var: arrow_array::RecordBatch,
    /// Name of the Utf8 column of `var` that is its index (unique, no nulls).
    pub var_index: String,
    /// The main matrix, `n_obs × n_vars`.
    pub x: Option<Matrix>,
    /// Further `n_obs × n_vars` matrices, by name.
    pub layers: BTreeMap<String, Matrix>,
    /// Per-observation 2-D arrays (`n_obs × k`), by name (e.g. `spatial`).
    pub obsm: BTreeMap<String, RasterArray>,
    /// Per-variable 2-D arrays (`n_vars × k`), by name.
    pub varm: BTreeMap<String, RasterArray>,
    /// Unstructured metadata, excluding `spatialdata_attrs` (which is written from `annotation`).
    pub uns: BTreeMap<String, UnsValue>,
    /// The SpatialData elements the rows annotate, if any.
    pub annotation: Option<Annotation>,
}

impl TableData {
    /// A table with the given obs and var dataframes and nothing else.
    pub fn new(
        obs: arrow_array::RecordBatch,
        obs_index: &str,
        var: arrow_array::RecordBatch,
        var_index: &str,
    ) -> Self {
        TableData {
            obs,
            obs_index: obs_index.to_string(),
            var,
            var_index: var_index.to_string(),
            x: None,
            layers: BTreeMap::new(),
            obsm: BTreeMap::new(),
            varm: BTreeMap::new(),
            uns: BTreeMap::new(),
            annotation: None,
        }
    }

    /// Number of observations (rows of `obs`).
    pub fn n_obs(&self) -> u64 {
        self.obs.num_rows() as u64
    }

    /// Number of variables (rows of `var`).
    pub fn n_vars(&self) -> u64 {
        self.var.num_rows() as u64
    }
}

/// A matrix of shape `n_obs × n_vars` (X or a layer).
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// A dense 2-D array.
    Dense(RasterArray),
    /// Compressed sparse rows (scipy `csr_matrix`): row `i` holds the values `data[indptr[i]..indptr[i+1]]` at the
    /// columns `indices[indptr[i]..indptr[i+1]]`.
    Csr {
        /// `[n_obs, n_vars]`.
        shape: [u64; 2],
        /// The stored values, 1-D.
        data: RasterArray,
        /// Column of each stored value, in `[0, n_vars)`.
        indices: Vec<i64>,
        /// `n_obs + 1` offsets into `data`, starting at 0, non-decreasing, ending at `data.len()`.
        indptr: Vec<i64>,
    },
}

impl Matrix {
    /// The matrix's shape (`[rows, columns]` for dense 2-D data).
    pub fn shape(&self) -> Vec<u64> {
        match self {
            Matrix::Dense(a) => a.shape(),
            Matrix::Csr { shape, .. } => shape.to_vec(),
        }
    }
}

/// A value of `uns` (anndata's unstructured metadata).
#[derive(Debug, Clone, PartialEq)]
pub enum UnsValue {
    /// A string (0-d `string`).
    Str(String),
    /// An integer (0-d int64 `numeric-scalar`).
    Int(i64),
    /// A float (0-d float64 `numeric-scalar`).
    Float(f64),
    /// A boolean (0-d bool `numeric-scalar`).
    Bool(bool),
    /// A list of strings (1-D `string-array`).
    Strings(Vec<String>),
    /// A numeric array of any dimension (`array`).
    Array(RasterArray),
    /// A nested mapping (`dict` group).
    Dict(BTreeMap<String, UnsValue>),
}

/// What the rows of a table annotate (spatialdata's `uns/spatialdata_attrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Names of the annotated elements; exactly the values present in the `region_key` column.
    pub region: Vec<String>,
    /// The categorical obs column holding each row's element name.
    pub region_key: String,
    /// The integer obs column holding each row's instance id (label value or shape index) within its element.
    pub instance_key: String,
}

/// One obs column as [`describe`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    /// The column name.
    pub name: String,
    /// The anndata `encoding-type` it is stored with (`array`, `string-array`, `categorical`, ...).
    pub encoding: String,
    /// The Arrow type [`read_table`] returns for it.
    pub data_type: arrow_schema::DataType,
}

/// A summary of a table computed from its metadata alone.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// Number of observations (rows).
    pub n_obs: u64,
    /// Number of variables.
    pub n_vars: u64,
    /// Name of the obs index (`"_index"` when unnamed).
    pub obs_index: String,
    /// The obs columns (excluding the index) in `column-order`.
    pub columns: Vec<ColumnInfo>,
    /// `"dense <dtype>"` or `"csr <dtype>"` when the table has X.
    pub x: Option<String>,
    /// Names of the layers.
    pub layers: Vec<String>,
    /// Names of the obsm arrays.
    pub obsm: Vec<String>,
    /// Annotated element names, from the table group's `region` attribute (empty when absent).
    pub regions: Vec<String>,
    /// The region column, when the table is annotated.
    pub region_key: Option<String>,
    /// The instance id column, when the table is annotated.
    pub instance_key: Option<String>,
}

/// The result of [`plan_append`]: what appending a batch of rows changes.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendPlan {
    /// Rows of the table before the append (its committed `n_obs`).
    pub base_rows: u64,
    /// Rows appended.
    pub new_rows: u64,
    /// The table's complete metadata tree after the append: every row-indexed array's shape grown, categories
    /// arrays grown, `uns/spatialdata_attrs/region` and the group's `region` attribute updated.
    pub tree: NodeTree,
    /// Whole small files (key relative to the table, content) that replace the table's when the append is
    /// installed and published: the chunk(s) of `uns/spatialdata_attrs/region` holding the regions the append
    /// adds. Each keeps the committed regions unchanged in place, so installing them early is also harmless to
    /// readers of the old metadata. [`write_append`] stages them with the rows' chunks.
    pub replaced_files: Vec<(String, Vec<u8>)>,
}
