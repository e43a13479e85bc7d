//! `Store::append_outer_join`: rows with a different schema are joined by rewriting the table; retyped columns
//! are refused with the store unchanged.

mod common;

use arrow_array::types::Int8Type;
use arrow_array::{Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, Int8Array, RecordBatch, StringArray};
use common::*;
use ndarray::Array2;
use std::collections::BTreeMap;
use std::sync::Arc;
use zarrtx::table::{Annotation, Matrix, TableData};
use zarrtx::{Error, RasterArray};

/// `n` rows for `region`, ids `first..first+n`, over variables `g0..g{vars}`; X[i, j] = id * 10 + j.
/// `extra` adds an obs column `score` (f64); `area_as_int` stores `area` as int32 instead of float64.
fn rows(region: &str, first: i32, n: usize, vars: usize, extra: bool, area_as_int: bool) -> TableData {
    let ids: Vec<i32> = (first..first + n as i32).collect();
    let index: Vec<String> = ids.iter().map(|i| format!("{region}-{i}")).collect();
    let keys = Int8Array::from(vec![0i8; n]);
    let region_col = DictionaryArray::<Int8Type>::try_new(keys, Arc::new(StringArray::from(vec![region]))).unwrap();
    let area: ArrayRef = if area_as_int {
        Arc::new(Int32Array::from(ids.clone()))
    } else {
        Arc::new(Float64Array::from(ids.iter().map(|&i| i as f64 * 0.5).collect::<Vec<_>>()))
    };
    let mut cols = vec![
        ("cell", Arc::new(StringArray::from(index)) as ArrayRef),
        ("region", Arc::new(region_col) as ArrayRef),
        ("instance_id", Arc::new(Int32Array::from(ids.clone())) as ArrayRef),
        ("area", area),
    ];
    if extra {
        cols.push(("score", Arc::new(Float64Array::from(ids.iter().map(|&i| i as f64 + 0.25).collect::<Vec<_>>())) as ArrayRef));
    }
    let obs = RecordBatch::try_from_iter(cols).unwrap();
    let var = RecordBatch::try_from_iter(vec![(
        "gene",
        Arc::new(StringArray::from((0..vars).map(|j| format!("g{j}")).collect::<Vec<_>>())) as ArrayRef,
    )])
    .unwrap();
    let x = Array2::from_shape_fn((n, vars), |(r, j)| (ids[r] * 10 + j as i32) as f32).into_dyn();
    TableData {
        obs,
        obs_index: "cell".into(),
        var,
        var_index: "gene".into(),
        x: Some(Matrix::Dense(RasterArray::F32(x))),
        layers: BTreeMap::new(),
        obsm: BTreeMap::new(),
        varm: BTreeMap::new(),
        uns: BTreeMap::new(),
        annotation: Some(Annotation { region: vec![region.into()], region_key: "region".into(), instance_key: "instance_id".into() }),
    }
}

#[test]
fn outer_join_adds_columns_and_variables_and_keeps_old_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    store.add_table("cells", &rows("r0", 0, 10, 5, false, false), &Default::default()).unwrap();
    let new = rows("r1", 0, 4, 7, true, false);
    assert!(matches!(store.append("cells", &new), Err(Error::InvalidElement { .. })), "plain append stays strict");
    let before = store.version().unwrap();
    let old_snapshot = store.snapshot(Some(before)).unwrap().read_table("cells").unwrap();

    store.append_outer_join("cells", &new).unwrap();
    assert_eq!(store.version().unwrap(), before + 1);
    let t = store.snapshot(None).unwrap().read_table("cells").unwrap();
    assert_eq!(t.n_obs(), 14);
    assert_eq!(t.n_vars(), 7);
    let genes = t.var.column_by_name("gene").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
    assert_eq!((0..7).map(|j| genes.value(j).to_string()).collect::<Vec<_>>(), (0..7).map(|j| format!("g{j}")).collect::<Vec<_>>());
    let score = t.obs.column_by_name("score").expect("new column joined");
    let score = score.as_any().downcast_ref::<Float64Array>().unwrap();
    for r in 0..10 {
        // Float nulls are stored as NaN by anndata's encoding.
        assert!(score.is_null(r) || score.value(r).is_nan(), "row {r} has no score");
    }
    for r in 10..14 {
        assert_eq!(score.value(r), (r - 10) as f64 + 0.25);
    }
    let area = t.obs.column_by_name("area").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
    assert_eq!(area.value(3), 1.5);
    let Some(Matrix::Dense(RasterArray::F32(x))) = &t.x else { panic!("X is dense float32") };
    assert_eq!(x.shape(), [14, 7]);
    for r in 0..10 {
        for j in 0..5 {
            assert_eq!(x[[r, j]], (r * 10 + j) as f32, "old value at ({r}, {j}) preserved");
        }
        assert_eq!(x[[r, 5]], 0.0);
        assert_eq!(x[[r, 6]], 0.0);
    }
    for r in 0..4 {
        for j in 0..7 {
            assert_eq!(x[[10 + r, j]], (r * 10 + j) as f32);
        }
    }
    let a = t.annotation.as_ref().unwrap();
    assert_eq!(a.region, vec!["r0".to_string(), "r1".to_string()]);
    // Readers pinned to the old version still read the old generation.
    assert_eq!(store.snapshot(Some(before)).unwrap().read_table("cells").unwrap(), old_snapshot);
    // Duplicate instance ids within a region are still refused.
    let dup = rows("r1", 2, 2, 7, true, false);
    assert!(matches!(store.append_outer_join("cells", &dup), Err(Error::InvalidElement { .. })));
    assert_eq!(store.version().unwrap(), before + 1);
}

#[test]
fn outer_join_refuses_a_retyped_column_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    store.add_table("cells", &rows("r0", 0, 10, 5, false, false), &Default::default()).unwrap();
    let before = store.version().unwrap();
    match store.append_outer_join("cells", &rows("r1", 0, 4, 5, false, true)) {
        Err(Error::InvalidElement { reason, .. }) => assert!(reason.contains("'area'"), "{reason}"),
        other => panic!("expected InvalidElement, got {other:?}"),
    }
    assert_eq!(store.version().unwrap(), before);
    assert_eq!(store.snapshot(None).unwrap().read_table("cells").unwrap().n_obs(), 10);
}

#[test]
fn outer_join_on_a_missing_table_adds_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    store.append_outer_join("t", &rows("r0", 0, 3, 2, true, false)).unwrap();
    assert_eq!(store.snapshot(None).unwrap().read_table("t").unwrap().n_obs(), 3);
}
