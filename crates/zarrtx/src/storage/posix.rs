//! POSIX backend for local disks and shared filesystems (NFS, Lustre, GPFS, CephFS).
//!
//! - Create-if-absent is a hard link of a complete (fsynced, when durable) temporary file onto the final name:
//!   `link(2)` fails with EEXIST when the name exists, atomically on every POSIX filesystem including NFS, where
//!   the server decides. A lost reply (NFS retransmission) can turn our own success into EEXIST or another error;
//!   the content at the name then tells whose it is. Nothing relies on flock, O_EXCL over NFSv2 or
//!   RENAME_NOREPLACE.
//! - Atomic replace is a temporary file renamed over the name.
//! - Private writes (staging areas) go straight to the file; when durable, the kernel is asked to start writing it
//!   back at once (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the final fsync of the batch finds little left.
//! - Reads retry a file that another NFS client replaced or removed under them (ESTALE) by opening it again.
//! - Advisory locks are `flock` on files under the store, one open file description per acquisition; they may be
//!   node-local on shared filesystems, and can be switched off ([`PosixStorage::with_locks`]).
//! - There is no compare-and-swap on POSIX filesystems.

use super::locks::{LockGuard, Locks, NoLocks};
use super::{Capabilities, MoveOutcome, PutOutcome, Storage};
use crate::error::{Error, Result};
use crate::layout;
use crate::parallel::try_for_each_limited;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// How many times an operation is retried when NFS reports a stale file handle (another client replaced the file).
const ESTALE_RETRIES: usize = 24;
/// Parallel fsyncs in flight (they wait on the device, not the CPU).
const SYNC_PARALLELISM: usize = 16;

/// A store rooted at a local (or network-mounted) directory.
#[derive(Debug, Clone)]
pub struct PosixStorage {
    root: PathBuf,
    durable: bool,
    locks: Arc<dyn Locks>,
}

impl PosixStorage {
    /// A backend rooted at `root`, with `flock` advisory locks unless `ZARRTX_LOCKS=off` is set. With `durable`,
    /// files are fsynced before they are published (survives power loss, not only process death).
    pub fn new(root: impl Into<PathBuf>, durable: bool) -> Self {
        let root = root.into();
        let locks: Arc<dyn Locks> = if super::locks::locks_enabled_by_env() {
            Arc::new(FlockLocks { root: root.clone() })
        } else {
            Arc::new(NoLocks)
        };
        PosixStorage { root, durable, locks }
    }

    /// Creates the directory `root` (and its parents) for a new store or hierarchy.
    pub fn create_root(root: &Path) -> Result<()> {
        fs::create_dir_all(root).map_err(|e| Error::io(root, e))
    }

    /// The same backend with `flock` advisory locks switched on or off ([`NoLocks`]).
    pub fn with_locks(mut self, on: bool) -> Self {
        self.locks = if on { Arc::new(FlockLocks { root: self.root.clone() }) } else { Arc::new(NoLocks) };
        self
    }

    /// The local path of a key.
    fn path(&self, key: &str) -> PathBuf {
        path_of(&self.root, key)
    }

    /// Writes `bytes` to a new uniquely named temporary file next to the store's other temporaries, fsynced when
    /// `fsync`.
    fn write_temp(&self, bytes: &[u8], fsync: bool) -> Result<PathBuf> {
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
        let written = file.write_all(bytes).and_then(|_| if fsync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        Ok(tmp)
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

    fn replace_with_temp(&self, key: &str, bytes: &[u8], fsync: bool) -> Result<PathBuf> {
        let path = self.path(key);
        ensure_parent(&path)?;
        let tmp = self.write_temp(bytes, fsync)?;
        // A stale handle on NFS (another node replaced the file between the kernel's lookup and the rename) is
        // retried; when the temporary file is gone by then, the rename happened and only its reply was lost.
        let renamed = retry_stale(|| match fs::rename(&tmp, &path) {
            Err(e) if is_stale(&e) && fs::symlink_metadata(&tmp).is_err() => Ok(()),
            other => other,
        });
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&path, e));
        }
        Ok(path)
    }
}

/// `root/key`.
fn path_of(root: &Path, key: &str) -> PathBuf {
    if key.is_empty() {
        root.to_path_buf()
    } else {
        root.join(key)
    }
}

fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    Ok(())
}

/// "No such file", including a path whose parent is a file (`a.parquet/zarr.json`).
fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn is_stale(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ESTALE)
}

/// Sleeps before the `tries`-th retry after a stale handle: 2, 4, ... 64 ms, then 64 ms each.
fn stale_pause(tries: usize) {
    std::thread::sleep(std::time::Duration::from_millis(1 << tries.min(6)));
}

/// Runs an operation by path again when NFS says a handle went stale on the way (another node replaced or removed
/// a file or directory the kernel had looked up): the next attempt looks the path up afresh.
fn retry_stale<T>(mut op: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match op() {
            Err(e) if is_stale(&e) && tries < ESTALE_RETRIES => {
                tries += 1;
                stale_pause(tries);
            }
            other => return other,
        }
    }
}

/// Runs a read (or stat) of `path`, again with a fresh lookup when NFS says the handle went stale (another node
/// replaced or removed the file meanwhile); `None` when the file does not exist.
fn read_retrying<T>(path: &Path, mut read: impl FnMut(&Path) -> std::io::Result<T>) -> Result<Option<T>> {
    match retry_stale(|| read(path)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn tree_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path).map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum()).unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Every file below `dir` (absolute paths) and every directory, deepest last.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    dirs.push(dir.to_path_buf());
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() {
            walk(&path, files, dirs)?;
        } else if ty.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// fsyncs `paths` (files or directories; a missing one is skipped), `parallel` at a time.
fn fsync_all(paths: &[PathBuf], parallel: usize) -> Result<()> {
    // A file another writer removed meanwhile needs nothing; one it replaced (ESTALE on NFS) is synced afresh.
    try_for_each_limited(paths, parallel, |p| match retry_stale(|| File::open(p).and_then(|f| f.sync_all())) {
        Ok(()) => Ok(()),
        Err(e) if is_absent(&e) => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    })
}

impl Storage for PosixStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rename: true,
            conditional_replace: false,
            hard_links: true,
            exchange: true,
            durable: self.durable,
            advisory_locks: self.locks.enabled(),
        }
    }

    fn location(&self) -> PathBuf {
        self.root.clone()
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        read_retrying(&self.path(key), |p| {
            let mut f = File::open(p)?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Ok(buf)
        })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Vec<u8>>> {
        read_retrying(&self.path(key), |p| {
            let f = File::open(p)?;
            let len = f.metadata()?.len();
            let start = range.start.min(len);
            let end = range.end.min(len).max(start);
            let mut buf = vec![0u8; (end - start) as usize];
            f.read_exact_at(&mut buf, start)?;
            Ok(buf)
        })
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        read_retrying(&self.path(key), |p| {
            let m = fs::metadata(p)?;
            if m.is_dir() {
                Err(std::io::Error::from(ErrorKind::NotFound))
            } else {
                Ok(m.len())
            }
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(read_retrying(&self.path(key), |p| File::open(p))?.is_some())
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.replace_with_temp(key, bytes, self.durable)?;
        self.sync_dir(&path);
        Ok(())
    }

    fn put_relaxed(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.replace_with_temp(key, bytes, false).map(|_| ())
    }

    fn put_private(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key);
        let create = || File::create(&path);
        let mut file = match create() {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                ensure_parent(&path)?;
                create().map_err(|e| Error::io(&path, e))?
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        file.write_all(bytes).map_err(|e| Error::io(&path, e))?;
        if self.durable {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file; the call only starts
            // I/O. A failure (a filesystem without it) is harmless: the final fsync writes the data anyway.
            let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
        Ok(())
    }

    fn sync(&self, keys: &[String]) -> Result<()> {
        if !self.durable || keys.is_empty() {
            return Ok(());
        }
        // Concurrent fsyncs share journal commits (group commit), so a batch costs about one flush. Then every
        // directory between the files and the store root (new directories need their entries made durable too),
        // deepest first.
        let files: Vec<PathBuf> = keys.iter().map(|k| self.path(k)).collect();
        fsync_all(&files, SYNC_PARALLELISM)?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for f in &files {
            let mut d = f.parent();
            while let Some(p) = d {
                if !p.starts_with(&self.root) {
                    break;
                }
                dirs.push(p.to_path_buf());
                if p == self.root {
                    break;
                }
                d = p.parent();
            }
        }
        dirs.sort();
        dirs.dedup();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        fsync_all(&dirs, 1)
    }

    fn sync_prefix(&self, prefix: &str) -> Result<()> {
        if !self.durable {
            return Ok(());
        }
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        walk(&self.path(prefix), &mut files, &mut dirs)?;
        fsync_all(&files, SYNC_PARALLELISM)?;
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        fsync_all(&dirs, 1)?;
        // The entry of the prefix itself in its parent.
        self.sync_dir(&self.path(prefix));
        Ok(())
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome> {
        let path = self.path(key);
        ensure_parent(&path)?;
        // The probe's files test the semantics of create-if-absent, not durability: they are never fsynced.
        let durable = self.durable && !key.starts_with(layout::PROBE_DIR);
        let tmp = self.write_temp(bytes, durable)?;
        let linked = retry_stale(|| fs::hard_link(&tmp, &path));
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
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let path = self.path(prefix);
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
            Err(e) if is_absent(&e) => Ok(Vec::new()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        walk(&self.path(prefix), &mut files, &mut dirs)?;
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let size = fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            if let Some(rel) = f.strip_prefix(&self.root).ok().and_then(Path::to_str) {
                out.push((rel.to_string(), size));
            }
        }
        out.sort();
        Ok(out)
    }

    fn has_children(&self, prefix: &str) -> Result<bool> {
        let path = self.path(prefix);
        match fs::read_dir(&path) {
            Ok(mut rd) => Ok(rd.next().is_some()),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
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
        Ok(read_retrying(&self.path(key), |p| fs::symlink_metadata(p))?.and_then(|m| m.modified().ok()))
    }

    fn rename(&self, from: &str, to: &str) -> Result<MoveOutcome> {
        let src = self.path(from);
        let dst = self.path(to);
        if fs::symlink_metadata(&src).is_err() {
            return Ok(MoveOutcome::SourceMissing);
        }
        if fs::symlink_metadata(&dst).is_ok() {
            return Ok(MoveOutcome::TargetExists);
        }
        ensure_parent(&dst)?;
        // rename(2) of a directory onto a non-empty directory fails (ENOTEMPTY/EEXIST), and of a missing source
        // fails (ENOENT): the kernel (or the NFS server) decides between concurrent movers.
        match retry_stale(|| fs::rename(&src, &dst)) {
            Ok(()) => {
                self.sync_dir(&dst);
                Ok(MoveOutcome::Moved)
            }
            Err(e) if is_absent(&e) => Ok(MoveOutcome::SourceMissing),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Ok(MoveOutcome::TargetExists)
            }
            Err(e) => Err(Error::io(&dst, e)),
        }
    }

    fn replace_file(&self, from: &str, to: &str) -> Result<bool> {
        let (src, dst) = (self.path(from), self.path(to));
        ensure_parent(&dst)?;
        match fs::rename(&src, &dst) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound && fs::symlink_metadata(&src).is_err() => Ok(false),
            Err(e) => Err(Error::io(&dst, e)),
        }
    }

    fn hard_link(&self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from), self.path(to));
        ensure_parent(&dst)?;
        fs::hard_link(&src, &dst).map_err(|e| Error::io(&dst, e))
    }

    fn exchange(&self, a: &str, b: &str) -> Result<bool> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let (pa, pb) = (self.path(a), self.path(b));
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|e| Error::io(p, std::io::Error::other(e)));
        let (ca, cb) = (c(&pa)?, c(&pb)?);
        // SAFETY: two valid NUL-terminated paths; renameat2 only reads them.
        let rc = unsafe {
            libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE)
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // NFS, FUSE and older kernels cannot exchange: the caller falls back to two renames.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => Ok(false),
            _ => Err(Error::io(&pa, e)),
        }
    }

    fn identity(&self, key: &str) -> Result<Option<String>> {
        use std::os::unix::fs::MetadataExt;
        Ok(read_retrying(&self.path(key), |p| fs::symlink_metadata(p))?.map(|m| format!("{}:{}", m.dev(), m.ino())))
    }

    fn locks(&self) -> &dyn Locks {
        self.locks.as_ref()
    }
}

/// `flock` on files under the store root: one open file description per acquisition, so two calls of one process
/// exclude each other exactly as two processes do, and the kernel releases a dead holder's locks.
#[derive(Debug)]
struct FlockLocks {
    root: PathBuf,
}

impl FlockLocks {
    fn open(&self, key: &str) -> Result<(PathBuf, File)> {
        let path = path_of(&self.root, key);
        ensure_parent(&path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok((path, file))
    }
}

impl Locks for FlockLocks {
    fn enabled(&self) -> bool {
        true
    }

    fn lock_exclusive(&self, key: &str) -> Result<LockGuard> {
        let (path, file) = self.open(key)?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(LockGuard::new(Box::new(file)))
    }

    fn try_lock_exclusive(&self, key: &str) -> Result<Option<LockGuard>> {
        let (path, file) = self.open(key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard::new(Box::new(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    fn lock_shared(&self, key: &str) -> Result<LockGuard> {
        let (path, file) = self.open(key)?;
        file.lock_shared().map_err(|e| Error::io(&path, e))?;
        Ok(LockGuard::new(Box::new(file)))
    }

    fn try_lock_shared(&self, key: &str) -> Result<Option<LockGuard>> {
        let (path, file) = self.open(key)?;
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
    fn a_key_below_a_file_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStorage::new(dir.path(), false);
        s.put("shapes/x/shapes.parquet", b"PAR1").unwrap();
        assert_eq!(s.get("shapes/x/shapes.parquet/zarr.json").unwrap(), None);
        assert!(!s.exists("shapes/x/shapes.parquet/zarr.json").unwrap());
    }

    #[test]
    fn exchange_swaps_two_directories() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStorage::new(dir.path(), false);
        s.put("a/f", b"a").unwrap();
        s.put("b/f", b"b").unwrap();
        if s.exchange("a", "b").unwrap() {
            assert_eq!(s.get("a/f").unwrap().unwrap(), b"b");
            assert_eq!(s.get("b/f").unwrap().unwrap(), b"a");
        }
    }

    #[test]
    fn switched_off_locks_grant_everything() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStorage::new(dir.path(), false).with_locks(false);
        assert!(!s.capabilities().advisory_locks);
        let _a = s.locks().lock_exclusive("locks/x.lock").unwrap();
        assert!(s.locks().try_lock_exclusive("locks/x.lock").unwrap().is_some());
        assert!(!s.exists("locks/x.lock").unwrap(), "no lock file is even created");
    }
}
