//! `zarrtx._core.Store`: one store handle; every method releases the GIL while the engine works.

use crate::arrow_ffi::batches_from_py;
use crate::errors::{invalid, to_pyerr, IntoPy};
use crate::json::transformations_from_py;
use crate::ndarrays::{data_type_of, describe, with_numpy_dtype};
use crate::py_lock::PyLockGuard;
use crate::py_snapshot::{element_pairs, PySnapshot};
use crate::raster_input::{build_spec, slab_axis_and_height, slabs, PyBlocks, SpecArgs, COPY_LIMIT_BYTES};
use crate::tables::table_from_py;
use numpy::PyArrayMethods;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::time::Duration;
use zarrtx::raster::RasterSpec;
use zarrtx::vector::wkb;
use zarrtx::{
    AddOptions, LockMode, OpenOptions, PointsSpec, RasterArray, RasterSource, ShapesData, ShapesIndex,
    ShapesSpec, Store,
};

/// A handle on one store.
#[pyclass(module = "zarrtx._core", name = "Store", frozen)]
pub struct PyStore {
    store: Store,
    path: String,
}

impl PyStore {
    fn add_options(overwrite: bool) -> AddOptions<'static> {
        AddOptions { overwrite, ..AddOptions::default() }
    }
}

#[pymethods]
impl PyStore {
    /// Opens (and by default creates) the store at `path`.
    #[new]
    #[pyo3(signature = (path, *, create = true, read_only = false, single_writer = false, durable = true))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        create: bool,
        read_only: bool,
        single_writer: bool,
        durable: bool,
    ) -> PyResult<Self> {
        let options = OpenOptions { create, read_only, single_writer, durable, ..OpenOptions::default() };
        let store = crate::pool::detach(py, || Store::open(&path, &options)).py()?;
        Ok(PyStore { path: store.root().to_string_lossy().into_owned(), store })
    }

    /// The store's root directory.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The store's lease timeout in milliseconds (how long a dead writer's part stays claimed).
    fn lease_ms(&self) -> u64 {
        self.store.settings().lease_ms
    }

    /// The newest committed version.
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        crate::pool::detach(py, || self.store.version()).py()
    }

    /// `(name, type)` of every element at the newest version.
    fn elements(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        let snapshot = crate::pool::detach(py, || self.store.snapshot(None)).py()?;
        Ok(element_pairs(&snapshot))
    }

    /// Every commit, oldest first.
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let records = crate::pool::detach(py, || self.store.history()).py()?;
        records
            .into_iter()
            .map(|r| {
                let d = PyDict::new(py);
                d.set_item("version", r.version)?;
                d.set_item("txn", r.txn)?;
                d.set_item("timestamp_ms", r.timestamp_ms)?;
                let w = PyDict::new(py);
                w.set_item("host", r.writer.host)?;
                w.set_item("pid", r.writer.pid)?;
                w.set_item("label", r.writer.label)?;
                d.set_item("writer", w)?;
                d.set_item("summary", r.summary)?;
                Ok(d)
            })
            .collect()
    }

    /// A snapshot at `version` (default: the newest).
    #[pyo3(signature = (version = None))]
    fn snapshot(&self, py: Python<'_>, version: Option<u64>) -> PyResult<PySnapshot> {
        let snapshot = crate::pool::detach(py, || self.store.snapshot(version)).py()?;
        Ok(PySnapshot { snapshot, path: self.path.clone() })
    }

    /// Deletes an element; returns the new version.
    fn delete(&self, py: Python<'_>, name: &str) -> PyResult<u64> {
        crate::pool::detach(py, || self.store.delete(name)).py().map(|c| c.version)
    }

    /// Adds an image or labels element from numpy `data` or from `blocks`; returns the new version.
    #[pyo3(signature = (name, kind, dims, *, data = None, shape = None, dtype = None, blocks = None,
        channel_names = None, transformations = None, scale_factors = None, levels = None, chunks = None,
        shards = None, compression = "zstd", overwrite = false))]
    #[allow(clippy::too_many_arguments)]
    fn add_raster(
        &self,
        py: Python<'_>,
        name: &str,
        kind: &str,
        dims: Vec<String>,
        data: Option<Bound<'_, PyAny>>,
        shape: Option<Vec<u64>>,
        dtype: Option<String>,
        blocks: Option<Bound<'_, PyAny>>,
        channel_names: Option<Vec<String>>,
        transformations: Option<Bound<'_, PyAny>>,
        scale_factors: Option<Vec<u64>>,
        levels: Option<Bound<'_, PyAny>>,
        chunks: Option<Vec<u64>>,
        shards: Option<Vec<u64>>,
        compression: &str,
        overwrite: bool,
    ) -> PyResult<u64> {
        let spec = build_spec(
            name,
            SpecArgs {
                kind,
                dims,
                channel_names,
                transformations: transformations.as_ref(),
                scale_factors,
                levels: levels.as_ref(),
                chunks,
                shards,
                compression,
            },
        )?;
        let options = Self::add_options(overwrite);
        match (data, blocks) {
            (Some(data), None) => self.add_raster_numpy(py, name, &spec, &data, &options),
            (None, Some(blocks)) => {
                let (Some(shape), Some(dtype)) = (shape, dtype) else {
                    return Err(invalid(name, "streaming blocks needs the full shape= and dtype= as well"));
                };
                let data_type = crate::raster_input::parse_dtype(name, &dtype)?;
                let blocks = PyBlocks::new(&blocks, name, data_type)?;
                let failure = blocks.failure.clone();
                let source = RasterSource::Blocks { shape, data_type, blocks: Box::new(blocks) };
                let result = crate::pool::detach(py, || self.store.add_raster(name, &spec, source, &options));
                match result {
                    Ok(c) => Ok(c.version),
                    Err(e) => Err(failure.or_engine_error(e)),
                }
            }
            _ => Err(invalid(name, "give exactly one of data= (a numpy array) or blocks= (with shape= and dtype=)")),
        }
    }

    /// Adds a points element from pyarrow record batches; returns the new version.
    #[pyo3(signature = (name, batches, *, feature_key = None, instance_key = None, transformations = None,
        overwrite = false))]
    fn add_points(
        &self,
        py: Python<'_>,
        name: &str,
        batches: Bound<'_, PyAny>,
        feature_key: Option<String>,
        instance_key: Option<String>,
        transformations: Option<Bound<'_, PyAny>>,
        overwrite: bool,
    ) -> PyResult<u64> {
        let batches = batches_from_py(&batches, name, "points data")?;
        let spec = PointsSpec {
            feature_key,
            instance_key,
            transformations: transformations_from_py(transformations.as_ref(), name)?,
        };
        let options = Self::add_options(overwrite);
        crate::pool::detach(py, || self.store.add_points(name, &batches, &spec, &options)).py().map(|c| c.version)
    }

    /// Adds a shapes element from WKB geometries; returns the new version.
    #[pyo3(signature = (name, *, geometry_wkb, radius = None, columns = None, index = None,
        transformations = None, overwrite = false))]
    #[allow(clippy::too_many_arguments)]
    fn add_shapes(
        &self,
        py: Python<'_>,
        name: &str,
        geometry_wkb: Vec<Vec<u8>>,
        radius: Option<Bound<'_, PyAny>>,
        columns: Option<Bound<'_, PyAny>>,
        index: Option<Bound<'_, PyAny>>,
        transformations: Option<Bound<'_, PyAny>>,
        overwrite: bool,
    ) -> PyResult<u64> {
        let geometry = geometry_wkb
            .iter()
            .enumerate()
            .map(|(row, g)| wkb::decode(g).map_err(|e| invalid(name, format!("geometry of row {row}: {e}"))))
            .collect::<PyResult<Vec<_>>>()?;
        let radius = match radius.filter(|r| !r.is_none()) {
            None => None,
            Some(r) => Some(r.extract::<Vec<f64>>().map_err(|_| {
                invalid(name, format!("radius must be a 1-D array of numbers, got {}", describe(&r)))
            })?),
        };
        let columns = match columns.filter(|c| !c.is_none()) {
            None => None,
            Some(c) => Some(crate::arrow_ffi::batch_from_py(&c, name, "shapes columns")?),
        };
        let index = match index.filter(|i| !i.is_none()) {
            None => None,
            Some(i) => Some(if let Ok(v) = i.extract::<Vec<i64>>() {
                ShapesIndex::Int(v)
            } else if let Ok(v) = i.extract::<Vec<String>>() {
                ShapesIndex::Str(v)
            } else {
                return Err(invalid(name, format!("the index must be all integers or all strings, got {}", describe(&i))));
            }),
        };
        let data = ShapesData { geometry, radius, columns, index };
        let spec = ShapesSpec { transformations: transformations_from_py(transformations.as_ref(), name)? };
        let options = Self::add_options(overwrite);
        crate::pool::detach(py, || self.store.add_shapes(name, &data, &spec, &options)).py().map(|c| c.version)
    }

    /// Adds a table (a table dict); returns the new version.
    #[pyo3(signature = (name, table, *, overwrite = false))]
    fn add_table(&self, py: Python<'_>, name: &str, table: Bound<'_, PyAny>, overwrite: bool) -> PyResult<u64> {
        let table = table_from_py(&table, name)?;
        let options = Self::add_options(overwrite);
        crate::pool::detach(py, || self.store.add_table(name, &table, &options)).py().map(|c| c.version)
    }

    /// Appends rows to a table (creating it when missing); returns the new version.
    fn append(&self, py: Python<'_>, name: &str, rows: Bound<'_, PyAny>) -> PyResult<u64> {
        let rows = table_from_py(&rows, name)?;
        crate::pool::detach(py, || self.store.append(name, &rows)).py().map(|c| c.version)
    }

    /// Acquires a user lock: `mode` "r" (shared) or "w" (exclusive), `name` None for the whole store.
    #[pyo3(signature = (name = None, mode = "w", timeout = None))]
    fn lock(&self, py: Python<'_>, name: Option<String>, mode: &str, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let what = name.clone().unwrap_or_else(|| "the store".to_string());
        let mode = match mode {
            "r" => LockMode::Read,
            "w" => LockMode::Write,
            other => return Err(invalid(&what, format!("lock mode must be 'r' or 'w', got '{other}'"))),
        };
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => return Err(invalid(&what, format!("timeout must be None or a number >= 0, got {t}"))),
        };
        loop {
            match py.detach(|| self.store.lock(name.as_deref(), mode, timeout)) {
                Ok(guard) => return Ok(PyLockGuard::new(guard)),
                // A signal (Ctrl-C) interrupted a blocking wait: let Python raise KeyboardInterrupt, else wait on.
                Err(zarrtx::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::Interrupted => {
                    py.check_signals()?;
                }
                Err(e) => return Err(to_pyerr(e)),
            }
        }
    }

    /// Creates a write plan for one raster element written part by part (by processes or nodes); returns the plan.
    /// With `overwrite`, its commit replaces the element of the same name atomically.
    #[pyo3(signature = (name, kind, dims, *, shape, dtype, parts, channel_names = None, transformations = None,
        scale_factors = None, chunks = None, shards = None, compression = "zstd", overwrite = false))]
    #[allow(clippy::too_many_arguments)]
    fn create_plan<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        kind: &str,
        dims: Vec<String>,
        shape: Vec<u64>,
        dtype: &str,
        parts: Bound<'py, PyAny>,
        channel_names: Option<Vec<String>>,
        transformations: Option<Bound<'py, PyAny>>,
        scale_factors: Option<Vec<u64>>,
        chunks: Option<Vec<u64>>,
        shards: Option<Vec<u64>>,
        compression: &str,
        overwrite: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let spec = build_spec(
            name,
            SpecArgs {
                kind,
                dims,
                channel_names,
                transformations: transformations.as_ref(),
                scale_factors,
                levels: None,
                chunks,
                shards,
                compression,
            },
        )?;
        let plan = crate::py_plan::create(py, &self.store, name, &spec, shape, dtype, &parts, overwrite)?;
        crate::py_plan::plan_to_py(py, &plan)
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
        crate::py_plan::write(py, &self.store, plan_id, part, data, blocks, memory_limit)
    }

    /// Which parts of a plan are done, started or missing, and its commit version once committed.
    fn plan_status<'py>(&self, py: Python<'py>, plan_id: &str) -> PyResult<Bound<'py, PyDict>> {
        let status = crate::pool::detach(py, || self.store.plan_status(plan_id)).py()?;
        crate::py_plan::status_to_py(py, &status)
    }

    /// Commits a plan whose parts are all written (computing the pyramid); returns the version. Idempotent.
    fn commit_plan(&self, py: Python<'_>, plan_id: &str) -> PyResult<u64> {
        crate::pool::detach(py, || self.store.commit_plan(plan_id)).py().map(|c| c.version)
    }

    /// Checks the log, the published view and the data; returns problems, leftovers and retained paths.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = crate::pool::detach(py, || self.store.verify()).py()?;
        let d = PyDict::new(py);
        d.set_item("version", report.version)?;
        d.set_item("published_version", report.published_version)?;
        d.set_item("problems", &report.problems)?;
        let paths = |v: &[PathBuf]| v.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>();
        d.set_item("leftovers", paths(&report.leftovers))?;
        d.set_item("retained", paths(&report.retained))?;
        Ok(d)
    }

    /// Rolls interrupted writers forward and reclaims debris and old data older than `grace_seconds`.
    #[pyo3(signature = (grace_seconds = 3600.0))]
    fn gc<'py>(&self, py: Python<'py>, grace_seconds: f64) -> PyResult<Bound<'py, PyDict>> {
        let grace = Duration::from_secs_f64(grace_seconds.max(0.0));
        let report = crate::pool::detach(py, || self.store.gc(grace)).py()?;
        let d = PyDict::new(py);
        d.set_item("removed", report.removed.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>())?;
        d.set_item("bytes_freed", report.bytes_freed)?;
        d.set_item("published_version", report.published_version)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("<zarrtx._core.Store at {}>", self.path)
    }
}

impl PyStore {
    /// Adds a raster from a numpy array: copied whole when small, streamed in slabs straight from numpy's buffer
    /// when large (the GIL is released meanwhile; the array must not be modified by other threads during the call).
    fn add_raster_numpy(
        &self,
        py: Python<'_>,
        name: &str,
        spec: &RasterSpec,
        data: &Bound<'_, PyAny>,
        options: &AddOptions<'_>,
    ) -> PyResult<u64> {
        let data_type = data_type_of(data).ok_or_else(|| {
            invalid(name, format!("data must be a numpy array of bool, (u)int8..64 or float32/64, got {}", describe(data)))
        })?;
        with_numpy_dtype!(data, arr, variant => {
            let ro = arr.try_readonly().map_err(|e| invalid(name, format!("the array is being written elsewhere: {e}")))?;
            let view = ro.as_array();
            let nbytes = view.len() * data_type.size();
            let result = if nbytes <= COPY_LIMIT_BYTES || view.ndim() == 0 {
                let owned: RasterArray = variant(view.to_owned());
                crate::pool::detach(py, || self.store.add_raster(name, spec, RasterSource::InMemory(owned), options))
            } else {
                let shape: Vec<usize> = view.shape().to_vec();
                let (axis, height) = slab_axis_and_height(spec, &shape);
                let source = RasterSource::Blocks {
                    shape: shape.iter().map(|&n| n as u64).collect(),
                    data_type,
                    blocks: slabs(view, vec![0; shape.len()], axis, height, variant),
                };
                crate::pool::detach(py, || self.store.add_raster(name, spec, source, options))
            };
            result.py().map(|c| c.version)
        }, unreachable!("checked above"))
    }
}
