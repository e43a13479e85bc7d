//! The layout of every level of a raster element before anything is written: path, shape, chunk and shard shape,
//! and the cumulative downscale factor relative to the full resolution.

use super::{Pyramid, RasterArray, RasterSpec};

/// Chunks along `c` hold every channel up to this many channels; beyond it, one channel per chunk.
const MAX_CHANNELS_PER_CHUNK: u64 = 16;
/// Default chunk edge along `y` and `x`.
const DEFAULT_SPATIAL_CHUNK: u64 = 1024;

/// The layout of one level.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LevelPlan {
    /// Dataset path inside the element group: `s0`, `s1`, ...
    pub path: String,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Chunk shape (the inner chunk shape when sharded).
    pub chunk: Vec<u64>,
    /// Shard shape (the outer chunk grid), when sharded.
    pub shard: Option<Vec<u64>>,
    /// Scale of the level relative to level 0, per axis (1 on `c`), as written to the NGFF `datasets`: the product
    /// of the factors for computed levels, the shape ratio `level0 / level` for given levels.
    pub scale: Vec<f64>,
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
pub fn default_chunk_shape(dims: &[String], shape: &[u64]) -> Vec<u64> {
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

/// The downscale factors between consecutive levels (empty unless the pyramid is computed).
pub(crate) fn pyramid_factors(spec: &RasterSpec) -> &[u64] {
    match &spec.pyramid {
        Pyramid::Single | Pyramid::Given(_) => &[],
        Pyramid::Computed(f) => f,
    }
}

/// The levels below 0 the caller gave (empty unless the pyramid is given).
pub(crate) fn given_levels(spec: &RasterSpec) -> &[RasterArray] {
    match &spec.pyramid {
        Pyramid::Single | Pyramid::Computed(_) => &[],
        Pyramid::Given(levels) => levels,
    }
}

/// The shape of a computed level: `floor(previous / factor)` per axis, at least 1.
pub(crate) fn computed_shape(prev: &[u64], factors: &[u64]) -> Vec<u64> {
    prev.iter().zip(factors).map(|(&n, &f)| (n / f.max(1)).max(1)).collect()
}

/// The NGFF scale of a level of `shape` in a pyramid whose level 0 has `shape0`: `shape0 / shape` per axis, as
/// ome-zarr's `generate_coordinate_transformations` (which spatialdata uses) computes it.
pub(crate) fn shape_ratio(shape0: &[u64], shape: &[u64]) -> Vec<f64> {
    shape0.iter().zip(shape).map(|(&a, &b)| a as f64 / b.max(1) as f64).collect()
}

/// Shape and scale of every level below 0.
fn lower_levels(spec: &RasterSpec, shape0: &[u64]) -> Vec<(Vec<u64>, Vec<f64>)> {
    match &spec.pyramid {
        Pyramid::Single => Vec::new(),
        Pyramid::Computed(factors) => {
            let mut shape = shape0.to_vec();
            let mut scale = vec![1u64; shape0.len()];
            factors
                .iter()
                .map(|&f| {
                    let af = axis_factors(&spec.dims, f);
                    shape = computed_shape(&shape, &af);
                    scale = scale.iter().zip(&af).map(|(&s, &f)| s * f).collect();
                    (shape.clone(), scale.iter().map(|&s| s as f64).collect())
                })
                .collect()
        }
        Pyramid::Given(levels) => levels
            .iter()
            .map(|a| {
                let shape = a.shape();
                let scale = shape_ratio(shape0, &shape);
                (shape, scale)
            })
            .collect(),
    }
}

/// The layout of every level for a validated `spec` and full-resolution `shape`. Levels below 0 keep the level-0
/// chunk (and shard) shape, clamped to the level's extent, whether computed or given. Computed level shapes are
/// `floor(previous / factor)` on the spatial axes (trailing pixels that do not fill a window are dropped, like
/// xarray's `coarsen(boundary="trim")`); given levels keep the shape of their array.
pub(crate) fn plan_levels(spec: &RasterSpec, shape: &[u64]) -> Vec<LevelPlan> {
    let chunk0 = base_chunk_shape(spec, shape);
    let mut plans = vec![LevelPlan {
        path: "s0".to_string(),
        shape: shape.to_vec(),
        chunk: chunk0.clone(),
        shard: spec.shard_shape.clone(),
        scale: vec![1.0; shape.len()],
    }];
    for (k, (level_shape, scale)) in lower_levels(spec, shape).into_iter().enumerate() {
        let chunk: Vec<u64> = chunk0.iter().zip(&level_shape).map(|(&c, &n)| c.min(n).max(1)).collect();
        let shard = spec.shard_shape.as_ref().map(|s| {
            s.iter()
                .zip(&chunk)
                .zip(&level_shape)
                .map(|((&s, &c), &n)| s.min(n.div_ceil(c) * c).max(c))
                .collect()
        });
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
        assert_eq!(p[2].scale, vec![1.0, 6.0, 6.0]);
        assert_eq!(p[2].chunk, vec![1, 2, 3]);
        assert_eq!(p[2].shard, Some(vec![1, 2, 3]));
        assert_eq!(p[1].shard, Some(vec![1, 8, 8]));
        assert_eq!(p[2].path, "s2");
    }

    #[test]
    fn given_levels_use_the_computed_chunk_rule_and_shape_ratios() {
        let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        spec.chunk_shape = Some(vec![4, 4]);
        spec.shard_shape = Some(vec![8, 8]);
        let level = |shape: &[usize]| RasterArray::U8(ndarray::ArrayD::zeros(shape));
        spec.pyramid = Pyramid::Given(vec![level(&[5, 10]), level(&[2, 3])]);
        let p = plan_levels(&spec, &[11, 20]);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].shape, vec![5, 10]);
        assert_eq!(p[1].scale, vec![11.0 / 5.0, 2.0]);
        assert_eq!(p[1].chunk, vec![4, 4]);
        assert_eq!(p[1].shard, Some(vec![8, 8]));
        assert_eq!(p[2].scale, vec![5.5, 20.0 / 3.0]);
        assert_eq!(p[2].chunk, vec![2, 3]);
        assert_eq!(p[2].shard, Some(vec![2, 3]));
        assert_eq!(p[2].path, "s2");
    }
}
