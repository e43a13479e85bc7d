//! [`DataHandle`]: what element writers and readers get instead of a path — a storage and the key prefix of one
//! element (or staging area, or array). Every key they use is relative to that prefix.

use super::zarr_adapter::ZarrStore;
use super::{join, Storage};
use crate::error::{Error, Result};
use crate::meta::NodeTree;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use zarrs::storage::ReadableWritableListableStorage;

/// A storage and a key prefix: the data of one element, staging area or array.
#[derive(Clone, Debug)]
pub struct DataHandle {
    storage: Arc<dyn Storage>,
    prefix: String,
}

impl DataHandle {
    /// The data below `prefix` of `storage`.
    pub fn new(storage: Arc<dyn Storage>, prefix: impl Into<String>) -> Self {
        DataHandle { storage, prefix: prefix.into().trim_matches('/').to_string() }
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The prefix (relative to the store root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store key of `rel` (a key relative to this handle).
    pub fn key(&self, rel: &str) -> String {
        join(&self.prefix, rel.trim_matches('/'))
    }

    /// A handle on the sub-prefix `rel`.
    pub fn child(&self, rel: &str) -> DataHandle {
        DataHandle { storage: self.storage.clone(), prefix: self.key(rel) }
    }

    /// Where `rel` is, for messages.
    pub fn describe(&self, rel: &str) -> PathBuf {
        let key = self.key(rel);
        if key.is_empty() {
            self.storage.location()
        } else {
            self.storage.location().join(key)
        }
    }

    /// The object at `rel`, or `None`.
    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        self.storage.get(&self.key(rel))
    }

    /// The object at `rel`, or an error naming it when it does not exist.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.get(rel)?.ok_or_else(|| Error::io(self.describe(rel), std::io::ErrorKind::NotFound.into()))
    }

    /// A byte range of the object at `rel`, or `None`.
    pub fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Option<Vec<u8>>> {
        self.storage.get_range(&self.key(rel), range)
    }

    /// The size of the object at `rel`, or `None`.
    pub fn size(&self, rel: &str) -> Result<Option<u64>> {
        self.storage.size(&self.key(rel))
    }

    /// True when `rel` names an object or a non-empty prefix.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        self.storage.exists(&self.key(rel))
    }

    /// Writes an object only this writer uses until a commit publishes it (in place where the backend allows);
    /// durable after [`DataHandle::sync`].
    pub fn put_private(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.storage.put_private(&self.key(rel), bytes)
    }

    /// Replaces an object atomically (readers see the old or the new bytes); durable after [`DataHandle::sync`].
    pub fn put_relaxed(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.storage.put_relaxed(&self.key(rel), bytes)
    }

    /// Deletes an object (a missing one is not an error).
    pub fn delete(&self, rel: &str) -> Result<()> {
        self.storage.delete(&self.key(rel))
    }

    /// Names of the direct children of `rel`, sorted.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        self.storage.list(&self.key(rel))
    }

    /// Every object below `rel`, as keys relative to this handle, with sizes.
    pub fn list_recursive(&self, rel: &str) -> Result<Vec<(String, u64)>> {
        let base_len = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        Ok(self
            .storage
            .list_recursive(&self.key(rel))?
            .into_iter()
            .map(|(k, n)| (k.get(base_len..).unwrap_or_default().to_string(), n))
            .collect())
    }

    /// Deletes everything below `rel` (or the object `rel`), returning the bytes freed.
    pub fn delete_tree(&self, rel: &str) -> Result<u64> {
        self.storage.delete_tree(&self.key(rel))
    }

    /// Makes the objects `rels` (relative keys) durable.
    pub fn sync(&self, rels: &[String]) -> Result<()> {
        let keys: Vec<String> = rels.iter().map(|r| self.key(r)).collect();
        self.storage.sync(&keys)
    }

    /// Makes everything below this handle durable.
    pub fn sync_all(&self) -> Result<()> {
        self.storage.sync_prefix(&self.prefix)
    }

    /// The JSON document at `rel`, or `None`; a document that does not parse is `CorruptMetadata` naming it.
    pub fn get_json(&self, rel: &str) -> Result<Option<Value>> {
        match self.get(rel)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::CorruptMetadata {
                path: self.describe(rel),
                reason: format!("not valid JSON: {e}"),
            }),
        }
    }

    /// The JSON document at `rel`; a missing one is an I/O error naming it.
    pub fn read_json(&self, rel: &str) -> Result<Value> {
        self.get_json(rel)?.ok_or_else(|| Error::io(self.describe(rel), std::io::ErrorKind::NotFound.into()))
    }

    /// Writes `value` as pretty JSON at `rel` (private: see [`DataHandle::put_private`]).
    pub fn put_json(&self, rel: &str, value: &Value) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::Io { path: self.describe(rel), source: std::io::Error::other(e) })?;
        self.put_private(rel, &bytes)
    }

    /// Writes every document of `tree` to `<path>/zarr.json` (private), returning the relative keys written.
    pub fn put_tree(&self, tree: &NodeTree) -> Result<Vec<String>> {
        let mut written = Vec::with_capacity(tree.len());
        for (path, doc) in tree {
            let rel = join(path, "zarr.json");
            self.put_json(&rel, doc)?;
            written.push(rel);
        }
        Ok(written)
    }

    /// A zarrs storage over this handle (zarrs keys are relative to the prefix).
    pub fn zarr_store(&self) -> ReadableWritableListableStorage {
        Arc::new(ZarrStore::new(self.clone()))
    }
}
