//! `zarrtx._core`: the zarrtx engine as a CPython extension module (PyO3, abi3).
//!
//! This crate is only the boundary: it converts numpy arrays, pyarrow record batches and plain Python values to the
//! engine's types and back, maps engine errors to `zarrtx.errors`, and releases the GIL around engine work.
//! Everything that knows spatialdata's objects lives in the pure-Python package `python/zarrtx/`.

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
