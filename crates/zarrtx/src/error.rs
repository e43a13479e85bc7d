//! The one error type of the engine: every failure a caller can meet, typed, with a message that names the
//! element (or path) concerned and says what to do about it.

use std::path::PathBuf;

/// Convenience alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the engine reports. Variants carry the element name or path they concern.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An element with this name (compared case-insensitively, across all element types) is already committed.
    #[error("element '{name}' already exists as {existing_type}/{existing_name}: choose another name, delete it first, or pass overwrite")]
    ElementExists {
        /// The name that was asked for.
        name: String,
        /// The type directory of the committed element that holds the name.
        existing_type: String,
        /// The committed element's name as spelled in the store.
        existing_name: String,
    },
    /// No committed element has this name.
    #[error("element '{name}' does not exist{at}: list the elements with `zarrtx info`", at = .version.map(|v| format!(" at version {v}")).unwrap_or_default())]
    ElementNotFound {
        /// The name that was asked for.
        name: String,
        /// The version that was read, when the read was pinned.
        version: Option<u64>,
    },
    /// The element name is not one spatialdata accepts.
    #[error("invalid element name '{name}': {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it is refused and what would be accepted.
        reason: String,
    },
    /// The element's data or description is not valid for its type (wrong dtype, axes, channel names, ...).
    #[error("invalid element '{name}': {reason}")]
    InvalidElement {
        /// The element being written.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Metadata in the store could not be parsed or is inconsistent.
    #[error("corrupt metadata at {path}: {reason}")]
    CorruptMetadata {
        /// The file that could not be understood.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The path is not a zarrtx or SpatialData store.
    #[error("{path} is not a SpatialData store: {reason}")]
    NotAStore {
        /// The path that was opened.
        path: PathBuf,
        /// What was missing.
        reason: String,
    },
    /// The storage medium lacks a primitive the concurrent protocol needs (G8).
    #[error("the storage at {path} cannot arbitrate concurrent writers: {reason}. Writing is refused; open with single_writer=true if you guarantee that only one process writes")]
    UnsafeMedium {
        /// The store's root.
        path: PathBuf,
        /// What the probe found.
        reason: String,
    },
    /// The version asked for does not exist (or was reclaimed by gc).
    #[error("version {version} is not available (the latest is {latest}): {reason}")]
    VersionNotAvailable {
        /// The version asked for.
        version: u64,
        /// The latest committed version.
        latest: u64,
        /// Why it cannot be read.
        reason: String,
    },
    /// Another writer changed what this operation was built on (e.g. the table was deleted or replaced while rows
    /// were being appended); nothing was committed.
    #[error("conflict on '{name}': {reason}")]
    Conflict {
        /// The element concerned.
        name: String,
        /// What changed and what to do.
        reason: String,
    },
    /// Too many commit attempts lost the race; the operation was not applied.
    #[error("commit of '{name}' did not succeed after {attempts} attempts under contention: nothing was changed, retry later")]
    Contention {
        /// The element being committed.
        name: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The store was opened read-only and a write was requested.
    #[error("the store at {path} is read-only: {reason}")]
    ReadOnly {
        /// The store's root.
        path: PathBuf,
        /// Why (opened read-only, or the filesystem refused writes).
        reason: String,
    },
    /// The storage device is full.
    #[error("no space left while writing {path}: free space on the device or choose another location; the store is unchanged")]
    StorageFull {
        /// The file being written when the device filled up.
        path: PathBuf,
    },
    /// Any other I/O failure, with the path it concerns.
    #[error("I/O error at {path}: {source}")]
    Io {
        /// The path being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error reported by the zarrs library while encoding or decoding array data.
    #[error("zarr error in element '{name}': {reason}")]
    Zarr {
        /// The element being written or read.
        name: String,
        /// The message from zarrs.
        reason: String,
    },
}

impl Error {
    /// Wraps an `std::io::Error` for `path`, mapping "no space", "read-only" and "permission denied" to their own
    /// variants so callers can react to them.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::StorageFull { path },
            Some(libc::EROFS) => Error::ReadOnly {
                reason: format!("the filesystem is mounted read-only ({source})"),
                path,
            },
            Some(libc::EACCES) | Some(libc::EPERM) => Error::ReadOnly {
                reason: format!("permission denied writing {} ({source}); check ownership and mode", path.display()),
                path,
            },
            _ => Error::Io { path, source },
        }
    }
}
