//! JSON documents kept in a [`Storage`]: read and parsed (a document that does not parse is `CorruptMetadata`
//! naming its file), or encoded for a `put`.

use super::Storage;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The document at `key` parsed as `T`, or `None` when there is none. `what` says what it should be, for the
/// error when it does not parse (e.g. "not a valid part record").
pub fn get_json<T: DeserializeOwned>(storage: &dyn Storage, key: &str, what: &str) -> Result<Option<T>> {
    match storage.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::CorruptMetadata {
            path: storage.location().join(key),
            reason: format!("{what}: {e}"),
        }),
    }
}

/// `value` as pretty JSON, to be stored at `key` (named in the error, which only a failing `Serialize` gives).
pub fn json_bytes<T: Serialize + ?Sized>(storage: &dyn Storage, key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Io { path: storage.location().join(key), source: std::io::Error::other(e) })
}
