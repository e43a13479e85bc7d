//! `zarrtx write-part` (one part of a plan, read from its region of a `.npy` file by offset) and
//! `zarrtx commit-plan` (the pyramid, then the one commit that publishes the element).

use super::open_write;
use super::plan::region_text;
use crate::cli_error::{CliError, CliResult};
use crate::input::npy::NpyInfo;
use crate::input::{insert_leading_axis, STREAM_BLOCK_BYTES};
use crate::output::{emit, emit_json, human_bytes, shape_text};
use crate::progress_bar::BytesProgress;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use zarrtx::raster::DEFAULT_MEMORY_LIMIT;
use zarrtx::{PartOutcome, PlanInfo, PlanOptions, RasterBlock};

/// Arguments of `write-part`.
#[derive(Debug, Args)]
pub struct WritePartArgs {
    /// The store directory.
    pub store: PathBuf,
    /// The plan id printed by `write-plan`.
    pub plan_id: String,
    /// The part to write (0-based; e.g. $SLURM_ARRAY_TASK_ID).
    pub part: usize,
    /// The whole array as a .npy file (C or Fortran order, the plan's shape and dtype); only the part's region is
    /// read, by offset.
    #[arg(long, value_name = "NPY")]
    pub input: PathBuf,
    /// In-flight memory limit of the encoder in MiB (assembled and queued chunks; one input block of about 64 MiB
    /// comes on top).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_LIMIT >> 20)]
    pub memory_limit_mib: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `commit-plan`.
#[derive(Debug, Args)]
pub struct CommitPlanArgs {
    /// The store directory.
    pub store: PathBuf,
    /// The plan id printed by `write-plan`.
    pub plan_id: String,
    /// In-flight memory limit while computing the pyramid, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_LIMIT >> 20)]
    pub memory_limit_mib: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Blocks of `input` covering part `part` of `plan`, read by offset; refuses an input of another shape or dtype.
fn part_blocks(
    plan: &PlanInfo,
    part: usize,
    input: &std::path::Path,
) -> CliResult<Box<dyn Iterator<Item = zarrtx::Result<RasterBlock>> + Send>> {
    let bad = |what: String| {
        CliError::usage(format!("element '{}' (plan {}): {} {what}", plan.name, plan.plan_id, input.display()))
    };
    let npy = NpyInfo::open(input)?;
    // A 2-D file for a single-channel image is accepted, as add-image accepts it.
    let add_channel = npy.shape != plan.shape
        && plan.spec.dims.first().map(String::as_str) == Some("c")
        && plan.shape.first() == Some(&1)
        && plan.shape[1..] == npy.shape[..];
    if npy.shape != plan.shape && !add_channel {
        return Err(bad(format!(
            "has shape {} but the plan writes shape {}: give every part the array the plan was made for",
            shape_text(&npy.shape),
            shape_text(&plan.shape)
        )));
    }
    if npy.data_type != plan.data_type {
        return Err(bad(format!(
            "holds {} data but the plan writes {}: cast the array (e.g. numpy's arr.astype('{}'))",
            npy.data_type.zarr_name(),
            plan.data_type.zarr_name(),
            plan.data_type.zarr_name()
        )));
    }
    let region = &plan.parts[part];
    // Blocks aligned to the chunks (the part starts on a chunk boundary), about 64 MiB each.
    let chunks = plan.spec.chunk_shape.clone().unwrap_or_else(|| plan.write_unit.clone());
    let skip = usize::from(add_channel);
    let blocks = npy.region_blocks(&region[skip..], &chunks[skip..], STREAM_BLOCK_BYTES)?;
    Ok(if add_channel {
        Box::new(blocks.map(|b| {
            b.map(|mut b| {
                b.offset.insert(0, 0);
                b.data = insert_leading_axis(b.data);
                b
            })
        }))
    } else {
        Box::new(blocks)
    })
}

/// Runs `write-part`.
pub fn run_write_part(args: WritePartArgs, single_writer: bool) -> CliResult<i32> {
    let store = open_write(&args.store, single_writer)?;
    let plan = store.plan_info(&args.plan_id)?;
    if args.part >= plan.parts.len() {
        return Err(CliError::usage(format!(
            "element '{}' (plan {}): part {} does not exist; the plan has {} parts, 0 to {}",
            plan.name,
            plan.plan_id,
            args.part,
            plan.parts.len(),
            plan.parts.len() - 1
        )));
    }
    let blocks = part_blocks(&plan, args.part, &args.input)?;
    let progress = BytesProgress::new(format!("part {} of {}", args.part, plan.name));
    let started = Instant::now();
    let options = PlanOptions { progress: &progress, memory_limit: args.memory_limit_mib.saturating_mul(1 << 20) };
    let result = store.write_part(&plan.plan_id, args.part, blocks, &options);
    progress.finish();
    let outcome = result?;
    let r = outcome.record();
    let written = matches!(outcome, PartOutcome::Written(_));
    if args.json {
        emit_json(&json!({
            "plan_id": plan.plan_id,
            "name": plan.name,
            "part": args.part,
            "region": super::plan::region_json(&plan.parts[args.part]),
            "outcome": if written { "written" } else { "already_done" },
            "chunks": r.chunks,
            "bytes": r.bytes,
            "elapsed_ms": r.elapsed_ms,
        }));
    } else if written {
        emit(&format!(
            "wrote part {}/{} of {}/{} (plan {}), region {}: {} chunk file(s), {} stored, {} of data in {:.2} s",
            args.part,
            plan.parts.len(),
            plan.element_type,
            plan.name,
            plan.plan_id,
            region_text(&plan.parts[args.part]),
            r.chunks,
            human_bytes(r.bytes),
            human_bytes(plan.part_bytes(args.part)),
            started.elapsed().as_secs_f64()
        ));
    } else {
        emit(&format!(
            "part {} of {}/{} (plan {}) was already written ({} chunk file(s), {}): nothing to do",
            args.part,
            plan.element_type,
            plan.name,
            plan.plan_id,
            r.chunks,
            human_bytes(r.bytes)
        ));
    }
    Ok(0)
}

/// Runs `commit-plan`.
pub fn run_commit_plan(args: CommitPlanArgs, single_writer: bool) -> CliResult<i32> {
    let store = open_write(&args.store, single_writer)?;
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
