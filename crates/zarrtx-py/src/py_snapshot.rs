//! `zarrtx._core.Snapshot`: the store as of one committed version.

use crate::errors::IntoPy;
use crate::json::transformations_to_py;
use crate::ndarrays::to_numpy;
use crate::tables::table_to_py;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::ops::Range;
use zarrtx::{RasterKind, Snapshot};

/// The store as of one committed version; reads are relocation-safe.
#[pyclass(module = "zarrtx._core", name = "Snapshot", frozen)]
pub struct PySnapshot {
    pub(crate) snapshot: Snapshot,
    pub(crate) path: String,
}

/// `(name, type)` pairs of a snapshot, sorted by name.
pub fn element_pairs(snapshot: &Snapshot) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        snapshot.elements().into_iter().map(|e| (e.name, e.element_type.group().to_string())).collect();
    out.sort();
    out
}

#[pymethods]
impl PySnapshot {
    /// The version this snapshot is pinned to.
    #[getter]
    fn version(&self) -> u64 {
        self.snapshot.version()
    }

    /// The store's root directory.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// `(name, type)` of every element at this version, sorted by name.
    fn elements(&self) -> Vec<(String, String)> {
        element_pairs(&self.snapshot)
    }

    /// Kind, dims, dtype, levels, channel names and transformations of an image or labels element.
    fn raster_info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let info = crate::pool::detach(py, || self.snapshot.raster_info(name)).py()?;
        let d = PyDict::new(py);
        d.set_item("kind", if info.kind == RasterKind::Image { "image" } else { "labels" })?;
        d.set_item("dims", &info.dims)?;
        d.set_item("dtype", info.data_type.zarr_name())?;
        let levels: Vec<Bound<'py, PyDict>> = info
            .levels
            .iter()
            .map(|l| {
                let ld = PyDict::new(py);
                ld.set_item("path", &l.path)?;
                ld.set_item("shape", &l.shape)?;
                ld.set_item("chunks", &l.chunk_shape)?;
                Ok(ld)
            })
            .collect::<PyResult<_>>()?;
        d.set_item("levels", levels)?;
        d.set_item("channel_names", &info.channel_names)?;
        let labels = info.channel_labels.map(serde_json::Value::Array);
        d.set_item("channel_labels", labels.map(|l| crate::json::from_json(py, &l)).transpose()?)?;
        d.set_item("transformations", transformations_to_py(py, &info.transformations, &info.dims)?)?;
        Ok(d)
    }

    /// Pixels of one level, optionally of a region (one `(start, stop)` per axis).
    #[pyo3(signature = (name, level = 0, region = None))]
    fn read_raster<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        level: usize,
        region: Option<Vec<(u64, u64)>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let region: Option<Vec<Range<u64>>> = region.map(|r| r.into_iter().map(|(a, b)| a..b).collect());
        let array = crate::pool::detach(py, || self.snapshot.read_raster(name, level, region.as_deref())).py()?;
        Ok(to_numpy(py, array))
    }

    /// Rows, columns, axes, keys and transformations of a points or shapes element.
    fn vector_info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let info = crate::pool::detach(py, || self.snapshot.vector_info(name)).py()?;
        let d = PyDict::new(py);
        d.set_item("type", info.element_type.group())?;
        d.set_item("n_rows", info.n_rows)?;
        d.set_item("columns", &info.columns)?;
        d.set_item("axes", &info.axes)?;
        d.set_item("geometry_types", &info.geometry_types)?;
        d.set_item("feature_key", &info.feature_key)?;
        d.set_item("instance_key", &info.instance_key)?;
        d.set_item("files", info.files)?;
        d.set_item("transformations", transformations_to_py(py, &info.transformations, &info.axes)?)?;
        Ok(d)
    }

    /// The table exactly as of this version, as a table dict.
    fn read_table<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let table = crate::pool::detach(py, || self.snapshot.read_table(name)).py()?;
        table_to_py(py, table)
    }

    /// Sizes, columns, regions and keys of a table.
    fn table_info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let info = crate::pool::detach(py, || self.snapshot.table_info(name)).py()?;
        let d = PyDict::new(py);
        d.set_item("n_obs", info.n_obs)?;
        d.set_item("n_vars", info.n_vars)?;
        d.set_item("obs_index", &info.obs_index)?;
        let columns: Vec<(String, String)> = info.columns.iter().map(|c| (c.name.clone(), c.encoding.clone())).collect();
        d.set_item("columns", columns)?;
        d.set_item("x", &info.x)?;
        d.set_item("layers", &info.layers)?;
        d.set_item("obsm", &info.obsm)?;
        d.set_item("regions", &info.regions)?;
        d.set_item("region_key", &info.region_key)?;
        d.set_item("instance_key", &info.instance_key)?;
        Ok(d)
    }

    /// The committed `zarr.json` documents of an element's subtree, by path relative to the element (`""`: the
    /// element's own group).
    fn metadata<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let tree = self.snapshot.metadata(name).py()?;
        let d = PyDict::new(py);
        for (path, doc) in &tree {
            d.set_item(path, crate::json::from_json(py, doc)?)?;
        }
        Ok(d)
    }

    /// The part files of a points element, in the engine's order, as keys relative to the element.
    fn points_parts(&self, py: Python<'_>, name: &str) -> PyResult<Vec<String>> {
        crate::pool::detach(py, || self.snapshot.points_parts(name)).py()
    }

    /// The bytes of one object of an element as of this version (`rel` relative to the element), whole or only
    /// `[start, end)` (clipped to its end); relocation-safe.
    #[pyo3(signature = (name, rel, start = None, end = None))]
    fn read_element_file<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        rel: &str,
        start: Option<u64>,
        end: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let range = match (start, end) {
            (None, None) => None,
            (s, e) => Some(s.unwrap_or(0)..e.unwrap_or(u64::MAX)),
        };
        let bytes = crate::pool::detach(py, || self.snapshot.read_element_file(name, rel, range)).py()?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The size in bytes of one object of an element as of this version.
    fn element_file_size(&self, py: Python<'_>, name: &str, rel: &str) -> PyResult<u64> {
        crate::pool::detach(py, || self.snapshot.element_file_size(name, rel)).py()
    }

    fn __repr__(&self) -> String {
        format!("<zarrtx Snapshot of {} at version {}>", self.path, self.snapshot.version())
    }
}

