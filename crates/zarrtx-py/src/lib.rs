//! `zarrtx._core`: the zarrtx engine as a CPython extension module (PyO3, abi3).
//!
//! This crate is only the boundary: it converts numpy arrays (rust-numpy), pyarrow record batches (Arrow's C data
//! interface) and plain Python values to the engine's types and back, maps engine errors to the classes of
//! `zarrtx.errors`, and releases the GIL around engine work. Everything that knows spatialdata's objects lives in
//! the pure-Python package `python/zarrtx/`.

mod arrow_ffi;
mod errors;
mod json;
mod ndarrays;
mod pool;
mod py_hierarchy;
mod py_lock;
mod py_plan;
mod py_snapshot;
mod py_store;
mod raster_input;
mod tables;

use pyo3::prelude::*;

/// The engine's default chunk shape of a raster with axes `dims` and `shape` (what a plan of it is cut along).
#[pyfunction]
fn default_raster_chunks(dims: Vec<String>, shape: Vec<u64>) -> Vec<u64> {
    zarrtx::raster::default_chunk_shape(&dims, &shape)
}

/// The engine's default chunk shape of a new array of a plain hierarchy with `shape` and `dtype`.
#[pyfunction]
fn default_array_chunks(shape: Vec<u64>, dtype: &str) -> PyResult<Vec<u64>> {
    let data_type = raster_input::parse_dtype("array", dtype)?;
    Ok(zarrtx::ArraySpec::default_chunk_shape(&shape, data_type))
}

/// The compression text `text` in its canonical form (`"zstd:3"`, `"blosc-lz4:5"`, ...), or `InvalidElement`
/// naming `name` and the accepted forms: the engine's one syntax ([`zarrtx::raster::settings`]).
#[pyfunction]
fn parse_compression(name: &str, text: &str) -> PyResult<String> {
    raster_input::parse_compression(name, text).map(|c| c.to_string())
}

/// The engine's default axes of a raster of `kind` (`"image"` or `"labels"`) with `ndim` dimensions, or None (no
/// default for that many dimensions, or another kind).
#[pyfunction]
fn default_dims(kind: &str, ndim: usize) -> Option<Vec<&'static str>> {
    raster_input::raster_kind(kind).and_then(|k| zarrtx::raster::default_dims(k, ndim)).map(<[&str]>::to_vec)
}

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<py_store::PyStore>()?;
    m.add_class::<py_snapshot::PySnapshot>()?;
    m.add_class::<py_lock::PyLockGuard>()?;
    m.add_class::<py_hierarchy::PyHierarchy>()?;
    m.add_function(wrap_pyfunction!(default_raster_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(default_array_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(parse_compression, m)?)?;
    m.add_function(wrap_pyfunction!(default_dims, m)?)?;
    Ok(())
}
