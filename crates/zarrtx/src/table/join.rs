//! `Store::append_outer_join`: the explicit, documented way to add rows whose schema differs from a table's —
//! extra or missing obs columns, new variables. Unlike [`Store::append`] it rewrites the whole table (O(table)).

use crate::error::{Error, Result};
use crate::layout;
use crate::name::{ElementName, ElementType};
use crate::raster::RasterArray;
use crate::store::{AddOptions, CommitInfo, Store};
use crate::table::{self, Annotation, Matrix, TableData};
use crate::table::ids as table_ids;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, DictionaryArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use ndarray::{ArrayD, Axis, IxDyn};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

fn invalid(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidElement { name: name.to_string(), reason: reason.into() }
}

fn is_string_dict(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8))
}

/// The strings of a dictionary-of-strings column, row by row (`None` for nulls).
fn dict_strings(name: &str, col: &ArrayRef) -> Result<Vec<Option<String>>> {
    let dict = col.as_any_dictionary_opt().ok_or_else(|| invalid(name, "expected a categorical column"))?;
    let keys = dict.normalized_keys();
    let values = dict.values();
    let get = |k: usize| -> Option<String> {
        if let Some(s) = values.as_string_opt::<i32>() {
            Some(s.value(k).to_string())
        } else {
            values.as_string_opt::<i64>().map(|s| s.value(k).to_string())
        }
    };
    Ok((0..col.len()).map(|i| if col.is_null(i) { None } else { get(keys[i]) }).collect())
}

/// Rows of `a` then rows of `b`, with the union of their columns (`a`'s order, then `b`'s new ones). A column
/// missing on one side is null there (and its field nullable); categorical columns are merged by category value.
fn union_concat(table: &str, what: &str, a: &RecordBatch, b: &RecordBatch) -> Result<RecordBatch> {
    let mut names: Vec<String> = a.schema().fields().iter().map(|f| f.name().clone()).collect();
    for f in b.schema().fields() {
        if a.column_by_name(f.name()).is_none() {
            names.push(f.name().clone());
        }
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for n in &names {
        let fa = a.schema().field_with_name(n).ok().cloned();
        let fb = b.schema().field_with_name(n).ok().cloned();
        let (ca, cb) = (a.column_by_name(n), b.column_by_name(n));
        let (dtype, nullable) = match (&fa, &fb) {
            (Some(x), Some(y)) => {
                let same = x.data_type() == y.data_type()
                    || (is_string_dict(x.data_type()) && is_string_dict(y.data_type()));
                if !same {
                    return Err(invalid(
                        table,
                        format!(
                            "{what} column '{n}' has type {} in the table but {} in the new rows; an outer join \
                             cannot change a column's type — cast the new rows' column to {}",
                            x.data_type(),
                            y.data_type(),
                            x.data_type()
                        ),
                    ));
                }
                (x.data_type().clone(), x.is_nullable() || y.is_nullable())
            }
            (Some(x), None) => (x.data_type().clone(), true),
            (None, Some(y)) => (y.data_type().clone(), true),
            (None, None) => unreachable!("every name comes from one side"),
        };
        let ca: ArrayRef = ca.cloned().unwrap_or_else(|| new_null_array(&dtype, a.num_rows()));
        let cb: ArrayRef = cb.cloned().unwrap_or_else(|| new_null_array(&dtype, b.num_rows()));
        let (col, dtype): (ArrayRef, DataType) = if is_string_dict(&dtype) {
            let mut all = dict_strings(table, &ca)?;
            all.extend(dict_strings(table, &cb)?);
            let d: DictionaryArray<Int32Type> = all.iter().map(|s| s.as_deref()).collect();
            let t = d.data_type().clone();
            (Arc::new(d), t)
        } else {
            let c = arrow_select::concat::concat(&[ca.as_ref(), cb.as_ref()])
                .map_err(|e| invalid(table, format!("cannot join {what} column '{n}': {e}")))?;
            (c, dtype)
        };
        let nullable = nullable || col.null_count() > 0;
        fields.push(Field::new(n.clone(), dtype, nullable));
        columns.push(col);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| invalid(table, format!("cannot build the joined {what} dataframe: {e}")))
}

fn index_values(table: &str, batch: &RecordBatch, index: &str) -> Result<Vec<String>> {
    let col = batch.column_by_name(index).ok_or_else(|| invalid(table, format!("var has no index column '{index}'")))?;
    let s = col.as_string_opt::<i32>().ok_or_else(|| invalid(table, format!("var index '{index}' must be strings")))?;
    Ok((0..s.len()).map(|i| s.value(i).to_string()).collect())
}

/// `old` rows then `new` rows, re-laid into the union variable order (`new_cols[j]` = union column of new var `j`);
/// 0 where a row has no value for a variable.
fn relay_dense(table: &str, what: &str, old: &Matrix, new: &Matrix, n_vars: usize, new_cols: &[usize]) -> Result<Matrix> {
    fn go<T: Copy + Default>(old: &ArrayD<T>, new: &ArrayD<T>, n_vars: usize, new_cols: &[usize]) -> ArrayD<T> {
        let (n_old, n_new) = (old.shape()[0], new.shape()[0]);
        let mut out = ArrayD::from_elem(IxDyn(&[n_old + n_new, n_vars]), T::default());
        for r in 0..n_old {
            for j in 0..old.shape()[1] {
                out[[r, j]] = old[[r, j]];
            }
        }
        for r in 0..n_new {
            for (j, &c) in new_cols.iter().enumerate() {
                out[[n_old + r, c]] = new[[r, j]];
            }
        }
        out
    }
    match (old, new) {
        (Matrix::Dense(RasterArray::F32(a)), Matrix::Dense(RasterArray::F32(b))) => {
            Ok(Matrix::Dense(RasterArray::F32(go(a, b, n_vars, new_cols))))
        }
        (Matrix::Dense(RasterArray::F64(a)), Matrix::Dense(RasterArray::F64(b))) => {
            Ok(Matrix::Dense(RasterArray::F64(go(a, b, n_vars, new_cols))))
        }
        (Matrix::Dense(_), Matrix::Dense(_)) => Err(invalid(
            table,
            format!("outer join supports dense float32/float64 {what} of the same dtype in the table and the new rows"),
        )),
        _ => Err(invalid(table, format!("outer join supports dense X and layers only; {what} is sparse (CSR)"))),
    }
}

fn concat_rows(table: &str, key: &str, a: &RasterArray, b: &RasterArray) -> Result<RasterArray> {
    let err = |e: ndarray::ShapeError| invalid(table, format!("obsm '{key}': {e}"));
    match (a, b) {
        (RasterArray::F32(x), RasterArray::F32(y)) => {
            Ok(RasterArray::F32(ndarray::concatenate(Axis(0), &[x.view(), y.view()]).map_err(err)?))
        }
        (RasterArray::F64(x), RasterArray::F64(y)) => {
            Ok(RasterArray::F64(ndarray::concatenate(Axis(0), &[x.view(), y.view()]).map_err(err)?))
        }
        _ => Err(invalid(table, format!("outer join supports float32/float64 obsm of the same dtype; '{key}' differs"))),
    }
}

/// Builds the outer join of the committed table `old` and `new` rows (see [`Store::append_outer_join`]).
fn outer_join(table: &str, old: &TableData, new: &TableData) -> Result<TableData> {
    if old.obs_index != new.obs_index || old.var_index != new.var_index {
        return Err(invalid(
            table,
            format!(
                "the new rows' obs/var index columns ('{}'/'{}') differ from the table's ('{}'/'{}'); rename them",
                new.obs_index, new.var_index, old.obs_index, old.var_index
            ),
        ));
    }
    if !old.varm.is_empty() || !new.varm.is_empty() {
        return Err(invalid(table, "outer join does not support varm; drop varm or rewrite the table with add_table"));
    }
    let obs = union_concat(table, "obs", &old.obs, &new.obs)?;

    // var: existing variables in their order, then the new ones.
    let old_vars = index_values(table, &old.var, &old.var_index)?;
    let new_vars = index_values(table, &new.var, &new.var_index)?;
    let mut pos: HashMap<String, usize> = old_vars.iter().cloned().enumerate().map(|(i, v)| (v, i)).collect();
    let mut fresh = Vec::with_capacity(new_vars.len());
    let mut new_cols = Vec::with_capacity(new_vars.len());
    for v in &new_vars {
        let known = pos.contains_key(v);
        fresh.push(!known);
        let next = pos.len();
        new_cols.push(*pos.entry(v.clone()).or_insert(next));
    }
    let added = arrow_select::filter::filter_record_batch(&new.var, &BooleanArray::from(fresh))
        .map_err(|e| invalid(table, format!("cannot select the new variables: {e}")))?;
    let var = union_concat(table, "var", &old.var, &added)?;
    let n_vars = var.num_rows();

    let x = match (&old.x, &new.x) {
        (None, None) => None,
        (Some(a), Some(b)) => Some(relay_dense(table, "X", a, b, n_vars, &new_cols)?),
        _ => return Err(invalid(table, "outer join needs X in both the table and the new rows, or in neither")),
    };
    if old.layers.keys().ne(new.layers.keys()) {
        return Err(invalid(table, "outer join needs the same layers in the table and the new rows"));
    }
    let mut layers = BTreeMap::new();
    for (k, a) in &old.layers {
        layers.insert(k.clone(), relay_dense(table, &format!("layer '{k}'"), a, &new.layers[k], n_vars, &new_cols)?);
    }
    if old.obsm.keys().ne(new.obsm.keys()) {
        return Err(invalid(table, "outer join needs the same obsm keys in the table and the new rows"));
    }
    let mut obsm = BTreeMap::new();
    for (k, a) in &old.obsm {
        obsm.insert(k.clone(), concat_rows(table, k, a, &new.obsm[k])?);
    }
    let annotation = match (&old.annotation, &new.annotation) {
        (None, None) => None,
        (Some(a), Some(b)) => {
            if a.region_key != b.region_key || a.instance_key != b.instance_key {
                return Err(invalid(table, "the new rows' region_key/instance_key differ from the table's"));
            }
            let mut region = a.region.clone();
            for r in &b.region {
                if !region.contains(r) {
                    region.push(r.clone());
                }
            }
            Some(Annotation { region, region_key: a.region_key.clone(), instance_key: a.instance_key.clone() })
        }
        _ => return Err(invalid(table, "outer join needs an annotation in both the table and the new rows, or in neither")),
    };
    let mut uns = old.uns.clone();
    for (k, v) in &new.uns {
        uns.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(TableData {
        obs,
        obs_index: old.obs_index.clone(),
        var,
        var_index: old.var_index.clone(),
        x,
        layers,
        obsm,
        varm: BTreeMap::new(),
        uns,
        annotation,
    })
}

impl Store {
    /// Adds `rows` to table `name` as an **outer join**, rewriting the whole table: the explicit option for rows
    /// whose schema differs from the table's, which [`Store::append`] (strict schema) refuses.
    ///
    /// - obs: the table's rows, then `rows`; columns are the union (the table's order, then new ones). A column
    ///   missing on one side is null there (nullable field); a same-name column of another type is refused.
    /// - var: the table's variables, then the new ones. X and layers (dense float32/float64 only; CSR is refused)
    ///   are re-laid into that order with 0 where a row has no value for a variable. Layers and obsm must have the
    ///   same keys on both sides; varm is refused.
    /// - The annotated regions are the union; instance ids must still be unique within a region.
    ///
    /// **Cost: O(table)** — it reads the committed table and writes a new generation of it (a `replace` commit),
    /// holding the table's append lock meanwhile, so appenders of this table wait. Readers pinned to older
    /// versions keep reading the old generation (moved to the trash) until `gc` removes it. If the table does not
    /// exist, this is [`Store::add_table`].
    pub fn append_outer_join(&self, name: &str, rows: &TableData) -> Result<CommitInfo> {
        let el = ElementName::new(name)?;
        table::validate(&el, rows)?;
        self.ensure_writable()?;
        let _queue = self.storage().locks().lock_exclusive(&layout::table_lock_key(&el.collision_key())).ok();
        let state = self.latest_state()?;
        let Some(record) = state.get(&el).cloned() else {
            return self.add_table(name, rows, &AddOptions::default());
        };
        if record.element_type != ElementType::Tables {
            return Err(invalid(
                name,
                format!("'{}' is a {} element, not a table; choose another table name", record.name, record.element_type),
            ));
        }
        let existing = self.snapshot(Some(state.version))?.read_table(name)?;
        let joined = outer_join(name, &existing, rows)?;
        if let Some(a) = &joined.annotation {
            let ids = table_ids::ids_by_region(name, &joined.obs, &a.region_key, &a.instance_key)?;
            table_ids::check_unique(name, self.storage(), &[], &ids)?;
        }
        // add_table takes no table lock, so calling it while holding ours is safe.
        self.add_table(name, &joined, &AddOptions { overwrite: true, ..Default::default() })
    }
}
