//! The plan commands: a plan writes one image or labels element of a store (`write-plan`, [`element`]) or one
//! array of a plain Zarr v3 hierarchy (`array-plan`, [`array`]) in parts, one process or cluster job per part
//! (`write-part`, [`part`]); `commit-plan` and `plans` work on either kind (dispatched in `main.rs` by
//! [`PlanTarget`]).
//!
//! This module holds what the three share; they depend on it and never on each other: which kind of target a path
//! is ([`PlanTarget`]: a store or a hierarchy, told apart by the store's first log entry), the `commit-plan`
//! arguments, `--dtype` parsing, regions as text and JSON, the chunk shape input blocks are aligned to, and how
//! `plans` shows where plans stand.

pub mod array;
pub mod element;
pub mod part;

use super::{durable, open_read, open_write};
use crate::cli_error::{CliError, CliResult};
use crate::output::{emit, emit_json, writer_json, writer_text};
use clap::Args;
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use zarrtx::raster::DEFAULT_MEMORY_LIMIT;
use zarrtx::{ArrayPlanInfo, DataType, Hierarchy, OpenOptions, PlanStatus, Store};

/// A path plans live in, opened.
pub enum PlanTarget {
    /// A zarrtx SpatialData store: its plans write image and labels elements.
    Store(Store),
    /// A plain Zarr v3 hierarchy: its plans write one array each.
    Hierarchy(Hierarchy),
}

/// True when `path` holds a zarrtx SpatialData store (its log has a first entry).
pub fn is_store(path: &Path) -> bool {
    path.join(zarrtx::layout::log_key(0)).is_file()
}

impl PlanTarget {
    /// Opens `path` for writing parts and commits.
    pub fn open_write(path: &Path, single_writer: bool) -> CliResult<PlanTarget> {
        if is_store(path) {
            return Ok(PlanTarget::Store(open_write(path, single_writer)?));
        }
        let options = OpenOptions { create: false, read_only: false, single_writer, durable: durable(), ..OpenOptions::default() };
        open_hierarchy(path, &options).map(PlanTarget::Hierarchy)
    }

    /// Opens `path` for reading plans only.
    pub fn open_read(path: &Path) -> CliResult<PlanTarget> {
        if is_store(path) {
            return Ok(PlanTarget::Store(open_read(path)?));
        }
        let options = OpenOptions { create: false, read_only: true, ..OpenOptions::default() };
        open_hierarchy(path, &options).map(PlanTarget::Hierarchy)
    }
}

/// Opens the hierarchy at `path`; a path that holds neither a store nor a hierarchy gets a message saying both
/// were looked for.
pub fn open_hierarchy(path: &Path, options: &OpenOptions) -> CliResult<Hierarchy> {
    if !options.create && holds_no_node(path) {
        return Err(CliError::usage(format!(
            "{} is neither a zarrtx store nor a Zarr v3 hierarchy ({}): give the store or hierarchy the plan was \
             made in (`zarrtx init` creates a store; `zarrtx array-plan --create-hierarchy` a hierarchy)",
            path.display(),
            if path.exists() { "it has no zarr.json" } else { "it does not exist" }
        )));
    }
    Hierarchy::open(path, options).map_err(in_cli_terms)
}

/// Names of the engine's API in the fixes its errors suggest, and the command-line flags that do the same.
const API_TERMS: [(&str, &str); 3] = [
    ("ArrayTarget::Fill", "--fill"),
    ("ArrayTarget::Create", "array-plan without --fill"),
    ("Store::create_plan (`zarrtx write-plan`)", "`zarrtx write-plan`"),
];

/// An engine error of an array plan or a hierarchy as the CLI shows it: the fix it suggests in flags, not API names.
pub fn in_cli_terms(e: zarrtx::Error) -> CliError {
    let mut err = CliError::from(e);
    for (api, flag) in API_TERMS {
        err.message = err.message.replace(api, flag);
    }
    err
}

/// True when `path` has no Zarr metadata at its root at all (v3 or v2), so it is no hierarchy of any kind.
pub fn holds_no_node(path: &Path) -> bool {
    ["zarr.json", ".zgroup", ".zarray"].iter().all(|f| !path.join(f).exists())
}

/// Arguments of `commit-plan`.
#[derive(Debug, Args)]
pub struct CommitPlanArgs {
    /// The store (write-plan) or Zarr hierarchy (array-plan) directory.
    pub store: PathBuf,
    /// The plan id printed by `write-plan` or `array-plan`.
    pub plan_id: String,
    /// In-flight memory limit while computing the pyramid, in MiB (element plans; an array has no pyramid).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_LIMIT >> 20)]
    pub memory_limit_mib: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--dtype` (Zarr names, as numpy spells them).
pub fn parse_dtype(s: &str) -> Result<DataType, String> {
    DataType::from_zarr_name(s.trim()).ok_or_else(|| {
        format!(
            "unknown dtype '{s}': use bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32 or \
             float64"
        )
    })
}

/// `[a..b, c..d]` as JSON `[[a, b], [c, d]]`.
pub fn region_json(region: &[Range<u64>]) -> Value {
    Value::Array(region.iter().map(|r| json!([r.start, r.end])).collect())
}

/// `[a..b, c..d]` as text.
pub fn region_text(region: &[Range<u64>]) -> String {
    let parts: Vec<String> = region.iter().map(|r| format!("{}..{}", r.start, r.end)).collect();
    format!("[{}]", parts.join(", "))
}

/// The chunk shape of a plan's array that input blocks are aligned to: the inner chunks when it is sharded, else
/// the chunk grid (the plan's write unit).
pub fn chunk_shape(info: &ArrayPlanInfo) -> Vec<u64> {
    let first = info.metadata.pointer("/codecs/0");
    let inner = first
        .filter(|c| c.get("name").and_then(Value::as_str) == Some("sharding_indexed"))
        .and_then(|c| c.pointer("/configuration/chunk_shape"))
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
        .filter(|c| c.len() == info.shape.len() && c.iter().all(|&n| n > 0));
    inner.unwrap_or_else(|| info.write_unit.clone())
}

/// Where a plan stands, as text; `committed` describes its commit.
pub fn state_text<P, C>(s: &PlanStatus<P, C>, committed: impl Fn(&C) -> String) -> String {
    match (&s.committed, s.is_complete()) {
        (Some(c), _) => committed(c),
        (None, true) => "complete, ready to commit".into(),
        (None, false) if s.started.is_empty() => format!("open, {} part(s) to write", s.missing.len()),
        (None, false) => format!(
            "open, {} part(s) to write ({} started: running, or interrupted and to be run again)",
            s.missing.len(),
            s.started.len()
        ),
    }
}

/// `plan` (a plan's JSON) with where the plan stands added: `done`, `started`, `missing`, `complete` and
/// `committed` (`committed` describes the commit; null while there is none).
pub fn status_json<P, C>(s: &PlanStatus<P, C>, mut plan: Value, committed: impl Fn(&C) -> Value) -> Value {
    if let Some(obj) = plan.as_object_mut() {
        obj.insert(
            "done".into(),
            Value::Array(
                s.done
                    .iter()
                    .map(|d| {
                        json!({"part": d.part, "chunks": d.chunks, "bytes": d.bytes, "elapsed_ms": d.elapsed_ms,
                               "finished_ms": d.finished_ms, "writer": writer_json(&d.writer)})
                    })
                    .collect(),
            ),
        );
        obj.insert("started".into(), json!(s.started));
        obj.insert("missing".into(), json!(s.missing));
        obj.insert("complete".into(), json!(s.is_complete()));
        obj.insert("committed".into(), s.committed.as_ref().map(committed).unwrap_or(Value::Null));
    }
    plan
}

/// One line per part of `parts` (the plan's regions): its region and whether it is done, started or to write.
fn part_lines<P, C>(s: &PlanStatus<P, C>, parts: &[Vec<Range<u64>>]) -> String {
    let mut out = String::new();
    for (i, region) in parts.iter().enumerate() {
        let state = match s.done.iter().find(|d| d.part == i) {
            Some(d) => format!("done ({} chunks, by {})", d.chunks, writer_text(&d.writer)),
            None if s.started.contains(&i) => "started (running, or interrupted)".into(),
            None => "to write".into(),
        };
        out.push_str(&format!("  part {i} {}: {state}\n", region_text(region)));
    }
    out
}

/// Prints `statuses` as `plans` does: with `one` (a plan id was given), the single plan's JSON object, else a JSON
/// array; `empty` is the text when there are no plans, `line` the text line of one plan (parts follow with `one`).
pub fn emit_statuses<P, C>(
    statuses: &[PlanStatus<P, C>],
    one: bool,
    json: bool,
    empty: &str,
    to_json: impl Fn(&PlanStatus<P, C>) -> Value,
    line: impl Fn(&PlanStatus<P, C>) -> (String, &[Vec<Range<u64>>]),
) {
    if json {
        let list: Vec<Value> = statuses.iter().map(to_json).collect();
        emit_json(&if one { list.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(list) });
        return;
    }
    if statuses.is_empty() {
        emit(empty);
        return;
    }
    let mut out = String::new();
    for s in statuses {
        let (text, parts) = line(s);
        out.push_str(&text);
        out.push('\n');
        if one {
            out.push_str(&part_lines(s, parts));
        }
    }
    emit(out.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;
    use zarrtx::ArrayMode;

    #[test]
    fn input_blocks_follow_the_inner_chunks_of_a_sharded_array() {
        let mut info = ArrayPlanInfo {
            plan_id: "p".into(),
            path: "a".into(),
            mode: ArrayMode::Fill,
            metadata: json!({"codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [25, 10]}}]}),
            shape: vec![300, 10],
            data_type: DataType::U16,
            write_unit: vec![100, 10],
            parts: vec![],
            staging: String::new(),
            created_ms: 0,
            writer: zarrtx::WriterInfo { host: "h".into(), pid: 1, label: None },
        };
        assert_eq!(chunk_shape(&info), vec![25, 10]);
        info.metadata = json!({"codecs": [{"name": "bytes"}]});
        assert_eq!(chunk_shape(&info), vec![100, 10]);
    }
}
