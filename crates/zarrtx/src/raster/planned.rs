//! The raster side of write plans ([`crate::plan`]): the level-0 layout parts are aligned to, writing one part's
//! blocks into level 0 of a staged tree that other processes fill at the same time, and computing the pyramid and
//! the metadata once every part is there.
//!
//! A part owns whole write units (shards when sharded, else chunks) of level 0, so the writers of different parts
//! never touch the same file. Within a part, unaligned blocks are assembled in memory exactly as for a streamed
//! add (`stream`), so every chunk or shard is stored once, by the one writer of its part.

use super::array_meta::array_json;
use super::level_writer::LevelWriter;
use super::levels::{axis_factors, plan_levels, pyramid_factors, LevelPlan};
use super::pyramid::write_level_from_disk;
use super::region::Region;
use super::stream::PendingCells;
use super::write::{check_block, level_bytes, split_memory_limit, write_metadata};
use super::{DataType, RasterArray, RasterBlock, RasterSpec};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::progress::{NoProgress, Progress};
use crate::storage::{join, DataHandle};
use std::ops::Range;

/// The write unit of a raster of `shape`: the grid cell of level 0 (the shard shape when sharded, else the chunk
/// shape). Parts of a write plan are aligned to it.
pub(crate) fn write_unit(spec: &RasterSpec, shape: &[u64]) -> Vec<u64> {
    plan_levels(spec, shape).first().map(|p| p.grid_chunk().to_vec()).unwrap_or_default()
}

/// A region given as ranges, as a [`Region`].
fn to_region(ranges: &[Range<u64>]) -> Region {
    Region::new(ranges.iter().map(|r| r.start).collect(), ranges.iter().map(|r| r.end - r.start).collect())
}

/// One raster element written into a staging area by a write plan.
pub(crate) struct StagedRaster<'a> {
    /// The staged element (its group `zarr.json` goes at `zarr.json`, level 0 at `s0`, keys relative to it).
    pub dir: &'a DataHandle,
    /// The element's name.
    pub name: &'a ElementName,
    /// The validated spec (pyramid computed or single).
    pub spec: &'a RasterSpec,
    /// Shape of level 0.
    pub shape: &'a [u64],
    /// Element type.
    pub dtype: DataType,
}

impl StagedRaster<'_> {
    fn level0(&self) -> Result<LevelPlan> {
        plan_levels(self.spec, self.shape).into_iter().next().ok_or_else(|| Error::InvalidElement {
            name: self.name.to_string(),
            reason: "the raster has no level 0".into(),
        })
    }

    fn writer<'b>(&'b self, plan: &LevelPlan, progress: &'b dyn Progress, in_flight: u64) -> Result<LevelWriter<'b>> {
        let (compression, dims) = (&self.spec.compression, &self.spec.dims);
        let mut w = LevelWriter::new(self.dir, plan, self.dtype, compression, dims, self.name, progress)?;
        w.set_in_flight_budget(in_flight);
        Ok(w)
    }

    /// Writes level 0's array metadata (`s0/zarr.json`), so that every part writer opens the same array.
    pub fn init(&self) -> Result<()> {
        let plan = self.level0()?;
        let json = array_json(&plan, self.dtype, &self.spec.compression, &self.spec.dims);
        self.dir.put_json(&join(&plan.path, "zarr.json"), &json)
    }

    /// Level 0 of the staged tree, as the part writers see it.
    pub fn level0_target(&self) -> Result<StagedLevel> {
        let plan = self.level0()?;
        let json = array_json(&plan, self.dtype, &self.spec.compression, &self.spec.dims);
        Ok(StagedLevel { dir: self.dir.clone(), label: self.name.clone(), level: plan, json, dtype: self.dtype })
    }

    /// Computes the pyramid levels from level 0 in storage, level by level, reading the level above back in tiles
    /// (never a whole level in memory; tiles and chunks in flight bounded by `memory_limit`), then writes every
    /// level's `zarr.json` and the element group's. Returns the element's metadata tree. With `durable`, the new
    /// levels, the metadata and the directories are fsynced (level 0's chunks were, by their parts).
    pub fn finish(&self, progress: &dyn Progress, memory_limit: u64, durable: bool) -> Result<NodeTree> {
        let plans = plan_levels(self.spec, self.shape);
        progress.set_total(plans.iter().skip(1).map(|p| level_bytes(p, self.dtype)).sum());
        let (_, in_flight) = split_memory_limit(memory_limit);
        let writers = plans.iter().map(|p| self.writer(p, progress, in_flight)).collect::<Result<Vec<_>>>()?;
        for (pair, &f) in writers.windows(2).zip(pyramid_factors(self.spec)) {
            let f = axis_factors(&self.spec.dims, f);
            write_level_from_disk(pair[0].array(), &pair[1], &f, self.spec.kind, self.dtype, self.name)?;
        }
        let tree = write_metadata(self.dir, self.name, self.spec, self.shape, &writers)?;
        if durable {
            for p in plans.iter().skip(1) {
                self.dir.child(&p.path).sync_all()?;
            }
            let meta: Vec<String> = std::iter::once("zarr.json".to_string())
                .chain(plans.first().map(|p| join(&p.path, "zarr.json")))
                .collect();
            self.dir.sync(&meta)?;
        }
        Ok(tree)
    }
}

/// Level 0 of a write plan's staged array — an element's `s0`, or the array of a plain Zarr hierarchy — as the
/// writers of its parts see it: one array under `dir` whose grid cells (shards when sharded, else chunks) the
/// parts own.
pub(crate) struct StagedLevel {
    /// The staging area (the zarrs store root).
    pub dir: DataHandle,
    /// Names the element or array in errors.
    pub label: ElementName,
    /// The array's path under `dir` (`s0`, or empty for an array at the directory itself), shape and grid.
    pub level: LevelPlan,
    /// The array's `zarr.json` document.
    pub json: serde_json::Value,
    /// Element type.
    pub dtype: DataType,
}

impl StagedLevel {
    fn writer<'b>(&'b self, progress: &'b dyn Progress, in_flight: u64) -> Result<LevelWriter<'b>> {
        let (json, dtype) = (self.json.clone(), self.dtype);
        let mut w = LevelWriter::from_json(&self.dir, &self.level, json, dtype, &self.label, progress)?;
        w.set_in_flight_budget(in_flight);
        Ok(w)
    }

    /// Checks that zarrs can write the array (its codecs, data type and fill value).
    pub fn check(&self) -> Result<()> {
        self.writer(&NoProgress, 0).map(|_| ())
    }

    /// Writes `blocks` into `region` of level 0 (the region of part `part`, aligned to write units). Every block
    /// must lie inside the region; chunks the blocks cover only partly are assembled in memory (at most half of
    /// `memory_limit`), chunks being encoded use at most the other half. Progress counts uncompressed bytes of
    /// the region.
    pub fn write_part(
        &self,
        part: usize,
        region: &[Range<u64>],
        blocks: impl IntoIterator<Item = Result<RasterBlock>>,
        progress: &dyn Progress,
        memory_limit: u64,
    ) -> Result<()> {
        let (pending_budget, in_flight) = split_memory_limit(memory_limit);
        let w = self.writer(progress, in_flight)?;
        let part_region = to_region(region);
        progress.set_total(part_region.num_elements() * self.dtype.size() as u64);
        let pending = PendingCells::new(pending_budget);
        let checked = blocks.into_iter().filter_map(|block| {
            let checked = block.and_then(|b| self.check_part_block(part, region, &part_region, b));
            match checked {
                Ok((r, _)) if r.num_elements() == 0 => None,
                other => Some(other),
            }
        });
        pending.write_stream(&w, checked)
    }

    /// Checks one block of part `part` (whose region is `region`): its type and shape, and that it lies inside the
    /// part.
    fn check_part_block(
        &self,
        part: usize,
        region: &[Range<u64>],
        part_region: &Region,
        block: RasterBlock,
    ) -> Result<(Region, RasterArray)> {
        let r = check_block(&self.label, &self.level.shape, self.dtype, &block)?;
        if r.num_elements() > 0 && r.intersect(part_region).as_ref() != Some(&r) {
            return Err(Error::InvalidElement {
                    name: self.label.to_string(),
                    reason: format!(
                        "a block at offset {:?} with shape {:?} lies outside part {part} of the write plan, whose \
                         region is {region:?}: give a part only blocks inside its region (the plan's parts), so \
                         that no two writers write the same chunks",
                        r.start, r.size
                    ),
            });
        }
        Ok((r, block.data))
    }

    /// The keys (relative to `dir`) of the chunk (or shard) objects of level 0 whose grid cells lie in `region`,
    /// whether they exist or not.
    pub fn part_files(&self, region: &[Range<u64>]) -> Result<Vec<String>> {
        self.files_of(std::slice::from_ref(&region.to_vec()))
    }

    /// The keys (relative to `dir`) of the chunk (or shard) objects of level 0 whose grid cells lie in any of
    /// `regions` (one array handle for all).
    pub fn files_of(&self, regions: &[Vec<Range<u64>>]) -> Result<Vec<String>> {
        let w = self.writer(&NoProgress, 0)?;
        Ok(regions
            .iter()
            .flat_map(|region| w.cells(&to_region(region)))
            .map(|idx| w.array().chunk_key(&idx).as_str().to_string())
            .collect())
    }

    /// Deletes the level-0 objects of `region` (what an interrupted attempt of the part left), so that a new
    /// attempt leaves exactly what its blocks hold.
    pub fn clear_part(&self, region: &[Range<u64>]) -> Result<()> {
        self.part_files(region)?.iter().try_for_each(|key| self.dir.delete(key))
    }

    /// Counts the objects of `region` and their bytes, after making them durable (with the directories that name
    /// them, on POSIX) when `durable`.
    pub fn settle_part(&self, region: &[Range<u64>], durable: bool) -> Result<(u64, u64)> {
        let mut present = Vec::new();
        let mut bytes = 0;
        for key in self.part_files(region)? {
            if let Some(n) = self.dir.size(&key)? {
                bytes += n;
                present.push(key);
            }
        }
        if durable {
            self.dir.sync(&present)?;
        }
        Ok((present.len() as u64, bytes))
    }
}
