//! The thin layer between zarrtx and zarrs: building `Array` handles from our own `zarr.json` documents on a
//! filesystem store, reading and writing those documents, and mapping zarrs errors to [`Error`].

use crate::error::{Error, Result};
use crate::name::ElementName;
use serde_json::Value;
use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use zarrs::array::codec::{ShardingCodecOptions, SubchunkWriteOrder};
use zarrs::array::{Array, ArrayError, ArrayMetadata, CodecError, CodecSpecificOptions};
use zarrs::storage::StorageError;
use zarrs::filesystem::FilesystemStore;

/// A zarrs array on the local filesystem.
pub(crate) type FsArray = Array<FilesystemStore>;

/// Wraps a zarrs failure for element `name`.
pub(crate) fn zarr_err(name: &ElementName, e: impl Display) -> Error {
    Error::Zarr {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

/// Wraps a zarrs array failure while accessing `dir` for element `name`. Disk-full, read-only and permission
/// failures become [`Error::StorageFull`] / [`Error::ReadOnly`] (via [`Error::io`]) so callers can react to them.
pub(crate) fn array_err(name: &ElementName, dir: &Path, e: ArrayError) -> Error {
    let io = match &e {
        ArrayError::StorageError(StorageError::IOError(io)) => Some(io.clone()),
        ArrayError::CodecError(CodecError::IOError(io)) => Some(io.clone()),
        ArrayError::CodecError(CodecError::StorageError(StorageError::IOError(io))) => Some(io.clone()),
        _ => None,
    };
    if let Some(code) = io.and_then(|io| io.raw_os_error()) {
        if [libc::ENOSPC, libc::EDQUOT, libc::EROFS, libc::EACCES, libc::EPERM].contains(&code) {
            return Error::io(dir, std::io::Error::from_raw_os_error(code));
        }
    }
    zarr_err(name, e)
}

/// A filesystem store rooted at `dir` (the element's directory).
pub(crate) fn store(dir: &Path, name: &ElementName) -> Result<Arc<FilesystemStore>> {
    FilesystemStore::new(dir)
        .map(Arc::new)
        .map_err(|e| zarr_err(name, format!("cannot open {} as a zarr store: {e}", dir.display())))
}

/// An array handle at `path` (e.g. `"s0"`) under `store` described by the `zarr.json` document `meta`. Nothing is
/// written.
pub(crate) fn array_from_json(
    store: Arc<FilesystemStore>,
    path: &str,
    meta: &Value,
    name: &ElementName,
) -> Result<FsArray> {
    let metadata: ArrayMetadata = serde_json::from_value(meta.clone())
        .map_err(|e| zarr_err(name, format!("array metadata of '{path}' is not valid Zarr: {e}")))?;
    let mut array = Array::new_with_metadata(store, &format!("/{path}"), metadata)
        .map_err(|e| zarr_err(name, format!("cannot create array '{path}': {e}")))?;
    // Inner chunks in C order inside each shard (zarrs' default is completion order): the same data always gives
    // the same shard bytes, whichever process or thread count wrote it, as zarr-python lays shards out.
    let order = ShardingCodecOptions::default().with_subchunk_write_order(SubchunkWriteOrder::C);
    array.set_codec_specific_options(&CodecSpecificOptions::default().with_option(order));
    Ok(array)
}

/// Reads and parses the JSON file at `path`.
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
}

/// Writes `value` as pretty JSON to `path`, creating parent directories.
pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}
