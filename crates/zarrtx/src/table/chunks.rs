//! Chunk-level I/O for table arrays: typed 1-D/2-D values ([`Vals`]), the `zarr.json` of one array, writing rows
//! `[start, start + n)` of a row-indexed array (chunks entirely at or beyond `start` are written fresh; the one chunk
//! that also holds rows `< start` is read, updated and written whole), and reading rows `[0, n)`.
//!
//! Everything goes through [`DataHandle`]s: an [`Io`] reads committed data from one handle (the live table, or the
//! table being written) and writes chunks into another (a private area: the fresh area of a new table, or an
//! append's staging area, never a live table). Chunks are encoded with zarrs' codec chain (whatever the array's
//! `zarr.json` says, including sharding) and written as whole objects by this module. A chunk holding only the
//! fill value is still written: a file left beyond the committed rows by an interrupted append must never survive
//! into a later append's rows.

use super::append::staged_key;
use crate::error::{Error, Result};
use crate::name::ElementName;
use crate::storage::DataHandle;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::Arc;
use zarrs::array::{Array, ArrayMetadata, ArrayToBytesCodecTraits, CodecOptions, Element, ElementOwned};
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator, InvalidByteRangeError};
use zarrs::storage::{
    MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, ReadableWritableListableStorage, StorageError, StoreKey,
};

/// A zarrs array over a [`DataHandle`] (see [`DataHandle::zarr_store`]), read through [`WholeObjectReads`].
pub(crate) type TableArray = Array<dyn ReadableStorageTraits>;

/// zarrs reads over a handle's zarr store ([`DataHandle::zarr_store`]) that read each object with one `get` and
/// serve every byte range of a request from those bytes. A partial read through the store takes the object's size
/// and then a range of it in two operations, which can straddle the installation of an append's boundary chunk (a
/// reader bounded by the committed rows then gets part of the new file, or a length error); one whole read sees
/// the old chunk or the new one, and both hold the committed rows.
struct WholeObjectReads(ReadableWritableListableStorage);

impl ReadableStorageTraits for WholeObjectReads {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        self.0.get(key)
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let Some(bytes) = self.0.get(key)? else {
            return Ok(None);
        };
        let size = bytes.len() as u64;
        let parts: Vec<Result<_, StorageError>> = byte_ranges
            .map(|range| {
                let (start, end) = match range {
                    ByteRange::FromStart(offset, None) => (offset, size),
                    ByteRange::FromStart(offset, Some(length)) => (offset, offset.saturating_add(length)),
                    ByteRange::Suffix(length) => (size.saturating_sub(length), size),
                };
                if start > end || end > size {
                    Err(StorageError::from(InvalidByteRangeError::new(range, size)))
                } else {
                    Ok(bytes.slice(start as usize..end as usize))
                }
            })
            .collect();
        Ok(Some(Box::new(parts.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.0.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        false
    }
}

/// Default rows per chunk of 1-D row-indexed arrays (obs columns, codes, masks, indptr, var columns).
pub(crate) const ROW_CHUNK: u64 = 4096;
/// Elements per chunk of the CSR `data` and `indices` arrays.
pub(crate) const NNZ_CHUNK: u64 = 65536;
/// Strings per chunk of a categorical's `categories` array.
pub(crate) const CATEGORY_CHUNK: u64 = 1024;
/// Strings per chunk of `uns/spatialdata_attrs/region`.
pub(crate) const REGION_CHUNK: u64 = 256;
/// Upper bound of the uncompressed size of one chunk of a 2-D row-indexed array.
const CHUNK_BYTES: u64 = 1 << 20;

/// Typed values of one array in C order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Vals {
    Bool(Vec<bool>),
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
    Str(Vec<String>),
}

/// Applies `$body` to the vector inside a [`Vals`], binding it as `$v`.
macro_rules! with_vals {
    ($value:expr, $v:ident => $body:expr) => {
        match $value {
            Vals::Bool($v) => $body,
            Vals::U8($v) => $body,
            Vals::U16($v) => $body,
            Vals::U32($v) => $body,
            Vals::U64($v) => $body,
            Vals::I8($v) => $body,
            Vals::I16($v) => $body,
            Vals::I32($v) => $body,
            Vals::I64($v) => $body,
            Vals::F32($v) => $body,
            Vals::F64($v) => $body,
            Vals::Str($v) => $body,
        }
    };
}

/// Runs `$body` with `$T` bound to the Rust type of zarr data type name `$dtype` and `$wrap` to the matching
/// [`Vals`] constructor; `$other` runs for names that are not supported.
macro_rules! with_dtype {
    ($dtype:expr, $T:ident, $wrap:ident => $body:expr, $other:expr) => {
        match $dtype {
            "bool" => { type $T = bool; let $wrap = Vals::Bool; $body }
            "uint8" => { type $T = u8; let $wrap = Vals::U8; $body }
            "uint16" => { type $T = u16; let $wrap = Vals::U16; $body }
            "uint32" => { type $T = u32; let $wrap = Vals::U32; $body }
            "uint64" => { type $T = u64; let $wrap = Vals::U64; $body }
            "int8" => { type $T = i8; let $wrap = Vals::I8; $body }
            "int16" => { type $T = i16; let $wrap = Vals::I16; $body }
            "int32" => { type $T = i32; let $wrap = Vals::I32; $body }
            "int64" => { type $T = i64; let $wrap = Vals::I64; $body }
            "float32" => { type $T = f32; let $wrap = Vals::F32; $body }
            "float64" => { type $T = f64; let $wrap = Vals::F64; $body }
            "string" => { type $T = String; let $wrap = Vals::Str; $body }
            _ => $other,
        }
    };
}

impl Vals {
    /// Number of values.
    pub fn len(&self) -> usize {
        with_vals!(self, v => v.len())
    }

    /// The Zarr v3 `data_type` name.
    pub fn zarr_type(&self) -> &'static str {
        match self {
            Vals::Bool(_) => "bool",
            Vals::U8(_) => "uint8",
            Vals::U16(_) => "uint16",
            Vals::U32(_) => "uint32",
            Vals::U64(_) => "uint64",
            Vals::I8(_) => "int8",
            Vals::I16(_) => "int16",
            Vals::I32(_) => "int32",
            Vals::I64(_) => "int64",
            Vals::F32(_) => "float32",
            Vals::F64(_) => "float64",
            Vals::Str(_) => "string",
        }
    }
}

/// Size in bytes of one element of zarr data type `dtype` (strings count as 16).
pub(crate) fn dtype_size(dtype: &str) -> u64 {
    match dtype {
        "bool" | "uint8" | "int8" => 1,
        "uint16" | "int16" => 2,
        "uint32" | "int32" | "float32" => 4,
        _ => 8,
    }
}

/// Rows per chunk of a row-indexed array with `width` elements of `dtype` per row: [`ROW_CHUNK`] for 1-D arrays,
/// fewer (a power of two) when a chunk would exceed 1 MiB.
pub(crate) fn row_chunk(width: u64, dtype: &str) -> u64 {
    let row_bytes = width.max(1) * dtype_size(dtype);
    let mut rows = ROW_CHUNK;
    while rows > 1 && rows * row_bytes > CHUNK_BYTES {
        rows /= 2;
    }
    rows
}

/// The `zarr.json` of an array as zarrtx writes it: Zarr v3, regular grid, default `/` chunk keys, `bytes` (or
/// `vlen-utf8` for strings) then zstd level 0, the fill value zarr-python uses, and `attributes`.
pub(crate) fn array_meta(dtype: &str, shape: &[u64], chunk: &[u64], attributes: Value) -> Value {
    let (fill, first) = match dtype {
        "string" => (json!(""), json!({"name": "vlen-utf8", "configuration": {}})),
        "bool" => (json!(false), json!({"name": "bytes"})),
        "float32" | "float64" => (json!(0.0), json!({"name": "bytes", "configuration": {"endian": "little"}})),
        "int8" | "uint8" => (json!(0), json!({"name": "bytes"})),
        _ => (json!(0), json!({"name": "bytes", "configuration": {"endian": "little"}})),
    };
    json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": [first, {"name": "zstd", "configuration": {"level": 0, "checksum": false}}],
        "attributes": attributes,
    })
}

/// The `zarr.json` of a group with `attributes`.
pub(crate) fn group_meta(attributes: Value) -> Value {
    json!({"zarr_format": 3, "node_type": "group", "attributes": attributes})
}

/// `{"encoding-type": ty, "encoding-version": version}`.
pub(crate) fn enc(ty: &str, version: &str) -> Value {
    json!({"encoding-type": ty, "encoding-version": version})
}

/// The `shape` of an array document.
pub(crate) fn meta_shape(meta: &Value) -> Option<Vec<u64>> {
    meta.get("shape")?.as_array()?.iter().map(Value::as_u64).collect()
}

/// The regular grid's chunk shape of an array document.
pub(crate) fn meta_chunk(meta: &Value) -> Option<Vec<u64>> {
    let grid = meta.get("chunk_grid")?;
    if grid.get("name")?.as_str()? != "regular" {
        return None;
    }
    grid.get("configuration")?.get("chunk_shape")?.as_array()?.iter().map(Value::as_u64).collect()
}

/// The `data_type` of an array document.
pub(crate) fn meta_dtype(meta: &Value) -> Option<&str> {
    meta.get("data_type")?.as_str()
}

/// Where chunks are read and written: committed data is read (through zarrs) from one handle; chunks are written
/// into another (or the same), a private area (the fresh area of a new table, or an append's staging area) that no
/// reader looks at and no other writer touches until a commit publishes it. The keys written are remembered (for
/// [`Io::written`] and [`Io::sync_written`]).
pub(crate) struct Io<'a> {
    write: DataHandle,
    /// Writes go to [`staged_key`]`(rel)` (an append's staging area) instead of `rel`.
    flat: bool,
    pub name: &'a ElementName,
    store: Arc<dyn ReadableStorageTraits>,
    written: Mutex<BTreeSet<String>>,
}

impl<'a> Io<'a> {
    /// An I/O context that reads and writes table `name` at `handle` (a table being written, or one only read).
    pub fn new(handle: &DataHandle, name: &'a ElementName) -> Self {
        Io::with(handle, handle, false, name)
    }

    /// An I/O context that reads the committed table at `live` and writes the staged copy of each file `rel` at
    /// [`staged_key`]`(rel)` of `staging`.
    pub fn staging(live: &DataHandle, staging: &DataHandle, name: &'a ElementName) -> Self {
        Io::with(live, staging, true, name)
    }

    fn with(read: &DataHandle, write: &DataHandle, flat: bool, name: &'a ElementName) -> Self {
        Io {
            write: write.clone(),
            flat,
            name,
            store: Arc::new(WholeObjectReads(read.zarr_store())),
            written: Mutex::new(BTreeSet::new()),
        }
    }

    /// The key of the write handle that receives the table file `rel`.
    fn target(&self, rel: &str) -> String {
        if self.flat {
            staged_key(rel)
        } else {
            rel.to_string()
        }
    }

    /// A zarr error for this table.
    pub fn zarr_err(&self, path: &str, e: impl std::fmt::Display) -> Error {
        Error::Zarr {
            name: self.name.to_string(),
            reason: format!("array '{path}': {e}"),
        }
    }

    /// The array at `path` (relative to the table) described by `meta`, reading from the read handle; nothing is
    /// read or written.
    pub fn array(&self, path: &str, meta: &Value) -> Result<TableArray> {
        let metadata: ArrayMetadata = serde_json::from_value(meta.clone())
            .map_err(|e| self.zarr_err(path, format!("metadata is not valid Zarr: {e}")))?;
        Array::new_with_metadata(self.store.clone(), &format!("/{path}"), metadata)
            .map_err(|e| self.zarr_err(path, format!("cannot open: {e}")))
    }

    /// Writes the table file `rel` (relative to the table) into the write handle. The write area is private, so
    /// the backend may write in place ([`DataHandle::put_private`]); durable after [`Io::sync_written`].
    pub fn put_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.write.put_private(&self.target(rel), bytes)?;
        if let Ok(mut w) = self.written.lock() {
            w.insert(rel.to_string());
        }
        Ok(())
    }

    /// Keys (relative to the table, whatever key of the write handle received them) of the files written through
    /// this context, sorted.
    pub fn written(&self) -> Vec<String> {
        self.written.lock().map(|w| w.iter().cloned().collect()).unwrap_or_default()
    }

    /// Makes every object written through this context durable, with the directory entries naming them.
    pub fn sync_written(&self) -> Result<()> {
        let keys: Vec<String> = self.written().iter().map(|rel| self.target(rel)).collect();
        self.write.sync(&keys)
    }

    /// Encodes one full chunk `buf` of `array` at `idx` and writes it.
    fn store_chunk<T: Element>(&self, path: &str, array: &TableArray, idx: &[u64], buf: &[T]) -> Result<()> {
        let bytes = T::to_array_bytes(array.data_type(), buf).map_err(|e| self.zarr_err(path, e))?;
        let shape = array.chunk_shape(idx).map_err(|e| self.zarr_err(path, e))?;
        let encoded = array
            .codecs()
            .encode(bytes, &shape, array.data_type(), array.fill_value(), &CodecOptions::default())
            .map_err(|e| self.zarr_err(path, e))?;
        self.put_file(array.chunk_key(idx).as_str().trim_start_matches('/'), &encoded)
    }
}

/// Writes rows `[start, start + n)` of the 1-D or 2-D array at `path` (described by `meta`, whose shape already
/// covers them) from `vals` (C order, `n × width` values). Chunks that start at or after `start` are encoded and
/// written fresh; the one chunk that also holds rows before `start` is read from the read handle, updated and
/// written whole, so rows `< start` keep their bytes' meaning once the chunk replaces the committed one.
pub(crate) fn write_rows(io: &Io<'_>, path: &str, meta: &Value, start: u64, vals: &Vals) -> Result<()> {
    let array = io.array(path, meta)?;
    let dtype = meta_dtype(meta).unwrap_or("");
    if dtype != vals.zarr_type() {
        return Err(io.zarr_err(path, format!("holds {dtype} but {} values were given", vals.zarr_type())));
    }
    with_vals!(vals, v => write_rows_t(io, path, meta, &array, start, v))
}

fn write_rows_t<T>(io: &Io<'_>, path: &str, meta: &Value, array: &TableArray, start: u64, data: &[T]) -> Result<()>
where
    T: Element + ElementOwned + Clone + Default + Send + Sync,
{
    let shape = meta_shape(meta).ok_or_else(|| io.zarr_err(path, "no shape"))?;
    let grid = meta_chunk(meta).ok_or_else(|| io.zarr_err(path, "not a regular chunk grid"))?;
    if shape.is_empty() || shape.len() > 2 || grid.len() != shape.len() || grid.contains(&0) {
        return Err(io.zarr_err(path, format!("shape {shape:?} / chunks {grid:?} is not a 1-D or 2-D row array")));
    }
    let width = shape.get(1).copied().unwrap_or(1);
    let (cr, cc) = (grid[0], grid.get(1).copied().unwrap_or(1));
    let n = (data.len() as u64).checked_div(width).unwrap_or(0);
    if n * width != data.len() as u64 || start + n > shape[0] {
        return Err(io.zarr_err(path, format!("{} values do not fit rows {start}.. of shape {shape:?}", data.len())));
    }
    if n == 0 || width == 0 {
        return Ok(());
    }
    let end = start + n;
    let col_chunks = width.div_ceil(cc);
    let cells: Vec<(u64, u64)> = (start / cr..end.div_ceil(cr))
        .flat_map(|r| (0..col_chunks).map(move |c| (r, c)))
        .collect();
    cells.par_iter().try_for_each(|&(rc, cj)| {
        let row0 = rc * cr;
        let idx: Vec<u64> = if shape.len() == 2 { vec![rc, cj] } else { vec![rc] };
        let boundary = row0 < start;
        let size = (cr * cc) as usize;
        let mut buf: Vec<T> = if boundary {
            array
                .retrieve_chunk::<Vec<T>>(&idx)
                .map_err(|e| io.zarr_err(path, format!("reading chunk {idx:?}: {e}")))?
        } else {
            vec![T::default(); size]
        };
        if buf.len() != size {
            return Err(io.zarr_err(path, format!("chunk {idx:?} decoded to {} values, expected {size}", buf.len())));
        }
        let c0 = cj * cc;
        let c1 = (c0 + cc).min(width);
        for r in row0.max(start)..(row0 + cr) {
            let at = ((r - row0) * cc) as usize;
            for c in c0..(c0 + cc) {
                let slot = at + (c - c0) as usize;
                buf[slot] = if r < end && c < c1 {
                    data[((r - start) * width + c) as usize].clone()
                } else {
                    T::default()
                };
            }
        }
        io.store_chunk(path, array, &idx, &buf)
    })
}

/// Writes the whole content of a (small, single-chunk) array of any dimension: `vals` fills the chunk at the
/// origin, padded with the fill value.
pub(crate) fn write_whole(io: &Io<'_>, path: &str, meta: &Value, vals: &Vals) -> Result<()> {
    let array = io.array(path, meta)?;
    let shape = meta_shape(meta).ok_or_else(|| io.zarr_err(path, "no shape"))?;
    if shape.contains(&0) {
        return Ok(());
    }
    let chunk = meta_chunk(meta).ok_or_else(|| io.zarr_err(path, "not a regular chunk grid"))?;
    if chunk != shape {
        return Err(io.zarr_err(path, "expected a single chunk"));
    }
    let idx = vec![0u64; shape.len()];
    with_vals!(vals, v => io.store_chunk(path, &array, &idx, v))
}

/// Reads rows `[0, n)` of the 1-D or 2-D array at `path` (any dimension is accepted; the full extent of the other
/// axes is read).
pub(crate) fn read_rows(io: &Io<'_>, path: &str, meta: &Value, n: u64) -> Result<Vals> {
    let array = io.array(path, meta)?;
    let shape = meta_shape(meta).ok_or_else(|| io.zarr_err(path, "no shape"))?;
    let dtype = meta_dtype(meta).unwrap_or("");
    let mut ranges: Vec<std::ops::Range<u64>> = shape.iter().map(|&d| 0..d).collect();
    if let Some(r) = ranges.first_mut() {
        if n > r.end {
            return Err(io.zarr_err(path, format!("asked for {n} rows of an array of shape {shape:?}")));
        }
        *r = 0..n;
    }
    let empty = ranges.iter().any(|r| r.is_empty());
    with_dtype!(dtype, T, wrap => {
        if empty {
            return Ok(wrap(Vec::new()));
        }
        let v: Vec<T> = array
            .retrieve_array_subset::<Vec<T>>(&ranges)
            .map_err(|e| io.zarr_err(path, format!("reading: {e}")))?;
        Ok(wrap(v))
    }, Err(io.zarr_err(path, format!("data type {dtype:?} is not supported"))))
}

/// Encodes chunk `idx` of the array at `path` (described by `meta`) holding `buf` (one full chunk), without
/// writing it: returns the chunk file's path relative to the table and its bytes.
pub(crate) fn encode_chunk(io: &Io<'_>, path: &str, meta: &Value, idx: &[u64], buf: &Vals) -> Result<(String, Vec<u8>)> {
    let array = io.array(path, meta)?;
    let shape = array.chunk_shape(idx).map_err(|e| io.zarr_err(path, e))?;
    let bytes = with_vals!(buf, v => element_bytes(io, path, &array, v))?;
    let encoded = array
        .codecs()
        .encode(bytes, &shape, array.data_type(), array.fill_value(), &CodecOptions::default())
        .map_err(|e| io.zarr_err(path, e))?;
    let key = array.chunk_key(idx);
    Ok((key.as_str().trim_start_matches('/').to_string(), encoded.to_vec()))
}

fn element_bytes<'b, T: Element>(io: &Io<'_>, path: &str, array: &TableArray, v: &'b [T]) -> Result<zarrs::array::ArrayBytes<'b>> {
    T::to_array_bytes(array.data_type(), v).map_err(|e| io.zarr_err(path, e))
}
