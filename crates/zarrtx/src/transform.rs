//! SpatialData coordinate transformations, and their JSON form (the NGFF-like dialect spatialdata 0.8 reads).
//! Serialization to and from JSON lives in `transform_json` (see `crate::raster::metadata`).

/// A transformation from an element's intrinsic coordinate system to a target coordinate system.
/// Vectors and matrices are over the element's axes (for rasters including `c`, with factor 1 / offset 0).
#[derive(Debug, Clone, PartialEq)]
pub enum Transformation {
    /// No change.
    Identity,
    /// Multiply each axis by a factor (one per axis).
    Scale(Vec<f64>),
    /// Add an offset to each axis (one per axis).
    Translation(Vec<f64>),
    /// An affine map: an `n_out × (n_in + 1)` matrix without the homogeneous last row.
    Affine(Vec<Vec<f64>>),
    /// Several transformations applied in order.
    Sequence(Vec<Transformation>),
}
