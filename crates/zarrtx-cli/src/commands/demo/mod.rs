//! `zarrtx demo`: N real worker processes write images and labels into ONE new store at the same time; the
//! parent then verifies the store and reports who wrote what, how fast, and whether anything was lost.
//!
//! - [`args`]: the arguments of `demo` and of its hidden `demo-worker` processes;
//! - [`names`] and [`data`]: what the workers write (the same in the parent, which checks it);
//! - [`worker`]: one worker process, which reports every step as a JSON line on stdout;
//! - [`processes`]: the parent starting the workers, saying `go` to all at once and gathering their reports;
//! - [`verify`]: the parent's checks of the store; [`report`]: what it prints.

pub mod args;
pub mod data;
pub mod names;
pub mod processes;
pub mod report;
pub mod verify;
pub mod worker;

pub use args::{DemoArgs, WorkerArgs};
pub use worker::worker;

use crate::cli_error::{CliError, CliResult};
use crate::output::emit;
use names::{is_demo_name, DEMO_TABLE};
use processes::WorkerReport;
use std::path::Path;
use zarrtx::{OpenOptions, Store};

/// Removes `path` if it is a store the demo made (or an empty directory); refuses anything else.
fn clear_previous(path: &Path) -> CliResult<()> {
    if !path.exists() {
        return Ok(());
    }
    let refuse = |why: String| {
        CliError::usage(format!(
            "{} exists and {why}; the demo only replaces its own stores: choose another --store or remove it yourself",
            path.display()
        ))
    };
    if !path.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    let empty = std::fs::read_dir(path).map(|mut d| d.next().is_none()).unwrap_or(false);
    if !empty {
        let store = super::open_read(path).map_err(|e| refuse(format!("is not a zarrtx store ({})", e.message)))?;
        let snap = store
            .snapshot(None)
            .map_err(|e| refuse(format!("cannot be read ({e})")))?;
        if let Some(other) = snap.elements().into_iter().find(|e| !is_demo_name(&e.name) && e.name != DEMO_TABLE) {
            return Err(refuse(format!(
                "is not a demo store (it holds {}/{})",
                other.element_type, other.name
            )));
        }
    }
    std::fs::remove_dir_all(path)
        .map_err(|e| CliError::failure(format!("cannot remove the previous demo store {}: {e}", path.display())))
}

/// Runs `zarrtx demo`.
pub fn run(args: DemoArgs) -> CliResult<i32> {
    args.check()?;
    clear_previous(&args.store)?;
    let parent_label = std::env::var("ZARRTX_WRITER_LABEL").ok();
    if parent_label.is_none() {
        // Safe here: single-threaded at this point; labels the store's creation in the log.
        std::env::set_var("ZARRTX_WRITER_LABEL", "demo");
    }
    let store = Store::open(&args.store, &OpenOptions::default())?;
    let root = std::fs::canonicalize(&args.store).unwrap_or_else(|_| args.store.clone());
    let exe = processes::own_binary()?;
    emit(&report::intro(&args, &root));
    let children = processes::start(&args, &exe, &root)?;
    let (reports, wall_seconds) = processes::run(children, args.total_elements());
    let findings = verify::check(&store, &args, &reports)?;
    emit(&report::render(&args, &root, &reports, &findings, wall_seconds));
    let ok = findings.store_ok() && reports.iter().all(WorkerReport::succeeded);
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_remove_foreign_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(clear_previous(&f).unwrap_err().code, 2);
        let d = dir.path().join("data");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("keep.txt"), b"x").unwrap();
        assert_eq!(clear_previous(&d).unwrap_err().code, 2);
        assert!(d.join("keep.txt").exists());
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        clear_previous(&empty).unwrap();
        assert!(!empty.exists());
        clear_previous(&dir.path().join("absent")).unwrap();
    }
}
