//! `zarrtx log STORE [--json]`: the commit history, oldest first.

use super::open_read;
use crate::cli_error::CliResult;
use crate::output::{emit, emit_json, iso_time, writer_json, writer_text};
use serde_json::{json, Value};
use std::path::Path;

/// Runs `log`. `--json` prints an array of `{"version", "txn", "timestamp_ms", "time", "writer", "summary"}`.
pub fn run(store: &Path, json: bool) -> CliResult<i32> {
    let s = open_read(store)?;
    let history = s.history()?;
    if json {
        let commits: Vec<Value> = history
            .iter()
            .map(|c| {
                json!({
                    "version": c.version,
                    "txn": c.txn,
                    "timestamp_ms": c.timestamp_ms,
                    "time": iso_time(c.timestamp_ms),
                    "writer": writer_json(&c.writer),
                    "summary": c.summary,
                })
            })
            .collect();
        emit_json(&Value::Array(commits));
    } else {
        let rows: Vec<(String, String, String, String)> = history
            .iter()
            .map(|c| {
                (
                    format!("v{}", c.version),
                    iso_time(c.timestamp_ms),
                    writer_text(&c.writer),
                    c.summary.join("; "),
                )
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
        let text: Vec<String> = rows
            .iter()
            .map(|(v, t, w, s)| format!("{v:<w0$}  {t}  {w:<w2$}  {s}"))
            .collect();
        emit(&text.join("\n"));
    }
    Ok(0)
}
