//! `zarrtx write-plan` and `zarrtx plans`: plan one image or labels element written in parts by many processes
//! (one cluster job per part), and show where the plans stand (a store's element plans here, a hierarchy's array
//! plans through [`super::array_plan`]). `write-part` and `commit-plan` are in [`super::plan_part`].

use super::open_write;
use super::plan_target::PlanTarget;
use crate::cli_error::{CliError, CliResult};
use crate::input::Dims;
use crate::output::{emit, emit_json, iso_time, shape_text, writer_json, writer_text};
use crate::transform_arg::{collect_transforms, parse_transform_arg, TransformArg};
use clap::Args;
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use zarrtx::{
    Compression, DataType, ElementName, PartLayout, PlanCommit, PlanInfo, PlanStatus, Pyramid, RasterKind, RasterSpec,
};

/// Arguments of `write-plan`.
#[derive(Debug, Args)]
pub struct WritePlanArgs {
    /// The store directory.
    pub store: PathBuf,
    /// The element's name (letters, digits, '_', '-', '.').
    pub name: String,
    /// Shape of the full-resolution array, one entry per axis, e.g. 3,40000,40000.
    #[arg(long, value_delimiter = ',', num_args = 1, required = true)]
    pub shape: Vec<u64>,
    /// Element type: bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32 or float64.
    #[arg(long, value_parser = parse_dtype, value_name = "DTYPE")]
    pub dtype: DataType,
    /// Axes: c,y,x or c,z,y,x for images; y,x or z,y,x with --labels.
    #[arg(long, value_parser = parse_dims, value_name = "AXES")]
    pub dims: Dims,
    /// How many parts to split the array into (along the first spatial axis, then the next; never splitting a
    /// chunk, or a shard when sharding).
    #[arg(long, value_name = "N")]
    pub parts: usize,
    /// Write a labels element (integer dtype, no channel axis) instead of an image.
    #[arg(long)]
    pub labels: bool,
    /// Channel names, comma-separated (images only).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub channels: Option<Vec<String>>,
    /// Chunk shape, one entry per axis, e.g. 1,1024,1024.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub chunks: Option<Vec<u64>>,
    /// Shard shape (a multiple of the chunk shape): the unit parts are made of.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub shards: Option<Vec<u64>>,
    /// Chunk compression: none, zstd, zstd:LEVEL, blosc-CNAME[:LEVEL] (CNAME lz4, zstd, ...), blosc or
    /// blosc:CNAME:LEVEL (default zstd).
    #[arg(long, value_name = "CODEC")]
    pub compression: Option<Compression>,
    /// Pyramid downscale factors, one per extra level (computed at commit-plan), e.g. 2,2 for three levels.
    #[arg(long, alias = "scales", value_delimiter = ',', num_args = 1)]
    pub scale_factors: Option<Vec<u64>>,
    /// Coordinate transformation CS=SPEC (repeatable), as for add-image.
    #[arg(long = "transform", value_parser = parse_transform_arg, value_name = "CS=SPEC")]
    pub transforms: Vec<TransformArg>,
    /// Replace the element of this name, if there is one, when the plan is committed (atomically: readers see the
    /// old element until then).
    #[arg(long)]
    pub overwrite: bool,
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

/// Parses `--dims`: `c,y,x`, `c,z,y,x`, `y,x` or `z,y,x` (commas optional).
pub fn parse_dims(s: &str) -> Result<Dims, String> {
    let joined: String = s.split(',').map(str::trim).collect();
    match joined.as_str() {
        "cyx" => Ok(Dims::Cyx),
        "czyx" => Ok(Dims::Czyx),
        "yx" => Ok(Dims::Yx),
        "zyx" => Ok(Dims::Zyx),
        _ => Err(format!("unknown axes '{s}': use c,y,x or c,z,y,x (images), y,x or z,y,x (labels)")),
    }
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

fn plan_json(info: &PlanInfo) -> Value {
    json!({
        "plan_id": info.plan_id,
        "name": info.name,
        "element_type": info.element_type.group(),
        "shape": info.shape,
        "dtype": info.data_type.zarr_name(),
        "dims": info.spec.dims,
        "write_unit": info.write_unit,
        "parts": info.parts.iter().map(|p| region_json(p)).collect::<Vec<_>>(),
        "created_ms": info.created_ms,
        "created_version": info.created_version,
        "overwrite": info.overwrite,
        "writer": writer_json(&info.writer),
    })
}

/// Runs `write-plan`.
pub fn run_write_plan(args: WritePlanArgs, single_writer: bool) -> CliResult<i32> {
    let name = ElementName::new(&args.name)?;
    let kind = if args.labels { RasterKind::Labels } else { RasterKind::Image };
    if args.dims.has_channel() == args.labels {
        return Err(CliError::usage(format!(
            "element '{name}': --dims {} is for {}; {}",
            args.dims.axes().join(","),
            if args.labels { "images" } else { "labels" },
            if args.labels {
                "labels take --dims y,x or z,y,x (drop --labels to write an image)"
            } else {
                "pass --labels to write labels, or give an image --dims c,y,x or c,z,y,x"
            }
        )));
    }
    if args.shape.len() != args.dims.ndim() {
        return Err(CliError::usage(format!(
            "element '{name}': --shape {} has {} entries but --dims {} has {} axes: give one size per axis",
            shape_text(&args.shape),
            args.shape.len(),
            args.dims.axes().join(","),
            args.dims.ndim()
        )));
    }
    if kind == RasterKind::Labels && args.channels.is_some() {
        return Err(CliError::usage(format!("element '{name}': --channels is for images; labels have no channel axis")));
    }
    let mut spec = RasterSpec::new(kind, args.dims.axes());
    spec.channel_names = args.channels.clone();
    spec.chunk_shape = args.chunks.clone();
    spec.shard_shape = args.shards.clone();
    if let Some(c) = args.compression.clone() {
        spec.compression = c;
    }
    spec.pyramid = match &args.scale_factors {
        Some(f) if !f.is_empty() => Pyramid::Computed(f.clone()),
        _ => Pyramid::Single,
    };
    spec.transformations = collect_transforms(&args.transforms, args.dims.axes())?;
    let store = open_write(&args.store, single_writer)?;
    let layout = PartLayout::Count(args.parts);
    let info = if args.overwrite {
        store.create_plan_replacing(name.as_str(), &spec, &args.shape, args.dtype, layout)?
    } else {
        store.create_plan(name.as_str(), &spec, &args.shape, args.dtype, layout)?
    };
    if args.json {
        emit_json(&plan_json(&info));
        return Ok(0);
    }
    let mut out = format!(
        "plan {} for {}/{}: shape {}, {}, dims {}, {} parts of whole write units {}\n",
        info.plan_id,
        info.element_type,
        info.name,
        shape_text(&info.shape),
        info.data_type.zarr_name(),
        info.spec.dims.join(","),
        info.parts.len(),
        shape_text(&info.write_unit)
    );
    for (i, p) in info.parts.iter().enumerate() {
        out.push_str(&format!("  part {i}: {}\n", region_text(p)));
    }
    out.push_str(&format!(
        "next: zarrtx write-part {store} {id} PART --input DATA.npy   (PART 0..={last}, any order, any node)\n      \
         zarrtx commit-plan {store} {id}",
        store = args.store.display(),
        id = info.plan_id,
        last = info.parts.len() - 1
    ));
    emit(&out);
    Ok(0)
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

/// Runs `plans PATH [PLAN_ID]`: the element plans of a store, or the array plans of a hierarchy.
pub fn run_plans(path: &Path, plan_id: Option<&str>, json: bool) -> CliResult<i32> {
    let store = match PlanTarget::open_read(path)? {
        PlanTarget::Store(store) => store,
        PlanTarget::Hierarchy(h) => return super::array_plan::run_plans(&h, plan_id, json),
    };
    let plans = match plan_id {
        Some(id) => vec![store.plan_status(id)?],
        None => store.list_plans()?,
    };
    let committed = |c: &PlanCommit| format!("committed at version {}", c.version);
    emit_statuses(
        &plans,
        plan_id.is_some(),
        json,
        "no write plans",
        |s| {
            status_json(s, plan_json(&s.plan), |c| {
                json!({"version": c.version, "txn": c.txn, "committed_ms": c.committed_ms})
            })
        },
        |p| {
            let text = format!(
                "{}  {}/{}  {}/{} parts done  {}  (created {} by {})",
                p.plan.plan_id,
                p.plan.element_type,
                p.plan.name,
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
