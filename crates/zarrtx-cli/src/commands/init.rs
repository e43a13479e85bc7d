//! `zarrtx init STORE`: create an empty SpatialData store (or open, and if needed adopt, an existing one).

use crate::cli_error::CliResult;
use crate::output::emit;
use std::path::Path;
use zarrtx::{OpenOptions, Store};

/// Runs `init`.
pub fn run(store: &Path, single_writer: bool) -> CliResult<i32> {
    let existed = store.join("zarr.json").exists();
    let s = Store::open(
        store,
        &OpenOptions {
            create: true,
            single_writer,
            ..OpenOptions::default()
        },
    )?;
    let version = s.version()?;
    if existed {
        emit(&format!(
            "opened existing store {} (version {version})",
            store.display()
        ));
    } else {
        emit(&format!(
            "created empty SpatialData store {} (version {version})",
            store.display()
        ));
    }
    Ok(0)
}
