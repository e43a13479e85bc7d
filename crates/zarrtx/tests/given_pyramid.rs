//! `Pyramid::Given` through the store: caller-given lower levels are committed verbatim and read back bit-exactly
//! at every level; bad levels are refused with `InvalidElement` and the store stays exactly as it was.

mod common;

use common::*;
use ndarray::ArrayD;
use zarrtx::{AddOptions, DataType, Error, Pyramid, RasterArray, RasterBlock, RasterKind, RasterSource, RasterSpec};

fn u16_image(shape: &[usize], seed: u16) -> RasterArray {
    let mut k = 0u16;
    RasterArray::U16(ArrayD::from_shape_fn(shape.to_vec(), |_| {
        k = k.wrapping_mul(31).wrapping_add(seed);
        k
    }))
}

#[test]
fn given_levels_are_committed_verbatim_and_read_back_at_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));

    let levels = [u16_image(&[2, 45, 64], 1), u16_image(&[2, 23, 32], 2), u16_image(&[2, 11, 16], 3)];
    let mut spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    spec.chunk_shape = Some(vec![1, 16, 16]);
    spec.pyramid = Pyramid::Given(levels[1..].to_vec());
    store.add_raster("img", &spec, RasterSource::InMemory(levels[0].clone()), &AddOptions::default()).unwrap();

    // Labels with level 0 streamed in two blocks.
    let lab: Vec<RasterArray> = [vec![30usize, 20], vec![15, 10], vec![7, 5]]
        .iter()
        .enumerate()
        .map(|(i, s)| RasterArray::I32(labels_data(&format!("lab{i}"), 30).slice_move(ndarray::s![..s[0], ..s[1]]).into_dyn()))
        .collect();
    let RasterArray::I32(l0) = &lab[0] else { unreachable!() };
    let blocks = vec![
        Ok(RasterBlock { offset: vec![0, 0], data: RasterArray::I32(l0.slice(ndarray::s![..13, ..]).to_owned().into_dyn()) }),
        Ok(RasterBlock { offset: vec![13, 0], data: RasterArray::I32(l0.slice(ndarray::s![13.., ..]).to_owned().into_dyn()) }),
    ];
    let mut lspec = labels_spec();
    lspec.chunk_shape = Some(vec![8, 8]);
    lspec.pyramid = Pyramid::Given(lab[1..].to_vec());
    let source = RasterSource::Blocks { shape: vec![30, 20], data_type: DataType::I32, blocks: Box::new(blocks.into_iter()) };
    store.add_raster("lab", &lspec, source, &AddOptions::default()).unwrap();

    let snap = store.snapshot(None).unwrap();
    for (el, want) in [("img", &levels[..]), ("lab", &lab[..])] {
        for (k, level) in want.iter().enumerate() {
            assert_eq!(&snap.read_raster(el, k, None).unwrap(), level, "{el} level {k}");
        }
        let info = snap.raster_info(el).unwrap();
        assert_eq!(info.levels.len(), want.len(), "{el}");
        let group = &snap.metadata(el).unwrap()[""];
        let ds = group["attributes"]["ome"]["multiscales"][0]["datasets"].as_array().unwrap().clone();
        let s0 = want[0].shape();
        for (k, level) in want.iter().enumerate() {
            let ratio: Vec<f64> = s0.iter().zip(level.shape()).map(|(&a, b)| a as f64 / b as f64).collect();
            assert_eq!(ds[k]["coordinateTransformations"][0]["scale"], serde_json::json!(ratio), "{el} level {k}");
        }
    }
    // 45 / 23 is not an integer: the scale is the real ratio, as spatialdata writes it.
    let ds = &snap.metadata("img").unwrap()[""]["attributes"]["ome"]["multiscales"][0]["datasets"];
    assert_eq!(ds[1]["coordinateTransformations"][0]["scale"], serde_json::json!([1.0, 45.0 / 23.0, 2.0]));
}

#[test]
fn bad_given_levels_leave_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    add_labels(&store, "existing", 16, false).unwrap();
    let l0 = u16_image(&[3, 20, 20], 1);
    let cases: Vec<(Vec<RasterArray>, &str)> = vec![
        (vec![RasterArray::U8(ArrayD::zeros(vec![3, 10, 10]))], "holds uint8"),
        (vec![u16_image(&[10, 10], 2)], "2 dimensions"),
        (vec![u16_image(&[2, 10, 10], 2)], "channel axis 'c'"),
        (vec![u16_image(&[3, 10, 10], 2), u16_image(&[3, 11, 5], 3)], "larger than level 1 along axis 'y'"),
        (vec![u16_image(&[3, 10, 10], 2), u16_image(&[3, 10, 10], 3)], "same shape"),
    ];
    for (given, needle) in cases {
        let mut spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
        spec.pyramid = Pyramid::Given(given);
        let before = fingerprint(store.root());
        let err = store.add_raster("img", &spec, RasterSource::InMemory(l0.clone()), &AddOptions::default()).unwrap_err();
        assert_eq!(before, fingerprint(store.root()), "{needle}: the store changed");
        match err {
            Error::InvalidElement { name, reason } => {
                assert_eq!(name, "img");
                assert!(reason.contains(needle), "{reason:?} does not contain {needle:?}");
            }
            other => panic!("{needle}: {other}"),
        }
    }
    assert_eq!(store.version().unwrap(), 1);
    assert!(store.snapshot(None).unwrap().raster_info("img").is_err());
}
