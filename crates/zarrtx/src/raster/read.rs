//! Reading a region of one level of a raster element from its storage.

use super::info::{array_data_type, array_shape, dataset_paths};
use super::pixel::{with_pixel_type, Pixel};
use super::zarr_io::{array_err, array_from_json, store};
use super::RasterArray;
use crate::error::{Error, Result};
use crate::name::ElementName;
use crate::storage::{join, DataHandle};
use ndarray::ArrayD;
use std::ops::Range;

/// Reads `region` (one range per axis; `None` = the whole level) of level `level` (0 = full resolution, in the
/// order of the group's `datasets`) of the raster element stored under `element`. A level that does not exist or
/// a region outside the level's shape gives [`Error::InvalidElement`] naming the valid range.
pub fn read_region(
    element: &DataHandle,
    name: &ElementName,
    level: usize,
    region: Option<&[Range<u64>]>,
) -> Result<RasterArray> {
    let invalid = |reason: String| Error::InvalidElement {
        name: name.to_string(),
        reason,
    };
    let group = element.read_json("zarr.json")?;
    let paths = dataset_paths(&group).map_err(|e| relocate(e, element))?;
    let path = paths.get(level).ok_or_else(|| {
        invalid(format!(
            "level {level} does not exist: the element has {} level(s), 0..={}",
            paths.len(),
            paths.len() - 1
        ))
    })?;
    let meta = element.read_json(&join(path, "zarr.json"))?;
    let dtype = array_data_type(&meta, path).map_err(|e| relocate(e, element))?;
    let shape = array_shape(&meta, path).map_err(|e| relocate(e, element))?;
    let ranges: Vec<Range<u64>> = match region {
        None => shape.iter().map(|&n| 0..n).collect(),
        Some(r) => {
            let ok = r.len() == shape.len() && r.iter().zip(&shape).all(|(r, &n)| r.start <= r.end && r.end <= n);
            if !ok {
                return Err(invalid(format!(
                    "region {r:?} is outside level {level} (path '{path}') of shape {shape:?}: give one range \
                     start..end per axis with start <= end <= size"
                )));
            }
            r.to_vec()
        }
    };
    let array = array_from_json(store(element), path, &meta, name)?;
    with_pixel_type!(dtype, T => {
        let a: ArrayD<T> = array
            .retrieve_array_subset::<ArrayD<T>>(&ranges)
            .map_err(|e| array_err(name, element, path, e))?;
        Ok(T::wrap(a))
    })
}

/// Makes a metadata error's path (relative to the element) name its place in the storage.
fn relocate(e: Error, element: &DataHandle) -> Error {
    match e {
        Error::CorruptMetadata { path, reason } => Error::CorruptMetadata {
            path: element.describe(&path.to_string_lossy()),
            reason,
        },
        other => other,
    }
}
