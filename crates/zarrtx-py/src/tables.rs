//! Table dicts (see `_core.pyi`: obs/var record batches, X/layers as dense arrays or CSR dicts, obsm/varm, uns,
//! annotation) ⇄ the engine's [`TableData`].

use crate::arrow_ffi::{batch_from_py, batch_to_py};
use crate::errors::invalid;
use crate::ndarrays::{describe, to_i64_vec, to_numpy, to_raster_array};
use numpy::PyUntypedArray;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::collections::BTreeMap;
use zarrtx::table::{Annotation, Matrix, TableData, UnsValue};
use zarrtx::RasterArray;

/// Reads a required key of a dict.
fn required<'py>(d: &Bound<'py, PyDict>, key: &str, element: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| invalid(element, format!("the table dict lacks '{key}'")))
}

/// Reads an optional key of a dict (missing and `None` are both absent).
fn optional<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(d.get_item(key)?.filter(|v| !v.is_none()))
}

/// Converts a table dict to the engine's table.
pub fn table_from_py(obj: &Bound<'_, PyAny>, element: &str) -> PyResult<TableData> {
    let d = obj
        .cast::<PyDict>()
        .map_err(|_| invalid(element, format!("a table must be given as a dict, got {}", describe(obj))))?;
    let obs = batch_from_py(&required(d, "obs", element)?, element, "obs")?;
    let var = batch_from_py(&required(d, "var", element)?, element, "var")?;
    let obs_index: String = required(d, "obs_index", element)?.extract()?;
    let var_index: String = required(d, "var_index", element)?.extract()?;
    let mut table = TableData::new(obs, &obs_index, var, &var_index);
    if let Some(x) = optional(d, "X")? {
        table.x = Some(matrix_from_py(&x, element, "X")?);
    }
    for (key, field) in [("layers", 0), ("obsm", 1), ("varm", 2)] {
        let Some(map) = optional(d, key)? else { continue };
        let map = map.cast::<PyDict>().map_err(|_| invalid(element, format!("'{key}' must be a dict")))?;
        for (k, v) in map.iter() {
            let k: String = k.extract()?;
            let what = format!("{key}['{k}']");
            match field {
                0 => {
                    table.layers.insert(k, matrix_from_py(&v, element, &what)?);
                }
                1 => {
                    table.obsm.insert(k, to_raster_array(&v, element, &what)?);
                }
                _ => {
                    table.varm.insert(k, to_raster_array(&v, element, &what)?);
                }
            }
        }
    }
    if let Some(uns) = optional(d, "uns")? {
        let UnsValue::Dict(map) = uns_from_py(&uns, element, "uns")? else {
            return Err(invalid(element, "'uns' must be a dict"));
        };
        table.uns = map;
    }
    if let Some(a) = optional(d, "annotation")? {
        let a = a.cast::<PyDict>().map_err(|_| invalid(element, "'annotation' must be a dict or None"))?;
        table.annotation = Some(Annotation {
            region: required(a, "region", element)?.extract()?,
            region_key: required(a, "region_key", element)?.extract()?,
            instance_key: required(a, "instance_key", element)?.extract()?,
        });
    }
    Ok(table)
}

/// A dense numpy matrix or a CSR dict.
fn matrix_from_py(obj: &Bound<'_, PyAny>, element: &str, what: &str) -> PyResult<Matrix> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let format: String = required(d, "format", element)?.extract()?;
        if format != "csr" {
            return Err(invalid(
                element,
                format!("{what}: sparse format '{format}' is not supported; convert it with .tocsr()"),
            ));
        }
        let shape: (u64, u64) = required(d, "shape", element)?.extract()?;
        return Ok(Matrix::Csr {
            shape: [shape.0, shape.1],
            data: to_raster_array(&required(d, "data", element)?, element, &format!("{what}.data"))?,
            indices: to_i64_vec(&required(d, "indices", element)?, element, &format!("{what}.indices"))?,
            indptr: to_i64_vec(&required(d, "indptr", element)?, element, &format!("{what}.indptr"))?,
        });
    }
    Ok(Matrix::Dense(to_raster_array(obj, element, what)?))
}

/// A value of `uns`.
fn uns_from_py(obj: &Bound<'_, PyAny>, element: &str, what: &str) -> PyResult<UnsValue> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(UnsValue::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(UnsValue::Str(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map(UnsValue::Int)
            .map_err(|_| invalid(element, format!("{what}: integer {obj} does not fit in int64")));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(UnsValue::Float(obj.extract()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = BTreeMap::new();
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| invalid(element, format!("{what}: keys must be strings, got {}", describe(&k))))?;
            let inner = format!("{what}['{k}']");
            map.insert(k, uns_from_py(&v, element, &inner)?);
        }
        return Ok(UnsValue::Dict(map));
    }
    if obj.is_instance_of::<PyUntypedArray>() {
        return Ok(UnsValue::Array(to_raster_array(obj, element, what)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        if let Ok(strings) = obj.extract::<Vec<String>>() {
            return Ok(UnsValue::Strings(strings));
        }
    }
    // numpy scalars and other number-likes.
    if let Ok(v) = obj.extract::<i64>() {
        if obj.hasattr("__index__")? {
            return Ok(UnsValue::Int(v));
        }
    }
    if let Ok(v) = obj.extract::<f64>() {
        return Ok(UnsValue::Float(v));
    }
    Err(invalid(
        element,
        format!(
            "{what}: {} cannot be stored in uns (supported: str, int, float, bool, list of str, numpy arrays, \
             dicts of these); convert it or drop it from uns",
            describe(obj)
        ),
    ))
}

/// Converts the engine's table to a table dict.
pub fn table_to_py<'py>(py: Python<'py>, table: TableData) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("obs", batch_to_py(py, &table.obs)?)?;
    d.set_item("obs_index", &table.obs_index)?;
    d.set_item("var", batch_to_py(py, &table.var)?)?;
    d.set_item("var_index", &table.var_index)?;
    match table.x {
        Some(x) => d.set_item("X", matrix_to_py(py, x)?)?,
        None => d.set_item("X", py.None())?,
    }
    let layers = PyDict::new(py);
    for (k, m) in table.layers {
        layers.set_item(k, matrix_to_py(py, m)?)?;
    }
    d.set_item("layers", layers)?;
    for (key, map) in [("obsm", table.obsm), ("varm", table.varm)] {
        let out = PyDict::new(py);
        for (k, a) in map {
            out.set_item(k, to_numpy(py, a))?;
        }
        d.set_item(key, out)?;
    }
    d.set_item("uns", uns_to_py(py, UnsValue::Dict(table.uns))?)?;
    match table.annotation {
        Some(a) => {
            let ad = PyDict::new(py);
            ad.set_item("region", a.region)?;
            ad.set_item("region_key", a.region_key)?;
            ad.set_item("instance_key", a.instance_key)?;
            d.set_item("annotation", ad)?;
        }
        None => d.set_item("annotation", py.None())?,
    }
    Ok(d)
}

/// A dense matrix as numpy, a CSR matrix as a dict of numpy arrays.
fn matrix_to_py<'py>(py: Python<'py>, m: Matrix) -> PyResult<Bound<'py, PyAny>> {
    match m {
        Matrix::Dense(a) => Ok(to_numpy(py, a)),
        Matrix::Csr { shape, data, indices, indptr } => {
            let d = PyDict::new(py);
            d.set_item("format", "csr")?;
            d.set_item("data", to_numpy(py, data))?;
            d.set_item("indices", to_numpy(py, RasterArray::I64(ndarray::Array1::from(indices).into_dyn())))?;
            d.set_item("indptr", to_numpy(py, RasterArray::I64(ndarray::Array1::from(indptr).into_dyn())))?;
            d.set_item("shape", (shape[0], shape[1]))?;
            Ok(d.into_any())
        }
    }
}

/// An uns value as a Python value.
fn uns_to_py<'py>(py: Python<'py>, v: UnsValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        UnsValue::Str(s) => PyString::new(py, &s).into_any(),
        UnsValue::Int(i) => i.into_pyobject(py)?.into_any(),
        UnsValue::Float(f) => f.into_pyobject(py)?.into_any(),
        UnsValue::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        UnsValue::Strings(s) => PyList::new(py, s)?.into_any(),
        UnsValue::Array(a) => to_numpy(py, a),
        UnsValue::Dict(map) => {
            let d = PyDict::new(py);
            for (k, v) in map {
                d.set_item(k, uns_to_py(py, v)?)?;
            }
            d.into_any()
        }
    })
}
