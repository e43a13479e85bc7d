//! The layout of every level of a raster element before anything is written: path, shape, chunk and shard shape,
//! and the cumulative downscale factor relative to the full resolution.

use super::{Pyramid, RasterSpec};

/// Chunks along `c` hold every channel up to this many channels; beyond it, one channel per chunk.
const MAX_CHANNELS_PER_CHUNK: u64 = 16;
/// Default chunk edge along `y` and `x`.
const DEFAULT_SPATIAL_CHUNK: u64 = 1024;

/// The layout of one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LevelPlan {
    /// Dataset path inside the element group: `s0`, `s1`, ...
    pub path: String,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Chunk shape (the inner chunk shape when sharded).
    pub chunk: Vec<u64>,
    /// Shard shape (the outer chunk grid), when sharded.
    pub shard: Option<Vec<u64>>,
    /// Cumulative downscale factor per axis relative to level 0 (1 on `c`).
    pub scale: Vec<u64>,
}

impl LevelPlan {
    /// The shape of the array's chunk grid cells: the shard when sharded, else the chunk.
    pub fn grid_chunk(&self) -> &[u64] {
        self.shard.as_deref().unwrap_or(&self.chunk)
    }
}

/// True for axes that pyramids downsample (`z`, `y`, `x`), false for `c`.
pub(crate) fn is_spatial(dim: &str) -> bool {
    dim != "c"
}

/// The chunk shape used when the spec gives none: all channels (or one channel per chunk beyond 16), one `z`
/// plane, and up to 1024 × 1024 pixels.
pub(crate) fn default_chunk_shape(dims: &[String], shape: &[u64]) -> Vec<u64> {
    dims.iter()
        .zip(shape)
        .map(|(d, &n)| match d.as_str() {
            "c" if n <= MAX_CHANNELS_PER_CHUNK => n.max(1),
            "c" | "z" => 1,
            _ => n.clamp(1, DEFAULT_SPATIAL_CHUNK),
        })
        .collect()
}

/// The chunk shape of level 0: the spec's, or the default.
pub(crate) fn base_chunk_shape(spec: &RasterSpec, shape: &[u64]) -> Vec<u64> {
    spec.chunk_shape
        .clone()
        .unwrap_or_else(|| default_chunk_shape(&spec.dims, shape))
}

/// Per-axis factor for one pyramid step of `factor` (never on `c`).
pub(crate) fn axis_factors(dims: &[String], factor: u64) -> Vec<u64> {
    dims.iter().map(|d| if is_spatial(d) { factor } else { 1 }).collect()
}

/// The downscale factors between consecutive levels (empty for a single level).
pub(crate) fn pyramid_factors(spec: &RasterSpec) -> &[u64] {
    match &spec.pyramid {
        Pyramid::Single => &[],
        Pyramid::Computed(f) => f,
    }
}

/// The layout of every level for a validated `spec` and full-resolution `shape`. Levels below 0 keep the level-0
/// chunk (and shard) shape, clamped to the level's extent; level shapes are `floor(previous / factor)` on the
/// spatial axes (trailing pixels that do not fill a window are dropped, like xarray's `coarsen(boundary="trim")`).
pub(crate) fn plan_levels(spec: &RasterSpec, shape: &[u64]) -> Vec<LevelPlan> {
    let chunk0 = base_chunk_shape(spec, shape);
    let mut plans = vec![LevelPlan {
        path: "s0".to_string(),
        shape: shape.to_vec(),
        chunk: chunk0.clone(),
        shard: spec.shard_shape.clone(),
        scale: vec![1; shape.len()],
    }];
    for (k, &f) in pyramid_factors(spec).iter().enumerate() {
        let prev = &plans[k];
        let af = axis_factors(&spec.dims, f);
        let level_shape: Vec<u64> = prev.shape.iter().zip(&af).map(|(&n, &f)| (n / f.max(1)).max(1)).collect();
        let chunk: Vec<u64> = chunk0.iter().zip(&level_shape).map(|(&c, &n)| c.min(n).max(1)).collect();
        let shard = spec.shard_shape.as_ref().map(|s| {
            s.iter()
                .zip(&chunk)
                .zip(&level_shape)
                .map(|((&s, &c), &n)| s.min(n.div_ceil(c) * c).max(c))
                .collect()
        });
        let scale = prev.scale.iter().zip(&af).map(|(&s, &f)| s * f).collect();
        plans.push(LevelPlan {
            path: format!("s{}", k + 1),
            shape: level_shape,
            chunk,
            shard,
            scale,
        });
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::RasterKind;

    #[test]
    fn default_chunks() {
        let dims: Vec<String> = ["c", "z", "y", "x"].iter().map(|s| s.to_string()).collect();
        assert_eq!(default_chunk_shape(&dims, &[3, 10, 5000, 20]), vec![3, 1, 1024, 20]);
        assert_eq!(default_chunk_shape(&dims, &[40, 10, 5, 20]), vec![1, 1, 5, 20]);
    }

    #[test]
    fn levels_shrink_and_accumulate() {
        let mut spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
        spec.chunk_shape = Some(vec![1, 4, 4]);
        spec.shard_shape = Some(vec![1, 8, 8]);
        spec.pyramid = Pyramid::Computed(vec![2, 3]);
        let p = plan_levels(&spec, &[2, 13, 20]);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].shape, vec![2, 6, 10]);
        assert_eq!(p[2].shape, vec![2, 2, 3]);
        assert_eq!(p[2].scale, vec![1, 6, 6]);
        assert_eq!(p[2].chunk, vec![1, 2, 3]);
        assert_eq!(p[2].shard, Some(vec![1, 2, 3]));
        assert_eq!(p[1].shard, Some(vec![1, 8, 8]));
        assert_eq!(p[2].path, "s2");
    }
}
