//! Write plans (issue 5): one image written by several OS processes, part by part, with SIGKILLed parts resumed,
//! conflicting writers refused, readers kept blind until the final commit, and abandoned plans reclaimed by gc.
//! Every result is compared bit for bit with the same element written by one process with `add_raster`.

mod common;

use common::*;
use ndarray::{ArrayD, Dimension, IxDyn};
use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zarrtx::{
    AddOptions, CommitInfo, DataType, Error, PartLayout, PartOutcome, PlanOptions, Pyramid, RasterArray, RasterBlock,
    RasterKind, RasterSource, RasterSpec, Store,
};

const NAME: &str = "big";

/// The pixel at `ix`: varied, rarely 0, the same in every process.
fn value(ix: &[usize]) -> u16 {
    const P: [usize; 4] = [7919, 131, 17, 3];
    let h = ix.iter().zip(P).map(|(&i, p)| (i + 1) * p).sum::<usize>();
    (h % 65521) as u16 | 1
}

fn full(shape: &[u64]) -> RasterArray {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    RasterArray::U16(ArrayD::from_shape_fn(IxDyn(&dims), |ix| value(ix.slice())))
}

fn block(offset: &[u64], size: &[u64]) -> RasterBlock {
    let dims: Vec<usize> = size.iter().map(|&d| d as usize).collect();
    let data = ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        let at: Vec<usize> = ix.slice().iter().zip(offset).map(|(&i, &o)| i + o as usize).collect();
        value(&at)
    });
    RasterBlock { offset: offset.to_vec(), data: RasterArray::U16(data) }
}

/// Blocks tiling `region`, `step` elements per axis (0 = the whole extent), generated lazily with `delay` before
/// each one.
fn blocks_of(region: &[Range<u64>], step: &[u64], delay: Duration) -> impl Iterator<Item = zarrtx::Result<RasterBlock>> {
    let starts: Vec<Vec<u64>> = region
        .iter()
        .zip(step)
        .map(|(r, &s)| {
            let s = if s == 0 { r.end - r.start } else { s };
            (r.start..r.end).step_by(s as usize).collect()
        })
        .collect();
    let mut offsets: Vec<Vec<u64>> = vec![vec![]];
    for axis in &starts {
        offsets = offsets.into_iter().flat_map(|o| axis.iter().map(move |&a| [o.clone(), vec![a]].concat())).collect();
    }
    let region = region.to_vec();
    let step = step.to_vec();
    offsets.into_iter().map(move |o| {
        std::thread::sleep(delay);
        let size: Vec<u64> = o
            .iter()
            .zip(&region)
            .zip(&step)
            .map(|((&a, r), &s)| if s == 0 { r.end - a } else { s.min(r.end - a) })
            .collect();
        Ok(block(&o, &size))
    })
}

fn image_spec(chunk: &[u64], shard: Option<&[u64]>) -> RasterSpec {
    let mut spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    spec.chunk_shape = Some(chunk.to_vec());
    spec.shard_shape = shard.map(<[u64]>::to_vec);
    spec.pyramid = Pyramid::Computed(vec![2, 2]);
    spec
}

/// The same element written by one process, in memory, into its own store.
fn reference(dir: &Path, spec: &RasterSpec, shape: &[u64]) -> PathBuf {
    let path = dir.join("reference.zarr");
    let store = open(&path);
    store.add_raster(NAME, spec, RasterSource::InMemory(full(shape)), &AddOptions::default()).unwrap();
    path.join("images").join(NAME)
}

/// The installed element equals the reference file for file, byte for byte.
fn assert_same_tree(installed: &Path, reference: &Path) {
    let (a, b) = (files(installed), files(reference));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the element's files differ");
    let differing: Vec<&String> = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).map(|(k, _)| k).collect();
    assert!(differing.is_empty(), "files differ from the single-process reference: {differing:?}");
    assert!(a.len() > 3, "the element has data files");
}

/// The element is in no reader's view: not in snapshots, not in the published root zarr.json, not installed.
fn assert_invisible(store: &Store, root: &Path) {
    match store.snapshot(None).unwrap().element(NAME) {
        Err(Error::ElementNotFound { .. }) => {}
        other => panic!("a snapshot sees the planned element before its commit: {other:?}"),
    }
    let view: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("zarr.json")).unwrap()).unwrap();
    let listed = view["consolidated_metadata"]["metadata"].as_object().unwrap();
    assert!(!listed.keys().any(|k| k.contains(NAME)), "the published view lists the planned element before its commit");
    assert!(!root.join("images").join(NAME).exists(), "the element is installed before its commit");
}

fn parts_env(parts: &[usize]) -> String {
    parts.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

fn spawn_writer(store: &Path, plan: &str, parts: &[usize], step: &str, delay_ms: u64) -> std::process::Child {
    spawn_child(
        "child_write_parts",
        &[
            ("STORE", store.display().to_string()),
            ("PLAN", plan.to_string()),
            ("PARTS", parts_env(parts)),
            ("STEP", step.to_string()),
            ("DELAY_MS", delay_ms.to_string()),
        ],
    )
}

fn plan_dir(root: &Path, plan: &str) -> PathBuf {
    root.join(".zarrtx/plans").join(plan)
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The level-0 chunk files under a staged or installed element `dir`, with their unit indices.
fn chunk_files(dir: &Path) -> Vec<(Vec<u64>, PathBuf)> {
    let root = dir.join("s0").join("c");
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(Vec<u64>, PathBuf)>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let idx = p.strip_prefix(root).unwrap().iter().map(|c| c.to_str().unwrap().parse().unwrap()).collect();
                out.push((idx, p));
            }
        }
    }
    walk(&root, &root, &mut out);
    out
}

/// The part whose region holds write unit `idx`.
fn part_of(parts: &[Vec<Range<u64>>], unit: &[u64], idx: &[u64]) -> usize {
    parts
        .iter()
        .position(|p| p.iter().zip(unit).zip(idx).all(|((r, &u), &i)| r.contains(&(i * u))))
        .expect("every unit is in a part")
}

/// Child: writes the parts in `PARTS`, in that order, with blocks of `STEP` (per axis, 0 = whole), sleeping
/// `DELAY_MS` before each block; prints `RESULT <written|already|conflict> <part>`.
#[test]
#[ignore = "child process entry point, started by other tests"]
fn child_write_parts() {
    let Some((store, plan)) = child_store("PLAN") else { return };
    let info = store.plan_info(&plan).unwrap();
    let step: Vec<u64> = std::env::var("STEP").unwrap().split(',').map(|s| s.parse().unwrap()).collect();
    let delay = Duration::from_millis(std::env::var("DELAY_MS").unwrap().parse().unwrap());
    for part in std::env::var("PARTS").unwrap().split(',').map(|p| p.parse::<usize>().unwrap()) {
        let blocks = blocks_of(&info.parts[part], &step, delay);
        match store.write_part(&plan, part, blocks, &PlanOptions::default()) {
            Ok(PartOutcome::Written(r)) => println!("RESULT written {part} {}", r.chunks),
            Ok(PartOutcome::AlreadyDone(_)) => println!("RESULT already {part}"),
            Err(Error::Conflict { .. }) => println!("RESULT conflict {part}"),
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

#[test]
fn processes_write_parts_in_random_order_and_a_killed_part_resumes_to_the_reference() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    let shape = [2u64, 200, 150];
    let spec = image_spec(&[2, 32, 32], None);
    let info = store.create_plan(NAME, &spec, &shape, DataType::U16, PartLayout::Count(8)).unwrap();
    assert_eq!(info.parts.len(), 8);
    assert_eq!(info.write_unit, vec![2, 32, 32]);
    let plan = info.plan_id.clone();
    let mut rng = Rng::new();
    let order = shuffled((0..8).collect(), &mut rng);
    let victim = order[0];
    let others = &order[1..];

    // A slow writer of the victim part, killed once it has stored some chunks.
    let mut slow = spawn_writer(place.node(1), &plan, &[victim], "0,23,41", 400);
    let staged = plan_dir(&root, &plan).join("staged");
    let victim_files = || {
        chunk_files(&staged).into_iter().filter(|(idx, _)| part_of(&info.parts, &info.write_unit, idx) == victim).count()
    };
    // Three writers share the other parts, each in its own random order, with unaligned blocks.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let mine: Vec<usize> = others.iter().copied().skip(w).step_by(3).collect();
            spawn_writer(place.node(w), &plan, &shuffled(mine, &mut rng), "0,23,41", 0)
        })
        .collect();
    wait_for("the victim part to store chunks", Duration::from_secs(60), || victim_files() > 0);
    assert_invisible(&store, &root);
    slow.kill().expect("SIGKILL the writer");
    assert!(!slow.wait().unwrap().success());
    // Nobody may rerun the part while the killed writer's lease is alive (it could be a writer on another node).
    assert!(matches!(
        store.write_part(&plan, victim, Vec::new(), &PlanOptions::default()),
        Err(Error::Conflict { .. })
    ));
    for w in writers {
        for line in child_results(w) {
            assert!(line.starts_with("written "), "{line}");
        }
    }
    let status = store.plan_status(&plan).unwrap();
    assert_eq!(status.missing, vec![victim]);
    assert_eq!(status.started, vec![victim], "the killed part is reported as started, not done");
    assert!(matches!(store.commit_plan(&plan), Err(Error::PlanIncomplete { ref missing, .. }) if *missing == vec![victim]));
    assert_invisible(&store, &root);

    // Files of the finished parts, by inode and modification time: the resume must not touch them.
    let identity = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let finished: BTreeMap<PathBuf, (u64, i64, i64)> = chunk_files(&staged)
        .into_iter()
        .filter(|(idx, _)| part_of(&info.parts, &info.write_unit, idx) != victim)
        .map(|(_, p)| {
            let id = identity(&p);
            (p, id)
        })
        .collect();
    assert!(!finished.is_empty());
    std::thread::sleep(Duration::from_millis(20));

    // Resume once the lease expired: the killed part again, then every part again (all already done).
    wait_for_leases_to_expire();
    let results = child_results(spawn_writer(place.node(1), &plan, &[victim], "0,23,41", 0));
    assert!(results.len() == 1 && results[0].starts_with(&format!("written {victim} ")), "{results:?}");
    let again = child_results(spawn_writer(&root, &plan, &(0..8).collect::<Vec<_>>(), "0,23,41", 0));
    assert_eq!(again, (0..8).map(|p| format!("already {p}")).collect::<Vec<_>>());
    for (p, id) in &finished {
        assert_eq!(identity(p), *id, "{} of a finished part was rewritten", p.display());
    }
    assert!(store.plan_status(&plan).unwrap().is_complete());
    assert_invisible(&store, &root);

    let commit = store.commit_plan(&plan).unwrap();
    assert!(commit.published && commit.attempts >= 1);
    assert_same_tree(&root.join("images").join(NAME), &reference(&place.scratch, &spec, &shape));
    assert_eq!(store.snapshot(None).unwrap().read_raster(NAME, 0, None).unwrap(), full(&shape));
    // Committing again commits nothing and answers with the first commit.
    let again = store.commit_plan(&plan).unwrap();
    assert_eq!(again, CommitInfo { attempts: 0, ..commit.clone() });
    assert_eq!(store.version().unwrap(), commit.version);
    assert_eq!(store.plan_status(&plan).unwrap().committed.map(|c| c.version), Some(commit.version));
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn overlapping_unaligned_and_outside_plans_are_refused_and_change_nothing() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    add_labels(&store, "taken", 64, false).unwrap();
    let spec = image_spec(&[2, 32, 32], None);
    let shape = [2u64, 100, 90];
    let before = fingerprint(&root);
    let regions = |r: Vec<Vec<Range<u64>>>| PartLayout::Regions(r);

    match store.create_plan(NAME, &spec, &shape, DataType::U16, regions(vec![vec![0..2, 0..64, 0..90], vec![0..2, 32..100, 0..64]])) {
        Err(e @ Error::PartsOverlap { .. }) => {
            let Error::PartsOverlap { first, second, ref overlap, ref name } = e else { unreachable!() };
            assert_eq!((first, second, overlap.as_str(), name.as_str()), (0, 1, "[0..2, 32..64, 0..64]", NAME));
            let msg = e.to_string();
            assert!(msg.contains("parts 0 and 1") && msg.contains("disjoint"), "{msg}");
        }
        other => panic!("overlap: {other:?}"),
    }
    for (layout, needle) in [
        (regions(vec![vec![0..2, 0..50, 0..90]]), "not aligned"),
        (regions(vec![vec![0..2, 0..32, 16..90]]), "not aligned"),
        (regions(vec![vec![0..1, 0..32, 0..90]]), "not aligned"),
        (regions(vec![vec![0..2, 0..32, 0..96]]), "outside the array"),
        (regions(vec![vec![0..2, 0..32]]), "one start..end per axis"),
        (PartLayout::Count(0), "at least one part"),
        (PartLayout::Count(13), "at most 12 parts"),
    ] {
        match store.create_plan(NAME, &spec, &shape, DataType::U16, layout.clone()) {
            Err(Error::InvalidPlan { name, reason }) => {
                assert_eq!(name, NAME);
                assert!(reason.contains(needle), "{layout:?}: {reason}");
            }
            other => panic!("{layout:?}: {other:?}"),
        }
    }
    // Shards are the write unit when sharding: chunk-aligned but shard-unaligned parts are refused.
    let sharded = image_spec(&[2, 16, 16], Some(&[2, 32, 32]));
    match store.create_plan(NAME, &sharded, &shape, DataType::U16, regions(vec![vec![0..2, 0..16, 0..90]])) {
        Err(Error::InvalidPlan { reason, .. }) => assert!(reason.contains("not aligned"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let mut given = spec.clone();
    given.pyramid = Pyramid::Given(vec![RasterArray::U16(ArrayD::zeros(IxDyn(&[2, 50, 45])))]);
    assert!(matches!(store.create_plan(NAME, &given, &shape, DataType::U16, PartLayout::Count(2)), Err(Error::InvalidPlan { .. })));
    assert!(matches!(store.create_plan("TAKEN", &spec, &shape, DataType::U16, PartLayout::Count(2)), Err(Error::ElementExists { .. })));
    assert_eq!(fingerprint(&root), before, "a refused plan writes nothing");

    // A block outside its part is refused; nothing is recorded as done.
    let info = store.create_plan("inside", &spec, &shape, DataType::U16, PartLayout::Count(2)).unwrap();
    let outside = vec![Ok(block(&[0, 60, 0], &[2, 10, 10]))];
    match store.write_part(&info.plan_id, 0, outside, &PlanOptions::default()) {
        Err(Error::InvalidElement { name, reason }) => {
            assert_eq!(name, "inside");
            assert!(reason.contains("outside part 0"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.plan_status(&info.plan_id).unwrap().missing, vec![0, 1]);
    assert!(matches!(store.write_part(&info.plan_id, 2, Vec::new(), &PlanOptions::default()), Err(Error::InvalidPlan { .. })));
    assert!(matches!(store.plan_status("../../etc"), Err(Error::PlanNotFound { .. })));
    assert!(matches!(store.plan_status(&uuid_like()), Err(Error::PlanNotFound { .. })));
}

fn uuid_like() -> String {
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_string()
}

#[test]
fn two_processes_writing_one_part_get_exactly_one_conflict() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    let shape = [2u64, 128, 96];
    let spec = image_spec(&[2, 32, 32], None);
    let plan = store.create_plan(NAME, &spec, &shape, DataType::U16, PartLayout::Count(2)).unwrap().plan_id;
    let first = spawn_writer(place.node(0), &plan, &[0], "0,16,32", 150);
    let started = plan_dir(&root, &plan).join("parts/0.claim.0");
    wait_for("the first writer to start", Duration::from_secs(60), || started.exists());
    let second = spawn_writer(place.node(1), &plan, &[0], "0,16,32", 0);
    let mut results = child_results(second);
    results.extend(child_results(first));
    results.sort();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], "conflict 0", "{results:?}");
    assert!(results[1].starts_with("written 0 "), "{results:?}");
    let rest = blocks_of(&store.plan_status(&plan).unwrap().plan.parts[1], &[0, 0, 0], Duration::ZERO);
    store.write_part(&plan, 1, rest, &PlanOptions::default()).unwrap();
    store.commit_plan(&plan).unwrap();
    assert_same_tree(&root.join("images").join(NAME), &reference(&place.scratch, &spec, &shape));
}

#[test]
fn readers_never_see_the_element_before_commit_plan() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    let shape = [2u64, 160, 160];
    let spec = image_spec(&[2, 32, 32], None);
    let plan = store.create_plan(NAME, &spec, &shape, DataType::U16, PartLayout::Count(4)).unwrap().plan_id;
    let mut children: Vec<_> = (0..4).map(|p| spawn_writer(place.node(p), &plan, &[p], "0,20,40", 60)).collect();
    let mut reads = 0;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert_invisible(&store, &root);
        // A fresh handle too, as a new reader process would open it.
        assert_invisible(&open(&root), &root);
        reads += 1;
    }
    for c in children {
        for line in child_results(c) {
            assert!(line.starts_with("written "), "{line}");
        }
    }
    assert!(reads > 5, "the readers ran while the parts were written ({reads} rounds)");
    assert!(store.plan_status(&plan).unwrap().is_complete());
    let before = store.snapshot(None).unwrap();
    assert_invisible(&store, &root);
    let commit = store.commit_plan(&plan).unwrap();
    // From the commit on, every reader sees the whole element; a snapshot pinned before still does not.
    assert_eq!(store.snapshot(None).unwrap().element(NAME).unwrap().version, commit.version);
    assert_eq!(open(&root).snapshot(None).unwrap().read_raster(NAME, 0, None).unwrap(), full(&shape));
    assert!(matches!(before.element(NAME), Err(Error::ElementNotFound { .. })));
    let view = std::fs::read_to_string(root.join("zarr.json")).unwrap();
    assert!(view.contains(&format!("images/{NAME}/s2")), "the published view lists every level");
}

#[test]
fn unaligned_blocks_and_a_tiny_memory_limit_give_the_reference() {
    let place = Place::new("s.zarr");
    let shape = [2u64, 150, 130];
    let spec = image_spec(&[2, 32, 32], None);
    let reference = reference(&place.scratch, &spec, &shape);
    // Odd block shapes; with a 1-byte limit partial chunks are stored at once and completed by read-modify-write.
    for (k, (step, limit)) in [([0u64, 7, 13], 1u64), ([1, 150, 1], 1), ([0, 5, 0], 256 << 20), ([0, 0, 0], 1)].into_iter().enumerate() {
        let root = place.scratch.join(format!("s{k}.zarr"));
        let store = open(&root);
        let info = store.create_plan(NAME, &spec, &shape, DataType::U16, PartLayout::Count(3)).unwrap();
        std::thread::scope(|s| {
            for (p, region) in info.parts.iter().enumerate() {
                let (store, plan) = (&store, &info.plan_id);
                s.spawn(move || {
                    let options = PlanOptions { memory_limit: limit, ..Default::default() };
                    store.write_part(plan, p, blocks_of(region, &step, Duration::ZERO), &options).unwrap()
                });
            }
        });
        store.commit_plan_with(&info.plan_id, &PlanOptions { memory_limit: limit, ..Default::default() }).unwrap();
        assert_same_tree(&root.join("images").join(NAME), &reference);
        // The same blocks streamed into a plain add, under the same limit.
        let root = place.scratch.join(format!("a{k}.zarr"));
        let whole: Vec<Range<u64>> = shape.iter().map(|&n| 0..n).collect();
        let source = RasterSource::Blocks {
            shape: shape.to_vec(),
            data_type: DataType::U16,
            blocks: Box::new(blocks_of(&whole, &step, Duration::ZERO)),
        };
        let options = AddOptions { memory_limit: limit, ..Default::default() };
        open(&root).add_raster(NAME, &spec, source, &options).unwrap();
        assert_same_tree(&root.join("images").join(NAME), &reference);
    }
}

#[test]
fn sharded_array_with_workers_on_distinct_shards() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    let shape = [2u64, 250, 190];
    let spec = image_spec(&[2, 16, 16], Some(&[2, 64, 64]));
    let info = store.create_plan(NAME, &spec, &shape, DataType::U16, PartLayout::Count(6)).unwrap();
    assert_eq!(info.write_unit, vec![2, 64, 64], "shards are the write unit");
    for p in &info.parts {
        for (r, (&u, &n)) in p.iter().zip(info.write_unit.iter().zip(&shape)) {
            assert!(r.start % u == 0 && (r.end % u == 0 || r.end == n), "part {p:?} is not shard-aligned");
        }
    }
    // One process per part, all at once, with blocks that cut through shards and chunks.
    let children: Vec<_> = (0..6).map(|p| spawn_writer(place.node(p), &info.plan_id, &[p], "0,37,45", 0)).collect();
    let mut chunks = 0;
    for c in children {
        for line in child_results(c) {
            assert!(line.starts_with("written "), "{line}");
            chunks += line.split(' ').nth(2).unwrap().parse::<u64>().unwrap();
        }
    }
    assert_eq!(chunks, 4 * 3, "every shard written once, by its part's writer");
    store.commit_plan(&info.plan_id).unwrap();
    assert_eq!(store.snapshot(None).unwrap().read_raster(NAME, 0, None).unwrap(), full(&shape));
    assert_same_tree(&root.join("images").join(NAME), &reference(&place.scratch, &spec, &shape));
}

#[test]
fn commit_is_refused_until_every_part_is_written_and_rechecks_the_name() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    let shape = [2u64, 128, 64];
    let spec = image_spec(&[2, 32, 32], None);
    let info = store.create_plan(NAME, &spec, &shape, DataType::U16, PartLayout::Count(4)).unwrap();
    let write = |p: usize| store.write_part(&info.plan_id, p, blocks_of(&info.parts[p], &[0, 0, 0], Duration::ZERO), &PlanOptions::default());
    write(0).unwrap();
    write(2).unwrap();
    let version = store.version().unwrap();
    match store.commit_plan(&info.plan_id) {
        Err(e @ Error::PlanIncomplete { .. }) => {
            assert!(e.to_string().contains("parts 1, 3"), "{e}");
            let Error::PlanIncomplete { missing, parts, name, .. } = e else { unreachable!() };
            assert_eq!((missing, parts, name.as_str()), (vec![1, 3], 4, NAME));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.version().unwrap(), version, "nothing was committed");
    assert_invisible(&store, &root);
    assert!(matches!(write(0), Ok(PartOutcome::AlreadyDone(_))));
    write(1).unwrap();
    write(3).unwrap();
    let commit = store.commit_plan(&info.plan_id).unwrap();
    assert_eq!(commit.version, version + 1);

    // The name is checked when the plan is made and again at commit.
    let other = store.create_plan("late", &spec, &shape, DataType::U16, PartLayout::Count(1)).unwrap();
    store.write_part(&other.plan_id, 0, blocks_of(&other.parts[0], &[0, 0, 0], Duration::ZERO), &PlanOptions::default()).unwrap();
    add_labels(&store, "LATE", 32, false).unwrap();
    assert!(matches!(store.commit_plan(&other.plan_id), Err(Error::ElementExists { .. })));
    assert!(store.plan_status(&other.plan_id).unwrap().is_complete(), "a refused commit keeps the parts");
    assert_eq!(store.snapshot(None).unwrap().element("late").unwrap().element_type, zarrtx::ElementType::Labels);
}

#[test]
fn gc_reclaims_an_abandoned_plan_after_its_grace_and_leaves_live_ones_alone() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    let shape = [2u64, 128, 64];
    let spec = image_spec(&[2, 32, 32], None);
    let make = |name: &str| store.create_plan(name, &spec, &shape, DataType::U16, PartLayout::Count(4)).unwrap();
    let write = |info: &zarrtx::PlanInfo, p: usize| {
        store.write_part(&info.plan_id, p, blocks_of(&info.parts[p], &[0, 0, 0], Duration::ZERO), &PlanOptions::default()).unwrap()
    };
    // Committed: its element stays, its record goes after the grace period.
    let done = make("done");
    (0..4).for_each(|p| {
        write(&done, p);
    });
    store.commit_plan(&done.plan_id).unwrap();
    // Abandoned: one part written, then nobody.
    let abandoned = make("abandoned");
    write(&abandoned, 0);
    // Live: a writer is working on a part (slowly) and renews its lease.
    let live = make("live");
    let mut writer = spawn_writer(place.node(1), &live.plan_id, &[1], "0,1,64", 300);
    wait_for("the live writer", Duration::from_secs(60), || plan_dir(&root, &live.plan_id).join("parts/1.claim.0").exists());
    std::thread::sleep(Duration::from_millis(2500));
    // Young: made just now.
    let young = make("young");

    let leftovers = store.verify().unwrap().leftovers;
    for p in [&abandoned, &live, &young] {
        assert!(leftovers.contains(&plan_dir(&root, &p.plan_id)), "verify lists {} as a leftover: {leftovers:?}", p.name);
    }
    assert!(!leftovers.contains(&plan_dir(&root, &done.plan_id)), "a committed plan is not a leftover");
    assert!(store.gc(Duration::from_secs(3600)).unwrap().removed.is_empty(), "nothing is older than an hour");

    let report = store.gc(Duration::from_secs(2)).unwrap();
    let gone = |p: &zarrtx::PlanInfo| !plan_dir(&root, &p.plan_id).exists();
    assert!(gone(&abandoned), "the abandoned plan is reclaimed: {report:?}");
    assert!(gone(&done), "the committed plan's record is reclaimed");
    assert!(!gone(&live), "a plan whose writer renews its part's lease is left alone, however idle");
    assert!(!gone(&young), "a plan younger than the grace period is left alone");
    assert!(report.removed.contains(&plan_dir(&root, &abandoned.plan_id)));
    assert!(report.bytes_freed > 0);
    assert!(matches!(store.plan_status(&abandoned.plan_id), Err(Error::PlanNotFound { .. })));
    assert!(matches!(
        store.write_part(&abandoned.plan_id, 1, Vec::new(), &PlanOptions::default()),
        Err(Error::PlanNotFound { .. })
    ));
    assert_eq!(store.snapshot(None).unwrap().read_raster("done", 0, None).unwrap(), full(&shape));

    // Once its writer is gone (SIGKILLed: its lease expires), the idle plan goes too.
    writer.kill().unwrap();
    let _ = writer.wait();
    wait_for_leases_to_expire();
    let younger = make("younger");
    store.gc(Duration::from_secs(2)).unwrap();
    assert!(gone(&live), "the plan of the killed writer is reclaimed");
    assert!(!gone(&younger), "a plan younger than the grace period is left alone");
    store.gc(Duration::ZERO).unwrap();
    assert!(gone(&young) && gone(&younger));
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_replacing_plan_swaps_the_element_atomically_at_its_commit() {
    let place = Place::new("s.zarr");
    let root = place.a.clone();
    let store = open(&root);
    let shape = [2u64, 96, 80];
    let spec = image_spec(&[2, 32, 32], None);
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let old = RasterArray::U16(ArrayD::from_elem(IxDyn(&dims), 7u16));
    store.add_raster(NAME, &spec, RasterSource::InMemory(old.clone()), &AddOptions::default()).unwrap();
    let before = store.version().unwrap();
    assert!(matches!(
        store.create_plan(NAME, &spec, &shape, DataType::U16, PartLayout::Count(3)),
        Err(Error::ElementExists { .. })
    ));
    let info = store.create_plan_replacing(NAME, &spec, &shape, DataType::U16, PartLayout::Count(3)).unwrap();
    assert!(info.overwrite);
    for part in 0..3 {
        store.write_part(&info.plan_id, part, blocks_of(&info.parts[part], &[0, 23, 41], Duration::ZERO), &PlanOptions::default()).unwrap();
    }
    let read = |v: Option<u64>| store.snapshot(v).unwrap().read_raster(NAME, 0, None).unwrap();
    assert_eq!(read(None), old, "readers see the old element until the commit");
    let pinned = store.snapshot(None).unwrap();
    let c = store.commit_plan(&info.plan_id).unwrap();
    assert_eq!(c.version, before + 1);
    assert_eq!(read(None), full(&shape), "the new element after the commit");
    assert_eq!(pinned.read_raster(NAME, 0, None).unwrap(), old, "a snapshot pinned before keeps the old data");
    assert_eq!(store.snapshot(None).unwrap().elements().len(), 1);
}
