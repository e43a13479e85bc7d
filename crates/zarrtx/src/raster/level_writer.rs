//! Writing C-order data into one level array, chunk by chunk.
//!
//! A region is split along the array's chunk grid (shards when sharded). A grid cell the region covers entirely
//! (up to the array's edge) is encoded and stored directly, never read back; a cell it covers only partly goes
//! through zarrs' read-modify-write. Plain chunks are encoded in parallel (one rayon task per chunk, so at most
//! one chunk buffer per thread is in flight); shards are written one at a time with zarrs encoding their inner
//! chunks in parallel.

use super::array_meta::array_json;
use super::levels::LevelPlan;
use super::region::{copy_box, Region};
use super::zarr_io::{array_err, array_from_json, zarr_err, FsArray};
use super::{Compression, DataType};
use crate::error::Result;
use crate::name::ElementName;
use crate::progress::Progress;
use rayon::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zarrs::array::{ArrayBytes, ArraySubset, CodecOptions};
use zarrs::filesystem::FilesystemStore;

/// Writes regions of one level array.
pub(crate) struct LevelWriter<'a> {
    array: FsArray,
    json: Value,
    plan: LevelPlan,
    esize: usize,
    dir: PathBuf,
    name: &'a ElementName,
    progress: &'a dyn Progress,
}

impl<'a> LevelWriter<'a> {
    /// A writer for level `plan` of element `name` stored under `dir` (through `store`). Writes nothing yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: &Path,
        store: Arc<FilesystemStore>,
        plan: &LevelPlan,
        dtype: DataType,
        compression: &Compression,
        dims: &[String],
        name: &'a ElementName,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let json = array_json(plan, dtype, compression, dims);
        let array = array_from_json(store, &plan.path, &json, name)?;
        Ok(LevelWriter {
            array,
            json,
            plan: plan.clone(),
            esize: dtype.size(),
            dir: dir.to_path_buf(),
            name,
            progress,
        })
    }

    /// The level's `zarr.json` document (not yet written to disk).
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The zarrs array handle (for reading back what was written).
    pub fn array(&self) -> &FsArray {
        &self.array
    }

    /// The level's layout.
    pub fn plan(&self) -> &LevelPlan {
        &self.plan
    }

    /// Grid cells (chunks, or shards when sharded) intersecting `region`, in C order.
    pub fn cells(&self, region: &Region) -> Vec<Vec<u64>> {
        let g = self.plan.grid_chunk();
        let lo: Vec<u64> = region.start.iter().zip(g).map(|(s, g)| s / g).collect();
        let hi: Vec<u64> = region.end().iter().zip(g).map(|(e, g)| e.div_ceil(*g)).collect();
        let mut cells = Vec::new();
        if lo.iter().zip(&hi).any(|(l, h)| l >= h) {
            return cells;
        }
        let mut idx = lo.clone();
        loop {
            cells.push(idx.clone());
            let mut axis = idx.len();
            loop {
                if axis == 0 {
                    return cells;
                }
                axis -= 1;
                idx[axis] += 1;
                if idx[axis] < hi[axis] {
                    break;
                }
                idx[axis] = lo[axis];
            }
        }
    }

    /// The region of grid cell `idx`, clipped to the array.
    pub fn cell_region(&self, idx: &[u64]) -> Region {
        let g = self.plan.grid_chunk();
        let start: Vec<u64> = idx.iter().zip(g).map(|(i, g)| i * g).collect();
        let size = start
            .iter()
            .zip(g)
            .zip(&self.plan.shape)
            .map(|((s, g), n)| (*g).min(n.saturating_sub(*s)))
            .collect();
        Region::new(start, size)
    }

    /// Writes `data` (C order, shape `region.size`) at `region`, which must lie inside the array.
    pub fn write_region(&self, region: &Region, data: &[u8]) -> Result<()> {
        let cells = self.cells(region);
        if self.plan.shard.is_some() {
            let opts = CodecOptions::default().with_concurrent_target(rayon::current_num_threads());
            cells.iter().try_for_each(|c| self.write_cell(c, region, data, &opts))
        } else {
            let opts = CodecOptions::default().with_concurrent_target(1);
            cells.par_iter().try_for_each(|c| self.write_cell(c, region, data, &opts))
        }
    }

    fn write_cell(&self, idx: &[u64], region: &Region, data: &[u8], opts: &CodecOptions) -> Result<()> {
        let g = self.plan.grid_chunk();
        let bounded = self.cell_region(idx);
        let Some(overlap) = bounded.intersect(region) else { return Ok(()) };
        let in_src = overlap.relative_to(&region.start);
        let in_cell = overlap.relative_to(&bounded.start);
        let bytes = overlap.num_elements() as usize * self.esize;
        let result = if overlap == bounded {
            if bounded.size.as_slice() == g && overlap == *region {
                // The region is exactly this cell: encode the caller's buffer without copying.
                self.array.store_chunk_opt(idx, ArrayBytes::new_flen(data), opts)
            } else {
                let mut buf = vec![0u8; g.iter().product::<u64>() as usize * self.esize];
                copy_box(data, &region.size, &in_src.start, &mut buf, g, &in_cell.start, &overlap.size, self.esize);
                self.array.store_chunk_opt(idx, ArrayBytes::new_flen(buf), opts)
            }
        } else {
            let mut buf = vec![0u8; bytes];
            copy_box(data, &region.size, &in_src.start, &mut buf, &overlap.size, &vec![0; overlap.size.len()], &overlap.size, self.esize);
            let subset = ArraySubset::new_with_start_shape(in_cell.start.clone(), overlap.size.clone())
                .map_err(|e| zarr_err(self.name, e))?;
            self.array.store_chunk_subset_opt(idx, &subset, ArrayBytes::new_flen(buf), opts)
        };
        result.map_err(|e| array_err(self.name, &self.dir, e))?;
        self.progress.advance(bytes as u64);
        Ok(())
    }
}
