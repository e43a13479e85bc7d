//! The storage contract (`zarrtx::storage::conformance`) on every backend of the crate, and the fault-injecting
//! wrapper's own behaviour.

use std::sync::Arc;
use std::time::Duration;
use zarrtx::storage::conformance;
use zarrtx::storage::{Fault, FaultyStorage, MemoryOptions, MemoryStorage, PosixStorage, PutOutcome, Storage};
use zarrtx::Error;

/// Fresh POSIX stores in directories of their own below `root`.
fn posix(root: &std::path::Path, locks: bool) -> impl Fn() -> Arc<dyn Storage> + '_ {
    move || {
        let dir = root.join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        Arc::new(PosixStorage::new(dir, true).with_locks(locks)) as Arc<dyn Storage>
    }
}

#[test]
fn posix_with_flock_passes_the_contract() {
    let root = tempfile::tempdir().unwrap();
    conformance::run_all(&posix(root.path(), true));
}

#[test]
fn posix_with_locks_switched_off_passes_the_contract() {
    let root = tempfile::tempdir().unwrap();
    conformance::run_all(&posix(root.path(), false));
    assert!(!posix(root.path(), false)().capabilities().advisory_locks);
}

#[test]
fn memory_with_every_capability_passes_the_contract() {
    conformance::run_all(&|| Arc::new(MemoryStorage::new()) as Arc<dyn Storage>);
}

#[test]
fn memory_like_an_object_store_passes_the_contract() {
    let bare = MemoryOptions { rename: false, hard_links: false, exchange: false, locks: false, ..Default::default() };
    conformance::run_all(&|| Arc::new(MemoryStorage::with_options(bare.clone())) as Arc<dyn Storage>);
    let posix_like = MemoryOptions { conditional_replace: false, ..Default::default() };
    conformance::run_all(&|| Arc::new(MemoryStorage::with_options(posix_like.clone())) as Arc<dyn Storage>);
}

#[test]
fn the_fault_wrapper_without_faults_passes_the_contract() {
    conformance::run_all(&|| Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::new()))) as Arc<dyn Storage>);
}

#[test]
fn unsupported_operations_are_typed_errors() {
    let bare = MemoryStorage::with_options(MemoryOptions { rename: false, conditional_replace: false, ..Default::default() });
    bare.put("a", b"1").unwrap();
    assert!(matches!(bare.rename("a", "b"), Err(Error::Unsupported { .. })));
    assert!(matches!(bare.get_tagged("a"), Err(Error::Unsupported { .. })));
    let root = tempfile::tempdir().unwrap();
    let posix = posix(root.path(), true)();
    assert!(matches!(posix.get_tagged("a"), Err(Error::Unsupported { .. })), "POSIX has no compare-and-swap");
}

#[test]
fn injected_faults_do_what_they_say() {
    let s = FaultyStorage::new(Arc::new(MemoryStorage::new()));
    s.put("a", b"1").unwrap();
    let n = s.ops();
    s.inject(Fault::FailNth(n));
    assert!(s.get("a").is_err(), "operation {n} fails");
    assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"1"[..]), "the next one does not");

    s.inject(Fault::LoseResponse { key_contains: "log/".into(), times: 1 });
    assert!(s.put_if_absent("log/1", b"entry").is_err(), "the write happened but reported failure");
    assert_eq!(s.get("log/1").unwrap().as_deref(), Some(&b"entry"[..]), "the write did happen");
    assert_eq!(s.put_if_absent("log/1", b"entry").unwrap(), PutOutcome::Created, "only once");

    s.inject(Fault::Delay { key_contains: "slow".into(), duration: Duration::from_millis(50) });
    let t = std::time::Instant::now();
    s.put("slow/x", b"1").unwrap();
    assert!(t.elapsed() >= Duration::from_millis(50));

    s.clear();
    s.inject(Fault::FullAfter(10));
    assert!(matches!(s.put("big", &[0u8; 64]), Err(Error::StorageFull { .. })));
    s.clear();

    let k = s.ops();
    s.inject(Fault::FailFrom(k + 1));
    s.get("a").unwrap();
    assert!(s.get("a").is_err() && s.put("b", b"2").is_err(), "dead from operation {}", k + 1);
}
