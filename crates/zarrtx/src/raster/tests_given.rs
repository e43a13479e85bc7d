//! Tests of [`Pyramid::Given`]: caller-given lower levels are stored verbatim, with the shape ratio as NGFF scale,
//! from an in-memory or a streamed level 0; bad levels are refused before anything is written.

use super::tests::{array_of, blocks_of, name, posix, spec, stream, Counting};
use super::*;
use crate::error::Error;
use crate::progress::NoProgress;
use serde_json::json;
use std::sync::atomic::Ordering;

/// The same values as `a` in Fortran (column-major) memory layout.
fn fortran_layout(a: RasterArray) -> RasterArray {
    crate::with_raster_array!(a, arr => {
        let f = arr.t().as_standard_layout().into_owned().reversed_axes();
        assert!(!f.is_standard_layout());
        pixel::Pixel::wrap(f)
    })
}

fn scales(tree: &crate::meta::NodeTree) -> Vec<serde_json::Value> {
    tree[""]["attributes"]["ome"]["multiscales"][0]["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["coordinateTransformations"][0]["scale"].clone())
        .collect()
}

#[test]
fn given_image_levels_are_stored_verbatim_with_shape_ratio_scales() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("img");
    let l0 = array_of(DataType::U16, &[2, 101, 60], 1);
    // Random data, not a downsample of level 0: only a verbatim copy reads back equal.
    let l1 = array_of(DataType::U16, &[2, 51, 30], 2);
    let l2 = fortran_layout(array_of(DataType::U16, &[2, 25, 15], 3));
    let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
    sp.chunk_shape = Some(vec![1, 32, 16]);
    sp.pyramid = Pyramid::Given(vec![l1.clone(), l2.clone()]);
    let progress = Counting::default();
    let tree = write_element(&dir, &name("img"), &sp, RasterSource::InMemory(l0.clone()), &progress).unwrap();
    assert_eq!(tree.keys().collect::<Vec<_>>(), vec!["", "s0", "s1", "s2"]);
    for (k, want) in [&l0, &l1, &l2].into_iter().enumerate() {
        assert_eq!(&read_region(&dir, &name("img"), k, None).unwrap(), want, "level {k}");
    }
    // ome-zarr/spatialdata: scale = level-0 shape / level shape, per axis, as floats (101/51 is not an integer).
    assert_eq!(
        scales(&tree),
        vec![json!([1.0, 1.0, 1.0]), json!([1.0, 101.0 / 51.0, 2.0]), json!([1.0, 101.0 / 25.0, 4.0])]
    );
    // The computed levels' chunk rule: level 0's chunk clamped to the level.
    assert_eq!(tree["s1"]["chunk_grid"]["configuration"]["chunk_shape"], json!([1, 32, 16]));
    assert_eq!(tree["s2"]["chunk_grid"]["configuration"]["chunk_shape"], json!([1, 25, 15]));
    assert_eq!(tree["s2"]["shape"], json!([2, 25, 15]));
    let info = describe(RasterKind::Image, &tree).unwrap();
    assert_eq!(info.levels.iter().map(|l| l.shape.clone()).collect::<Vec<_>>(), vec![l0.shape(), l1.shape(), l2.shape()]);
    let bytes: u64 = [&l0, &l1, &l2].iter().map(|a| a.shape().iter().product::<u64>() * 2).sum();
    assert_eq!(progress.total.load(Ordering::SeqCst), bytes);
    assert_eq!(progress.done.load(Ordering::SeqCst), bytes);
}

#[test]
fn given_levels_with_streamed_level_zero_equal_in_memory() {
    for (kind, dims, shapes, dt, sharded) in [
        (
            RasterKind::Labels,
            vec!["z", "y", "x"],
            vec![vec![5usize, 40, 33], vec![5, 20, 17], vec![2, 10, 8]],
            DataType::U32,
            true,
        ),
        (RasterKind::Labels, vec!["y", "x"], vec![vec![30, 31], vec![15, 31], vec![15, 10]], DataType::I64, false),
        (
            RasterKind::Image,
            vec!["c", "z", "y", "x"],
            vec![vec![2, 4, 20, 21], vec![2, 4, 10, 10], vec![2, 4, 5, 5], vec![2, 1, 1, 1]],
            DataType::F32,
            true,
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let levels: Vec<RasterArray> = shapes.iter().enumerate().map(|(i, s)| array_of(dt, s, 20 + i as u64)).collect();
        let l0 = levels[0].clone();
        let mut sp = spec(kind, &dims);
        sp.chunk_shape = Some(dims.iter().map(|d| if *d == "c" || *d == "z" { 1 } else { 8 }).collect());
        if sharded {
            sp.shard_shape = Some(dims.iter().map(|d| if *d == "c" || *d == "z" { 2 } else { 16 }).collect());
        }
        sp.pyramid = Pyramid::Given(levels[1..].to_vec());
        let mem = posix(&tmp).child("mem");
        let t1 = write_element(&mem, &name("e"), &sp, RasterSource::InMemory(l0.clone()), &NoProgress).unwrap();
        let st = posix(&tmp).child("st");
        let n = dims.len();
        let block: Vec<u64> = (0..n).map(|i| if i == 0 && kind == RasterKind::Image { 1 } else { 7 }).collect();
        let origin: Vec<u64> = (0..n).map(|i| if i == 0 { 0 } else { 3 }).collect();
        let progress = Counting::default();
        let t2 = write_element(&st, &name("e"), &sp, stream(l0.shape(), dt, blocks_of(&l0, &block, &origin)), &progress)
            .unwrap();
        assert_eq!(t1, t2, "{dims:?}");
        assert_eq!(t2.len(), levels.len() + 1);
        for (k, want) in levels.iter().enumerate() {
            assert_eq!(&read_region(&mem, &name("e"), k, None).unwrap(), want, "{dims:?} in memory, level {k}");
            assert_eq!(&read_region(&st, &name("e"), k, None).unwrap(), want, "{dims:?} streamed, level {k}");
        }
        let s0: Vec<f64> = shapes[0].iter().map(|&n| n as f64).collect();
        for (k, shape) in shapes.iter().enumerate() {
            let want: Vec<f64> = s0.iter().zip(shape).map(|(a, &b)| a / b as f64).collect();
            assert_eq!(scales(&t2)[k], json!(want), "{dims:?} level {k}");
        }
        if kind == RasterKind::Image {
            // c is never scaled, and z keeps scale 1 while it does not shrink.
            assert_eq!(scales(&t2)[2], json!([1.0, 1.0, 4.0, 21.0 / 5.0]));
        }
        let total = progress.total.load(Ordering::SeqCst);
        assert!(total > 0);
        assert_eq!(progress.done.load(Ordering::SeqCst), total);
    }
}

#[test]
fn empty_given_pyramid_is_a_single_level() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("lab");
    let mut sp = spec(RasterKind::Labels, &["y", "x"]);
    sp.pyramid = Pyramid::Given(vec![]);
    let a = array_of(DataType::U8, &[6, 7], 4);
    let tree = write_element(&dir, &name("lab"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
    assert_eq!(tree.keys().collect::<Vec<_>>(), vec!["", "s0"]);
    assert_eq!(read_region(&dir, &name("lab"), 0, None).unwrap(), a);
}

#[test]
fn computed_pyramid_scales_stay_the_product_of_factors() {
    // 13 -> 6 -> 2 along y: the ratios would be 2.1666.. and 6.5, but computed levels keep the factor products.
    let tmp = tempfile::tempdir().unwrap();
    let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
    sp.pyramid = Pyramid::Computed(vec![2, 3]);
    let a = array_of(DataType::U8, &[1, 13, 20], 5);
    let tree = write_element(&posix(&tmp).child("img"), &name("img"), &sp, RasterSource::InMemory(a), &NoProgress).unwrap();
    assert_eq!(scales(&tree), vec![json!([1.0, 1.0, 1.0]), json!([1.0, 2.0, 2.0]), json!([1.0, 6.0, 6.0])]);
}

/// Writes `level0` (in memory, then streamed) with `given` lower levels and expects a refusal naming the element
/// and containing every needle, with nothing created on disk.
fn refused(kind: RasterKind, dims: &[&str], level0: &RasterArray, given: Vec<RasterArray>, needles: &[&str]) {
    let mut sp = spec(kind, dims);
    sp.pyramid = Pyramid::Given(given);
    let shape = level0.shape();
    let sources = [
        RasterSource::InMemory(level0.clone()),
        stream(shape.clone(), level0.data_type(), blocks_of(level0, &shape, &vec![0; shape.len()])),
    ];
    for source in sources {
        let tmp = tempfile::tempdir().unwrap();
        let dir = posix(&tmp).child("el");
        match write_element(&dir, &name("el"), &sp, source, &NoProgress) {
            Err(Error::InvalidElement { name, reason }) => {
                assert_eq!(name, "el");
                for n in needles {
                    assert!(reason.contains(n), "{reason:?} does not contain {n:?}");
                }
            }
            other => panic!("expected InvalidElement containing {needles:?}, got {other:?}"),
        }
        assert!(!tmp.path().join("el").exists(), "{needles:?}: something was written");
    }
}

#[test]
fn bad_given_levels_are_refused_before_anything_is_written() {
    let img = ["c", "y", "x"];
    let l0 = array_of(DataType::U8, &[3, 20, 20], 1);
    let lvl = |shape: &[usize]| array_of(DataType::U8, shape, 2);
    let image_cases: Vec<(Vec<RasterArray>, Vec<&str>)> = vec![
        (vec![array_of(DataType::U16, &[3, 10, 10], 2)], vec!["level 1 (s1)", "holds uint16", "level 0 is uint8", "cast"]),
        (vec![lvl(&[10, 10])], vec!["level 1 (s1)", "2 dimensions", "level 0's axes"]),
        (vec![lvl(&[3, 10, 10]), lvl(&[1, 5, 5])], vec!["level 2 (s2)", "channel axis 'c'", "keep every channel"]),
        (vec![lvl(&[3, 21, 10])], vec!["level 1 (s1)", "larger than level 0 along axis 'y'", "21 > 20"]),
        (
            vec![lvl(&[3, 10, 10]), lvl(&[3, 5, 12])],
            vec!["level 2 (s2)", "larger than level 1 along axis 'x'", "no larger than the one before"],
        ),
        (vec![lvl(&[3, 10, 0])], vec!["level 1 (s1)", "size 0 along axis 'x'"]),
        (vec![lvl(&[3, 20, 20])], vec!["level 1 (s1)", "same shape", "level 0", "drop the repeated level"]),
        (vec![lvl(&[3, 10, 10]), lvl(&[3, 10, 10])], vec!["level 2 (s2)", "same shape", "level 1"]),
    ];
    for (given, needles) in image_cases {
        refused(RasterKind::Image, &img, &l0, given, &needles);
    }
    let lab0 = array_of(DataType::U32, &[4, 12, 12], 1);
    refused(
        RasterKind::Labels,
        &["z", "y", "x"],
        &lab0,
        vec![array_of(DataType::I32, &[4, 6, 6], 2)],
        &["level 1 (s1)", "holds int32", "level 0 is uint32"],
    );
    refused(
        RasterKind::Labels,
        &["z", "y", "x"],
        &lab0,
        vec![array_of(DataType::U32, &[2, 6, 6], 2), array_of(DataType::U32, &[3, 3, 3], 3)],
        &["level 2 (s2)", "along axis 'z'", "3 > 2"],
    );
}
