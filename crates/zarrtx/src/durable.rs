//! TRANSITIONAL (moved out of `raster`, which now syncs through its `DataHandle`): making a freshly written
//! directory tree durable in one pass at the end (instead of an fsync per file, which would stall the encoding
//! threads): every file is fsynced, in parallel, then every directory, deepest first, so that the new directory
//! entries survive power loss too. Only table and vector writers not yet ported to the storage seam use it; they
//! will call `DataHandle::sync_all` instead, and this module goes.

use crate::parallel::try_for_each_limited;
use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Parallel fsyncs in flight (they wait on the device, not the CPU).
const SYNC_PARALLELISM: usize = 16;

fn walk(dir: &Path, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() {
            walk(&path, files, dirs)?;
        } else if ty.is_file() {
            files.push(path);
        }
    }
    dirs.push(dir.to_path_buf());
    Ok(())
}

fn fsync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// fsyncs every file under `dir`, then every directory (children before parents, `dir` last).
pub(crate) fn sync_tree(dir: &Path) -> Result<()> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(dir, &mut files, &mut dirs)?;
    let parallel = SYNC_PARALLELISM.min(files.len().max(1));
    try_for_each_limited(&files, parallel, |p| fsync(p))?;
    // `walk` pushes a directory after its children: the order is already deepest first.
    try_for_each_limited(&dirs, 1, |p| fsync(p))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_a_tree() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("a/b/f"), b"x").unwrap();
        std::fs::write(tmp.path().join("g"), b"y").unwrap();
        sync_tree(tmp.path()).unwrap();
        assert!(sync_tree(&tmp.path().join("missing")).is_err());
    }
}
