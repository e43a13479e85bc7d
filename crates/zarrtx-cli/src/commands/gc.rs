//! `zarrtx gc STORE [--grace-seconds S] [--json]`: reclaim leftovers and old data older than the grace period.

use super::open_write;
use crate::cli_error::CliResult;
use crate::output::{emit, emit_json, human_bytes};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Runs `gc`.
pub fn run(store: &Path, grace_seconds: u64, json: bool, single_writer: bool) -> CliResult<i32> {
    let s = open_write(store, single_writer)?;
    let report = s.gc(Duration::from_secs(grace_seconds))?;
    if json {
        emit_json(&json!({
            "removed": report.removed,
            "removed_count": report.removed.len(),
            "bytes_freed": report.bytes_freed,
            "published_version": report.published_version,
        }));
    } else {
        let mut out = format!(
            "removed {} path(s), freed {} (grace {grace_seconds} s); published version {}",
            report.removed.len(),
            human_bytes(report.bytes_freed),
            report.published_version
        );
        for p in &report.removed {
            out.push_str(&format!("\n  {}", p.display()));
        }
        emit(&out);
    }
    Ok(0)
}
