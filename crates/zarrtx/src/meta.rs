//! Zarr metadata trees: the `zarr.json` documents of one element's subtree, keyed by path relative to the
//! element's group ("" is the element group itself, "s0" its first level, ...). These trees are recorded in
//! commit entries and inlined into the root view's consolidated metadata.

use serde_json::Value;
use std::collections::BTreeMap;

/// The `zarr.json` documents of one element's subtree, by relative path ("" = the element group).
pub type NodeTree = BTreeMap<String, Value>;
