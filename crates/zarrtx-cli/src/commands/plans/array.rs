//! `zarrtx array-plan`: plan one array of a plain Zarr v3 hierarchy (an NWB file written by hdmf-zarr, a group
//! written by zarr-python) written in parts by many processes — a new array, or the existing one filled — and the
//! hierarchy side of `commit-plan` and `plans`. `write-part` reads and writes an array plan's parts exactly as an
//! element plan's.

use super::{
    chunk_shape, emit_statuses, holds_no_node, in_cli_terms, parse_dtype, region_json, region_text, state_text,
    status_json, CommitPlanArgs,
};
use crate::cli_error::{CliError, CliResult};
use crate::commands::durable;
use crate::output::{emit, emit_json, iso_time, shape_text, writer_json, writer_text};
use clap::Args;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Instant;
use zarrtx::{
    ArrayCommit, ArrayMode, ArrayPlanInfo, ArraySpec, ArrayTarget, Compression, DataType, Hierarchy, OpenOptions,
    PartLayout,
};

/// Arguments of `array-plan`.
#[derive(Debug, Args)]
pub struct ArrayPlanArgs {
    /// The Zarr v3 hierarchy's root directory (e.g. an NWB file written by hdmf-zarr).
    pub hierarchy: PathBuf,
    /// The array's path inside the hierarchy, e.g. acquisition/ElectricalSeries/data (missing parent groups are
    /// created at commit-plan).
    pub array_path: String,
    /// How many parts to split the array into (along axis 0 first, then the next; never splitting a chunk, or a
    /// shard when sharded).
    #[arg(long, value_name = "N")]
    pub parts: usize,
    /// Write into the existing array at the path, as it is (shape, dtype, chunks, codecs, fill value, attributes):
    /// the parts replace its data. Without --fill a new array is created from --shape, --dtype and the options
    /// below.
    #[arg(long, conflicts_with_all = [
        "shape", "dtype", "chunks", "shards", "compression", "fill_value", "dimension_names", "attrs",
        "create_hierarchy",
    ])]
    pub fill: bool,
    /// Shape of the new array, one entry per axis, e.g. 36000000,384.
    #[arg(long, value_delimiter = ',', num_args = 1, required_unless_present = "fill")]
    pub shape: Option<Vec<u64>>,
    /// Element type: bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32 or float64.
    #[arg(long, value_parser = parse_dtype, value_name = "DTYPE", required_unless_present = "fill")]
    pub dtype: Option<DataType>,
    /// Chunk shape (the inner chunks when sharded), one entry per axis (default: the whole array, its longest
    /// axis halved until a chunk holds at most 4 MiB).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub chunks: Option<Vec<u64>>,
    /// Shard shape (a multiple of the chunk shape): the unit parts are made of.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub shards: Option<Vec<u64>>,
    #[arg(long, value_name = "CODEC", help = crate::COMPRESSION_HELP)]
    pub compression: Option<Compression>,
    /// The fill value as Zarr v3 JSON: 0, 1.5, true, "NaN" (NaN, Infinity and -Infinity are accepted bare).
    #[arg(long, value_parser = parse_fill_value, value_name = "JSON", allow_hyphen_values = true)]
    pub fill_value: Option<Value>,
    /// Axis names, comma-separated, e.g. time,channel.
    #[arg(long, value_delimiter = ',', num_args = 1, value_name = "NAMES")]
    pub dimension_names: Option<Vec<String>>,
    /// The array's attributes as a JSON object, e.g. '{"unit": "volts"}'.
    #[arg(long, value_parser = parse_attrs, value_name = "JSON")]
    pub attrs: Option<Map<String, Value>>,
    /// Make the hierarchy (an empty root group, and the directory) when the path holds none.
    #[arg(long)]
    pub create_hierarchy: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--fill-value`: JSON, or `NaN`, `Infinity`, `-Infinity` bare (Zarr v3 spells them as JSON strings).
pub fn parse_fill_value(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if ["NaN", "Infinity", "-Infinity"].contains(&s) {
        return Ok(Value::String(s.to_string()));
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => Ok(v),
        Ok(_) => Err(format!("fill value '{s}' is not a number, true, false or a string such as \"NaN\"")),
        Err(e) => Err(format!("fill value '{s}' is not JSON ({e}): give e.g. 0, -1, 0.5, true or NaN")),
    }
}

/// Parses `--attrs`: a JSON object.
pub fn parse_attrs(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("attributes '{s}' are not a JSON object: give e.g. '{{\"unit\": \"volts\"}}'")),
        Err(e) => Err(format!("attributes '{s}' are not JSON ({e}): give e.g. '{{\"unit\": \"volts\"}}'")),
    }
}

/// An array plan as JSON (what `array-plan --json` prints; `plans --json` adds where it stands).
pub fn plan_json(info: &ArrayPlanInfo) -> Value {
    json!({
        "plan_id": info.plan_id,
        "path": info.path,
        "mode": info.mode.as_str(),
        "shape": info.shape,
        "dtype": info.data_type.zarr_name(),
        "chunks": chunk_shape(info),
        "write_unit": info.write_unit,
        "dimension_names": info.metadata.get("dimension_names").cloned().unwrap_or(Value::Null),
        "parts": info.parts.iter().map(|p| region_json(p)).collect::<Vec<_>>(),
        "created_ms": info.created_ms,
        "writer": writer_json(&info.writer),
        "metadata": info.metadata,
    })
}

fn commit_json(c: &ArrayCommit) -> Value {
    json!({"mode": c.mode.as_str(), "kept_files": c.kept_files, "consolidated": c.consolidated,
           "committed_ms": c.committed_ms})
}

/// The new array `args` describe; lengths that do not match the shape are refused naming the flag.
fn spec_of(args: &ArrayPlanArgs) -> CliResult<ArraySpec> {
    let path = &args.array_path;
    let (Some(shape), Some(dtype)) = (&args.shape, args.dtype) else {
        return Err(CliError::usage(format!(
            "array '{path}': a new array needs --shape and --dtype; pass --fill to write into the existing array"
        )));
    };
    let lengths = [("--chunks", args.chunks.as_ref().map(Vec::len)), ("--shards", args.shards.as_ref().map(Vec::len))];
    let names = ("--dimension-names", args.dimension_names.as_ref().map(Vec::len));
    for (flag, len) in lengths.into_iter().chain([names]) {
        if let Some(n) = len.filter(|&n| n != shape.len()) {
            return Err(CliError::usage(format!(
                "array '{path}': {flag} has {n} entries but --shape {} has {} axes: give one per axis",
                shape_text(shape),
                shape.len()
            )));
        }
    }
    let mut spec = ArraySpec::new(shape, dtype);
    spec.chunk_shape = args.chunks.clone();
    spec.shard_shape = args.shards.clone();
    if let Some(c) = &args.compression {
        spec.compression = c.clone();
    }
    spec.fill_value = args.fill_value.clone();
    spec.dimension_names = args.dimension_names.clone();
    spec.attributes = args.attrs.clone().unwrap_or_default();
    Ok(spec)
}

/// Runs `array-plan`.
pub fn run_array_plan(args: ArrayPlanArgs, single_writer: bool) -> CliResult<i32> {
    let target = if args.fill { ArrayTarget::Fill } else { ArrayTarget::Create(spec_of(&args)?) };
    let root = &args.hierarchy;
    if !args.create_hierarchy && holds_no_node(root) {
        return Err(CliError::usage(format!(
            "{} holds no Zarr hierarchy ({}): pass --create-hierarchy to make a new one there, or check the path",
            root.display(),
            if root.exists() { "it has no zarr.json" } else { "it does not exist" }
        )));
    }
    let options =
        OpenOptions { create: args.create_hierarchy, read_only: false, single_writer, durable: durable(), ..OpenOptions::default() };
    let h = Hierarchy::open(root, &options).map_err(in_cli_terms)?;
    let info = h.create_plan(&args.array_path, target, PartLayout::Count(args.parts)).map_err(in_cli_terms)?;
    if args.json {
        emit_json(&plan_json(&info));
        return Ok(0);
    }
    let mut out = format!(
        "plan {} to {} array {}: shape {}, {}, chunks {}, {} parts of whole write units {}\n",
        info.plan_id,
        info.mode.as_str(),
        info.path,
        shape_text(&info.shape),
        info.data_type.zarr_name(),
        shape_text(&chunk_shape(&info)),
        info.parts.len(),
        shape_text(&info.write_unit)
    );
    for (i, p) in info.parts.iter().enumerate() {
        out.push_str(&format!("  part {i}: {}\n", region_text(p)));
    }
    out.push_str(&format!(
        "next: zarrtx write-part {root} {id} PART --input DATA.npy   (PART 0..={last}, any order, any node)\n      \
         zarrtx commit-plan {root} {id}",
        root = root.display(),
        id = info.plan_id,
        last = info.parts.len().saturating_sub(1)
    ));
    emit(&out);
    Ok(0)
}

/// `commit-plan` of an array plan: publishes the array in one step.
pub fn commit(h: &Hierarchy, args: &CommitPlanArgs) -> CliResult<i32> {
    let before = h.plan_status(&args.plan_id)?;
    let plan = &before.plan;
    let started = Instant::now();
    let c = h.commit_plan(&plan.plan_id).map_err(in_cli_terms)?;
    let already = before.committed.is_some();
    if args.json {
        emit_json(&json!({
            "plan_id": plan.plan_id,
            "path": c.path,
            "mode": c.mode.as_str(),
            "already_committed": already,
            "kept_files": c.kept_files,
            "consolidated": c.consolidated,
            "committed_ms": c.committed_ms,
        }));
    } else if already {
        emit(&format!(
            "plan {} was already committed: array {} ({}) at {}; nothing to do",
            plan.plan_id,
            c.path,
            c.mode.as_str(),
            iso_time(c.committed_ms)
        ));
    } else {
        let what = match c.mode {
            ArrayMode::Create if c.consolidated => "created, and added to the root's consolidated metadata".into(),
            ArrayMode::Create => "created".into(),
            ArrayMode::Fill => format!("filled, {} other chunk file(s) kept", c.kept_files),
        };
        emit(&format!(
            "committed array {} (plan {}, {} parts): {what} in {:.2} s",
            c.path,
            plan.plan_id,
            plan.parts.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(0)
}
/// `plans` of a hierarchy: its array plans, or one plan part by part.
pub fn list(h: &Hierarchy, plan_id: Option<&str>, json: bool) -> CliResult<i32> {
    let plans = match plan_id {
        Some(id) => vec![h.plan_status(id)?],
        None => h.list_plans()?,
    };
    let committed = |c: &ArrayCommit| format!("committed at {}", iso_time(c.committed_ms));
    emit_statuses(
        &plans,
        plan_id.is_some(),
        json,
        "no array plans",
        |s| status_json(s, plan_json(&s.plan), commit_json),
        |p| {
            let text = format!(
                "{}  array {} ({})  {}/{} parts done  {}  (created {} by {})",
                p.plan.plan_id,
                p.plan.path,
                p.plan.mode.as_str(),
                p.done.len(),
                p.plan.parts.len(),
                state_text(p, committed),
                iso_time(p.plan.created_ms),
                writer_text(&p.plan.writer)
            );
            (text, p.plan.parts.as_slice())
        },
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    #[test]
    fn fill_values_and_attributes() {
        assert_eq!(parse_fill_value("-1").unwrap(), json!(-1));
        assert_eq!(parse_fill_value("0.5").unwrap(), json!(0.5));
        assert_eq!(parse_fill_value("true").unwrap(), json!(true));
        for bare in ["NaN", "Infinity", "-Infinity"] {
            assert_eq!(parse_fill_value(bare).unwrap(), json!(bare));
        }
        assert_eq!(parse_fill_value("\"NaN\"").unwrap(), json!("NaN"));
        for bad in ["[1]", "{}", "nan", ""] {
            assert!(parse_fill_value(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_attrs(r#"{"unit": "V"}"#).unwrap()["unit"], "V");
        assert!(parse_attrs("[1]").unwrap_err().contains("not a JSON object"));
        assert!(parse_attrs("{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn parses_array_plan_flags() {
        let cli = Cli::try_parse_from([
            "zarrtx", "array-plan", "f.nwb.zarr", "acquisition/es/data", "--parts", "8", "--shape", "1000,384",
            "--dtype", "int16", "--chunks", "100,384", "--shards", "500,384", "--compression", "blosc:zstd:5",
            "--fill-value", "-1", "--dimension-names", "time,channel", "--attrs", r#"{"unit": "volts"}"#,
            "--create-hierarchy",
        ])
        .unwrap();
        let Command::ArrayPlan(a) = cli.command else { panic!("wrong command") };
        let spec = spec_of(&a).unwrap();
        assert_eq!((spec.shape, spec.data_type), (vec![1000, 384], DataType::I16));
        assert_eq!((spec.chunk_shape, spec.shard_shape), (Some(vec![100, 384]), Some(vec![500, 384])));
        assert_eq!(spec.fill_value, Some(json!(-1)));
        assert_eq!(spec.dimension_names, Some(vec!["time".to_string(), "channel".to_string()]));
        assert_eq!(spec.attributes["unit"], "volts");
        assert!(a.create_hierarchy && !a.fill);
        let fill = Cli::try_parse_from(["zarrtx", "array-plan", "h", "a", "--fill", "--parts", "2"]).unwrap();
        assert!(matches!(fill.command, Command::ArrayPlan(ArrayPlanArgs { fill: true, .. })));
    }

    #[test]
    fn bad_array_plan_flags_are_usage_errors() {
        for args in [
            vec!["zarrtx", "array-plan", "h", "a", "--parts", "2"],
            vec!["zarrtx", "array-plan", "h", "a", "--parts", "2", "--shape", "4"],
            vec!["zarrtx", "array-plan", "h", "a", "--parts", "2", "--fill", "--dtype", "uint8"],
            vec!["zarrtx", "array-plan", "h", "a", "--parts", "2", "--fill", "--create-hierarchy"],
            vec!["zarrtx", "array-plan", "h", "a", "--parts", "2", "--shape", "4", "--dtype", "u9"],
            vec!["zarrtx", "array-plan", "h", "a", "--parts", "2", "--shape", "4", "--dtype", "uint8", "--attrs", "1"],
        ] {
            let e = Cli::try_parse_from(&args).unwrap_err();
            assert!(e.use_stderr(), "{args:?}");
        }
        let cli = Cli::try_parse_from(["zarrtx", "array-plan", "h", "a", "--parts", "1", "--shape", "4,4", "--dtype",
                                       "uint8", "--dimension-names", "x"]).unwrap();
        let Command::ArrayPlan(a) = cli.command else { panic!("wrong command") };
        let e = spec_of(&a).unwrap_err();
        assert!(e.message.contains("array 'a'") && e.message.contains("--dimension-names has 1 entries"), "{e}");
    }
}
