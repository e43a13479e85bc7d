//! One module per command group, each with a `run` function returning the process exit code.

pub mod add;
pub mod add_vector;
pub mod demo;
pub mod gc;
pub mod info;
pub mod init;
pub mod log;
pub mod plans;
pub mod read;
pub mod rm;
pub mod table;
pub mod verify;

use crate::cli_error::CliResult;
use std::path::Path;
use zarrtx::{OpenOptions, Store};

/// Opens an existing store for reading only.
pub fn open_read(store: &Path) -> CliResult<Store> {
    Ok(Store::open(
        store,
        &OpenOptions {
            create: false,
            read_only: true,
            ..OpenOptions::default()
        },
    )?)
}

/// Opens an existing store for writing.
pub fn open_write(store: &Path, single_writer: bool) -> CliResult<Store> {
    Ok(Store::open(
        store,
        &OpenOptions {
            create: false,
            read_only: false,
            single_writer,
            durable: durable(),
            ..OpenOptions::default()
        },
    )?)
}

static DURABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Sets whether writes are fsynced (the global `--no-fsync` flag); the first call wins.
pub fn set_durable(durable: bool) {
    let _ = DURABLE.set(durable);
}

/// Whether writes are fsynced (default true).
pub fn durable() -> bool {
    *DURABLE.get().unwrap_or(&true)
}
