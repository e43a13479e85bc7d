//! The demo's report: a table of what each worker wrote and how fast, then what the checks found, which workers
//! failed, and how to read the store.

use super::args::DemoArgs;
use super::data::POINTS_PER_WORKER;
use super::names::DEMO_TABLE;
use super::processes::WorkerReport;
use super::verify::Findings;
use crate::output::human_bytes;
use std::path::Path;

const HEADER: [&str; 10] =
    ["worker", "pid", "elements", "MiB", "seconds", "elements/s", "MiB/s", "retries", "table rows", "versions"];

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The writes a worker had to retry after losing a race.
fn retries(r: &WorkerReport) -> u32 {
    r.elements.iter().map(|e| e.2.saturating_sub(1)).sum()
}

/// What the demo is about to do, printed before the workers start.
pub fn intro(args: &DemoArgs, root: &Path) -> String {
    format!(
        "zarrtx demo: {} worker processes each add {} image(s) (3×{}×{} uint16, 2 levels) and {} labels element(s) \
         (int32), one points element (up to {POINTS_PER_WORKER} transcripts in its cells) and one shapes element (a \
         circle per cell) to {} at the same time, and append one row per cell to the shared table '{DEMO_TABLE}'",
        args.workers,
        args.per_worker,
        args.size,
        args.size,
        args.per_worker,
        root.display()
    )
}

/// The report's text: the table, the findings, the failed workers, and how to read the store at `root`.
pub fn render(args: &DemoArgs, root: &Path, reports: &[WorkerReport], f: &Findings, wall_seconds: f64) -> String {
    let mut out = format_table(&table_rows(reports, f, wall_seconds));
    out.push_str(&findings_text(args, reports, f));
    out.push_str(&failures_text(reports));
    out.push_str(&format!(
        "\nRead it with spatialdata (or zarr-python, napari-spatialdata):\n  python -c \"import spatialdata as sd; \
         print(sd.read_zarr('{root}'))\"\nSee who wrote what:  zarrtx info {root}\nSee every commit:    zarrtx log {root}",
        root = root.display()
    ));
    out
}

/// One row per worker, then the totals over the wall-clock time.
fn table_rows(reports: &[WorkerReport], f: &Findings, wall_seconds: f64) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let n = r.elements.len();
        let mut versions: Vec<String> = r.elements.iter().map(|e| e.1.to_string()).collect();
        if versions.len() > 8 {
            let more = versions.len() - 8;
            versions.truncate(8);
            versions.push(format!("… +{more}"));
        }
        let secs = r.seconds.max(1e-9);
        rows.push(vec![
            if r.label.is_empty() { format!("worker-{i}") } else { r.label.clone() },
            r.pid.to_string(),
            n.to_string(),
            format!("{:.1}", mib(r.bytes)),
            format!("{:.2}", r.seconds),
            format!("{:.1}", n as f64 / secs),
            format!("{:.1}", mib(r.bytes) / secs),
            retries(r).to_string(),
            f.rows_per_worker[i].to_string(),
            versions.join(","),
        ]);
    }
    let total_elements: usize = reports.iter().map(|r| r.elements.len()).sum();
    let total_bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let total_retries: u32 = reports.iter().map(retries).sum();
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
        f.table_total.to_string(),
        String::new(),
    ]);
    rows
}

/// The table with its header, columns padded to their widest cell, a rule above the last (totals) row.
fn format_table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([HEADER[c].len()]).max().unwrap_or(0))
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
    let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1));
    let mut out = String::new();
    out.push('\n');
    out.push_str(&fmt_row(&HEADER.map(String::from)));
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for (n, r) in rows.iter().enumerate() {
        if n + 1 == rows.len() {
            out.push_str(&rule);
            out.push('\n');
        }
        out.push_str(&fmt_row(r));
        out.push('\n');
    }
    out
}

/// What the checks found: commits, elements, points and shapes, the table, and the store's verification.
fn findings_text(args: &DemoArgs, reports: &[WorkerReport], f: &Findings) -> String {
    let total = args.total_elements();
    let total_bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let worker_commits: usize = reports.iter().map(|r| r.elements.len() + r.appends.len()).sum();
    let mut out = format!(
        "\nstore version: {} ({} commits by the workers; {} retries after lost races)\n",
        f.version,
        worker_commits,
        reports.iter().map(retries).sum::<u32>()
    );
    out.push_str(&format!(
        "elements present: {}/{} ({} written), each recorded with the worker that wrote it{}\n",
        total as usize - f.missing.len(),
        total,
        human_bytes(total_bytes),
        if f.misattributed.is_empty() { String::new() } else { format!(" — EXCEPT {}", f.misattributed.join(", ")) }
    ));
    if !f.missing.is_empty() {
        out.push_str(&format!("MISSING: {}\n", f.missing.join(", ")));
    }
    if f.vector_problems.is_empty() {
        out.push_str(&format!(
            "points and shapes: {} points element(s) and {} shapes element(s), every one with the rows its worker wrote\n",
            args.workers, args.workers
        ));
    } else {
        out.push_str(&format!("points and shapes: PROBLEMS: {}\n", f.vector_problems.join("; ")));
    }
    if f.table_problems.is_empty() {
        out.push_str(&format!(
            "table {DEMO_TABLE}: {} rows, every worker's cells present exactly once ({} appends, one per \
             labels element; region = labels element, instance_id = label id)\n",
            f.table_total,
            reports.iter().map(|r| r.appends.len()).sum::<usize>()
        ));
    } else {
        out.push_str(&format!("table {DEMO_TABLE}: PROBLEMS: {}\n", f.table_problems.join("; ")));
    }
    out.push_str(&verify_text(f));
    out
}

/// The store's verification: clean, or its problems and leftovers.
fn verify_text(f: &Findings) -> String {
    let v = &f.verify;
    let verdict = if v.is_clean() {
        "clean (no problems, no leftovers)".to_string()
    } else {
        format!("NOT clean: {} problem(s), {} leftover(s)", v.problems.len(), v.leftovers.len())
    };
    let mut out = format!("verify: {verdict}\n");
    for p in &v.problems {
        out.push_str(&format!("  problem: {p}\n"));
    }
    for p in &v.leftovers {
        out.push_str(&format!("  leftover: {}\n", p.display()))
    }
    out
}

/// One line per worker that failed: its exit status, the errors it reported and its stderr.
fn failures_text(reports: &[WorkerReport]) -> String {
    let mut out = String::new();
    for (i, r) in reports.iter().enumerate().filter(|(_, r)| !r.succeeded()) {
        out.push_str(&format!(
            "worker-{i} failed ({}): {}{}\n",
            r.exit.map(|s| s.to_string()).unwrap_or_else(|| "no exit status".into()),
            r.errors.join("; "),
            if r.stderr.trim().is_empty() { String::new() } else { format!(" [{}]", r.stderr.trim()) }
        ));
    }
    out
}
