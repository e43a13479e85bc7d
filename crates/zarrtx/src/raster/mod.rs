//! Raster elements (images and labels): validation, NGFF metadata, writing with zarrs (in memory or streamed),
//! pyramids, and region reads.

pub mod info;
pub mod metadata;
pub mod read;
pub mod settings;
pub mod spec;
pub mod validate;
pub mod write;

pub(crate) mod array_meta;
mod downsample;
mod level_writer;
pub(crate) mod levels;
pub(crate) mod planned;
mod pixel;
mod pyramid;
mod region;
mod stream;
pub(crate) mod zarr_io;

pub use info::{describe, LevelInfo, RasterInfo};
pub use levels::default_chunk_shape;
pub use read::read_region;
pub use settings::{default_dims, CompressionSyntaxError};
pub use spec::*;
pub use validate::validate;
pub use write::{write_element, write_element_with, WriteOptions, DEFAULT_MEMORY_LIMIT};

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_given;
