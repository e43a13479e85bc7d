//! Nodes of a plain Zarr v3 hierarchy: array paths, reading a node's `zarr.json`, creating missing parent groups,
//! keeping the root's inline consolidated metadata (hdmf-zarr and `zarr.consolidate_metadata` write one) in step,
//! and swapping two directories atomically.

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

/// Adds the array `path` (with its document `array`) and every ancestor group the root's inline consolidated
/// metadata does not list yet (with its `zarr.json` as on disk) to that metadata, when the root has one; the root
/// `zarr.json` is replaced atomically. Returns whether it had one. Running this again changes nothing, and a
/// commit that died between creating the groups and this step is completed by the next.
pub(crate) fn add_to_consolidated(storage: &dyn Storage, path: &str, array: &Value) -> Result<bool> {
    let Some(mut root) = read_doc(storage, "")? else { return Ok(false) };
    let Some(meta) = root.pointer_mut("/consolidated_metadata/metadata").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    for g in ancestors(path) {
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
        }
    }
    meta.insert(path.to_string(), array.clone());
    storage.put(layout::ROOT_ZARR_JSON, &json_bytes(storage, layout::ROOT_ZARR_JSON, &root)?)?;
    Ok(true)
}

/// Swaps the directories `a` and `b` in one step (`renameat2(RENAME_EXCHANGE)`): a reader sees one or the other at
/// each path, never neither. Returns `false` when the filesystem cannot exchange (then nothing happened).
pub(crate) fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|e| Error::io(p, std::io::Error::other(e)));
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD with absolute or cwd-relative paths.
    let rc = unsafe {
        libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE)
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => Ok(false),
        _ => Err(Error::io(b, e)),
    }
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

    #[test]
    fn exchange_swaps_directories() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("f"), b"a").unwrap();
        std::fs::write(b.join("f"), b"b").unwrap();
        if exchange(&a, &b).unwrap() {
            assert_eq!(std::fs::read(a.join("f")).unwrap(), b"b");
            assert_eq!(std::fs::read(b.join("f")).unwrap(), b"a");
        }
    }
}
