//! Writing a complete raster element (group + every level) into a fresh staging area, from memory or from a stream
//! of blocks.

use super::level_writer::LevelWriter;
use super::levels::{axis_factors, given_levels, plan_levels, pyramid_factors, LevelPlan};
use super::metadata::{element_group_json, DatasetEntry};
use super::pixel::with_bytes;
use super::pyramid::{downsample_array, reduce_for, write_level_from_disk};
use super::region::Region;
use crate::parallel::IN_FLIGHT_BUDGET;
use super::stream::{PendingCells, PENDING_BUDGET};
use super::validate::validate;
use super::{DataType, RasterArray, RasterBlock, RasterSource, RasterSpec};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::progress::Progress;
use crate::storage::{join, DataHandle};

/// Writes the complete element tree of raster `name` under `dir`, a fresh staging area the caller owns: the element
/// group's `zarr.json` at `zarr.json` and the levels at `s0`, `s1`, ... (keys relative to `dir`). Returns the
/// `zarr.json` document of every node written, keyed `""`, `"s0"`, `"s1"`, ...
///
/// The spec is validated against the data's shape and type before anything is written. Chunks are encoded in
/// parallel. With [`RasterSource::Blocks`], each block is written as it arrives: cells it covers entirely are
/// stored at once, parts of cells are assembled in memory (up to a budget, beyond which the oldest partial cells
/// are stored and completed later by read-modify-write) so no chunk is read back; computed pyramid levels are then
/// computed from the level above, read back from `dir` in tiles, so memory stays near one block plus the chunks in
/// flight. Levels of a [`Pyramid::Given`](super::Pyramid::Given) are written verbatim from memory after level 0,
/// with the same chunking rule as computed levels. Progress is reported in bytes of uncompressed data over all
/// levels. `zarr.json` documents are written last, after all chunk data.
/// Chunks are written without making each durable ([`DataHandle::put_private`]); the whole tree is made durable
/// in one pass at the end ([`DataHandle::sync_all`]: on POSIX files, then directories). Same as
/// [`write_element_with`] with [`WriteOptions::default`] (durable).
pub fn write_element(
    dir: &DataHandle,
    name: &ElementName,
    spec: &RasterSpec,
    source: RasterSource<'_>,
    progress: &dyn Progress,
) -> Result<NodeTree> {
    write_element_with(dir, name, spec, source, progress, &WriteOptions::default())
}

/// Default in-flight memory limit of one raster write, in bytes (256 MiB): half for partly assembled chunks (or
/// shards) of streamed blocks, half for chunks being encoded and written.
pub const DEFAULT_MEMORY_LIMIT: u64 = PENDING_BUDGET + IN_FLIGHT_BUDGET;

/// Options of [`write_element_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Make everything written durable before returning ([`DataHandle::sync_all`]: fsync of every file and
    /// directory on a durable POSIX store), so the element survives power loss (default `true`). Without it, data
    /// is in the page cache only (it survives a process crash).
    pub durable: bool,
    /// In-flight memory limit in bytes (default [`DEFAULT_MEMORY_LIMIT`]): the bytes of assembled-but-unwritten
    /// chunks (or shards) of streamed blocks plus those of chunks queued for or being encoded. Half goes to each;
    /// beyond the first half the oldest partial chunks are written early (and completed later by
    /// read-modify-write), beyond the second fewer chunks are encoded at once. At least one chunk or shard is
    /// always in flight, so a limit below one shard still writes (using about one shard). The caller's current
    /// block comes on top.
    pub memory_limit: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { durable: true, memory_limit: DEFAULT_MEMORY_LIMIT }
    }
}

/// The split of a memory limit into (partial-cell budget, in-flight encode budget).
pub(crate) fn split_memory_limit(limit: u64) -> (u64, u64) {
    let pending = limit / 2;
    (pending, limit - pending)
}

/// [`write_element`] with explicit [`WriteOptions`].
pub fn write_element_with(
    dir: &DataHandle,
    name: &ElementName,
    spec: &RasterSpec,
    source: RasterSource<'_>,
    progress: &dyn Progress,
    options: &WriteOptions,
) -> Result<NodeTree> {
    let shape = source.shape();
    let dtype = source.data_type();
    validate(name, spec, &shape, dtype)?;
    let plans = plan_levels(spec, &shape);
    progress.set_total(plans.iter().map(|p| level_bytes(p, dtype)).sum());
    let (pending_budget, in_flight) = split_memory_limit(options.memory_limit);
    let writers = plans
        .iter()
        .map(|p| {
            let mut w = LevelWriter::new(dir, p, dtype, &spec.compression, &spec.dims, name, progress)?;
            w.set_in_flight_budget(in_flight);
            Ok(w)
        })
        .collect::<Result<Vec<_>>>()?;
    let factors = pyramid_factors(spec);
    // Level 0 and the computed levels come from the source; given levels (if any) are written from memory after.
    let (from_source, given) = writers.split_at((1 + factors.len()).min(writers.len()));

    match source {
        RasterSource::InMemory(array) => {
            let mut level = array;
            for (k, w) in from_source.iter().enumerate() {
                write_whole(w, &level)?;
                if let Some(&f) = factors.get(k) {
                    // The previous level is dropped as soon as the next one exists.
                    level = downsample_array(name, &level, &axis_factors(&spec.dims, f), reduce_for(spec.kind))?;
                }
            }
        }
        RasterSource::Blocks { blocks, .. } => {
            let Some(w0) = from_source.first() else { return Ok(NodeTree::new()) };
            let pending = PendingCells::new(pending_budget);
            let checked = blocks.into_iter().filter_map(|block| {
                let region = block.and_then(|b| check_block(name, &shape, dtype, &b).map(|r| (r, b.data)));
                match region {
                    Ok((r, _)) if r.num_elements() == 0 => None,
                    other => Some(other),
                }
            });
            pending.write_stream(w0, checked)?;
            for (pair, &f) in from_source.windows(2).zip(factors) {
                let f = axis_factors(&spec.dims, f);
                write_level_from_disk(pair[0].array(), &pair[1], &f, spec.kind, dtype, name)?;
            }
        }
    }
    for (w, level) in given.iter().zip(given_levels(spec)) {
        write_whole(w, level)?;
    }

    let tree = write_metadata(dir, name, spec, &shape, &writers)?;
    if options.durable {
        dir.sync_all()?;
    }
    Ok(tree)
}

/// Writes the `zarr.json` of every level (after all chunk data), then the element group's; returns them keyed
/// `""`, `"s0"`, `"s1"`, ...
pub(crate) fn write_metadata(
    dir: &DataHandle,
    name: &ElementName,
    spec: &RasterSpec,
    shape: &[u64],
    writers: &[LevelWriter<'_>],
) -> Result<NodeTree> {
    let mut tree = NodeTree::new();
    for w in writers {
        dir.put_json(&join(&w.plan().path, "zarr.json"), w.json())?;
        tree.insert(w.plan().path.clone(), w.json().clone());
    }
    let datasets: Vec<DatasetEntry> = writers
        .iter()
        .map(|w| DatasetEntry {
            path: w.plan().path.clone(),
            scale: w.plan().scale.clone(),
        })
        .collect();
    let n_channels = if spec.dims.first().map(String::as_str) == Some("c") { shape[0] } else { 0 };
    let group = element_group_json(name, spec, &datasets, n_channels);
    dir.put_json("zarr.json", &group)?;
    tree.insert(String::new(), group);
    Ok(tree)
}

/// Writes a whole in-memory level through its writer (chunks encoded in parallel).
fn write_whole(w: &LevelWriter<'_>, level: &RasterArray) -> Result<()> {
    let shape = &w.plan().shape;
    let whole = Region::new(vec![0; shape.len()], shape.clone());
    with_bytes(level, |b| w.write_region(&whole, b))
}

pub(crate) fn level_bytes(p: &LevelPlan, dtype: DataType) -> u64 {
    p.shape.iter().product::<u64>() * dtype.size() as u64
}

fn invalid(name: &ElementName, reason: String) -> Error {
    Error::InvalidElement {
        name: name.to_string(),
        reason,
    }
}

/// Checks one streamed block against the declared shape and type; returns the region it covers.
pub(crate) fn check_block(name: &ElementName, shape: &[u64], dtype: DataType, block: &RasterBlock) -> Result<Region> {
    if block.data.data_type() != dtype {
        return Err(invalid(
            name,
            format!(
                "a block at offset {:?} holds {} data but the source declares {}: cast every block to the declared \
                 type",
                block.offset,
                block.data.data_type().zarr_name(),
                dtype.zarr_name()
            ),
        ));
    }
    let size = block.data.shape();
    if block.offset.len() != shape.len() || size.len() != shape.len() {
        return Err(invalid(
            name,
            format!(
                "a block at offset {:?} with shape {size:?} does not have the {} dimensions of the array {shape:?}",
                block.offset,
                shape.len()
            ),
        ));
    }
    let outside = block
        .offset
        .iter()
        .zip(&size)
        .zip(shape)
        .any(|((o, n), d)| o.checked_add(*n).is_none_or(|e| e > *d));
    let region = Region::new(block.offset.clone(), size);
    if outside {
        return Err(invalid(
            name,
            format!(
                "a block at offset {:?} with shape {:?} extends beyond the array shape {shape:?}: blocks must lie \
                 inside the declared shape",
                region.start, region.size
            ),
        ));
    }
    Ok(region)
}
