//! What a caller says about a raster element (image or labels): its data, axes, chunking, codecs, pyramid,
//! channel names and coordinate transformations. Validation against spatialdata's rules lives in
//! `raster::validate`.

use crate::transform::Transformation;
use ndarray::ArrayD;
use std::collections::BTreeMap;

/// Whether a raster element is an image or a label mask: decides the type group, allowed axes and dtypes,
/// and how pyramid levels are computed (mean for images, mode for labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RasterKind {
    /// An image: axes `c,y,x` or `c,z,y,x`, any numeric dtype.
    Image,
    /// A label mask: axes `y,x` or `z,y,x`, integer dtype.
    Labels,
}

/// Numeric element types a raster may hold (Zarr v3 `data_type` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `bool`
    Bool,
    /// `uint8`
    U8,
    /// `uint16`
    U16,
    /// `uint32`
    U32,
    /// `uint64`
    U64,
    /// `int8`
    I8,
    /// `int16`
    I16,
    /// `int32`
    I32,
    /// `int64`
    I64,
    /// `float32`
    F32,
    /// `float64`
    F64,
}

impl DataType {
    /// The Zarr v3 `data_type` name.
    pub fn zarr_name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U8 => "uint8",
            DataType::U16 => "uint16",
            DataType::U32 => "uint32",
            DataType::U64 => "uint64",
            DataType::I8 => "int8",
            DataType::I16 => "int16",
            DataType::I32 => "int32",
            DataType::I64 => "int64",
            DataType::F32 => "float32",
            DataType::F64 => "float64",
        }
    }

    /// Parses a Zarr v3 `data_type` name.
    pub fn from_zarr_name(s: &str) -> Option<Self> {
        Some(match s {
            "bool" => DataType::Bool,
            "uint8" => DataType::U8,
            "uint16" => DataType::U16,
            "uint32" => DataType::U32,
            "uint64" => DataType::U64,
            "int8" => DataType::I8,
            "int16" => DataType::I16,
            "int32" => DataType::I32,
            "int64" => DataType::I64,
            "float32" => DataType::F32,
            "float64" => DataType::F64,
            _ => return None,
        })
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
        }
    }

    /// True for integer and boolean types (the only ones spatialdata accepts for labels).
    pub fn is_integer(self) -> bool {
        !matches!(self, DataType::F32 | DataType::F64)
    }
}

/// Serialized as its Zarr v3 `data_type` name.
impl serde::Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.zarr_name())
    }
}

/// Parsed from its Zarr v3 `data_type` name.
impl<'de> serde::Deserialize<'de> for DataType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        DataType::from_zarr_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown data type '{name}'")))
    }
}

/// An n-dimensional array of one of the supported element types, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum RasterArray {
    /// `bool` data.
    Bool(ArrayD<bool>),
    /// `uint8` data.
    U8(ArrayD<u8>),
    /// `uint16` data.
    U16(ArrayD<u16>),
    /// `uint32` data.
    U32(ArrayD<u32>),
    /// `uint64` data.
    U64(ArrayD<u64>),
    /// `int8` data.
    I8(ArrayD<i8>),
    /// `int16` data.
    I16(ArrayD<i16>),
    /// `int32` data.
    I32(ArrayD<i32>),
    /// `int64` data.
    I64(ArrayD<i64>),
    /// `float32` data.
    F32(ArrayD<f32>),
    /// `float64` data.
    F64(ArrayD<f64>),
}

/// Applies `$body` to the typed array inside a [`RasterArray`], binding it as `$a`.
#[macro_export]
macro_rules! with_raster_array {
    ($value:expr, $a:ident => $body:expr) => {
        match $value {
            $crate::raster::RasterArray::Bool($a) => $body,
            $crate::raster::RasterArray::U8($a) => $body,
            $crate::raster::RasterArray::U16($a) => $body,
            $crate::raster::RasterArray::U32($a) => $body,
            $crate::raster::RasterArray::U64($a) => $body,
            $crate::raster::RasterArray::I8($a) => $body,
            $crate::raster::RasterArray::I16($a) => $body,
            $crate::raster::RasterArray::I32($a) => $body,
            $crate::raster::RasterArray::I64($a) => $body,
            $crate::raster::RasterArray::F32($a) => $body,
            $crate::raster::RasterArray::F64($a) => $body,
        }
    };
}

impl RasterArray {
    /// The element type.
    pub fn data_type(&self) -> DataType {
        match self {
            RasterArray::Bool(_) => DataType::Bool,
            RasterArray::U8(_) => DataType::U8,
            RasterArray::U16(_) => DataType::U16,
            RasterArray::U32(_) => DataType::U32,
            RasterArray::U64(_) => DataType::U64,
            RasterArray::I8(_) => DataType::I8,
            RasterArray::I16(_) => DataType::I16,
            RasterArray::I32(_) => DataType::I32,
            RasterArray::I64(_) => DataType::I64,
            RasterArray::F32(_) => DataType::F32,
            RasterArray::F64(_) => DataType::F64,
        }
    }

    /// The shape, outermost axis first.
    pub fn shape(&self) -> Vec<u64> {
        with_raster_array!(self, a => a.shape().iter().map(|&d| d as u64).collect())
    }
}

/// Compression applied to every chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Compression {
    /// No compression (`bytes` codec only).
    None,
    /// Zstandard at the given level (spatialdata's default is level 0).
    Zstd {
        /// Compression level; 0 means zstd's default.
        level: i32,
    },
    /// Blosc with the given inner compressor (`lz4`, `zstd`, `blosclz`, `zlib`), level 0–9 and byte shuffle.
    Blosc {
        /// Inner compressor name.
        cname: String,
        /// Level 0–9.
        clevel: u8,
        /// Apply byte shuffle.
        shuffle: bool,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd { level: 0 }
    }
}

/// How the pyramid (the multiscale levels) is obtained.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Pyramid {
    /// Only the full-resolution level.
    #[default]
    Single,
    /// Levels computed from the full resolution: each entry is the downscale factor of that level relative to
    /// the previous one along the spatial axes (`y,x` and `z` when present); mean for images, mode for labels.
    Computed(Vec<u64>),
    /// Levels 1, 2, ... given by the caller, in order (e.g. the `scale1`, `scale2`, ... nodes of a spatialdata
    /// multiscale `DataTree`), stored verbatim as `s1`, `s2`, ... next to level 0, which still comes from the
    /// [`RasterSource`]. Every level must have level 0's dtype and axes, keep the `c` axis unchanged, and be no
    /// larger than the previous level along every spatial axis and strictly smaller along at least one.
    /// Non-integer ratios (e.g. 101 → 51) are allowed: each level's NGFF `scale` is the ratio of level 0's shape
    /// to the level's shape per axis, as spatialdata writes it. An empty list writes a single level.
    Given(Vec<RasterArray>),
}

/// Everything about a raster element except its pixel data.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterSpec {
    /// Image or labels.
    pub kind: RasterKind,
    /// Axis names in order: `["c","y","x"]`, `["c","z","y","x"]`, `["y","x"]` or `["z","y","x"]`.
    pub dims: Vec<String>,
    /// Channel names for images (one per entry of the `c` axis); `None` writes `"0","1",...`.
    pub channel_names: Option<Vec<String>>,
    /// Chunk shape of the full-resolution level; `None` picks a default (all channels × up to 1024² pixels).
    pub chunk_shape: Option<Vec<u64>>,
    /// Shard shape (a multiple of the chunk shape); `None` writes plain chunks.
    pub shard_shape: Option<Vec<u64>>,
    /// Chunk compression.
    pub compression: Compression,
    /// The pyramid to write.
    pub pyramid: Pyramid,
    /// Transformations from the element's intrinsic system to named coordinate systems; empty means
    /// `{"global": Identity}`.
    pub transformations: BTreeMap<String, Transformation>,
}

impl RasterSpec {
    /// A spec with spatialdata's defaults for `kind` and `dims`: zstd level 0, a single level, identity into
    /// `global`, default chunking.
    pub fn new(kind: RasterKind, dims: &[&str]) -> Self {
        RasterSpec {
            kind,
            dims: dims.iter().map(|d| d.to_string()).collect(),
            channel_names: None,
            chunk_shape: None,
            shard_shape: None,
            compression: Compression::default(),
            pyramid: Pyramid::Single,
            transformations: BTreeMap::new(),
        }
    }
}

/// One block of a raster streamed from an iterator: `data` placed at `offset` in the full-resolution array.
#[derive(Debug, Clone)]
pub struct RasterBlock {
    /// Position of the block's first element, one entry per axis.
    pub offset: Vec<u64>,
    /// The block's values.
    pub data: RasterArray,
}

/// Where the pixels of a new raster element come from.
pub enum RasterSource<'a> {
    /// The whole full-resolution array in memory.
    InMemory(RasterArray),
    /// Blocks of a larger-than-memory array. Blocks must not overlap and, together, should cover the array
    /// (uncovered regions read as the fill value 0). Each block is written as it arrives.
    Blocks {
        /// Shape of the full-resolution array.
        shape: Vec<u64>,
        /// Element type of every block.
        data_type: DataType,
        /// The blocks.
        blocks: Box<dyn Iterator<Item = crate::error::Result<RasterBlock>> + Send + 'a>,
    },
}

impl RasterSource<'_> {
    /// Shape of the full-resolution array.
    pub fn shape(&self) -> Vec<u64> {
        match self {
            RasterSource::InMemory(a) => a.shape(),
            RasterSource::Blocks { shape, .. } => shape.clone(),
        }
    }

    /// Element type of the data.
    pub fn data_type(&self) -> DataType {
        match self {
            RasterSource::InMemory(a) => a.data_type(),
            RasterSource::Blocks { data_type, .. } => *data_type,
        }
    }
}
