//! Helpers shared by the engine's integration tests: small deterministic rasters, and re-running this test
//! binary as a child OS process for multi-process and crash tests.
#![allow(dead_code)]

use ndarray::ArrayD;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use zarrtx::settings::StoreSettings;
use zarrtx::{
    AddOptions, CommitInfo, OpenOptions, RasterArray, RasterKind, RasterSource, RasterSpec, Result, Store,
};

/// A value derived from the element name, so every reader can check the data it reads.
pub fn seed_of(name: &str) -> i32 {
    name.bytes().fold(7i32, |h, b| h.wrapping_mul(31).wrapping_add(b as i32)) & 0x3fff
}

/// A `size × size` int32 label mask whose pixels depend on `name`.
pub fn labels_data(name: &str, size: usize) -> ArrayD<i32> {
    let s = seed_of(name);
    ArrayD::from_shape_fn(vec![size, size], |ix| s + ((ix[0] * 7 + ix[1] * 3) % 50) as i32)
}

/// Labels spec with small chunks so an add writes several files.
pub fn labels_spec() -> RasterSpec {
    let mut spec = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
    spec.chunk_shape = Some(vec![32, 32]);
    spec
}

/// Adds a labels element whose data is `labels_data(name, size)`.
pub fn add_labels(store: &Store, name: &str, size: usize, overwrite: bool) -> Result<CommitInfo> {
    let data = RasterArray::I32(labels_data(name, size));
    store.add_raster(
        name,
        &labels_spec(),
        RasterSource::InMemory(data),
        &AddOptions { overwrite, ..Default::default() },
    )
}

/// Adds a labels element filled with `value`.
pub fn add_constant(store: &Store, name: &str, size: usize, value: i32, overwrite: bool) -> Result<CommitInfo> {
    let data = RasterArray::I32(ArrayD::from_elem(vec![size, size], value));
    store.add_raster(
        name,
        &labels_spec(),
        RasterSource::InMemory(data),
        &AddOptions { overwrite, ..Default::default() },
    )
}

/// Timing settings of test stores: a short lease, so that a killed writer's part can be rerun and its staging area
/// reclaimed within seconds instead of the default 30 s; a 1 s publish fence.
pub const TEST_SETTINGS: StoreSettings = StoreSettings { publish_fence_ms: 1_000, lease_ms: 3_000 };

/// Options that create stores with [`TEST_SETTINGS`].
pub fn test_options() -> OpenOptions {
    OpenOptions { settings: TEST_SETTINGS, ..OpenOptions::default() }
}

/// Opens (creating, with [`TEST_SETTINGS`]) a store.
pub fn open(path: &Path) -> Store {
    Store::open(path, &test_options()).expect("open store")
}

/// Sleeps until every lease a killed writer of a test store held has expired.
pub fn wait_for_leases_to_expire() {
    std::thread::sleep(std::time::Duration::from_millis(TEST_SETTINGS.lease_ms + 500));
}

/// Reads the whole level 0 of a labels element as int32.
pub fn read_labels(store: &Store, version: Option<u64>, name: &str) -> ArrayD<i32> {
    match store.snapshot(version).unwrap().read_raster(name, 0, None).unwrap() {
        RasterArray::I32(a) => a,
        other => panic!("{name}: expected int32, got {:?}", other.data_type()),
    }
}

/// Starts this test binary again as a child process running only the ignored test `entry`, with `env`.
pub fn spawn_child(entry: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("ZARRTX_TEST_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// Lines `RESULT <...>` printed by a finished child.
pub fn child_results(child: Child) -> Vec<String> {
    let out = child.wait_with_output().expect("wait for child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if std::env::var_os("ZARRTX_TEST_DEBUG").is_some() {
        eprintln!("child stdout:\n{stdout}\nchild stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    stdout
        .lines()
        .filter_map(|l| l.find("RESULT ").map(|i| l[i + "RESULT ".len()..].to_string()))
        .collect()
}

/// In a child started by `spawn_child`: the store named by `STORE` and the value of `var`; `None` otherwise (the
/// entry point then does nothing).
pub fn child_store(var: &str) -> Option<(Store, String)> {
    if !is_child() {
        return None;
    }
    let path = std::env::var("STORE").expect("STORE is set for children");
    let value = std::env::var(var).unwrap_or_default();
    Some((open(Path::new(&path)), value))
}

/// True when this process was started by `spawn_child`.
pub fn is_child() -> bool {
    std::env::var_os("ZARRTX_TEST_CHILD").is_some()
}

/// Reads the published root `zarr.json` the way a plain Zarr reader would, and checks every labels element it
/// lists: each level opens with zarrs from the store root and holds exactly `labels_data(name)` (for level 0).
/// Returns the names listed. Panics on anything partial.
pub fn check_published_view(root: &Path, size: usize) -> Vec<String> {
    let bytes = std::fs::read(root.join("zarr.json")).expect("root zarr.json readable");
    let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("root zarr.json parses");
    let meta = doc["consolidated_metadata"]["metadata"].as_object().expect("consolidated metadata").clone();
    let fs = std::sync::Arc::new(zarrs::filesystem::FilesystemStore::new(root).unwrap());
    let mut names = Vec::new();
    for (key, node) in &meta {
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() != 3 || parts[0] != "labels" || parts[2] != "s0" {
            continue;
        }
        assert_eq!(node["node_type"], "array", "{key}");
        let array = zarrs::array::Array::open(fs.clone(), &format!("/{key}"))
            .unwrap_or_else(|e| panic!("listed array {key} does not open: {e}"));
        let subset = zarrs::array::ArraySubset::new_with_shape(array.shape().to_vec());
        let data: ArrayD<i32> = array.retrieve_array_subset(&subset).unwrap();
        let name = parts[1];
        if data.shape() == [size, size] && name.starts_with('k') {
            assert_eq!(data, labels_data(name, size), "published {key} is not what its writer wrote");
        }
        names.push(name.to_string());
    }
    names
}

/// A tiny xorshift generator seeded from the clock (tests need variety, not quality).
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id.
    pub fn new() -> Self {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        Rng(t ^ ((std::process::id() as u64) << 32) | 1)
    }
    /// Next value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Everything under the store except the temporary and probe areas, with sizes: "unchanged" means equal.
pub fn fingerprint(root: &Path) -> Vec<(String, u64)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel.starts_with(".zarrtx/tmp") || rel.starts_with(".zarrtx/probe") || rel.starts_with(".zarrtx/locks") {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((rel, e.metadata().unwrap().len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Every file under `dir`, by relative path.
pub fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Where a test store lives: in a local temporary directory, or — when `ZARRTX_NFS_NODE_A` and `ZARRTX_NFS_NODE_B`
/// name two mounts of one NFS export, as `scripts/test-two-nodes.sh` sets them — on that export, seen as `a` through
/// node A's mount and as `b` through node B's. Each mount has its own caches and its own lock table, so writers
/// and readers split across `a` and `b` behave like processes on two cluster nodes.
pub struct Place {
    /// The store seen from node A (the local path when there is one node).
    pub a: std::path::PathBuf,
    /// The store seen from node B (the same as `a` when there is one node).
    pub b: std::path::PathBuf,
    /// A local directory for files that are not the store (inputs, references).
    pub scratch: std::path::PathBuf,
    _tmp: tempfile::TempDir,
    shared: Option<std::path::PathBuf>,
}

impl Place {
    /// A fresh place for a store named `name`.
    pub fn new(name: &str) -> Place {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = tmp.path().to_path_buf();
        match (std::env::var_os("ZARRTX_NFS_NODE_A"), std::env::var_os("ZARRTX_NFS_NODE_B")) {
            (Some(a), Some(b)) => {
                let unique = format!("t-{}", uuid::Uuid::new_v4());
                let (da, db) = (Path::new(&a).join(&unique), Path::new(&b).join(&unique));
                std::fs::create_dir_all(&da).expect("create the test directory on node A");
                // Node B sees what node A created.
                assert!(db.is_dir(), "{} is not visible through node B as {}", da.display(), db.display());
                Place { a: da.join(name), b: db.join(name), scratch, _tmp: tmp, shared: Some(da) }
            }
            _ => {
                let path = scratch.join(name);
                Place { a: path.clone(), b: path, scratch, _tmp: tmp, shared: None }
            }
        }
    }

    /// The store seen from node `i % 2` (A for even `i`, B for odd).
    pub fn node(&self, i: usize) -> &Path {
        if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }

    /// True when the store lives on a two-node NFS rig.
    pub fn two_nodes(&self) -> bool {
        self.shared.is_some()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(dir) = &self.shared {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
