//! Helpers shared by the CLI's end-to-end tests: running the real `zarrtx` binary (to completion, or spawned to run
//! alongside others), making a store and reading `info`, writing input files (`.npy`, text, parquet) and reading
//! `.npy` output, and snapshotting a directory's files.
#![allow(dead_code)]

use arrow_array::RecordBatch;
use npyz::WriterBuilder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Command-line arguments of any string-like type.
pub type Args<'a> = [&'a dyn AsRef<OsStr>];

/// The `zarrtx` binary under test, without the environment that changes its behaviour.
pub fn zarrtx() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zarrtx"));
    c.env_remove("ZARRTX_WRITER_LABEL").env_remove("ZARRTX_STREAM_THRESHOLD_BYTES");
    // Stores the tests create get a short lease (a SIGKILLed writer's part can be rerun after 3 s, not 30 s) and a
    // 1 s publish fence.
    c.env("ZARRTX_LEASE_MS", LEASE_MS.to_string()).env("ZARRTX_PUBLISH_FENCE_MS", "1000");
    c
}

/// The lease timeout of stores the tests create (see [`zarrtx`]).
pub const LEASE_MS: u64 = 3_000;

/// Sleeps until every lease a killed writer of a test store held has expired.
pub fn wait_for_leases_to_expire() {
    std::thread::sleep(std::time::Duration::from_millis(LEASE_MS + 500));
}

/// Runs `cmd` (e.g. [`zarrtx`] with some environment) with `args`; returns the exit code, stdout and stderr.
pub fn run_command(cmd: &mut Command, args: &Args) -> (i32, String, String) {
    let out: Output = cmd.args(args.iter().map(|a| a.as_ref())).output().expect("the zarrtx binary runs");
    (
        out.status.code().expect("exited normally, not by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `zarrtx args`; returns the exit code, stdout and stderr.
pub fn run(args: &Args) -> (i32, String, String) {
    run_command(&mut zarrtx(), args)
}

/// Runs `zarrtx args`, which must succeed; returns its stdout.
pub fn ok(args: &Args) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "zarrtx {:?} failed:\n{out}\n{err}", args.iter().map(|a| a.as_ref()).collect::<Vec<_>>());
    out
}

/// Runs `zarrtx args`, which must succeed printing JSON; returns it parsed.
pub fn json(args: &Args) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// Runs `zarrtx args`, which must fail with exit code `code` and an `error:` message (no panic); returns stderr.
pub fn fails(code: i32, args: &Args) -> String {
    let (got, out, err) = run(args);
    assert_eq!(got, code, "expected exit {code}, got {got}:\nstdout: {out}\nstderr: {err}");
    assert!(err.starts_with("error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Starts `zarrtx args` without waiting for it, its output captured.
pub fn spawn(args: &Args) -> Child {
    zarrtx()
        .args(args.iter().map(|a| a.as_ref()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the zarrtx binary starts")
}

/// `n` varied uint16 values, rarely 0.
pub fn values(n: usize) -> Vec<u16> {
    (0..n).map(|i| ((i * 2654435761) % 65521) as u16 | 1).collect()
}

/// The header of a version 1.0 `.npy` file holding a C-order array of numpy type `descr` (e.g. `<u2`) and `shape`,
/// padded so the data starts on a 64-byte boundary.
pub fn npy_header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (dict.len() + 11) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    header.extend(u16::try_from(dict.len()).expect("a short header").to_le_bytes());
    header.extend(dict.as_bytes());
    header
}

/// Writes a C-order `.npy` file of numpy type `descr` and `shape` whose data is `data` (already in that type's
/// little-endian bytes).
pub fn write_npy_bytes(path: &Path, descr: &str, shape: &[u64], data: &[u8]) {
    let mut file = File::create(path).unwrap();
    file.write_all(&npy_header(descr, shape)).unwrap();
    file.write_all(data).unwrap();
}

/// Writes a C-order `.npy` file of `shape` holding `data` (any numpy-serializable element type).
pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    assert_eq!(shape.iter().product::<u64>(), data.len() as u64, "the data fills the shape");
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(BufWriter::new(File::create(path).unwrap()))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Reads a `.npy` file: its shape and values.
pub fn read_npy<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let npy = npyz::NpyFile::new(File::open(path).unwrap()).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec().unwrap())
}

/// Writes `text` to the file `name` in `dir`; returns its path.
pub fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes `batch` as a parquet file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    let f = File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Creates the store `s.zarr` in `dir` with `zarrtx init`; returns its path.
pub fn new_store(dir: &Path) -> PathBuf {
    let s = dir.join("s.zarr");
    ok(&[&"init", &s]);
    s
}

/// `zarrtx info STORE --json`.
pub fn info(store: &Path) -> Value {
    json(&[&"info", &store, &"--json"])
}

/// The element `name` of an `info --json` output (a panic when it is not listed).
pub fn element<'a>(info: &'a Value, name: &str) -> &'a Value {
    info["elements"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name} missing"))
}

/// Every file under `dir`, by relative path, with its contents.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
