//! The thin layer between zarrtx and zarrs: building `Array` handles from our own `zarr.json` documents over the
//! storage seam (a [`DataHandle`]'s zarrs adapter), and mapping zarrs errors to [`Error`].

use crate::error::{Error, Result};
use crate::name::ElementName;
use crate::storage::DataHandle;
use serde_json::Value;
use std::fmt::Display;
use std::io::ErrorKind;
use zarrs::array::codec::{ShardingCodecOptions, SubchunkWriteOrder};
use zarrs::array::{Array, ArrayError, ArrayMetadata, CodecError, CodecSpecificOptions};
use zarrs::storage::{ReadableWritableListableStorage, ReadableWritableListableStorageTraits, StorageError};

/// A zarrs array over the storage seam (keys relative to a [`DataHandle`]).
pub(crate) type StoreArray = Array<dyn ReadableWritableListableStorageTraits>;

/// Wraps a zarrs failure for element `name`.
pub(crate) fn zarr_err(name: &ElementName, e: impl Display) -> Error {
    Error::Zarr {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

/// Wraps a zarrs array failure while accessing `rel` under `handle` for element `name`. Disk-full, quota,
/// read-only and permission failures (ENOSPC, EDQUOT, EROFS, EACCES, EPERM, which the storage adapter passes to
/// zarrs as the OS errors they came from) become [`Error::StorageFull`] / [`Error::ReadOnly`] (via [`Error::io`])
/// so callers can react to them.
pub(crate) fn array_err(name: &ElementName, handle: &DataHandle, rel: &str, e: ArrayError) -> Error {
    let io = match &e {
        ArrayError::StorageError(StorageError::IOError(io)) => Some(io.clone()),
        ArrayError::CodecError(CodecError::IOError(io)) => Some(io.clone()),
        ArrayError::CodecError(CodecError::StorageError(StorageError::IOError(io))) => Some(io.clone()),
        _ => None,
    };
    if let Some(io) = io {
        let full_or_refused = matches!(
            io.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied
        );
        if let (true, Some(code)) = (full_or_refused, io.raw_os_error()) {
            return Error::io(handle.describe(rel), std::io::Error::from_raw_os_error(code));
        }
    }
    zarr_err(name, e)
}

/// The zarrs store of `handle` (the element's data, or its staging area): zarrs keys are relative to it.
pub(crate) fn store(handle: &DataHandle) -> ReadableWritableListableStorage {
    handle.zarr_store()
}

/// An array handle at `path` (e.g. `"s0"`, or `""` for an array at the store's root) under `store` described by
/// the `zarr.json` document `meta`. Nothing is written.
pub(crate) fn array_from_json(
    store: ReadableWritableListableStorage,
    path: &str,
    meta: &Value,
    name: &ElementName,
) -> Result<StoreArray> {
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
