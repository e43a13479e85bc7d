//! `zarrtx write-part`: one part of a plan, read from its region of a `.npy` file by offset, for element plans of
//! a store and array plans of a hierarchy alike: the path tells which ([`PlanTarget`]). Reading a part's region of
//! the input is the same for both ([`PartPlan`]).

use super::{chunk_shape, region_json, region_text, PlanTarget};
use crate::cli_error::{CliError, CliResult};
use crate::input::npy::NpyInfo;
use crate::input::{insert_leading_axis, STREAM_BLOCK_BYTES};
use crate::output::{emit, emit_json, human_bytes, shape_text};
use crate::progress_bar::BytesProgress;
use clap::Args;
use serde_json::json;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;
use zarrtx::raster::DEFAULT_MEMORY_LIMIT;
use zarrtx::{ArrayPlanInfo, DataType, PartOutcome, PlanInfo, PlanOptions, RasterBlock};

/// Arguments of `write-part`.
#[derive(Debug, Args)]
pub struct WritePartArgs {
    /// The store (write-plan) or Zarr hierarchy (array-plan) directory.
    pub store: PathBuf,
    /// The plan id printed by `write-plan` or `array-plan`.
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

/// The blocks of one part, as the engine's part writers take them.
pub type PartBlocks = Box<dyn Iterator<Item = zarrtx::Result<RasterBlock>> + Send>;

/// What `write-part` needs to know of a plan, the same for an element plan and an array plan.
#[derive(Debug, Clone)]
pub struct PartPlan {
    /// The plan's id.
    pub plan_id: String,
    /// How error messages name what the plan writes: `element 'img'`, `array 'acquisition/ts/data'`.
    pub subject: String,
    /// How the text output names it: `images/img`, `array acquisition/ts/data`.
    pub target: String,
    /// The JSON field naming it, and its value: `("name", "img")`, `("path", "acquisition/ts/data")`.
    pub json_name: (&'static str, String),
    /// The array's shape.
    pub shape: Vec<u64>,
    /// Its element type.
    pub data_type: DataType,
    /// The chunk shape input blocks are aligned to (the inner chunks when sharded).
    pub chunks: Vec<u64>,
    /// The parts: one `start..end` range per axis each.
    pub parts: Vec<Vec<Range<u64>>>,
    /// True when axis 0 is a channel axis of length 1, which an input without that axis may fill (as add-image
    /// accepts a 2-D file for a one-channel image).
    pub single_channel: bool,
}

impl PartPlan {
    /// The plan of an image or labels element.
    pub fn of_element(info: &PlanInfo) -> PartPlan {
        PartPlan {
            plan_id: info.plan_id.clone(),
            subject: format!("element '{}'", info.name),
            target: format!("{}/{}", info.element_type, info.name),
            json_name: ("name", info.name.clone()),
            shape: info.shape.clone(),
            data_type: info.data_type,
            chunks: info.spec.chunk_shape.clone().unwrap_or_else(|| info.write_unit.clone()),
            parts: info.parts.clone(),
            single_channel: info.spec.dims.first().map(String::as_str) == Some("c") && info.shape.first() == Some(&1),
        }
    }

    /// The plan of an array of a hierarchy.
    pub fn of_array(info: &ArrayPlanInfo) -> PartPlan {
        PartPlan {
            plan_id: info.plan_id.clone(),
            subject: format!("array '{}'", info.path),
            target: format!("array {}", info.path),
            json_name: ("path", info.path.clone()),
            shape: info.shape.clone(),
            data_type: info.data_type,
            chunks: chunk_shape(info),
            parts: info.parts.clone(),
            single_channel: false,
        }
    }

    /// The region of part `part`; a part the plan does not have is a usage error that says which parts exist.
    pub fn region(&self, part: usize) -> CliResult<&[Range<u64>]> {
        self.parts.get(part).map(Vec::as_slice).ok_or_else(|| {
            CliError::usage(format!(
                "{} (plan {}): part {part} does not exist; the plan has {} parts, 0 to {}",
                self.subject,
                self.plan_id,
                self.parts.len(),
                self.parts.len().saturating_sub(1)
            ))
        })
    }

    /// The data bytes of part `part` (0 for a part the plan does not have).
    pub fn part_bytes(&self, part: usize) -> u64 {
        self.parts
            .get(part)
            .map(|r| r.iter().map(|r| r.end - r.start).product::<u64>() * self.data_type.size() as u64)
            .unwrap_or(0)
    }

    /// Blocks of `input` covering part `part`, read by offset (nothing outside the part's region is read); refuses
    /// an input of another shape or dtype, naming the plan's subject and the fix.
    pub fn blocks(&self, part: usize, input: &Path) -> CliResult<PartBlocks> {
        let region = self.region(part)?;
        let bad = |what: String| {
            CliError::usage(format!("{} (plan {}): {} {what}", self.subject, self.plan_id, input.display()))
        };
        let npy = NpyInfo::open(input)?;
        let add_channel = self.single_channel && npy.shape != self.shape && self.shape[1..] == npy.shape[..];
        if npy.shape != self.shape && !add_channel {
            return Err(bad(format!(
                "has shape {} but the plan writes shape {}: give every part the array the plan was made for",
                shape_text(&npy.shape),
                shape_text(&self.shape)
            )));
        }
        if npy.data_type != self.data_type {
            return Err(bad(format!(
                "holds {} data but the plan writes {}: cast the array (e.g. numpy's arr.astype('{}'))",
                npy.data_type.zarr_name(),
                self.data_type.zarr_name(),
                self.data_type.zarr_name()
            )));
        }
        // Blocks aligned to the chunks (the part starts on a chunk boundary), about 64 MiB each.
        let skip = usize::from(add_channel);
        let blocks = npy.region_blocks(&region[skip..], &self.chunks[skip..], STREAM_BLOCK_BYTES)?;
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
}

/// Runs `write-part`, on a store or a hierarchy.
pub fn run_write_part(args: WritePartArgs, single_writer: bool) -> CliResult<i32> {
    match PlanTarget::open_write(&args.store, single_writer)? {
        PlanTarget::Store(store) => {
            let plan = PartPlan::of_element(&store.plan_info(&args.plan_id)?);
            write_part(&plan, &args, |blocks, options| store.write_part(&plan.plan_id, args.part, blocks, options))
        }
        PlanTarget::Hierarchy(h) => {
            let plan = PartPlan::of_array(&h.plan_info(&args.plan_id)?);
            write_part(&plan, &args, |blocks, options| h.write_part(&plan.plan_id, args.part, blocks, options))
        }
    }
}

/// Writes part `args.part` of `plan` from `args.input` with `write` (the store's or the hierarchy's part writer)
/// and reports it.
fn write_part(
    plan: &PartPlan,
    args: &WritePartArgs,
    write: impl FnOnce(PartBlocks, &PlanOptions<'_>) -> zarrtx::Result<PartOutcome>,
) -> CliResult<i32> {
    let region = plan.region(args.part)?;
    let blocks = plan.blocks(args.part, &args.input)?;
    let progress = BytesProgress::new(format!("part {} of {}", args.part, plan.json_name.1));
    let started = Instant::now();
    let options = PlanOptions { progress: &progress, memory_limit: args.memory_limit_mib.saturating_mul(1 << 20) };
    let result = write(blocks, &options);
    progress.finish();
    let outcome = result?;
    let r = outcome.record();
    let written = matches!(outcome, PartOutcome::Written(_));
    if args.json {
        let mut out = json!({
            "plan_id": plan.plan_id,
            "part": args.part,
            "region": region_json(region),
            "outcome": if written { "written" } else { "already_done" },
            "chunks": r.chunks,
            "bytes": r.bytes,
            "elapsed_ms": r.elapsed_ms,
        });
        let (key, name) = &plan.json_name;
        out[*key] = json!(name);
        emit_json(&out);
    } else if written {
        emit(&format!(
            "wrote part {}/{} of {} (plan {}), region {}: {} chunk file(s), {} stored, {} of data in {:.2} s",
            args.part,
            plan.parts.len(),
            plan.target,
            plan.plan_id,
            region_text(region),
            r.chunks,
            human_bytes(r.bytes),
            human_bytes(plan.part_bytes(args.part)),
            started.elapsed().as_secs_f64()
        ));
    } else {
        emit(&format!(
            "part {} of {} (plan {}) was already written ({} chunk file(s), {}): nothing to do",
            args.part,
            plan.target,
            plan.plan_id,
            r.chunks,
            human_bytes(r.bytes)
        ));
    }
    Ok(0)
}
