//! Streaming blocks into level 0 without reading chunks back.
//!
//! A block that covers a grid cell entirely is encoded and stored at once. The parts of cells a block covers only
//! partly are assembled in memory until the cell is complete, then stored once; so unaligned blocks cost no
//! read-modify-write. If the cells waiting for completion exceed the budget (half the write's memory limit,
//! [`PENDING_BUDGET`] by default), the oldest are stored as they are (uncovered parts at the fill value) and their
//! remaining parts later go through read-modify-write. The budget is enforced as cells are opened, not only between
//! blocks, so a wide block touching many partial cells cannot grow memory past it.

use super::level_writer::LevelWriter;
use super::region::Region;
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

    /// Writes one block (`data` in C order at `region`) through `w`.
    pub fn write_block(&self, w: &LevelWriter<'_>, region: &Region, data: &[u8]) -> Result<()> {
        let opts = w.opts();
        w.for_each_cell(region, |idx, bounded, overlap| {
            if self.is_flushed(idx) || (overlap == bounded && !self.is_pending(idx)) {
                return w.write_cell(idx, bounded, overlap, region, data, &opts);
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
                w.store_cell(idx, p.buf, &opts)
            } else {
                if let Ok(mut m) = self.pending.lock() {
                    m.insert(idx.to_vec(), p);
                }
                self.enforce_budget(w)
            }
        })?;
        self.enforce_budget(w)
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
            if let Ok(mut f) = self.flushed.lock() {
                f.insert(idx);
            }
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
    use crate::raster::zarr_io::store;
    use crate::raster::{read_region, Compression, DataType, RasterArray, RasterKind, RasterSpec};
    use ndarray::{ArrayD, IxDyn};

    /// Thin row strips across many chunks: the partial chunks held never exceed the budget by more than the cells
    /// opened at once by the encoding threads, however wide a block is.
    #[test]
    fn partial_cells_stay_within_the_budget_inside_a_wide_block() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let name = ElementName::new("lab").unwrap();
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.chunk_shape = Some(vec![8, 8]);
        let (h, w_) = (16u64, 800u64);
        let plan = &plan_levels(&spec, &[h, w_])[0];
        let w = LevelWriter::new(dir, store(dir, &name).unwrap(), plan, DataType::U16, &Compression::None, &spec.dims, &name, &NoProgress).unwrap();
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
        crate::raster::zarr_io::write_json(&dir.join("s0/zarr.json"), w.json()).unwrap();
        let group = serde_json::json!({"attributes": {"ome": {"multiscales": [{"datasets": [{"path": "s0"}]}]}}});
        crate::raster::zarr_io::write_json(&dir.join("zarr.json"), &group).unwrap();
        let back = read_region(dir, &name, 0, None).unwrap();
        let want = ArrayD::from_shape_vec(IxDyn(&[h as usize, w_ as usize]), full).unwrap();
        assert_eq!(back, RasterArray::U16(want));
    }

    /// Row strips that split every chunk; a zero budget forces the flush + read-modify-write path.
    #[test]
    fn tiny_budget_falls_back_to_read_modify_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let name = ElementName::new("lab").unwrap();
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.chunk_shape = Some(vec![4, 4]);
        let plan = &plan_levels(&spec, &[10, 9])[0];
        let w = LevelWriter::new(dir, store(dir, &name).unwrap(), plan, DataType::U16, &Compression::None, &spec.dims, &name, &NoProgress).unwrap();
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
            crate::raster::zarr_io::write_json(&dir.join("s0/zarr.json"), w.json()).unwrap();
            let group = serde_json::json!({"attributes": {"ome": {"multiscales": [{"datasets": [{"path": "s0"}]}]}}});
            crate::raster::zarr_io::write_json(&dir.join("zarr.json"), &group).unwrap();
            let back = read_region(dir, &name, 0, None).unwrap();
            assert_eq!(back, RasterArray::U16(ArrayD::from_shape_vec(IxDyn(&[10, 9]), full.clone()).unwrap()), "budget {budget}");
        }
    }
}
