//! `zarrtx`: many writers, one SpatialData Zarr store — the command-line tool.
//!
//! This file holds the command-line definitions and the dispatch; each command group lives in
//! [`commands`], input loading in [`input`], the `--transform` syntax in [`transform_arg`] and progress bars in
//! [`progress_bar`].

pub mod cli_error;
pub mod commands;
pub mod input;
pub mod output;
pub mod progress_bar;
pub mod transform_arg;

use clap::{Args, Parser, Subcommand};
use cli_error::{CliError, EXIT_USAGE};
use commands::plans::{self, PlanTarget};
use input::Dims;
use std::path::PathBuf;
use transform_arg::TransformArg;
use zarrtx::Compression;

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 failure (I/O, contention, corrupt store, verify found problems); 2 bad input or usage \
(invalid name, unreadable input, name or array path taken, element, version or plan not found, not a store or \
hierarchy).
Set ZARRTX_WRITER_LABEL to record a label (job or worker id) with every commit this process makes.";

/// The help of every `--compression` flag (the syntax is the engine's: `zarrtx::raster::settings`).
pub const COMPRESSION_HELP: &str = "Chunk compression: none, zstd, zstd:LEVEL, blosc-CNAME[:LEVEL] (CNAME lz4, zstd, \
    ...), blosc or blosc:CNAME:LEVEL (default zstd, as zarr-python)";

/// Many processes writing into one SpatialData Zarr store, with nothing lost.
#[derive(Debug, Parser)]
#[command(name = "zarrtx", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Write even if the storage cannot arbitrate concurrent writers (you guarantee a single writer).
    #[arg(long, global = true)]
    pub single_writer: bool,

    /// Do not fsync element data and commit entries (faster; a crash of the process still loses nothing, a power
    /// failure may).
    #[arg(long, global = true)]
    pub no_fsync: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty SpatialData store (or open an existing one).
    Init {
        /// The store directory.
        store: PathBuf,
    },
    /// Show the store's version and elements.
    Info {
        /// The store directory.
        store: PathBuf,
        /// Show the store as it was at this version.
        #[arg(long, value_name = "V")]
        at_version: Option<u64>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the commit history.
    Log {
        /// The store directory.
        store: PathBuf,
        /// Print a JSON array of commits instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add an image element (axes c,y,x or c,z,y,x) from a .npy or .tif file.
    AddImage(AddArgs),
    /// Add a labels element (axes y,x or z,y,x; integer dtype) from a .npy or .tif file.
    AddLabels(AddArgs),
    /// Add a points element from a .parquet or .csv file with columns x, y (optionally z) and any others.
    AddPoints(AddPointsArgs),
    /// Add a shapes element (circles, polygons or multipolygons) from a GeoParquet, .parquet/.csv (x,y,radius)
    /// or .geojson file.
    AddShapes(AddShapesArgs),
    /// Add an AnnData table from an obs file (.parquet/.csv), an optional dense X (.npy/.parquet) and var names.
    AddTable(commands::table::AddTableArgs),
    /// Append rows to a table (creating it if missing); safe from many processes at once.
    Append(commands::table::AppendArgs),
    /// Delete an element.
    Rm {
        /// The store directory.
        store: PathBuf,
        /// The element to delete.
        name: String,
    },
    /// Read one level of an image or labels element into a .npy file.
    Read {
        /// The store directory.
        store: PathBuf,
        /// The element to read.
        name: String,
        /// The .npy file to write.
        output: PathBuf,
        /// Pyramid level (0 is full resolution).
        #[arg(long, default_value_t = 0, value_name = "L")]
        level: usize,
        /// Read the element as it was at this version.
        #[arg(long, value_name = "V")]
        at_version: Option<u64>,
    },
    /// Check the store; exits 1 when it finds problems or leftovers of interrupted writers.
    Verify {
        /// The store directory.
        store: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reclaim leftovers of interrupted writers and data of deleted elements older than the grace period.
    Gc {
        /// The store directory (or a Zarr v3 hierarchy's root: its array plans are reclaimed).
        store: PathBuf,
        /// Keep anything younger than this many seconds (readers of old versions may still need it).
        #[arg(long, default_value_t = 3600, value_name = "S")]
        grace_seconds: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Plan writing one image or labels element in N parts (one process or cluster job per part).
    WritePlan(commands::plans::element::WritePlanArgs),
    /// Plan writing one array of a plain Zarr v3 hierarchy (e.g. an NWB file) in N parts: a new array, or --fill
    /// the existing one.
    ArrayPlan(commands::plans::array::ArrayPlanArgs),
    /// Write one part of a plan (write-plan or array-plan) from a .npy file (reads only the part's region); safe
    /// to run again.
    WritePart(commands::plans::part::WritePartArgs),
    /// Commit a plan once every part is written: publishes the element (after computing its pyramid) or the array.
    CommitPlan(commands::plans::CommitPlanArgs),
    /// List the write plans of a store or the array plans of a hierarchy, or show one plan's parts.
    Plans {
        /// The store or hierarchy directory.
        store: PathBuf,
        /// Show only this plan, part by part.
        plan_id: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run N worker processes that write images and labels into one new store at the same time, then verify it.
    Demo(commands::demo::DemoArgs),
    /// One worker of `zarrtx demo` (internal).
    #[command(hide = true)]
    DemoWorker(commands::demo::WorkerArgs),
}

/// Arguments shared by `add-image` and `add-labels`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The store directory.
    pub store: PathBuf,
    /// The new element's name (letters, digits, '_', '-', '.').
    pub name: String,
    /// The pixels: a .npy file (any numeric dtype, C or Fortran order) or a .tif/.tiff file.
    pub input: PathBuf,
    /// Axes of the element: cyx or czyx for images, yx or zyx for labels (default: from the input's dimensions).
    #[arg(long, value_enum)]
    pub dims: Option<Dims>,
    /// Channel names, comma-separated (images only), e.g. DAPI,CD3,CD8.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub channels: Option<Vec<String>>,
    /// Chunk shape, one entry per axis, e.g. 1,512,512.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub chunks: Option<Vec<u64>>,
    /// Shard shape (a multiple of the chunk shape), e.g. 1,2048,2048.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub shards: Option<Vec<u64>>,
    #[arg(long, value_name = "CODEC", help = COMPRESSION_HELP)]
    pub compression: Option<Compression>,
    /// Pyramid downscale factors, one per extra level, e.g. 2,2 for three levels.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub scales: Option<Vec<u64>>,
    /// Coordinate transformation CS=SPEC (repeatable); SPEC is identity, scale:1,2,2, translation:0,10,20,
    /// affine:[[...],...] or sequence:SPEC;SPEC.
    #[arg(long = "transform", value_parser = transform_arg::parse_transform_arg, value_name = "CS=SPEC")]
    pub transforms: Vec<TransformArg>,
    /// Replace an existing element of the same name.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `add-points`.
#[derive(Debug, Args)]
pub struct AddPointsArgs {
    /// The store directory.
    pub store: PathBuf,
    /// The new element's name (letters, digits, '_', '-', '.').
    pub name: String,
    /// The points: a .parquet file or a .csv file with a header, columns x, y (optionally z; numeric) and any
    /// others.
    pub input: PathBuf,
    /// The column naming each point's feature (e.g. gene); stored as categorical.
    #[arg(long, value_name = "COLUMN")]
    pub feature_key: Option<String>,
    /// The column naming each point's instance (e.g. cell id).
    #[arg(long, value_name = "COLUMN")]
    pub instance_key: Option<String>,
    /// Coordinate transformation CS=SPEC (repeatable), over the axes x,y (or x,y,z): identity, scale:2,2,
    /// translation:10,20, affine:[[...],...] or sequence:SPEC;SPEC.
    #[arg(long = "transform", value_parser = transform_arg::parse_transform_arg, value_name = "CS=SPEC")]
    pub transforms: Vec<TransformArg>,
    /// Replace an existing element of the same name.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `add-shapes`.
#[derive(Debug, Args)]
pub struct AddShapesArgs {
    /// The store directory.
    pub store: PathBuf,
    /// The new element's name (letters, digits, '_', '-', '.').
    pub name: String,
    /// The shapes: a GeoParquet file (WKB Point with a radius column, Polygon, MultiPolygon), a plain .parquet or
    /// .csv file with columns x, y, radius (circles), or a .geojson file (Point features need a radius property).
    pub input: PathBuf,
    /// Coordinate transformation CS=SPEC (repeatable), over the axes x,y: identity, scale:2,2,
    /// translation:10,20, affine:[[...],...] or sequence:SPEC;SPEC.
    #[arg(long = "transform", value_parser = transform_arg::parse_transform_arg, value_name = "CS=SPEC")]
    pub transforms: Vec<TransformArg>,
    /// Replace an existing element of the same name.
    #[arg(long)]
    pub overwrite: bool,
}

fn run(cli: Cli) -> Result<i32, CliError> {
    let single_writer = cli.single_writer;
    commands::set_durable(!cli.no_fsync);
    match cli.command {
        Command::Init { store } => commands::init::run(&store, single_writer),
        Command::Info {
            store,
            at_version,
            json,
        } => commands::info::run(&store, at_version, json),
        Command::Log { store, json } => commands::log::run(&store, json),
        Command::AddImage(args) => commands::add::run(zarrtx::RasterKind::Image, args, single_writer),
        Command::AddLabels(args) => commands::add::run(zarrtx::RasterKind::Labels, args, single_writer),
        Command::AddPoints(args) => commands::add_vector::run_points(args, single_writer),
        Command::AddShapes(args) => commands::add_vector::run_shapes(args, single_writer),
        Command::AddTable(args) => commands::table::run_add(args, single_writer),
        Command::Append(args) => commands::table::run_append(args, single_writer),
        Command::Rm { store, name } => commands::rm::run(&store, &name, single_writer),
        Command::Read {
            store,
            name,
            output,
            level,
            at_version,
        } => commands::read::run(&store, &name, &output, level, at_version),
        Command::Verify { store, json } => commands::verify::run(&store, json),
        Command::Gc {
            store,
            grace_seconds,
            json,
        } => commands::gc::run(&store, grace_seconds, json, single_writer),
        Command::WritePlan(args) => plans::element::run_write_plan(args, single_writer),
        Command::ArrayPlan(args) => plans::array::run_array_plan(args, single_writer),
        Command::WritePart(args) => plans::part::run_write_part(args, single_writer),
        // A plan's path is a store (element plans) or a hierarchy (array plans).
        Command::CommitPlan(args) => match PlanTarget::open_write(&args.store, single_writer)? {
            PlanTarget::Store(store) => plans::element::commit(&store, &args),
            PlanTarget::Hierarchy(h) => plans::array::commit(&h, &args),
        },
        Command::Plans { store, plan_id, json } => match PlanTarget::open_read(&store)? {
            PlanTarget::Store(store) => plans::element::list(&store, plan_id.as_deref(), json),
            PlanTarget::Hierarchy(h) => plans::array::list(&h, plan_id.as_deref(), json),
        },
        Command::Demo(args) => commands::demo::run(args),
        Command::DemoWorker(args) => commands::demo::worker(args),
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with exit 0; usage errors print `error: ...` and exit 2.
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_add_image_flags() {
        let cli = Cli::try_parse_from([
            "zarrtx",
            "add-image",
            "s.zarr",
            "img",
            "in.npy",
            "--dims",
            "czyx",
            "--channels",
            "a,b,c",
            "--chunks",
            "1,1,512,512",
            "--shards",
            "1,1,2048,2048",
            "--compression",
            "blosc:zstd:3",
            "--scales",
            "2,2",
            "--transform",
            "global=identity",
            "--transform",
            "aligned=scale:1,1,2,2",
            "--overwrite",
        ])
        .unwrap();
        let Command::AddImage(a) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(a.dims, Some(Dims::Czyx));
        assert_eq!(a.channels.unwrap(), vec!["a", "b", "c"]);
        assert_eq!(a.chunks.unwrap(), vec![1, 1, 512, 512]);
        assert_eq!(a.shards.unwrap(), vec![1, 1, 2048, 2048]);
        assert_eq!(
            a.compression.unwrap(),
            Compression::Blosc {
                cname: "zstd".into(),
                clevel: 3,
                shuffle: true
            }
        );
        assert_eq!(a.scales.unwrap(), vec![2, 2]);
        assert_eq!(a.transforms.len(), 2);
        assert!(a.overwrite);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            vec!["zarrtx", "add-image", "s", "n", "i.npy", "--chunks", "1,x"],
            vec!["zarrtx", "add-image", "s", "n", "i.npy", "--dims", "xyz"],
            vec![
                "zarrtx",
                "add-labels",
                "s",
                "n",
                "i.npy",
                "--transform",
                "global=rotate:1",
            ],
            vec!["zarrtx", "add-labels", "s", "n", "i.npy", "--compression", "gzip"],
            vec!["zarrtx", "read", "s", "n", "o.npy", "--level", "-1"],
            vec!["zarrtx", "frobnicate"],
        ] {
            let e = Cli::try_parse_from(&args).unwrap_err();
            assert!(e.use_stderr(), "{args:?}");
        }
    }
}
