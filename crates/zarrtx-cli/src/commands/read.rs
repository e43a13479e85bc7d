//! `zarrtx read STORE NAME OUTPUT.npy [--level L] [--at-version V]`: write one level of a raster as `.npy`.

use super::open_read;
use crate::cli_error::CliResult;
use crate::input::npy;
use crate::output::{emit, shape_text};
use std::path::Path;

/// Runs `read`.
pub fn run(store: &Path, name: &str, output: &Path, level: usize, at_version: Option<u64>) -> CliResult<i32> {
    zarrtx::ElementName::new(name)?;
    let s = open_read(store)?;
    let snap = s.snapshot(at_version)?;
    let array = snap.read_raster(name, level, None)?;
    npy::write(output, &array)?;
    emit(&format!(
        "wrote {}: {name} level {level} at version {}, shape {}, {}",
        output.display(),
        snap.version(),
        shape_text(&array.shape()),
        array.data_type().zarr_name()
    ));
    Ok(0)
}
