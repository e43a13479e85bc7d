//! Which kind of target a plan command works on: a zarrtx SpatialData store (element plans, `write-plan`) or a plain
//! Zarr v3 hierarchy (array plans, `array-plan`). `write-part`, `commit-plan` and `plans` take either path and tell
//! them apart by the store's first log entry.

use super::{durable, open_read, open_write};
use crate::cli_error::{CliError, CliResult};
use std::path::Path;
use zarrtx::{Hierarchy, OpenOptions, Store};

/// A path plans live in, opened.
pub enum PlanTarget {
    /// A zarrtx SpatialData store: its plans write image and labels elements.
    Store(Store),
    /// A plain Zarr v3 hierarchy: its plans write one array each.
    Hierarchy(Hierarchy),
}

/// True when `path` holds a zarrtx SpatialData store (its log has a first entry).
pub fn is_store(path: &Path) -> bool {
    path.join(zarrtx::layout::log_key(0)).is_file()
}

impl PlanTarget {
    /// Opens `path` for writing parts and commits.
    pub fn open_write(path: &Path, single_writer: bool) -> CliResult<PlanTarget> {
        if is_store(path) {
            return Ok(PlanTarget::Store(open_write(path, single_writer)?));
        }
        let options = OpenOptions { create: false, read_only: false, single_writer, durable: durable(), ..OpenOptions::default() };
        open_hierarchy(path, &options).map(PlanTarget::Hierarchy)
    }

    /// Opens `path` for reading plans only.
    pub fn open_read(path: &Path) -> CliResult<PlanTarget> {
        if is_store(path) {
            return Ok(PlanTarget::Store(open_read(path)?));
        }
        let options = OpenOptions { create: false, read_only: true, ..OpenOptions::default() };
        open_hierarchy(path, &options).map(PlanTarget::Hierarchy)
    }
}

/// Opens the hierarchy at `path`; a path that holds neither a store nor a hierarchy gets a message saying both
/// were looked for.
pub fn open_hierarchy(path: &Path, options: &OpenOptions) -> CliResult<Hierarchy> {
    if !options.create && holds_no_node(path) {
        return Err(CliError::usage(format!(
            "{} is neither a zarrtx store nor a Zarr v3 hierarchy ({}): give the store or hierarchy the plan was \
             made in (`zarrtx init` creates a store; `zarrtx array-plan --create-hierarchy` a hierarchy)",
            path.display(),
            if path.exists() { "it has no zarr.json" } else { "it does not exist" }
        )));
    }
    Hierarchy::open(path, options).map_err(in_cli_terms)
}

/// Names of the engine's API in the fixes its errors suggest, and the command-line flags that do the same.
const API_TERMS: [(&str, &str); 3] = [
    ("ArrayTarget::Fill", "--fill"),
    ("ArrayTarget::Create", "array-plan without --fill"),
    ("Store::create_plan (`zarrtx write-plan`)", "`zarrtx write-plan`"),
];

/// An engine error of an array plan or a hierarchy as the CLI shows it: the fix it suggests in flags, not API names.
pub fn in_cli_terms(e: zarrtx::Error) -> CliError {
    let mut err = CliError::from(e);
    for (api, flag) in API_TERMS {
        err.message = err.message.replace(api, flag);
    }
    err
}

/// True when `path` has no Zarr metadata at its root at all (v3 or v2), so it is no hierarchy of any kind.
pub fn holds_no_node(path: &Path) -> bool {
    ["zarr.json", ".zgroup", ".zarray"].iter().all(|f| !path.join(f).exists())
}
