//! `zarrtx write-plan` / `write-part` / `commit-plan` / `plans` end to end: one image written by several `zarrtx`
//! processes (one per part, as a cluster job array runs them), with a SIGKILLed part run again, compared bit for
//! bit with `add-image` of the same file; only a part's region of the input is read; bad input exits 2.

mod common;

use common::{fails, files, json, npy_header, ok, read_npy, spawn, values, wait_for_leases_to_expire, write_npy, write_npy_bytes};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let store = root.join("store.zarr");
        ok(&[&"init", &store]);
        Fixture { _dir: dir, root, store }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn element_names(&self) -> Vec<String> {
        let info = json(&[&"info", &self.store, &"--json"]);
        info["elements"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    }
}

#[test]
fn a_job_array_writes_one_image_and_commit_plan_publishes_it() {
    let f = Fixture::new();
    let shape = [3u64, 1100, 900];
    let input = f.path("big.npy");
    write_npy(&input, &shape, &values(3 * 1100 * 900));
    let plan = json(&[
        &"write-plan", &f.store, &"big", &"--shape", &"3,1100,900", &"--dtype", &"uint16", &"--dims", &"c,y,x",
        &"--parts", &"6", &"--chunks", &"3,128,128", &"--scale-factors", &"2,2", &"--json",
    ]);
    let id = plan["plan_id"].as_str().unwrap().to_string();
    assert_eq!(plan["parts"].as_array().unwrap().len(), 6);
    assert_eq!(plan["write_unit"], serde_json::json!([3, 128, 128]));

    // Every part in its own process, at once; one of them is SIGKILLed at a random moment.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let victim = (nanos % 6) as usize;
    let mut children: Vec<(usize, Child)> = (0..6)
        .map(|p| (p, spawn(&[&"write-part", &f.store, &id, &p.to_string(), &"--input", &input])))
        .collect();
    std::thread::sleep(Duration::from_millis(nanos % 60));
    if let Some((_, c)) = children.iter_mut().find(|(p, _)| *p == victim) {
        c.kill().unwrap();
    }
    for (p, c) in children {
        let out = c.wait_with_output().unwrap();
        if p != victim {
            assert!(out.status.success(), "part {p}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    assert!(!f.element_names().contains(&"big".to_string()), "invisible before commit-plan");
    // The job array re-runs the killed task (and, harmlessly, all the others) once the killed writer's lease
    // expired (until then a rerun is refused: the writer might be alive on another node).
    wait_for_leases_to_expire();
    for p in 0..6 {
        let out = ok(&[&"write-part", &f.store, &id, &p.to_string(), &"--input", &input]);
        if p != victim {
            assert!(out.contains("already written"), "{out}");
        }
    }
    let status = json(&[&"plans", &f.store, &id, &"--json"]);
    assert_eq!(status["complete"], true);
    assert_eq!(status["missing"], serde_json::json!([]));
    assert!(ok(&[&"plans", &f.store]).contains("complete, ready to commit"));

    let out = ok(&[&"commit-plan", &f.store, &id]);
    assert!(out.contains("committed images/big at version"), "{out}");
    let again = json(&[&"commit-plan", &f.store, &id, &"--json"]);
    assert_eq!(again["already_committed"], true);
    assert!(ok(&[&"plans", &f.store]).contains("committed at version"));

    // The same image added by one process, into another store: identical files.
    let reference = f.path("ref.zarr");
    ok(&[&"init", &reference]);
    ok(&[&"add-image", &reference, &"big", &input, &"--chunks", &"3,128,128", &"--scales", &"2,2"]);
    let (a, b) = (files(&f.store.join("images/big")), files(&reference.join("images/big")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "the planned element differs from add-image's");
    let back = f.path("back.npy");
    ok(&[&"read", &f.store, &"big", &back]);
    assert_eq!(read_npy(&back), (shape.to_vec(), values(3 * 1100 * 900)));
    // The SIGKILL may land while the victim holds a temporary file: a leftover of an interrupted writer, which
    // verify reports until gc reclaims it.
    ok(&[&"gc", &f.store, &"--grace-seconds", &"0"]);
    ok(&[&"verify", &f.store]);
}

/// Peak resident memory of the largest child this process has waited for, in bytes.
fn children_peak_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn write_part_reads_only_its_region_of_a_huge_input() {
    let f = Fixture::new();
    // A sparse 128 GiB .npy (1 × 262144 × 262144 uint16): reading it whole would take 128 GiB of memory, or a
    // long time when streamed.
    let (h, w) = (262144u64, 262144u64);
    let input = f.path("huge.npy");
    let header = npy_header("<u2", &[1, h, w]);
    let mut file = File::create(&input).unwrap();
    file.write_all(&header).unwrap();
    file.set_len(header.len() as u64 + h * w * 2).unwrap();
    // Values in the last chunk (rows and columns 258048..262144): a row of 4096 pixels every 97 rows.
    let row: Vec<u8> = (0..4096u16).flat_map(|x| (x + 1).to_le_bytes()).collect();
    for y in (h - 4096..h).step_by(97) {
        file.seek(SeekFrom::Start(header.len() as u64 + (y * w + (w - 4096)) * 2)).unwrap();
        file.write_all(&row).unwrap();
    }
    drop(file);
    let plan = json(&[
        &"write-plan", &f.store, &"huge", &"--shape", &"1,262144,262144", &"--dtype", &"uint16", &"--dims", &"c,y,x",
        &"--parts", &"4096", &"--chunks", &"1,4096,4096", &"--json",
    ]);
    let id = plan["plan_id"].as_str().unwrap().to_string();
    assert_eq!(plan["parts"][4095], serde_json::json!([[0, 1], [258048, 262144], [258048, 262144]]));
    let t0 = std::time::Instant::now();
    let out = json(&[&"write-part", &f.store, &id, &"4095", &"--input", &input, &"--json"]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "write-part took {took:?}: it read more than its 32 MiB part");
    assert_eq!(out["outcome"], "written");
    assert_eq!(out["chunks"], 1, "the part's one chunk holds data");
    let peak = children_peak_rss();
    assert!(peak < 1 << 30, "write-part used {} MiB: it read more than its part", peak >> 20);
    let chunk = f.store.join(format!(".zarrtx/plans/{id}/staged/s0/c/0/63/63"));
    assert!(chunk.exists(), "the part's chunk is staged");
}

#[test]
fn bad_plans_and_inputs_exit_2_naming_the_element() {
    let f = Fixture::new();
    let input = f.path("a.npy");
    write_npy(&input, &[2, 100, 80], &values(2 * 100 * 80));
    let plan = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"write-plan", &f.store, &"img", &"--shape", &"2,100,80", &"--dtype", &"uint16", &"--chunks", &"2,32,32"];
        for e in extra {
            args.push(e);
        }
        args.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>()
    };
    let run_v = |args: Vec<std::ffi::OsString>| {
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        fails(2, &refs)
    };
    for (extra, needle) in [
        (vec!["--dims", "c,y,x", "--parts", "0"], "at least one part"),
        (vec!["--dims", "c,y,x", "--parts", "13"], "at most 12 parts"),
        (vec!["--dims", "y,x", "--parts", "2"], "pass --labels"),
        (vec!["--dims", "c,y,x", "--parts", "2", "--labels"], "labels take"),
        (vec!["--dims", "c,z,y,x", "--parts", "2"], "one size per axis"),
        (vec!["--dims", "c,y,x", "--parts", "2", "--shards", "2,48,48"], "not a multiple"),
    ] {
        let err = run_v(plan(&extra));
        assert!(err.contains("'img'") && err.contains(needle), "{extra:?}: {err}");
    }
    fails(2, &[&"write-plan", &f.store, &"img", &"--shape", &"2,100,80", &"--dtype", &"u16", &"--dims", &"c,y,x", &"--parts", &"2"]);
    let id = json(&[
        &"write-plan", &f.store, &"img", &"--shape", &"2,100,80", &"--dtype", &"uint16", &"--dims", &"c,y,x",
        &"--parts", &"4", &"--chunks", &"2,32,32", &"--json",
    ])["plan_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Inputs of another shape or dtype, parts and plans that do not exist.
    let other = f.path("other.npy");
    write_npy(&other, &[2, 100, 81], &values(2 * 100 * 81));
    let err = fails(2, &[&"write-part", &f.store, &id, &"0", &"--input", &other]);
    assert!(err.contains("'img'") && err.contains("shape [2, 100, 81]"), "{err}");
    let floats = f.path("floats.npy");
    let float_bytes: Vec<u8> = (0..16000).flat_map(|i| (i as f32).to_le_bytes()).collect();
    write_npy_bytes(&floats, "<f4", &[2, 100, 80], &float_bytes);
    let err = fails(2, &[&"write-part", &f.store, &id, &"0", &"--input", &floats]);
    assert!(err.contains("'img'") && err.contains("float32"), "{err}");
    let err = fails(2, &[&"write-part", &f.store, &id, &"4", &"--input", &input]);
    assert!(err.contains("'img'") && err.contains("part 4 does not exist"), "{err}");
    let err = fails(2, &[&"write-part", &f.store, &"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", &"0", &"--input", &input]);
    assert!(err.contains("does not exist"), "{err}");
    // Committing with parts missing names them, commits nothing.
    ok(&[&"write-part", &f.store, &id, &"1", &"--input", &input]);
    let err = fails(2, &[&"commit-plan", &f.store, &id]);
    assert!(err.contains("'img'") && err.contains("parts 0, 2, 3"), "{err}");
    assert!(f.element_names().is_empty());
    assert!(ok(&[&"plans", &f.store, &id]).contains("part 0 [0..2, 0..32, 0..80]: to write"));
    // A taken name fails fast.
    ok(&[&"add-image", &f.store, &"taken", &input]);
    let err = fails(2, &[&"write-plan", &f.store, &"TAKEN", &"--shape", &"2,100,80", &"--dtype", &"uint16", &"--dims", &"c,y,x", &"--parts", &"2"]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn write_plan_overwrite_replaces_the_element_at_commit() {
    let f = Fixture::new();
    let (old, new) = (f.path("old.npy"), f.path("new.npy"));
    write_npy(&old, &[1, 300, 200], &vec![7u16; 300 * 200]);
    write_npy(&new, &[1, 300, 200], &values(300 * 200));
    ok(&[&"add-image", &f.store, &"img", &old, &"--chunks", &"1,100,100"]);
    let plan_args = |overwrite: bool| {
        let mut args: Vec<String> = ["write-plan", f.store.to_str().unwrap(), "IMG", "--shape", "1,300,200", "--dtype",
            "uint16", "--dims", "c,y,x", "--parts", "3", "--chunks", "1,100,100", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if overwrite {
            args.push("--overwrite".into());
        }
        args
    };
    fn refs(a: &[String]) -> Vec<&dyn AsRef<std::ffi::OsStr>> {
        a.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>).collect()
    }
    let err = fails(2, &refs(&plan_args(false)));
    assert!(err.contains("already exists") && err.contains("img"), "{err}");
    let plan = json(&refs(&plan_args(true)));
    assert_eq!(plan["overwrite"], true);
    let id = plan["plan_id"].as_str().unwrap().to_string();
    for p in 0..3 {
        ok(&[&"write-part", &f.store, &id, &p.to_string(), &"--input", &new]);
    }
    let back = f.path("back.npy");
    ok(&[&"read", &f.store, &"img", &back]);
    assert_eq!(read_npy::<u16>(&back).1, vec![7u16; 300 * 200], "the old element until the commit");
    ok(&[&"commit-plan", &f.store, &id]);
    assert_eq!(f.element_names(), vec!["IMG".to_string()]);
    ok(&[&"read", &f.store, &"IMG", &back]);
    assert_eq!(read_npy(&back), (vec![1, 300, 200], values(300 * 200)));
}
