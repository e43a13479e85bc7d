//! Taking over a store written by spatialdata (or any writer of the same layout): its elements become version 0
//! of the log, read from their own `zarr.json` files; no data is rewritten.

use crate::error::{Error, Result};
use crate::log::ElementDescriptor;
use crate::meta::NodeTree;
use crate::name::{ElementName, ElementType};
use crate::storage::Storage;
use serde_json::{Map, Value};

fn parse_json(storage: &dyn Storage, key: &str) -> Result<Option<Value>> {
    let Some(bytes) = storage.get(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::CorruptMetadata {
            path: storage.location().join(key),
            reason: format!("not valid JSON ({e}); restore it from a backup or rewrite the element"),
        })
}

/// Collects every `zarr.json` below `base` (a group or array key), by path relative to `base`.
pub fn read_node_tree(storage: &dyn Storage, base: &str) -> Result<NodeTree> {
    let mut tree = NodeTree::new();
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let dir = if rel.is_empty() { base.to_string() } else { format!("{base}/{rel}") };
        let Some(doc) = parse_json(storage, &format!("{dir}/zarr.json"))? else {
            continue;
        };
        let is_group = doc.get("node_type").and_then(Value::as_str) == Some("group");
        tree.insert(rel.clone(), doc);
        if is_group {
            for child in storage.list(&dir)? {
                if child == "zarr.json" || child.starts_with('.') {
                    continue;
                }
                let child_rel = if rel.is_empty() { child } else { format!("{rel}/{child}") };
                pending.push(child_rel);
            }
        }
    }
    Ok(tree)
}

/// Root attributes and elements of an existing SpatialData store (Zarr v3, container format 0.2).
pub fn scan_existing(storage: &dyn Storage) -> Result<(Map<String, Value>, Vec<ElementDescriptor>)> {
    let location = storage.location();
    let Some(root) = parse_json(storage, "zarr.json")? else {
        let reason = if storage.exists(".zgroup")? {
            "it is a Zarr v2 store (SpatialData container format 0.1), which zarrtx does not write; convert it \
             with spatialdata 0.8 (`sdata.write(new_path)`) first"
        } else {
            "there is no root zarr.json"
        };
        return Err(Error::NotAStore { path: location, reason: reason.to_string() });
    };
    if root.get("zarr_format").and_then(Value::as_u64) != Some(3)
        || root.get("node_type").and_then(Value::as_str) != Some("group")
    {
        return Err(Error::NotAStore {
            path: location,
            reason: "the root zarr.json is not a Zarr v3 group".to_string(),
        });
    }
    let attributes = root
        .get("attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !attributes.contains_key("spatialdata_attrs") {
        return Err(Error::NotAStore {
            path: location,
            reason: "the root group has no spatialdata_attrs; create SpatialData stores with `zarrtx init`".into(),
        });
    }
    let consolidated = root
        .get("consolidated_metadata")
        .and_then(|c| c.get("metadata"))
        .and_then(Value::as_object);
    let mut elements = Vec::new();
    for t in ElementType::ALL {
        for child in storage.list(t.group())? {
            if child.starts_with('.') || child == "zarr.json" {
                continue;
            }
            let key = format!("{}/{child}", t.group());
            if !storage.exists(&format!("{key}/zarr.json"))? {
                continue;
            }
            // With consolidated metadata, spatialdata sees only what it lists: adopt exactly that.
            if consolidated.is_some_and(|c| !c.contains_key(&key)) {
                continue;
            }
            let Ok(name) = ElementName::new(&child) else {
                continue;
            };
            elements.push(ElementDescriptor {
                name,
                element_type: t,
                tree: read_node_tree(storage, &key)?,
            });
        }
    }
    Ok((attributes, elements))
}
