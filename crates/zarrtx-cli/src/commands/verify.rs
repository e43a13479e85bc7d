//! `zarrtx verify STORE [--json]`: check the store; exit 0 when clean, 1 when there are problems or leftovers.

use super::open_write;
use crate::cli_error::CliResult;
use crate::output::{emit, emit_json};
use serde_json::json;
use std::path::Path;

/// Runs `verify`.
pub fn run(store: &Path, json: bool) -> CliResult<i32> {
    // Opened writable (when the medium allows) so that verify can roll forward a view a crashed writer left
    // unpublished; it never changes committed data.
    let s = open_write(store, false).or_else(|_| super::open_read(store))?;
    let report = s.verify()?;
    let clean = report.is_clean();
    if json {
        emit_json(&json!({
            "version": report.version,
            "published_version": report.published_version,
            "clean": clean,
            "problems": report.problems,
            "leftovers": report.leftovers,
            "retained": report.retained,
        }));
    } else {
        let mut out = format!(
            "store {}: version {}, published view at version {}\n",
            store.display(),
            report.version,
            report
                .published_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "(none)".into())
        );
        let list = |out: &mut String, title: &str, items: Vec<String>| {
            if items.is_empty() {
                out.push_str(&format!("{title}: none\n"));
            } else {
                out.push_str(&format!("{title}: {}\n", items.len()));
                for i in items {
                    out.push_str(&format!("  {i}\n"));
                }
            }
        };
        list(&mut out, "problems", report.problems.clone());
        list(
            &mut out,
            "leftovers (reclaimed by `zarrtx gc`)",
            report.leftovers.iter().map(|p| p.display().to_string()).collect(),
        );
        out.push_str(&format!(
            "retained old data (kept for readers of older versions until gc): {}\n",
            report.retained.len()
        ));
        out.push_str(if clean { "verdict: clean" } else { "verdict: NOT clean" });
        emit(&out);
    }
    Ok(if clean { 0 } else { 1 })
}
