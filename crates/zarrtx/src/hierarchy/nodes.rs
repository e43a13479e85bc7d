//! Nodes of a plain Zarr v3 hierarchy: array paths, reading a node's `zarr.json`, creating missing parent groups,
//! and keeping the root's inline consolidated metadata (hdmf-zarr and `zarr.consolidate_metadata` write one) in
//! step without locks.

use crate::error::{Error, Result};
use crate::layout;
use crate::storage::json::{get_json, json_bytes};
use crate::storage::Storage;
use serde_json::{json, Map, Value};
use std::path::Path;

/// `path` as a node path (`a/b/c`: no leading or trailing `/`), or `InvalidPlan` saying what is wrong.
pub(crate) fn node_path(path: &str) -> Result<String> {
    let trimmed = path.trim_matches('/');
    let refuse = |reason: String| Error::InvalidPlan { name: path.to_string(), reason };
    if trimmed.is_empty() {
        return Err(refuse("the path is empty: name the array inside the hierarchy, e.g. 'acquisition/ts/data'".into()));
    }
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(refuse(format!("'{part}' is not a valid node name (empty, '.' and '..' are not allowed)")));
        }
        if part.starts_with("__") {
            return Err(refuse(format!("node names may not start with '__' (reserved by Zarr v3): '{part}'")));
        }
        if part.starts_with('.') {
            return Err(refuse(format!("node names may not start with '.' (hidden; zarrtx keeps its files in .zarrtx): '{part}'")));
        }
        if part == "zarr.json" || part.chars().any(|c| c.is_control() || c == '\\') {
            return Err(refuse(format!("'{part}' is not a valid node name")));
        }
    }
    Ok(trimmed.to_string())
}

/// The `zarr.json` key of the node at `path` (`""`: the root).
pub(crate) fn doc_key(path: &str) -> String {
    if path.is_empty() {
        layout::ROOT_ZARR_JSON.to_string()
    } else {
        format!("{path}/{}", layout::ROOT_ZARR_JSON)
    }
}

/// The parsed `zarr.json` of the node at `path`, if there is one.
pub(crate) fn read_doc(storage: &dyn Storage, path: &str) -> Result<Option<Value>> {
    get_json(storage, &doc_key(path), "not valid JSON")
}

/// `"array"`, `"group"`, or what the document says.
pub(crate) fn node_type(doc: &Value) -> &str {
    doc.get("node_type").and_then(Value::as_str).unwrap_or("unknown")
}

/// The node's kind with its article, for messages: "an array", "a group".
pub(crate) fn a_node(doc: &Value) -> String {
    match node_type(doc) {
        "array" => "an array".into(),
        "group" => "a group".into(),
        other => format!("a node of type '{other}'"),
    }
}

/// The proper ancestors of `path`, nearest the root first (`a`, `a/b` for `a/b/c`).
pub(crate) fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// The ancestors of `path` that have no node yet; `NodeExists` when one of them is an array (arrays hold no
/// nodes). `hierarchy` names the root in the error.
pub(crate) fn missing_ancestors(storage: &dyn Storage, hierarchy: &Path, path: &str) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for a in ancestors(path) {
        match read_doc(storage, &a)? {
            None => missing.push(a),
            Some(doc) if node_type(&doc) == "group" => {}
            Some(doc) => {
                return Err(Error::NodeExists {
                    hierarchy: hierarchy.to_path_buf(),
                    path: path.to_string(),
                    reason: format!("its ancestor '{a}' is {}, which cannot hold other nodes", a_node(&doc)),
                })
            }
        }
    }
    Ok(missing)
}

/// The `zarr.json` of an empty group, as zarr-python writes it.
pub(crate) fn group_doc() -> Value {
    json!({"zarr_format": 3, "node_type": "group", "attributes": {}})
}

/// Creates the groups `paths` (nearest the root first) where no node exists yet, each with create-if-absent.
pub(crate) fn create_groups(storage: &dyn Storage, paths: &[String]) -> Result<()> {
    for p in paths {
        let key = doc_key(p);
        storage.put_if_absent(&key, &json_bytes(storage, &key, &group_doc())?)?;
    }
    Ok(())
}

/// Whether the root `zarr.json` has inline consolidated metadata.
pub(crate) fn has_consolidated(storage: &dyn Storage) -> Result<bool> {
    Ok(read_doc(storage, "")?.is_some_and(|r| r.pointer("/consolidated_metadata/metadata").is_some_and(Value::is_object)))
}

/// The arrays committed by create plans of the hierarchy whose records are still there: (path, `zarr.json`).
fn committed_arrays(storage: &dyn Storage) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for id in storage.list(layout::PLANS_DIR)? {
        let Ok(Some(commit)) = get_json::<super::ArrayCommit>(storage, &crate::plan::committed_key(&id), "a commit record") else {
            continue;
        };
        if commit.mode != super::ArrayMode::Create {
            continue;
        }
        if let Some(doc) = read_doc(storage, &commit.path)? {
            out.push((commit.path, doc));
        }
    }
    Ok(out)
}

/// Makes the root's inline consolidated metadata (when the root has one) list every array that create plans
/// committed, with every ancestor group it does not list yet (with its `zarr.json` as on disk). Returns whether the
/// root has consolidated metadata.
///
/// No lock is needed: the root is re-read after every write and written again while an entry is missing, and each
/// writer puts in *every* committed array (their commit records exist before their consolidation starts), so one
/// writer's stale read can drop another's entry only until that very writer re-reads the root. Where the medium has
/// compare-and-swap, the root is replaced only if it did not change since it was read.
pub(crate) fn consolidate(storage: &dyn Storage) -> Result<bool> {
    let cas = storage.capabilities().conditional_replace;
    for round in 0..64u32 {
        let (root_bytes, tag) = if cas {
            match storage.get_tagged(layout::ROOT_ZARR_JSON)? {
                Some((b, t)) => (Some(b), Some(t)),
                None => (None, None),
            }
        } else {
            (storage.get(layout::ROOT_ZARR_JSON)?, None)
        };
        let Some(bytes) = root_bytes else { return Ok(false) };
        let mut root: Value = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
            path: storage.location().join(layout::ROOT_ZARR_JSON),
            reason: format!("not valid JSON: {e}"),
        })?;
        let Some(meta) = root.pointer_mut("/consolidated_metadata/metadata").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let mut changed = false;
        for (path, array) in committed_arrays(storage)? {
            for g in ancestors(&path) {
                if !meta.contains_key(&g) {
                    // zarr-python lists a group inside the root's consolidated metadata with an empty one of its own.
                    let mut doc = read_doc(storage, &g)?.unwrap_or_else(group_doc);
                    if let Value::Object(m) = &mut doc {
                        m.insert(
                            "consolidated_metadata".into(),
                            json!({"kind": "inline", "must_understand": false, "metadata": Map::new()}),
                        );
                    }
                    meta.insert(g, doc);
                    changed = true;
                }
            }
            if meta.get(&path) != Some(&array) {
                meta.insert(path, array);
                changed = true;
            }
        }
        if !changed {
            return Ok(true);
        }
        let bytes = json_bytes(storage, layout::ROOT_ZARR_JSON, &root)?;
        if cas {
            storage.put_if_match(layout::ROOT_ZARR_JSON, &bytes, tag.as_ref())?;
        } else {
            storage.put(layout::ROOT_ZARR_JSON, &bytes)?;
        }
        // Another writer may have read the root before this write: look again (after a short, growing pause).
        std::thread::sleep(std::time::Duration::from_micros(500 << round.min(6)));
    }
    Err(Error::Contention { name: "the hierarchy's consolidated metadata".into(), attempts: 64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(node_path("/acquisition/ts/data/").unwrap(), "acquisition/ts/data");
        for bad in ["", "/", "a//b", "a/../b", "__x", ".zarrtx/x", "a/zarr.json"] {
            assert!(matches!(node_path(bad), Err(Error::InvalidPlan { .. })), "{bad}");
        }
        assert_eq!(ancestors("a/b/c"), vec!["a".to_string(), "a/b".to_string()]);
        assert!(ancestors("a").is_empty());
    }

}
