//! `zarrtx demo`: N real worker processes write images and labels into ONE new store at the same time; the
//! parent then verifies the store and reports who wrote what, how fast, and whether anything was lost.
//!
//! The parent re-executes its own binary (`std::env::current_exe()`) with the hidden `demo-worker` subcommand
//! and `ZARRTX_WRITER_LABEL=worker-<i>`. Workers wait for a `go` line on stdin so that all of them start writing
//! at the same moment, then print one JSON line per element written and a final summary line on stdout.

use crate::cli_error::{CliError, CliResult};
use crate::output::{emit, human_bytes};
use crate::progress_bar::count_bar;
use clap::Args;
use ndarray::{Array3, ArrayD, IxDyn};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;
use zarrtx::table::{Annotation, Matrix, TableData};
use zarrtx::{
    AddOptions, ElementType, Geometry, OpenOptions, PointsSpec, Pyramid, RasterArray, RasterKind, RasterSource,
    RasterSpec, ShapesData, ShapesIndex, ShapesSpec, Store, WriterInfo,
};

/// The one table every worker appends its cells to.
pub const DEMO_TABLE: &str = "cells";

/// Arguments of `zarrtx demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The store to create; an existing zarrtx demo store there is removed first, anything else is refused.
    #[arg(long, default_value = "demo.zarr")]
    pub store: PathBuf,
    /// Number of worker processes.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub workers: usize,
    /// Images (and as many labels elements) each worker adds.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub per_worker: usize,
    /// Width and height of every image and labels element, in pixels.
    #[arg(long, default_value_t = 512, value_name = "PIXELS")]
    pub size: usize,
}

/// Arguments of the hidden `zarrtx demo-worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The (existing) store.
    #[arg(long)]
    pub store: PathBuf,
    /// This worker's index.
    #[arg(long)]
    pub index: usize,
    /// Images (and labels) to add.
    #[arg(long)]
    pub per_worker: usize,
    /// Image size in pixels.
    #[arg(long)]
    pub size: usize,
    /// Start without waiting for `go` on stdin.
    #[arg(long)]
    pub no_wait: bool,
}

/// The name of worker `i`'s `k`-th image.
pub fn image_name(i: usize, k: usize) -> String {
    format!("w{i:02}_image_{k}")
}

/// The name of worker `i`'s `k`-th labels element.
pub fn labels_name(i: usize, k: usize) -> String {
    format!("w{i:02}_labels_{k}")
}

/// The name of worker `i`'s points element (transcripts inside the cells of its first labels element).
pub fn points_name(i: usize) -> String {
    format!("w{i:02}_points")
}

/// The name of worker `i`'s shapes element (one circle per cell of its first labels element).
pub fn shapes_name(i: usize) -> String {
    format!("w{i:02}_cells")
}

/// Points each worker adds (fewer only when its labels hold fewer labelled pixels than this).
pub const POINTS_PER_WORKER: usize = 300;

/// The gene names of the demo's points (the categorical `gene` column).
pub const GENES: [&str; 4] = ["ACTB", "GAPDH", "CD3E", "MKI67"];

/// True for names the demo writes (`w<digits>_image_<digits>`, `w<digits>_labels_<digits>`, `w<digits>_points`,
/// `w<digits>_cells`).
pub fn is_demo_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('w') else {
        return false;
    };
    let Some((worker, rest)) = rest.split_once('_') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if rest == "points" || rest == "cells" {
        return digits(worker);
    }
    let kind_and_k = rest.strip_prefix("image_").or_else(|| rest.strip_prefix("labels_"));
    digits(worker) && kind_and_k.is_some_and(digits)
}

/// The rows worker `worker` appends for its `k`-th labels element: one per cell (label id), region = the labels
/// element, instance id = the label id, the cell's area in pixels, and X = the mean of each image channel over it.
pub fn cell_rows(worker: usize, k: usize, labels: &ArrayD<i32>, image: &Array3<u16>) -> TableData {
    use arrow_array::types::Int32Type;
    use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let mut stats: BTreeMap<i32, (u64, [f64; 3])> = BTreeMap::new();
    for ((y, x), &id) in labels.view().into_dimensionality::<ndarray::Ix2>().expect("2-D labels").indexed_iter() {
        if id != 0 {
            let e = stats.entry(id).or_insert((0, [0.0; 3]));
            e.0 += 1;
            for c in 0..3 {
                e.1[c] += image[[c, y, x]] as f64;
            }
        }
    }
    let region = labels_name(worker, k);
    let n = stats.len();
    let ids: Vec<i32> = stats.keys().copied().collect();
    let keys = Int32Array::from(vec![0; n]);
    let region_col = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(vec![region.as_str()])))
        .expect("valid dictionary");
    let obs = RecordBatch::try_from_iter(vec![
        ("cell", Arc::new(StringArray::from(ids.iter().map(|i| format!("{region}_{i}")).collect::<Vec<_>>())) as ArrayRef),
        ("region", Arc::new(region_col) as ArrayRef),
        ("instance_id", Arc::new(Int32Array::from(ids.clone())) as ArrayRef),
        ("area", Arc::new(Float64Array::from(stats.values().map(|s| s.0 as f64).collect::<Vec<_>>())) as ArrayRef),
        ("worker", Arc::new(Int32Array::from(vec![worker as i32; n])) as ArrayRef),
    ])
    .expect("consistent columns");
    let var = RecordBatch::try_from_iter(vec![(
        "channel",
        Arc::new(StringArray::from(vec!["gradient", "checker", "rings"])) as ArrayRef,
    )])
    .expect("one column");
    let means: Vec<f32> = stats.values().flat_map(|(a, sums)| sums.map(|v| (v / *a as f64) as f32)).collect();
    let mut t = TableData::new(obs, "cell", var, "channel");
    t.x = Some(Matrix::Dense(RasterArray::F32(ArrayD::from_shape_vec(IxDyn(&[n, 3]), means).expect("n × 3"))));
    t.annotation = Some(Annotation { region: vec![region], region_key: "region".into(), instance_key: "instance_id".into() });
    t
}

/// Worker `worker`'s synthetic points: up to [`POINTS_PER_WORKER`] points at deterministic pseudo-random
/// labelled pixels of `labels`, columns `x`, `y` (float64, pixel centres plus jitter), `gene` (categorical, one of
/// [`GENES`]) and `cell_id` (int32, the label id under the point).
pub fn synthetic_points(worker: usize, labels: &ArrayD<i32>) -> arrow_array::RecordBatch {
    use arrow_array::types::Int32Type;
    use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let inside: Vec<(usize, usize, i32)> = labels
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .expect("2-D labels")
        .indexed_iter()
        .filter(|(_, &id)| id != 0)
        .map(|((y, x), &id)| (y, x, id))
        .collect();
    let n = POINTS_PER_WORKER.min(inside.len());
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ ((worker as u64 + 1) << 20);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut xs, mut ys, mut genes, mut ids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (y, x, id) = inside[(next() % inside.len() as u64) as usize];
        let jitter = |r: u64| (r % 1000) as f64 / 1000.0;
        xs.push(x as f64 + jitter(next()));
        ys.push(y as f64 + jitter(next()));
        // Each cell favours one gene, so the data has some structure.
        genes.push(if next() % 4 == 0 { (next() % GENES.len() as u64) as i32 } else { id % GENES.len() as i32 });
        ids.push(id);
    }
    let gene = DictionaryArray::<Int32Type>::try_new(Int32Array::from(genes), Arc::new(StringArray::from(GENES.to_vec())))
        .expect("valid dictionary");
    RecordBatch::try_from_iter(vec![
        ("x", Arc::new(Float64Array::from(xs)) as ArrayRef),
        ("y", Arc::new(Float64Array::from(ys)) as ArrayRef),
        ("gene", Arc::new(gene) as ArrayRef),
        ("cell_id", Arc::new(Int32Array::from(ids)) as ArrayRef),
    ])
    .expect("consistent columns")
}

/// One circle per cell of `labels`: centred on the cell's centroid, radius `sqrt(area / π)` (so > 0), indexed by
/// the label id.
pub fn cell_circles(labels: &ArrayD<i32>) -> ShapesData {
    let mut stats: BTreeMap<i32, (f64, f64, f64)> = BTreeMap::new();
    for ((y, x), &id) in labels.view().into_dimensionality::<ndarray::Ix2>().expect("2-D labels").indexed_iter() {
        if id != 0 {
            let e = stats.entry(id).or_insert((0.0, 0.0, 0.0));
            e.0 += 1.0;
            e.1 += x as f64 + 0.5;
            e.2 += y as f64 + 0.5;
        }
    }
    ShapesData {
        geometry: stats.values().map(|&(a, sx, sy)| Geometry::Point([sx / a, sy / a])).collect(),
        radius: Some(stats.values().map(|&(a, _, _)| (a / std::f64::consts::PI).sqrt()).collect()),
        columns: None,
        index: Some(ShapesIndex::Int(stats.keys().map(|&id| id as i64).collect())),
    }
}

/// The label ids present in `labels` (excluding background 0), sorted.
pub fn label_ids(labels: &ArrayD<i32>) -> Vec<i64> {
    let set: std::collections::BTreeSet<i64> = labels.iter().filter(|&&v| v != 0).map(|&v| v as i64).collect();
    set.into_iter().collect()
}

/// A synthetic 3-channel `uint16` image: a diagonal gradient, a checkerboard shifted per worker, and rings.
pub fn synthetic_image(worker: usize, k: usize, size: usize) -> Array3<u16> {
    let s = size as f64;
    Array3::from_shape_fn((3, size, size), |(c, y, x)| match c {
        0 => ((x + y) as f64 / (2.0 * s) * 65535.0) as u16,
        1 => {
            if ((x / 32) + (y / 32) + worker).is_multiple_of(2) {
                40000
            } else {
                2000
            }
        }
        _ => {
            let (dy, dx) = (y as f64 - s / 2.0, x as f64 - s / 2.0);
            let d = (dx * dx + dy * dy).sqrt();
            (((d / (6.0 + k as f64)).sin() + 1.0) * 30000.0) as u16
        }
    })
}

/// Synthetic `int32` labels: one disc ("cell") per 64-pixel cell of a grid, radius and position jittered
/// deterministically per worker and element, ids unique within the element; background 0.
pub fn synthetic_labels(worker: usize, k: usize, size: usize) -> ArrayD<i32> {
    const CELL: usize = 64;
    let per_row = size.div_ceil(CELL);
    let hash = |a: usize| -> usize {
        let mut h = (a as u64 ^ ((worker as u64) << 32) ^ ((k as u64) << 48)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        (h % 1024) as usize
    };
    ArrayD::from_shape_fn(IxDyn(&[size, size]), |idx| {
        let (y, x) = (idx[0], idx[1]);
        let (cy, cx) = (y / CELL, x / CELL);
        let cell = cy * per_row + cx;
        let h = hash(cell);
        let radius = 12 + (h % 16) as i64;
        let centre_y = (cy * CELL + CELL / 2) as i64 + (h % 9) as i64 - 4;
        let centre_x = (cx * CELL + CELL / 2) as i64 + ((h / 9) % 9) as i64 - 4;
        let (dy, dx) = (y as i64 - centre_y, x as i64 - centre_x);
        if dy * dy + dx * dx <= radius * radius {
            cell as i32 + 1
        } else {
            0
        }
    })
}

fn line(v: Value) {
    // Workers write one JSON object per line; the parent parses them.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Runs one demo worker (the hidden `demo-worker` subcommand).
pub fn worker(args: WorkerArgs) -> CliResult<i32> {
    if !args.no_wait {
        let mut go = String::new();
        let _ = std::io::stdin().read_line(&mut go);
    }
    let me = WriterInfo::current();
    let started = Instant::now();
    let fail = |name: &str, e: &dyn std::fmt::Display| {
        line(json!({"event": "error", "worker": args.index, "name": name, "message": e.to_string()}));
    };
    let store = match Store::open(
        &args.store,
        &OpenOptions {
            create: false,
            ..OpenOptions::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            fail("", &e);
            return Err(e.into());
        }
    };
    let mut bytes_total = 0u64;
    let mut written = 0usize;
    let mut attempts_total = 0u32;
    let mut table_rows = 0usize;
    for k in 0..args.per_worker {
        let jobs: [(String, RasterKind); 2] = [
            (image_name(args.index, k), RasterKind::Image),
            (labels_name(args.index, k), RasterKind::Labels),
        ];
        for (name, kind) in jobs {
            let (spec, array) = match kind {
                RasterKind::Image => {
                    let mut spec = RasterSpec::new(kind, &["c", "y", "x"]);
                    spec.channel_names = Some(vec!["gradient".into(), "checker".into(), "rings".into()]);
                    spec.pyramid = Pyramid::Computed(vec![2]);
                    (
                        spec,
                        RasterArray::U16(synthetic_image(args.index, k, args.size).into_dyn()),
                    )
                }
                RasterKind::Labels => {
                    let mut spec = RasterSpec::new(kind, &["y", "x"]);
                    spec.pyramid = Pyramid::Computed(vec![2]);
                    (spec, RasterArray::I32(synthetic_labels(args.index, k, args.size)))
                }
            };
            let bytes = array.shape().iter().product::<u64>() * array.data_type().size() as u64;
            let t0 = Instant::now();
            match store.add_raster(&name, &spec, RasterSource::InMemory(array), &AddOptions::default()) {
                Ok(c) => {
                    let seconds = t0.elapsed().as_secs_f64();
                    bytes_total += bytes;
                    written += 1;
                    attempts_total += c.attempts;
                    line(json!({
                        "event": "added", "worker": args.index, "name": name,
                        "type": match kind { RasterKind::Image => "images", RasterKind::Labels => "labels" },
                        "version": c.version, "attempts": c.attempts, "bytes": bytes, "seconds": seconds,
                    }));
                }
                Err(e) => {
                    fail(&name, &e);
                    return Err(e.into());
                }
            }
        }
        // This labels element's cells, appended to the one shared table (the first appender creates it).
        let rows = cell_rows(
            args.index,
            k,
            &synthetic_labels(args.index, k, args.size),
            &synthetic_image(args.index, k, args.size),
        );
        let t0 = Instant::now();
        match store.append(DEMO_TABLE, &rows) {
            Ok(c) => {
                table_rows += rows.n_obs() as usize;
                line(json!({
                    "event": "appended", "worker": args.index, "region": labels_name(args.index, k),
                    "rows": rows.n_obs(), "version": c.version, "seconds": t0.elapsed().as_secs_f64(),
                }));
            }
            Err(e) => {
                fail(DEMO_TABLE, &e);
                return Err(e.into());
            }
        }
    }
    // One points and one shapes element, both over the cells of this worker's first labels element.
    let labels0 = synthetic_labels(args.index, 0, args.size);
    let points = synthetic_points(args.index, &labels0);
    let circles = cell_circles(&labels0);
    let vector_jobs: [(String, &str, u64); 2] = [
        (points_name(args.index), "points", points.num_rows() as u64 * 24),
        (shapes_name(args.index), "shapes", circles.geometry.len() as u64 * 24),
    ];
    for (name, kind, bytes) in vector_jobs {
        let t0 = Instant::now();
        let result = if kind == "points" {
            let spec = PointsSpec {
                feature_key: Some("gene".into()),
                instance_key: Some("cell_id".into()),
                ..PointsSpec::default()
            };
            store.add_points(&name, std::slice::from_ref(&points), &spec, &AddOptions::default())
        } else {
            store.add_shapes(&name, &circles, &ShapesSpec::default(), &AddOptions::default())
        };
        match result {
            Ok(c) => {
                bytes_total += bytes;
                written += 1;
                attempts_total += c.attempts;
                line(json!({
                    "event": "added", "worker": args.index, "name": name, "type": kind,
                    "version": c.version, "attempts": c.attempts, "bytes": bytes,
                    "seconds": t0.elapsed().as_secs_f64(),
                }));
            }
            Err(e) => {
                fail(&name, &e);
                return Err(e.into());
            }
        }
    }
    line(json!({
        "event": "done", "worker": args.index, "label": me.label, "pid": me.pid, "host": me.host,
        "elements": written, "bytes": bytes_total, "attempts": attempts_total, "table_rows": table_rows,
        "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(0)
}

/// Removes `path` if it is a store the demo made (or an empty directory); refuses anything else.
fn clear_previous(path: &Path) -> CliResult<()> {
    if !path.exists() {
        return Ok(());
    }
    let refuse = |why: String| {
        CliError::usage(format!(
            "{} exists and {why}; the demo only replaces its own stores: choose another --store or remove it yourself",
            path.display()
        ))
    };
    if !path.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    let empty = std::fs::read_dir(path).map(|mut d| d.next().is_none()).unwrap_or(false);
    if !empty {
        let store = super::open_read(path).map_err(|e| refuse(format!("is not a zarrtx store ({})", e.message)))?;
        let snap = store
            .snapshot(None)
            .map_err(|e| refuse(format!("cannot be read ({e})")))?;
        if let Some(other) = snap.elements().into_iter().find(|e| !is_demo_name(&e.name) && e.name != DEMO_TABLE) {
            return Err(refuse(format!(
                "is not a demo store (it holds {}/{})",
                other.element_type, other.name
            )));
        }
    }
    std::fs::remove_dir_all(path)
        .map_err(|e| CliError::failure(format!("cannot remove the previous demo store {}: {e}", path.display())))
}

/// What one worker reported.
#[derive(Default)]
struct WorkerReport {
    pid: u32,
    label: String,
    elements: Vec<(String, u64, u32)>, // (name, version, attempts)
    appends: Vec<u64>,                 // versions of the worker's table appends
    bytes: u64,
    seconds: f64,
    done: bool,
    errors: Vec<String>,
    stderr: String,
    exit: Option<std::process::ExitStatus>,
}

/// Runs `zarrtx demo`.
pub fn run(args: DemoArgs) -> CliResult<i32> {
    if args.workers == 0 || args.workers > 256 {
        return Err(CliError::usage("--workers must be between 1 and 256"));
    }
    if args.per_worker == 0 || args.per_worker > 1000 {
        return Err(CliError::usage("--per-worker must be between 1 and 1000"));
    }
    if !(16..=16384).contains(&args.size) {
        return Err(CliError::usage("--size must be between 16 and 16384 pixels"));
    }
    clear_previous(&args.store)?;
    let parent_label = std::env::var("ZARRTX_WRITER_LABEL").ok();
    if parent_label.is_none() {
        // Safe here: single-threaded at this point; labels the store's creation in the log.
        std::env::set_var("ZARRTX_WRITER_LABEL", "demo");
    }
    let store = Store::open(&args.store, &OpenOptions::default())?;
    let root = std::fs::canonicalize(&args.store).unwrap_or_else(|_| args.store.clone());
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failure(format!("cannot locate the zarrtx binary to start workers: {e}")))?;

    // Per worker: `per_worker` images and labels elements, one points and one shapes element.
    let total = (args.workers * (args.per_worker * 2 + 2)) as u64;
    emit(&format!(
        "zarrtx demo: {} worker processes each add {} image(s) (3×{}×{} uint16, 2 levels) and {} labels element(s) \
         (int32), one points element (up to {POINTS_PER_WORKER} transcripts in its cells) and one shapes element (a \
         circle per cell) to {} at the same time, and append one row per cell to the shared table '{DEMO_TABLE}'",
        args.workers,
        args.per_worker,
        args.size,
        args.size,
        args.per_worker,
        root.display()
    ));

    // Start every worker; they wait for "go" so that all of them write at once.
    let mut children = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let child = Command::new(&exe)
            .arg("demo-worker")
            .arg("--store")
            .arg(&root)
            .args(["--index", &i.to_string(), "--per-worker", &args.per_worker.to_string()])
            .args(["--size", &args.size.to_string()])
            .env("ZARRTX_WRITER_LABEL", format!("worker-{i}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                for mut c in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(CliError::failure(format!("cannot start worker {i}: {e}")));
            }
        }
    }
    let (tx, rx) = mpsc::channel::<(usize, Option<String>)>();
    let mut stderr_threads = Vec::new();
    for (i, child) in children.iter_mut().enumerate() {
        let stdout = child.stdout.take().expect("piped");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send((i, Some(l)));
            }
            let _ = tx.send((i, None));
        });
        let mut stderr = child.stderr.take().expect("piped");
        stderr_threads.push(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        }));
    }
    drop(tx);
    let bar = count_bar(total, "elements written");
    let wall = Instant::now();
    for child in children.iter_mut() {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"go\n");
        }
    }
    let mut reports: Vec<WorkerReport> = (0..args.workers).map(|_| WorkerReport::default()).collect();
    let mut open_streams = args.workers;
    while open_streams > 0 {
        let Ok((i, msg)) = rx.recv() else { break };
        let Some(text) = msg else {
            open_streams -= 1;
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let r = &mut reports[i];
        match v["event"].as_str() {
            Some("added") => {
                bar.inc(1);
                r.elements.push((
                    v["name"].as_str().unwrap_or_default().to_string(),
                    v["version"].as_u64().unwrap_or(0),
                    v["attempts"].as_u64().unwrap_or(1) as u32,
                ));
            }
            Some("appended") => r.appends.push(v["version"].as_u64().unwrap_or(0)),
            Some("done") => {
                r.done = true;
                r.pid = v["pid"].as_u64().unwrap_or(0) as u32;
                r.label = v["label"].as_str().unwrap_or_default().to_string();
                r.bytes = v["bytes"].as_u64().unwrap_or(0);
                r.seconds = v["seconds"].as_f64().unwrap_or(0.0);
            }
            Some("error") => r.errors.push(format!(
                "{}: {}",
                v["name"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default()
            )),
            _ => {}
        }
    }
    for (i, child) in children.iter_mut().enumerate() {
        reports[i].exit = child.wait().ok();
        if reports[i].pid == 0 {
            reports[i].pid = child.id();
        }
    }
    for (i, t) in stderr_threads.into_iter().enumerate() {
        reports[i].stderr = t.join().unwrap_or_default();
    }
    let wall_seconds = wall.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // Check the store: every element present, recorded with the worker that wrote it, and verify clean.
    let verify = store.verify()?;
    let snap = store.snapshot(None)?;
    let present: BTreeMap<String, zarrtx::ElementInfo> =
        snap.elements().into_iter().map(|e| (e.name.clone(), e)).collect();
    let mut missing = Vec::new();
    let mut misattributed = Vec::new();
    let mut vector_problems: Vec<String> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let mut expected: Vec<(String, ElementType)> = Vec::new();
        for k in 0..args.per_worker {
            expected.push((image_name(i, k), ElementType::Images));
            expected.push((labels_name(i, k), ElementType::Labels));
        }
        expected.push((points_name(i), ElementType::Points));
        expected.push((shapes_name(i), ElementType::Shapes));
        for (name, ty) in expected {
            match present.get(&name) {
                None => missing.push(name),
                Some(e) => {
                    let label_ok = e.writer.label.as_deref() == Some(format!("worker-{i}").as_str());
                    if !label_ok || (r.pid != 0 && e.writer.pid != r.pid) {
                        misattributed.push(format!(
                            "{name} (recorded writer {:?} pid {})",
                            e.writer.label, e.writer.pid
                        ));
                    }
                    if e.element_type != ty {
                        vector_problems.push(format!("{name} is {}, expected {ty}", e.element_type));
                    }
                }
            }
        }
        // The points and shapes hold what the worker meant to write.
        let labels0 = synthetic_labels(i, 0, args.size);
        let want_points = synthetic_points(i, &labels0).num_rows() as u64;
        let want_circles = label_ids(&labels0).len() as u64;
        for (name, want) in [(points_name(i), want_points), (shapes_name(i), want_circles)] {
            if present.contains_key(&name) {
                match snap.vector_info(&name) {
                    Ok(v) if v.n_rows == want => {}
                    Ok(v) => vector_problems.push(format!("{name}: {} row(s), expected {want}", v.n_rows)),
                    Err(e) => vector_problems.push(format!("{name}: {e}")),
                }
            }
        }
    }

    // The shared table: every worker's cells exactly once.
    let mut table_problems: Vec<String> = Vec::new();
    let mut rows_per_worker = vec![0usize; args.workers];
    let mut table_total = 0usize;
    match snap.read_table(DEMO_TABLE) {
        Err(e) => table_problems.push(format!("cannot read table '{DEMO_TABLE}': {e}")),
        Ok(t) => {
            table_total = t.obs.num_rows();
            match zarrtx::table::ids::ids_by_region(DEMO_TABLE, &t.obs, "region", "instance_id") {
                Err(e) => table_problems.push(e.to_string()),
                Ok(mut by_region) => {
                    for (i, rows) in rows_per_worker.iter_mut().enumerate() {
                        for k in 0..args.per_worker {
                            let region = labels_name(i, k);
                            let mut got = by_region.remove(&region).unwrap_or_default();
                            got.sort_unstable();
                            let want = label_ids(&synthetic_labels(i, k, args.size));
                            *rows += got.len();
                            if got != want {
                                table_problems.push(format!(
                                    "region {region}: {} row(s), expected each of its {} cells exactly once",
                                    got.len(),
                                    want.len()
                                ));
                            }
                        }
                    }
                    for (region, ids) in by_region {
                        table_problems.push(format!("{} unexpected row(s) for region {region}", ids.len()));
                    }
                }
            }
        }
    }

    // The report.
    let mut out = String::new();
    let header = [
        "worker",
        "pid",
        "elements",
        "MiB",
        "seconds",
        "elements/s",
        "MiB/s",
        "retries",
        "table rows",
        "versions",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut total_bytes = 0u64;
    let mut total_elements = 0usize;
    let mut total_retries = 0u32;
    for (i, r) in reports.iter().enumerate() {
        let n = r.elements.len();
        total_elements += n;
        total_bytes += r.bytes;
        let retries: u32 = r.elements.iter().map(|e| e.2.saturating_sub(1)).sum();
        total_retries += retries;
        let mut versions: Vec<String> = r.elements.iter().map(|e| e.1.to_string()).collect();
        if versions.len() > 8 {
            let more = versions.len() - 8;
            versions.truncate(8);
            versions.push(format!("… +{more}"));
        }
        let secs = r.seconds.max(1e-9);
        rows.push(vec![
            if r.label.is_empty() {
                format!("worker-{i}")
            } else {
                r.label.clone()
            },
            r.pid.to_string(),
            n.to_string(),
            format!("{:.1}", mib(r.bytes)),
            format!("{:.2}", r.seconds),
            format!("{:.1}", n as f64 / secs),
            format!("{:.1}", mib(r.bytes) / secs),
            retries.to_string(),
            rows_per_worker[i].to_string(),
            versions.join(","),
        ]);
    }
    let wall_s = wall_seconds.max(1e-9);
    rows.push(vec![
        "all (wall)".into(),
        String::new(),
        total_elements.to_string(),
        format!("{:.1}", mib(total_bytes)),
        format!("{wall_seconds:.2}"),
        format!("{:.1}", total_elements as f64 / wall_s),
        format!("{:.1}", mib(total_bytes) / wall_s),
        total_retries.to_string(),
        table_total.to_string(),
        String::new(),
    ]);
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let fmt_row = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    out.push('\n');
    out.push_str(&fmt_row(&header.map(String::from)));
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    out.push('\n');
    for (n, r) in rows.iter().enumerate() {
        if n + 1 == rows.len() {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
        out.push_str(&fmt_row(r));
        out.push('\n');
    }
    let worker_commits: usize = reports.iter().map(|r| r.elements.len() + r.appends.len()).sum();
    out.push_str(&format!(
        "\nstore version: {} ({} commits by the workers; {} retries after lost races)\n",
        snap.version(),
        worker_commits,
        total_retries
    ));
    out.push_str(&format!(
        "elements present: {}/{} ({} written), each recorded with the worker that wrote it{}\n",
        total as usize - missing.len(),
        total,
        human_bytes(total_bytes),
        if misattributed.is_empty() {
            String::new()
        } else {
            format!(" — EXCEPT {}", misattributed.join(", "))
        }
    ));
    if !missing.is_empty() {
        out.push_str(&format!("MISSING: {}\n", missing.join(", ")));
    }
    if vector_problems.is_empty() {
        out.push_str(&format!(
            "points and shapes: {} points element(s) and {} shapes element(s), every one with the rows its worker wrote\n",
            args.workers, args.workers
        ));
    } else {
        out.push_str(&format!("points and shapes: PROBLEMS: {}\n", vector_problems.join("; ")));
    }
    if table_problems.is_empty() {
        out.push_str(&format!(
            "table {DEMO_TABLE}: {table_total} rows, every worker's cells present exactly once ({} appends, one per \
             labels element; region = labels element, instance_id = label id)\n",
            reports.iter().map(|r| r.appends.len()).sum::<usize>()
        ));
    } else {
        out.push_str(&format!("table {DEMO_TABLE}: PROBLEMS: {}\n", table_problems.join("; ")));
    }
    let verdict = if verify.is_clean() {
        "clean (no problems, no leftovers)".to_string()
    } else {
        format!(
            "NOT clean: {} problem(s), {} leftover(s)",
            verify.problems.len(),
            verify.leftovers.len()
        )
    };
    out.push_str(&format!("verify: {verdict}\n"));
    for p in &verify.problems {
        out.push_str(&format!("  problem: {p}\n"));
    }
    for p in &verify.leftovers {
        out.push_str(&format!("  leftover: {}\n", p.display()))
    }
    let mut failed_workers = 0;
    for (i, r) in reports.iter().enumerate() {
        let ok_exit = r.exit.map(|s| s.success()).unwrap_or(false);
        if !ok_exit || !r.done || !r.errors.is_empty() {
            failed_workers += 1;
            out.push_str(&format!(
                "worker-{i} failed ({}): {}{}\n",
                r.exit.map(|s| s.to_string()).unwrap_or_else(|| "no exit status".into()),
                r.errors.join("; "),
                if r.stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", r.stderr.trim())
                }
            ));
        }
    }
    out.push_str(&format!(
        "\nRead it with spatialdata (or zarr-python, napari-spatialdata):\n  python -c \"import spatialdata as sd; \
         print(sd.read_zarr('{root}'))\"\nSee who wrote what:  zarrtx info {root}\nSee every commit:    zarrtx log {root}",
        root = root.display()
    ));
    emit(&out);
    let ok = verify.is_clean()
        && missing.is_empty()
        && misattributed.is_empty()
        && failed_workers == 0
        && table_problems.is_empty()
        && vector_problems.is_empty();
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_names() {
        assert_eq!(image_name(3, 1), "w03_image_1");
        assert_eq!(labels_name(12, 0), "w12_labels_0");
        assert!(is_demo_name("w03_image_1"));
        assert!(is_demo_name("w120_labels_17"));
        assert!(is_demo_name(&points_name(3)));
        assert!(is_demo_name(&shapes_name(12)));
        for bad in [
            "w03_image_",
            "x03_image_1",
            "w_image_1",
            "w03_points_1",
            "w_points",
            "w03_cells_0",
            "w03_image_1a",
            DEMO_TABLE,
        ] {
            assert!(!is_demo_name(bad), "{bad}");
        }
        for i in 0..3 {
            assert!(zarrtx::ElementName::new(&image_name(i, 0)).is_ok());
        }
    }

    #[test]
    fn synthetic_data_shapes_and_content() {
        let img = synthetic_image(1, 0, 64);
        assert_eq!(img.shape(), &[3, 64, 64]);
        assert!(img.iter().any(|&v| v > 30000));
        let lab = synthetic_labels(2, 1, 130);
        assert_eq!(lab.shape(), &[130, 130]);
        let max = *lab.iter().max().unwrap();
        assert!(max >= 4, "expected several blobs, got max id {max}");
        assert_eq!(lab[[0, 0]], 0, "background in the corner");
        assert_ne!(synthetic_labels(2, 1, 130), synthetic_labels(3, 1, 130));
        let rows = cell_rows(2, 1, &lab, &synthetic_image(2, 1, 130));
        assert_eq!(rows.n_obs() as usize, label_ids(&lab).len());
        assert_eq!(rows.n_vars(), 3);
        zarrtx::table::validate(&zarrtx::ElementName::new(DEMO_TABLE).unwrap(), &rows).unwrap();
        let lab = synthetic_labels(1, 0, 512);
        let pts = synthetic_points(1, &lab);
        assert_eq!(pts.num_rows(), POINTS_PER_WORKER);
        let spec = PointsSpec { feature_key: Some("gene".into()), instance_key: Some("cell_id".into()), ..Default::default() };
        zarrtx::vector::points::validate(&zarrtx::ElementName::new("w01_points").unwrap(), std::slice::from_ref(&pts), &spec).unwrap();
        let ids = pts.column_by_name("cell_id").unwrap().as_any().downcast_ref::<arrow_array::Int32Array>().unwrap();
        let xs = pts.column_by_name("x").unwrap().as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
        let ys = pts.column_by_name("y").unwrap().as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
        for r in 0..pts.num_rows() {
            assert_eq!(lab[[ys.value(r) as usize, xs.value(r) as usize]], ids.value(r), "point {r} in its cell");
        }
        let circles = cell_circles(&lab);
        assert_eq!(circles.geometry.len(), label_ids(&lab).len());
        assert!(circles.radius.as_ref().unwrap().iter().all(|&r| r > 0.0));
        zarrtx::vector::shapes::validate(&zarrtx::ElementName::new("w01_cells").unwrap(), &circles, &ShapesSpec::default())
            .unwrap();
    }

    #[test]
    fn refuses_to_remove_foreign_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(clear_previous(&f).unwrap_err().code, 2);
        let d = dir.path().join("data");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("keep.txt"), b"x").unwrap();
        assert_eq!(clear_previous(&d).unwrap_err().code, 2);
        assert!(d.join("keep.txt").exists());
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        clear_previous(&empty).unwrap();
        assert!(!empty.exists());
        clear_previous(&dir.path().join("absent")).unwrap();
    }
}
