//! zarrs' storage traits over a [`DataHandle`], so that zarrs reads and writes element data through the storage
//! seam (zarrs keys are relative to the handle's prefix). Engine errors keep their meaning across the boundary:
//! "no space", "read-only" and "permission denied" reach zarrs as the I/O errors they came from, so that
//! [`crate::raster::zarr_io`] maps them back to [`Error::StorageFull`] / [`Error::ReadOnly`].

use super::handle::DataHandle;
use crate::error::Error;
use std::sync::Arc;
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator, InvalidByteRangeError};
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
    StoreKeys, StoreKeysPrefixes, StorePrefix, StorePrefixes, WritableStorageTraits,
};

/// zarrs storage over a [`DataHandle`].
#[derive(Debug)]
pub struct ZarrStore {
    handle: DataHandle,
}

impl ZarrStore {
    /// zarrs storage whose keys are relative to `handle`.
    pub fn new(handle: DataHandle) -> Self {
        ZarrStore { handle }
    }
}

/// An engine error as a zarrs storage error (I/O errors keep their OS error code).
fn to_storage_error(e: Error) -> StorageError {
    let code = match &e {
        Error::StorageFull { .. } => Some(libc::ENOSPC),
        Error::ReadOnly { .. } => Some(libc::EROFS),
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    };
    match code {
        Some(code) => StorageError::IOError(Arc::new(std::io::Error::from_raw_os_error(code))),
        None => StorageError::Other(e.to_string()),
    }
}

fn prefix_str(prefix: &StorePrefix) -> &str {
    prefix.as_str().trim_end_matches('/')
}

fn store_key(rel: &str) -> Result<StoreKey, StorageError> {
    StoreKey::new(rel).map_err(StorageError::from)
}

impl ReadableStorageTraits for ZarrStore {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        Ok(self.handle.get(key.as_str()).map_err(to_storage_error)?.map(Bytes::from))
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let Some(size) = self.handle.size(key.as_str()).map_err(to_storage_error)? else {
            return Ok(None);
        };
        let key = key.as_str().to_string();
        let mut out = Vec::new();
        for range in byte_ranges {
            let (start, end) = match range {
                ByteRange::FromStart(offset, None) => (offset, size),
                ByteRange::FromStart(offset, Some(length)) => (offset, offset.saturating_add(length)),
                ByteRange::Suffix(length) => (size.saturating_sub(length), size),
            };
            if start > end || end > size {
                out.push(Err(StorageError::from(InvalidByteRangeError::new(range, size))));
                continue;
            }
            match self.handle.get_range(&key, start..end).map_err(to_storage_error)? {
                // Removed between the size and the read: as if it had been missing.
                None => return Ok(None),
                Some(bytes) if bytes.len() as u64 != end - start => {
                    out.push(Err(StorageError::from(InvalidByteRangeError::new(range, bytes.len() as u64))))
                }
                Some(bytes) => out.push(Ok(Bytes::from(bytes))),
            }
        }
        Ok(Some(Box::new(out.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.handle.size(key.as_str()).map_err(to_storage_error)
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl WritableStorageTraits for ZarrStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.handle.put_relaxed(key.as_str(), &value).map_err(to_storage_error)
    }

    fn set_partial_many(&self, key: &StoreKey, offset_values: OffsetBytesIterator) -> Result<(), StorageError> {
        zarrs::storage::store_set_partial_many(self, key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.handle.delete(key.as_str()).map_err(to_storage_error)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.handle.delete_tree(prefix_str(prefix)).map(|_| ()).map_err(to_storage_error)
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl ListableStorageTraits for ZarrStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.list_prefix(&StorePrefix::root())
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        let entries = self.handle.list_recursive(prefix_str(prefix)).map_err(to_storage_error)?;
        entries.into_iter().map(|(k, _)| store_key(&k)).collect()
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let dir = prefix_str(prefix);
        let mut keys = StoreKeys::new();
        let mut prefixes = StorePrefixes::new();
        for child in self.handle.list(dir).map_err(to_storage_error)? {
            let rel = if dir.is_empty() { child } else { format!("{dir}/{child}") };
            if self.handle.size(&rel).map_err(to_storage_error)?.is_some() {
                keys.push(store_key(&rel)?);
            } else {
                prefixes.push(StorePrefix::new(format!("{rel}/")).map_err(StorageError::from)?);
            }
        }
        Ok(StoreKeysPrefixes::new(keys, prefixes))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        let entries = self.handle.list_recursive(prefix_str(prefix)).map_err(to_storage_error)?;
        Ok(entries.iter().map(|(_, n)| n).sum())
    }
}
