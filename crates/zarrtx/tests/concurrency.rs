//! G1, G3, G6: many threads and OS processes adding to one store; races on one name; fresh handles.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use zarrtx::{ElementType, Error};

const WRITERS: usize = 16;

#[test]
fn sixteen_threads_add_distinct_elements_and_all_survive() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    open(&path);
    let barrier = Arc::new(Barrier::new(WRITERS));
    std::thread::scope(|s| {
        for i in 0..WRITERS {
            let (path, barrier) = (place.node(i).to_path_buf(), barrier.clone());
            s.spawn(move || {
                let store = open(&path); // each thread its own handle (on either node), as separate programs would
                barrier.wait();
                add_labels(&store, &format!("t{i:02}"), 64, false).unwrap();
            });
        }
    });
    let store = open(&path);
    let snap = store.snapshot(None).unwrap();
    assert_eq!(snap.version(), WRITERS as u64);
    let names: BTreeSet<String> = snap.elements().into_iter().map(|e| e.name).collect();
    assert_eq!(names, (0..WRITERS).map(|i| format!("t{i:02}")).collect());
    for name in &names {
        assert_eq!(read_labels(&store, None, name), labels_data(name, 64), "{name}");
    }
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.published_version, Some(WRITERS as u64));
}

#[test]
#[ignore = "child process entry point, started by other tests"]
fn child_add_labels() {
    let Some((store, names)) = child_store("NAMES") else { return };
    // Line up with the siblings: wait for the start file so the adds really overlap.
    if let Ok(start) = std::env::var("START_FILE") {
        while !std::path::Path::new(&start).exists() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    for name in names.split(',') {
        match add_labels(&store, name, 64, false) {
            Ok(c) => println!("RESULT ok {name} {}", c.version),
            Err(Error::ElementExists { .. }) => println!("RESULT exists {name}"),
            Err(e) => println!("RESULT error {name} {e}"),
        }
    }
}

fn run_processes(place: &Place, names_per_child: Vec<String>) -> Vec<String> {
    let start = place.scratch.join("start");
    let children: Vec<_> = names_per_child
        .into_iter()
        .enumerate()
        .map(|(i, names)| {
            spawn_child(
                "child_add_labels",
                &[
                    ("STORE", place.node(i).display().to_string()),
                    ("NAMES", names),
                    ("START_FILE", start.display().to_string()),
                ],
            )
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(&start, b"go").unwrap();
    children.into_iter().flat_map(child_results).collect()
}

#[test]
fn sixteen_processes_add_distinct_elements_and_all_survive() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    open(&path);
    let results = run_processes(&place, (0..WRITERS).map(|i| format!("p{i:02}")).collect());
    assert_eq!(results.iter().filter(|r| r.starts_with("ok ")).count(), WRITERS, "{results:?}");
    let store = open(&path);
    let snap = store.snapshot(None).unwrap();
    assert_eq!(snap.elements().len(), WRITERS);
    for e in snap.elements() {
        assert_eq!(e.element_type, ElementType::Labels);
        assert_eq!(read_labels(&store, None, &e.name), labels_data(&e.name, 64));
    }
    // Every version 1..=16 was taken by exactly one writer.
    let versions: BTreeSet<u64> = results.iter().map(|r| r.rsplit(' ').next().unwrap().parse().unwrap()).collect();
    assert_eq!(versions, (1..=WRITERS as u64).collect());
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn sixteen_processes_racing_on_one_name_have_one_winner() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    open(&path);
    // Same name in different cases: spatialdata names collide case-insensitively.
    let names = (0..WRITERS).map(|i| if i % 2 == 0 { "Cells".to_string() } else { "cells".to_string() }).collect();
    let results = run_processes(&place, names);
    assert_eq!(results.iter().filter(|r| r.starts_with("ok ")).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.starts_with("exists ")).count(), WRITERS - 1, "{results:?}");
    let store = open(&path);
    assert_eq!(store.version().unwrap(), 1);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn sixteen_threads_racing_on_one_name_have_one_winner() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    let store = open(&path);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                s.spawn(move || {
                    barrier.wait();
                    add_constant(&store, "same", 32, i as i32, false)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    for o in &outcomes {
        if let Err(e) = o {
            assert!(matches!(e, Error::ElementExists { .. }), "{e}");
        }
    }
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn concurrent_overwrites_leave_exactly_one_writers_data() {
    let place = Place::new("s.zarr");
    let path = place.a.clone();
    let store = open(&path);
    add_constant(&store, "img", 64, 1000, false).unwrap();
    std::thread::scope(|s| {
        for i in 0..8 {
            let path = place.node(i as usize).to_path_buf();
            s.spawn(move || add_constant(&open(&path), "img", 64, i, true).unwrap());
        }
    });
    let data = read_labels(&store, None, "img");
    let first = data[[0, 0]];
    assert!((0..8).contains(&first));
    assert!(data.iter().all(|&v| v == first), "a mix of writers' data is visible");
    assert_eq!(store.version().unwrap(), 9);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.retained.len(), 8, "each displaced generation is kept until gc");
}

#[test]
fn a_handle_sees_other_handles_commits_immediately() {
    let place = Place::new("s.zarr");
    let a = open(place.node(0));
    let b = open(place.node(1));
    assert_eq!(b.snapshot(None).unwrap().elements().len(), 0);
    add_labels(&a, "one", 32, false).unwrap();
    assert_eq!(b.version().unwrap(), 1);
    assert_eq!(b.snapshot(None).unwrap().elements()[0].name, "one");
    b.delete("one").unwrap();
    assert!(a.snapshot(None).unwrap().elements().is_empty());
    assert!(add_labels(&b, "ONE", 32, false).is_ok());
    assert!(matches!(add_labels(&a, "one", 32, false), Err(Error::ElementExists { .. })));
}
