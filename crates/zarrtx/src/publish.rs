//! Installing committed operations and publishing the view.
//!
//! After a commit, element data still sits in its staging directory. [`materialize`] applies committed entries
//! in log order — displaced elements move to the trash, staged elements move to `<type>/<name>` — and then
//! replaces the root `zarr.json` with a view (root attributes + inline consolidated metadata of every committed
//! element) of the newest state. Both steps run under the publish lock so the view never moves backwards; every
//! step is idempotent, so a crash at any point is repaired by the next call, by any process.

use crate::error::{Error, Result};
use crate::layout;
use crate::log::reader::read_entry;
use crate::log::{Op, StoreState};
use crate::name::ElementType;
use crate::storage::{MoveOutcome, Storage};
use serde_json::{json, Map, Value};

/// The version whose operations are installed and published, `None` before the first publication.
pub fn applied_version(storage: &dyn Storage) -> Result<Option<u64>> {
    Ok(storage
        .get(layout::APPLIED)?
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok()))
}

/// The `zarr.json` of a plain group with `attributes`.
pub fn group_doc(attributes: Value) -> Value {
    json!({"zarr_format": 3, "node_type": "group", "attributes": attributes})
}

/// The attributes of the `labels` type group (ome-zarr's list of label names).
fn labels_group_attributes(state: &StoreState) -> Value {
    let names: Vec<&str> = state
        .elements
        .values()
        .filter(|e| e.element_type == ElementType::Labels)
        .map(|e| e.name.as_str())
        .collect();
    if names.is_empty() {
        json!({})
    } else {
        json!({"ome": {"labels": names}})
    }
}

/// The root `zarr.json` for `state`: root attributes, consolidated metadata of every node, and the version.
pub fn root_view(state: &StoreState) -> Value {
    let mut metadata = Map::new();
    for t in ElementType::ALL {
        let attrs = if t == ElementType::Labels {
            labels_group_attributes(state)
        } else {
            json!({})
        };
        metadata.insert(t.group().to_string(), group_doc(attrs));
    }
    for record in state.elements.values() {
        let base = record.installed_key();
        for (rel, doc) in &record.tree {
            let key = if rel.is_empty() { base.clone() } else { format!("{base}/{rel}") };
            metadata.insert(key, doc.clone());
        }
    }
    json!({
        "zarr_format": 3,
        "node_type": "group",
        "attributes": Value::Object(state.root_attributes.clone()),
        "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": metadata},
        "zarrtx": {"must_understand": false, "version": state.version, "format": layout::FORMAT_VERSION},
    })
}

/// The version a root `zarr.json` says it reflects, if it is a zarrtx view.
pub fn view_version(root_doc: &Value) -> Option<u64> {
    root_doc.get("zarrtx")?.get("version")?.as_u64()
}

fn install(storage: &dyn Storage, version: u64, op: &Op, written: &mut Vec<String>) -> Result<()> {
    match op {
        Op::Init { .. } | Op::Adopt { .. } => Ok(()),
        Op::Append { table, tree, replaced_files, .. } => {
            let base = layout::element_key(ElementType::Tables, table);
            // Categories grow before the codes that use them; the region list changes last, so a plain reader
            // sees the table before or after the append, or fails loudly on mismatched lengths in between.
            let mut docs: Vec<(&String, &Value)> = tree.iter().collect();
            docs.sort_by_key(|(rel, _)| (!rel.ends_with("categories"), rel.contains("spatialdata_attrs"), rel.is_empty()));
            for (rel, doc) in docs {
                let key = if rel.is_empty() { format!("{base}/zarr.json") } else { format!("{base}/{rel}/zarr.json") };
                let bytes = serde_json::to_vec(doc).unwrap_or_default();
                // Only the documents the append changed (the grown arrays); the rest stay as they are.
                let unchanged = storage
                    .get(&key)?
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .is_some_and(|on_disk| &on_disk == doc);
                if !unchanged {
                    storage.put_relaxed(&key, &bytes)?;
                    written.push(key);
                }
            }
            for (rel, bytes) in replaced_files {
                let key = format!("{base}/{rel}");
                storage.put_relaxed(&key, bytes)?;
                written.push(key);
            }
            Ok(())
        }
        Op::Add { element, staged, displaces, .. } => {
            let key = element.name.collision_key();
            if let Some((t, n)) = displaces {
                storage.rename(&layout::element_key(*t, n), &layout::trash_key(version, &key))?;
            }
            let target = layout::element_key(element.element_type, &element.name);
            match storage.rename(staged, &target)? {
                MoveOutcome::Moved | MoveOutcome::SourceMissing => Ok(()),
                MoveOutcome::TargetExists => {
                    // Something that is not a committed element sits at the target (written by another
                    // tool): keep it in the trash, then install.
                    let aside = format!("{}-unexpected", layout::trash_key(version, &key));
                    storage.rename(&target, &aside)?;
                    match storage.rename(staged, &target)? {
                        MoveOutcome::TargetExists => Err(Error::CorruptMetadata {
                            path: storage.location().join(&target),
                            reason: "cannot install the committed element: the location stays occupied".into(),
                        }),
                        _ => Ok(()),
                    }
                }
            }
        }
        Op::Delete { element_type, name } => {
            storage.rename(
                &layout::element_key(*element_type, name),
                &layout::trash_key(version, &name.collision_key()),
            )?;
            Ok(())
        }
    }
}

/// Removes from a published view every element whose collision key is in `keys` (with its subtree). Returns
/// whether anything was removed.
fn hide_elements(view: &mut Value, keys: &[String]) -> bool {
    let Some(metadata) = view
        .get_mut("consolidated_metadata")
        .and_then(|c| c.get_mut("metadata"))
        .and_then(Value::as_object_mut)
    else {
        return false;
    };
    let before = metadata.len();
    metadata.retain(|path, _| {
        let mut parts = path.splitn(3, '/');
        let (Some(group), Some(name)) = (parts.next(), parts.next()) else {
            return true;
        };
        let is_element_path = ElementType::from_group(group).is_some();
        !(is_element_path && keys.iter().any(|k| k.eq_ignore_ascii_case(name)))
    });
    metadata.len() != before
}

/// Installs every committed entry up to `latest.version` that is not installed yet, then publishes the view of
/// `latest`. Returns the published version (which may be newer than `latest` if another process got further).
pub fn materialize(storage: &dyn Storage, latest: &StoreState) -> Result<u64> {
    let _lock = storage.locks().lock_exclusive(layout::PUBLISH_LOCK)?;
    let applied = applied_version(storage)?;
    if applied.is_some_and(|a| a >= latest.version) {
        return Ok(applied.unwrap_or(0));
    }
    let first = applied.map(|a| a + 1).unwrap_or(0);
    let mut pending = Vec::new();
    for v in first..=latest.version {
        let entry = read_entry(storage, v)?.ok_or_else(|| Error::CorruptMetadata {
            path: storage.location().join(layout::log_key(v)),
            reason: "a committed entry disappeared".to_string(),
        })?;
        pending.push(entry);
    }
    // Before any installed element moves away (delete, overwrite), publish a view that no longer lists it:
    // a plain reader must never find an element listed whose files are being moved (zarr readers would
    // silently read missing chunks as fill values).
    let moving: Vec<String> = pending
        .iter()
        .flat_map(|e| e.ops.iter())
        .filter_map(|op| match op {
            Op::Add { displaces: Some((_, n)), .. } => Some(n.collision_key()),
            Op::Delete { name, .. } => Some(name.collision_key()),
            _ => None,
        })
        .collect();
    if !moving.is_empty() {
        if let Some(bytes) = storage.get(layout::ROOT_ZARR_JSON)? {
            if let Ok(mut current) = serde_json::from_slice::<Value>(&bytes) {
                if hide_elements(&mut current, &moving) {
                    storage.put_relaxed(layout::ROOT_ZARR_JSON, &serde_json::to_vec(&current).unwrap_or_default())?;
                }
            }
        }
    }
    let mut written = Vec::new();
    for entry in &pending {
        for op in &entry.ops {
            install(storage, entry.version, op, &mut written)?;
        }
    }
    for t in ElementType::ALL {
        let attrs = if t == ElementType::Labels { labels_group_attributes(latest) } else { json!({}) };
        let doc = serde_json::to_vec(&group_doc(attrs)).unwrap_or_default();
        let key = layout::type_group_key(t);
        if storage.get(&key)?.as_deref() != Some(doc.as_slice()) {
            storage.put_relaxed(&key, &doc)?;
            written.push(key);
        }
    }
    let view = serde_json::to_vec(&root_view(latest)).unwrap_or_default();
    storage.put_relaxed(layout::ROOT_ZARR_JSON, &view)?;
    written.push(layout::ROOT_ZARR_JSON.to_string());
    // One parallel round of flushes for everything published, then the marker that says it is done.
    storage.sync(&written)?;
    storage.put(layout::APPLIED, latest.version.to_string().as_bytes())?;
    Ok(latest.version)
}
