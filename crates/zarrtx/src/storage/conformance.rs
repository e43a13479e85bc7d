//! The conformance suite every [`Storage`] backend passes (run by `tests/storage_conformance.rs` on every backend
//! of this crate; a new backend calls [`run_all`] from its own tests). Each check panics with a message naming the
//! broken rule, as test assertions do; the optional operations are checked where [`Capabilities`] announce them.
//!
//! `fresh()` must return an empty store each time it is called.

use super::{CasOutcome, Capabilities, MoveOutcome, PutOutcome, Storage};
use std::sync::Arc;

/// Runs every check on stores made by `fresh`.
pub fn run_all(fresh: &dyn Fn() -> Arc<dyn Storage>) {
    objects(fresh().as_ref());
    listing(fresh().as_ref());
    create_if_absent(fresh());
    let caps: Capabilities = fresh().capabilities();
    if caps.rename {
        rename(fresh());
    }
    if caps.conditional_replace {
        compare_and_swap(fresh());
    }
    if caps.hard_links {
        hard_links(fresh().as_ref());
    }
    if caps.exchange {
        exchange(fresh().as_ref());
    }
    if caps.advisory_locks {
        locks(fresh().as_ref());
    }
}

/// get, put, ranged get, size, delete, exists, modified, private writes and sync.
pub fn objects(s: &dyn Storage) {
    assert_eq!(s.get("a/b").unwrap(), None, "a missing object reads as None");
    assert_eq!(s.size("a/b").unwrap(), None);
    assert!(!s.exists("a/b").unwrap());
    s.put("a/b", b"hello world").unwrap();
    assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"hello world"[..]));
    assert_eq!(s.size("a/b").unwrap(), Some(11));
    assert_eq!(s.get_range("a/b", 6..11).unwrap().as_deref(), Some(&b"world"[..]), "ranged read");
    assert_eq!(s.get_range("a/b", 6..100).unwrap().as_deref(), Some(&b"world"[..]), "a range is clipped to the end");
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 8..2;
    assert_eq!(s.get_range("a/b", backwards).unwrap().as_deref(), Some(&b""[..]), "a backwards range is empty");
    assert_eq!(s.get_range("a/b", 100..200).unwrap().as_deref(), Some(&b""[..]), "a range past the end is empty");
    assert!(s.exists("a/b").unwrap() && s.exists("a").unwrap(), "objects and their prefixes exist");
    assert!(s.modified("a/b").unwrap().is_some() && s.modified("a").unwrap().is_some());
    s.put("a/b", b"bye").unwrap();
    assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"bye"[..]), "put replaces");
    assert_eq!(s.get("a/b/c").unwrap(), None, "a key below an object is absent");
    s.put_relaxed("r/x", b"1").unwrap();
    s.put_private("p/y/z", b"2").unwrap();
    s.sync(&["r/x".to_string(), "p/y/z".to_string()]).unwrap();
    s.sync_prefix("p").unwrap();
    assert_eq!(s.get("p/y/z").unwrap().as_deref(), Some(&b"2"[..]));
    s.delete("a/b").unwrap();
    s.delete("a/b").unwrap();
    assert_eq!(s.get("a/b").unwrap(), None, "deleted, and deleting twice is no error");
    assert_eq!(s.delete_tree("p").unwrap(), 1, "delete_tree returns the bytes freed");
    assert!(!s.exists("p").unwrap());
    assert_eq!(s.delete_tree("nothing/here").unwrap(), 0);
}

/// list (direct children, sorted), list_recursive, has_children.
pub fn listing(s: &dyn Storage) {
    assert!(s.list("d").unwrap().is_empty(), "a missing prefix lists nothing");
    for k in ["d/b", "d/a", "d/sub/x", "d/sub/y/z", "e"] {
        s.put(k, k.as_bytes()).unwrap();
    }
    assert_eq!(s.list("d").unwrap(), vec!["a", "b", "sub"], "direct children, sorted, prefixes once");
    assert!(s.list("").unwrap().contains(&"e".to_string()), "the root lists its children");
    let all: Vec<String> = s.list_recursive("d").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(all, vec!["d/a", "d/b", "d/sub/x", "d/sub/y/z"], "every object below, keys from the root");
    assert!(s.has_children("d/sub").unwrap() && !s.has_children("d/a").unwrap());
}

/// put_if_absent: exactly one winner among racing threads, every round; our own bytes again read as ours.
pub fn create_if_absent(s: Arc<dyn Storage>) {
    assert_eq!(s.put_if_absent("c/x", b"one").unwrap(), PutOutcome::Created);
    assert_eq!(s.put_if_absent("c/x", b"two").unwrap(), PutOutcome::AlreadyExists);
    assert_eq!(s.get("c/x").unwrap().as_deref(), Some(&b"one"[..]), "the first content stands");
    assert_eq!(s.put_if_absent("c/x", b"one").unwrap(), PutOutcome::Created, "a lost reply of our own write");
    for round in 0..16 {
        let key = format!("race/{round}");
        let winners: usize = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..12)
                .map(|i| {
                    let (s, key) = (s.clone(), key.clone());
                    scope.spawn(move || s.put_if_absent(&key, format!("writer {i}").as_bytes()).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap() == PutOutcome::Created)).sum()
        });
        assert_eq!(winners, 1, "round {round}: exactly one creator");
    }
}

/// rename: moves trees, never replaces one, and exactly one of racing movers succeeds; replace_file replaces.
pub fn rename(s: Arc<dyn Storage>) {
    s.put("m/a/f", b"1").unwrap();
    s.put("m/b/f", b"2").unwrap();
    assert_eq!(s.rename("m/a", "m/b").unwrap(), MoveOutcome::TargetExists, "never onto an existing tree");
    assert_eq!(s.rename("m/a", "m/c/d").unwrap(), MoveOutcome::Moved);
    assert_eq!(s.rename("m/a", "m/e").unwrap(), MoveOutcome::SourceMissing);
    assert_eq!(s.get("m/c/d/f").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(!s.exists("m/a").unwrap());
    for round in 0..8 {
        let src = format!("mv/{round}/src");
        s.put(&format!("{src}/f"), b"x").unwrap();
        let moved: usize = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let (s, src) = (s.clone(), src.clone());
                    scope.spawn(move || s.rename(&src, &format!("mv/{round}/dst{i}")).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap() == MoveOutcome::Moved)).sum()
        });
        assert_eq!(moved, 1, "round {round}: one mover moves the tree");
    }
    s.put("rf/new", b"new").unwrap();
    s.put("rf/old", b"old").unwrap();
    assert!(s.replace_file("rf/new", "rf/old").unwrap());
    assert_eq!(s.get("rf/old").unwrap().as_deref(), Some(&b"new"[..]), "replace_file replaces the target");
    assert!(!s.replace_file("rf/new", "rf/old").unwrap(), "a missing source is reported");
}

/// Compare-and-swap: a stale tag never wins, and concurrent increments lose nothing.
pub fn compare_and_swap(s: Arc<dyn Storage>) {
    assert_eq!(s.get_tagged("cas").unwrap(), None);
    let CasOutcome::Replaced(t0) = s.put_if_match("cas", b"0", None).unwrap() else {
        panic!("creating an absent object with expected None must succeed")
    };
    assert_eq!(s.put_if_match("cas", b"x", None).unwrap(), CasOutcome::Changed, "expected absent, found present");
    let CasOutcome::Replaced(_) = s.put_if_match("cas", b"1", Some(&t0)).unwrap() else { panic!("fresh tag") };
    assert_eq!(s.put_if_match("cas", b"2", Some(&t0)).unwrap(), CasOutcome::Changed, "a stale tag loses");
    s.put("counter", b"0").unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let s = s.clone();
            scope.spawn(move || {
                for _ in 0..25 {
                    loop {
                        let (bytes, tag) = s.get_tagged("counter").unwrap().expect("present");
                        let n: u64 = String::from_utf8(bytes).unwrap().parse().unwrap();
                        if let CasOutcome::Replaced(_) = s.put_if_match("counter", (n + 1).to_string().as_bytes(), Some(&tag)).unwrap() {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(s.get("counter").unwrap().as_deref(), Some(&b"200"[..]), "no increment is lost");
}

/// Hard links: a second name with the same content.
pub fn hard_links(s: &dyn Storage) {
    s.put("h/a", b"data").unwrap();
    s.hard_link("h/a", "h/sub/b").unwrap();
    assert_eq!(s.get("h/sub/b").unwrap().as_deref(), Some(&b"data"[..]));
    assert!(s.hard_link("h/a", "h/sub/b").is_err(), "a link never replaces an existing name");
}

/// Exchange of two trees (where the backend can), and tree identities that move with the trees.
pub fn exchange(s: &dyn Storage) {
    s.put("x/a/f", b"a").unwrap();
    s.put("x/b/f", b"b").unwrap();
    let (ia, ib) = (s.identity("x/a").unwrap(), s.identity("x/b").unwrap());
    assert!(ia.is_some() && ia != ib, "two trees have distinct identities");
    if s.exchange("x/a", "x/b").unwrap() {
        assert_eq!(s.get("x/a/f").unwrap().as_deref(), Some(&b"b"[..]));
        assert_eq!(s.get("x/b/f").unwrap().as_deref(), Some(&b"a"[..]));
        assert_eq!(s.identity("x/a").unwrap(), ib, "the identity moves with the tree");
    }
}

/// Readers-writer locks: shared holders share, an exclusive holder excludes, every call is a holder of its own.
pub fn locks(s: &dyn Storage) {
    let l = s.locks();
    let key = ".zarrtx/locks/conformance.lock";
    let r1 = l.lock_shared(key).unwrap();
    let r2 = l.try_lock_shared(key).unwrap().expect("a second shared holder is admitted");
    assert!(l.try_lock_exclusive(key).unwrap().is_none(), "shared holders exclude an exclusive one");
    drop(r1);
    assert!(l.try_lock_exclusive(key).unwrap().is_none(), "one shared holder is enough to exclude");
    drop(r2);
    let w = l.try_lock_exclusive(key).unwrap().expect("free again");
    assert!(l.try_lock_shared(key).unwrap().is_none(), "an exclusive holder excludes shared ones");
    assert!(l.try_lock_exclusive(key).unwrap().is_none(), "and other exclusive ones, in the same process");
    drop(w);
    assert!(l.try_lock_shared(key).unwrap().is_some());
}
