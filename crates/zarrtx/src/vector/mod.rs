//! Points and shapes elements (spatialdata's Parquet-backed element types): validation against spatialdata 0.8's
//! models, writing the element tree (dask-style part files for points, one GeoParquet file for shapes, and the
//! group `zarr.json` with spatialdata's attributes), reading back, and describing.
//!
//! Everything goes through a [`DataHandle`](crate::storage::DataHandle) on the element's data (staging area,
//! installed place or trash): Parquet is encoded into memory and stored with `put_private` (points one part at a
//! time), read back from the object's bytes, and described from its footer (byte-range reads); no local paths.
//!
//! The store-level entry points are `Store::add_points`, `Store::add_shapes`, `Snapshot::read_points`,
//! `Snapshot::points_parts`, `Snapshot::read_points_part`, `Snapshot::read_shapes` and `Snapshot::vector_info`.

pub mod info;
pub mod points;
pub mod shapes;
pub mod wkb;

mod common;

pub use info::{describe, VectorInfo};
pub use points::PointsSpec;
pub use shapes::{Geometry, ShapesData, ShapesIndex, ShapesKind, ShapesSpec};

#[cfg(test)]
mod tests;
