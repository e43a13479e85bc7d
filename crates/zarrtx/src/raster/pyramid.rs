//! Pyramid levels: level k+1 is level k downsampled by the level's factor along the spatial axes (`z`, `y`, `x`;
//! never `c`), by mean for images and by mode for labels (see [`Reduce`]).
//!
//! In memory, a level is computed from the previous level's array. When streaming, each level is computed by
//! reading the previous level back from storage in tiles, one output grid cell at a time, so memory stays bounded
//! by a few tiles per thread and never holds a whole level.

use super::downsample::{downsample, Reduce};
use super::level_writer::LevelWriter;
use super::pixel::{with_pixel_type, Pixel};
use super::region::{copy_box, Region};
use super::zarr_io::{array_err, StoreArray};
use super::{DataType, RasterArray, RasterKind};
use crate::error::{Error, Result};
use crate::name::ElementName;
use ndarray::ArrayD;
use crate::parallel::{limit_within, try_for_each_limited, try_map_limited};
use crate::storage::DataHandle;
use zarrs::array::ArraySubset;

/// The reduction pyramids use for `kind`: mean for images, mode for labels.
pub(crate) fn reduce_for(kind: RasterKind) -> Reduce {
    match kind {
        RasterKind::Image => Reduce::Mean,
        RasterKind::Labels => Reduce::Mode,
    }
}

fn shape_err(name: &ElementName, e: impl std::fmt::Display) -> Error {
    Error::InvalidElement {
        name: name.to_string(),
        reason: format!("internal error while downsampling: {e}"),
    }
}

/// The next level of an in-memory array: `a` downsampled by `factors` (one per axis) with `reduce`.
pub(crate) fn downsample_array(name: &ElementName, a: &RasterArray, factors: &[u64], reduce: Reduce) -> Result<RasterArray> {
    crate::with_raster_array!(a, arr => {
        downsample(arr, factors, reduce).map(Pixel::wrap).map_err(|e| shape_err(name, e))
    })
}

/// Computes a level from the previous level in storage and writes it with `next`. `factors` is the per-axis factor
/// between the two levels. `prev` lives in the same store as `next` (errors name its objects under
/// `next.handle()`).
pub(crate) fn write_level_from_disk(
    prev: &StoreArray,
    next: &LevelWriter<'_>,
    factors: &[u64],
    kind: RasterKind,
    dtype: DataType,
    name: &ElementName,
) -> Result<()> {
    let dir = next.handle();
    with_pixel_type!(dtype, T => level_from_disk::<T>(prev, next, factors, reduce_for(kind), name, dir))
}

fn level_from_disk<T: Pixel>(
    prev: &StoreArray,
    next: &LevelWriter<'_>,
    factors: &[u64],
    reduce: Reduce,
    name: &ElementName,
    dir: &DataHandle,
) -> Result<()> {
    let plan = next.plan();
    let whole = Region::new(vec![0; plan.shape.len()], plan.shape.clone());
    let cells = next.cells(&whole);
    let one_cell = |idx: &Vec<u64>| -> Result<()> {
        let out = next.cell_region(idx);
        let data = compute_region::<T>(prev, &out, &plan.chunk, factors, reduce, name, dir, next.in_flight_budget())?;
        next.write_region(&out, &data)
    };
    if plan.shard.is_some() {
        // One shard at a time; its tiles are computed in parallel inside compute_region.
        cells.iter().try_for_each(one_cell)
    } else {
        // Each task holds the input window (factor^d cells), the output cell and its encoded form.
        let window: u64 = factors.iter().product();
        try_for_each_limited(&cells, limit_within(next.in_flight_budget(), (window + 3) * next.cell_bytes()), one_cell)
    }
}

/// The bytes of output region `out` (C order), computed from `prev` tile by tile (tiles of `tile` elements,
/// in parallel, with at most `budget` bytes of tiles in flight) and assembled.
#[allow(clippy::too_many_arguments)]
fn compute_region<T: Pixel>(
    prev: &StoreArray,
    out: &Region,
    tile: &[u64],
    factors: &[u64],
    reduce: Reduce,
    name: &ElementName,
    dir: &DataHandle,
    budget: u64,
) -> Result<Vec<u8>> {
    let tiles = split(out, tile);
    if tiles.len() == 1 {
        return compute_tile::<T>(prev, out, factors, reduce, name, dir).map(T::into_bytes);
    }
    let esize = std::mem::size_of::<T>();
    let window: u64 = factors.iter().product();
    let tile_bytes = tile.iter().product::<u64>() * esize as u64;
    let parts = try_map_limited(&tiles, limit_within(budget, (window + 2) * tile_bytes), |t| {
        compute_tile::<T>(prev, t, factors, reduce, name, dir)
    })?;
    let mut buf = vec![0u8; out.num_elements() as usize * esize];
    for (t, v) in tiles.iter().zip(&parts) {
        let at = t.relative_to(&out.start);
        copy_box(T::as_bytes(v), &t.size, &vec![0; t.size.len()], &mut buf, &out.size, &at.start, &t.size, esize);
    }
    Ok(buf)
}

/// Splits `r` along a grid of `tile`-sized cells anchored at the origin.
fn split(r: &Region, tile: &[u64]) -> Vec<Region> {
    let mut out = vec![Region::new(vec![], vec![])];
    for ((&s, &n), &t) in r.start.iter().zip(&r.size).zip(tile) {
        let (e, t) = (s + n, t.max(1));
        let mut pieces = Vec::new();
        let mut a = s;
        while a < e {
            let b = ((a / t) + 1) * t;
            let b = b.min(e);
            pieces.push((a, b - a));
            a = b;
        }
        out = out
            .into_iter()
            .flat_map(|p| {
                pieces.iter().map(move |&(a, n)| {
                    let mut q = p.clone();
                    q.start.push(a);
                    q.size.push(n);
                    q
                })
            })
            .collect();
    }
    out
}

/// One output tile: reads the matching input window from `prev` and downsamples it.
fn compute_tile<T: Pixel>(
    prev: &StoreArray,
    out: &Region,
    factors: &[u64],
    reduce: Reduce,
    name: &ElementName,
    dir: &DataHandle,
) -> Result<Vec<T>> {
    let start: Vec<u64> = out.start.iter().zip(factors).map(|(s, f)| s * f).collect();
    let size: Vec<u64> = out.size.iter().zip(factors).map(|(s, f)| s * f).collect();
    let subset = ArraySubset::new_with_start_shape(start, size).map_err(|e| shape_err(name, e))?;
    let input: ArrayD<T> = prev
        .retrieve_array_subset::<ArrayD<T>>(&subset)
        .map_err(|e| array_err(name, dir, prev.path().as_str().trim_start_matches('/'), e))?;
    let d = downsample(&input, factors, reduce).map_err(|e| shape_err(name, e))?;
    let (v, _) = d.into_raw_vec_and_offset();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_aligns_to_grid() {
        let r = Region::new(vec![3, 0], vec![6, 4]);
        let s = split(&r, &[4, 4]);
        assert_eq!(
            s,
            vec![Region::new(vec![3, 0], vec![1, 4]), Region::new(vec![4, 0], vec![4, 4]), Region::new(vec![8, 0], vec![1, 4])]
        );
    }
}
