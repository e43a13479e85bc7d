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
    /// A user lock ([`crate::Store::lock`]) was not acquired within the timeout; nothing is held.
    #[error(
        "timed out after {waited_ms} ms waiting for {lock}: another thread or process holds it{also}; wait longer (a \
         larger timeout, or none to wait until it is free), or find the holder",
        lock = .name.as_ref().map(|n| format!("user lock '{n}'")).unwrap_or_else(|| "the whole-store user lock".into()),
        also = .name.as_ref().map(|_| " (or holds the whole-store lock in write mode)").unwrap_or_default()
    )]
    LockTimeout {
        /// The lock's name as asked for; `None` for the whole-store lock.
        name: Option<String>,
        /// How long the caller waited, in milliseconds.
        waited_ms: u64,
    },
    /// An error reported by the zarrs library while encoding or decoding array data.
    #[error("zarr error in element '{name}': {reason}")]
    Zarr {
        /// The element being written or read.
        name: String,
        /// The message from zarrs.
        reason: String,
    },
    /// A write plan ([`crate::Store::create_plan`]) cannot be made as asked: a part not aligned to the write units
    /// or outside the array, no parts or more parts than write units, or a spec plans do not support. Nothing was
    /// written.
    #[error("invalid write plan for '{name}': {reason}")]
    InvalidPlan {
        /// The element (or array path) the plan would write.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two parts of a write plan overlap, so their writers would write the same chunks or shards. Nothing was
    /// written.
    #[error(
        "parts {first} and {second} of the write plan for '{name}' overlap in {overlap}: two writers would \
         write the same chunks or shards; give every part a disjoint region aligned to the write units (or let the \
         plan split the array with a part count)"
    )]
    PartsOverlap {
        /// The element the plan would write.
        name: String,
        /// Index of the first part.
        first: usize,
        /// Index of the second part.
        second: usize,
        /// The region both cover, one `start..end` per axis.
        overlap: String,
    },
    /// No write plan has this id (it was never created, or `gc` reclaimed it).
    #[error("write plan '{plan_id}' does not exist: {reason}; list the plans with `zarrtx plans STORE`")]
    PlanNotFound {
        /// The id asked for.
        plan_id: String,
        /// Why it was not found.
        reason: String,
    },
    /// A write plan cannot be committed yet: some of its parts are not written. Nothing was committed.
    #[error(
        "write plan '{plan_id}' for '{name}' cannot be committed: {count} of its {parts} parts are not \
         written yet ({list}); run them (a part interrupted by a crash can simply be run again), then commit",
        count = .missing.len(),
        list = part_list(.missing)
    )]
    PlanIncomplete {
        /// The plan.
        plan_id: String,
        /// The element it writes.
        name: String,
        /// The parts not written yet, in order.
        missing: Vec<usize>,
        /// How many parts the plan has.
        parts: usize,
    },
    /// An array plan of a plain Zarr hierarchy would create an array where a node (array or group) already
    /// exists, or under an ancestor that is an array. Nothing was changed.
    #[error("cannot create an array at '{path}' in the hierarchy at {hierarchy}: {reason}")]
    NodeExists {
        /// The hierarchy's root.
        hierarchy: PathBuf,
        /// The array's path inside the hierarchy.
        path: String,
        /// What is there, and what to do instead.
        reason: String,
    },
    /// The storage backend does not offer an operation this call needs (see `storage::Capabilities`).
    #[error("the storage at {path} does not support {operation}, which this operation needs: use a backend that \
             does (a local or shared POSIX filesystem), or another way to do it")]
    Unsupported {
        /// The key being accessed.
        path: PathBuf,
        /// The missing operation.
        operation: String,
    },
    /// The path does not hold a Zarr v3 hierarchy zarrtx can write arrays into (see [`crate::Hierarchy`]).
    #[error("{path} is not a Zarr v3 hierarchy zarrtx can write arrays into: {reason}")]
    NotAHierarchy {
        /// The path.
        path: PathBuf,
        /// Why, and what to do instead.
        reason: String,
    },
}

/// `parts 1, 4, 7` (the first 20, then how many more).
fn part_list(parts: &[usize]) -> String {
    const SHOWN: usize = 20;
    let shown: Vec<String> = parts.iter().take(SHOWN).map(usize::to_string).collect();
    let more = parts.len().saturating_sub(SHOWN);
    let label = if parts.len() == 1 { "part" } else { "parts" };
    if more > 0 {
        format!("{label} {} and {more} more", shown.join(", "))
    } else {
        format!("{label} {}", shown.join(", "))
    }
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
