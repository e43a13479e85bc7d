//! Loading raster input files (`.npy`, `.tif`/`.tiff`) into the engine's [`RasterSource`], with axis (`--dims`)
//! inference and conformance.
//!
//! The flow is: read the file's shape and dtype, decide the dims (given with `--dims`, or inferred from the number
//! of dimensions), check that the file's shape fits them (a 2-D image gains a leading `c` axis of length 1), and
//! produce either the whole array in memory or, for `.npy` files larger than [`stream_threshold`], a stream of
//! blocks read from the file as the engine consumes them.

pub mod csv;
pub mod geojson;
pub mod npy;
pub mod tiff;
pub mod vector;

use crate::cli_error::{CliError, CliResult};
use ndarray::{ArrayD, Axis};
use std::path::Path;
use zarrtx::{DataType, RasterArray, RasterBlock, RasterKind, RasterSource};

/// `.npy` files whose data is larger than this many bytes are streamed block by block instead of loaded whole.
pub const DEFAULT_STREAM_THRESHOLD: u64 = 256 * 1024 * 1024;

/// Target size of one streamed block, in bytes.
pub const STREAM_BLOCK_BYTES: u64 = 64 * 1024 * 1024;

/// The streaming threshold in bytes: [`DEFAULT_STREAM_THRESHOLD`], unless the environment variable
/// `ZARRTX_STREAM_THRESHOLD_BYTES` overrides it (used by tests to exercise streaming with small files).
pub fn stream_threshold() -> u64 {
    std::env::var("ZARRTX_STREAM_THRESHOLD_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_STREAM_THRESHOLD)
}

/// The axis layouts a raster element may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dims {
    /// Image: channel, y, x.
    Cyx,
    /// Image: channel, z, y, x.
    Czyx,
    /// Labels: y, x.
    Yx,
    /// Labels: z, y, x.
    Zyx,
}

impl Dims {
    /// The axis names, outermost first.
    pub fn axes(self) -> &'static [&'static str] {
        match self {
            Dims::Cyx => &["c", "y", "x"],
            Dims::Czyx => &["c", "z", "y", "x"],
            Dims::Yx => &["y", "x"],
            Dims::Zyx => &["z", "y", "x"],
        }
    }

    /// Number of axes.
    pub fn ndim(self) -> usize {
        self.axes().len()
    }

    /// True when the first axis is the channel axis.
    pub fn has_channel(self) -> bool {
        matches!(self, Dims::Cyx | Dims::Czyx)
    }

    /// The layout with these axis names, if it is one of the four.
    pub fn of_axes(axes: &[&str]) -> Option<Dims> {
        [Dims::Cyx, Dims::Czyx, Dims::Yx, Dims::Zyx].into_iter().find(|d| d.axes() == axes)
    }

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Dims::Cyx => "cyx",
            Dims::Czyx => "czyx",
            Dims::Yx => "yx",
            Dims::Zyx => "zyx",
        }
    }

    /// Checks that these dims are allowed for `kind` (images: `cyx`/`czyx`; labels: `yx`/`zyx`).
    pub fn check_kind(self, kind: RasterKind) -> CliResult<()> {
        match (kind, self.has_channel()) {
            (RasterKind::Image, true) | (RasterKind::Labels, false) => Ok(()),
            (RasterKind::Image, false) => Err(CliError::usage(format!(
                "--dims {} is for labels; images take --dims cyx or czyx (use add-labels for label masks)",
                self.as_str()
            ))),
            (RasterKind::Labels, true) => Err(CliError::usage(format!(
                "--dims {} is for images; labels take --dims yx or zyx (use add-image for images)",
                self.as_str()
            ))),
        }
    }
}

/// The default dims for an input with `ndim` dimensions: the engine's ([`zarrtx::raster::default_dims`]: images
/// 3-D → `cyx`, 4-D → `czyx`; labels 2-D → `yx`, 3-D → `zyx`), and `cyx` for a 2-D image (a channel axis of 1 is
/// added).
pub fn infer_dims(kind: RasterKind, ndim: usize, input: &Path) -> CliResult<Dims> {
    let with_channel = if kind == RasterKind::Image && ndim == 2 { 3 } else { ndim };
    if let Some(axes) = zarrtx::raster::default_dims(kind, with_channel) {
        return Ok(Dims::of_axes(axes).expect("the engine's default dims are one of the four layouts"));
    }
    Err(CliError::usage(match kind {
        RasterKind::Image => {
            format!("{} has {ndim} dimensions; an image needs 2 (y,x), 3 (c,y,x) or 4 (c,z,y,x)", input.display())
        }
        RasterKind::Labels => format!("{} has {ndim} dimensions; labels need 2 (y,x) or 3 (z,y,x)", input.display()),
    }))
}

/// How a file's shape maps onto the element's dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conform {
    /// The file's axes are the element's axes.
    Same,
    /// The element has a leading channel axis of length 1 that the file lacks.
    AddChannel,
}

/// Decides how a file of `shape` fits `dims`, or explains why it does not. With `explicit` dims (given with
/// `--dims`) the file must have exactly that many dimensions; inferred image dims add a channel axis to 2-D data.
pub fn conform(shape: &[u64], dims: Dims, explicit: bool, input: &Path) -> CliResult<Conform> {
    if shape.len() == dims.ndim() {
        Ok(Conform::Same)
    } else if !explicit && dims.has_channel() && shape.len() + 1 == dims.ndim() {
        Ok(Conform::AddChannel)
    } else {
        Err(CliError::usage(format!(
            "{} has shape {shape:?} ({} dimensions) but --dims {} needs {} dimensions{}",
            input.display(),
            shape.len(),
            dims.as_str(),
            dims.ndim(),
            if dims.has_channel() && shape.len() + 1 == dims.ndim() {
                "; omit --dims to add a channel axis of length 1, or save the array with one"
            } else {
                ""
            }
        )))
    }
}

/// The element shape for a file of `shape` conformed by `c`.
pub fn conformed_shape(shape: &[u64], c: Conform) -> Vec<u64> {
    match c {
        Conform::Same => shape.to_vec(),
        Conform::AddChannel => std::iter::once(1).chain(shape.iter().copied()).collect(),
    }
}

/// Inserts a leading axis of length 1 into `a`.
pub fn insert_leading_axis(a: RasterArray) -> RasterArray {
    macro_rules! ins {
        ($($v:ident),*) => {
            match a { $(RasterArray::$v(x) => RasterArray::$v(x.insert_axis(Axis(0))),)* }
        };
    }
    ins!(Bool, U8, U16, U32, U64, I8, I16, I32, I64, F32, F64)
}

/// Primitive element types the loaders decode: converts raw bytes and wraps typed arrays.
pub trait Elem: Copy + Send + Sync + 'static {
    /// Size in bytes.
    const SIZE: usize;
    /// The engine data type.
    const DATA_TYPE: DataType;
    /// Decodes one value from `SIZE` bytes, big- or little-endian.
    fn from_bytes(b: &[u8], big_endian: bool) -> Self;
    /// Wraps a typed array in the matching [`RasterArray`] variant.
    fn wrap(a: ArrayD<Self>) -> RasterArray;
}

macro_rules! impl_elem {
    ($t:ty, $dt:ident) => {
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const DATA_TYPE: DataType = DataType::$dt;
            #[inline]
            fn from_bytes(b: &[u8], big_endian: bool) -> Self {
                let arr: [u8; std::mem::size_of::<$t>()] = b.try_into().expect("caller passes SIZE bytes");
                if big_endian {
                    <$t>::from_be_bytes(arr)
                } else {
                    <$t>::from_le_bytes(arr)
                }
            }
            fn wrap(a: ArrayD<Self>) -> RasterArray {
                RasterArray::$dt(a)
            }
        }
    };
}
impl_elem!(u8, U8);
impl_elem!(u16, U16);
impl_elem!(u32, U32);
impl_elem!(u64, U64);
impl_elem!(i8, I8);
impl_elem!(i16, I16);
impl_elem!(i32, I32);
impl_elem!(i64, I64);
impl_elem!(f32, F32);
impl_elem!(f64, F64);

impl Elem for bool {
    const SIZE: usize = 1;
    const DATA_TYPE: DataType = DataType::Bool;
    #[inline]
    fn from_bytes(b: &[u8], _big_endian: bool) -> Self {
        b[0] != 0
    }
    fn wrap(a: ArrayD<Self>) -> RasterArray {
        RasterArray::Bool(a)
    }
}

/// A raster input ready for the engine, with the dims it was conformed to.
pub struct LoadedInput {
    /// The pixels, in memory or streamed.
    pub source: RasterSource<'static>,
    /// The element's dims.
    pub dims: Dims,
    /// True when the data is streamed from the file in blocks.
    pub streamed: bool,
}

/// Loads `input` (`.npy`, `.tif`, `.tiff`) as a raster of `kind`, with `dims` if given (else inferred).
/// `chunks` (in element axes) is used to align streamed blocks to the element's chunk grid.
pub fn load_input(
    input: &Path,
    kind: RasterKind,
    dims: Option<Dims>,
    chunks: Option<&[u64]>,
) -> CliResult<LoadedInput> {
    if let Some(d) = dims {
        d.check_kind(kind)?;
    }
    let ext = input
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => load_npy(input, kind, dims, chunks),
        "tif" | "tiff" => {
            let array = tiff::load(input, dims)?;
            let shape = array.shape();
            // The TIFF loader already arranged pages and samples for explicit dims.
            let (dims, explicit) = match dims {
                Some(d) => (d, true),
                None => (infer_dims(kind, shape.len(), input)?, false),
            };
            let array = match conform(&shape, dims, explicit, input)? {
                Conform::Same => array,
                Conform::AddChannel => insert_leading_axis(array),
            };
            Ok(LoadedInput {
                source: RasterSource::InMemory(array),
                dims,
                streamed: false,
            })
        }
        _ => Err(CliError::usage(format!(
            "{}: unsupported input format; give a .npy, .tif or .tiff file",
            input.display()
        ))),
    }
}

fn load_npy(input: &Path, kind: RasterKind, dims: Option<Dims>, chunks: Option<&[u64]>) -> CliResult<LoadedInput> {
    let info = npy::NpyInfo::open(input)?;
    let (dims, explicit) = match dims {
        Some(d) => (d, true),
        None => (infer_dims(kind, info.shape.len(), input)?, false),
    };
    let c = conform(&info.shape, dims, explicit, input)?;
    if info.data_bytes() <= stream_threshold() {
        let mut array = info.load()?;
        if c == Conform::AddChannel {
            array = insert_leading_axis(array);
        }
        return Ok(LoadedInput {
            source: RasterSource::InMemory(array),
            dims,
            streamed: false,
        });
    }
    // Chunk shape in the file's axes, used to align blocks to the element's chunk grid.
    let element_shape = conformed_shape(&info.shape, c);
    let element_chunks: Vec<u64> = match chunks {
        Some(ch) if ch.len() == element_shape.len() => ch.to_vec(),
        _ => {
            let axes: Vec<String> = dims.axes().iter().map(|a| a.to_string()).collect();
            zarrtx::raster::default_chunk_shape(&axes, &element_shape)
        }
    };
    let file_chunks: Vec<u64> = match c {
        Conform::Same => element_chunks,
        Conform::AddChannel => element_chunks[1..].to_vec(),
    };
    let data_type = info.data_type;
    let blocks = info.blocks(&file_chunks, STREAM_BLOCK_BYTES)?;
    let blocks: Box<dyn Iterator<Item = zarrtx::Result<RasterBlock>> + Send> = match c {
        Conform::Same => Box::new(blocks),
        Conform::AddChannel => Box::new(blocks.map(|b| {
            b.map(|mut b| {
                b.offset.insert(0, 0);
                b.data = insert_leading_axis(b.data);
                b
            })
        })),
    };
    Ok(LoadedInput {
        source: RasterSource::Blocks {
            shape: element_shape,
            data_type,
            blocks,
        },
        dims,
        streamed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_inference_from_ndim() {
        let p = Path::new("in.npy");
        assert_eq!(infer_dims(RasterKind::Image, 2, p).unwrap(), Dims::Cyx);
        assert_eq!(infer_dims(RasterKind::Image, 3, p).unwrap(), Dims::Cyx);
        assert_eq!(infer_dims(RasterKind::Image, 4, p).unwrap(), Dims::Czyx);
        assert_eq!(infer_dims(RasterKind::Labels, 2, p).unwrap(), Dims::Yx);
        assert_eq!(infer_dims(RasterKind::Labels, 3, p).unwrap(), Dims::Zyx);
        for (kind, n) in [(RasterKind::Image, 1), (RasterKind::Image, 5), (RasterKind::Labels, 4)] {
            let e = infer_dims(kind, n, p).unwrap_err();
            assert_eq!(e.code, 2);
            assert!(e.message.contains("in.npy"), "{}", e.message);
        }
    }

    #[test]
    fn conform_adds_channel_only_for_images() {
        let p = Path::new("x.npy");
        assert_eq!(conform(&[5, 6], Dims::Cyx, false, p).unwrap(), Conform::AddChannel);
        assert_eq!(conform(&[2, 5, 6], Dims::Cyx, false, p).unwrap(), Conform::Same);
        assert_eq!(conform(&[2, 5, 6], Dims::Cyx, true, p).unwrap(), Conform::Same);
        assert_eq!(conform(&[5, 6], Dims::Yx, true, p).unwrap(), Conform::Same);
        assert!(conform(&[5, 6], Dims::Zyx, false, p).is_err());
        assert!(conform(&[1, 2, 5, 6], Dims::Cyx, false, p).is_err());
        // Explicit dims must match the file exactly.
        let e = conform(&[5, 6], Dims::Cyx, true, p).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("omit --dims"), "{}", e.message);
        assert!(conform(&[4, 5, 6], Dims::Czyx, true, p).is_err());
        assert_eq!(conformed_shape(&[5, 6], Conform::AddChannel), vec![1, 5, 6]);
    }

    #[test]
    fn dims_must_match_kind() {
        assert!(Dims::Cyx.check_kind(RasterKind::Image).is_ok());
        assert!(Dims::Zyx.check_kind(RasterKind::Labels).is_ok());
        assert_eq!(Dims::Yx.check_kind(RasterKind::Image).unwrap_err().code, 2);
        assert_eq!(Dims::Czyx.check_kind(RasterKind::Labels).unwrap_err().code, 2);
    }

    #[test]
    fn unsupported_extension_is_usage_error() {
        let e = load_input(Path::new("data.png"), RasterKind::Image, None, None)
            .err()
            .unwrap();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("data.png"));
    }
}

#[cfg(test)]
mod corrupt_input_tests {
    use super::*;
    use npyz::WriterBuilder;

    /// Deterministic byte mutations of valid files never make the loaders panic: they load or return an error.
    #[test]
    fn corrupt_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let npy_path = dir.path().join("ok.npy");
        {
            let mut w = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&[2, 3, 4])
                .writer(std::io::BufWriter::new(std::fs::File::create(&npy_path).unwrap()))
                .begin_nd()
                .unwrap();
            w.extend(0..24u16).unwrap();
            w.finish().unwrap();
        }
        let tif_path = dir.path().join("ok.tif");
        {
            let mut enc = ::tiff::encoder::TiffEncoder::new(std::fs::File::create(&tif_path).unwrap()).unwrap();
            enc.write_image::<::tiff::encoder::colortype::RGB8>(4, 3, &[7u8; 36])
                .unwrap();
        }
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (src, ext) in [(&npy_path, "npy"), (&tif_path, "tif")] {
            let good = std::fs::read(src).unwrap();
            for round in 0..300 {
                let mut bytes = good.clone();
                match round % 3 {
                    0 => {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] = next() as u8;
                    }
                    1 => bytes.truncate((next() as usize) % bytes.len()),
                    _ => {
                        for _ in 0..4 {
                            let at = (next() as usize) % bytes.len();
                            bytes[at] = b"0123456789(),'<>|:"[(next() as usize) % 18];
                        }
                    }
                }
                let p = dir.path().join(format!("m{round}.{ext}"));
                std::fs::write(&p, &bytes).unwrap();
                let result = std::panic::catch_unwind(|| {
                    let _ = load_input(&p, RasterKind::Image, None, None);
                });
                assert!(result.is_ok(), "loader panicked on mutation {round} of {ext}");
            }
        }
    }
}
