//! User locks (`Store::lock`): readers-writer locks on the whole store or on a name, shared by threads and by
//! OS processes (children re-executing this test binary), released by the kernel when a holder is SIGKILLed.

mod common;

use common::{child_results, child_store, open, spawn_child};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use zarrtx::{Error, LockMode, OpenOptions, Store, UserLock};

const NOW: Option<Duration> = Some(Duration::ZERO);
/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn mode_of(s: &str) -> LockMode {
    match s {
        "r" => LockMode::Read,
        "w" => LockMode::Write,
        other => panic!("mode {other:?}"),
    }
}

/// Waits until `path` exists; false after `limit`.
fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    path.exists()
}

/// Asserts that taking the lock now fails with `LockTimeout` (someone else holds a conflicting lock).
fn assert_busy(store: &Store, name: Option<&str>, mode: LockMode) {
    match store.lock(name, mode, NOW) {
        Err(Error::LockTimeout { name: got, .. }) => assert_eq!(got.as_deref(), name),
        Ok(_) => panic!("lock {name:?} {mode:?} was acquired although a conflicting holder has it"),
        Err(e) => panic!("lock {name:?} {mode:?}: {e}"),
    }
}

/// Asserts that the lock is free now (takes and releases it).
fn assert_free(store: &Store, name: Option<&str>, mode: LockMode) {
    let lock = store.lock(name, mode, NOW).unwrap_or_else(|e| panic!("lock {name:?} {mode:?} should be free: {e}"));
    assert_eq!(lock.mode(), mode);
    assert_eq!(lock.name(), name);
    lock.release();
}

/// Child entry point: takes the lock described by `LOCK` = `<name or *>:<r|w>:<timeout ms or ->`, touches
/// `<SIGNALS>/<ID>.acquired`, holds the lock until `<SIGNALS>/<ID>.release` exists, then releases and exits.
#[test]
#[ignore = "child process entry point, started by other tests"]
fn child_lock_holder() {
    let Some((store, spec)) = child_store("LOCK") else { return };
    let signals = PathBuf::from(std::env::var("SIGNALS").expect("SIGNALS"));
    let id = std::env::var("ID").expect("ID");
    let parts: Vec<&str> = spec.split(':').collect();
    let name = (parts[0] != "*").then_some(parts[0]);
    let timeout = (parts[2] != "-").then(|| Duration::from_millis(parts[2].parse().unwrap()));
    match store.lock(name, mode_of(parts[1]), timeout) {
        Ok(lock) => {
            std::fs::write(signals.join(format!("{id}.acquired")), b"").unwrap();
            println!("RESULT acquired");
            assert!(wait_for_file(&signals.join(format!("{id}.release")), Duration::from_secs(300)), "never released");
            drop(lock);
            println!("RESULT released");
        }
        Err(Error::LockTimeout { .. }) => println!("RESULT timeout"),
        Err(e) => panic!("child lock failed: {e}"),
    }
}

/// A child process that takes a lock and holds it until told to release; killed if still running when dropped.
struct Holder {
    child: Option<Child>,
    signals: PathBuf,
    id: String,
}

impl Holder {
    /// Starts a child taking `name` (`None`: the whole store) in `mode`, waiting at most `timeout` (`None`: block).
    fn spawn(
        store: &Path,
        signals: &Path,
        id: &str,
        name: Option<&str>,
        mode: LockMode,
        timeout: Option<Duration>,
    ) -> Self {
        let spec = format!(
            "{}:{}:{}",
            name.unwrap_or("*"),
            if mode == LockMode::Read { "r" } else { "w" },
            timeout.map(|t| t.as_millis().to_string()).unwrap_or_else(|| "-".into())
        );
        let child = spawn_child(
            "child_lock_holder",
            &[
                ("STORE", store.display().to_string()),
                ("LOCK", spec),
                ("SIGNALS", signals.display().to_string()),
                ("ID", id.to_string()),
            ],
        );
        Holder { child: Some(child), signals: signals.to_path_buf(), id: id.to_string() }
    }

    fn acquired_file(&self) -> PathBuf {
        self.signals.join(format!("{}.acquired", self.id))
    }

    /// Waits until the child holds its lock; false after `limit`.
    fn wait_acquired(&self, limit: Duration) -> bool {
        wait_for_file(&self.acquired_file(), limit)
    }

    fn has_acquired(&self) -> bool {
        self.acquired_file().exists()
    }

    /// Tells the child to release and waits for it; its `RESULT` lines.
    fn release(mut self) -> Vec<String> {
        std::fs::write(self.signals.join(format!("{}.release", self.id)), b"").unwrap();
        child_results(self.child.take().unwrap())
    }

    /// SIGKILLs the child and reaps it.
    fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().expect("SIGKILL the holder");
        let status = child.wait().unwrap();
        assert!(!status.success(), "the holder was killed, it did not finish");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.zarr");
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).unwrap();
    let store = open(&path);
    (dir, path, signals, store)
}

#[test]
fn readers_share_the_lock_across_processes() {
    let (_dir, path, signals, store) = setup();
    for name in [None, Some("cells")] {
        let tag = name.unwrap_or("store");
        let a = Holder::spawn(&path, &signals, &format!("{tag}-a"), name, LockMode::Read, None);
        let b = Holder::spawn(&path, &signals, &format!("{tag}-b"), name, LockMode::Read, None);
        // Each holds until told to release, so both acquiring means two readers at once.
        assert!(a.wait_acquired(PATIENCE) && b.wait_acquired(PATIENCE), "{tag}: two readers could not hold it at once");
        assert_free(&store, name, LockMode::Read); // a third reader, in this process
        assert_busy(&store, name, LockMode::Write);
        if name.is_some() {
            assert_busy(&store, None, LockMode::Write); // named holders hold the store lock shared
        }
        assert_eq!(a.release(), ["acquired", "released"]);
        assert_busy(&store, name, LockMode::Write); // one reader left is enough to keep writers out
        assert_eq!(b.release(), ["acquired", "released"]);
        assert_free(&store, name, LockMode::Write);
        assert_free(&store, None, LockMode::Write);
    }
}

#[test]
fn a_writer_excludes_readers_and_writers_across_processes() {
    let (_dir, path, signals, store) = setup();
    for name in [None, Some("cells")] {
        let tag = name.unwrap_or("store");
        let writer = Holder::spawn(&path, &signals, &format!("{tag}-w"), name, LockMode::Write, None);
        assert!(writer.wait_acquired(PATIENCE), "{tag}: the writer did not get the free lock");
        assert_busy(&store, name, LockMode::Read);
        assert_busy(&store, name, LockMode::Write);
        // Other processes wait in the kernel (no timeout) until the writer releases.
        let reader = Holder::spawn(&path, &signals, &format!("{tag}-r"), name, LockMode::Read, None);
        let writer2 = Holder::spawn(&path, &signals, &format!("{tag}-w2"), name, LockMode::Write, None);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!reader.has_acquired(), "{tag}: a reader got in while a writer held the lock");
        assert!(!writer2.has_acquired(), "{tag}: a second writer got in while a writer held the lock");
        assert_eq!(writer.release(), ["acquired", "released"]);
        // Now the reader and the second writer get it, one after the other (in either order).
        let start = Instant::now();
        while !(reader.has_acquired() || writer2.has_acquired()) {
            assert!(start.elapsed() < PATIENCE, "{tag}: nobody got the lock after the writer released it");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !(reader.has_acquired() && writer2.has_acquired()),
            "{tag}: a reader and a writer held the lock at once"
        );
        let (first, second) = if reader.has_acquired() { (reader, writer2) } else { (writer2, reader) };
        assert_busy(&store, name, LockMode::Write);
        assert_eq!(first.release(), ["acquired", "released"]);
        assert!(second.wait_acquired(PATIENCE), "{tag}: the second waiter never got the lock");
        assert_eq!(second.release(), ["acquired", "released"]);
        assert_free(&store, name, LockMode::Write);
    }
}

/// Runs `f` on a thread of its own and returns its result; fails (instead of hanging the test run) when it has not
/// finished after `limit`, and passes its panic on.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread ended without a result or a panic"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("still waiting after {limit:?}: a lock is never released")
        }
    }
}

#[test]
fn a_writer_excludes_readers_and_writers_across_threads() {
    let (_dir, path, _signals, store) = setup();
    let other_handle = open(&path);
    for name in [None, Some("cells")] {
        // Deterministic: while one thread holds Write, no other thread (same handle or another) gets anything.
        let held = store.lock(name, LockMode::Write, NOW).unwrap();
        let busy = std::thread::scope(|s| {
            let h1 = s.spawn(|| store.lock(name, LockMode::Read, NOW).is_err());
            let h2 = s.spawn(|| other_handle.lock(name, LockMode::Write, NOW).is_err());
            h1.join().unwrap() && h2.join().unwrap()
        });
        assert!(busy, "{name:?}: another thread got a lock that a writer holds");
        // Not even the holding thread itself gets it again: locks are not reentrant (Python adds that).
        assert_busy(&store, name, LockMode::Write);

        // A thread that blocks (no timeout) gets the lock only after the writer released it.
        let released = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (handle, released) = (other_handle.clone(), released.clone());
            std::thread::spawn(move || {
                let lock = handle.lock(name, LockMode::Read, None).unwrap();
                let after_release = released.load(Ordering::SeqCst);
                drop(lock);
                after_release
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "{name:?}: the waiter got the lock while the writer held it");
        released.store(true, Ordering::SeqCst);
        drop(held);
        let after_release = within(PATIENCE, move || waiter.join().unwrap());
        assert!(after_release, "{name:?}: the waiter got the lock while the writer held it");
    }

    // Under contention: 4 threads on two handles, readers and writers, blocking and polling, one name spelled
    // two ways; every thread checks the readers-writer invariants while it holds the lock.
    let (a, b) = (store.clone(), other_handle.clone());
    within(PATIENCE * 2, move || {
        let writers = AtomicUsize::new(0);
        let readers = AtomicUsize::new(0);
        let barrier = Barrier::new(4);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (writers, readers, barrier) = (&writers, &readers, &barrier);
                let handle = if t % 2 == 0 { a.clone() } else { b.clone() };
                s.spawn(move || {
                    let mut rng = common::Rng::new();
                    barrier.wait();
                    for _ in 0..40 {
                        let timeout = if rng.below(2) == 0 { None } else { Some(PATIENCE) };
                        if rng.below(3) == 0 {
                            let _lock = handle.lock(Some("Shared"), LockMode::Write, timeout).unwrap();
                            assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers at once");
                            assert_eq!(readers.load(Ordering::SeqCst), 0, "a writer while readers hold the lock");
                            std::thread::sleep(Duration::from_millis(2));
                            writers.fetch_sub(1, Ordering::SeqCst);
                        } else {
                            let _lock = handle.lock(Some("shared"), LockMode::Read, timeout).unwrap();
                            readers.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(writers.load(Ordering::SeqCst), 0, "a reader while a writer holds the lock");
                            std::thread::sleep(Duration::from_millis(3));
                            readers.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
    });
    assert_free(&store, Some("shared"), LockMode::Write);
}

#[test]
fn a_store_wide_writer_excludes_named_locks_and_different_names_do_not_block_each_other() {
    let (_dir, path, signals, store) = setup();
    // Two processes hold write locks on two names at the same time.
    let cells = Holder::spawn(&path, &signals, "cells", Some("cells"), LockMode::Write, None);
    let genes = Holder::spawn(&path, &signals, "genes", Some("genes"), LockMode::Write, None);
    assert!(cells.wait_acquired(PATIENCE) && genes.wait_acquired(PATIENCE), "named locks on different names blocked");
    assert_busy(&store, Some("cells"), LockMode::Read);
    assert_busy(&store, Some("genes"), LockMode::Write);
    assert_free(&store, Some("other"), LockMode::Write); // a third name is free
    assert_free(&store, None, LockMode::Read); // store readers coexist with named locks
    assert_busy(&store, None, LockMode::Write); // a store-wide writer waits for every named holder
    assert_eq!(cells.release(), ["acquired", "released"]);
    assert_busy(&store, None, LockMode::Write);
    assert_eq!(genes.release(), ["acquired", "released"]);

    // A store-wide writer (another process) excludes every named lock, in any mode.
    let all = Holder::spawn(&path, &signals, "all", None, LockMode::Write, None);
    assert!(all.wait_acquired(PATIENCE));
    for name in ["cells", "genes", "anything"] {
        assert_busy(&store, Some(name), LockMode::Read);
        assert_busy(&store, Some(name), LockMode::Write);
    }
    assert_busy(&store, None, LockMode::Read);
    // A named lock asked for meanwhile (another process, no timeout) waits for the store-wide writer.
    let waiting = Holder::spawn(&path, &signals, "waiting", Some("cells"), LockMode::Read, None);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!waiting.has_acquired(), "a named lock was taken while a store-wide writer held the store");
    assert_eq!(all.release(), ["acquired", "released"]);
    assert!(waiting.wait_acquired(PATIENCE));
    assert_eq!(waiting.release(), ["acquired", "released"]);

    // The same within one thread of one process (each acquisition is a holder of its own).
    let whole = store.lock(None, LockMode::Write, NOW).unwrap();
    assert_busy(&store, Some("cells"), LockMode::Read);
    drop(whole);
    let a = store.lock(Some("a"), LockMode::Write, NOW).unwrap();
    let b = store.lock(Some("b"), LockMode::Write, NOW).unwrap();
    assert_busy(&store, None, LockMode::Write);
    drop((a, b));
    assert_free(&store, None, LockMode::Write);
}

#[test]
fn a_timeout_returns_lock_timeout_after_roughly_the_timeout() {
    let (_dir, path, _signals, store) = setup();
    let other = open(&path);
    for (name, held) in [(None, LockMode::Write), (Some("cells"), LockMode::Write), (Some("cells"), LockMode::Read)] {
        let holder = other.lock(name, held, NOW).unwrap();
        let timeout = Duration::from_millis(400);
        let start = Instant::now();
        let err = store.lock(name, LockMode::Write, Some(timeout)).unwrap_err();
        let elapsed = start.elapsed();
        match &err {
            Error::LockTimeout { name: got, waited_ms } => {
                assert_eq!(got.as_deref(), name);
                assert!(*waited_ms >= 400, "waited_ms {waited_ms} < the timeout");
            }
            other => panic!("{other}"),
        }
        assert!(elapsed >= timeout, "gave up after {elapsed:?}, before the timeout");
        assert!(elapsed < Duration::from_secs(10), "gave up only after {elapsed:?}");
        let message = err.to_string();
        assert!(message.contains("another thread or process holds it"), "{message}");
        assert!(message.contains(name.map(|n| format!("'{n}'")).as_deref().unwrap_or("whole-store")), "{message}");
        drop(holder);
        // The timed-out call holds nothing: a store-wide writer gets in at once (it would not if the intention
        // lock of the named attempt had been kept).
        assert_free(&store, None, LockMode::Write);
    }

    // A named lock blocked by a store-wide writer times out too, and releases nothing it did not get.
    let whole = other.lock(None, LockMode::Write, NOW).unwrap();
    let err = store.lock(Some("cells"), LockMode::Read, Some(Duration::from_millis(100))).unwrap_err();
    assert!(matches!(err, Error::LockTimeout { ref name, .. } if name.as_deref() == Some("cells")), "{err}");
    drop(whole);

    // A timeout long enough succeeds once the holder releases.
    let holder = other.lock(Some("cells"), LockMode::Write, NOW).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(holder);
        });
        let lock = store.lock(Some("cells"), LockMode::Write, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(lock.name(), Some("cells"));
    });
}

#[test]
fn a_zero_timeout_tries_once() {
    let (_dir, path, signals, store) = setup();
    // Held by another process for the whole test: a zero timeout must come back at once instead of waiting.
    let holder = Holder::spawn(&path, &signals, "h", Some("cells"), LockMode::Write, None);
    assert!(holder.wait_acquired(PATIENCE));
    for (name, mode) in [(Some("cells"), LockMode::Read), (Some("CELLS"), LockMode::Write), (None, LockMode::Write)] {
        let start = Instant::now();
        match store.lock(name, mode, NOW) {
            Err(Error::LockTimeout { name: got, .. }) => assert_eq!(got.as_deref(), name),
            other => panic!("{name:?} {mode:?}: {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5), "a zero timeout waited {:?}", start.elapsed());
    }
    // Free locks are taken at the first try.
    let lock = store.lock(Some("genes"), LockMode::Write, NOW).unwrap();
    assert_eq!((lock.name(), lock.mode()), (Some("genes"), LockMode::Write));
    let lock2 = store.lock(None, LockMode::Read, NOW).unwrap();
    assert_eq!((lock2.name(), lock2.mode()), (None, LockMode::Read));
    assert_eq!(holder.release(), ["acquired", "released"]);
}

#[test]
fn a_sigkilled_holder_releases_its_lock() {
    let (_dir, path, signals, store) = setup();
    for (i, name) in [Some("cells"), None].into_iter().enumerate() {
        let holder = Holder::spawn(&path, &signals, &format!("k{i}"), name, LockMode::Write, None);
        assert!(holder.wait_acquired(PATIENCE));
        assert_busy(&store, name, LockMode::Write);
        std::thread::scope(|s| {
            // Waits (with a generous timeout, so that a lock that is never released fails instead of hanging).
            let waiter = s.spawn(|| store.lock(name, LockMode::Write, Some(PATIENCE)));
            std::thread::sleep(Duration::from_millis(300));
            assert!(!waiter.is_finished(), "the waiter got the lock while the holder was alive");
            holder.kill();
            let lock: UserLock = waiter.join().unwrap().expect("the killed holder's lock is released by the kernel");
            assert_eq!(lock.name(), name);
        });
        assert_free(&store, None, LockMode::Write);
    }
}

#[test]
fn names_compare_case_insensitively() {
    let (_dir, path, _signals, store) = setup();
    let held = store.lock(Some("Cells"), LockMode::Write, NOW).unwrap();
    assert_eq!(held.name(), Some("Cells"), "the name as asked for");
    assert_busy(&store, Some("cells"), LockMode::Read);
    assert_busy(&store, Some("CELLS"), LockMode::Write);
    assert_free(&store, Some("cells2"), LockMode::Write);
    let locks = path.join(".zarrtx/locks");
    assert!(locks.join("user-cells.lock").exists(), "one lock file per lower-cased name");
    assert!(!locks.join("user-Cells.lock").exists());
    drop(held);
    let readers = [
        store.lock(Some("GENES"), LockMode::Read, NOW).unwrap(),
        store.lock(Some("genes"), LockMode::Read, NOW).unwrap(),
    ];
    assert_busy(&store, Some("Genes"), LockMode::Write);
    drop(readers);
    assert_free(&store, Some("gEnEs"), LockMode::Write);
}

#[test]
fn invalid_names_are_refused() {
    let (_dir, path, _signals, store) = setup();
    let long = "a".repeat(201);
    for bad in ["", ".", "..", "__x", ".hidden", "a/b", "../../etc", "a b", "é", long.as_str()] {
        for mode in [LockMode::Read, LockMode::Write] {
            match store.lock(Some(bad), mode, NOW) {
                Err(Error::InvalidName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
    // Nothing was created for them, and nothing stays held.
    let files: Vec<String> = match std::fs::read_dir(path.join(".zarrtx/locks")) {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(files.iter().all(|f| !f.starts_with("user")), "lock files were created for invalid names: {files:?}");
    assert!(!path.join(".zarrtx/locks/user-a").exists());
    assert_free(&store, None, LockMode::Write);
}

#[test]
fn a_store_opened_read_only_can_lock() {
    let (_dir, path, _signals, writer) = setup();
    let ro = Store::open(&path, &OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let held = ro.lock(Some("cells"), LockMode::Write, NOW).unwrap();
    assert_busy(&writer, Some("cells"), LockMode::Read);
    drop(held);
    let held = writer.lock(None, LockMode::Write, NOW).unwrap();
    assert_busy(&ro, None, LockMode::Read);
    drop(held);
    assert_free(&ro, Some("cells"), LockMode::Read);
}

#[test]
fn a_read_only_medium_without_lock_files_gives_read_only() {
    // Needs a tmpfs remounted read-only: root only (in CI the mount must work; elsewhere the test is skipped).
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |args: &[&str]| {
        let ok = Command::new("mount").args(args).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok || std::env::var_os("CI").is_none(), "mount {args:?} failed in CI (the tests run as root there)");
        ok
    };
    if !mount(&["-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt.to_str().unwrap()]) {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let path = mnt.join("s.zarr");
    drop(open(&path));
    assert!(mount(&["-o", "remount,ro", mnt.to_str().unwrap()]));
    let store = Store::open(&path, &OpenOptions { read_only: true, ..Default::default() }).unwrap();
    for name in [None, Some("cells")] {
        match store.lock(name, LockMode::Read, None) {
            Err(Error::ReadOnly { .. }) => {}
            other => panic!("{name:?}: {other:?}"),
        }
    }
}
