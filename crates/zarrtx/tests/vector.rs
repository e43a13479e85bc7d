//! Points and shapes: round trips, spatialdata's attributes, bad input refused with the store unchanged (G9),
//! concurrent adds, overwrites and pinned reads.

mod common;

use arrow_array::types::Int8Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use common::{fingerprint, open};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use zarrtx::{
    AddOptions, ElementType, Error, Geometry, PointsSpec, ShapesData, ShapesIndex, ShapesSpec, Store, Transformation,
};


fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn genes(values: &[&str]) -> ArrayRef {
    Arc::new(values.iter().copied().collect::<DictionaryArray<Int8Type>>())
}

fn points_batches(seed: i64, n: usize) -> Vec<RecordBatch> {
    let mk = |start: usize, len: usize| {
        let x: Vec<f64> = (start..start + len).map(|i| i as f64 * 1.5 + seed as f64).collect();
        let y: Vec<f64> = (start..start + len).map(|i| i as f64 * -0.5).collect();
        let g: Vec<&str> = (start..start + len).map(|i| ["a", "b", "c"][i % 3]).collect();
        let cell: Vec<i64> = (start..start + len).map(|i| (i / 4) as i64 + seed).collect();
        let note: Vec<Option<String>> = (start..start + len).map(|i| (i % 5 != 0).then(|| format!("n{i}"))).collect();
        batch(vec![
            ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
            ("y", Arc::new(Float64Array::from(y))),
            ("gene", genes(&g)),
            ("cell_id", Arc::new(Int64Array::from(cell))),
            ("note", Arc::new(StringArray::from(note))),
        ])
    };
    vec![mk(0, n / 2), mk(n / 2, n - n / 2)]
}

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    let schema = Arc::new(Schema::new(batches[0].schema().fields().clone()));
    let stripped: Vec<RecordBatch> = batches.iter().map(|b| b.clone().with_schema(schema.clone()).unwrap()).collect();
    arrow_select::concat::concat_batches(&schema, &stripped).unwrap()
}

fn gene_spec() -> PointsSpec {
    PointsSpec { feature_key: Some("gene".into()), instance_key: Some("cell_id".into()), ..Default::default() }
}

fn square(x0: f64, y0: f64, s: f64) -> Vec<[f64; 2]> {
    vec![[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s], [x0, y0]]
}

fn circles(seed: usize, n: usize) -> ShapesData {
    ShapesData {
        geometry: (0..n).map(|i| Geometry::Point([i as f64 + seed as f64, 2.0 * i as f64])).collect(),
        radius: Some((0..n).map(|i| 1.0 + i as f64 / 10.0).collect()),
        columns: Some(batch(vec![("area", Arc::new(Int32Array::from_iter_values(0..n as i32)) as ArrayRef)])),
        index: Some(ShapesIndex::Str((0..n).map(|i| format!("cell_{seed}_{i}")).collect())),
    }
}

fn polygons() -> ShapesData {
    let mut with_hole = vec![square(0.0, 0.0, 10.0)];
    with_hole.push(vec![[2.0, 2.0], [2.0, 4.0], [4.0, 4.0], [4.0, 2.0], [2.0, 2.0]]);
    ShapesData {
        geometry: vec![
            Geometry::Polygon(with_hole),
            Geometry::MultiPolygon(vec![vec![square(20.0, 0.0, 1.0)], vec![square(30.0, 0.0, 2.0)]]),
            Geometry::Polygon(vec![vec![[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, 0.0]]]),
        ],
        radius: None,
        columns: None,
        index: Some(ShapesIndex::Int(vec![10, 20, 30])),
    }
}

#[test]
fn points_round_trip_with_spatialdata_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    let input = points_batches(3, 101);
    store.add_points("pts", &input, &gene_spec(), &AddOptions::default()).unwrap();
    let snap = store.snapshot(None).unwrap();
    assert_eq!(concat(&snap.read_points("pts").unwrap()), concat(&input));

    let group = &snap.metadata("pts").unwrap()[""];
    let attrs = &group["attributes"];
    assert_eq!(attrs["encoding-type"], "ngff:points");
    assert_eq!(attrs["axes"], json!(["x", "y"]));
    assert_eq!(attrs["spatialdata_attrs"], json!({"instance_key": "cell_id", "feature_key": "gene", "version": "0.2"}));
    assert_eq!(attrs["coordinateTransformations"][0]["type"], "identity");
    assert_eq!(attrs["coordinateTransformations"][0]["output"]["name"], "global");
    assert_eq!(group["node_type"], "group");
    let installed = dir.path().join("s.zarr/points/pts/points.parquet/part.0.parquet");
    assert!(installed.is_file());

    let info = snap.vector_info("pts").unwrap();
    assert_eq!(info.n_rows, 101);
    assert_eq!(info.element_type, ElementType::Points);
    assert_eq!(info.feature_key.as_deref(), Some("gene"));
    assert_eq!(info.instance_key.as_deref(), Some("cell_id"));
    let cols: Vec<&str> = info.columns.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cols, ["x", "y", "gene", "cell_id", "note"]);
    assert_eq!(info.transformations.get("global"), Some(&Transformation::Identity));
    // The root view lists the element for plain readers.
    let root: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("s.zarr/zarr.json")).unwrap()).unwrap();
    assert!(root["consolidated_metadata"]["metadata"].get("points/pts").is_some());
}

#[test]
fn points_3d_integer_coordinates_transformations_and_empty_elements() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    let b = batch(vec![
        ("x", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
        ("y", Arc::new(Int64Array::from(vec![4, 5, 6]))),
        ("z", Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5]))),
    ]);
    let mut spec = PointsSpec::default();
    spec.transformations.insert("global".into(), Transformation::Scale(vec![2.0, 2.0, 1.0]));
    spec.transformations.insert("aligned".into(), Transformation::Translation(vec![1.0, 2.0, 3.0]));
    store.add_points("p3", std::slice::from_ref(&b), &spec, &AddOptions::default()).unwrap();
    let snap = store.snapshot(None).unwrap();
    assert_eq!(concat(&snap.read_points("p3").unwrap()), b);
    let info = snap.vector_info("p3").unwrap();
    assert_eq!(info.axes, ["x", "y", "z"]);
    assert_eq!(info.transformations, spec.transformations);
    let attrs = &snap.metadata("p3").unwrap()[""]["attributes"];
    assert_eq!(attrs["coordinateTransformations"][0]["input"]["name"], "xyz");
    assert!(attrs["spatialdata_attrs"].get("feature_key").is_none());

    // A tile without points is still an element (dask reads a zero-row part).
    let empty = RecordBatch::new_empty(b.schema());
    store.add_points("none", std::slice::from_ref(&empty), &PointsSpec::default(), &AddOptions::default()).unwrap();
    let back = store.snapshot(None).unwrap().read_points("none").unwrap();
    assert_eq!(back.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    assert_eq!(back[0].schema().fields().len(), 3);
}

#[test]
fn many_batches_become_few_parts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    let batches: Vec<RecordBatch> = (0..300).map(|i| points_batches(i, 10).remove(0)).collect();
    store.add_points("many", &batches, &gene_spec(), &AddOptions::default()).unwrap();
    let snap = store.snapshot(None).unwrap();
    assert_eq!(snap.vector_info("many").unwrap().files, 1);
    assert_eq!(concat(&snap.read_points("many").unwrap()), concat(&batches));
}

#[test]
fn shapes_round_trip_circles_and_polygons() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    let c = circles(1, 7);
    let mut spec = ShapesSpec::default();
    spec.transformations.insert("global".into(), Transformation::Affine(vec![vec![2.0, 0.0, 1.0], vec![0.0, 2.0, 3.0]]));
    store.add_shapes("circ", &c, &spec, &AddOptions::default()).unwrap();
    let p = polygons();
    store.add_shapes("poly", &p, &ShapesSpec::default(), &AddOptions::default()).unwrap();
    let plain = ShapesData { index: None, columns: None, ..circles(2, 3) };
    store.add_shapes("plain", &plain, &ShapesSpec::default(), &AddOptions::default()).unwrap();

    let snap = store.snapshot(None).unwrap();
    assert_eq!(snap.read_shapes("circ").unwrap(), c);
    assert_eq!(snap.read_shapes("poly").unwrap(), p);
    assert_eq!(snap.read_shapes("plain").unwrap(), plain);

    let info = snap.vector_info("circ").unwrap();
    assert_eq!((info.n_rows, info.geometry_types.clone()), (7, vec!["Point".to_string()]));
    assert_eq!(info.transformations, spec.transformations);
    let cols: Vec<&str> = info.columns.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cols, ["geometry", "radius", "area"]);
    let info = snap.vector_info("poly").unwrap();
    assert_eq!(info.geometry_types, ["MultiPolygon", "Polygon"]);
    let attrs = &snap.metadata("poly").unwrap()[""]["attributes"];
    assert_eq!(attrs["encoding-type"], "ngff:shapes");
    assert_eq!(attrs["spatialdata_attrs"], json!({"version": "0.3"}));
    assert!(dir.path().join("s.zarr/shapes/poly/shapes.parquet").is_file());

    // Wrong-type reads are refused with a clear error.
    assert!(matches!(snap.read_points("circ"), Err(Error::InvalidElement { .. })));
    assert!(matches!(snap.read_shapes("missing"), Err(Error::ElementNotFound { .. })));
}

#[test]
fn overwrite_changes_type_and_pinned_snapshots_keep_reading_the_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    let pts = points_batches(5, 20);
    store.add_points("thing", &pts, &gene_spec(), &AddOptions::default()).unwrap();
    let old = store.snapshot(None).unwrap();
    let e = store.add_shapes("THING", &circles(0, 2), &ShapesSpec::default(), &AddOptions::default()).unwrap_err();
    assert!(matches!(e, Error::ElementExists { .. }), "{e}");
    store
        .add_shapes("thing", &circles(0, 2), &ShapesSpec::default(), &AddOptions { overwrite: true, ..Default::default() })
        .unwrap();
    let new = store.snapshot(None).unwrap();
    assert_eq!(new.element("thing").unwrap().element_type, ElementType::Shapes);
    assert_eq!(new.read_shapes("thing").unwrap(), circles(0, 2));
    assert_eq!(concat(&old.read_points("thing").unwrap()), concat(&pts));
    store.delete("thing").unwrap();
    assert_eq!(concat(&old.read_points("thing").unwrap()), concat(&pts));
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn points_and_shapes_live_entirely_in_memory_storage() {
    use zarrtx::storage::{MemoryStorage, Storage};
    use zarrtx::OpenOptions;
    let storage = Arc::new(MemoryStorage::new());
    let store = Store::open_with_storage(storage.clone(), &OpenOptions::default()).unwrap();
    let pts = points_batches(4, 33);
    store.add_points("pts", &pts, &gene_spec(), &AddOptions::default()).unwrap();
    let c = circles(3, 5);
    store.add_shapes("circ", &c, &ShapesSpec::default(), &AddOptions::default()).unwrap();
    store.add_shapes("poly", &polygons(), &ShapesSpec::default(), &AddOptions::default()).unwrap();
    let snap = store.snapshot(None).unwrap();

    assert_eq!(concat(&snap.read_points("pts").unwrap()), concat(&pts));
    assert_eq!(snap.read_shapes("circ").unwrap(), c);
    assert_eq!(snap.read_shapes("poly").unwrap(), polygons());
    let info = snap.vector_info("pts").unwrap();
    assert_eq!((info.n_rows, info.files), (33, 1));
    assert_eq!(snap.vector_info("poly").unwrap().geometry_types, ["MultiPolygon", "Polygon"]);

    // Part by part, and as raw bytes: what the Python layer reads.
    let parts = snap.points_parts("pts").unwrap();
    assert_eq!(parts, ["points.parquet/part.0.parquet"]);
    assert_eq!(concat(&snap.read_points_part("pts", &parts[0]).unwrap()), concat(&pts));
    assert!(matches!(snap.read_points_part("pts", "points.parquet/part.9.parquet"), Err(Error::InvalidElement { .. })));
    let bytes = snap.read_element_file("circ", "shapes.parquet", None).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    assert_eq!(snap.element_file_size("circ", "shapes.parquet").unwrap(), bytes.len() as u64);
    let n = bytes.len() as u64;
    assert_eq!(snap.read_element_file("circ", "shapes.parquet", Some(n - 4..n + 10)).unwrap(), b"PAR1");
    assert!(matches!(snap.read_element_file("circ", "../pts/zarr.json", None), Err(Error::InvalidElement { .. })));
    let backwards = std::ops::Range { start: 9, end: 3 };
    assert!(matches!(snap.read_element_file("circ", "shapes.parquet", Some(backwards)), Err(Error::InvalidElement { .. })));
    assert!(matches!(snap.read_element_file("circ", "nothing.parquet", None), Err(Error::Io { .. })));

    // Installed where spatialdata expects the files, in the memory backend.
    assert!(storage.size("points/pts/points.parquet/part.0.parquet").unwrap().is_some());
    assert!(storage.size("shapes/circ/shapes.parquet").unwrap().is_some());
    assert!(storage.size("shapes/circ/zarr.json").unwrap().is_some());

    // An overwrite moves the old generation to the trash; the pinned snapshot keeps reading it.
    store
        .add_points("circ", &pts, &PointsSpec::default(), &AddOptions { overwrite: true, ..Default::default() })
        .unwrap();
    assert_eq!(snap.read_shapes("circ").unwrap(), c);
    assert_eq!(snap.read_element_file("circ", "shapes.parquet", None).unwrap(), bytes);
    assert_eq!(concat(&store.snapshot(None).unwrap().read_points("circ").unwrap()), concat(&pts));
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

fn expect_refused_points(store: &Store, batches: &[RecordBatch], spec: &PointsSpec, needle: &str) {
    let before = fingerprint(store.root());
    let e = store.add_points("bad_pts", batches, spec, &AddOptions::default()).expect_err(needle);
    assert_eq!(before, fingerprint(store.root()), "{needle}: the store changed");
    match &e {
        Error::InvalidElement { name, reason } => {
            assert_eq!(name, "bad_pts");
            assert!(reason.contains(needle), "expected '{needle}' in: {reason}");
        }
        other => panic!("{needle}: {other}"),
    }
}

#[test]
fn bad_points_are_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    store.add_points("ok", &points_batches(0, 4), &gene_spec(), &AddOptions::default()).unwrap();
    let f = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
    let xy = |x: ArrayRef, y: ArrayRef| batch(vec![("x", x), ("y", y)]);
    let d = PointsSpec::default();
    expect_refused_points(&store, &[], &d, "no data");
    expect_refused_points(&store, &[batch(vec![("x", f(vec![1.0]))])], &d, "column 'y' is missing");
    expect_refused_points(&store, &[batch(vec![("y", f(vec![1.0]))])], &d, "column 'x' is missing");
    let s: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
    expect_refused_points(&store, &[xy(s, f(vec![1.0]))], &d, "coordinates must be int32, int64, float32 or float64");
    let z = batch(vec![("x", f(vec![1.0])), ("y", f(vec![1.0])), ("z", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)]);
    expect_refused_points(&store, &[z], &d, "column 'z' has type");
    let nully: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), None]));
    expect_refused_points(&store, &[xy(f(vec![1.0, 2.0]), nully)], &d, "null");
    let b1 = xy(f(vec![1.0]), f(vec![2.0]));
    let b2 = xy(Arc::new(Int64Array::from(vec![1])), f(vec![2.0]));
    expect_refused_points(&store, &[b1.clone(), b2], &d, "same columns");
    let missing_key = PointsSpec { feature_key: Some("gene".into()), ..Default::default() };
    expect_refused_points(&store, std::slice::from_ref(&b1), &missing_key, "feature_key 'gene' is not a column");
    let numeric_feature = PointsSpec { feature_key: Some("x".into()), ..Default::default() };
    expect_refused_points(&store, std::slice::from_ref(&b1), &numeric_feature, "categorical");
    let missing_instance = PointsSpec { instance_key: Some("cell".into()), ..Default::default() };
    expect_refused_points(&store, std::slice::from_ref(&b1), &missing_instance, "instance_key 'cell' is not a column");
    let mut bad_t = PointsSpec::default();
    bad_t.transformations.insert("global".into(), Transformation::Scale(vec![1.0, 2.0, 3.0]));
    expect_refused_points(&store, std::slice::from_ref(&b1), &bad_t, "one value per axis");
    let mut nan_t = PointsSpec::default();
    nan_t.transformations.insert("global".into(), Transformation::Translation(vec![f64::NAN, 0.0]));
    expect_refused_points(&store, std::slice::from_ref(&b1), &nan_t, "NaN");
    let dup = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("y", DataType::Float64, false),
            Field::new("x", DataType::Float64, false),
        ])),
        vec![f(vec![1.0]), f(vec![1.0]), f(vec![1.0])],
    )
    .unwrap();
    expect_refused_points(&store, &[dup], &d, "appears twice");
    // Invalid names and taken names are refused too, with the store unchanged.
    let before = fingerprint(store.root());
    assert!(matches!(store.add_points("a b", std::slice::from_ref(&b1), &d, &AddOptions::default()), Err(Error::InvalidName { .. })));
    assert!(matches!(store.add_points("OK", &[b1], &d, &AddOptions::default()), Err(Error::ElementExists { .. })));
    assert_eq!(before, fingerprint(store.root()));
}

fn expect_refused_shapes(store: &Store, data: &ShapesData, spec: &ShapesSpec, needle: &str) {
    let before = fingerprint(store.root());
    let e = store.add_shapes("bad_shapes", data, spec, &AddOptions::default()).expect_err(needle);
    assert_eq!(before, fingerprint(store.root()), "{needle}: the store changed");
    match &e {
        Error::InvalidElement { name, reason } => {
            assert_eq!(name, "bad_shapes");
            assert!(reason.contains(needle), "expected '{needle}' in: {reason}");
        }
        other => panic!("{needle}: {other}"),
    }
}

#[test]
fn bad_shapes_are_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    store.add_shapes("ok", &circles(0, 3), &ShapesSpec::default(), &AddOptions::default()).unwrap();
    let d = ShapesSpec::default();
    let poly = |rings: Vec<Vec<[f64; 2]>>| ShapesData { geometry: vec![Geometry::Polygon(rings)], ..Default::default() };
    expect_refused_shapes(&store, &ShapesData::default(), &d, "at least one row");
    let mixed = ShapesData {
        geometry: vec![Geometry::Point([0.0, 0.0]), Geometry::Polygon(vec![square(0.0, 0.0, 1.0)])],
        radius: Some(vec![1.0, 1.0]),
        ..Default::default()
    };
    expect_refused_shapes(&store, &mixed, &d, "either circles");
    let no_radius = ShapesData { radius: None, ..circles(0, 2) };
    expect_refused_shapes(&store, &no_radius, &d, "no radius");
    for (r, what) in [(0.0, "zero"), (-1.0, "negative"), (f64::NAN, "NaN"), (f64::INFINITY, "inf")] {
        let bad = ShapesData { radius: Some(vec![1.0, r]), ..circles(0, 2) };
        let before = fingerprint(store.root());
        let e = store.add_shapes("bad_shapes", &bad, &d, &AddOptions::default()).expect_err(what);
        assert!(e.to_string().contains("row 1: radius"), "{what}: {e}");
        assert_eq!(before, fingerprint(store.root()));
    }
    expect_refused_shapes(&store, &ShapesData { radius: Some(vec![1.0]), ..circles(0, 2) }, &d, "1 radii for 2 circles");
    let with_radius = ShapesData { radius: Some(vec![1.0]), ..poly(vec![square(0.0, 0.0, 1.0)]) };
    expect_refused_shapes(&store, &with_radius, &d, "only for circles");
    let mut open_ring = square(0.0, 0.0, 1.0);
    open_ring.pop();
    expect_refused_shapes(&store, &poly(vec![open_ring]), &d, "not closed");
    expect_refused_shapes(&store, &poly(vec![vec![[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]), &d, "at least 4");
    expect_refused_shapes(&store, &poly(vec![vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, 0.0]]]), &d, "degenerate");
    expect_refused_shapes(&store, &poly(vec![]), &d, "no rings");
    let bad_hole = poly(vec![square(0.0, 0.0, 4.0), vec![[1.0, 1.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]]]);
    expect_refused_shapes(&store, &bad_hole, &d, "hole 1");
    let multi = ShapesData { geometry: vec![Geometry::MultiPolygon(vec![])], ..Default::default() };
    expect_refused_shapes(&store, &multi, &d, "multipolygon is empty");
    let nan = ShapesData { geometry: vec![Geometry::Point([f64::NAN, 0.0])], radius: Some(vec![1.0]), ..Default::default() };
    expect_refused_shapes(&store, &nan, &d, "NaN or infinite");
    let short_cols = ShapesData {
        columns: Some(batch(vec![("a", Arc::new(Int32Array::from(vec![1])) as ArrayRef)])),
        ..circles(0, 2)
    };
    expect_refused_shapes(&store, &short_cols, &d, "1 rows but there are 2");
    let reserved = ShapesData {
        columns: Some(batch(vec![("radius", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef)])),
        ..circles(0, 2)
    };
    expect_refused_shapes(&store, &reserved, &d, "reserved");
    let bad_index = ShapesData { index: Some(ShapesIndex::Int(vec![1])), ..circles(0, 2) };
    expect_refused_shapes(&store, &bad_index, &d, "index has 1 labels");
    let mut bad_t = ShapesSpec::default();
    bad_t.transformations.insert("global".into(), Transformation::Affine(vec![vec![1.0, 0.0]]));
    expect_refused_shapes(&store, &circles(0, 2), &bad_t, "affine");
}

#[test]
fn sixteen_threads_add_points_and_shapes_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.zarr");
    let store = open(&path);
    std::thread::scope(|s| {
        for t in 0..16usize {
            let store = store.clone();
            s.spawn(move || {
                let name = format!("el_{t}");
                let r = if t % 2 == 0 {
                    store.add_points(&name, &points_batches(t as i64, 50 + t), &gene_spec(), &AddOptions::default())
                } else {
                    store.add_shapes(&name, &circles(t, 5 + t), &ShapesSpec::default(), &AddOptions::default())
                };
                r.unwrap();
            });
        }
    });
    // A fresh handle (as another process would open) sees every element with its exact data.
    let store = open(&path);
    let snap = store.snapshot(None).unwrap();
    assert_eq!(snap.elements().len(), 16);
    for t in 0..16usize {
        let name = format!("el_{t}");
        if t % 2 == 0 {
            assert_eq!(concat(&snap.read_points(&name).unwrap()), concat(&points_batches(t as i64, 50 + t)), "{name}");
        } else {
            assert_eq!(snap.read_shapes(&name).unwrap(), circles(t, 5 + t), "{name}");
        }
    }
    let root: serde_json::Value = serde_json::from_slice(&std::fs::read(path.join("zarr.json")).unwrap()).unwrap();
    let listed: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(root["consolidated_metadata"]["metadata"].clone()).unwrap();
    for t in 0..16usize {
        let key = format!("{}/el_{t}", if t % 2 == 0 { "points" } else { "shapes" });
        assert!(listed.contains_key(&key), "{key} missing from the root view");
    }
    assert!(store.verify().unwrap().problems.is_empty());
}
