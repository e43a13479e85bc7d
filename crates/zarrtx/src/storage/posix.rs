//! POSIX backend for local disks and shared filesystems (NFS, Lustre, GPFS, CephFS).
//!
//! Create-if-absent is a hard link of a complete, fsynced temporary file onto the final name: link(2) fails with
//! EEXIST when the name exists, atomically on every POSIX filesystem including NFS (where the server decides). A
//! lost reply (NFS retransmission) can turn our own success into EEXIST or another error; `put_if_absent` then
//! compares the content at the final name with ours. Nothing here relies on flock, O_EXCL semantics over NFSv2 or
//! RENAME_NOREPLACE.

use super::{LockGuard, MoveOutcome, PutOutcome, Storage};
use crate::error::{Error, Result};
use crate::layout;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A store rooted at a local (or network-mounted) directory.
#[derive(Debug, Clone)]
pub struct PosixStorage {
    root: PathBuf,
    durable: bool,
}

impl PosixStorage {
    /// A backend rooted at `root`. With `durable`, files are fsynced before they are published (survives power
    /// loss, not only process death).
    pub fn new(root: impl Into<PathBuf>, durable: bool) -> Self {
        PosixStorage {
            root: root.into(),
            durable,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        if key.is_empty() {
            self.root.clone()
        } else {
            self.root.join(key)
        }
    }

    /// Writes `bytes` to a new uniquely named temporary file next to the store's other temporaries, fsynced when
    /// the store is durable.
    fn write_temp(&self, bytes: &[u8]) -> Result<PathBuf> {
        self.write_temp_with(bytes, self.durable)
    }

    fn write_temp_with(&self, bytes: &[u8], fsync: bool) -> Result<PathBuf> {
        let dir = self.path(layout::TMP_DIR);
        let tmp = dir.join(format!("{}.tmp", uuid::Uuid::new_v4()));
        let open = || OpenOptions::new().write(true).create_new(true).open(&tmp);
        let mut file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                open().map_err(|e| Error::io(&tmp, e))?
            }
            Err(e) => return Err(Error::io(&tmp, e)),
        };
        let written = file.write_all(bytes).and_then(|_| {
            if fsync {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        Ok(tmp)
    }

    fn open_lock_file(&self, key: &str) -> Result<(PathBuf, File)> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok((path, file))
    }

    fn ensure_parent(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) {
        if self.durable {
            if let Some(parent) = path.parent() {
                if let Ok(dir) = File::open(parent) {
                    let _ = dir.sync_all();
                }
            }
        }
    }
}

/// "No such file", including a path whose parent is a file (`a.parquet/zarr.json`).
fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn tree_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

impl Storage for PosixStorage {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match File::open(&path) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).map_err(|e| Error::io(&path, e))?;
                Ok(Some(buf))
            }
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key);
        match File::open(&path) {
            Ok(_) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        let tmp = self.write_temp(bytes)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&path, e));
        }
        self.sync_dir(&path);
        Ok(())
    }

    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        let tmp = self.write_temp_with(bytes, false)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&path, e));
        }
        Ok(())
    }

    fn sync(&self, keys: &[String]) -> Result<()> {
        use rayon::prelude::*;
        if !self.durable || keys.is_empty() {
            return Ok(());
        }
        // Concurrent fsyncs share journal commits (group commit), so a batch costs about one flush.
        let files: Vec<PathBuf> = keys.iter().map(|k| self.path(k)).collect();
        let mut dirs: Vec<PathBuf> = files.iter().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        dirs.sort();
        dirs.dedup();
        files.par_iter().chain(dirs.par_iter()).try_for_each(|p| match File::open(p) {
            Ok(f) => f.sync_all().map_err(|e| Error::io(p, e)),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(Error::io(p, e)),
        })
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        // The probe's files test the semantics of create-if-absent, not durability: they are never fsynced.
        let durable = self.durable && !key.starts_with(layout::PROBE_DIR);
        let tmp = self.write_temp_with(bytes, durable)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if durable {
                    self.sync_dir(&path);
                }
                Ok(PutOutcome::Created)
            }
            Err(e) => {
                // EEXIST is the normal "someone else won"; any error may also be a lost reply of our own
                // success (NFS). Either way, the content at the name tells.
                match self.get(key)? {
                    Some(existing) if existing == bytes => Ok(PutOutcome::Created),
                    Some(_) => Ok(PutOutcome::AlreadyExists),
                    None => Err(Error::io(&path, e)),
                }
            }
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.path(dir);
        match fs::read_dir(&path) {
            Ok(rd) => {
                let mut names = Vec::new();
                for entry in rd {
                    let entry = entry.map_err(|e| Error::io(&path, e))?;
                    if let Some(n) = entry.file_name().to_str() {
                        names.push(n.to_string());
                    }
                }
                names.sort();
                Ok(names)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn move_tree(&self, from: &str, to: &str) -> Result<MoveOutcome> {
        let src = self.path(from);
        let dst = self.path(to);
        if fs::symlink_metadata(&src).is_err() {
            return Ok(MoveOutcome::SourceMissing);
        }
        if fs::symlink_metadata(&dst).is_ok() {
            return Ok(MoveOutcome::TargetExists);
        }
        self.ensure_parent(&dst)?;
        match fs::rename(&src, &dst) {
            Ok(()) => {
                self.sync_dir(&dst);
                Ok(MoveOutcome::Moved)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(MoveOutcome::SourceMissing),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Ok(MoveOutcome::TargetExists)
            }
            Err(e) => Err(Error::io(&dst, e)),
        }
    }

    fn delete_tree(&self, key: &str) -> Result<u64> {
        let path = self.path(key);
        let size = tree_size(&path);
        match fs::symlink_metadata(&path) {
            Err(_) => Ok(0),
            Ok(m) if m.is_dir() => match fs::remove_dir_all(&path) {
                Ok(()) => Ok(size),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
                Err(e) => Err(Error::io(&path, e)),
            },
            Ok(_) => {
                self.delete(key)?;
                Ok(size)
            }
        }
    }

    fn create_dir(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))
    }

    fn modified(&self, key: &str) -> Result<Option<SystemTime>> {
        let path = self.path(key);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.modified().ok()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.path(key))
    }

    fn location(&self) -> PathBuf {
        self.root.clone()
    }

    fn lock_exclusive(&self, key: &str) -> Result<LockGuard> {
        let (path, file) = self.open_lock_file(key)?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(LockGuard::new(Box::new(file)))
    }

    fn try_lock_exclusive(&self, key: &str) -> Result<Option<LockGuard>> {
        let (path, file) = self.open_lock_file(key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard::new(Box::new(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// `flock(LOCK_SH)` on a freshly opened file description. A signal handler installed without `SA_RESTART`
    /// ends the wait with an `Error::Io` whose source kind is `Interrupted` (not retried here), so that a caller such as the
    /// Python binding can run its signal handlers and decide whether to wait again.
    fn lock_shared(&self, key: &str) -> Result<LockGuard> {
        let (path, file) = self.open_lock_file(key)?;
        file.lock_shared().map_err(|e| Error::io(&path, e))?;
        Ok(LockGuard::new(Box::new(file)))
    }

    /// `flock(LOCK_SH | LOCK_NB)` on a freshly opened file description.
    fn try_lock_shared(&self, key: &str) -> Result<Option<LockGuard>> {
        let (path, file) = self.open_lock_file(key)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(LockGuard::new(Box::new(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_if_absent_has_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStorage::new(dir.path(), false);
        assert_eq!(s.put_if_absent("a/x", b"one").unwrap(), PutOutcome::Created);
        assert_eq!(s.put_if_absent("a/x", b"two").unwrap(), PutOutcome::AlreadyExists);
        assert_eq!(s.get("a/x").unwrap().unwrap(), b"one");
        // the same content again reads as ours: the lost-reply case
        assert_eq!(s.put_if_absent("a/x", b"one").unwrap(), PutOutcome::Created);
        assert!(s.list(layout::TMP_DIR).unwrap().is_empty(), "temporaries are removed");
    }

    #[test]
    fn put_if_absent_under_thread_race() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(PosixStorage::new(dir.path(), false));
        for round in 0..20 {
            let key = format!("k/{round}");
            let winners: usize = std::thread::scope(|scope| {
                let hs: Vec<_> = (0..16)
                    .map(|i| {
                        let s = s.clone();
                        let key = key.clone();
                        scope.spawn(move || s.put_if_absent(&key, format!("w{i}").as_bytes()).unwrap())
                    })
                    .collect();
                hs.into_iter().map(|h| (h.join().unwrap() == PutOutcome::Created) as usize).sum()
            });
            assert_eq!(winners, 1, "round {round}");
        }
    }

    #[test]
    fn move_tree_refuses_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStorage::new(dir.path(), false);
        s.put("a/f", b"1").unwrap();
        s.put("b/f", b"2").unwrap();
        assert_eq!(s.move_tree("a", "b").unwrap(), MoveOutcome::TargetExists);
        assert_eq!(s.move_tree("a", "c/d").unwrap(), MoveOutcome::Moved);
        assert_eq!(s.move_tree("a", "e").unwrap(), MoveOutcome::SourceMissing);
        assert_eq!(s.get("c/d/f").unwrap().unwrap(), b"1");
    }

    #[test]
    fn shared_locks_share_and_exclusive_locks_exclude_within_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStorage::new(dir.path(), false);
        let key = "locks/x.lock";
        let r1 = s.lock_shared(key).unwrap();
        let r2 = s.try_lock_shared(key).unwrap().expect("a second shared holder is admitted");
        assert!(s.try_lock_exclusive(key).unwrap().is_none(), "shared holders exclude an exclusive one");
        drop(r1);
        assert!(s.try_lock_exclusive(key).unwrap().is_none(), "one shared holder is enough to exclude");
        drop(r2);
        let w = s.try_lock_exclusive(key).unwrap().expect("free again");
        assert!(s.try_lock_shared(key).unwrap().is_none(), "an exclusive holder excludes shared ones");
        assert!(s.try_lock_exclusive(key).unwrap().is_none(), "and other exclusive ones, in the same process");
        drop(w);
        assert!(s.try_lock_shared(key).unwrap().is_some());
    }

    #[test]
    fn a_key_below_a_file_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStorage::new(dir.path(), false);
        s.put("shapes/x/shapes.parquet", b"PAR1").unwrap();
        assert_eq!(s.get("shapes/x/shapes.parquet/zarr.json").unwrap(), None);
        assert!(!s.exists("shapes/x/shapes.parquet/zarr.json").unwrap());
    }
}
