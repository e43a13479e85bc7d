//! End-to-end tests of `zarrtx add-points`, `zarrtx add-shapes` and `info` for points and shapes.

mod common;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use common::{element, fails, info, new_store, ok, write_parquet, write_text as write};
use std::sync::Arc;

#[test]
fn points_from_csv_and_parquet_with_info() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let csv = write(dir.path(), "p.csv", "x,y,gene,cell_id\n1.5,2,a,1\n3,4,b,1\n5,6,a,2\n");
    let out = ok(&[&"add-points", &store, &"pts", &csv, &"--feature-key", &"gene", &"--instance-key", &"cell_id",
        &"--transform", &"global=scale:2,2", &"--transform", &"um=translation:1,2"]);
    assert!(out.contains("added points/pts at version 1: 3 points"), "{out}");

    let b = RecordBatch::try_from_iter([
        ("x", Arc::new(Float64Array::from(vec![0.0, 1.0])) as ArrayRef),
        ("y", Arc::new(Float64Array::from(vec![2.0, 3.0]))),
        ("z", Arc::new(Float64Array::from(vec![4.0, 5.0]))),
        ("gene", Arc::new(StringArray::from(vec!["g1", "g2"]))),
    ])
    .unwrap();
    let pq = dir.path().join("p3.parquet");
    write_parquet(&pq, &b);
    ok(&[&"add-points", &store, &"p3", &pq, &"--feature-key", &"gene", &"--transform", &"global=scale:1,1,2"]);

    let i = info(&store);
    let pts = element(&i, "pts");
    assert_eq!(pts["type"], "points");
    assert_eq!(pts["rows"], 3);
    assert_eq!(pts["axes"], serde_json::json!(["x", "y"]));
    assert_eq!(pts["feature_key"], "gene");
    assert_eq!(pts["instance_key"], "cell_id");
    assert_eq!(pts["coordinate_systems"], serde_json::json!(["global", "um"]));
    assert_eq!(pts["transformations"]["global"], "scale:2,2");
    let cols: Vec<&str> = pts["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["x", "y", "gene", "cell_id"]);
    assert!(pts["columns"][2]["dtype"].as_str().unwrap().starts_with("Dictionary"), "{}", pts["columns"][2]);
    let p3 = element(&i, "p3");
    assert_eq!((p3["rows"].as_u64(), p3["axes"].as_array().unwrap().len()), (Some(2), 3));

    let text = ok(&[&"info", &store]);
    assert!(text.contains("points/pts") && text.contains("3 point(s)") && text.contains("feature_key: gene"), "{text}");
    ok(&[&"verify", &store]);
}

#[test]
fn shapes_from_csv_parquet_geojson_and_geoparquet() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let csv = write(dir.path(), "c.csv", "x,y,radius,kind\n1,2,0.5,a\n3,4,1.5,b\n");
    let out = ok(&[&"add-shapes", &store, &"circ", &csv]);
    assert!(out.contains("2 circles"), "{out}");

    let b = RecordBatch::try_from_iter([
        ("x", Arc::new(Float64Array::from(vec![0.0, 1.0, 2.0])) as ArrayRef),
        ("y", Arc::new(Int64Array::from(vec![2, 3, 4]))),
        ("radius", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]))),
    ])
    .unwrap();
    let pq = dir.path().join("c.parquet");
    write_parquet(&pq, &b);
    ok(&[&"add-shapes", &store, &"circ_pq", &pq]);

    let gj = write(
        dir.path(),
        "poly.geojson",
        r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","id":"a","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]},"properties":{"n":1}},
          {"type":"Feature","id":"b","geometry":{"type":"MultiPolygon","coordinates":[[[[0,0],[2,0],[2,2],[0,0]]]]},"properties":{"n":2}}]}"#,
    );
    ok(&[&"add-shapes", &store, &"poly", &gj, &"--transform", &"global=affine:[[2,0,1],[0,2,3]]"]);

    // A GeoParquet file written by zarrtx (as by geopandas) is accepted as input as is.
    let geoparquet = store.join("shapes/poly/shapes.parquet");
    ok(&[&"add-shapes", &store, &"poly_copy", &geoparquet]);

    let i = info(&store);
    assert_eq!(element(&i, "circ")["geometry_types"], serde_json::json!(["Point"]));
    assert_eq!(element(&i, "circ_pq")["rows"], 3);
    let poly = element(&i, "poly");
    assert_eq!(poly["geometry_types"], serde_json::json!(["MultiPolygon", "Polygon"]));
    assert_eq!(poly["transformations"]["global"], "affine:[[2,0,1],[0,2,3]]");
    let copy = element(&i, "poly_copy");
    assert_eq!((copy["rows"].as_u64(), &copy["columns"]), (Some(2), &poly["columns"]));
    let text = ok(&[&"info", &store]);
    assert!(text.contains("2 shape(s), geometry Point (circles)"), "{text}");

    // --overwrite replaces, even across element types.
    let pts = write(dir.path(), "p.csv", "x,y\n1,2\n");
    fails(2, &[&"add-points", &store, &"circ", &pts]);
    ok(&[&"add-points", &store, &"circ", &pts, &"--overwrite"]);
    assert_eq!(element(&info(&store), "circ")["type"], "points");
    ok(&[&"verify", &store]);
}

#[test]
fn bad_inputs_exit_2_and_leave_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = new_store(d);
    ok(&[&"add-points", &store, &"taken", &write(d, "ok.csv", "x,y\n1,2\n")]);
    let version = || info(&store)["version"].as_u64().unwrap();
    let v0 = version();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["add-points".into(), "p".into(), write(d, "noy.csv", "x,z\n1,2\n").display().to_string()], "column 'y' is missing"),
        (vec!["add-points".into(), "p".into(), write(d, "str.csv", "x,y\na,2\n").display().to_string()], "coordinates must be"),
        (vec!["add-points".into(), "p".into(), write(d, "null.csv", "x,y\n1,\n2,3\n").display().to_string()], "null"),
        (vec!["add-points".into(), "p".into(), write(d, "bad.csv", "x,y\n1\n").display().to_string()], "fields"),
        (vec!["add-points".into(), "p".into(), write(d, "p.txt", "x,y\n1,2\n").display().to_string()], "unsupported input"),
        (vec!["add-points".into(), "p".into(), d.join("ok.csv").display().to_string(), "--feature-key".into(), "gene".into()], "feature_key 'gene'"),
        (vec!["add-points".into(), "p".into(), d.join("ok.csv").display().to_string(), "--transform".into(), "global=scale:1,2,3".into()], "axes are x,y"),
        (vec!["add-points".into(), "taken".into(), d.join("ok.csv").display().to_string()], "already exists"),
        (vec!["add-points".into(), "a b".into(), d.join("ok.csv").display().to_string()], "invalid element name"),
        (vec!["add-points".into(), "p".into(), d.join("missing.parquet").display().to_string()], "cannot open"),
        (vec!["add-shapes".into(), "s".into(), write(d, "r0.csv", "x,y,radius\n1,2,0\n").display().to_string()], "radius 0"),
        (vec!["add-shapes".into(), "s".into(), write(d, "rnan.csv", "x,y,radius\n1,2,nan\n").display().to_string()], "radius NaN"),
        (vec!["add-shapes".into(), "s".into(), write(d, "nor.csv", "x,y\n1,2\n").display().to_string()], "column 'radius' is missing"),
        (vec!["add-shapes".into(), "s".into(), write(d, "empty.csv", "x,y,radius\n").display().to_string()], "at least one row"),
        (
            vec!["add-shapes".into(), "s".into(), write(d, "line.geojson", r#"{"type":"LineString","coordinates":[[0,0],[1,1]]}"#).display().to_string()],
            "LineString",
        ),
        (
            vec!["add-shapes".into(), "s".into(), write(d, "open.geojson", r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#).display().to_string()],
            "not closed",
        ),
        (
            vec!["add-shapes".into(), "s".into(), write(d, "mixed.geojson", r#"{"type":"FeatureCollection","features":[
                {"type":"Feature","geometry":{"type":"Point","coordinates":[0,0]},"properties":{"radius":1}},
                {"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]},"properties":{"radius":1}}]}"#).display().to_string()],
            "either circles",
        ),
        (
            vec!["add-shapes".into(), "s".into(), write(d, "norad.geojson", r#"{"type":"Point","coordinates":[0,0]}"#).display().to_string()],
            "no radius",
        ),
        (vec!["add-shapes".into(), "s".into(), write(d, "x.geojson", "{not json").display().to_string()], "not valid JSON"),
    ];
    for (args, needle) in cases {
        let mut full: Vec<String> = vec![args[0].clone(), store.display().to_string()];
        full.extend(args[1..].iter().cloned());
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = full.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        let err = fails(2, &refs);
        assert!(err.contains(needle), "{full:?}: expected '{needle}' in: {err}");
        assert_eq!(version(), v0, "{full:?} changed the store");
    }
    ok(&[&"verify", &store]);
}
