//! `zarrtx._core.Hierarchy`: array plans of a plain Zarr v3 hierarchy (an NWB file written by hdmf-zarr, any
//! zarr-python group) — one array created or filled part by part by many processes or nodes.

use crate::errors::{invalid, IntoPy};
use crate::json::{from_json, to_json};
use crate::py_plan::{layout_from_py, plan_options, ranges_to_py, write_input, PartTarget};
use crate::raster_input::{parse_compression, parse_dtype};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::time::Duration;
use zarrtx::{
    ArrayCommit, ArrayPlanInfo, ArrayPlanStatus, ArraySpec, ArrayTarget, Hierarchy, OpenOptions,
};

/// A handle on one Zarr v3 hierarchy.
#[pyclass(module = "zarrtx._core", name = "Hierarchy", frozen)]
pub struct PyHierarchy {
    hierarchy: Hierarchy,
    path: String,
}

fn plan_to_py<'py>(py: Python<'py>, plan: &ArrayPlanInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("plan_id", &plan.plan_id)?;
    d.set_item("path", &plan.path)?;
    d.set_item("mode", plan.mode.as_str())?;
    d.set_item("shape", &plan.shape)?;
    d.set_item("dtype", plan.data_type.zarr_name())?;
    d.set_item("write_unit", &plan.write_unit)?;
    d.set_item("parts", plan.parts.iter().map(|p| ranges_to_py(p)).collect::<Vec<_>>())?;
    d.set_item("metadata", from_json(py, &plan.metadata)?)?;
    Ok(d)
}

fn commit_to_py<'py>(py: Python<'py>, c: &ArrayCommit) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &c.path)?;
    d.set_item("mode", c.mode.as_str())?;
    d.set_item("kept_files", c.kept_files)?;
    d.set_item("consolidated", c.consolidated)?;
    d.set_item("committed_ms", c.committed_ms)?;
    Ok(d)
}

fn status_to_py<'py>(py: Python<'py>, s: &ArrayPlanStatus) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("plan", plan_to_py(py, &s.plan)?)?;
    d.set_item("done", s.done.iter().map(|r| r.part).collect::<Vec<_>>())?;
    d.set_item("started", &s.started)?;
    d.set_item("missing", &s.missing)?;
    d.set_item("committed", s.committed.as_ref().map(|c| commit_to_py(py, c)).transpose()?)?;
    Ok(d)
}

#[pymethods]
impl PyHierarchy {
    /// Opens the Zarr v3 hierarchy at `path` (with `create`, an empty root group is made when there is none).
    #[new]
    #[pyo3(signature = (path, *, create = false, read_only = false, single_writer = false, durable = true))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        create: bool,
        read_only: bool,
        single_writer: bool,
        durable: bool,
    ) -> PyResult<Self> {
        let options = OpenOptions { create, read_only, single_writer, durable, ..OpenOptions::default() };
        let hierarchy = crate::pool::detach(py, || Hierarchy::open(&path, &options)).py()?;
        Ok(PyHierarchy { path: hierarchy.root().to_string_lossy().into_owned(), hierarchy })
    }

    /// The hierarchy's root directory.
    /// The hierarchy's lease timeout in milliseconds (how long a dead writer's part stays claimed).
    fn lease_ms(&self) -> u64 {
        self.hierarchy.settings().lease_ms
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The `zarr.json` of the node at `path` as a dict ("" is the root), or None.
    fn node_metadata<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let doc = crate::pool::detach(py, || self.hierarchy.node_metadata(path)).py()?;
        doc.map(|d| from_json(py, &d)).transpose()
    }

    /// Plans creating (`fill=False`: `shape` and `dtype` required) or filling (`fill=True`) the array at `path`,
    /// written in `parts` (a count or explicit regions); returns the plan.
    #[pyo3(signature = (path, *, parts, fill = false, shape = None, dtype = None, chunks = None, shards = None,
        compression = "zstd", fill_value = None, dimension_names = None, attributes = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_plan<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        parts: Bound<'py, PyAny>,
        fill: bool,
        shape: Option<Vec<u64>>,
        dtype: Option<&str>,
        chunks: Option<Vec<u64>>,
        shards: Option<Vec<u64>>,
        compression: &str,
        fill_value: Option<Bound<'py, PyAny>>,
        dimension_names: Option<Vec<String>>,
        attributes: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let target = if fill {
            let given = [shape.is_some(), dtype.is_some(), chunks.is_some(), shards.is_some(), fill_value.is_some(),
                dimension_names.is_some(), attributes.is_some()];
            if given.iter().any(|&g| g) {
                return Err(invalid(path, "fill=True writes into the array as it is: do not pass shape, dtype, chunks, \
                    shards, fill_value, dimension_names or attributes"));
            }
            ArrayTarget::Fill
        } else {
            let (Some(shape), Some(dtype)) = (shape, dtype) else {
                return Err(invalid(path, "a new array needs shape= and dtype= (or pass fill=True to write into an \
                    existing array)"));
            };
            let mut spec = ArraySpec::new(&shape, parse_dtype(path, dtype)?);
            spec.chunk_shape = chunks;
            spec.shard_shape = shards;
            spec.compression = parse_compression(path, compression)?;
            spec.fill_value = fill_value.map(|v| to_json(&v, path, "fill_value")).transpose()?;
            spec.dimension_names = dimension_names;
            if let Some(attrs) = attributes {
                match to_json(&attrs, path, "attributes")? {
                    serde_json::Value::Object(m) => spec.attributes = m,
                    _ => return Err(invalid(path, "attributes must be a dict")),
                }
            }
            ArrayTarget::Create(spec)
        };
        let layout = layout_from_py(&parts, path)?;
        let plan = crate::pool::detach(py, || self.hierarchy.create_plan(path, target, layout)).py()?;
        plan_to_py(py, &plan)
    }

    /// Writes part `part` of a plan from `data` (exactly the part's region) or `blocks`; a finished part is not
    /// rewritten (`written` is False).
    #[pyo3(signature = (plan_id, part, *, data = None, blocks = None, memory_limit = None))]
    fn write_part<'py>(
        &self,
        py: Python<'py>,
        plan_id: &str,
        part: usize,
        data: Option<Bound<'py, PyAny>>,
        blocks: Option<Bound<'py, PyAny>>,
        memory_limit: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let plan = crate::pool::detach(py, || self.hierarchy.plan_info(plan_id)).py()?;
        let unit = plan.write_unit.first().copied().unwrap_or(1) as usize;
        let target = PartTarget::new(&plan.path, plan_id, &plan.parts, part, plan.data_type, |want| {
            (0, unit.clamp(1, want.first().copied().unwrap_or(1).max(1)))
        })?;
        let options = plan_options(memory_limit);
        write_input(py, &target, data, blocks, |source| self.hierarchy.write_part(plan_id, part, source, &options))
    }

    /// Which parts of a plan are done, started or missing, and its commit once committed.
    fn plan_status<'py>(&self, py: Python<'py>, plan_id: &str) -> PyResult<Bound<'py, PyDict>> {
        let status = crate::pool::detach(py, || self.hierarchy.plan_status(plan_id)).py()?;
        status_to_py(py, &status)
    }

    /// Every array plan of the hierarchy, oldest first.
    fn list_plans<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let all = crate::pool::detach(py, || self.hierarchy.list_plans()).py()?;
        all.iter().map(|s| status_to_py(py, s)).collect()
    }

    /// Commits a plan whose parts are all written; returns the commit. Idempotent.
    fn commit_plan<'py>(&self, py: Python<'py>, plan_id: &str) -> PyResult<Bound<'py, PyDict>> {
        let c = crate::pool::detach(py, || self.hierarchy.commit_plan(plan_id)).py()?;
        commit_to_py(py, &c)
    }

    /// Reclaims plans (committed or abandoned) idle for `grace_seconds`; returns the removed plan directories.
    fn gc(&self, py: Python<'_>, grace_seconds: f64) -> PyResult<Vec<(String, u64)>> {
        let grace = Duration::from_secs_f64(grace_seconds.max(0.0));
        crate::pool::detach(py, || self.hierarchy.gc(grace)).py()
    }

    fn __repr__(&self) -> String {
        format!("<zarrtx._core.Hierarchy at {}>", self.path)
    }
}
