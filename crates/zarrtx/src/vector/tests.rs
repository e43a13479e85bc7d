//! Points and shapes on a [`DataHandle`] over memory: every byte goes through the storage.

use super::points::{self, PointsSpec, DASK_INDEX, PART_ROWS};
use super::shapes::{self, Geometry, ShapesData, ShapesIndex, ShapesSpec};
use crate::name::{ElementName, ElementType};
use crate::storage::{DataHandle, MemoryStorage, Storage};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use std::sync::Arc;

fn handle() -> (Arc<MemoryStorage>, DataHandle) {
    let storage = Arc::new(MemoryStorage::new());
    let handle = DataHandle::new(storage.clone(), "staging/t1");
    (storage, handle)
}

fn xy(start: usize, n: usize) -> RecordBatch {
    let x: Vec<f64> = (start..start + n).map(|i| i as f64).collect();
    let y: Vec<f64> = (start..start + n).map(|i| -(i as f64)).collect();
    RecordBatch::try_from_iter([
        ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
        ("y", Arc::new(Float64Array::from(y)) as ArrayRef),
    ])
    .unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[test]
fn points_are_written_part_by_part_and_read_back_in_part_order() {
    let (storage, h) = handle();
    let name = ElementName::new("p").unwrap();
    // Batches are gathered into a part until it holds PART_ROWS rows; the full part is stored before the next opens.
    let half = PART_ROWS / 2;
    let input = [xy(0, half), xy(half, half + 5), xy(2 * half + 5, 3)];
    let total = 2 * half + 8;
    let tree = points::write_element(&h, &name, &input, &PointsSpec::default(), true).unwrap();
    assert_eq!(tree[""]["attributes"]["encoding-type"], "ngff:points");
    let keys: Vec<String> = storage.list_recursive("staging/t1").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "staging/t1/points.parquet/part.0.parquet",
            "staging/t1/points.parquet/part.1.parquet",
            "staging/t1/zarr.json"
        ]
    );
    let parts = points::part_files(&h).unwrap();
    assert_eq!(parts, ["points.parquet/part.0.parquet", "points.parquet/part.1.parquet"]);
    let first = points::read_part(&h, &parts[0]).unwrap();
    assert_eq!(rows(&first), 2 * half + 5);
    assert!(first[0].schema().column_with_name(DASK_INDEX).is_none(), "the dask index is dropped");
    let second = points::read_part(&h, &parts[1]).unwrap();
    assert_eq!(rows(&second), 3);
    let x = second[0].column(0).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(x.value(0), (2 * half + 5) as f64);
    assert_eq!(rows(&points::read_element(&h).unwrap()), total);
    // The dask index (the row number) continues across parts.
    let raw = h.read("points.parquet/part.1.parquet").unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(raw))
        .unwrap()
        .build()
        .unwrap();
    let b = reader.map(Result::unwrap).next().unwrap();
    let index = b.column_by_name(DASK_INDEX).unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(index.values().to_vec(), [(2 * half + 5) as i64, (2 * half + 6) as i64, (2 * half + 7) as i64]);

    let info = super::describe(ElementType::Points, &h, &tree).unwrap();
    assert_eq!((info.n_rows, info.files), (total as u64, 2));
    assert_eq!(info.columns, [("x".to_string(), "Float64".to_string()), ("y".into(), "Float64".into())]);
}

#[test]
fn part_files_sort_by_number_and_accept_a_single_file() {
    let (_, h) = handle();
    let name = ElementName::new("p").unwrap();
    points::write_element(&h, &name, &[xy(0, 4)], &PointsSpec::default(), false).unwrap();
    let part = h.read("points.parquet/part.0.parquet").unwrap();
    for extra in ["part.10.parquet", "part.2.parquet", "other.parquet", "_metadata", ".hidden.parquet", "_common.parquet"] {
        h.put_private(&format!("points.parquet/{extra}"), &part).unwrap();
    }
    assert_eq!(
        points::part_files(&h).unwrap(),
        [
            "points.parquet/part.0.parquet",
            "points.parquet/part.2.parquet",
            "points.parquet/part.10.parquet",
            "points.parquet/other.parquet"
        ]
    );
    assert_eq!(rows(&points::read_element(&h).unwrap()), 16);

    // A points element whose data is one Parquet file (not a dask directory).
    let (_, single) = handle();
    single.put_private("points.parquet", &part).unwrap();
    assert_eq!(points::part_files(&single).unwrap(), ["points.parquet"]);
    assert_eq!(rows(&points::read_element(&single).unwrap()), 4);

    // No data at all: an I/O error naming it.
    let (_, empty) = handle();
    let err = points::part_files(&empty).unwrap_err();
    assert!(err.to_string().contains("points.parquet"), "{err}");
}

#[test]
fn shapes_round_trip_through_memory_and_a_damaged_file_is_named() {
    let (storage, h) = handle();
    let name = ElementName::new("s").unwrap();
    let data = ShapesData {
        geometry: vec![Geometry::Point([1.0, 2.0]), Geometry::Point([3.0, 4.0])],
        radius: Some(vec![0.5, 1.5]),
        columns: Some(
            RecordBatch::try_from_iter([("area", Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef)]).unwrap(),
        ),
        index: Some(ShapesIndex::Str(vec!["a".into(), "b".into()])),
    };
    let tree = shapes::write_element(&h, &name, &data, &ShapesSpec::default(), true).unwrap();
    assert_eq!(shapes::read_element(&h).unwrap(), data);
    let stored = storage.get("staging/t1/shapes.parquet").unwrap().unwrap();
    assert_eq!(shapes::read_geoparquet(bytes::Bytes::from(stored)).unwrap(), data);
    assert_eq!(h.read_json("zarr.json").unwrap(), tree[""]);

    let info = super::describe(ElementType::Shapes, &h, &tree).unwrap();
    assert_eq!((info.n_rows, info.files), (2, 1));
    assert_eq!(info.geometry_types, ["Point"]);
    let cols: Vec<&str> = info.columns.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cols, ["geometry", "radius", "area"]);

    // A damaged file is reported as corrupt, naming it.
    h.put_private("shapes.parquet", b"not parquet").unwrap();
    let err = shapes::read_element(&h).unwrap_err();
    assert!(matches!(err, crate::Error::CorruptMetadata { .. }) && err.to_string().contains("shapes.parquet"), "{err}");
    let err = super::describe(ElementType::Shapes, &h, &tree).unwrap_err();
    assert!(err.to_string().contains("shapes.parquet"), "{err}");
}
