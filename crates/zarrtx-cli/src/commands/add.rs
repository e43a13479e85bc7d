//! `zarrtx add-image` / `zarrtx add-labels`: load a `.npy` or `.tif` file and add it as a raster element.

use super::open_write;
use crate::cli_error::{CliError, CliResult};
use crate::input::{self, LoadedInput};
use crate::output::{emit, human_bytes, shape_text};
use crate::progress_bar::BytesProgress;
use crate::transform_arg::collect_transforms;
use crate::AddArgs;
use std::time::Instant;
use zarrtx::{AddOptions, ElementName, Pyramid, RasterKind, RasterSpec};

/// Runs `add-image` (`kind` = image) or `add-labels` (`kind` = labels).
pub fn run(kind: RasterKind, args: AddArgs, single_writer: bool) -> CliResult<i32> {
    let name = ElementName::new(&args.name)?;
    if let Some(d) = args.dims {
        d.check_kind(kind)?;
    }
    if kind == RasterKind::Labels && args.channels.is_some() {
        return Err(CliError::usage("--channels is for images; labels have no channel axis"));
    }
    if let Some(ch) = &args.channels {
        if ch.iter().any(|c| c.trim().is_empty()) {
            return Err(CliError::usage("--channels: channel names may not be empty"));
        }
    }
    let store = open_write(&args.store, single_writer)?;
    // Fail fast on a taken name before reading a possibly large input (the engine re-checks at commit).
    if !args.overwrite {
        store.check_name_free(&name)?;
    }
    let LoadedInput { source, dims, streamed } =
        input::load_input(&args.input, kind, args.dims, args.chunks.as_deref())?;
    let mut spec = RasterSpec::new(kind, dims.axes());
    spec.channel_names = args.channels.clone();
    spec.chunk_shape = args.chunks.clone();
    spec.shard_shape = args.shards.clone();
    if let Some(c) = args.compression.clone() {
        spec.compression = c;
    }
    spec.pyramid = match &args.scales {
        Some(s) if !s.is_empty() => Pyramid::Computed(s.clone()),
        _ => Pyramid::Single,
    };
    spec.transformations = collect_transforms(&args.transforms, dims.axes())?;

    let shape = source.shape();
    let dtype = source.data_type();
    let bytes = shape.iter().product::<u64>() * dtype.size() as u64;
    let progress = BytesProgress::new(format!("adding {name}"));
    let started = Instant::now();
    let result = store.add_raster(
        name.as_str(),
        &spec,
        source,
        &AddOptions {
            overwrite: args.overwrite,
            progress: &progress,
            ..AddOptions::default()
        },
    );
    progress.finish();
    let commit = result?;
    let seconds = started.elapsed().as_secs_f64();
    let group = match kind {
        RasterKind::Image => "images",
        RasterKind::Labels => "labels",
    };
    emit(&format!(
        "added {group}/{name} at version {}: dims {}, shape {}, {}, {} in {seconds:.2} s{}{}",
        commit.version,
        dims.axes().join(","),
        shape_text(&shape),
        dtype.zarr_name(),
        human_bytes(bytes),
        if streamed { " (streamed)" } else { "" },
        if commit.attempts > 1 {
            format!(" after {} attempts", commit.attempts)
        } else {
            String::new()
        },
    ));
    Ok(0)
}
