//! `zarrtx rm STORE NAME`: delete an element (its data is kept for readers of older versions until `gc`).

use super::open_write;
use crate::cli_error::CliResult;
use crate::output::emit;
use std::path::Path;

/// Runs `rm`.
pub fn run(store: &Path, name: &str, single_writer: bool) -> CliResult<i32> {
    zarrtx::ElementName::new(name)?;
    let s = open_write(store, single_writer)?;
    let info = s.snapshot(None)?.element(name)?;
    let commit = s.delete(name)?;
    emit(&format!(
        "deleted {}/{} at version {}",
        info.element_type, info.name, commit.version
    ));
    Ok(0)
}
