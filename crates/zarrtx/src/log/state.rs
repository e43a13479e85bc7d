//! The state of a store at a version: the committed elements, obtained by replaying entries (from a checkpoint).

use super::entry::{ElementDescriptor, LogEntry, Op, WriterInfo};
use crate::error::{Error, Result};
use crate::layout;
use crate::meta::NodeTree;
use crate::name::{ElementName, ElementType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A committed element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementRecord {
    /// Name as spelled when committed.
    pub name: ElementName,
    /// Type group.
    pub element_type: ElementType,
    /// Version of the commit that added it.
    pub version: u64,
    /// Transaction that added it.
    pub txn: String,
    /// Who added it.
    pub writer: WriterInfo,
    /// Its `zarr.json` documents.
    pub tree: NodeTree,
    /// Where its data was staged (`None` for adopted elements, which were never staged).
    pub staged: Option<String>,
    /// For tables: version of the last append (equal to `version` before any append).
    #[serde(default)]
    pub modified_version: u64,
    /// For tables: the instance-id index runs committed so far (keys under `.zarrtx/tableidx/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_runs: Vec<String>,
}

impl ElementRecord {
    /// Key of the element's installed location.
    pub fn installed_key(&self) -> String {
        layout::element_key(self.element_type, &self.name)
    }
}

/// The commit that displaced an element generation (a delete or an overwrite).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Displacement {
    /// Version of the displacing commit.
    pub version: u64,
    /// The generation's type and name as committed (absent in checkpoints written before they were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<(ElementType, ElementName)>,
}

/// Everything committed up to `version`, plus where displaced generations went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreState {
    /// The version this state reflects.
    pub version: u64,
    /// Root group attributes.
    pub root_attributes: serde_json::Map<String, serde_json::Value>,
    /// Committed elements by collision key (lower-cased name).
    pub elements: BTreeMap<String, ElementRecord>,
    /// Displaced generations: `"<added version>:<collision key>"` → the displacing commit.
    pub displaced: BTreeMap<String, Displacement>,
}

/// Identifies one generation of an element (the same name may be added, deleted and added again).
pub fn generation_id(added_version: u64, key: &str) -> String {
    format!("{added_version}:{key}")
}

impl StoreState {
    /// The state created by entry 0.
    pub fn genesis(entry: &LogEntry) -> Result<Self> {
        let mut state = StoreState {
            version: 0,
            root_attributes: serde_json::Map::new(),
            elements: BTreeMap::new(),
            displaced: BTreeMap::new(),
        };
        for op in &entry.ops {
            match op {
                Op::Init { root_attributes } => state.root_attributes = root_attributes.clone(),
                Op::Adopt { root_attributes, elements } => {
                    state.root_attributes = root_attributes.clone();
                    for e in elements {
                        state.insert(e, entry, None, Vec::new());
                    }
                }
                other => {
                    return Err(Error::CorruptMetadata {
                        path: layout::log_key(0).into(),
                        reason: format!("version 0 must create or adopt the store, found '{}'", other.summary()),
                    })
                }
            }
        }
        Ok(state)
    }

    fn insert(&mut self, e: &ElementDescriptor, entry: &LogEntry, staged: Option<String>, id_runs: Vec<String>) {
        self.elements.insert(
            e.name.collision_key(),
            ElementRecord {
                name: e.name.clone(),
                element_type: e.element_type,
                version: entry.version,
                txn: entry.txn.clone(),
                writer: entry.writer.clone(),
                tree: e.tree.clone(),
                staged,
                modified_version: entry.version,
                id_runs,
            },
        );
    }

    fn displace(&mut self, key: &str, version: u64) {
        if let Some(old) = self.elements.remove(key) {
            let element = Some((old.element_type, old.name));
            self.displaced.insert(generation_id(old.version, key), Displacement { version, element });
        }
    }

    /// Applies the next entry (its version must be `self.version + 1`).
    pub fn apply(&mut self, entry: &LogEntry) -> Result<()> {
        if entry.version != self.version + 1 {
            return Err(Error::CorruptMetadata {
                path: layout::log_key(entry.version).into(),
                reason: format!("expected version {}, entry says {}", self.version + 1, entry.version),
            });
        }
        for op in &entry.ops {
            match op {
                Op::Add { element, staged, id_runs, .. } => {
                    let key = element.name.collision_key();
                    self.displace(&key, entry.version);
                    self.insert(element, entry, Some(staged.clone()), id_runs.clone());
                }
                Op::Append { table, table_version, tree, id_runs, .. } => {
                    let record = self
                        .elements
                        .get_mut(&table.collision_key())
                        .filter(|r| r.version == *table_version)
                        .ok_or_else(|| Error::CorruptMetadata {
                            path: layout::log_key(entry.version).into(),
                            reason: format!("append to table '{table}' (version {table_version}), which is not committed"),
                        })?;
                    record.tree = tree.clone();
                    record.modified_version = entry.version;
                    record.id_runs.extend(id_runs.iter().cloned());
                }
                Op::Delete { name, .. } => self.displace(&name.collision_key(), entry.version),
                Op::Init { .. } | Op::Adopt { .. } => {
                    return Err(Error::CorruptMetadata {
                        path: layout::log_key(entry.version).into(),
                        reason: "only version 0 may create or adopt the store".to_string(),
                    })
                }
            }
        }
        self.version = entry.version;
        Ok(())
    }

    /// The committed element holding `name` (case-insensitively).
    pub fn get(&self, name: &ElementName) -> Option<&ElementRecord> {
        self.elements.get(&name.collision_key())
    }

    /// Refuses `name` when an element already holds it (case-insensitively, across types).
    pub fn check_free(&self, name: &ElementName) -> Result<()> {
        match self.get(name) {
            Some(existing) => Err(Error::ElementExists {
                name: name.to_string(),
                existing_type: existing.element_type.to_string(),
                existing_name: existing.name.to_string(),
            }),
            None => Ok(()),
        }
    }
}
