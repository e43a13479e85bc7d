//! The in-memory backend: the reference implementation of the storage contract, for tests. Every capability can be
//! switched on or off ([`MemoryOptions`]), so that the engine's protocol is exercised on a medium with
//! compare-and-swap and without, with locks and without.

use super::locks::{LockGuard, Locks, NoLocks};
use super::{join, CasOutcome, Capabilities, MoveOutcome, PutOutcome, Storage, Tag};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

/// What an in-memory store offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryOptions {
    /// A name for messages (`memory://<name>`).
    pub name: String,
    /// Compare-and-swap of objects ([`Storage::put_if_match`]) (default `true`).
    pub conditional_replace: bool,
    /// Atomic moves of objects and prefixes (default `true`).
    pub rename: bool,
    /// Hard links (default `true`).
    pub hard_links: bool,
    /// Atomic exchange of two prefixes (default `true`).
    pub exchange: bool,
    /// Readers-writer locks within the process (default `true`); `false` gives [`NoLocks`].
    pub locks: bool,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            name: "store".into(),
            conditional_replace: true,
            rename: true,
            hard_links: true,
            exchange: true,
            locks: true,
        }
    }
}

#[derive(Debug, Clone)]
struct Object {
    bytes: Arc<Vec<u8>>,
    /// Changes with every write of this key: the tag of a conditional replace.
    version: u64,
    /// Given once at creation and kept by moves: the identity of the tree the object belongs to.
    id: u64,
    modified: SystemTime,
}

#[derive(Debug, Default)]
struct Objects {
    map: BTreeMap<String, Object>,
    counter: u64,
}

impl Objects {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn write(&mut self, key: &str, bytes: &[u8]) -> u64 {
        let version = self.next();
        let id = self.map.get(key).map(|o| o.id).unwrap_or(version);
        self.map.insert(
            key.to_string(),
            Object { bytes: Arc::new(bytes.to_vec()), version, id, modified: SystemTime::now() },
        );
        version
    }

    /// Keys of the object `key` and of every object below the prefix `key`.
    fn tree(&self, key: &str) -> Vec<String> {
        if key.is_empty() {
            return self.map.keys().cloned().collect();
        }
        let below = format!("{key}/");
        let mut out: Vec<String> = self.map.range(below.clone()..).take_while(|(k, _)| k.starts_with(&below)).map(|(k, _)| k.clone()).collect();
        if self.map.contains_key(key) {
            out.push(key.to_string());
        }
        out
    }
}

/// A store held in memory (shared by every clone of the `Arc` that holds it; gone with the process).
#[derive(Debug)]
pub struct MemoryStorage {
    options: MemoryOptions,
    objects: Mutex<Objects>,
    locks: Box<dyn Locks>,
}

impl MemoryStorage {
    /// An empty in-memory store with every capability.
    pub fn new() -> Self {
        Self::with_options(MemoryOptions::default())
    }

    /// An empty in-memory store offering what `options` say.
    pub fn with_options(options: MemoryOptions) -> Self {
        let locks: Box<dyn Locks> = if options.locks { Box::new(MemoryLocks::default()) } else { Box::new(NoLocks) };
        MemoryStorage { options, objects: Mutex::new(Objects::default()), locks }
    }

    fn objects(&self) -> Result<MutexGuard<'_, Objects>> {
        self.objects.lock().map_err(|_| Error::Io {
            path: self.location(),
            source: std::io::Error::other("a thread panicked while holding the in-memory store"),
        })
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl Storage for MemoryStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rename: self.options.rename,
            conditional_replace: self.options.conditional_replace,
            hard_links: self.options.hard_links,
            exchange: self.options.exchange,
            durable: true,
            advisory_locks: self.options.locks,
        }
    }

    fn location(&self) -> PathBuf {
        PathBuf::from(format!("memory://{}", self.options.name))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.objects()?.map.get(key).map(|o| o.bytes.as_ref().clone()))
    }

    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Option<Vec<u8>>> {
        Ok(self.objects()?.map.get(key).map(|o| {
            let start = range.start.min(o.bytes.len() as u64) as usize;
            let end = (range.end.min(o.bytes.len() as u64) as usize).max(start);
            o.bytes[start..end].to_vec()
        }))
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.objects()?.map.get(key).map(|o| o.bytes.len() as u64))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(!self.objects()?.tree(key).is_empty())
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.objects()?.write(key, bytes);
        Ok(())
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome> {
        let mut objects = self.objects()?;
        match objects.map.get(key) {
            Some(o) if o.bytes.as_slice() == bytes => Ok(PutOutcome::Created),
            Some(_) => Ok(PutOutcome::AlreadyExists),
            None => {
                objects.write(key, bytes);
                Ok(PutOutcome::Created)
            }
        }
    }

    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, Tag)>> {
        if !self.options.conditional_replace {
            return Err(self.unsupported("conditional replace", key));
        }
        Ok(self.objects()?.map.get(key).map(|o| (o.bytes.as_ref().clone(), Tag(o.version.to_string()))))
    }

    fn put_if_match(&self, key: &str, bytes: &[u8], expected: Option<&Tag>) -> Result<CasOutcome> {
        if !self.options.conditional_replace {
            return Err(self.unsupported("conditional replace", key));
        }
        let mut objects = self.objects()?;
        let current = objects.map.get(key).map(|o| Tag(o.version.to_string()));
        if current.as_ref() != expected {
            return Ok(CasOutcome::Changed);
        }
        let version = objects.write(key, bytes);
        Ok(CasOutcome::Replaced(Tag(version.to_string())))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.objects()?.map.remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let objects = self.objects()?;
        let below = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let mut names: Vec<String> = objects
            .map
            .range(below.clone()..)
            .take_while(|(k, _)| k.starts_with(&below))
            .filter_map(|(k, _)| k[below.len()..].split('/').next().map(str::to_string))
            .collect();
        names.dedup();
        Ok(names)
    }

    fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let objects = self.objects()?;
        let mut out: Vec<(String, u64)> = objects
            .tree(prefix)
            .into_iter()
            .filter(|k| k != prefix)
            .filter_map(|k| objects.map.get(&k).map(|o| (k.clone(), o.bytes.len() as u64)))
            .collect();
        out.sort();
        Ok(out)
    }

    fn has_children(&self, prefix: &str) -> Result<bool> {
        let objects = self.objects()?;
        Ok(objects.tree(prefix).iter().any(|k| k != prefix))
    }

    fn delete_tree(&self, key: &str) -> Result<u64> {
        let mut objects = self.objects()?;
        let mut freed = 0;
        for k in objects.tree(key) {
            if let Some(o) = objects.map.remove(&k) {
                freed += o.bytes.len() as u64;
            }
        }
        Ok(freed)
    }

    fn modified(&self, key: &str) -> Result<Option<SystemTime>> {
        let objects = self.objects()?;
        Ok(objects.tree(key).iter().filter_map(|k| objects.map.get(k).map(|o| o.modified)).max())
    }

    fn rename(&self, from: &str, to: &str) -> Result<MoveOutcome> {
        if !self.options.rename {
            return Err(self.unsupported("rename", from));
        }
        let mut objects = self.objects()?;
        let source = objects.tree(from);
        if source.is_empty() {
            return Ok(MoveOutcome::SourceMissing);
        }
        if !objects.tree(to).is_empty() {
            return Ok(MoveOutcome::TargetExists);
        }
        for k in source {
            if let Some(mut o) = objects.map.remove(&k) {
                o.modified = SystemTime::now();
                objects.map.insert(format!("{to}{}", &k[from.len()..]), o);
            }
        }
        Ok(MoveOutcome::Moved)
    }

    fn replace_file(&self, from: &str, to: &str) -> Result<bool> {
        if !self.options.rename {
            return Err(self.unsupported("rename", from));
        }
        let mut objects = self.objects()?;
        match objects.map.remove(from) {
            Some(o) => {
                objects.map.insert(to.to_string(), o);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn hard_link(&self, from: &str, to: &str) -> Result<()> {
        if !self.options.hard_links {
            return Err(self.unsupported("hard links", from));
        }
        let mut objects = self.objects()?;
        let Some(o) = objects.map.get(from).cloned() else {
            return Err(Error::io(self.location().join(from), std::io::ErrorKind::NotFound.into()));
        };
        if objects.map.contains_key(to) {
            return Err(Error::io(self.location().join(to), std::io::ErrorKind::AlreadyExists.into()));
        }
        objects.map.insert(to.to_string(), o);
        Ok(())
    }

    fn exchange(&self, a: &str, b: &str) -> Result<bool> {
        if !self.options.exchange {
            return Err(self.unsupported("exchange", a));
        }
        let mut objects = self.objects()?;
        let (ta, tb) = (objects.tree(a), objects.tree(b));
        if ta.is_empty() || tb.is_empty() {
            return Err(Error::io(self.location().join(a), std::io::ErrorKind::NotFound.into()));
        }
        let take = |objects: &mut Objects, keys: Vec<String>, from: &str| -> Vec<(String, Object)> {
            keys.into_iter().filter_map(|k| objects.map.remove(&k).map(|o| (k[from.len()..].to_string(), o))).collect()
        };
        let (oa, ob) = (take(&mut objects, ta, a), take(&mut objects, tb, b));
        for (rel, o) in oa {
            objects.map.insert(format!("{b}{rel}"), o);
        }
        for (rel, o) in ob {
            objects.map.insert(format!("{a}{rel}"), o);
        }
        Ok(true)
    }

    fn identity(&self, key: &str) -> Result<Option<String>> {
        let objects = self.objects()?;
        Ok(objects.tree(key).iter().filter_map(|k| objects.map.get(k).map(|o| o.id)).min().map(|id| format!("mem:{id}")))
    }

    fn locks(&self) -> &dyn Locks {
        self.locks.as_ref()
    }
}

/// Lock name -> (holders, held exclusively), and the condition waiters wait on.
type LockTable = Arc<(Mutex<HashMap<String, (usize, bool)>>, Condvar)>;

/// Readers-writer locks held in a table of this process.
#[derive(Debug, Default)]
struct MemoryLocks {
    table: LockTable,
}

struct Held {
    table: LockTable,
    key: String,
    exclusive: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (map, cv) = &*self.table;
        if let Ok(mut map) = map.lock() {
            if let Some(entry) = map.get_mut(&self.key) {
                if self.exclusive {
                    entry.1 = false;
                } else {
                    entry.0 = entry.0.saturating_sub(1);
                }
                if *entry == (0, false) {
                    map.remove(&self.key);
                }
            }
        }
        cv.notify_all();
    }
}

impl MemoryLocks {
    fn acquire(&self, key: &str, exclusive: bool, wait: bool) -> Result<Option<LockGuard>> {
        let (map, cv) = &*self.table;
        let poisoned = || Error::Io {
            path: PathBuf::from(join("memory://locks", key)),
            source: std::io::Error::other("a thread panicked while holding the lock table"),
        };
        let mut guard = map.lock().map_err(|_| poisoned())?;
        loop {
            let entry = guard.entry(key.to_string()).or_insert((0, false));
            let free = if exclusive { *entry == (0, false) } else { !entry.1 };
            if free {
                if exclusive {
                    entry.1 = true;
                } else {
                    entry.0 += 1;
                }
                let held = Held { table: self.table.clone(), key: key.to_string(), exclusive };
                return Ok(Some(LockGuard::new(Box::new(held))));
            }
            if !wait {
                return Ok(None);
            }
            guard = cv.wait(guard).map_err(|_| poisoned())?;
        }
    }
}

impl Locks for MemoryLocks {
    fn enabled(&self) -> bool {
        true
    }
    fn lock_exclusive(&self, key: &str) -> Result<LockGuard> {
        self.acquire(key, true, true).map(|g| g.unwrap_or_else(|| LockGuard::new(Box::new(()))))
    }
    fn try_lock_exclusive(&self, key: &str) -> Result<Option<LockGuard>> {
        self.acquire(key, true, false)
    }
    fn lock_shared(&self, key: &str) -> Result<LockGuard> {
        self.acquire(key, false, true).map(|g| g.unwrap_or_else(|| LockGuard::new(Box::new(()))))
    }
    fn try_lock_shared(&self, key: &str) -> Result<Option<LockGuard>> {
        self.acquire(key, false, false)
    }
}
