//! The arguments of `zarrtx demo` and of its hidden `demo-worker` processes.

use crate::cli_error::{CliError, CliResult};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `zarrtx demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The store to create; an existing zarrtx demo store there is removed first, anything else is refused.
    #[arg(long, default_value = "demo.zarr")]
    pub store: PathBuf,
    /// Number of worker processes.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub workers: usize,
    /// Images (and as many labels elements) each worker adds.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub per_worker: usize,
    /// Width and height of every image and labels element, in pixels.
    #[arg(long, default_value_t = 512, value_name = "PIXELS")]
    pub size: usize,
}

/// Arguments of the hidden `zarrtx demo-worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The (existing) store.
    #[arg(long)]
    pub store: PathBuf,
    /// This worker's index.
    #[arg(long)]
    pub index: usize,
    /// Images (and labels) to add.
    #[arg(long)]
    pub per_worker: usize,
    /// Image size in pixels.
    #[arg(long)]
    pub size: usize,
    /// Start without waiting for `go` on stdin.
    #[arg(long)]
    pub no_wait: bool,
}

impl DemoArgs {
    /// Refuses counts and sizes outside what the demo supports.
    pub fn check(&self) -> CliResult<()> {
        if self.workers == 0 || self.workers > 256 {
            return Err(CliError::usage("--workers must be between 1 and 256"));
        }
        if self.per_worker == 0 || self.per_worker > 1000 {
            return Err(CliError::usage("--per-worker must be between 1 and 1000"));
        }
        if !(16..=16384).contains(&self.size) {
            return Err(CliError::usage("--size must be between 16 and 16384 pixels"));
        }
        Ok(())
    }

    /// The elements the workers add together: per worker `per_worker` images and labels elements, one points and
    /// one shapes element.
    pub fn total_elements(&self) -> u64 {
        (self.workers * (self.per_worker * 2 + 2)) as u64
    }
}
