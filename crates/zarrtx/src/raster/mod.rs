//! Raster elements (images and labels): validation, NGFF metadata, writing with zarrs (in memory or streamed),
//! pyramids, and region reads.

pub mod spec;

pub use spec::*;
