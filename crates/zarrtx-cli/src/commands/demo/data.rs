//! The demo's synthetic data, the same in the worker that writes it and in the parent that checks it: per worker
//! and element a 3-channel image and a labels element of discs ("cells"), the cells' table rows, points inside the
//! cells and one circle per cell.

use super::names::labels_name;
use ndarray::{Array3, ArrayD, IxDyn};
use std::collections::BTreeMap;
use zarrtx::table::{Annotation, Matrix, TableData};
use zarrtx::{Geometry, Pyramid, RasterArray, RasterKind, RasterSpec, ShapesData, ShapesIndex};

/// Points each worker adds (fewer only when its labels hold fewer labelled pixels than this).
pub const POINTS_PER_WORKER: usize = 300;

/// The gene names of the demo's points (the categorical `gene` column).
pub const GENES: [&str; 4] = ["ACTB", "GAPDH", "CD3E", "MKI67"];

/// The rows worker `worker` appends for its `k`-th labels element: one per cell (label id), region = the labels
/// element, instance id = the label id, the cell's area in pixels, and X = the mean of each image channel over it.
pub fn cell_rows(worker: usize, k: usize, labels: &ArrayD<i32>, image: &Array3<u16>) -> TableData {
    use arrow_array::types::Int32Type;
    use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let mut stats: BTreeMap<i32, (u64, [f64; 3])> = BTreeMap::new();
    for ((y, x), &id) in labels.view().into_dimensionality::<ndarray::Ix2>().expect("2-D labels").indexed_iter() {
        if id != 0 {
            let e = stats.entry(id).or_insert((0, [0.0; 3]));
            e.0 += 1;
            for c in 0..3 {
                e.1[c] += image[[c, y, x]] as f64;
            }
        }
    }
    let region = labels_name(worker, k);
    let n = stats.len();
    let ids: Vec<i32> = stats.keys().copied().collect();
    let keys = Int32Array::from(vec![0; n]);
    let region_col = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(vec![region.as_str()])))
        .expect("valid dictionary");
    let obs = RecordBatch::try_from_iter(vec![
        ("cell", Arc::new(StringArray::from(ids.iter().map(|i| format!("{region}_{i}")).collect::<Vec<_>>())) as ArrayRef),
        ("region", Arc::new(region_col) as ArrayRef),
        ("instance_id", Arc::new(Int32Array::from(ids.clone())) as ArrayRef),
        ("area", Arc::new(Float64Array::from(stats.values().map(|s| s.0 as f64).collect::<Vec<_>>())) as ArrayRef),
        ("worker", Arc::new(Int32Array::from(vec![worker as i32; n])) as ArrayRef),
    ])
    .expect("consistent columns");
    let var = RecordBatch::try_from_iter(vec![(
        "channel",
        Arc::new(StringArray::from(vec!["gradient", "checker", "rings"])) as ArrayRef,
    )])
    .expect("one column");
    let means: Vec<f32> = stats.values().flat_map(|(a, sums)| sums.map(|v| (v / *a as f64) as f32)).collect();
    let mut t = TableData::new(obs, "cell", var, "channel");
    t.x = Some(Matrix::Dense(RasterArray::F32(ArrayD::from_shape_vec(IxDyn(&[n, 3]), means).expect("n × 3"))));
    t.annotation = Some(Annotation { region: vec![region], region_key: "region".into(), instance_key: "instance_id".into() });
    t
}

/// Worker `worker`'s synthetic points: up to [`POINTS_PER_WORKER`] points at deterministic pseudo-random
/// labelled pixels of `labels`, columns `x`, `y` (float64, pixel centres plus jitter), `gene` (categorical, one of
/// [`GENES`]) and `cell_id` (int32, the label id under the point).
pub fn synthetic_points(worker: usize, labels: &ArrayD<i32>) -> arrow_array::RecordBatch {
    use arrow_array::types::Int32Type;
    use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let inside: Vec<(usize, usize, i32)> = labels
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .expect("2-D labels")
        .indexed_iter()
        .filter(|(_, &id)| id != 0)
        .map(|((y, x), &id)| (y, x, id))
        .collect();
    let n = POINTS_PER_WORKER.min(inside.len());
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ ((worker as u64 + 1) << 20);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut xs, mut ys, mut genes, mut ids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (y, x, id) = inside[(next() % inside.len() as u64) as usize];
        let jitter = |r: u64| (r % 1000) as f64 / 1000.0;
        xs.push(x as f64 + jitter(next()));
        ys.push(y as f64 + jitter(next()));
        // Each cell favours one gene, so the data has some structure.
        genes.push(if next() % 4 == 0 { (next() % GENES.len() as u64) as i32 } else { id % GENES.len() as i32 });
        ids.push(id);
    }
    let gene = DictionaryArray::<Int32Type>::try_new(Int32Array::from(genes), Arc::new(StringArray::from(GENES.to_vec())))
        .expect("valid dictionary");
    RecordBatch::try_from_iter(vec![
        ("x", Arc::new(Float64Array::from(xs)) as ArrayRef),
        ("y", Arc::new(Float64Array::from(ys)) as ArrayRef),
        ("gene", Arc::new(gene) as ArrayRef),
        ("cell_id", Arc::new(Int32Array::from(ids)) as ArrayRef),
    ])
    .expect("consistent columns")
}

/// One circle per cell of `labels`: centred on the cell's centroid, radius `sqrt(area / π)` (so > 0), indexed by
/// the label id.
pub fn cell_circles(labels: &ArrayD<i32>) -> ShapesData {
    let mut stats: BTreeMap<i32, (f64, f64, f64)> = BTreeMap::new();
    for ((y, x), &id) in labels.view().into_dimensionality::<ndarray::Ix2>().expect("2-D labels").indexed_iter() {
        if id != 0 {
            let e = stats.entry(id).or_insert((0.0, 0.0, 0.0));
            e.0 += 1.0;
            e.1 += x as f64 + 0.5;
            e.2 += y as f64 + 0.5;
        }
    }
    ShapesData {
        geometry: stats.values().map(|&(a, sx, sy)| Geometry::Point([sx / a, sy / a])).collect(),
        radius: Some(stats.values().map(|&(a, _, _)| (a / std::f64::consts::PI).sqrt()).collect()),
        columns: None,
        index: Some(ShapesIndex::Int(stats.keys().map(|&id| id as i64).collect())),
    }
}

/// The label ids present in `labels` (excluding background 0), sorted.
pub fn label_ids(labels: &ArrayD<i32>) -> Vec<i64> {
    let set: std::collections::BTreeSet<i64> = labels.iter().filter(|&&v| v != 0).map(|&v| v as i64).collect();
    set.into_iter().collect()
}

/// A synthetic 3-channel `uint16` image: a diagonal gradient, a checkerboard shifted per worker, and rings.
pub fn synthetic_image(worker: usize, k: usize, size: usize) -> Array3<u16> {
    let s = size as f64;
    Array3::from_shape_fn((3, size, size), |(c, y, x)| match c {
        0 => ((x + y) as f64 / (2.0 * s) * 65535.0) as u16,
        1 => {
            if ((x / 32) + (y / 32) + worker).is_multiple_of(2) {
                40000
            } else {
                2000
            }
        }
        _ => {
            let (dy, dx) = (y as f64 - s / 2.0, x as f64 - s / 2.0);
            let d = (dx * dx + dy * dy).sqrt();
            (((d / (6.0 + k as f64)).sin() + 1.0) * 30000.0) as u16
        }
    })
}

/// Synthetic `int32` labels: one disc ("cell") per 64-pixel cell of a grid, radius and position jittered
/// deterministically per worker and element, ids unique within the element; background 0.
pub fn synthetic_labels(worker: usize, k: usize, size: usize) -> ArrayD<i32> {
    const CELL: usize = 64;
    let per_row = size.div_ceil(CELL);
    let hash = |a: usize| -> usize {
        let mut h = (a as u64 ^ ((worker as u64) << 32) ^ ((k as u64) << 48)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        (h % 1024) as usize
    };
    ArrayD::from_shape_fn(IxDyn(&[size, size]), |idx| {
        let (y, x) = (idx[0], idx[1]);
        let (cy, cx) = (y / CELL, x / CELL);
        let cell = cy * per_row + cx;
        let h = hash(cell);
        let radius = 12 + (h % 16) as i64;
        let centre_y = (cy * CELL + CELL / 2) as i64 + (h % 9) as i64 - 4;
        let centre_x = (cx * CELL + CELL / 2) as i64 + ((h / 9) % 9) as i64 - 4;
        let (dy, dx) = (y as i64 - centre_y, x as i64 - centre_x);
        if dy * dy + dx * dx <= radius * radius {
            cell as i32 + 1
        } else {
            0
        }
    })
}

/// Worker `worker`'s `k`-th element of `kind` and its pixels: a 3-channel `uint16` image (`c,y,x`, channels
/// gradient, checker, rings) or `int32` labels (`y,x`), both with one computed pyramid level.
pub fn raster_element(kind: RasterKind, worker: usize, k: usize, size: usize) -> (RasterSpec, RasterArray) {
    match kind {
        RasterKind::Image => {
            let mut spec = RasterSpec::new(kind, &["c", "y", "x"]);
            spec.channel_names = Some(vec!["gradient".into(), "checker".into(), "rings".into()]);
            spec.pyramid = Pyramid::Computed(vec![2]);
            (spec, RasterArray::U16(synthetic_image(worker, k, size).into_dyn()))
        }
        RasterKind::Labels => {
            let mut spec = RasterSpec::new(kind, &["y", "x"]);
            spec.pyramid = Pyramid::Computed(vec![2]);
            (spec, RasterArray::I32(synthetic_labels(worker, k, size)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::demo::names::DEMO_TABLE;
    use zarrtx::{PointsSpec, ShapesSpec};

    #[test]
    fn synthetic_data_shapes_and_content() {
        let img = synthetic_image(1, 0, 64);
        assert_eq!(img.shape(), &[3, 64, 64]);
        assert!(img.iter().any(|&v| v > 30000));
        let lab = synthetic_labels(2, 1, 130);
        assert_eq!(lab.shape(), &[130, 130]);
        let max = *lab.iter().max().unwrap();
        assert!(max >= 4, "expected several blobs, got max id {max}");
        assert_eq!(lab[[0, 0]], 0, "background in the corner");
        assert_ne!(synthetic_labels(2, 1, 130), synthetic_labels(3, 1, 130));
        let rows = cell_rows(2, 1, &lab, &synthetic_image(2, 1, 130));
        assert_eq!(rows.n_obs() as usize, label_ids(&lab).len());
        assert_eq!(rows.n_vars(), 3);
        zarrtx::table::validate(&zarrtx::ElementName::new(DEMO_TABLE).unwrap(), &rows).unwrap();
        let lab = synthetic_labels(1, 0, 512);
        let pts = synthetic_points(1, &lab);
        assert_eq!(pts.num_rows(), POINTS_PER_WORKER);
        let spec = PointsSpec { feature_key: Some("gene".into()), instance_key: Some("cell_id".into()), ..Default::default() };
        zarrtx::vector::points::validate(&zarrtx::ElementName::new("w01_points").unwrap(), std::slice::from_ref(&pts), &spec).unwrap();
        let ids = pts.column_by_name("cell_id").unwrap().as_any().downcast_ref::<arrow_array::Int32Array>().unwrap();
        let xs = pts.column_by_name("x").unwrap().as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
        let ys = pts.column_by_name("y").unwrap().as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
        for r in 0..pts.num_rows() {
            assert_eq!(lab[[ys.value(r) as usize, xs.value(r) as usize]], ids.value(r), "point {r} in its cell");
        }
        let circles = cell_circles(&lab);
        assert_eq!(circles.geometry.len(), label_ids(&lab).len());
        assert!(circles.radius.as_ref().unwrap().iter().all(|&r| r > 0.0));
        zarrtx::vector::shapes::validate(&zarrtx::ElementName::new("w01_cells").unwrap(), &circles, &ShapesSpec::default())
            .unwrap();
    }
}
