//! One demo worker process (the hidden `demo-worker` subcommand): waits for `go` on stdin, adds its images and
//! labels elements (appending each labels element's cells to the shared table), then one points and one shapes
//! element, and reports every step as one JSON line on stdout, which the parent parses ([`super::processes`]).

use super::args::WorkerArgs;
use super::data::{cell_circles, cell_rows, raster_element, synthetic_image, synthetic_labels, synthetic_points};
use super::names::{image_name, labels_name, points_name, shapes_name, DEMO_TABLE};
use crate::cli_error::{CliError, CliResult};
use serde_json::{json, Value};
use std::io::Write;
use std::time::Instant;
use zarrtx::{AddOptions, CommitInfo, OpenOptions, PointsSpec, RasterKind, RasterSource, ShapesSpec, Store, WriterInfo};

fn line(v: Value) {
    // Workers write one JSON object per line; the parent parses them.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Reports that writing `name` failed, and returns the error to exit with.
fn fail(index: usize, name: &str, e: zarrtx::Error) -> CliError {
    line(json!({"event": "error", "worker": index, "name": name, "message": e.to_string()}));
    e.into()
}

/// One worker writing into the store, with what it wrote so far (for its final `done` line).
struct Worker<'a> {
    args: &'a WorkerArgs,
    store: Store,
    bytes: u64,
    elements: usize,
    attempts: u32,
    table_rows: usize,
}

impl Worker<'_> {
    /// Counts and reports one element added (`kind`: its group, e.g. `images`).
    fn added(&mut self, name: &str, kind: &str, c: &CommitInfo, bytes: u64, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        self.bytes += bytes;
        self.elements += 1;
        self.attempts += c.attempts;
        line(json!({
            "event": "added", "worker": self.args.index, "name": name, "type": kind,
            "version": c.version, "attempts": c.attempts, "bytes": bytes, "seconds": seconds,
        }));
    }

    /// Adds the `k`-th image, then the `k`-th labels element.
    fn add_rasters(&mut self, k: usize) -> CliResult<()> {
        let index = self.args.index;
        let jobs = [(image_name(index, k), RasterKind::Image, "images"), (labels_name(index, k), RasterKind::Labels, "labels")];
        for (name, kind, group) in jobs {
            let (spec, array) = raster_element(kind, index, k, self.args.size);
            let bytes = array.shape().iter().product::<u64>() * array.data_type().size() as u64;
            let t0 = Instant::now();
            match self.store.add_raster(&name, &spec, RasterSource::InMemory(array), &AddOptions::default()) {
                Ok(c) => self.added(&name, group, &c, bytes, t0),
                Err(e) => return Err(fail(index, &name, e)),
            }
        }
        Ok(())
    }

    /// Appends the cells of the `k`-th labels element to the one shared table (the first appender creates it).
    fn append_cells(&mut self, k: usize) -> CliResult<()> {
        let (index, size) = (self.args.index, self.args.size);
        let rows = cell_rows(index, k, &synthetic_labels(index, k, size), &synthetic_image(index, k, size));
        let t0 = Instant::now();
        match self.store.append(DEMO_TABLE, &rows) {
            Ok(c) => {
                self.table_rows += rows.n_obs() as usize;
                line(json!({
                    "event": "appended", "worker": index, "region": labels_name(index, k),
                    "rows": rows.n_obs(), "version": c.version, "seconds": t0.elapsed().as_secs_f64(),
                }));
                Ok(())
            }
            Err(e) => Err(fail(index, DEMO_TABLE, e)),
        }
    }

    /// Adds one points and one shapes element, both over the cells of the worker's first labels element.
    fn add_vectors(&mut self) -> CliResult<()> {
        let index = self.args.index;
        let labels0 = synthetic_labels(index, 0, self.args.size);
        let points = synthetic_points(index, &labels0);
        let circles = cell_circles(&labels0);
        let jobs: [(String, &str, u64); 2] = [
            (points_name(index), "points", points.num_rows() as u64 * 24),
            (shapes_name(index), "shapes", circles.geometry.len() as u64 * 24),
        ];
        for (name, kind, bytes) in jobs {
            let t0 = Instant::now();
            let result = if kind == "points" {
                let spec = PointsSpec {
                    feature_key: Some("gene".into()),
                    instance_key: Some("cell_id".into()),
                    ..PointsSpec::default()
                };
                self.store.add_points(&name, std::slice::from_ref(&points), &spec, &AddOptions::default())
            } else {
                self.store.add_shapes(&name, &circles, &ShapesSpec::default(), &AddOptions::default())
            };
            match result {
                Ok(c) => self.added(&name, kind, &c, bytes, t0),
                Err(e) => return Err(fail(index, &name, e)),
            }
        }
        Ok(())
    }
}

/// Runs one demo worker (the hidden `demo-worker` subcommand).
pub fn worker(args: WorkerArgs) -> CliResult<i32> {
    if !args.no_wait {
        let mut go = String::new();
        let _ = std::io::stdin().read_line(&mut go);
    }
    let me = WriterInfo::current();
    let started = Instant::now();
    let store = Store::open(&args.store, &OpenOptions { create: false, ..OpenOptions::default() })
        .map_err(|e| fail(args.index, "", e))?;
    let mut w = Worker { args: &args, store, bytes: 0, elements: 0, attempts: 0, table_rows: 0 };
    for k in 0..args.per_worker {
        w.add_rasters(k)?;
        w.append_cells(k)?;
    }
    w.add_vectors()?;
    line(json!({
        "event": "done", "worker": args.index, "label": me.label, "pid": me.pid, "host": me.host,
        "elements": w.elements, "bytes": w.bytes, "attempts": w.attempts, "table_rows": w.table_rows,
        "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(0)
}
