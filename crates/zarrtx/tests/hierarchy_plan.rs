//! Array plans of plain Zarr v3 hierarchies (issue 5, item 3): one array of an NWB-style hierarchy created or
//! filled by several OS processes, part by part, with a SIGKILLed part resumed, bad plans refused without a trace,
//! the array invisible until the commit, and abandoned plans reclaimed. Arrays are read back with zarrs, as any
//! Zarr reader would, and compared with a single-writer reference byte for byte.

mod common;

use common::{child_results, files, fingerprint, is_child, spawn_child, Rng};
use ndarray::{ArrayD, Dimension, IxDyn};
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zarrtx::{
    ArrayMode, ArraySpec, ArrayTarget, DataType, Error, Hierarchy, OpenOptions, PartLayout, PartOutcome,
    PlanOptions, RasterArray, RasterBlock,
};

const DATA: &str = "acquisition/ts/data";

/// The sample at `ix` (time, channel): varied, rarely 0, the same in every process; `salt` tells writes apart.
fn value(ix: &[usize], salt: u16) -> u16 {
    let h = ix.iter().zip([7919usize, 131]).map(|(&i, p)| (i + 1) * p).sum::<usize>();
    ((h % 65521) as u16 | 1).wrapping_add(salt)
}

fn block(offset: &[u64], size: &[u64], salt: u16) -> RasterBlock {
    let dims: Vec<usize> = size.iter().map(|&d| d as usize).collect();
    let data = ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        let at: Vec<usize> = ix.slice().iter().zip(offset).map(|(&i, &o)| i + o as usize).collect();
        value(&at, salt)
    });
    RasterBlock { offset: offset.to_vec(), data: RasterArray::U16(data) }
}

/// Blocks of `rows` time samples (all channels) tiling `region`, with `delay` before each.
fn blocks_of(region: &[Range<u64>], rows: u64, salt: u16, delay: Duration) -> impl Iterator<Item = zarrtx::Result<RasterBlock>> {
    let (t, c) = (region[0].clone(), region[1].clone());
    (t.start..t.end).step_by(rows as usize).map(move |s| {
        std::thread::sleep(delay);
        let n = rows.min(t.end - s);
        Ok(block(&[s, c.start], &[n, c.end - c.start], salt))
    })
}

fn open(path: &Path) -> Hierarchy {
    Hierarchy::open(path, &common::test_options()).expect("open hierarchy")
}

/// An NWB-like hierarchy as hdmf-zarr writes it: a root group with inline consolidated metadata and an
/// `acquisition` group.
fn nwb_like(path: &Path) -> Hierarchy {
    std::fs::create_dir_all(path.join("acquisition")).unwrap();
    let group = json!({"zarr_format": 3, "node_type": "group", "attributes": {}});
    let mut listed = group.clone();
    listed["consolidated_metadata"] = json!({"kind": "inline", "must_understand": false, "metadata": {}});
    let root = json!({"zarr_format": 3, "node_type": "group", "attributes": {"nwb_version": "2.9.0"},
        "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": {"acquisition": listed}}});
    std::fs::write(path.join("zarr.json"), serde_json::to_vec_pretty(&root).unwrap()).unwrap();
    std::fs::write(path.join("acquisition/zarr.json"), serde_json::to_vec_pretty(&group).unwrap()).unwrap();
    open(path)
}

fn spec(shape: &[u64], chunk: &[u64], shard: Option<&[u64]>) -> ArraySpec {
    let mut s = ArraySpec::new(shape, DataType::U16);
    s.chunk_shape = Some(chunk.to_vec());
    s.shard_shape = shard.map(<[u64]>::to_vec);
    s.dimension_names = Some(vec!["num_times".into(), "num_channels".into()]);
    s.attributes.insert("unit".into(), json!("volts"));
    s
}

/// The whole array at `path` of the hierarchy at `root`, read with zarrs.
fn read(root: &Path, path: &str) -> ArrayD<u16> {
    let fs = Arc::new(zarrs::filesystem::FilesystemStore::new(root).unwrap());
    let array = zarrs::array::Array::open(fs, &format!("/{path}")).unwrap_or_else(|e| panic!("{path} does not open: {e}"));
    let subset = zarrs::array::ArraySubset::new_with_shape(array.shape().to_vec());
    array.retrieve_array_subset(&subset).unwrap()
}

fn expected(shape: &[u64], salt: u16) -> ArrayD<u16> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    ArrayD::from_shape_fn(IxDyn(&dims), |ix| value(ix.slice(), salt))
}

fn consolidated(root: &Path) -> serde_json::Map<String, Value> {
    let doc: Value = serde_json::from_slice(&std::fs::read(root.join("zarr.json")).unwrap()).unwrap();
    doc["consolidated_metadata"]["metadata"].as_object().cloned().unwrap_or_default()
}

/// Nothing of the planned array is visible: no node at its path or its new parent, not in the consolidated view.
fn assert_invisible(root: &Path) {
    assert!(!root.join(DATA).exists(), "the array is in the hierarchy before its commit");
    assert!(!root.join("acquisition/ts").exists(), "its parent group exists before the commit");
    assert!(!consolidated(root).keys().any(|k| k.starts_with("acquisition/ts")), "consolidated lists it early");
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_writer(root: &Path, plan: &str, parts: &[usize], delay_ms: u64) -> std::process::Child {
    let parts = parts.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    spawn_child(
        "child_write_array_parts",
        &[
            ("STORE", root.display().to_string()),
            ("PLAN", plan.to_string()),
            ("PARTS", parts),
            ("DELAY_MS", delay_ms.to_string()),
        ],
    )
}

/// Child: writes the parts in `PARTS` of the array plan `PLAN` of the hierarchy `STORE` in blocks of 37 samples
/// (unaligned to the 64-sample chunks), sleeping `DELAY_MS` before each; prints `RESULT <written|already> <part>`.
#[test]
#[ignore = "child process entry point, started by other tests"]
fn child_write_array_parts() {
    if !is_child() {
        return;
    }
    let root = PathBuf::from(std::env::var("STORE").unwrap());
    let plan = std::env::var("PLAN").unwrap();
    let delay = Duration::from_millis(std::env::var("DELAY_MS").unwrap().parse().unwrap());
    let h = Hierarchy::open(&root, &OpenOptions { create: false, ..OpenOptions::default() }).unwrap();
    let info = h.plan_info(&plan).unwrap();
    for part in std::env::var("PARTS").unwrap().split(',').map(|p| p.parse::<usize>().unwrap()) {
        match h.write_part(&plan, part, blocks_of(&info.parts[part], 37, 0, delay), &PlanOptions::default()) {
            Ok(PartOutcome::Written(_)) => println!("RESULT written {part}"),
            Ok(PartOutcome::AlreadyDone(_)) => println!("RESULT already {part}"),
            Err(e) => panic!("part {part}: {e}"),
        }
    }
}

fn shuffled(mut v: Vec<usize>, rng: &mut Rng) -> Vec<usize> {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

/// The same array written by one writer in one part, in its own hierarchy; returns its directory.
fn reference(dir: &Path, spec: &ArraySpec) -> PathBuf {
    let root = dir.join("reference.zarr");
    let h = nwb_like(&root);
    let info = h.create_plan(DATA, ArrayTarget::Create(spec.clone()), PartLayout::Count(1)).unwrap();
    let whole: Vec<Range<u64>> = spec.shape.iter().map(|&n| 0..n).collect();
    h.write_part(&info.plan_id, 0, blocks_of(&whole, 1000, 0, Duration::ZERO), &PlanOptions::default()).unwrap();
    h.commit_plan(&info.plan_id).unwrap();
    root.join(DATA)
}

#[test]
fn processes_create_an_nwb_array_in_random_order_and_a_killed_part_resumes_to_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("f.nwb.zarr");
    let h = nwb_like(&root);
    let shape = [1280u64, 48];
    let spec = spec(&shape, &[64, 48], None);
    let info = h.create_plan(DATA, ArrayTarget::Create(spec.clone()), PartLayout::Count(8)).unwrap();
    assert_eq!((info.parts.len(), info.mode), (8, ArrayMode::Create));
    assert_eq!(info.parts[0], vec![0..192, 0..48], "a count splits the time axis in whole chunks");
    assert_eq!(info.parts[7], vec![1152..1280, 0..48]);
    let plan = info.plan_id.clone();
    let mut rng = Rng::new();
    let order = shuffled((0..8).collect(), &mut rng);
    let (victim, others) = (order[0], &order[1..]);
    let staged = root.join(".zarrtx/plans").join(&plan).join("staged");

    let mut slow = spawn_writer(&root, &plan, &[victim], 500);
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let mine: Vec<usize> = others.iter().copied().skip(w).step_by(3).collect();
            spawn_writer(&root, &plan, &shuffled(mine, &mut rng), 0)
        })
        .collect();
    let victim_chunk = staged.join("c").join((info.parts[victim][0].start / 64).to_string()).join("0");
    wait_for("the slow part to store a chunk", Duration::from_secs(60), || victim_chunk.exists());
    assert_invisible(&root);
    slow.kill().expect("SIGKILL the writer");
    assert!(!slow.wait().unwrap().success());
    for w in writers {
        for line in child_results(w) {
            assert!(line.starts_with("written "), "{line}");
        }
    }
    let status = h.plan_status(&plan).unwrap();
    assert_eq!((status.missing.clone(), status.started.clone()), (vec![victim], vec![victim]));
    assert!(matches!(h.commit_plan(&plan), Err(Error::PlanIncomplete { ref missing, .. }) if *missing == vec![victim]));
    assert_invisible(&root);

    // Resume the killed part (in this process) once its lease expired, then a second run of every part writes
    // nothing.
    common::wait_for_leases_to_expire();
    let resumed = h.write_part(&plan, victim, blocks_of(&info.parts[victim], 37, 0, Duration::ZERO), &PlanOptions::default());
    assert!(matches!(resumed, Ok(PartOutcome::Written(_))), "{resumed:?}");
    for line in child_results(spawn_writer(&root, &plan, &order, 0)) {
        assert!(line.starts_with("already "), "{line}");
    }
    assert_invisible(&root);
    let c = h.commit_plan(&plan).unwrap();
    assert!(c.consolidated, "the root's consolidated metadata gains the array");
    assert_eq!(h.commit_plan(&plan).unwrap(), c, "a second commit answers with the first");

    assert_eq!(read(&root, DATA), expected(&shape, 0));
    let reference = reference(dir.path(), &spec);
    assert_eq!(files(&root.join(DATA)), files(&reference), "the array differs from the single-writer reference");
    let listed = consolidated(&root);
    assert_eq!(listed["acquisition/ts"]["node_type"], "group");
    assert_eq!(listed[DATA]["attributes"]["unit"], "volts");
    assert_eq!(listed[DATA]["shape"], json!([1280, 48]));
    assert!(listed.contains_key("acquisition"), "existing entries are kept");
    let root_doc: Value = serde_json::from_slice(&std::fs::read(root.join("zarr.json")).unwrap()).unwrap();
    assert_eq!(root_doc["attributes"]["nwb_version"], "2.9.0", "root attributes are kept");
    assert!(!staged.exists(), "the staged directory became the array");
}

#[test]
fn threads_fill_a_sharded_array_one_writer_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h.zarr");
    let h = open(&root);
    let shape = [500u64, 40];
    let spec = spec(&shape, &[25, 20], Some(&[100, 40]));
    let info = h.create_plan("raw", ArrayTarget::Create(spec.clone()), PartLayout::Count(5)).unwrap();
    assert_eq!(info.write_unit, vec![100, 40], "parts are aligned to shards");
    std::thread::scope(|s| {
        for part in 0..5 {
            let (h, info) = (&h, &info);
            s.spawn(move || {
                let blocks = blocks_of(&info.parts[part], 33, 0, Duration::ZERO);
                h.write_part(&info.plan_id, part, blocks, &PlanOptions::default()).unwrap();
            });
        }
    });
    let c = h.commit_plan(&info.plan_id).unwrap();
    assert!(!c.consolidated, "a hierarchy without consolidated metadata gets none");
    assert_eq!(read(&root, "raw"), expected(&shape, 0));
    let shards: Vec<String> = files(&root.join("raw")).into_keys().filter(|k| k.starts_with("c/")).collect();
    assert_eq!(shards.len(), 5, "one shard file per part: {shards:?}");
}

/// An existing array written by another tool (zarrs here, as zarr-python would): all chunks hold `salt` data.
fn existing_array(root: &Path, path: &str, shape: &[u64], chunk: &[u64], salt: u16) {
    let fs = Arc::new(zarrs::filesystem::FilesystemStore::new(root).unwrap());
    let doc = json!({"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                     {"name": "zstd", "configuration": {"level": 0, "checksum": false}}],
        "attributes": {"written_by": "another tool"}});
    let meta: zarrs::array::ArrayMetadata = serde_json::from_value(doc).unwrap();
    let array = zarrs::array::Array::new_with_metadata(fs, &format!("/{path}"), meta).unwrap();
    array.store_metadata().unwrap();
    let data = expected(shape, salt);
    let subset = zarrs::array::ArraySubset::new_with_shape(shape.to_vec());
    array.store_array_subset(&subset, data.as_slice().unwrap().to_vec()).unwrap();
}

#[test]
fn fill_replaces_only_the_parts_and_keeps_the_other_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h.zarr");
    let h = open(&root);
    let shape = [300u64, 30];
    existing_array(&root, "g/data", &shape, &[50, 30], 1000);
    std::fs::write(root.join("g/zarr.json"), br#"{"zarr_format":3,"node_type":"group","attributes":{}}"#).unwrap();
    let old = read(&root, "g/data");
    let regions = PartLayout::Regions(vec![vec![50..100, 0..30], vec![200..300, 0..30]]);
    let info = h.create_plan("g/data", ArrayTarget::Fill, regions).unwrap();
    assert_eq!(info.metadata["attributes"]["written_by"], "another tool");
    for part in 0..2 {
        // The second part leaves rows 250..300 uncovered: they read as the fill value.
        let mut region = info.parts[part].clone();
        if part == 1 {
            region[0] = 200..250;
        }
        h.write_part(&info.plan_id, part, blocks_of(&region, 20, 7, Duration::ZERO), &PlanOptions::default()).unwrap();
    }
    assert_eq!(read(&root, "g/data"), old, "nothing changes before the commit");
    let c = h.commit_plan(&info.plan_id).unwrap();
    assert_eq!((c.mode, c.kept_files), (ArrayMode::Fill, 3), "chunks 0, 2 and 3 are kept");
    let now = read(&root, "g/data");
    let new = expected(&shape, 7);
    for t in 0..300usize {
        for ch in 0..30usize {
            let want = match t {
                50..100 | 200..250 => new[[t, ch]],
                250..300 => 0,
                _ => old[[t, ch]],
            };
            assert_eq!(now[[t, ch]], want, "sample ({t}, {ch})");
        }
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(root.join("g/data/zarr.json")).unwrap()).unwrap();
    assert_eq!(doc, info.metadata, "the array's metadata is unchanged");
    assert!(!root.join(&info.staging).exists(), "the displaced array is removed");
}

#[test]
fn bad_plans_are_refused_and_leave_the_hierarchy_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h.zarr");
    let h = nwb_like(&root);
    existing_array(&root, "acquisition/arr", &[100, 10], &[10, 10], 0);
    let before = fingerprint(&root);
    let s = spec(&[100, 10], &[10, 10], None);
    let overlap = PartLayout::Regions(vec![vec![0..20, 0..10], vec![10..30, 0..10]]);
    assert!(matches!(h.create_plan("x", ArrayTarget::Create(s.clone()), overlap), Err(Error::PartsOverlap { .. })));
    let unaligned = PartLayout::Regions(vec![vec![0..15, 0..10]]);
    assert!(matches!(h.create_plan("x", ArrayTarget::Create(s.clone()), unaligned), Err(Error::InvalidPlan { .. })));
    let taken = h.create_plan("acquisition/arr", ArrayTarget::Create(s.clone()), PartLayout::Count(2));
    assert!(matches!(taken, Err(Error::NodeExists { .. })), "{taken:?}");
    let under_array = h.create_plan("acquisition/arr/x", ArrayTarget::Create(s.clone()), PartLayout::Count(2));
    assert!(matches!(under_array, Err(Error::NodeExists { .. })), "{under_array:?}");
    assert!(matches!(h.create_plan("nothing", ArrayTarget::Fill, PartLayout::Count(1)), Err(Error::InvalidPlan { .. })));
    assert!(matches!(h.create_plan("acquisition", ArrayTarget::Fill, PartLayout::Count(1)), Err(Error::InvalidPlan { .. })));
    assert!(matches!(h.create_plan("../x", ArrayTarget::Create(s.clone()), PartLayout::Count(1)), Err(Error::InvalidPlan { .. })));
    let mut bad = s.clone();
    bad.shard_shape = Some(vec![15, 10]);
    assert!(matches!(h.create_plan("x", ArrayTarget::Create(bad), PartLayout::Count(1)), Err(Error::InvalidPlan { .. })));
    let mut bad_fill = s.clone();
    bad_fill.fill_value = Some(json!("not a number"));
    let e = h.create_plan("x", ArrayTarget::Create(bad_fill), PartLayout::Count(1));
    assert!(matches!(e, Err(Error::InvalidPlan { .. })), "{e:?}");
    assert_eq!(fingerprint(&root), before, "a refused plan leaves nothing behind");
    assert!(h.list_plans().unwrap().is_empty());
}

#[test]
fn commits_refuse_a_taken_path_and_a_changed_array_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h.zarr");
    let h = open(&root);
    let s = spec(&[100, 10], &[10, 10], None);
    let whole = vec![0..100u64, 0..10];
    let created = h.create_plan("a/b", ArrayTarget::Create(s.clone()), PartLayout::Count(1)).unwrap();
    h.write_part(&created.plan_id, 0, blocks_of(&whole, 100, 0, Duration::ZERO), &PlanOptions::default()).unwrap();
    // Another tool creates a node at the path meanwhile.
    existing_array(&root, "a/b", &[100, 10], &[10, 10], 5);
    let e = h.commit_plan(&created.plan_id);
    assert!(matches!(e, Err(Error::NodeExists { .. })), "{e:?}");
    assert_eq!(read(&root, "a/b"), expected(&[100, 10], 5), "the other tool's array is untouched");

    let fill = h.create_plan("a/b", ArrayTarget::Fill, PartLayout::Count(2)).unwrap();
    for part in 0..2 {
        let region = fill.parts[part].clone();
        h.write_part(&fill.plan_id, part, blocks_of(&region, 10, 9, Duration::ZERO), &PlanOptions::default()).unwrap();
    }
    // The array is recreated with other metadata before the commit.
    std::fs::remove_dir_all(root.join("a/b")).unwrap();
    existing_array(&root, "a/b", &[100, 10], &[20, 10], 5);
    let e = h.commit_plan(&fill.plan_id);
    assert!(matches!(e, Err(Error::Conflict { .. })), "{e:?}");
    assert_eq!(read(&root, "a/b"), expected(&[100, 10], 5));
}

#[test]
fn gc_reclaims_abandoned_array_plans_but_not_a_part_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h.zarr");
    let h = open(&root);
    let s = spec(&[100, 10], &[10, 10], None);
    let abandoned = h.create_plan("x", ArrayTarget::Create(s.clone()), PartLayout::Count(2)).unwrap();
    h.write_part(&abandoned.plan_id, 0, blocks_of(&abandoned.parts[0], 10, 0, Duration::ZERO), &PlanOptions::default()).unwrap();
    let live = h.create_plan("y", ArrayTarget::Create(s), PartLayout::Count(2)).unwrap();
    let mut writer = spawn_writer(&root, &live.plan_id, &[0], 2000);
    let lock = root.join(".zarrtx/plans").join(&live.plan_id).join("parts/0.claim.0");
    wait_for("the live writer to start", Duration::from_secs(30), || lock.exists());
    let removed = h.gc(Duration::ZERO).unwrap();
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(removed[0].0.ends_with(&abandoned.plan_id));
    assert!(matches!(h.plan_status(&abandoned.plan_id), Err(Error::PlanNotFound { .. })));
    assert!(h.plan_status(&live.plan_id).is_ok(), "a plan whose part is being written is kept");
    assert!(!root.join("x").exists());
}

#[test]
fn hierarchies_refuse_spatialdata_stores_v2_groups_and_missing_roots() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sd.zarr");
    zarrtx::Store::open(&store, &zarrtx::OpenOptions::default()).unwrap();
    assert!(matches!(Hierarchy::open(&store, &OpenOptions { create: false, ..OpenOptions::default() }), Err(Error::NotAHierarchy { .. })));
    let v2 = dir.path().join("v2.zarr");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join(".zgroup"), br#"{"zarr_format":2}"#).unwrap();
    assert!(matches!(Hierarchy::open(&v2, &OpenOptions { create: false, ..OpenOptions::default() }), Err(Error::NotAHierarchy { .. })));
    let missing = dir.path().join("missing.zarr");
    assert!(matches!(Hierarchy::open(&missing, &OpenOptions { create: false, ..OpenOptions::default() }), Err(Error::NotAHierarchy { .. })));
    assert!(!missing.exists(), "refusing to open creates nothing");
    let h = open(&missing);
    assert_eq!(h.node_metadata("").unwrap().unwrap()["node_type"], "group");
    // Read-only: plans can be listed, nothing can be written.
    let ro = Hierarchy::open(&missing, &OpenOptions { read_only: true, create: false, ..OpenOptions::default() }).unwrap();
    let before = fingerprint(&missing);
    let e = ro.create_plan("x", ArrayTarget::Create(spec(&[10, 8], &[5, 8], None)), PartLayout::Count(1));
    assert!(matches!(e, Err(Error::ReadOnly { .. })), "{e:?}");
    assert!(matches!(ro.gc(Duration::ZERO), Err(Error::ReadOnly { .. })));
    assert!(ro.list_plans().unwrap().is_empty());
    assert_eq!(fingerprint(&missing), before);
}

/// A plan of `shape` at `path` with every part written (value salt `salt`); returns the plan and its staged
/// directory.
fn written_plan(h: &Hierarchy, path: &str, target: ArrayTarget, salt: u16) -> (zarrtx::ArrayPlanInfo, PathBuf) {
    let info = h.create_plan(path, target, PartLayout::Count(2)).unwrap();
    for part in 0..2 {
        let blocks = blocks_of(&info.parts[part], 25, salt, Duration::ZERO);
        h.write_part(&info.plan_id, part, blocks, &PlanOptions::default()).unwrap();
    }
    let staged = h.root().join(&info.staging);
    (info, staged)
}

#[test]
fn a_commit_that_died_after_moving_a_new_array_is_finished_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("f.nwb.zarr");
    let h = nwb_like(&root);
    let (info, staged) = written_plan(&h, DATA, ArrayTarget::Create(spec(&[100, 8], &[25, 8], None)), 0);
    // The state a committer leaves when it dies right after its rename: the array in place, its parent group
    // created, the consolidated metadata and the commit record not written yet.
    std::fs::create_dir_all(root.join("acquisition/ts")).unwrap();
    std::fs::write(root.join("acquisition/ts/zarr.json"), br#"{"zarr_format":3,"node_type":"group","attributes":{}}"#)
        .unwrap();
    std::fs::rename(&staged, root.join(DATA)).unwrap();
    assert!(!consolidated(&root).contains_key(DATA));
    let c = h.commit_plan(&info.plan_id).expect("the array at the path is recognized as the plan's own");
    assert!(c.consolidated && consolidated(&root).contains_key(DATA) && consolidated(&root).contains_key("acquisition/ts"));
    assert_eq!(read(&root, DATA), expected(&[100, 8], 0));
    assert!(h.plan_status(&info.plan_id).unwrap().committed.is_some());
}

#[test]
fn a_fill_commit_that_died_during_or_after_the_swap_is_finished_by_the_next() {
    for died_between_renames in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("h.zarr");
        let h = open(&root);
        existing_array(&root, "data", &[100, 8], &[25, 8], 3);
        let (info, staged) = written_plan(&h, "data", ArrayTarget::Fill, 9);
        let aside = PathBuf::from(format!("{}-old", staged.display()));
        std::fs::rename(root.join("data"), &aside).unwrap();
        if !died_between_renames {
            // Swapped completely (as RENAME_EXCHANGE leaves it): the old array sits where the staged one was.
            std::fs::rename(&staged, root.join("data")).unwrap();
            std::fs::rename(&aside, &staged).unwrap();
        }
        let c = h.commit_plan(&info.plan_id).expect("the interrupted swap is finished");
        assert_eq!(c.mode, ArrayMode::Fill);
        assert_eq!(read(&root, "data"), expected(&[100, 8], 9), "died between renames: {died_between_renames}");
        assert!(!staged.exists() && !aside.exists(), "the old array is removed");
    }
}

/// A handle on `root` with advisory locks off: every handle plays another process on a node of its own. Writes of
/// the root `zarr.json` are delayed by 0–60 ms at random, so that two writers' updates of it cross often.
fn lockless(root: &Path) -> Hierarchy {
    let posix: Arc<dyn zarrtx::storage::Storage> = Arc::new(zarrtx::storage::PosixStorage::new(root, true).with_locks(false));
    let slow = Arc::new(zarrtx::storage::FaultyStorage::new(posix));
    slow.set_hook(Some(Arc::new(|op: &str, key: &str, phase| {
        if op.starts_with("put") && key == "zarr.json" && phase == zarrtx::storage::Phase::Before {
            std::thread::sleep(Duration::from_millis(Rng::new().below(60)));
        }
    })));
    Hierarchy::open_with_storage(slow, &OpenOptions { advisory_locks: false, ..common::test_options() }).unwrap()
}

#[test]
fn concurrent_create_commits_without_locks_keep_every_array_in_the_consolidated_metadata() {
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("h.zarr");
        nwb_like(&root);
        let paths: Vec<String> = (0..6).map(|i| format!("processing/r{round}/a{i}")).collect();
        let barrier = std::sync::Barrier::new(paths.len());
        std::thread::scope(|s| {
            for p in &paths {
                let (root, barrier) = (&root, &barrier);
                s.spawn(move || {
                    let h = lockless(root);
                    let info = h.create_plan(p, ArrayTarget::Create(spec(&[20, 4], &[10, 4], None)), PartLayout::Count(1)).unwrap();
                    h.write_part(&info.plan_id, 0, blocks_of(&info.parts[0], 20, 0, Duration::ZERO), &PlanOptions::default()).unwrap();
                    barrier.wait();
                    assert!(h.commit_plan(&info.plan_id).unwrap().consolidated);
                });
            }
        });
        let listed = consolidated(&root);
        for p in &paths {
            assert!(listed.contains_key(p), "round {round}: {p} is missing from the consolidated metadata");
            assert_eq!(read(&root, p), expected(&[20, 4], 0));
        }
        assert!(listed.contains_key("processing") && listed.contains_key(&format!("processing/r{round}")));
    }
}

#[test]
fn concurrent_fill_commits_of_one_array_without_locks_lose_no_part() {
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("h.zarr");
        std::fs::create_dir_all(&root).unwrap();
        let h = lockless(&root);
        let whole = vec![0..100u64, 0..10u64];
        let created = h.create_plan("a", ArrayTarget::Create(spec(&[100, 10], &[10, 10], None)), PartLayout::Count(1)).unwrap();
        h.write_part(&created.plan_id, 0, blocks_of(&whole, 100, 0, Duration::ZERO), &PlanOptions::default()).unwrap();
        h.commit_plan(&created.plan_id).unwrap();
        // Two fills of disjoint halves, planned against the same array, committed at the same time by two handles.
        let halves = [vec![0..50u64, 0..10u64], vec![50..100u64, 0..10u64]];
        let plans: Vec<_> = halves
            .iter()
            .map(|half| {
                let p = h.create_plan("a", ArrayTarget::Fill, PartLayout::Regions(vec![half.clone()])).unwrap();
                h.write_part(&p.plan_id, 0, blocks_of(half, 10, 5, Duration::ZERO), &PlanOptions::default()).unwrap();
                p
            })
            .collect();
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for p in &plans {
                let (root, barrier) = (&root, &barrier);
                s.spawn(move || {
                    let h = lockless(root);
                    barrier.wait();
                    h.commit_plan(&p.plan_id)
                });
            }
        });
        // Each fill's commit is whole or refused; a refused one (the array changed under it) is committed again
        // against the array as it is now.
        for p in &plans {
            if h.plan_status(&p.plan_id).unwrap().committed.is_none() {
                panic!("round {round}: fill plan {} did not commit", p.plan_id);
            }
        }
        assert_eq!(read(&root, "a"), expected(&[100, 10], 5), "round {round}: both halves of the fills are there");
    }
}
