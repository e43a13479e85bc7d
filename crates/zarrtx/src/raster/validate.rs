//! Everything about a raster element that can be checked before anything is written (G9: bad input is refused
//! before the store is touched). Every message names the element (through [`Error::InvalidElement`]) and says
//! how to fix the problem.

use super::levels::{axis_factors, base_chunk_shape, given_levels, is_spatial, pyramid_factors};
use super::{Compression, DataType, RasterKind, RasterSpec};
use crate::error::{Error, Result};
use crate::name::ElementName;
use std::collections::HashSet;

/// Blosc inner compressors available in the blosc build zarrs uses.
pub const BLOSC_CNAMES: [&str; 5] = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"];
/// Valid zstd levels (negative levels are zstd's fast modes; 0 means zstd's default, 3).
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -131072..=22;

/// Checks `spec` against spatialdata's rules for a raster of full-resolution `shape` and `data_type`: axes,
/// dtype (labels must be integer), shape, channel names, chunking and sharding, pyramid factors or given pyramid
/// levels, transformations and compression. Returns the first problem found as [`Error::InvalidElement`].
pub fn validate(name: &ElementName, spec: &RasterSpec, shape: &[u64], data_type: DataType) -> Result<()> {
    let refuse = |reason: String| {
        Err(Error::InvalidElement {
            name: name.to_string(),
            reason,
        })
    };
    if let Err(reason) = check_all(spec, shape, data_type) {
        return refuse(reason);
    }
    Ok(())
}

fn check_all(spec: &RasterSpec, shape: &[u64], data_type: DataType) -> Result<(), String> {
    check_dims(spec)?;
    check_dtype(spec.kind, data_type)?;
    check_shape(spec, shape)?;
    check_channels(spec, shape)?;
    check_chunking(spec, shape)?;
    check_pyramid(spec, shape)?;
    check_given_levels(spec, shape, data_type)?;
    let axes: Vec<&str> = spec.dims.iter().map(String::as_str).collect();
    for (cs, t) in &spec.transformations {
        if cs.is_empty() {
            return Err("a transformation has an empty coordinate-system name: name the target system, e.g. \"global\"".into());
        }
        crate::transform::check_against_axes(t, &axes).map_err(|e| format!("transformation to '{cs}': {e}"))?;
    }
    check_compression(&spec.compression)
}

fn check_dims(spec: &RasterSpec) -> Result<(), String> {
    let dims: Vec<&str> = spec.dims.iter().map(String::as_str).collect();
    let (allowed, hint): (&[&[&str]], &str) = match spec.kind {
        RasterKind::Image => (
            &[&["c", "y", "x"], &["c", "z", "y", "x"]],
            "images need axes [c, y, x] or [c, z, y, x] in this order; add a channel axis of size 1 for a \
             single-channel image, or write a mask as labels",
        ),
        RasterKind::Labels => (
            &[&["y", "x"], &["z", "y", "x"]],
            "labels need axes [y, x] or [z, y, x] in this order (no channel axis); write multi-channel data as an \
             image",
        ),
    };
    if allowed.contains(&dims.as_slice()) {
        Ok(())
    } else {
        Err(format!("axes {dims:?} are not allowed: {hint}"))
    }
}

fn check_dtype(kind: RasterKind, data_type: DataType) -> Result<(), String> {
    if kind == RasterKind::Labels && !data_type.is_integer() {
        return Err(format!(
            "Labels must have an integer dtype, got {}: cast the label mask to an integer type (e.g. uint32) \
             before writing",
            data_type.zarr_name()
        ));
    }
    Ok(())
}

fn check_shape(spec: &RasterSpec, shape: &[u64]) -> Result<(), String> {
    if shape.len() != spec.dims.len() {
        return Err(format!(
            "the data has {} dimensions (shape {shape:?}) but the axes are {:?}: give one axis name per \
             dimension",
            shape.len(),
            spec.dims
        ));
    }
    if let Some(i) = shape.iter().position(|&n| n == 0) {
        return Err(format!(
            "axis '{}' has size 0 (shape {shape:?}): rasters need at least one element along every axis",
            spec.dims[i]
        ));
    }
    Ok(())
}

fn check_channels(spec: &RasterSpec, shape: &[u64]) -> Result<(), String> {
    let Some(names) = &spec.channel_names else { return Ok(()) };
    if spec.kind == RasterKind::Labels {
        return Err("labels have no channel axis, so channel_names must be None".into());
    }
    let n_c = shape[0];
    if names.len() as u64 != n_c {
        return Err(format!(
            "{} channel names were given but the c axis has {n_c} entries: give exactly one name per channel",
            names.len()
        ));
    }
    if names.iter().any(|n| n.is_empty()) {
        return Err("a channel name is empty: every channel needs a non-empty name".into());
    }
    let mut seen = HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(format!("channel name '{dup}' appears twice: channel names must be unique"));
    }
    Ok(())
}

fn check_chunking(spec: &RasterSpec, shape: &[u64]) -> Result<(), String> {
    let n = spec.dims.len();
    let check_len = |what: &str, v: &[u64]| -> Result<(), String> {
        if v.len() != n {
            return Err(format!(
                "{what} {v:?} has {} entries but the raster has {n} axes {:?}: give one entry per axis",
                v.len(),
                spec.dims
            ));
        }
        if let Some(i) = v.iter().position(|&x| x == 0) {
            return Err(format!("{what} {v:?} is 0 along axis '{}': every entry must be at least 1", spec.dims[i]));
        }
        Ok(())
    };
    if let Some(c) = &spec.chunk_shape {
        check_len("chunk_shape", c)?;
    }
    if let Some(s) = &spec.shard_shape {
        check_len("shard_shape", s)?;
        let chunk = base_chunk_shape(spec, shape);
        if let Some(i) = (0..n).find(|&i| s[i] % chunk[i] != 0) {
            return Err(format!(
                "shard_shape {s:?} is not a multiple of the chunk shape {chunk:?} along axis '{}': choose a shard \
                 shape that is a whole number of chunks (set chunk_shape explicitly if the default does not fit)",
                spec.dims[i]
            ));
        }
    }
    Ok(())
}

fn check_pyramid(spec: &RasterSpec, shape: &[u64]) -> Result<(), String> {
    let mut level = shape.to_vec();
    for (k, &f) in pyramid_factors(spec).iter().enumerate() {
        if f < 2 {
            return Err(format!(
                "pyramid factor {f} (level {}) must be at least 2: use factors such as [2, 2, 2]",
                k + 1
            ));
        }
        for (i, af) in axis_factors(&spec.dims, f).into_iter().enumerate() {
            let next = level[i] / af;
            if next == 0 {
                return Err(format!(
                    "pyramid level {} would shrink axis '{}' (size {} at level {k}) below 1 pixel with factor {f}: \
                     use fewer or smaller pyramid factors",
                    k + 1,
                    spec.dims[i],
                    level[i]
                ));
            }
            level[i] = next;
        }
    }
    Ok(())
}

/// Checks the levels of [`Pyramid::Given`](super::Pyramid::Given) against level 0 (`shape0`, `data_type`): same
/// dtype and number of axes, the same `c`, and every spatial axis at least 1 and no larger than in the previous
/// level, with at least one spatial axis strictly smaller. Since every level shrinks, the number of levels is
/// bounded by the spatial extent (as for computed pyramids, whose factors must be at least 2); there is no other cap.
fn check_given_levels(spec: &RasterSpec, shape0: &[u64], data_type: DataType) -> Result<(), String> {
    let mut prev = shape0.to_vec();
    for (i, a) in given_levels(spec).iter().enumerate() {
        let k = i + 1;
        let at = format!("given pyramid level {k} (s{k})");
        let (dt, shape) = (a.data_type(), a.shape());
        if dt != data_type {
            return Err(format!(
                "{at} holds {} data but level 0 is {}: cast every level to level 0's dtype",
                dt.zarr_name(),
                data_type.zarr_name()
            ));
        }
        if shape.len() != shape0.len() {
            return Err(format!(
                "{at} has {} dimensions (shape {shape:?}) but level 0 has {} (axes {:?}, shape {shape0:?}): every \
                 level needs level 0's axes",
                shape.len(),
                shape0.len(),
                spec.dims
            ));
        }
        for (d, dim) in spec.dims.iter().enumerate() {
            if !is_spatial(dim) {
                if shape[d] != shape0[d] {
                    return Err(format!(
                        "{at} has {} entries on the channel axis 'c' but level 0 has {}: pyramids never downsample \
                         channels, so keep every channel in every level",
                        shape[d], shape0[d]
                    ));
                }
            } else if shape[d] == 0 {
                return Err(format!(
                    "{at} has size 0 along axis '{dim}' (shape {shape:?}): every level needs at least one pixel along \
                     every axis; drop this level and the ones below it"
                ));
            } else if shape[d] > prev[d] {
                return Err(format!(
                    "{at} is larger than level {} along axis '{dim}' ({} > {}; shapes {shape:?} and {prev:?}): give \
                     the levels from the full resolution down, each no larger than the one before",
                    k - 1,
                    shape[d],
                    prev[d]
                ));
            }
        }
        let shrinks = spec.dims.iter().enumerate().any(|(d, dim)| is_spatial(dim) && shape[d] < prev[d]);
        if !shrinks {
            return Err(format!(
                "{at} has the same shape {shape:?} as level {}: every level must be smaller than the previous one \
                 along at least one spatial axis; drop the repeated level",
                k - 1
            ));
        }
        prev = shape;
    }
    Ok(())
}

pub(crate) fn check_compression(c: &Compression) -> Result<(), String> {
    match c {
        Compression::None => Ok(()),
        Compression::Zstd { level } => {
            if ZSTD_LEVELS.contains(level) {
                Ok(())
            } else {
                Err(format!(
                    "zstd level {level} is out of range: use {}..={} (0 = default, 3)",
                    ZSTD_LEVELS.start(),
                    ZSTD_LEVELS.end()
                ))
            }
        }
        Compression::Blosc { cname, clevel, .. } => {
            if !BLOSC_CNAMES.contains(&cname.as_str()) {
                return Err(format!("blosc compressor '{cname}' is unknown: use one of {BLOSC_CNAMES:?}"));
            }
            if *clevel > 9 {
                return Err(format!("blosc level {clevel} is out of range: use 0..=9"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::Pyramid;
    use crate::transform::Transformation;

    fn name() -> ElementName {
        ElementName::new("img").unwrap()
    }

    fn image() -> RasterSpec {
        RasterSpec::new(RasterKind::Image, &["c", "y", "x"])
    }

    fn refused(spec: &RasterSpec, shape: &[u64], dt: DataType, needle: &str) {
        match validate(&name(), spec, shape, dt) {
            Err(Error::InvalidElement { name, reason }) => {
                assert_eq!(name, "img");
                assert!(reason.contains(needle), "{reason:?} does not contain {needle:?}");
            }
            other => panic!("expected InvalidElement containing {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_valid_specs() {
        let mut s = image();
        s.channel_names = Some(vec!["r".into(), "g".into(), "b".into()]);
        s.chunk_shape = Some(vec![3, 16, 16]);
        s.shard_shape = Some(vec![3, 64, 32]);
        s.pyramid = Pyramid::Computed(vec![2, 2]);
        s.transformations.insert("global".into(), Transformation::Scale(vec![1.0, 0.5, 0.5]));
        validate(&name(), &s, &[3, 100, 100], DataType::U16).unwrap();
        let l = RasterSpec::new(RasterKind::Labels, &["z", "y", "x"]);
        validate(&name(), &l, &[2, 10, 10], DataType::U32).unwrap();
        validate(&name(), &l, &[2, 10, 10], DataType::Bool).unwrap();
    }

    #[test]
    fn refuses_bad_dims() {
        refused(&RasterSpec::new(RasterKind::Image, &["y", "x"]), &[4, 4], DataType::U8, "channel axis of size 1");
        refused(&RasterSpec::new(RasterKind::Image, &["c", "x", "y"]), &[1, 4, 4], DataType::U8, "in this order");
        refused(&RasterSpec::new(RasterKind::Labels, &["c", "y", "x"]), &[1, 4, 4], DataType::U8, "labels need axes");
    }

    #[test]
    fn refuses_float_labels() {
        refused(&RasterSpec::new(RasterKind::Labels, &["y", "x"]), &[4, 4], DataType::F32, "Labels must have an integer dtype");
    }

    #[test]
    fn refuses_bad_shape() {
        refused(&image(), &[4, 4], DataType::U8, "2 dimensions");
        refused(&image(), &[1, 0, 4], DataType::U8, "axis 'y' has size 0");
    }

    #[test]
    fn refuses_bad_channel_names() {
        let mut s = image();
        s.channel_names = Some(vec!["a".into()]);
        refused(&s, &[2, 4, 4], DataType::U8, "one name per channel");
        s.channel_names = Some(vec!["a".into(), "a".into()]);
        refused(&s, &[2, 4, 4], DataType::U8, "appears twice");
        s.channel_names = Some(vec!["a".into(), "".into()]);
        refused(&s, &[2, 4, 4], DataType::U8, "non-empty");
        let mut l = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
        l.channel_names = Some(vec![]);
        refused(&l, &[4, 4], DataType::U8, "no channel axis");
    }

    #[test]
    fn refuses_bad_chunking() {
        let mut s = image();
        s.chunk_shape = Some(vec![1, 4]);
        refused(&s, &[1, 8, 8], DataType::U8, "chunk_shape");
        s.chunk_shape = Some(vec![1, 0, 4]);
        refused(&s, &[1, 8, 8], DataType::U8, "at least 1");
        s.chunk_shape = Some(vec![1, 4, 4]);
        s.shard_shape = Some(vec![1, 6, 8]);
        refused(&s, &[1, 8, 8], DataType::U8, "not a multiple");
        s.shard_shape = Some(vec![1, 8]);
        refused(&s, &[1, 8, 8], DataType::U8, "shard_shape");
    }

    #[test]
    fn refuses_bad_pyramid() {
        let mut s = image();
        s.pyramid = Pyramid::Computed(vec![1]);
        refused(&s, &[1, 8, 8], DataType::U8, "at least 2");
        s.pyramid = Pyramid::Computed(vec![2, 2, 2, 2]);
        refused(&s, &[1, 8, 8], DataType::U8, "below 1 pixel");
        // c is never downsampled, so a single channel is fine
        s.pyramid = Pyramid::Computed(vec![2, 2, 2]);
        validate(&name(), &s, &[1, 8, 8], DataType::U8).unwrap();
    }

    #[test]
    fn refuses_bad_transformations() {
        let cases: Vec<(Transformation, &str)> = vec![
            (Transformation::Scale(vec![2.0, 2.0]), "including c"),
            (Transformation::Translation(vec![0.0, 1.0, f64::NAN]), "NaN"),
            (Transformation::Affine(vec![vec![1.0, 0.0, 0.0]; 3]), "rows of 4 values"),
            (Transformation::Sequence(vec![]), "sequence is empty"),
            (Transformation::Sequence(vec![Transformation::Scale(vec![1.0])]), "one value per axis"),
        ];
        for (t, needle) in cases {
            let mut s = image();
            s.transformations.insert("global".into(), t);
            refused(&s, &[1, 4, 4], DataType::U8, needle);
        }
        let mut s = image();
        s.transformations.insert(String::new(), Transformation::Identity);
        refused(&s, &[1, 4, 4], DataType::U8, "empty coordinate-system name");
    }

    #[test]
    fn refuses_bad_compression() {
        let mut s = image();
        s.compression = Compression::Zstd { level: 23 };
        refused(&s, &[1, 4, 4], DataType::U8, "zstd level 23");
        s.compression = Compression::Blosc { cname: "snappy".into(), clevel: 5, shuffle: true };
        refused(&s, &[1, 4, 4], DataType::U8, "unknown");
        s.compression = Compression::Blosc { cname: "lz4".into(), clevel: 10, shuffle: true };
        refused(&s, &[1, 4, 4], DataType::U8, "blosc level 10");
    }
}
