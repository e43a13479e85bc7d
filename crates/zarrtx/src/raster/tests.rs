//! End-to-end tests of the raster module: write, read back, pyramids, streaming, sharding, metadata.

use super::*;
use crate::error::Error;
use crate::meta::NodeTree;
use crate::name::ElementName;
use crate::progress::{NoProgress, Progress};
use crate::storage::{DataHandle, MemoryStorage, PosixStorage};
use crate::transform::Transformation;
use ndarray::{s, ArrayD, IxDyn};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The root of a durable POSIX store in the temporary directory `tmp`.
pub(super) fn posix(tmp: &tempfile::TempDir) -> DataHandle {
    DataHandle::new(Arc::new(PosixStorage::new(tmp.path(), true)), "")
}

pub(super) fn name(s: &str) -> ElementName {
    ElementName::new(s).unwrap()
}

/// Deterministic pseudo-random values.
pub(super) fn values(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        })
        .collect()
}

pub(super) fn array_of(dt: DataType, shape: &[usize], seed: u64) -> RasterArray {
    let n: usize = shape.iter().product();
    let v = values(n, seed);
    let sh = IxDyn(shape);
    match dt {
        DataType::Bool => RasterArray::Bool(ArrayD::from_shape_vec(sh, v.iter().map(|x| x % 2 == 0).collect()).unwrap()),
        DataType::U8 => RasterArray::U8(ArrayD::from_shape_vec(sh, v.iter().map(|x| *x as u8).collect()).unwrap()),
        DataType::U16 => RasterArray::U16(ArrayD::from_shape_vec(sh, v.iter().map(|x| *x as u16).collect()).unwrap()),
        DataType::U32 => RasterArray::U32(ArrayD::from_shape_vec(sh, v.iter().map(|x| (*x % 7) as u32).collect()).unwrap()),
        DataType::U64 => RasterArray::U64(ArrayD::from_shape_vec(sh, v.to_vec()).unwrap()),
        DataType::I8 => RasterArray::I8(ArrayD::from_shape_vec(sh, v.iter().map(|x| *x as i8).collect()).unwrap()),
        DataType::I16 => RasterArray::I16(ArrayD::from_shape_vec(sh, v.iter().map(|x| *x as i16).collect()).unwrap()),
        DataType::I32 => RasterArray::I32(ArrayD::from_shape_vec(sh, v.iter().map(|x| (*x % 5) as i32 - 2).collect()).unwrap()),
        DataType::I64 => RasterArray::I64(ArrayD::from_shape_vec(sh, v.iter().map(|x| *x as i64 - (1 << 30)).collect()).unwrap()),
        DataType::F32 => RasterArray::F32(ArrayD::from_shape_vec(sh, v.iter().map(|x| *x as f32 / 7.0).collect()).unwrap()),
        DataType::F64 => RasterArray::F64(ArrayD::from_shape_vec(sh, v.iter().map(|x| *x as f64 / 3.0).collect()).unwrap()),
    }
}

/// Splits `a` into blocks of `block` elements starting at `origin` offsets (unaligned when origin is not 0),
/// shuffled deterministically.
pub(super) fn blocks_of(a: &RasterArray, block: &[u64], origin: &[u64]) -> Vec<RasterBlock> {
    let shape = a.shape();
    let mut cuts: Vec<Vec<(u64, u64)>> = Vec::new();
    for i in 0..shape.len() {
        let mut v = Vec::new();
        let mut s = 0;
        let mut e = origin[i].min(shape[i]);
        if e == 0 {
            e = block[i].min(shape[i]);
        }
        while s < shape[i] {
            v.push((s, e));
            s = e;
            e = (e + block[i]).min(shape[i]);
        }
        cuts.push(v);
    }
    let mut out = vec![(vec![], vec![])];
    for c in &cuts {
        out = out
            .into_iter()
            .flat_map(|(o, e): (Vec<u64>, Vec<u64>)| {
                c.iter().map(move |&(s, t)| {
                    let mut o = o.clone();
                    let mut e = e.clone();
                    o.push(s);
                    e.push(t);
                    (o, e)
                })
            })
            .collect();
    }
    let mut blocks: Vec<RasterBlock> = out
        .into_iter()
        .map(|(o, e)| {
            let info: Vec<ndarray::SliceInfoElem> = o
                .iter()
                .zip(&e)
                .map(|(&s, &t)| ndarray::SliceInfoElem::Slice { start: s as isize, end: Some(t as isize), step: 1 })
                .collect();
            let data = crate::with_raster_array!(a, arr => {
                let v = arr.slice(info.as_slice()).to_owned();
                pixel::Pixel::wrap(v)
            });
            RasterBlock { offset: o, data }
        })
        .collect();
    // deterministic shuffle
    let n = blocks.len();
    for (i, r) in values(n, 99).into_iter().enumerate() {
        blocks.swap(i, i + (r as usize) % (n - i));
    }
    blocks
}

pub(super) fn stream(shape: Vec<u64>, dt: DataType, blocks: Vec<RasterBlock>) -> RasterSource<'static> {
    RasterSource::Blocks {
        shape,
        data_type: dt,
        blocks: Box::new(blocks.into_iter().map(Ok)),
    }
}

pub(super) fn spec(kind: RasterKind, dims: &[&str]) -> RasterSpec {
    RasterSpec::new(kind, dims)
}

#[derive(Default)]
pub(super) struct Counting {
    pub(super) total: AtomicU64,
    pub(super) done: AtomicU64,
}

impl Progress for Counting {
    fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::SeqCst);
    }
    fn advance(&self, delta: u64) {
        self.done.fetch_add(delta, Ordering::SeqCst);
    }
}

#[test]
fn round_trips_dtypes_kinds_and_dimensionalities() {
    let cases: Vec<(RasterKind, Vec<&str>, Vec<usize>, DataType)> = vec![
        (RasterKind::Image, vec!["c", "y", "x"], vec![3, 37, 50], DataType::U8),
        (RasterKind::Image, vec!["c", "y", "x"], vec![2, 20, 21], DataType::U16),
        (RasterKind::Image, vec!["c", "y", "x"], vec![1, 9, 8], DataType::F32),
        (RasterKind::Image, vec!["c", "z", "y", "x"], vec![2, 5, 11, 13], DataType::F64),
        (RasterKind::Image, vec!["c", "y", "x"], vec![1, 10, 10], DataType::I64),
        (RasterKind::Image, vec!["c", "y", "x"], vec![1, 10, 10], DataType::Bool),
        (RasterKind::Labels, vec!["y", "x"], vec![33, 17], DataType::U32),
        (RasterKind::Labels, vec!["y", "x"], vec![8, 8], DataType::I8),
        (RasterKind::Labels, vec!["z", "y", "x"], vec![4, 9, 10], DataType::I32),
        (RasterKind::Labels, vec!["z", "y", "x"], vec![3, 5, 6], DataType::U64),
        (RasterKind::Labels, vec!["y", "x"], vec![7, 6], DataType::I16),
    ];
    for (i, (kind, dims, shape, dt)) in cases.into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = posix(&tmp).child("el");
        let mut sp = spec(kind, &dims);
        sp.chunk_shape = Some(shape.iter().map(|&n| (n as u64).div_ceil(2).max(1)).collect());
        let a = array_of(dt, &shape, i as u64);
        let tree = write_element(&dir, &name("el"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), vec!["", "s0"]);
        let back = read_region(&dir, &name("el"), 0, None).unwrap();
        assert_eq!(back, a, "case {i}: {kind:?} {dims:?} {dt:?}");
        let info = describe(kind, &tree).unwrap();
        assert_eq!(info.data_type, dt);
        assert_eq!(info.levels[0].shape, shape.iter().map(|&n| n as u64).collect::<Vec<_>>());
    }
}

#[test]
fn reads_regions_and_refuses_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("img");
    let a = array_of(DataType::U16, &[2, 30, 40], 7);
    let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
    sp.chunk_shape = Some(vec![1, 8, 16]);
    write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
    let r = read_region(&dir, &name("img"), 0, Some(&[1..2, 5..23, 17..40])).unwrap();
    let RasterArray::U16(full) = &a else { panic!() };
    assert_eq!(r, RasterArray::U16(full.slice(s![1..2, 5..23, 17..40]).to_owned().into_dyn()));
    let empty = read_region(&dir, &name("img"), 0, Some(&[0..0, 0..3, 0..3])).unwrap();
    assert_eq!(empty.shape(), vec![0, 3, 3]);
    for bad in [vec![0..2, 0..31, 0..40], vec![0..2, 0..30]] {
        match read_region(&dir, &name("img"), 0, Some(&bad)) {
            Err(Error::InvalidElement { name, reason }) => {
                assert_eq!(name, "img");
                assert!(reason.contains("[2, 30, 40]"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    match read_region(&dir, &name("img"), 1, None) {
        Err(Error::InvalidElement { reason, .. }) => assert!(reason.contains("level 1 does not exist"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn node_tree_matches_files_and_spatialdata_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("img");
    let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
    sp.channel_names = Some(vec!["dapi".into(), "cd3".into()]);
    sp.pyramid = Pyramid::Computed(vec![2, 2]);
    sp.transformations.insert("global".into(), Transformation::Scale(vec![1.0, 0.5, 0.5]));
    let a = array_of(DataType::U8, &[2, 16, 20], 3);
    let tree = write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a), &NoProgress).unwrap();
    assert_eq!(tree.keys().collect::<Vec<_>>(), vec!["", "s0", "s1", "s2"]);
    for (k, v) in &tree {
        let file = if k.is_empty() { tmp.path().join("img/zarr.json") } else { tmp.path().join("img").join(k).join("zarr.json") };
        let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(&on_disk, v, "{k}");
    }
    let attrs = &tree[""]["attributes"];
    let ome = &attrs["ome"];
    assert_eq!(ome["version"], "0.5-dev-spatialdata");
    assert_eq!(ome["omero"]["channels"][1]["label"], "cd3");
    assert!(attrs.get("omero").is_none());
    assert_eq!(attrs["spatialdata_attrs"]["version"], "0.3");
    let ds = ome["multiscales"][0]["datasets"].as_array().unwrap();
    let paths: Vec<&str> = ds.iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["s0", "s1", "s2"]);
    assert_eq!(ds[2]["coordinateTransformations"][0]["scale"], serde_json::json!([1.0, 4.0, 4.0]));
    assert_eq!(ome["multiscales"][0]["coordinateTransformations"][0]["scale"], serde_json::json!([1.0, 0.5, 0.5]));
    assert_eq!(tree["s1"]["shape"], serde_json::json!([2, 8, 10]));
    assert_eq!(tree["s2"]["shape"], serde_json::json!([2, 4, 5]));
    assert_eq!(tree["s0"]["dimension_names"], serde_json::json!(["c", "y", "x"]));
    assert_eq!(tree["s0"]["chunk_key_encoding"]["configuration"]["separator"], "/");
    // default chunking: all channels, whole (small) plane
    assert_eq!(tree["s0"]["chunk_grid"]["configuration"]["chunk_shape"], serde_json::json!([2, 16, 20]));
    // chunk files use the "/" key encoding
    assert!(tmp.path().join("img/s0/c/0/0/0").is_file());
    let info = describe(RasterKind::Image, &tree).unwrap();
    assert_eq!(info.channel_names, Some(vec!["dapi".to_string(), "cd3".into()]));
    assert_eq!(info.transformations["global"], Transformation::Scale(vec![1.0, 0.5, 0.5]));
    assert_eq!(info.levels.len(), 3);
}

#[test]
fn labels_tree_has_image_label_and_no_omero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("lab");
    let sp = spec(RasterKind::Labels, &["y", "x"]);
    let a = array_of(DataType::U32, &[5, 5], 1);
    let tree = write_element(&dir, &name("lab"), &sp, RasterSource::InMemory(a), &NoProgress).unwrap();
    let ome = &tree[""]["attributes"]["ome"];
    assert_eq!(ome["image-label"]["version"], "0.5");
    assert!(ome.get("omero").is_none());
    assert_eq!(ome["multiscales"][0]["name"], "/labels/lab");
}

#[test]
fn image_pyramid_is_the_mean() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("img");
    let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
    sp.pyramid = Pyramid::Computed(vec![2]);
    #[rustfmt::skip]
    let data = vec![
        1u8, 3, 10, 20, 99,
        5, 7, 30, 41, 99,
        0, 0, 255, 255, 99,
        0, 1, 255, 254, 99,
        9, 9, 9, 9, 9,
    ];
    let a = RasterArray::U8(ArrayD::from_shape_vec(IxDyn(&[1, 5, 5]), data).unwrap());
    write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a), &NoProgress).unwrap();
    let s1 = read_region(&dir, &name("img"), 1, None).unwrap();
    // (1+3+5+7)/4=4, (10+20+30+41)/4=25.25->25, (0+0+0+1)/4=0.25->0, (255*3+254)/4=254.75->255
    assert_eq!(s1, RasterArray::U8(ArrayD::from_shape_vec(IxDyn(&[1, 2, 2]), vec![4, 25, 0, 255]).unwrap()));
}

#[test]
fn labels_pyramid_is_the_mode_in_memory_and_streamed() {
    #[rustfmt::skip]
    let data = vec![
        1u16, 1, 2, 2, 5, 5,
        1, 3, 2, 2, 5, 6,
        4, 4, 7, 8, 6, 6,
        4, 9, 8, 7, 6, 5,
    ];
    let a = RasterArray::U16(ArrayD::from_shape_vec(IxDyn(&[4, 6]), data).unwrap());
    // windows: {1,1,1,3}->1 {2,2,2,2}->2 {5,5,5,6}->5 ; {4,4,4,9}->4 {7,8,8,7} tie->7 {6,6,6,5}->6
    let expected = RasterArray::U16(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1, 2, 5, 4, 7, 6]).unwrap());
    let mut sp = spec(RasterKind::Labels, &["y", "x"]);
    sp.pyramid = Pyramid::Computed(vec![2]);
    sp.chunk_shape = Some(vec![2, 2]);
    let tmp = tempfile::tempdir().unwrap();
    let d1 = posix(&tmp).child("mem");
    write_element(&d1, &name("lab"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
    assert_eq!(read_region(&d1, &name("lab"), 1, None).unwrap(), expected);
    let d2 = posix(&tmp).child("stream");
    let blocks = blocks_of(&a, &[3, 4], &[1, 3]);
    write_element(&d2, &name("lab"), &sp, stream(vec![4, 6], DataType::U16, blocks), &NoProgress).unwrap();
    assert_eq!(read_region(&d2, &name("lab"), 1, None).unwrap(), expected);
}

#[test]
fn unaligned_streaming_equals_in_memory_write() {
    for (kind, dims, shape, dt, sharded) in [
        (RasterKind::Image, vec!["c", "y", "x"], vec![2usize, 45, 70], DataType::U16, false),
        (RasterKind::Image, vec!["c", "z", "y", "x"], vec![1, 6, 20, 23], DataType::F32, false),
        (RasterKind::Labels, vec!["y", "x"], vec![50, 61], DataType::U32, true),
        (RasterKind::Labels, vec!["z", "y", "x"], vec![6, 17, 19], DataType::I64, true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let a = array_of(dt, &shape, 11);
        let mut sp = spec(kind, &dims);
        let n = dims.len();
        sp.chunk_shape = Some(dims.iter().map(|d| if *d == "c" || *d == "z" { 1 } else { 8 }).collect());
        if sharded {
            sp.shard_shape = Some(dims.iter().map(|d| if *d == "z" { 2 } else { 16 }).collect());
        }
        sp.pyramid = Pyramid::Computed(vec![2, 2]);
        let mem = posix(&tmp).child("mem");
        let t1 = write_element(&mem, &name("e"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
        let st = posix(&tmp).child("st");
        let block: Vec<u64> = (0..n).map(|i| if i == 0 && kind == RasterKind::Image { 1 } else { 7 }).collect();
        let origin: Vec<u64> = (0..n).map(|i| if i == 0 { 0 } else { 3 }).collect();
        let blocks = blocks_of(&a, &block, &origin);
        let progress = Counting::default();
        let t2 = write_element(&st, &name("e"), &sp, stream(a.shape(), dt, blocks), &progress).unwrap();
        assert_eq!(t1, t2);
        for level in 0..3 {
            let x = read_region(&mem, &name("e"), level, None).unwrap();
            let y = read_region(&st, &name("e"), level, None).unwrap();
            assert_eq!(x, y, "{kind:?} {dims:?} level {level}");
        }
        assert_eq!(read_region(&st, &name("e"), 0, None).unwrap(), a);
        let total = progress.total.load(Ordering::SeqCst);
        assert!(total > 0);
        assert_eq!(progress.done.load(Ordering::SeqCst), total);
    }
}

#[test]
fn sharded_write_reads_back_with_sharding_codec() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("img");
    let a = array_of(DataType::U16, &[3, 70, 90], 5);
    let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
    sp.chunk_shape = Some(vec![3, 16, 16]);
    sp.shard_shape = Some(vec![3, 32, 64]);
    sp.pyramid = Pyramid::Computed(vec![2]);
    let tree = write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
    assert_eq!(tree["s0"]["codecs"][0]["name"], "sharding_indexed");
    assert_eq!(tree["s0"]["chunk_grid"]["configuration"]["chunk_shape"], serde_json::json!([3, 32, 64]));
    assert_eq!(read_region(&dir, &name("img"), 0, None).unwrap(), a);
    let info = describe(RasterKind::Image, &tree).unwrap();
    assert_eq!(info.levels[0].chunk_shape, vec![3, 32, 64]);
    assert_eq!(info.levels[1].shape, vec![3, 35, 45]);
    // one file per shard: 3 x 2 shards
    let n_files = std::fs::read_dir(tmp.path().join("img/s0/c/0")).unwrap().map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count()).sum::<usize>();
    assert_eq!(n_files, 6);
}

#[test]
fn compressions_round_trip() {
    for c in [
        Compression::None,
        Compression::Zstd { level: 5 },
        Compression::Blosc { cname: "lz4".into(), clevel: 5, shuffle: true },
        Compression::Blosc { cname: "zstd".into(), clevel: 3, shuffle: false },
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = posix(&tmp).child("img");
        let a = array_of(DataType::I16, &[1, 33, 34], 2);
        let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
        sp.compression = c.clone();
        sp.chunk_shape = Some(vec![1, 16, 16]);
        write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
        assert_eq!(read_region(&dir, &name("img"), 0, None).unwrap(), a, "{c:?}");
    }
}

#[test]
fn invalid_input_is_refused_before_touching_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("never");
    let sp = spec(RasterKind::Labels, &["y", "x"]);
    let a = array_of(DataType::F32, &[4, 4], 0);
    match write_element(&dir, &name("lab"), &sp, RasterSource::InMemory(a), &NoProgress) {
        Err(Error::InvalidElement { reason, .. }) => assert!(reason.contains("integer dtype")),
        other => panic!("{other:?}"),
    }
    assert!(!tmp.path().join("never").exists());
    let sp = spec(RasterKind::Image, &["c", "y", "x"]);
    let a = array_of(DataType::U8, &[4, 4], 0);
    assert!(matches!(
        write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a), &NoProgress),
        Err(Error::InvalidElement { .. })
    ));
    assert!(!tmp.path().join("never").exists());
}

#[test]
fn bad_blocks_are_refused() {
    let sp = spec(RasterKind::Image, &["c", "y", "x"]);
    let good = array_of(DataType::U8, &[1, 4, 4], 0);
    let cases = vec![
        (RasterBlock { offset: vec![0, 0, 0], data: array_of(DataType::U16, &[1, 4, 4], 0) }, "declares uint8"),
        (RasterBlock { offset: vec![0, 2, 0], data: good.clone() }, "beyond the array shape"),
        (RasterBlock { offset: vec![0, 0], data: good.clone() }, "dimensions"),
        (RasterBlock { offset: vec![0, u64::MAX, 0], data: good }, "beyond the array shape"),
    ];
    for (b, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        match write_element(&posix(&tmp).child("x"), &name("x"), &sp, stream(vec![1, 4, 4], DataType::U8, vec![b]), &NoProgress) {
            Err(Error::InvalidElement { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn errors_from_the_block_iterator_are_returned() {
    let sp = spec(RasterKind::Image, &["c", "y", "x"]);
    let tmp = tempfile::tempdir().unwrap();
    let src = RasterSource::Blocks {
        shape: vec![1, 4, 4],
        data_type: DataType::U8,
        blocks: Box::new(std::iter::once(Err(Error::InvalidElement { name: "x".into(), reason: "boom".into() }))),
    };
    match write_element(&posix(&tmp).child("x"), &name("x"), &sp, src, &NoProgress) {
        Err(Error::InvalidElement { reason, .. }) => assert_eq!(reason, "boom"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn partially_covered_chunks_merge_and_uncovered_read_as_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("lab");
    let mut sp = spec(RasterKind::Labels, &["y", "x"]);
    sp.chunk_shape = Some(vec![4, 4]);
    let b1 = RasterBlock { offset: vec![0, 0], data: RasterArray::U8(ArrayD::from_elem(IxDyn(&[2, 3]), 1)) };
    let b2 = RasterBlock { offset: vec![2, 1], data: RasterArray::U8(ArrayD::from_elem(IxDyn(&[3, 4]), 2)) };
    write_element(&dir, &name("lab"), &sp, stream(vec![5, 6], DataType::U8, vec![b1, b2]), &NoProgress).unwrap();
    let RasterArray::U8(back) = read_region(&dir, &name("lab"), 0, None).unwrap() else { panic!() };
    let mut expected = ArrayD::<u8>::zeros(IxDyn(&[5, 6]));
    expected.slice_mut(s![0..2, 0..3]).fill(1);
    expected.slice_mut(s![2..5, 1..5]).fill(2);
    assert_eq!(back, expected);
}

#[test]
fn describe_round_trips_written_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = posix(&tmp).child("img");
    let mut sp = spec(RasterKind::Image, &["c", "z", "y", "x"]);
    sp.pyramid = Pyramid::Computed(vec![2]);
    sp.transformations.insert("a".into(), Transformation::Translation(vec![0.0, 1.0, 2.0, 3.0]));
    sp.transformations.insert(
        "b".into(),
        Transformation::Sequence(vec![Transformation::Scale(vec![1.0, 2.0, 2.0, 2.0]), Transformation::Identity]),
    );
    let a = array_of(DataType::U8, &[2, 4, 6, 6], 0);
    let tree: NodeTree = write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a), &NoProgress).unwrap();
    let info = describe(RasterKind::Image, &tree).unwrap();
    assert_eq!(info.dims, vec!["c", "z", "y", "x"]);
    assert_eq!(info.transformations, sp.transformations);
    assert_eq!(info.channel_names, Some(vec!["0".to_string(), "1".into()]));
    assert_eq!(info.levels[1].shape, vec![2, 2, 3, 3]);
    assert_eq!(info.levels[1].chunk_shape, vec![2, 1, 3, 3]);
}

/// The root of a fresh in-memory store.
fn memory() -> DataHandle {
    DataHandle::new(Arc::new(MemoryStorage::new()), "")
}

/// Every object below `dir` (keys relative to it) with its bytes, sorted by key.
fn objects(dir: &DataHandle) -> Vec<(String, Vec<u8>)> {
    dir.list_recursive("").unwrap().into_iter().map(|(k, _)| (k.clone(), dir.read(&k).unwrap())).collect()
}

/// Asserts that two stores hold the same objects with the same bytes.
fn assert_same_objects(posix: &DataHandle, memory: &DataHandle, what: &str) {
    let (a, b) = (objects(posix), objects(memory));
    let keys = |o: &[(String, Vec<u8>)]| o.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b), "{what}: the same keys");
    for ((k, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{what}: {k} holds {} bytes on POSIX and {} different ones in memory", x.len(), y.len());
    }
}

/// Nothing in raster needs a local path: a pyramid (plain chunks, and sharded levels), written from memory and
/// streamed (whose lower levels are computed by reading the level above back from storage), is written and read
/// entirely on the in-memory backend, and every chunk, shard and `zarr.json` holds the bytes written on POSIX.
#[test]
fn pyramids_on_memory_storage_hold_the_bytes_written_on_posix() {
    let a = array_of(DataType::U16, &[2, 45, 70], 13);
    for sharded in [false, true] {
        let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
        sp.chunk_shape = Some(vec![1, 8, 16]);
        if sharded {
            sp.shard_shape = Some(vec![2, 16, 32]);
        }
        sp.pyramid = Pyramid::Computed(vec![2, 2]);
        for streamed in [false, true] {
            let what = format!("sharded {sharded}, streamed {streamed}");
            let source = || {
                if streamed {
                    stream(a.shape(), DataType::U16, blocks_of(&a, &[1, 7, 9], &[0, 3, 5]))
                } else {
                    RasterSource::InMemory(a.clone())
                }
            };
            let tmp = tempfile::tempdir().unwrap();
            let on_disk = posix(&tmp).child("images/img");
            let in_memory = memory().child("images/img");
            let t1 = write_element(&on_disk, &name("img"), &sp, source(), &NoProgress).unwrap();
            let t2 = write_element(&in_memory, &name("img"), &sp, source(), &NoProgress).unwrap();
            assert_eq!(t1, t2, "{what}");
            if sharded {
                assert_eq!(t2["s0"]["codecs"][0]["name"], "sharding_indexed", "{what}");
            }
            let stored = objects(&in_memory);
            for level in ["s0", "s1", "s2"] {
                assert!(stored.iter().any(|(k, _)| k.starts_with(&format!("{level}/c/"))), "{what}: {level} has chunks");
            }
            assert_same_objects(&on_disk, &in_memory, &what);
            for level in 0..3 {
                let x = read_region(&on_disk, &name("img"), level, None).unwrap();
                let y = read_region(&in_memory, &name("img"), level, None).unwrap();
                assert_eq!(x, y, "{what}, level {level}");
            }
            assert_eq!(read_region(&in_memory, &name("img"), 0, None).unwrap(), a, "{what}");
            let r = read_region(&in_memory, &name("img"), 0, Some(&[1..2, 5..23, 17..40])).unwrap();
            let RasterArray::U16(full) = &a else { panic!() };
            assert_eq!(r, RasterArray::U16(full.slice(s![1..2, 5..23, 17..40]).to_owned().into_dyn()), "{what}");
        }
    }
}

/// A write plan's raster side (level-0 metadata, parts written, an interrupted attempt's objects cleared, parts
/// settled, pyramid and metadata at the end) runs on the in-memory backend and leaves the bytes it leaves on POSIX.
#[test]
fn a_planned_raster_runs_on_memory_storage_as_on_posix() {
    use super::planned::StagedRaster;
    let a = array_of(DataType::U32, &[40, 50], 3);
    let shape = [40u64, 50];
    let mut sp = spec(RasterKind::Labels, &["y", "x"]);
    sp.chunk_shape = Some(vec![8, 8]);
    sp.shard_shape = Some(vec![16, 16]);
    sp.pyramid = Pyramid::Computed(vec![2]);
    // Aligned to the shards (16 rows); blocks of 8 rows never straddle two parts.
    let parts: Vec<Vec<std::ops::Range<u64>>> = vec![vec![0..16, 0..50], vec![16..40, 0..50]];
    let tmp = tempfile::tempdir().unwrap();
    let on_disk = posix(&tmp).child("plans/p/staged");
    let in_memory = memory().child("plans/p/staged");
    for dir in [&on_disk, &in_memory] {
        let raster = StagedRaster { dir, name: &name("lab"), spec: &sp, shape: &shape, dtype: DataType::U32 };
        raster.init().unwrap();
        let level = raster.level0_target().unwrap();
        for (i, region) in parts.iter().enumerate() {
            let keys = level.part_files(region).unwrap();
            assert_eq!(keys.len(), if i == 0 { 4 } else { 8 }, "shards of part {i}");
            // What an interrupted attempt left: cleared before the part is written again.
            dir.put_private(&keys[0], b"garbage").unwrap();
            level.clear_part(region).unwrap();
            assert!(!dir.exists(&keys[0]).unwrap());
            let blocks: Vec<RasterBlock> = blocks_of(&a, &[8, 7], &[0, 3])
                .into_iter()
                .filter(|b| region[0].contains(&b.offset[0]))
                .collect();
            level.write_part(i, region, blocks.into_iter().map(Ok), &NoProgress, DEFAULT_MEMORY_LIMIT).unwrap();
            let (n, bytes) = level.settle_part(region, true).unwrap();
            let sizes: Vec<u64> = keys.iter().filter_map(|k| dir.size(k).unwrap()).collect();
            assert_eq!((n, bytes), (sizes.len() as u64, sizes.iter().sum::<u64>()), "part {i}");
            assert_eq!(n, keys.len() as u64, "part {i}: every shard holds data");
        }
        let tree = raster.finish(&NoProgress, DEFAULT_MEMORY_LIMIT, true).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), vec!["", "s0", "s1"]);
        assert_eq!(read_region(dir, &name("lab"), 0, None).unwrap(), a);
    }
    assert_same_objects(&on_disk, &in_memory, "planned");
    // The same element as one write.
    let whole = memory().child("labels/lab");
    write_element(&whole, &name("lab"), &sp, RasterSource::InMemory(a.clone()), &NoProgress).unwrap();
    assert_eq!(read_region(&in_memory, &name("lab"), 1, None).unwrap(), read_region(&whole, &name("lab"), 1, None).unwrap());
}

/// A backend over another whose chunk reads are refused with "permission denied".
#[derive(Debug)]
struct DeniedChunkReads(Arc<dyn crate::storage::Storage>);

impl DeniedChunkReads {
    fn check(&self, key: &str) -> crate::error::Result<()> {
        if key.contains("/c/") {
            return Err(Error::io(self.0.location().join(key), std::io::Error::from_raw_os_error(libc::EACCES)));
        }
        Ok(())
    }
}

impl crate::storage::Storage for DeniedChunkReads {
    fn capabilities(&self) -> crate::storage::Capabilities {
        self.0.capabilities()
    }
    fn location(&self) -> std::path::PathBuf {
        self.0.location()
    }
    fn get(&self, key: &str) -> crate::error::Result<Option<Vec<u8>>> {
        self.check(key)?;
        self.0.get(key)
    }
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> crate::error::Result<Option<Vec<u8>>> {
        self.check(key)?;
        self.0.get_range(key, range)
    }
    fn exists(&self, key: &str) -> crate::error::Result<bool> {
        self.0.exists(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> crate::error::Result<()> {
        self.0.put(key, bytes)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> crate::error::Result<crate::storage::PutOutcome> {
        self.0.put_if_absent(key, bytes)
    }
    fn delete(&self, key: &str) -> crate::error::Result<()> {
        self.0.delete(key)
    }
    fn list(&self, prefix: &str) -> crate::error::Result<Vec<String>> {
        self.0.list(prefix)
    }
    fn modified(&self, key: &str) -> crate::error::Result<Option<std::time::SystemTime>> {
        self.0.modified(key)
    }
    fn locks(&self) -> &dyn crate::storage::Locks {
        self.0.locks()
    }
}

/// Errors keep their meaning across the storage seam: a full medium under the chunk writes is `StorageFull`, and
/// a refused chunk read inside zarrs comes back as `ReadOnly` naming the level.
#[test]
fn storage_errors_keep_their_meaning_on_any_backend() {
    use crate::storage::{Fault, FaultyStorage};
    let a = array_of(DataType::U16, &[1, 64, 64], 1);
    let mut sp = spec(RasterKind::Image, &["c", "y", "x"]);
    sp.chunk_shape = Some(vec![1, 16, 16]);
    sp.pyramid = Pyramid::Computed(vec![2]);
    let full = Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::new())));
    full.inject(Fault::FullAfter(1000));
    let dir = DataHandle::new(full, "images/img");
    match write_element(&dir, &name("img"), &sp, RasterSource::InMemory(a.clone()), &NoProgress) {
        Err(Error::StorageFull { .. }) => {}
        other => panic!("{other:?}"),
    }
    let mem: Arc<dyn crate::storage::Storage> = Arc::new(MemoryStorage::new());
    write_element(&DataHandle::new(mem.clone(), "images/img"), &name("img"), &sp, RasterSource::InMemory(a), &NoProgress)
        .unwrap();
    let denied = DataHandle::new(Arc::new(DeniedChunkReads(mem)), "images/img");
    match read_region(&denied, &name("img"), 1, None) {
        Err(Error::ReadOnly { path, .. }) => assert!(path.ends_with("images/img/s1"), "{}", path.display()),
        other => panic!("{other:?}"),
    }
}
