//! Streaming blocks into level 0 without reading chunks back.
//!
//! A block that covers a grid cell entirely is encoded and stored at once. The parts of cells a block covers only
//! partly are assembled in memory until the cell is complete, then stored once; so unaligned blocks cost no
//! read-modify-write. If the cells waiting for completion exceed the budget (half the write's memory limit,
//! [`PENDING_BUDGET`] by default), the oldest are stored as they are (uncovered parts at the fill value) and their
//! remaining parts later go through read-modify-write. The budget is enforced as cells are opened, not only between
//! blocks, so a wide block touching many partial cells cannot grow memory past it. Every stored cell is remembered,
//! so blocks that overlap earlier ones are applied in stream order (the later wins) by read-modify-write.
//! Consecutive whole-cell blocks are gathered and encoded in parallel ([`PendingCells::write_stream`]).

use super::level_writer::LevelWriter;
use crate::parallel::{limit_within, try_for_each_limited};
use super::pixel::with_bytes;
use super::region::Region;
use super::RasterArray;
use crate::error::Result;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Default upper bound, in bytes, on partly filled cells kept in memory while streaming (half of
/// [`DEFAULT_MEMORY_LIMIT`](super::DEFAULT_MEMORY_LIMIT)).
pub(crate) const PENDING_BUDGET: u64 = 128 << 20;

struct Pending {
    buf: Vec<u8>,
    covered: u64,
    stamp: u64,
}

/// Partly filled cells of one level while blocks stream in.
pub(crate) struct PendingCells {
    budget: u64,
    pending: Mutex<HashMap<Vec<u64>, Pending>>,
    /// Cells already stored (complete, or flushed early under the budget): later blocks update them in place.
    flushed: Mutex<HashSet<Vec<u64>>>,
    bytes: AtomicU64,
    /// The most `bytes` ever held (for tests of the bound).
    peak: AtomicU64,
    clock: AtomicU64,
}

impl PendingCells {
    /// Keeps at most about `budget` bytes of partly filled cells in memory.
    pub fn new(budget: u64) -> Self {
        PendingCells {
            budget,
            pending: Mutex::default(),
            flushed: Mutex::default(),
            bytes: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        }
    }

    fn take(&self, idx: &[u64]) -> Option<Pending> {
        self.pending.lock().ok().and_then(|mut m| m.remove(idx))
    }

    fn is_pending(&self, idx: &[u64]) -> bool {
        self.pending.lock().map(|m| m.contains_key(idx)).unwrap_or(false)
    }

    fn is_flushed(&self, idx: &[u64]) -> bool {
        self.flushed.lock().map(|s| s.contains(idx)).unwrap_or(false)
    }

    /// Remembers that cell `idx` is stored: a later block touching it (blocks may overlap) updates it by
    /// read-modify-write instead of starting it again from the fill value.
    fn mark_stored(&self, idx: &[u64]) {
        if let Ok(mut f) = self.flushed.lock() {
            f.insert(idx.to_vec());
        }
    }

    /// Writes one block (`data` in C order at `region`) through `w`.
    pub fn write_block(&self, w: &LevelWriter<'_>, region: &Region, data: &[u8]) -> Result<()> {
        let opts = w.opts();
        w.for_each_cell(region, |idx, bounded, overlap| {
            if self.is_flushed(idx) || (overlap == bounded && !self.is_pending(idx)) {
                w.write_cell(idx, bounded, overlap, region, data, &opts)?;
                self.mark_stored(idx);
                return Ok(());
            }
            let mut p = match self.take(idx) {
                Some(p) => p,
                None => {
                    let buf = w.new_cell_buffer();
                    let held = self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed) + buf.len() as u64;
                    self.peak.fetch_max(held, Ordering::Relaxed);
                    Pending { buf, covered: 0, stamp: self.clock.fetch_add(1, Ordering::Relaxed) }
                }
            };
            w.copy_into_cell(bounded, overlap, region, data, &mut p.buf);
            let n = overlap.num_elements();
            p.covered += n;
            w.advance(n * w.esize() as u64);
            if p.covered >= bounded.num_elements() {
                self.bytes.fetch_sub(p.buf.len() as u64, Ordering::Relaxed);
                w.store_cell(idx, p.buf, &opts)?;
                self.mark_stored(idx);
                Ok(())
            } else {
                if let Ok(mut m) = self.pending.lock() {
                    m.insert(idx.to_vec(), p);
                }
                self.enforce_budget(w)
            }
        })?;
        self.enforce_budget(w)
    }

    /// Writes a stream of blocks (`(region, data)`, validated by the caller) through `w`, then [`Self::finish`].
    ///
    /// A block of fewer cells than there are threads that covers whole cells only — none of them pending or
    /// stored, none covered by a block already gathered — is gathered with the following such blocks (up to four per
    /// thread, and at most half the writer's in-flight budget), and the gathered blocks are encoded in parallel: a
    /// stream of chunk-sized blocks would otherwise encode one chunk at a time. Any other block first writes what
    /// was gathered, then itself (its cells in parallel), so that blocks are applied in stream order wherever their
    /// cells meet. A gathered block waits at most until the next block arrives or the stream ends.
    pub fn write_stream(
        &self,
        w: &LevelWriter<'_>,
        blocks: impl Iterator<Item = Result<(Region, RasterArray)>>,
    ) -> Result<()> {
        let byte_budget = (w.in_flight_budget() / 2).max(1);
        let threads = rayon::current_num_threads().max(1);
        let count_budget = 4 * threads;
        let mut gathered: Vec<(Region, RasterArray)> = Vec::new();
        // The cells of the gathered blocks.
        let mut claimed: HashSet<Vec<u64>> = HashSet::new();
        for block in blocks {
            let (region, data) = block?;
            let cells = w.cells(&region);
            let whole = cells.iter().all(|idx| {
                let bounded = w.cell_region(idx);
                bounded.intersect(&region).as_ref() == Some(&bounded)
                    && !self.is_pending(idx)
                    && !self.is_flushed(idx)
                    && !claimed.contains(idx)
            });
            if !whole || cells.len() >= threads {
                // Shared cells need stream order; a block of many cells is encoded in parallel on its own.
                self.write_gathered(w, &mut gathered, &mut claimed)?;
                with_bytes(&data, |b| self.write_block(w, &region, b))?;
                continue;
            }
            claimed.extend(cells);
            gathered.push((region, data));
            let held: u64 = gathered.iter().map(|(r, _)| r.num_elements() * w.esize() as u64).sum();
            if held >= byte_budget || gathered.len() >= count_budget {
                self.write_gathered(w, &mut gathered, &mut claimed)?;
            }
        }
        self.write_gathered(w, &mut gathered, &mut claimed)?;
        self.finish(w)
    }

    /// Encodes and stores the gathered whole-cell blocks of [`Self::write_stream`] in parallel, and empties them
    /// and the cells they claimed.
    fn write_gathered(
        &self,
        w: &LevelWriter<'_>,
        gathered: &mut Vec<(Region, RasterArray)>,
        claimed: &mut HashSet<Vec<u64>>,
    ) -> Result<()> {
        claimed.clear();
        let blocks = std::mem::take(gathered);
        let limit = limit_within(w.in_flight_budget() / 2, 2 * w.cell_bytes());
        try_for_each_limited(&blocks, limit, |(region, data)| with_bytes(data, |b| self.write_block(w, region, b)))
    }

    /// Stores the oldest pending cells while they use more than the budget.
    fn enforce_budget(&self, w: &LevelWriter<'_>) -> Result<()> {
        let opts = w.opts();
        while self.bytes.load(Ordering::Relaxed) > self.budget {
            let oldest = {
                let Ok(mut m) = self.pending.lock() else { return Ok(()) };
                let Some(key) = m.iter().min_by_key(|(_, p)| p.stamp).map(|(k, _)| k.clone()) else { return Ok(()) };
                m.remove(&key).map(|p| (key, p))
            };
            let Some((idx, p)) = oldest else { return Ok(()) };
            self.bytes.fetch_sub(p.buf.len() as u64, Ordering::Relaxed);
            w.store_cell(&idx, p.buf, &opts)?;
            self.mark_stored(&idx);
        }
        Ok(())
    }

    /// Stores every cell still pending (parts no block covered stay at the fill value).
    pub fn finish(&self, w: &LevelWriter<'_>) -> Result<()> {
        let rest: Vec<(Vec<u64>, Pending)> = match self.pending.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => Vec::new(),
        };
        let opts = w.opts();
        for (idx, p) in rest {
            self.bytes.fetch_sub(p.buf.len() as u64, Ordering::Relaxed);
            w.store_cell(&idx, p.buf, &opts)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::ElementName;
    use crate::progress::NoProgress;
    use crate::raster::levels::plan_levels;
    use crate::raster::{read_region, Compression, DataType, RasterArray, RasterKind, RasterSpec};
    use crate::storage::{DataHandle, MemoryStorage};
    use ndarray::{ArrayD, IxDyn};
    use std::sync::Arc;

    /// An empty element on a fresh in-memory store (these tests are about the logic, not files).
    fn element() -> DataHandle {
        DataHandle::new(Arc::new(MemoryStorage::new()), "labels/lab")
    }

    /// Writes level 0's and the group's `zarr.json`, so that `read_region` can read the element.
    fn write_meta(dir: &DataHandle, w: &LevelWriter<'_>) {
        dir.put_json("s0/zarr.json", w.json()).unwrap();
        let group = serde_json::json!({"attributes": {"ome": {"multiscales": [{"datasets": [{"path": "s0"}]}]}}});
        dir.put_json("zarr.json", &group).unwrap();
    }

    /// Thin row strips across many chunks: the partial chunks held never exceed the budget by more than the cells
    /// opened at once by the encoding threads, however wide a block is.
    #[test]
    fn partial_cells_stay_within_the_budget_inside_a_wide_block() {
        let dir = &element();
        let name = ElementName::new("lab").unwrap();
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.chunk_shape = Some(vec![8, 8]);
        let (h, w_) = (16u64, 800u64);
        let plan = &plan_levels(&spec, &[h, w_])[0];
        let w = LevelWriter::new(dir, plan, DataType::U16, &Compression::None, &spec.dims, &name, &NoProgress).unwrap();
        let cell = w.cell_bytes();
        let budget = 10 * cell;
        let pending = PendingCells::new(budget);
        let full: Vec<u16> = (0..(h * w_) as u16).collect();
        // Rows of 3: every block opens 100 partial chunks (10x the budget) before any completes.
        for r0 in (0..h).step_by(3) {
            let r1 = (r0 + 3).min(h);
            let rows = &full[(r0 * w_) as usize..(r1 * w_) as usize];
            let region = Region::new(vec![r0, 0], vec![r1 - r0, w_]);
            pending.write_block(&w, &region, zarrs::array::transmute_to_bytes(rows)).unwrap();
        }
        pending.finish(&w).unwrap();
        let threads = rayon::current_num_threads() as u64;
        let peak = pending.peak.load(Ordering::Relaxed);
        assert!(peak <= budget + threads * cell, "held {peak} bytes of partial chunks with a budget of {budget}");
        write_meta(dir, &w);
        let back = read_region(dir, &name, 0, None).unwrap();
        let want = ArrayD::from_shape_vec(IxDyn(&[h as usize, w_ as usize]), full).unwrap();
        assert_eq!(back, RasterArray::U16(want));
    }

    /// Row strips that split every chunk; a zero budget forces the flush + read-modify-write path.
    #[test]
    fn tiny_budget_falls_back_to_read_modify_write() {
        let dir = &element();
        let name = ElementName::new("lab").unwrap();
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.chunk_shape = Some(vec![4, 4]);
        let plan = &plan_levels(&spec, &[10, 9])[0];
        let w = LevelWriter::new(dir, plan, DataType::U16, &Compression::None, &spec.dims, &name, &NoProgress).unwrap();
        let full: Vec<u16> = (0..90).collect();
        for budget in [0, u64::MAX] {
            let pending = PendingCells::new(budget);
            for r0 in (0..10).step_by(3) {
                let r1 = (r0 + 3).min(10);
                let rows = &full[r0 * 9..r1 * 9];
                let region = Region::new(vec![r0 as u64, 0], vec![(r1 - r0) as u64, 9]);
                pending.write_block(&w, &region, zarrs::array::transmute_to_bytes(rows)).unwrap();
            }
            pending.finish(&w).unwrap();
            write_meta(dir, &w);
            let back = read_region(dir, &name, 0, None).unwrap();
            assert_eq!(back, RasterArray::U16(ArrayD::from_shape_vec(IxDyn(&[10, 9]), full.clone()).unwrap()), "budget {budget}");
        }
    }

    /// A stream mixing whole-chunk blocks (gathered and encoded in parallel), partial blocks and blocks that
    /// overlap earlier ones: the result is what writing the blocks one by one in stream order gives.
    #[test]
    fn gathered_blocks_keep_stream_order_where_blocks_meet() {
        let dir = &element();
        let name = ElementName::new("lab").unwrap();
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.chunk_shape = Some(vec![4, 4]);
        let (h, w_) = (16usize, 16usize);
        let plan = &plan_levels(&spec, &[h as u64, w_ as u64])[0];
        let w = LevelWriter::new(dir, plan, DataType::U16, &Compression::Zstd { level: 0 }, &spec.dims, &name, &NoProgress).unwrap();
        let mut want = ArrayD::<u16>::zeros(IxDyn(&[h, w_]));
        let mut blocks = Vec::new();
        let mut add = |r0: usize, c0: usize, rows: usize, cols: usize, salt: u16| {
            let data = ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |ix| (ix[0] * 31 + ix[1] * 7) as u16 + salt);
            want.slice_mut(ndarray::s![r0..r0 + rows, c0..c0 + cols]).assign(&data);
            blocks.push(Ok((Region::new(vec![r0 as u64, c0 as u64], vec![rows as u64, cols as u64]), RasterArray::U16(data))));
        };
        for (i, (r, c)) in [(0, 0), (0, 4), (0, 8), (0, 12), (4, 0), (4, 4)].into_iter().enumerate() {
            add(r, c, 4, 4, i as u16 + 1); // whole chunks: gathered
        }
        add(2, 2, 4, 4, 100); // overlaps four earlier whole chunks: written after them
        add(4, 8, 4, 8, 200); // two whole chunks
        add(4, 10, 4, 4, 300); // overlaps the block just before (same cells): applied after it
        add(8, 0, 3, 16, 400); // partial rows
        add(11, 0, 5, 16, 500); // completes them, and whole chunks below
        add(12, 4, 4, 4, 600); // a whole chunk over one already written
        let pending = PendingCells::new(u64::MAX);
        pending.write_stream(&w, blocks.into_iter()).unwrap();
        write_meta(dir, &w);
        assert_eq!(read_region(dir, &name, 0, None).unwrap(), RasterArray::U16(want));
    }
}
