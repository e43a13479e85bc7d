//! Writing C-order data into one level array, chunk by chunk.
//!
//! A region is split along the array's chunk grid (shards when sharded). A grid cell the region covers entirely
//! (up to the array's edge) is encoded and stored directly, never read back; a cell it covers only partly is
//! read, updated and rewritten (see `stream` for how streaming avoids that). Plain chunks are encoded in
//! parallel, with the number in flight capped by a memory budget (`parallel::IN_FLIGHT_BUDGET` unless the caller
//! sets another with [`LevelWriter::set_in_flight_budget`]); shards are
//! written one at a time with zarrs encoding their inner chunks in parallel. Chunks are encoded with zarrs'
//! codec chain and stored with [`DataHandle::put_private`] (written in place, not durable until the caller syncs
//! the handle; a durable POSIX backend starts writing each one back at once).

use super::array_meta::array_json;
use super::levels::LevelPlan;
use crate::parallel::{limit_within, try_for_each_limited, IN_FLIGHT_BUDGET};
use super::region::{copy_box, Region};
use super::zarr_io::{array_err, array_from_json, store, zarr_err, StoreArray};
use super::{Compression, DataType};
use crate::error::Result;
use crate::name::ElementName;
use crate::progress::Progress;
use crate::storage::DataHandle;
use serde_json::Value;
use zarrs::array::{ArrayBytes, ArrayError, ArrayToBytesCodecTraits, CodecOptions};

/// Writes regions of one level array.
pub(crate) struct LevelWriter<'a> {
    array: StoreArray,
    json: Value,
    plan: LevelPlan,
    esize: usize,
    /// Where the array lives (the zarrs store's root): chunks are stored under it with their zarrs keys.
    handle: DataHandle,
    name: &'a ElementName,
    progress: &'a dyn Progress,
    /// Bytes of cell buffers and encoded cells that may be in flight at once.
    in_flight: u64,
}

impl<'a> LevelWriter<'a> {
    /// A writer for level `plan` of element `name` stored under `handle`. Writes nothing yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handle: &DataHandle,
        plan: &LevelPlan,
        dtype: DataType,
        compression: &Compression,
        dims: &[String],
        name: &'a ElementName,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let json = array_json(plan, dtype, compression, dims);
        Self::from_json(handle, plan, json, dtype, name, progress)
    }

    /// A writer for the array at `plan.path` under `handle` described by the `zarr.json` document `json` (any codecs
    /// and fill value zarrs supports; `plan` must describe the same shape and chunk grid). Writes nothing yet.
    pub fn from_json(
        handle: &DataHandle,
        plan: &LevelPlan,
        json: Value,
        dtype: DataType,
        name: &'a ElementName,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let array = array_from_json(store(handle), &plan.path, &json, name)?;
        Ok(LevelWriter {
            array,
            json,
            plan: plan.clone(),
            esize: dtype.size(),
            handle: handle.clone(),
            name,
            progress,
            in_flight: IN_FLIGHT_BUDGET,
        })
    }

    /// Caps the bytes of cell buffers and encoded cells in flight at once (at least one cell is always in flight).
    pub fn set_in_flight_budget(&mut self, bytes: u64) {
        self.in_flight = bytes;
    }

    /// The cap set with [`LevelWriter::set_in_flight_budget`].
    pub fn in_flight_budget(&self) -> u64 {
        self.in_flight
    }

    /// The level's `zarr.json` document (not yet written to disk).
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The zarrs array handle (for reading back what was written).
    pub fn array(&self) -> &StoreArray {
        &self.array
    }

    /// Where the array lives.
    pub fn handle(&self) -> &DataHandle {
        &self.handle
    }

    /// The level's layout.
    pub fn plan(&self) -> &LevelPlan {
        &self.plan
    }

    /// Bytes per element.
    pub fn esize(&self) -> usize {
        self.esize
    }

    /// Bytes of one full grid cell (chunk, or shard when sharded).
    pub fn cell_bytes(&self) -> u64 {
        self.plan.grid_chunk().iter().product::<u64>() * self.esize as u64
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

    /// Codec options for storing one cell: zarrs may use every thread inside a shard; plain chunks are encoded
    /// one per task.
    pub fn opts(&self) -> CodecOptions {
        if self.plan.shard.is_some() {
            CodecOptions::default().with_concurrent_target(rayon::current_num_threads())
        } else {
            CodecOptions::default().with_concurrent_target(1)
        }
    }

    /// Runs `f(cell index, cell region clipped to the array, part of `region` inside it)` for every grid cell
    /// `region` touches: shards one after the other, plain chunks in parallel under the memory budget.
    pub fn for_each_cell<F>(&self, region: &Region, f: F) -> Result<()>
    where
        F: Fn(&[u64], &Region, &Region) -> Result<()> + Sync,
    {
        let cells = self.cells(region);
        let one = |idx: &Vec<u64>| -> Result<()> {
            let bounded = self.cell_region(idx);
            match bounded.intersect(region) {
                Some(overlap) => f(idx, &bounded, &overlap),
                None => Ok(()),
            }
        };
        if self.plan.shard.is_some() {
            cells.iter().try_for_each(one)
        } else {
            // Each task holds one chunk copy and its encoded form.
            try_for_each_limited(&cells, limit_within(self.in_flight, 2 * self.cell_bytes()), one)
        }
    }

    /// Writes `data` (C order, shape `region.size`) at `region`, which must lie inside the array. Cells covered
    /// entirely are stored directly; cells covered partly are read, updated and rewritten.
    pub fn write_region(&self, region: &Region, data: &[u8]) -> Result<()> {
        let opts = self.opts();
        self.for_each_cell(region, |idx, bounded, overlap| self.write_cell(idx, bounded, overlap, region, data, &opts))
    }

    /// A buffer of one full grid cell holding the array's fill value.
    pub fn new_cell_buffer(&self) -> Vec<u8> {
        let fill = self.array.fill_value().as_ne_bytes();
        if fill.len() != self.esize || fill.iter().all(|&b| b == 0) {
            vec![0u8; self.cell_bytes() as usize]
        } else {
            fill.repeat(self.cell_bytes() as usize / self.esize)
        }
    }

    /// Copies the part `overlap` of `data` (at `region`) into `buf`, the full buffer of the cell at `bounded`.
    pub fn copy_into_cell(&self, bounded: &Region, overlap: &Region, region: &Region, data: &[u8], buf: &mut [u8]) {
        let in_src = overlap.relative_to(&region.start);
        let in_cell = overlap.relative_to(&bounded.start);
        let g = self.plan.grid_chunk();
        copy_box(data, &region.size, &in_src.start, buf, g, &in_cell.start, &overlap.size, self.esize);
    }

    /// Encodes and stores the full buffer of cell `idx`.
    pub fn store_cell(&self, idx: &[u64], buf: Vec<u8>, opts: &CodecOptions) -> Result<()> {
        self.put_chunk(idx, ArrayBytes::new_flen(buf), opts)
    }

    /// Encodes `bytes` (one full grid cell) with the array's codecs and stores the chunk (or shard) object under
    /// its zarrs key; a cell holding only the fill value is not stored (any earlier object is deleted), as
    /// zarr-python does. Objects are written with [`DataHandle::put_private`], without making each durable: the
    /// caller syncs them all at the end, which keeps the encoding threads busy (a durable POSIX backend starts the
    /// write-back of each file at once, so that final sync finds little left to do).
    fn put_chunk(&self, idx: &[u64], bytes: ArrayBytes<'_>, opts: &CodecOptions) -> Result<()> {
        let key = self.array.chunk_key(idx);
        if bytes.is_fill_value(self.array.fill_value()) {
            return self.handle.delete(key.as_str());
        }
        let shape = self.array.chunk_shape(idx).map_err(|e| array_err(self.name, &self.handle, key.as_str(), e))?;
        let encoded = self
            .array
            .codecs()
            .encode(bytes, &shape, self.array.data_type(), self.array.fill_value(), opts)
            .map_err(|e| array_err(self.name, &self.handle, key.as_str(), ArrayError::CodecError(e)))?;
        self.handle.put_private(key.as_str(), &encoded)
    }

    /// Reads cell `idx` back (the fill value when absent), copies the part `overlap` of `data` (at `region`) into
    /// it and stores it again.
    fn merge_cell(&self, idx: &[u64], bounded: &Region, overlap: &Region, region: &Region, data: &[u8], opts: &CodecOptions) -> Result<()> {
        let old: ArrayBytes<'static> = self
            .array
            .retrieve_chunk_opt(idx, opts)
            .map_err(|e| array_err(self.name, &self.handle, self.array.chunk_key(idx).as_str(), e))?;
        let mut buf = old.into_fixed().map_err(|e| zarr_err(self.name, e))?.into_owned();
        if buf.len() as u64 != self.cell_bytes() {
            return Err(zarr_err(self.name, format!("chunk {idx:?} decoded to {} bytes, expected {}", buf.len(), self.cell_bytes())));
        }
        self.copy_into_cell(bounded, overlap, region, data, &mut buf);
        self.store_cell(idx, buf, opts)
    }

    /// Reports `bytes` of data done.
    pub fn advance(&self, bytes: u64) {
        self.progress.advance(bytes);
    }

    /// Writes the part `overlap` of `data` (at `region`) into cell `idx` (at `bounded`): directly when it covers
    /// the cell, by read-modify-write otherwise.
    pub fn write_cell(
        &self,
        idx: &[u64],
        bounded: &Region,
        overlap: &Region,
        region: &Region,
        data: &[u8],
        opts: &CodecOptions,
    ) -> Result<()> {
        let g = self.plan.grid_chunk();
        let bytes = overlap.num_elements() * self.esize as u64;
        if overlap == bounded {
            if bounded.size.as_slice() == g && overlap == region {
                // The region is exactly this cell: encode the caller's buffer without copying.
                self.put_chunk(idx, ArrayBytes::new_flen(data), opts)?;
            } else {
                let mut buf = self.new_cell_buffer();
                self.copy_into_cell(bounded, overlap, region, data, &mut buf);
                self.store_cell(idx, buf, opts)?;
            }
        } else {
            self.merge_cell(idx, bounded, overlap, region, data, opts)?;
        }
        self.advance(bytes);
        Ok(())
    }
}
