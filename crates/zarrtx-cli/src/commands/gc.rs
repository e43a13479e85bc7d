//! `zarrtx gc STORE|HIERARCHY [--grace-seconds S] [--json]`: reclaim leftovers and old data older than the grace
//! period (of a Zarr v3 hierarchy: its abandoned and committed array plans).

use super::plans::PlanTarget;
use crate::cli_error::CliResult;
use crate::output::{emit, emit_json, human_bytes};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs `gc`.
pub fn run(store: &Path, grace_seconds: u64, json: bool, single_writer: bool) -> CliResult<i32> {
    let grace = Duration::from_secs(grace_seconds);
    let (removed, bytes_freed, published_version) = match PlanTarget::open_write(store, single_writer)? {
        PlanTarget::Store(s) => {
            let report = s.gc(grace)?;
            (report.removed, report.bytes_freed, Some(report.published_version))
        }
        PlanTarget::Hierarchy(h) => {
            let removed = h.gc(grace)?;
            let bytes = removed.iter().map(|(_, b)| b).sum();
            (removed.into_iter().map(|(key, _)| h.root().join(key)).collect::<Vec<PathBuf>>(), bytes, None)
        }
    };
    if json {
        emit_json(&json!({
            "removed": removed,
            "removed_count": removed.len(),
            "bytes_freed": bytes_freed,
            "published_version": published_version,
        }));
    } else {
        let mut out = format!(
            "removed {} path(s), freed {} (grace {grace_seconds} s)",
            removed.len(),
            human_bytes(bytes_freed),
        );
        if let Some(v) = published_version {
            out.push_str(&format!("; published version {v}"));
        }
        for p in &removed {
            out.push_str(&format!("\n  {}", p.display()));
        }
        emit(&out);
    }
    Ok(0)
}
