//! Snapshots: a store as committed at one version. Element lists and metadata come from the log; data reads
//! locate the element's generation (still staged, installed, or evicted to the trash) and re-check after reading
//! that it did not move meanwhile, so a snapshot reads exactly what was committed at its version (G5).
//!
//! A generation's data moves at most twice, each time by one rename to a key that names it: from its staging area
//! to `<type>/<name>` when it is installed, and from there to `.zarrtx/trash/<d>-<key>` (`d` the commit that
//! displaced it) when it is evicted. So a read is valid when, after it, the data is still where it was read:
//! the staging area still exists, or no eviction of the generation has happened (its trash key does not exist).

use crate::error::{Error, Result};
use crate::layout;
use crate::log::state::generation_id;
use crate::log::{ElementRecord, StoreState, WriterInfo};
use crate::meta::NodeTree;
use crate::name::{ElementName, ElementType};
use crate::raster::{self, RasterArray, RasterInfo, RasterKind};
use crate::commit::Committer;
use std::ops::Range;
use crate::storage::DataHandle;
use std::sync::Arc;

/// A committed element as listed by a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementInfo {
    /// Name as committed.
    pub name: String,
    /// Type group.
    pub element_type: ElementType,
    /// Version of the commit that added it.
    pub version: u64,
    /// Transaction that added it.
    pub txn: String,
    /// Who added it.
    pub writer: WriterInfo,
}

impl From<&ElementRecord> for ElementInfo {
    fn from(r: &ElementRecord) -> Self {
        ElementInfo {
            name: r.name.to_string(),
            element_type: r.element_type,
            version: r.version,
            txn: r.txn.clone(),
            writer: r.writer.clone(),
        }
    }
}

/// The store as committed at one version.
#[derive(Clone)]
pub struct Snapshot {
    committer: Arc<Committer>,
    state: Arc<StoreState>,
}

/// Where a generation's data was read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// In its staging area (committed, not installed yet).
    Staged(String),
    /// At `<type>/<name>`.
    Installed(String),
    /// Evicted to the trash by the commit at version `d`.
    Trash(String),
}

impl Location {
    fn key(&self) -> &str {
        match self {
            Location::Staged(k) | Location::Installed(k) | Location::Trash(k) => k,
        }
    }
}

impl Snapshot {
    pub(crate) fn new(committer: Arc<Committer>, state: Arc<StoreState>) -> Self {
        Snapshot { committer, state }
    }

    /// The version this snapshot reflects.
    pub fn version(&self) -> u64 {
        self.state.version
    }

    /// Every element, sorted by type and name.
    pub fn elements(&self) -> Vec<ElementInfo> {
        let mut v: Vec<ElementInfo> = self.state.elements.values().map(ElementInfo::from).collect();
        v.sort_by(|a, b| (a.element_type, &a.name).cmp(&(b.element_type, &b.name)));
        v
    }

    fn record(&self, name: &str) -> Result<&ElementRecord> {
        let n = ElementName::new(name)?;
        self.state.get(&n).ok_or_else(|| Error::ElementNotFound {
            name: name.to_string(),
            version: Some(self.state.version),
        })
    }

    /// One element.
    pub fn element(&self, name: &str) -> Result<ElementInfo> {
        self.record(name).map(ElementInfo::from)
    }

    /// The `zarr.json` documents of an element's subtree.
    pub fn metadata(&self, name: &str) -> Result<NodeTree> {
        Ok(self.record(name)?.tree.clone())
    }

    /// Axes, dtype, levels, channels and transformations of an image or labels element.
    pub fn raster_info(&self, name: &str) -> Result<RasterInfo> {
        let record = self.record(name)?;
        raster::info::describe(raster_kind(record)?, &record.tree)
    }

    /// Reads a region (`None`: everything) of level `level` of an image or labels element.
    pub fn read_raster(&self, name: &str, level: usize, region: Option<&[Range<u64>]>) -> Result<RasterArray> {
        let record = self.record(name)?;
        raster_kind(record)?;
        let n = record.name.clone();
        self.read_with(name, |data, _| raster::read::read_region(data, &n, level, region))
    }

    /// Runs `read` on the data of element `name` as committed at this snapshot's version — a [`DataHandle`] on
    /// wherever that generation lives now (staged, installed, or in the trash after a later overwrite or delete) —
    /// with its committed metadata tree. If the data moves while `read` runs, the read is repeated where it went,
    /// so the result is never torn. This is the engine's generic relocation-safe read; every typed read (rasters,
    /// points, shapes, tables) and [`Snapshot::read_element_file`] go through it.
    pub fn read_with<T>(&self, name: &str, mut read: impl FnMut(&DataHandle, &NodeTree) -> Result<T>) -> Result<T> {
        let record = self.record(name)?;
        // A table's appends up to this version must be installed for its rows to be read in place.
        if record.modified_version > record.version && !self.committer.ensure_installed(record.modified_version)? {
            return Err(Error::VersionNotAvailable {
                version: self.state.version,
                latest: self.committer.latest_state()?.version,
                reason: format!(
                    "rows appended to '{}' are committed but not installed yet (a writer stopped after committing) \
                     and this handle is read-only: open the store writable once, or run `zarrtx publish`",
                    record.name
                ),
            });
        }
        for _ in 0..8 {
            let location = self.locate(record)?;
            let data = read(&DataHandle::new(self.committer.storage.clone(), location.key()), &record.tree);
            if self.still_there(record, &location)? {
                return data;
            }
        }
        Err(Error::Contention { name: name.to_string(), attempts: 8 })
    }

    /// The bytes of one object of element `name` as committed at this snapshot's version (`rel` is a key relative
    /// to the element, e.g. `shapes.parquet` or `points.parquet/part.0.parquet`), whole or only `range` (clipped
    /// to its end). Read inside [`Snapshot::read_with`], so a concurrent overwrite or delete cannot tear it; the
    /// object's bytes never change once committed, so several range reads of one object always agree.
    /// `InvalidElement` for a key with empty, `.` or `..` segments or a range that ends before it starts; an I/O
    /// error (not found) naming it when the element has no such object.
    pub fn read_element_file(&self, name: &str, rel: &str, range: Option<Range<u64>>) -> Result<Vec<u8>> {
        check_element_key(name, rel)?;
        if let Some(r) = range.as_ref().filter(|r| r.start > r.end) {
            return Err(Error::InvalidElement {
                name: name.to_string(),
                reason: format!("byte range {}..{} of '{rel}' ends before it starts", r.start, r.end),
            });
        }
        self.read_with(name, |data, _| match &range {
            None => data.read(rel),
            Some(r) => data
                .get_range(rel, r.clone())?
                .ok_or_else(|| Error::io(data.describe(rel), std::io::ErrorKind::NotFound.into())),
        })
    }

    /// The size in bytes of one object of element `name` (see [`Snapshot::read_element_file`]).
    pub fn element_file_size(&self, name: &str, rel: &str) -> Result<u64> {
        check_element_key(name, rel)?;
        self.read_with(name, |data, _| {
            data.size(rel)?.ok_or_else(|| Error::io(data.describe(rel), std::io::ErrorKind::NotFound.into()))
        })
    }

    /// The committed record of element `name` (type, version, metadata tree).
    pub fn record_of(&self, name: &str) -> Result<&ElementRecord> {
        self.record(name)
    }

    /// The trash key the generation of `record` is (or will be) evicted to, once a commit displaced it.
    fn trash_of(&self, record: &ElementRecord) -> Result<Option<String>> {
        let key = record.name.collision_key();
        let generation = generation_id(record.version, &key);
        Ok(self.committer.latest_state()?.displaced.get(&generation).map(|d| layout::trash_key(d.version, &key)))
    }

    /// Whether the element's installed location may still hold this (displaced, not yet evicted) generation: no
    /// newer generation of the name is installed there.
    fn location_holds(&self, record: &ElementRecord) -> Result<bool> {
        let latest = self.committer.latest_state()?;
        let Some(current) = latest.get(&record.name) else { return Ok(true) };
        if current.version == record.version || current.installed_key() != record.installed_key() {
            return Ok(true);
        }
        // A newer generation is at the location once its staged data moved there.
        match &current.staged {
            Some(staged) => self.committer.storage.exists(staged),
            None => Ok(false),
        }
    }

    /// Where this generation's data is now.
    fn locate(&self, record: &ElementRecord) -> Result<Location> {
        let storage = self.committer.storage.as_ref();
        let trash = self.trash_of(record)?;
        if let Some(trash) = &trash {
            if storage.exists(&format!("{trash}/zarr.json"))? {
                return Ok(Location::Trash(trash.clone()));
            }
        }
        if let Some(staged) = &record.staged {
            if storage.exists(&format!("{staged}/zarr.json"))? {
                return Ok(Location::Staged(staged.clone()));
            }
        }
        let installed = record.installed_key();
        let displaced = trash.is_some();
        if (!displaced || self.location_holds(record)?) && storage.exists(&format!("{installed}/zarr.json"))? {
            return Ok(Location::Installed(installed));
        }
        // Evicted between the checks: look again where it went.
        if let Some(trash) = &trash {
            if storage.exists(&format!("{trash}/zarr.json"))? {
                return Ok(Location::Trash(trash.clone()));
            }
        }
        let latest = self.committer.latest_state()?.version;
        Err(Error::VersionNotAvailable {
            version: self.state.version,
            latest,
            reason: if displaced {
                format!("the data of '{}' at this version was reclaimed by gc", record.name)
            } else {
                format!("the data of '{}' is missing from the store (run `zarrtx verify`)", record.name)
            },
        })
    }

    /// True when the data read at `location` did not move during the read.
    fn still_there(&self, record: &ElementRecord, location: &Location) -> Result<bool> {
        let storage = self.committer.storage.as_ref();
        match location {
            Location::Staged(key) => storage.exists(&format!("{key}/zarr.json")),
            Location::Trash(key) => {
                if storage.exists(&format!("{key}/zarr.json"))? {
                    Ok(true)
                } else {
                    Err(Error::VersionNotAvailable {
                        version: self.state.version,
                        latest: self.committer.latest_state()?.version,
                        reason: format!("the data of '{}' at this version was reclaimed by gc while it was read", record.name),
                    })
                }
            }
            Location::Installed(_) => match self.trash_of(record)? {
                Some(trash) => Ok(!storage.exists(&trash)? && self.location_holds(record)?),
                None => Ok(true),
            },
        }
    }
}

/// Refuses object keys that are not plain relative keys inside an element.
fn check_element_key(name: &str, rel: &str) -> Result<()> {
    if rel.is_empty() || rel.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(Error::InvalidElement {
            name: name.to_string(),
            reason: format!(
                "'{rel}' is not a key inside the element: give a relative key such as 'shapes.parquet', without \
                 empty, '.' or '..' segments"
            ),
        });
    }
    Ok(())
}

fn raster_kind(record: &ElementRecord) -> Result<RasterKind> {
    match record.element_type {
        ElementType::Images => Ok(RasterKind::Image),
        ElementType::Labels => Ok(RasterKind::Labels),
        other => Err(Error::InvalidElement {
            name: record.name.to_string(),
            reason: format!("it is a {other} element, not an image or labels"),
        }),
    }
}
