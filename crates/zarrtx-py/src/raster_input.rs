//! What `Store.add_raster` receives from Python, turned into the engine's [`RasterSpec`] and [`RasterSource`]:
//! numpy data (small arrays copied once; large ones fed to the engine as row slabs read straight from numpy's
//! buffer, so the image is never held twice), or a Python iterable of `(offset, block)` pairs pulled one at a time
//! with the GIL held only while pulling.

use crate::errors::{invalid, PyFailure};
use crate::ndarrays::{describe, to_raster_array};
use ndarray::{ArrayD, ArrayViewD, Axis, Slice};
use pyo3::prelude::*;
use std::sync::Arc;
use zarrtx::raster::RasterSpec;
use zarrtx::{Compression, DataType, Error, Pyramid, RasterArray, RasterBlock, RasterKind};

/// numpy inputs up to this size are copied into the engine whole; larger ones are streamed as slabs.
pub const COPY_LIMIT_BYTES: usize = 64 << 20;

/// The parts of a raster element's spec given as Python values.
pub struct SpecArgs<'a, 'py> {
    /// `"image"` or `"labels"`.
    pub kind: &'a str,
    /// Axis names.
    pub dims: Vec<String>,
    /// Channel names (images).
    pub channel_names: Option<Vec<String>>,
    /// NGFF transformation dicts.
    pub transformations: Option<&'a Bound<'py, PyAny>>,
    /// Computed pyramid factors.
    pub scale_factors: Option<Vec<u64>>,
    /// Given lower levels.
    pub levels: Option<&'a Bound<'py, PyAny>>,
    /// Chunk shape.
    pub chunks: Option<Vec<u64>>,
    /// Shard shape.
    pub shards: Option<Vec<u64>>,
    /// The compression as text (`"zstd"`, `"zstd:3"`, `"blosc-lz4"`, `"none"`, ...: [`zarrtx::raster::settings`]).
    pub compression: &'a str,
}

/// Parses a Zarr v3 dtype name the engine supports, or refuses it naming the element.
pub fn parse_dtype(name: &str, dtype: &str) -> PyResult<DataType> {
    DataType::from_zarr_name(dtype)
        .ok_or_else(|| invalid(name, format!("dtype '{dtype}' is not supported (bool, (u)int8..64, float32/64)")))
}

/// Parses a compression text ([`zarrtx::raster::settings`]), or refuses it naming the element.
pub fn parse_compression(name: &str, compression: &str) -> PyResult<Compression> {
    compression.parse().map_err(|e| invalid(name, e))
}

/// `"image"` (or `"images"`) or `"labels"` as the engine's kind.
pub fn raster_kind(kind: &str) -> Option<RasterKind> {
    match kind {
        "image" | "images" => Some(RasterKind::Image),
        "labels" => Some(RasterKind::Labels),
        _ => None,
    }
}

/// Builds the engine spec (nothing is validated against the data here; the engine does that).
pub fn build_spec(name: &str, args: SpecArgs<'_, '_>) -> PyResult<RasterSpec> {
    let kind = raster_kind(args.kind)
        .ok_or_else(|| invalid(name, format!("kind must be 'image' or 'labels', got '{}'", args.kind)))?;
    let dims: Vec<&str> = args.dims.iter().map(String::as_str).collect();
    let mut spec = RasterSpec::new(kind, &dims);
    spec.channel_names = args.channel_names;
    spec.chunk_shape = args.chunks;
    spec.shard_shape = args.shards;
    spec.transformations = crate::json::transformations_from_py(args.transformations, name)?;
    spec.compression = parse_compression(name, args.compression)?;
    spec.pyramid = match (args.scale_factors, args.levels) {
        (Some(_), Some(l)) if !l.is_none() => {
            return Err(invalid(name, "give either scale_factors (computed levels) or levels (given levels), not both"))
        }
        (Some(f), _) if !f.is_empty() => Pyramid::Computed(f),
        (_, Some(levels)) if !levels.is_none() => {
            let mut given = Vec::new();
            for (i, level) in levels.try_iter()?.enumerate() {
                given.push(to_raster_array(&level?, name, &format!("pyramid level {}", i + 1))?);
            }
            if given.is_empty() {
                Pyramid::Single
            } else {
                Pyramid::Given(given)
            }
        }
        _ => Pyramid::Single,
    };
    Ok(spec)
}

/// The axis along which a large in-memory array is cut into slabs (the first spatial axis) and the slab height:
/// the shard (else chunk) extent along it, so that every chunk is complete within one slab.
pub fn slab_axis_and_height(spec: &RasterSpec, shape: &[usize]) -> (usize, usize) {
    let axis = spec.dims.iter().position(|d| d != "c").unwrap_or(0);
    let from_spec = spec.shard_shape.as_ref().or(spec.chunk_shape.as_ref()).and_then(|s| s.get(axis).copied());
    let height = from_spec.unwrap_or_else(|| {
        let shape: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
        zarrtx::raster::default_chunk_shape(&spec.dims, &shape).get(axis).copied().unwrap_or(1)
    }) as usize;
    (axis, height.clamp(1, shape.get(axis).copied().unwrap_or(1).max(1)))
}

/// Cuts a borrowed array placed at `base` (one offset per axis) into owned slabs along `axis`, `height` at a time.
pub fn slabs<'a, T: Clone + Send + Sync + 'a>(
    view: ArrayViewD<'a, T>,
    base: Vec<u64>,
    axis: usize,
    height: usize,
    variant: fn(ArrayD<T>) -> RasterArray,
) -> Box<dyn Iterator<Item = zarrtx::Result<RasterBlock>> + Send + 'a> {
    let n = view.shape().get(axis).copied().unwrap_or(0);
    Box::new((0..n).step_by(height.max(1)).map(move |start| {
        let stop = (start + height).min(n);
        let slab = view.slice_axis(Axis(axis), Slice::from(start..stop)).to_owned();
        let mut offset = base.clone();
        offset[axis] += start as u64;
        Ok(RasterBlock { offset, data: variant(slab) })
    }))
}

/// A Python iterable of `(offset, block)` pairs as the engine's block iterator. A Python exception raised while
/// pulling is kept in `failure` (the engine sees a generic error and abandons the write) so the caller can
/// re-raise the original exception.
pub struct PyBlocks {
    iter: Py<PyAny>,
    element: String,
    data_type: DataType,
    /// The first Python exception raised by the iterable or by a bad block.
    pub failure: Arc<PyFailure>,
}

impl PyBlocks {
    /// Wraps `iterable` (anything `iter()` accepts).
    pub fn new(iterable: &Bound<'_, PyAny>, element: &str, data_type: DataType) -> PyResult<Self> {
        Ok(PyBlocks {
            iter: iterable.try_iter()?.into_any().unbind(),
            element: element.to_string(),
            data_type,
            failure: Arc::new(PyFailure::default()),
        })
    }

    fn pull(&self, py: Python<'_>) -> PyResult<Option<RasterBlock>> {
        let Some(item) = self.iter.bind(py).call_method0("__next__").map(Some).or_else(|e| {
            if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) {
                Ok(None)
            } else {
                Err(e)
            }
        })?
        else {
            return Ok(None);
        };
        let (offset, block): (Vec<u64>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            invalid(&self.element, format!("blocks must yield (offset, numpy_block) pairs, got {}", describe(&item)))
        })?;
        let data = to_raster_array(&block, &self.element, "a block")?;
        if data.data_type() != self.data_type {
            return Err(invalid(
                &self.element,
                format!(
                    "a block at offset {offset:?} has dtype {} but the element's dtype is {}; cast the blocks",
                    data.data_type().zarr_name(),
                    self.data_type.zarr_name()
                ),
            ));
        }
        Ok(Some(RasterBlock { offset, data }))
    }
}

impl Iterator for PyBlocks {
    type Item = zarrtx::Result<RasterBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        Python::attach(|py| match self.pull(py) {
            Ok(block) => block.map(Ok),
            Err(e) => {
                let message = self.failure.record(e);
                Some(Err(Error::InvalidElement {
                    name: self.element.clone(),
                    reason: format!("the block source failed: {message}"),
                }))
            }
        })
    }
}
