//! The parent's side of the worker processes: it re-executes its own binary (`std::env::current_exe()`) with the
//! hidden `demo-worker` subcommand and `ZARRTX_WRITER_LABEL=worker-<i>`, tells every worker `go` at the same moment,
//! and gathers what each reports (one JSON line per step on stdout, then its exit status and stderr).

use super::args::DemoArgs;
use crate::cli_error::{CliError, CliResult};
use crate::progress_bar::count_bar;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

/// What one worker reported.
#[derive(Default)]
pub struct WorkerReport {
    /// Its process id.
    pub pid: u32,
    /// Its writer label.
    pub label: String,
    /// The elements it added: (name, version, attempts).
    pub elements: Vec<(String, u64, u32)>,
    /// The versions of its table appends.
    pub appends: Vec<u64>,
    /// Bytes it wrote.
    pub bytes: u64,
    /// Its own time from `go` to done.
    pub seconds: f64,
    /// It reported being done.
    pub done: bool,
    /// The errors it reported.
    pub errors: Vec<String>,
    /// What it wrote to stderr.
    pub stderr: String,
    /// How it exited.
    pub exit: Option<std::process::ExitStatus>,
}

impl WorkerReport {
    /// True when the worker exited successfully, said it was done and reported no error.
    pub fn succeeded(&self) -> bool {
        self.exit.map(|s| s.success()).unwrap_or(false) && self.done && self.errors.is_empty()
    }

    /// Takes in one line the worker printed; returns true for an element added.
    fn record(&mut self, v: &Value) -> bool {
        match v["event"].as_str() {
            Some("added") => {
                self.elements.push((
                    v["name"].as_str().unwrap_or_default().to_string(),
                    v["version"].as_u64().unwrap_or(0),
                    v["attempts"].as_u64().unwrap_or(1) as u32,
                ));
                return true;
            }
            Some("appended") => self.appends.push(v["version"].as_u64().unwrap_or(0)),
            Some("done") => {
                self.done = true;
                self.pid = v["pid"].as_u64().unwrap_or(0) as u32;
                self.label = v["label"].as_str().unwrap_or_default().to_string();
                self.bytes = v["bytes"].as_u64().unwrap_or(0);
                self.seconds = v["seconds"].as_f64().unwrap_or(0.0);
            }
            Some("error") => self.errors.push(format!(
                "{}: {}",
                v["name"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default()
            )),
            _ => {}
        }
        false
    }
}

/// This process's own binary, which the workers run.
pub fn own_binary() -> CliResult<PathBuf> {
    std::env::current_exe()
        .map_err(|e| CliError::failure(format!("cannot locate the zarrtx binary to start workers: {e}")))
}

/// Starts every worker (`exe demo-worker`) on the store at `root`; they wait for `go` so that all of them write at
/// once. A worker that cannot start stops the ones already started.
pub fn start(args: &DemoArgs, exe: &Path, root: &Path) -> CliResult<Vec<Child>> {
    let mut children = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let child = Command::new(exe)
            .arg("demo-worker")
            .arg("--store")
            .arg(root)
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
    Ok(children)
}

/// One line a worker printed on stdout, `None` at the end of its output: `(worker, line)`.
type OutputLine = (usize, Option<String>);

/// Threads reading the workers' output: stdout line by line into one channel, stderr whole.
fn read_output(children: &mut [Child]) -> (mpsc::Receiver<OutputLine>, Vec<JoinHandle<String>>) {
    let (tx, rx) = mpsc::channel::<OutputLine>();
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
    (rx, stderr_threads)
}

/// Tells the started workers `go`, follows them (a progress bar of the `total` elements) until all have exited, and
/// returns what each reported with the wall-clock seconds from `go` to the last output.
pub fn run(mut children: Vec<Child>, total: u64) -> (Vec<WorkerReport>, f64) {
    let (rx, stderr_threads) = read_output(&mut children);
    let bar = count_bar(total, "elements written");
    let wall = Instant::now();
    for child in children.iter_mut() {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"go\n");
        }
    }
    let mut reports: Vec<WorkerReport> = (0..children.len()).map(|_| WorkerReport::default()).collect();
    let mut open_streams = children.len();
    while open_streams > 0 {
        let Ok((i, msg)) = rx.recv() else { break };
        let Some(text) = msg else {
            open_streams -= 1;
            continue;
        };
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            if reports[i].record(&v) {
                bar.inc(1);
            }
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
    (reports, wall_seconds)
}
