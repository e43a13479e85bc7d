//! `.tif`/`.tiff` files: every page decoded with the `tiff` crate and arranged by `--dims`.
//!
//! A file has `P` pages of `S` samples (1 for grayscale, 3 for RGB, ...) of `H × W` pixels. Samples become
//! channels (planar, whatever the file's interleaving) and pages become `z` or `c`:
//!
//! | dims   | result                                                         |
//! |--------|----------------------------------------------------------------|
//! | `cyx`  | `[S, H, W]` for one page; `[P, H, W]` (pages as channels) for one sample |
//! | `czyx` | `[S, P, H, W]`                                                 |
//! | `yx`   | `[H, W]` (one page, one sample)                                |
//! | `zyx`  | `[P, H, W]` (one sample)                                       |
//! | none   | the squeezed shape: `[H, W]`, `[S, H, W]`, `[P, H, W]` or `[S, P, H, W]` |

use super::{Dims, Elem};
use crate::cli_error::{CliError, CliResult};
use ndarray::{ArrayD, Axis, IxDyn};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use zarrtx::{DataType, RasterArray};

fn bad_input(path: &Path, what: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("{}: {what}", path.display()))
}

/// Pixel values of every page, in the decoder's element type.
enum Pages {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Pages {
    fn data_type(&self) -> DataType {
        match self {
            Pages::U8(_) => DataType::U8,
            Pages::U16(_) => DataType::U16,
            Pages::U32(_) => DataType::U32,
            Pages::U64(_) => DataType::U64,
            Pages::I8(_) => DataType::I8,
            Pages::I16(_) => DataType::I16,
            Pages::I32(_) => DataType::I32,
            Pages::I64(_) => DataType::I64,
            Pages::F32(_) => DataType::F32,
            Pages::F64(_) => DataType::F64,
        }
    }
}

/// Appends one page (`planar`: `[S, H, W]`, else interleaved `[H, W, S]`) to `out` in `[S, H, W]` order.
fn push_page<T: Copy>(out: &mut Vec<T>, page: &[T], planar: bool, s: usize, h: usize, w: usize) {
    if planar || s == 1 {
        out.extend_from_slice(&page[..s * h * w]);
    } else {
        for c in 0..s {
            out.extend(page[..s * h * w].iter().skip(c).step_by(s).copied());
        }
    }
}

/// Decodes every page of the TIFF at `path` and arranges them for `dims` (see the module documentation).
pub fn load(path: &Path, dims: Option<Dims>) -> CliResult<RasterArray> {
    let file = File::open(path).map_err(|e| bad_input(path, format!("cannot open input: {e}")))?;
    let mut decoder = Decoder::new(BufReader::new(file))
        .map_err(|e| bad_input(path, format!("not a readable TIFF file: {e}")))?
        .with_limits(Limits::unlimited());
    let tiff_err = |e: tiff::TiffError| bad_input(path, format!("cannot decode TIFF: {e}"));

    let mut pages: Option<Pages> = None;
    let mut geometry: Option<(usize, usize, usize)> = None; // (samples, height, width)
    let mut n_pages = 0usize;
    let mut buffer = DecodingResult::U8(Vec::new());
    loop {
        let (width, height) = decoder.dimensions().map_err(tiff_err)?;
        let color = decoder.colortype().map_err(tiff_err)?;
        let samples = color.num_samples() as usize;
        let bits = color.bit_depth();
        if !matches!(bits, 8 | 16 | 32 | 64) {
            return Err(bad_input(
                path,
                format!("{bits}-bit samples are not supported; save the TIFF with 8, 16, 32 or 64 bits per sample"),
            ));
        }
        let (h, w) = (height as usize, width as usize);
        match geometry {
            None => geometry = Some((samples, h, w)),
            Some(g) if g != (samples, h, w) => {
                return Err(bad_input(
                    path,
                    format!(
                        "page {n_pages} is {w}x{h} with {samples} samples but page 0 is {}x{} with {} samples; \
                         all pages must match",
                        g.2, g.1, g.0
                    ),
                ))
            }
            Some(_) => {}
        }
        let layout = decoder.read_image_to_buffer(&mut buffer).map_err(tiff_err)?;
        let planar = layout.planes > 1;
        let need = samples * h * w;
        macro_rules! take {
            ($($v:ident),*) => {
                match &buffer {
                    $(DecodingResult::$v(v) => {
                        if v.len() < need {
                            return Err(bad_input(path, format!("page {n_pages} decoded to {} values, expected {need}", v.len())));
                        }
                        let out = pages.get_or_insert_with(|| Pages::$v(Vec::new()));
                        match out {
                            Pages::$v(out) => push_page(out, v, planar, samples, h, w),
                            other => return Err(bad_input(path, format!(
                                "page {n_pages} has a different sample type than page 0 ({})",
                                other.data_type().zarr_name()
                            ))),
                        }
                    })*
                    DecodingResult::F16(v) => {
                        if v.len() < need {
                            return Err(bad_input(path, format!("page {n_pages} decoded to {} values, expected {need}", v.len())));
                        }
                        let widened: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
                        match pages.get_or_insert_with(|| Pages::F32(Vec::new())) {
                            Pages::F32(out) => push_page(out, &widened, planar, samples, h, w),
                            _ => return Err(bad_input(path, format!("page {n_pages} has a different sample type than page 0"))),
                        }
                    }
                }
            };
        }
        take!(U8, U16, U32, U64, I8, I16, I32, I64, F32, F64);
        n_pages += 1;
        if !decoder.more_images() {
            break;
        }
        decoder.next_image().map_err(tiff_err)?;
    }
    let (s, h, w) = geometry.expect("at least one page was decoded");
    let p = n_pages;
    macro_rules! arrange_all {
        ($($v:ident),*) => {
            match pages.expect("at least one page was decoded") {
                $(Pages::$v(v) => arrange(path, v, p, s, h, w, dims)?,)*
            }
        };
    }
    Ok(arrange_all!(U8, U16, U32, U64, I8, I16, I32, I64, F32, F64))
}

/// Arranges `[P, S, H, W]` data for `dims`.
fn arrange<T: Elem>(
    path: &Path,
    v: Vec<T>,
    p: usize,
    s: usize,
    h: usize,
    w: usize,
    dims: Option<Dims>,
) -> CliResult<RasterArray> {
    let a = ArrayD::from_shape_vec(IxDyn(&[p, s, h, w]), v)
        .map_err(|e| bad_input(path, format!("unexpected page layout: {e}")))?;
    let refuse = |d: Dims, need: &str| {
        Err(bad_input(
            path,
            format!("has {p} page(s) of {s} sample(s); --dims {} needs {need}", d.as_str()),
        ))
    };
    let out = match dims {
        Some(Dims::Czyx) => a.permuted_axes(IxDyn(&[1, 0, 2, 3])),
        Some(Dims::Cyx) => {
            if p == 1 {
                a.index_axis_move(Axis(0), 0)
            } else if s == 1 {
                a.index_axis_move(Axis(1), 0)
            } else {
                return refuse(Dims::Cyx, "one page (samples become channels) or one sample per pixel (pages become channels); use --dims czyx for multi-page multi-sample files");
            }
        }
        Some(Dims::Yx) => {
            if p != 1 || s != 1 {
                return refuse(Dims::Yx, "a single page with one sample per pixel");
            }
            a.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0)
        }
        Some(Dims::Zyx) => {
            if s != 1 {
                return refuse(Dims::Zyx, "one sample per pixel");
            }
            a.index_axis_move(Axis(1), 0)
        }
        None => match (p, s) {
            (1, 1) => a.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0),
            (1, _) => a.index_axis_move(Axis(0), 0),
            (_, 1) => a.index_axis_move(Axis(1), 0),
            _ => a.permuted_axes(IxDyn(&[1, 0, 2, 3])),
        },
    };
    Ok(T::wrap(out.as_standard_layout().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiff::encoder::{colortype, TiffEncoder};

    fn expect_u16(shape: &[usize], f: impl Fn(&IxDyn) -> u16) -> RasterArray {
        RasterArray::U16(ArrayD::from_shape_fn(IxDyn(shape), |i| f(&i)))
    }

    #[test]
    fn single_page_gray() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.tif");
        let (w, h) = (5u32, 3u32);
        let data: Vec<u16> = (0..w * h).map(|i| i as u16 * 3).collect();
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        enc.write_image::<colortype::Gray16>(w, h, &data).unwrap();
        drop(enc);
        let a = load(&p, None).unwrap();
        assert_eq!(a, expect_u16(&[3, 5], |i| (i[0] * 5 + i[1]) as u16 * 3));
        assert_eq!(load(&p, Some(Dims::Cyx)).unwrap().shape(), vec![1, 3, 5]);
        assert_eq!(load(&p, Some(Dims::Yx)).unwrap().shape(), vec![3, 5]);
        assert_eq!(load(&p, Some(Dims::Czyx)).unwrap().shape(), vec![1, 1, 3, 5]);
    }

    #[test]
    fn rgb_becomes_planar_channels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rgb.tiff");
        let (w, h) = (4u32, 2u32);
        // Interleaved RGB: value = 100*channel + pixel index.
        let mut data = Vec::new();
        for px in 0..(w * h) as u8 {
            for c in 0..3u8 {
                data.push(100 * c + px);
            }
        }
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        enc.write_image::<colortype::RGB8>(w, h, &data).unwrap();
        drop(enc);
        let expected = RasterArray::U8(ArrayD::from_shape_fn(IxDyn(&[3, 2, 4]), |i| {
            (100 * i[0] + i[1] * 4 + i[2]) as u8
        }));
        assert_eq!(load(&p, None).unwrap(), expected);
        assert_eq!(load(&p, Some(Dims::Cyx)).unwrap(), expected);
        let e = load(&p, Some(Dims::Yx)).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("1 page(s) of 3 sample(s)"), "{}", e.message);
    }

    #[test]
    fn multi_page_becomes_z_or_c() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stack.tif");
        let (w, h) = (3u32, 2u32);
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        for page in 0..4i32 {
            let data: Vec<i32> = (0..(w * h) as i32).map(|i| page * 1000 + i).collect();
            enc.write_image::<colortype::GrayI32>(w, h, &data).unwrap();
        }
        drop(enc);
        let expected = ArrayD::from_shape_fn(IxDyn(&[4, 2, 3]), |i| (i[0] * 1000 + i[1] * 3 + i[2]) as i32);
        assert_eq!(load(&p, None).unwrap(), RasterArray::I32(expected.clone()));
        assert_eq!(load(&p, Some(Dims::Zyx)).unwrap(), RasterArray::I32(expected.clone()));
        assert_eq!(load(&p, Some(Dims::Cyx)).unwrap(), RasterArray::I32(expected.clone()));
        assert_eq!(
            load(&p, Some(Dims::Czyx)).unwrap(),
            RasterArray::I32(expected.insert_axis(Axis(0)))
        );
        assert_eq!(load(&p, Some(Dims::Yx)).unwrap_err().code, 2);
    }

    #[test]
    fn multi_page_rgb_is_czyx() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rgbstack.tif");
        let (w, h) = (2u32, 2u32);
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        for page in 0..3u16 {
            let mut data = Vec::new();
            for px in 0..(w * h) as u16 {
                for c in 0..3u16 {
                    data.push(c * 1000 + page * 100 + px);
                }
            }
            enc.write_image::<colortype::RGB16>(w, h, &data).unwrap();
        }
        drop(enc);
        let expected = expect_u16(&[3, 3, 2, 2], |i| (i[0] * 1000 + i[1] * 100 + i[2] * 2 + i[3]) as u16);
        assert_eq!(load(&p, None).unwrap(), expected);
        assert_eq!(load(&p, Some(Dims::Czyx)).unwrap(), expected);
        let e = load(&p, Some(Dims::Cyx)).unwrap_err();
        assert!(e.message.contains("czyx"), "{}", e.message);
    }

    #[test]
    fn float_and_mismatched_pages() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.tif");
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        enc.write_image::<colortype::Gray32Float>(2, 1, &[0.5f32, -1.5])
            .unwrap();
        enc.write_image::<colortype::Gray32Float>(3, 1, &[0.5f32, -1.5, 2.0])
            .unwrap();
        drop(enc);
        let e = load(&p, None).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("all pages must match"), "{}", e.message);

        let q = dir.path().join("f1.tif");
        let mut enc = TiffEncoder::new(File::create(&q).unwrap()).unwrap();
        enc.write_image::<colortype::Gray64Float>(2, 1, &[0.25f64, 4.0])
            .unwrap();
        drop(enc);
        assert_eq!(
            load(&q, None).unwrap(),
            RasterArray::F64(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![0.25, 4.0]).unwrap())
        );
    }

    #[test]
    fn garbage_is_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tif");
        std::fs::write(&p, b"II*\0garbage").unwrap();
        assert_eq!(load(&p, None).unwrap_err().code, 2);
        assert_eq!(load(&dir.path().join("missing.tif"), None).unwrap_err().code, 2);
    }
}
