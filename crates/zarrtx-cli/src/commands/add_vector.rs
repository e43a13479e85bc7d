//! `zarrtx add-points` / `zarrtx add-shapes`: load a Parquet, CSV or GeoJSON file and add it as a points or
//! shapes element.

use super::open_write;
use crate::cli_error::CliResult;
use crate::input::vector::{load_points, load_shapes};
use crate::output::emit;
use crate::transform_arg::collect_transforms;
use crate::{AddPointsArgs, AddShapesArgs};
use std::path::Path;
use std::time::Instant;
use zarrtx::{AddOptions, ElementName, Geometry, PointsSpec, ShapesSpec, Store};

/// Fails fast on a taken name before reading a possibly large input (the engine re-checks at commit).
fn check_free(store: &Store, name: &ElementName, overwrite: bool) -> CliResult<()> {
    if !overwrite {
        store.check_name_free(name)?;
    }
    Ok(())
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

/// Runs `add-points`.
pub fn run_points(args: AddPointsArgs, single_writer: bool) -> CliResult<i32> {
    let name = ElementName::new(&args.name)?;
    let store = open_write(&args.store, single_writer)?;
    check_free(&store, &name, args.overwrite)?;
    let batches = load_points(&args.input, args.feature_key.as_deref())?;
    let has_z = batches.first().is_some_and(|b| b.schema().column_with_name("z").is_some());
    let axes: &[&str] = if has_z { &["x", "y", "z"] } else { &["x", "y"] };
    let spec = PointsSpec {
        feature_key: args.feature_key.clone(),
        instance_key: args.instance_key.clone(),
        transformations: collect_transforms(&args.transforms, axes)?,
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let started = Instant::now();
    let commit = store.add_points(
        name.as_str(),
        &batches,
        &spec,
        &AddOptions { overwrite: args.overwrite, ..Default::default() },
    )?;
    emit(&format!(
        "added points/{name} at version {}: {rows} points, axes {}, {} column(s) in {:.2} s{}",
        commit.version,
        axes.join(","),
        batches.first().map(|b| b.num_columns()).unwrap_or(0),
        started.elapsed().as_secs_f64(),
        attempts_text(commit.attempts),
    ));
    Ok(0)
}

/// Runs `add-shapes`.
pub fn run_shapes(args: AddShapesArgs, single_writer: bool) -> CliResult<i32> {
    let name = ElementName::new(&args.name)?;
    let store = open_write(&args.store, single_writer)?;
    check_free(&store, &name, args.overwrite)?;
    let data = load_shapes(Path::new(&args.input))?;
    let spec = ShapesSpec { transformations: collect_transforms(&args.transforms, &["x", "y"])? };
    let started = Instant::now();
    let commit = store.add_shapes(
        name.as_str(),
        &data,
        &spec,
        &AddOptions { overwrite: args.overwrite, ..Default::default() },
    )?;
    let kind = match data.geometry.first() {
        Some(Geometry::Point(_)) => "circles",
        _ => "polygons",
    };
    emit(&format!(
        "added shapes/{name} at version {}: {} {kind} in {:.2} s{}",
        commit.version,
        data.geometry.len(),
        started.elapsed().as_secs_f64(),
        attempts_text(commit.attempts),
    ));
    Ok(0)
}
