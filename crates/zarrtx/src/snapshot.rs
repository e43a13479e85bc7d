//! Snapshots: a store as committed at one version. Element lists and metadata come from the log; data reads
//! locate the element's generation (installed, staged or in the trash) and re-check after reading that it did
//! not move meanwhile, so a snapshot reads exactly what was committed at its version (G5).

use crate::error::{Error, Result};
use crate::layout;
use crate::log::state::generation_id;
use crate::log::{ElementRecord, StoreState, WriterInfo};
use crate::meta::NodeTree;
use crate::name::{ElementName, ElementType};
use crate::raster::{self, RasterArray, RasterInfo, RasterKind};
use crate::store::Store;
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
    store: Store,
    state: Arc<StoreState>,
}

impl Snapshot {
    pub(crate) fn new(store: Store, state: Arc<StoreState>) -> Self {
        Snapshot { store, state }
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
        self.read_with(name, |data, _| raster::read::read_region(&data.local_dir()?, &n, level, region))
    }

    /// Runs `read` on the data of element `name` as committed at this snapshot's version — a [`DataHandle`] on
    /// wherever that generation lives now (installed, staged, or in the trash after a later overwrite or delete) —
    /// with its committed metadata tree. If a later commit moves that data while `read` runs, the read is repeated
    /// at the new location, so the result is never torn. This is the engine's generic relocation-safe read; every
    /// typed read (rasters, points, shapes, tables) and [`Snapshot::read_element_file`] go through it.
    pub fn read_with<T>(&self, name: &str, mut read: impl FnMut(&DataHandle, &NodeTree) -> Result<T>) -> Result<T> {
        let record = self.record(name)?;
        let gen = generation_id(record.version, &record.name.collision_key());
        for _ in 0..8 {
            let before = self.store.latest_state()?.displaced.get(&gen).copied();
            let located = self.locate(record, before.map(|d| d.version));
            let data = located.and_then(|dir| read(&dir, &record.tree));
            let after = self.store.latest_state()?.displaced.get(&gen).copied();
            // Data only moves after a commit displaces it: if none appeared, the read (or its error) stands;
            // if one did, the data moved during the read and is read again where it went.
            if before == after {
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

    /// The directory that holds this generation's data now.
    fn locate(&self, record: &ElementRecord, displaced_at: Option<u64>) -> Result<DataHandle> {
        let storage = self.store.storage();
        let key = match displaced_at {
            Some(v) => {
                self.store.ensure_applied(v)?;
                layout::trash_key(v, &record.name.collision_key())
            }
            None => {
                let applied = self.store.ensure_applied(record.version)?;
                match &record.staged {
                    Some(staged) if !applied && storage.exists(staged)? => staged.clone(),
                    _ => record.installed_key(),
                }
            }
        };
        if !storage.exists(&format!("{key}/zarr.json"))? {
            let latest = self.store.version()?;
            return Err(Error::VersionNotAvailable {
                version: self.state.version,
                latest,
                reason: format!("the data of '{}' at this version was reclaimed by gc", record.name),
            });
        }
        Ok(DataHandle::new(self.store.inner.storage.clone(), key))
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
