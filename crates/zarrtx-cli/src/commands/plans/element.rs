//! `zarrtx write-plan` (plan one image or labels element of a store, written in parts by many processes: one
//! cluster job per part), and the element side of `commit-plan` (the pyramid, then the one commit that publishes
//! it) and of `plans`.

use super::{emit_statuses, parse_dtype, region_json, region_text, state_text, status_json, CommitPlanArgs};
use crate::cli_error::{CliError, CliResult};
use crate::commands::open_write;
use crate::input::Dims;
use crate::output::{emit, emit_json, iso_time, shape_text, writer_json, writer_text};
use crate::progress_bar::BytesProgress;
use crate::transform_arg::{collect_transforms, parse_transform_arg, TransformArg};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;
use zarrtx::{
    Compression, DataType, ElementName, PartLayout, PlanCommit, PlanInfo, PlanOptions, Pyramid, RasterKind,
    RasterSpec, Store,
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
    #[arg(long, value_name = "CODEC", help = crate::COMPRESSION_HELP)]
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

/// `commit-plan` of an element plan: the pyramid, then the commit.
pub fn commit(store: &Store, args: &CommitPlanArgs) -> CliResult<i32> {
    let plan = store.plan_info(&args.plan_id)?;
    let progress = BytesProgress::new(format!("pyramid of {}", plan.name));
    let started = Instant::now();
    let options = PlanOptions { progress: &progress, memory_limit: args.memory_limit_mib.saturating_mul(1 << 20) };
    let result = store.commit_plan_with(&plan.plan_id, &options);
    progress.finish();
    let c = result?;
    let already = c.attempts == 0;
    if args.json {
        emit_json(&json!({
            "plan_id": plan.plan_id,
            "name": plan.name,
            "element_type": plan.element_type.group(),
            "version": c.version,
            "txn": c.txn,
            "already_committed": already,
            "published": c.published,
        }));
    } else if already {
        emit(&format!(
            "plan {} was already committed: {}/{} at version {}; nothing to do",
            plan.plan_id, plan.element_type, plan.name, c.version
        ));
    } else {
        emit(&format!(
            "committed {}/{} at version {} (plan {}, {} parts) in {:.2} s{}",
            plan.element_type,
            plan.name,
            c.version,
            plan.plan_id,
            plan.parts.len(),
            started.elapsed().as_secs_f64(),
            if c.published { "" } else { " (publication pending: the next write or `zarrtx gc` publishes it)" }
        ));
    }
    Ok(0)
}

/// `plans` of a store: its element plans, or one plan part by part.
pub fn list(store: &Store, plan_id: Option<&str>, json: bool) -> CliResult<i32> {
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
