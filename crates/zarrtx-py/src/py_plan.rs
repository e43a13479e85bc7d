//! Write plans from Python: one raster element written by many processes or nodes, part by part (the methods
//! `Store.create_plan`, `write_part`, `plan_status`, `commit_plan` delegate here).

use crate::errors::{invalid, IntoPy};
use crate::ndarrays::{data_type_of, describe, with_numpy_dtype};
use crate::raster_input::{slab_axis_and_height, slabs, PyBlocks};
use numpy::PyArrayMethods;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ops::Range;
use zarrtx::raster::{DataType, RasterBlock, RasterSpec};
use zarrtx::{PartLayout, PartOutcome, PlanInfo, PlanOptions, PlanStatus, Store};

/// Parts as Python gives them: a count, or a list of regions (one `(start, stop)` per axis each).
pub fn layout_from_py(parts: &Bound<'_, PyAny>, name: &str) -> PyResult<PartLayout> {
    if let Ok(n) = parts.extract::<usize>() {
        return Ok(PartLayout::Count(n));
    }
    let regions: Vec<Vec<(u64, u64)>> = parts.extract().map_err(|_| {
        invalid(name, format!("parts must be a count or a list of regions [(start, stop) per axis], got {}", describe(parts)))
    })?;
    Ok(PartLayout::Regions(regions.into_iter().map(|r| r.into_iter().map(|(a, b)| a..b).collect()).collect()))
}

pub fn ranges_to_py(r: &[Range<u64>]) -> Vec<(u64, u64)> {
    r.iter().map(|r| (r.start, r.end)).collect()
}

/// A plan as a dict: id, element, shape, dtype, write unit and parts.
pub fn plan_to_py<'py>(py: Python<'py>, plan: &PlanInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("plan_id", &plan.plan_id)?;
    d.set_item("name", &plan.name)?;
    d.set_item("type", plan.element_type.group())?;
    d.set_item("dims", &plan.spec.dims)?;
    d.set_item("shape", &plan.shape)?;
    d.set_item("dtype", plan.data_type.zarr_name())?;
    d.set_item("write_unit", &plan.write_unit)?;
    d.set_item("parts", plan.parts.iter().map(|p| ranges_to_py(p)).collect::<Vec<_>>())?;
    d.set_item("created_version", plan.created_version)?;
    d.set_item("overwrite", plan.overwrite)?;
    Ok(d)
}

/// A plan's status as a dict.
pub fn status_to_py<'py>(py: Python<'py>, status: &PlanStatus) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("plan", plan_to_py(py, &status.plan)?)?;
    d.set_item("done", status.done.iter().map(|r| r.part).collect::<Vec<_>>())?;
    d.set_item("started", &status.started)?;
    d.set_item("missing", &status.missing)?;
    d.set_item("committed", status.committed.as_ref().map(|c| c.version))?;
    Ok(d)
}

pub fn outcome_to_py<'py>(py: Python<'py>, outcome: &PartOutcome) -> PyResult<Bound<'py, PyDict>> {
    let r = outcome.record();
    let d = PyDict::new(py);
    d.set_item("part", r.part)?;
    d.set_item("written", matches!(outcome, PartOutcome::Written(_)))?;
    d.set_item("chunks", r.chunks)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("elapsed_ms", r.elapsed_ms)?;
    Ok(d)
}

/// Creates a plan (`overwrite`: its commit replaces the element of the same name).
pub fn create(
    py: Python<'_>,
    store: &Store,
    name: &str,
    spec: &RasterSpec,
    shape: Vec<u64>,
    dtype: &str,
    parts: &Bound<'_, PyAny>,
    overwrite: bool,
) -> PyResult<PlanInfo> {
    let data_type = crate::raster_input::parse_dtype(name, dtype)?;
    let layout = layout_from_py(parts, name)?;
    crate::pool::detach(py, || {
        if overwrite {
            store.create_plan_replacing(name, spec, &shape, data_type, layout)
        } else {
            store.create_plan(name, spec, &shape, data_type, layout)
        }
    })
    .py()
}

/// Writes one part of an element plan from a numpy array covering exactly the part's region, or from
/// `(offset, block)` pairs.
pub fn write<'py>(
    py: Python<'py>,
    store: &Store,
    plan_id: &str,
    part: usize,
    data: Option<Bound<'py, PyAny>>,
    blocks: Option<Bound<'py, PyAny>>,
    memory_limit: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let plan = crate::pool::detach(py, || store.plan_info(plan_id)).py()?;
    let target = PartTarget::new(&plan.name, plan_id, &plan.parts, part, plan.data_type, |want| {
        slab_axis_and_height(&plan.spec, want)
    })?;
    let options = plan_options(memory_limit);
    write_input(py, &target, data, blocks, |source| store.write_part(plan_id, part, source, &options))
}

/// [`PlanOptions`] with the caller's memory limit, if any.
pub fn plan_options(memory_limit: Option<u64>) -> PlanOptions<'static> {
    let mut options = PlanOptions::default();
    if let Some(limit) = memory_limit {
        options.memory_limit = limit;
    }
    options
}

/// One part as a Python caller writes it: what it is called in messages, its region, its dtype, and how a numpy
/// array of the region is cut into slabs (axis, height) for the engine.
pub struct PartTarget {
    name: String,
    part: usize,
    region: Vec<Range<u64>>,
    dtype: DataType,
    slab: (usize, usize),
}

impl PartTarget {
    /// Part `part` of the plan `plan_id` (of `parts`), writing `dtype` data into `name`; `slab(shape)` chooses the
    /// slab axis and height for a region of `shape`.
    pub fn new(
        name: &str,
        plan_id: &str,
        parts: &[Vec<Range<u64>>],
        part: usize,
        dtype: DataType,
        slab: impl FnOnce(&[usize]) -> (usize, usize),
    ) -> PyResult<Self> {
        let region = parts.get(part).cloned().ok_or_else(|| {
            invalid(name, format!("plan {plan_id} has {} parts; part {part} does not exist", parts.len()))
        })?;
        let want: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
        let slab = slab(&want);
        Ok(PartTarget { name: name.to_string(), part, region, dtype, slab })
    }
}

/// The engine's blocks of one part, whichever input they come from.
pub type PartBlocks<'a> = Box<dyn Iterator<Item = zarrtx::Result<RasterBlock>> + Send + 'a>;

/// Feeds `run` (the engine's `write_part`, called without the GIL) the blocks of `data` (a numpy array of exactly
/// the part's region, cut into slabs without a copy of the whole) or of `blocks` (an iterable of
/// `(offset, array)` pairs), and returns the outcome as a dict.
pub fn write_input<'py>(
    py: Python<'py>,
    target: &PartTarget,
    data: Option<Bound<'py, PyAny>>,
    blocks: Option<Bound<'py, PyAny>>,
    run: impl for<'a> FnOnce(PartBlocks<'a>) -> zarrtx::Result<PartOutcome> + Send,
) -> PyResult<Bound<'py, PyDict>> {
    let (name, part, region) = (target.name.as_str(), target.part, &target.region);
    let outcome = match (data, blocks) {
        (Some(data), None) => {
            let want: Vec<usize> = region.iter().map(|r| (r.end - r.start) as usize).collect();
            if data_type_of(&data) != Some(target.dtype) {
                return Err(invalid(
                    name,
                    format!("part data must be a numpy array of dtype {}, got {}", target.dtype.zarr_name(), describe(&data)),
                ));
            }
            with_numpy_dtype!(&data, arr, variant => {
                let ro = arr.try_readonly().map_err(|e| invalid(name, format!("the array is being written elsewhere: {e}")))?;
                let view = ro.as_array();
                if view.shape() != want.as_slice() {
                    return Err(invalid(name, format!(
                        "part {part} covers {:?} (shape {want:?}) but the data has shape {:?}", ranges_to_py(region), view.shape()
                    )));
                }
                let (axis, height) = target.slab;
                let base: Vec<u64> = region.iter().map(|r| r.start).collect();
                let source = slabs(view, base, axis, height, variant);
                crate::pool::detach(py, || run(source)).py()?
            }, unreachable!("dtype checked above"))
        }
        (None, Some(blocks)) => {
            let blocks = PyBlocks::new(&blocks, name, target.dtype)?;
            let failure = blocks.failure.clone();
            match crate::pool::detach(py, || run(Box::new(blocks))) {
                Ok(o) => o,
                Err(e) => return Err(failure.or_engine_error(e)),
            }
        }
        _ => return Err(invalid(name, "give exactly one of data= (the part's region as a numpy array) or blocks=")),
    };
    outcome_to_py(py, &outcome)
}
