//! Pieces shared by points and shapes: transformation checks and JSON, the element group document, pandas schema
//! metadata, and Parquet files written to and read from memory (stored through a [`DataHandle`]).

use crate::error::{Error, Result};
use crate::name::ElementName;
use crate::storage::DataHandle;
use crate::transform::{to_ngff_json, Transformation, DEFAULT_COORDINATE_SYSTEM};
use arrow_schema::{DataType, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(crate) fn invalid(name: &ElementName, reason: impl Into<String>) -> Error {
    Error::InvalidElement { name: name.to_string(), reason: reason.into() }
}

/// Checks every transformation against the element's axes (`x`, `y`[, `z`]).
pub(crate) fn check_transformations(
    name: &ElementName,
    transformations: &BTreeMap<String, Transformation>,
    axes: &[&str],
) -> Result<()> {
    for (cs, t) in transformations {
        if cs.is_empty() || cs.chars().any(|c| c.is_control()) {
            return Err(invalid(name, format!("coordinate system name {cs:?} is empty or holds control characters")));
        }
        crate::transform::check_against_axes(t, axes)
            .map_err(|e| invalid(name, format!("transformation to coordinate system '{cs}': {e}")))?;
    }
    Ok(())
}

/// The `coordinateTransformations` list; an empty map means identity into `global`.
pub(crate) fn transformations_json(transformations: &BTreeMap<String, Transformation>, axes: &[&str]) -> Value {
    if transformations.is_empty() {
        return json!([to_ngff_json(&Transformation::Identity, axes, DEFAULT_COORDINATE_SYSTEM)]);
    }
    Value::Array(transformations.iter().map(|(cs, t)| to_ngff_json(t, axes, cs)).collect())
}

/// The element group's `zarr.json` document with `attributes`, as spatialdata writes it.
pub(crate) fn group_document(attributes: Value) -> Value {
    json!({"attributes": attributes, "zarr_format": 3, "node_type": "group"})
}

/// Parquet settings: snappy, as dask and geopandas write by default.
pub(crate) fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("zarrtx {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A Parquet file being written to memory: a part or a shapes file, stored with [`ParquetBuffer::store`].
pub(crate) struct ParquetBuffer<'a> {
    name: &'a ElementName,
    handle: &'a DataHandle,
    rel: String,
    writer: ArrowWriter<Vec<u8>>,
}

impl<'a> ParquetBuffer<'a> {
    /// Opens a Parquet writer (to memory) for `schema`, to be stored at `rel` of `handle`; its schema-level
    /// metadata (`pandas`, `geo`) is also stored as the file's key-value metadata, where pyarrow, dask and
    /// geopandas look for it.
    pub(crate) fn open(
        name: &'a ElementName,
        handle: &'a DataHandle,
        rel: String,
        schema: &arrow_schema::SchemaRef,
    ) -> Result<Self> {
        let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(writer_properties()))
            .map_err(|e| parquet_write_error(name, handle, &rel, e))?;
        let mut meta: Vec<(&String, &String)> = schema.metadata().iter().collect();
        meta.sort();
        for (k, v) in meta {
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(k.clone(), v.clone()));
        }
        Ok(ParquetBuffer { name, handle, rel, writer })
    }

    /// Encodes one batch.
    pub(crate) fn write(&mut self, batch: &arrow_array::RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| parquet_write_error(self.name, self.handle, &self.rel, e))
    }

    /// Finishes the file and stores it (privately: staging), returning its key relative to the handle.
    pub(crate) fn store(self) -> Result<String> {
        let ParquetBuffer { name, handle, rel, writer } = self;
        let bytes = writer.into_inner().map_err(|e| parquet_write_error(name, handle, &rel, e))?;
        handle.put_private(&rel, &bytes)?;
        Ok(rel)
    }
}

/// pandas' (`pandas_type`, `numpy_type`) for an Arrow type, as pyarrow records them in the `pandas` metadata.
/// `numpy_type` must be a dtype string pandas can parse; anything unusual is recorded as `object`.
fn pandas_types(dt: &DataType) -> (String, String, Value) {
    let same = |s: &str| (s.to_string(), s.to_string(), Value::Null);
    match dt {
        DataType::Boolean => same("bool"),
        DataType::Int8 => same("int8"),
        DataType::Int16 => same("int16"),
        DataType::Int32 => same("int32"),
        DataType::Int64 => same("int64"),
        DataType::UInt8 => same("uint8"),
        DataType::UInt16 => same("uint16"),
        DataType::UInt32 => same("uint32"),
        DataType::UInt64 => same("uint64"),
        DataType::Float16 => same("float16"),
        DataType::Float32 => same("float32"),
        DataType::Float64 => same("float64"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("unicode".into(), "object".into(), Value::Null),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            ("bytes".into(), "object".into(), Value::Null)
        }
        DataType::Dictionary(key, _) => {
            let (_, idx, _) = pandas_types(key);
            ("categorical".into(), idx, json!({"num_categories": Value::Null, "ordered": false}))
        }
        _ => ("object".into(), "object".into(), Value::Null),
    }
}

/// The `pandas` schema metadata for `schema`, whose column `index` (if any) is the DataFrame index.
pub(crate) fn pandas_metadata(schema: &Schema, index: Option<&str>) -> String {
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let (pt, nt, meta) = pandas_types(f.data_type());
            let name = if Some(f.name().as_str()) == index { Value::Null } else { json!(f.name()) };
            json!({"name": name, "field_name": f.name(), "pandas_type": pt, "numpy_type": nt, "metadata": meta})
        })
        .collect();
    let mut m = Map::new();
    m.insert("index_columns".into(), json!(index.into_iter().collect::<Vec<_>>()));
    m.insert(
        "column_indexes".into(),
        json!([{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"}}]),
    );
    m.insert("columns".into(), Value::Array(columns));
    m.insert("creator".into(), json!({"library": "zarrtx", "version": env!("CARGO_PKG_VERSION")}));
    m.insert("pandas_version".into(), json!("2.2.3"));
    Value::Object(m).to_string()
}

/// A parquet error while writing `rel` of `handle`: the data could not be encoded (an unsupported column type, ...).
pub(crate) fn parquet_write_error(
    name: &ElementName,
    handle: &DataHandle,
    rel: &str,
    e: parquet::errors::ParquetError,
) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => Error::io(handle.describe(rel), *io),
            Err(other) => invalid(name, format!("writing {} failed: {other}", handle.describe(rel).display())),
        },
        other => invalid(name, format!("the data cannot be stored as Parquet: {other}")),
    }
}

/// A parquet error while reading `rel` of a committed element's `handle`.
pub(crate) fn parquet_read_error(handle: &DataHandle, rel: &str, e: impl std::fmt::Display) -> Error {
    Error::CorruptMetadata { path: handle.describe(rel), reason: format!("unreadable Parquet file: {e}") }
}

/// A reader over the whole Parquet file `rel` of `handle`, read in one request.
pub(crate) fn parquet_reader(handle: &DataHandle, rel: &str) -> Result<ParquetRecordBatchReaderBuilder<Bytes>> {
    let bytes = Bytes::from(handle.read(rel)?);
    ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| parquet_read_error(handle, rel, e))
}

/// The footer (metadata) of the Parquet file `rel` of `handle`, read with byte-range requests: the data pages are
/// not read.
pub(crate) fn parquet_footer(handle: &DataHandle, rel: &str) -> Result<ParquetMetaData> {
    let len = handle.size(rel)?.ok_or_else(|| Error::io(handle.describe(rel), std::io::ErrorKind::NotFound.into()))?;
    let object = RangeReader { handle, rel, len };
    ParquetMetaDataReader::new().parse_and_finish(&object).map_err(|e| match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<Error>() {
            Ok(engine) => *engine,
            Err(other) => parquet_read_error(handle, rel, other),
        },
        other => parquet_read_error(handle, rel, other),
    })
}

/// A stored object read by byte ranges (for Parquet footers).
struct RangeReader<'a> {
    handle: &'a DataHandle,
    rel: &'a str,
    len: u64,
}

impl Length for RangeReader<'_> {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for RangeReader<'_> {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.get_bytes(start, self.len.saturating_sub(start) as usize)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let bytes = self
            .handle
            .get_range(self.rel, start..start + length as u64)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?
            .ok_or_else(|| {
                let missing = Error::io(self.handle.describe(self.rel), std::io::ErrorKind::NotFound.into());
                parquet::errors::ParquetError::External(Box::new(missing))
            })?;
        if bytes.len() != length {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "expected {length} bytes at offset {start}, got {}",
                bytes.len()
            )));
        }
        Ok(Bytes::from(bytes))
    }
}
