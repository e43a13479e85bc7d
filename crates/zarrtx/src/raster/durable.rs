//! Making a freshly written directory tree durable in one pass at the end (instead of an fsync per chunk file,
//! which would stall the encoding threads): every file is fsynced, in parallel, then every directory, deepest
//! first, so that the new directory entries survive power loss too.

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

/// fsyncs `files` (in parallel; missing files are skipped), then every directory between them and `root` (deepest
/// first, `root` last): what [`sync_tree`] does for a part of a tree that other writers fill too.
pub(crate) fn sync_files(root: &Path, files: &[PathBuf]) -> Result<()> {
    let parallel = SYNC_PARALLELISM.min(files.len().max(1));
    try_for_each_limited(files, parallel, |p| match File::open(p) {
        Ok(f) => f.sync_all().map_err(|e| Error::io(p, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    })?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in files {
        let mut d = f.parent();
        while let Some(p) = d {
            if !p.starts_with(root) {
                break;
            }
            dirs.push(p.to_path_buf());
            if p == root {
                break;
            }
            d = p.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    // Deepest first: more components sort later, so walk the list backwards by depth.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    try_for_each_limited(&dirs, 1, |p| match File::open(p) {
        Ok(f) => f.sync_all().map_err(|e| Error::io(p, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    })
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
