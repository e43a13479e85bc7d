//! `.npy` files: header parsing (npyz), whole-array loading, block streaming for large files, and writing.
//!
//! Data is read as raw bytes and decoded per the header's dtype (either byte order), which is much faster than
//! decoding element by element. Both C and Fortran order are supported: blocks are planned in the file's storage
//! order so that each block is read as few contiguous runs, then returned in C order.

use super::Elem;
use crate::cli_error::{CliError, CliResult};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use npyz::{DType, Endianness, Order, TypeChar, WriterBuilder};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use zarrtx::{with_raster_array, DataType, RasterArray, RasterBlock};

/// Bytes decoded per read call when loading a contiguous run.
const READ_PIECE: usize = 8 * 1024 * 1024;

/// What the header of a `.npy` file says, and where its data starts.
#[derive(Debug, Clone)]
pub struct NpyInfo {
    /// The file.
    pub path: PathBuf,
    /// The array's shape, outermost axis first (as numpy reports it, whatever the order).
    pub shape: Vec<u64>,
    /// Element type.
    pub data_type: DataType,
    /// True when the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// True when multi-byte values are big-endian.
    pub big_endian: bool,
    /// Byte offset of the first data byte.
    pub data_offset: u64,
}

/// Runs `$body` with `$t` bound to the Rust element type of the [`DataType`] `$dt`.
macro_rules! with_elem_type {
    ($dt:expr, $t:ident => $body:expr) => {
        match $dt {
            DataType::Bool => {
                type $t = bool;
                $body
            }
            DataType::U8 => {
                type $t = u8;
                $body
            }
            DataType::U16 => {
                type $t = u16;
                $body
            }
            DataType::U32 => {
                type $t = u32;
                $body
            }
            DataType::U64 => {
                type $t = u64;
                $body
            }
            DataType::I8 => {
                type $t = i8;
                $body
            }
            DataType::I16 => {
                type $t = i16;
                $body
            }
            DataType::I32 => {
                type $t = i32;
                $body
            }
            DataType::I64 => {
                type $t = i64;
                $body
            }
            DataType::F32 => {
                type $t = f32;
                $body
            }
            DataType::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

fn bad_input(path: &Path, what: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("{}: {what}", path.display()))
}

impl NpyInfo {
    /// Reads and checks the header of the `.npy` file at `path`.
    pub fn open(path: &Path) -> CliResult<NpyInfo> {
        let file = File::open(path).map_err(|e| bad_input(path, format!("cannot open input: {e}")))?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = BufReader::new(file);
        precheck_shape(&mut reader).map_err(|e| bad_input(path, e))?;
        let header = npyz::NpyHeader::from_reader(&mut reader)
            .map_err(|e| bad_input(path, format!("not a valid .npy file: {e}")))?;
        let data_offset = reader
            .stream_position()
            .map_err(|e| bad_input(path, format!("cannot read input: {e}")))?;
        let ts = match header.dtype() {
            DType::Plain(ts) => ts,
            other => {
                return Err(bad_input(
                    path,
                    format!(
                        "structured dtype {} is not supported; save a plain numeric array",
                        other.descr()
                    ),
                ))
            }
        };
        let size = ts.size_field();
        let data_type = match (ts.type_char(), size) {
            (TypeChar::Bool, 1) => DataType::Bool,
            (TypeChar::Uint, 1) => DataType::U8,
            (TypeChar::Uint, 2) => DataType::U16,
            (TypeChar::Uint, 4) => DataType::U32,
            (TypeChar::Uint, 8) => DataType::U64,
            (TypeChar::Int, 1) => DataType::I8,
            (TypeChar::Int, 2) => DataType::I16,
            (TypeChar::Int, 4) => DataType::I32,
            (TypeChar::Int, 8) => DataType::I64,
            (TypeChar::Float, 4) => DataType::F32,
            (TypeChar::Float, 8) => DataType::F64,
            _ => {
                return Err(bad_input(
                    path,
                    format!(
                        "dtype '{ts}' is not supported; use bool, (u)int8/16/32/64, float32 or float64 \
                         (e.g. numpy's arr.astype('float32'))"
                    ),
                ))
            }
        };
        let too_big = header
            .shape()
            .iter()
            .try_fold(data_type.size() as u64, |acc, &d| acc.checked_mul(d))
            .is_none();
        if too_big {
            return Err(bad_input(path, format!("shape {:?} is too large", header.shape())));
        }
        let info = NpyInfo {
            path: path.to_path_buf(),
            shape: header.shape().to_vec(),
            data_type,
            fortran_order: header.order() == Order::Fortran,
            big_endian: ts.endianness() == Endianness::Big,
            data_offset,
        };
        let needed = info.data_offset + info.data_bytes();
        if file_len < needed {
            return Err(bad_input(
                path,
                format!("file is truncated: the header promises {needed} bytes but the file has {file_len}"),
            ));
        }
        Ok(info)
    }

    /// Number of elements.
    pub fn element_count(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Size of the data in bytes.
    pub fn data_bytes(&self) -> u64 {
        self.element_count() * self.data_type.size() as u64
    }

    /// The shape in storage order (slowest-varying axis first).
    fn storage_shape(&self) -> Vec<u64> {
        let mut s = self.shape.clone();
        if self.fortran_order {
            s.reverse();
        }
        s
    }

    /// Loads the whole array, in C order.
    pub fn load(&self) -> CliResult<RasterArray> {
        let mut file = File::open(&self.path).map_err(|e| bad_input(&self.path, format!("cannot open input: {e}")))?;
        let s = self.storage_shape();
        let start = vec![0; s.len()];
        with_elem_type!(self.data_type, T => read_block::<T>(&mut file, self, &start, &s))
            .map_err(|e| bad_input(&self.path, format!("cannot read input: {e}")))
    }

    /// Streams the array as blocks of about `target_bytes`, aligned to `chunks` (given in the array's axes; each
    /// block is a union of whole chunks except at the array's edges).
    pub fn blocks(&self, chunks: &[u64], target_bytes: u64) -> CliResult<NpyBlocks> {
        let whole: Vec<std::ops::Range<u64>> = self.shape.iter().map(|&n| 0..n).collect();
        self.region_blocks(&whole, chunks, target_bytes)
    }

    /// Streams only `region` (one `start..end` per axis, in the array's axes, inside the shape) as blocks of about
    /// `target_bytes` aligned to `chunks` relative to the region's start. Nothing outside the region is read: each
    /// block is read by offset, as few contiguous runs as the file's order allows.
    pub fn region_blocks(
        &self,
        region: &[std::ops::Range<u64>],
        chunks: &[u64],
        target_bytes: u64,
    ) -> CliResult<NpyBlocks> {
        let file = File::open(&self.path).map_err(|e| bad_input(&self.path, format!("cannot open input: {e}")))?;
        let s = self.storage_shape();
        let outside =
            region.len() != s.len() || region.iter().zip(&self.shape).any(|(r, &n)| r.start > r.end || r.end > n);
        if outside {
            return Err(bad_input(
                &self.path,
                format!("region {region:?} does not lie inside the array's shape {:?}", self.shape),
            ));
        }
        let mut lo: Vec<u64> = region.iter().map(|r| r.start).collect();
        let mut hi: Vec<u64> = region.iter().map(|r| r.end).collect();
        let mut storage_chunks = if chunks.len() == s.len() {
            chunks.to_vec()
        } else {
            s.clone()
        };
        if self.fortran_order {
            storage_chunks.reverse();
            lo.reverse();
            hi.reverse();
        }
        let extent: Vec<u64> = lo.iter().zip(&hi).map(|(l, h)| h - l).collect();
        let block = plan_block_shape(&extent, &storage_chunks, self.data_type.size() as u64, target_bytes);
        let next = if extent.contains(&0) { None } else { Some(lo.clone()) };
        Ok(NpyBlocks {
            file,
            info: self.clone(),
            lo,
            hi,
            block,
            next,
        })
    }
}

/// Refuses headers whose shape overflows 64 bits before npyz parses them (npyz multiplies unchecked). Leaves
/// `reader` at the start of the file; anything it cannot parse is left for npyz to report.
fn precheck_shape(reader: &mut BufReader<File>) -> Result<(), String> {
    let mut head = Vec::with_capacity(4096);
    let _ = reader.by_ref().take(1 << 20).read_to_end(&mut head);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read input: {e}"))?;
    let text = String::from_utf8_lossy(&head);
    let Some(at) = text.find("'shape'") else { return Ok(()) };
    let rest = &text[at..];
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return Ok(());
    };
    if close < open {
        return Ok(());
    }
    let mut total: u64 = 1;
    for dim in rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let Ok(d) = dim.trim_end_matches('L').parse::<u64>() else {
            return Ok(());
        };
        total = total
            .checked_mul(d)
            .ok_or_else(|| format!("shape ({}) is too large", &rest[open + 1..close]))?;
    }
    total
        .checked_mul(16)
        .ok_or_else(|| format!("shape ({}) is too large", &rest[open + 1..close]))?;
    Ok(())
}

/// Plans the shape (in storage order) of streamed blocks: starting from one chunk, the fastest axes grow to their
/// full extent while the block stays within `target_bytes`, then the next axis grows by whole chunks.
pub fn plan_block_shape(shape: &[u64], chunks: &[u64], item_size: u64, target_bytes: u64) -> Vec<u64> {
    let mut b: Vec<u64> = shape.iter().zip(chunks).map(|(&n, &c)| c.clamp(1, n.max(1))).collect();
    for j in (0..shape.len()).rev() {
        let others: u64 = b.iter().enumerate().filter(|(k, _)| *k != j).map(|(_, &v)| v).product();
        if others * shape[j] * item_size <= target_bytes {
            b[j] = shape[j].max(1);
            continue;
        }
        let per_chunk = others * b[j] * item_size;
        let k = (target_bytes / per_chunk.max(1)).max(1);
        b[j] = (k * b[j]).min(shape[j].max(1));
        break;
    }
    b
}

/// Reads the block of storage-order `start`/`extent` and returns it in C order with natural axes.
fn read_block<T: Elem>(file: &mut File, info: &NpyInfo, start: &[u64], extent: &[u64]) -> io::Result<RasterArray> {
    let s = info.storage_shape();
    let nd = s.len();
    let total: u64 = extent.iter().product();
    let mut out: Vec<T> = Vec::with_capacity(total as usize);
    let mut strides = vec![1u64; nd];
    for j in (0..nd.saturating_sub(1)).rev() {
        strides[j] = strides[j + 1] * s[j + 1];
    }
    if total > 0 {
        // Every axis after `m` is read whole, so each run covers axis `m` (partially) and all later axes.
        let m = (0..nd).rev().find(|&j| extent[j] != s[j]);
        let (outer, run_items) = match m {
            Some(m) => (m, extent[m] * strides[m]),
            None => (0, total),
        };
        let mut idx: Vec<u64> = start[..outer].to_vec();
        let mut bytes = Vec::new();
        'runs: loop {
            let mut off: u64 = idx.iter().zip(&strides).map(|(i, st)| i * st).sum();
            if let Some(m) = m {
                off += start[m] * strides[m];
            }
            file.seek(SeekFrom::Start(info.data_offset + off * T::SIZE as u64))?;
            let mut remaining = run_items as usize * T::SIZE;
            while remaining > 0 {
                let n = remaining.min(READ_PIECE / T::SIZE * T::SIZE);
                bytes.resize(n, 0);
                file.read_exact(&mut bytes)?;
                out.extend(bytes.chunks_exact(T::SIZE).map(|c| T::from_bytes(c, info.big_endian)));
                remaining -= n;
            }
            // Advance the odometer over the outer axes.
            let mut j = outer;
            loop {
                if j == 0 {
                    break 'runs;
                }
                j -= 1;
                idx[j] += 1;
                if idx[j] < start[j] + extent[j] {
                    break;
                }
                idx[j] = start[j];
            }
        }
    }
    let dims: Vec<usize> = extent.iter().map(|&d| d as usize).collect();
    let shape_err = |e: ndarray::ShapeError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let array = if info.fortran_order {
        let natural: Vec<usize> = dims.iter().rev().copied().collect();
        let a = ArrayD::from_shape_vec(IxDyn(&natural).f(), out).map_err(shape_err)?;
        a.as_standard_layout().into_owned()
    } else {
        ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(shape_err)?
    };
    Ok(T::wrap(array))
}

/// Iterator over the blocks of a large `.npy` file, reading each from disk when it is asked for.
pub struct NpyBlocks {
    file: File,
    info: NpyInfo,
    /// First index of the streamed region, in storage order.
    lo: Vec<u64>,
    /// End of the streamed region, in storage order.
    hi: Vec<u64>,
    block: Vec<u64>,
    next: Option<Vec<u64>>,
}

impl NpyBlocks {
    /// The planned block shape, in the array's (natural) axis order.
    pub fn block_shape(&self) -> Vec<u64> {
        let mut b = self.block.clone();
        if self.info.fortran_order {
            b.reverse();
        }
        b
    }
}

impl Iterator for NpyBlocks {
    type Item = zarrtx::Result<RasterBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next.take()?;
        let (lo, hi) = (&self.lo, &self.hi);
        let extent: Vec<u64> = (0..hi.len()).map(|j| self.block[j].min(hi[j] - start[j])).collect();
        // Advance to the next block of the region in storage order.
        let mut following = start.clone();
        let mut j = hi.len();
        self.next = loop {
            if j == 0 {
                break None;
            }
            j -= 1;
            following[j] += self.block[j];
            if following[j] < hi[j] {
                break Some(following);
            }
            following[j] = lo[j];
        };
        let result =
            with_elem_type!(self.info.data_type, T => read_block::<T>(&mut self.file, &self.info, &start, &extent));
        Some(match result {
            Ok(data) => {
                let mut offset = start;
                if self.info.fortran_order {
                    offset.reverse();
                }
                Ok(RasterBlock { offset, data })
            }
            Err(e) => {
                self.next = None;
                Err(zarrtx::Error::io(&self.info.path, e))
            }
        })
    }
}

fn write_typed<T: npyz::AutoSerialize + Copy>(w: impl Write, a: &ArrayD<T>) -> io::Result<()> {
    let shape: Vec<u64> = a.shape().iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(w)
        .begin_nd()?;
    writer.extend(a.iter().copied())?;
    writer.finish()
}

/// Writes `array` as a C-order `.npy` file at `path`; the file appears complete or not at all (it is written
/// under a temporary name and renamed).
pub fn write(path: &Path, array: &RasterArray) -> CliResult<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| -> io::Result<()> {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        with_raster_array!(array, a => write_typed(&mut w, a))?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::failure(format!("cannot write {}: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T], order: Order) {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .order(order)
            .writer(BufWriter::new(File::create(path).unwrap()))
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
    }

    fn expected_u16(shape: &[usize]) -> ArrayD<u16> {
        let n: usize = shape.iter().product();
        ArrayD::from_shape_vec(IxDyn(shape), (0..n as u16).collect()).unwrap()
    }

    #[test]
    fn loads_c_order_all_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy(&p, &[2, 3], &[1i32, -2, 3, -4, 5, -6], Order::C);
        let a = NpyInfo::open(&p).unwrap().load().unwrap();
        assert_eq!(
            a,
            RasterArray::I32(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1, -2, 3, -4, 5, -6]).unwrap())
        );

        write_npy(&p, &[3], &[true, false, true], Order::C);
        assert_eq!(NpyInfo::open(&p).unwrap().load().unwrap().data_type(), DataType::Bool);
        write_npy(&p, &[2], &[1.5f64, 2.5], Order::C);
        assert_eq!(NpyInfo::open(&p).unwrap().load().unwrap().data_type(), DataType::F64);
        write_npy(&p, &[2], &[1.5f32, 2.5], Order::C);
        assert_eq!(NpyInfo::open(&p).unwrap().load().unwrap().data_type(), DataType::F32);
        write_npy(&p, &[2], &[7u8, 8], Order::C);
        assert_eq!(NpyInfo::open(&p).unwrap().load().unwrap().data_type(), DataType::U8);
        write_npy(&p, &[2], &[u64::MAX, 0], Order::C);
        assert_eq!(
            NpyInfo::open(&p).unwrap().load().unwrap(),
            RasterArray::U64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![u64::MAX, 0]).unwrap())
        );
    }

    #[test]
    fn loads_fortran_order_as_c_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npy");
        let expected = expected_u16(&[2, 3, 4]);
        // Fortran order stores the transpose's C-order data.
        let fdata: Vec<u16> = expected.t().as_standard_layout().iter().copied().collect();
        write_npy(&p, &[2, 3, 4], &fdata, Order::Fortran);
        let info = NpyInfo::open(&p).unwrap();
        assert!(info.fortran_order);
        assert_eq!(info.shape, vec![2, 3, 4]);
        assert_eq!(info.load().unwrap(), RasterArray::U16(expected));
    }

    #[test]
    fn loads_big_endian() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("be.npy");
        let mut w = npyz::WriteOptions::new()
            .dtype(DType::parse("'>i2'").unwrap())
            .shape(&[3])
            .writer(BufWriter::new(File::create(&p).unwrap()))
            .begin_nd()
            .unwrap();
        for v in [1i16, -300, 12345] {
            w.push(&v).unwrap();
        }
        w.finish().unwrap();
        let info = NpyInfo::open(&p).unwrap();
        assert!(info.big_endian);
        assert_eq!(
            info.load().unwrap(),
            RasterArray::I16(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1, -300, 12345]).unwrap())
        );
    }

    /// Writes a `.npy` file by hand (for dtypes npyz cannot serialize).
    fn raw_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
        let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (dict.len() + 11) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((dict.len() as u16).to_le_bytes());
        bytes.extend(dict.as_bytes());
        bytes.extend(data);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn refuses_unsupported_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.npy");
        for descr in ["<c8", "<f2", "<U3"] {
            raw_npy(&p, descr, "(1,)", &[0; 16]);
            let e = NpyInfo::open(&p).unwrap_err();
            assert_eq!(e.code, 2);
            assert!(e.message.contains("not supported"), "{descr}: {}", e.message);
        }
        raw_npy(&p, "<u2", "(1099511627776, 1099511627776)", &[0; 16]);
        let e = NpyInfo::open(&p).unwrap_err();
        assert!(e.message.contains("too large"), "{}", e.message);
        raw_npy(&p, "<i4", "(2,)", &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(
            NpyInfo::open(&p).unwrap().load().unwrap(),
            RasterArray::I32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1, 2]).unwrap())
        );

        let t = dir.path().join("t.npy");
        write_npy(&t, &[100], &[0u32; 100], Order::C);
        let len = std::fs::metadata(&t).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&t).unwrap();
        f.set_len(len - 10).unwrap();
        let e = NpyInfo::open(&t).unwrap_err();
        assert!(e.message.contains("truncated"), "{}", e.message);

        let g = dir.path().join("g.npy");
        std::fs::write(&g, b"not numpy at all").unwrap();
        assert_eq!(NpyInfo::open(&g).unwrap_err().code, 2);
        assert_eq!(NpyInfo::open(&dir.path().join("missing.npy")).unwrap_err().code, 2);
    }

    fn collect_blocks(info: &NpyInfo, chunks: &[u64], target: u64) -> (Vec<RasterBlock>, Vec<u64>) {
        let blocks = info.blocks(chunks, target).unwrap();
        let shape = blocks.block_shape();
        (blocks.map(|b| b.unwrap()).collect(), shape)
    }

    fn assemble(shape: &[usize], blocks: &[RasterBlock]) -> ArrayD<u16> {
        let mut out = ArrayD::<u16>::from_elem(IxDyn(shape), u16::MAX);
        let mut covered = 0usize;
        for b in blocks {
            let RasterArray::U16(d) = &b.data else { panic!("dtype") };
            covered += d.len();
            let mut view = out.slice_each_axis_mut(|ax| {
                let o = b.offset[ax.axis.index()] as usize;
                ndarray::Slice::from(o..o + d.shape()[ax.axis.index()])
            });
            assert!(view.iter().all(|&v| v == u16::MAX), "blocks overlap");
            view.assign(d);
        }
        assert_eq!(covered, out.len(), "blocks do not cover the array exactly");
        out
    }

    #[test]
    fn streams_c_order_blocks_aligned_to_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.npy");
        let shape = [3usize, 37, 29];
        let expected = expected_u16(&shape);
        write_npy(&p, &[3, 37, 29], expected.as_slice().unwrap(), Order::C);
        let info = NpyInfo::open(&p).unwrap();
        // 3 channels x 8 rows x 29 cols x 2 bytes = 1392 bytes per 8-row chunk band.
        let (blocks, bshape) = collect_blocks(&info, &[3, 8, 8], 3000);
        assert_eq!(bshape, vec![3, 16, 29]);
        assert_eq!(blocks.len(), 3);
        for b in &blocks {
            assert_eq!(b.offset[1] % 8, 0);
        }
        assert_eq!(assemble(&shape, &blocks), expected);
        // Tiny target: blocks fall back to single chunks.
        let (blocks, _) = collect_blocks(&info, &[1, 8, 8], 1);
        assert_eq!(blocks.len(), 3 * 5 * 4);
        assert_eq!(assemble(&shape, &blocks), expected);
    }

    #[test]
    fn streams_fortran_order_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bigf.npy");
        let shape = [2usize, 11, 13];
        let expected = expected_u16(&shape);
        let fdata: Vec<u16> = expected.t().as_standard_layout().iter().copied().collect();
        write_npy(&p, &[2, 11, 13], &fdata, Order::Fortran);
        let info = NpyInfo::open(&p).unwrap();
        for target in [1, 100, 500, 1_000_000] {
            let (blocks, _) = collect_blocks(&info, &[2, 4, 4], target);
            assert_eq!(assemble(&shape, &blocks), expected, "target {target}");
        }
    }

    #[test]
    fn streams_only_a_region_in_either_order() {
        let dir = tempfile::tempdir().unwrap();
        let shape = [2usize, 21, 17];
        let expected = expected_u16(&shape);
        let c = dir.path().join("c.npy");
        write_npy(&c, &[2, 21, 17], expected.as_slice().unwrap(), Order::C);
        let f = dir.path().join("f.npy");
        let fdata: Vec<u16> = expected.t().as_standard_layout().iter().copied().collect();
        write_npy(&f, &[2, 21, 17], &fdata, Order::Fortran);
        let region = [0u64..2, 8..16, 4..17];
        let want = expected.slice(ndarray::s![0..2, 8..16, 4..17]).to_owned().into_dyn();
        for p in [&c, &f] {
            let info = NpyInfo::open(p).unwrap();
            for target in [1, 64, 1 << 20] {
                let blocks: Vec<RasterBlock> = info.region_blocks(&region, &[2, 4, 4], target).unwrap().map(|b| b.unwrap()).collect();
                let mut out = ArrayD::<u16>::from_elem(IxDyn(&[2, 8, 13]), u16::MAX);
                for b in &blocks {
                    let RasterArray::U16(d) = &b.data else { panic!("dtype") };
                    assert!(b.offset.iter().zip(&region).all(|(o, r)| r.contains(o)), "{:?}", b.offset);
                    let mut view = out.slice_each_axis_mut(|ax| {
                        let i = ax.axis.index();
                        let o = (b.offset[i] - region[i].start) as usize;
                        ndarray::Slice::from(o..o + d.shape()[i])
                    });
                    assert!(view.iter().all(|&v| v == u16::MAX), "blocks overlap");
                    view.assign(d);
                }
                assert_eq!(out, want, "{} target {target}", p.display());
            }
        }
        let info = NpyInfo::open(&c).unwrap();
        assert_eq!(info.region_blocks(&[0..2, 0..22, 0..17], &[2, 4, 4], 64).err().unwrap().code, 2);
    }

    #[test]
    fn block_plan_grows_fast_axes_first() {
        assert_eq!(
            plan_block_shape(&[3, 1000, 1000], &[3, 100, 100], 2, 6_000_000),
            vec![3, 1000, 1000]
        );
        assert_eq!(
            plan_block_shape(&[3, 1000, 1000], &[3, 100, 100], 2, 1_200_000),
            vec![3, 200, 1000]
        );
        assert_eq!(
            plan_block_shape(&[3, 1000, 1000], &[3, 100, 100], 2, 10),
            vec![3, 100, 100]
        );
        assert_eq!(plan_block_shape(&[5, 7], &[100, 100], 1, 1), vec![5, 7]);
    }

    #[test]
    fn writes_npy_that_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.npy");
        for a in [
            RasterArray::U16(expected_u16(&[2, 3, 4])),
            RasterArray::F64(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.5, -1.0, 2.0, 1e300]).unwrap()),
            RasterArray::Bool(ArrayD::from_shape_vec(IxDyn(&[2]), vec![true, false]).unwrap()),
            RasterArray::I64(ArrayD::from_shape_vec(IxDyn(&[1, 1]), vec![-7]).unwrap()),
        ] {
            write(&p, &a).unwrap();
            assert_eq!(NpyInfo::open(&p).unwrap().load().unwrap(), a);
        }
        // A non-standard-layout array is written in logical order.
        let t = expected_u16(&[3, 4]).reversed_axes();
        write(&p, &RasterArray::U16(t.clone())).unwrap();
        assert_eq!(
            NpyInfo::open(&p).unwrap().load().unwrap(),
            RasterArray::U16(t.as_standard_layout().into_owned())
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }
}
