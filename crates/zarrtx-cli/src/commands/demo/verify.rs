//! What the parent checks once every worker has exited: the store verifies clean, every element each worker meant to
//! write is present and recorded with that worker as its writer, the points and shapes hold the rows their worker
//! wrote, and the shared table holds every worker's cells exactly once.

use super::args::DemoArgs;
use super::data::{label_ids, synthetic_labels, synthetic_points};
use super::names::{image_name, labels_name, points_name, shapes_name, DEMO_TABLE};
use super::processes::WorkerReport;
use crate::cli_error::CliResult;
use std::collections::BTreeMap;
use zarrtx::{ElementInfo, ElementType, Snapshot, Store, VerifyReport};

/// What the checks found.
pub struct Findings {
    /// The store's own verification.
    pub verify: VerifyReport,
    /// The store's version after the workers.
    pub version: u64,
    /// Elements a worker meant to write that are not in the store.
    pub missing: Vec<String>,
    /// Elements recorded with another writer than the worker that wrote them.
    pub misattributed: Vec<String>,
    /// Elements of the wrong type, and points or shapes without the rows their worker wrote.
    pub vector_problems: Vec<String>,
    /// Rows of the shared table missing, doubled or unexpected.
    pub table_problems: Vec<String>,
    /// The table rows found for each worker's cells.
    pub rows_per_worker: Vec<usize>,
    /// The table's rows in all.
    pub table_total: usize,
}

impl Findings {
    /// True when nothing is wrong with the store (the workers' own failures aside).
    pub fn store_ok(&self) -> bool {
        self.verify.is_clean()
            && self.missing.is_empty()
            && self.misattributed.is_empty()
            && self.table_problems.is_empty()
            && self.vector_problems.is_empty()
    }
}

/// Checks the store the workers of `args` wrote, against what each of them reported.
pub fn check(store: &Store, args: &DemoArgs, reports: &[WorkerReport]) -> CliResult<Findings> {
    let verify = store.verify()?;
    let snap = store.snapshot(None)?;
    let mut f = Findings {
        verify,
        version: snap.version(),
        missing: Vec::new(),
        misattributed: Vec::new(),
        vector_problems: Vec::new(),
        table_problems: Vec::new(),
        rows_per_worker: vec![0; args.workers],
        table_total: 0,
    };
    let present: BTreeMap<String, ElementInfo> = snap.elements().into_iter().map(|e| (e.name.clone(), e)).collect();
    for (i, r) in reports.iter().enumerate() {
        check_elements(&mut f, &present, args, i, r);
        check_vectors(&mut f, &snap, &present, args, i);
    }
    check_table(&mut f, &snap, args);
    Ok(f)
}

/// Worker `i`'s elements: present, of their type, recorded with worker `i` (its label, and its pid when known).
fn check_elements(f: &mut Findings, present: &BTreeMap<String, ElementInfo>, args: &DemoArgs, i: usize, r: &WorkerReport) {
    let mut expected: Vec<(String, ElementType)> = Vec::new();
    for k in 0..args.per_worker {
        expected.push((image_name(i, k), ElementType::Images));
        expected.push((labels_name(i, k), ElementType::Labels));
    }
    expected.push((points_name(i), ElementType::Points));
    expected.push((shapes_name(i), ElementType::Shapes));
    for (name, ty) in expected {
        match present.get(&name) {
            None => f.missing.push(name),
            Some(e) => {
                let label_ok = e.writer.label.as_deref() == Some(format!("worker-{i}").as_str());
                if !label_ok || (r.pid != 0 && e.writer.pid != r.pid) {
                    f.misattributed.push(format!("{name} (recorded writer {:?} pid {})", e.writer.label, e.writer.pid));
                }
                if e.element_type != ty {
                    f.vector_problems.push(format!("{name} is {}, expected {ty}", e.element_type));
                }
            }
        }
    }
}

/// Worker `i`'s points and shapes hold what it meant to write.
fn check_vectors(f: &mut Findings, snap: &Snapshot, present: &BTreeMap<String, ElementInfo>, args: &DemoArgs, i: usize) {
    let labels0 = synthetic_labels(i, 0, args.size);
    let want_points = synthetic_points(i, &labels0).num_rows() as u64;
    let want_circles = label_ids(&labels0).len() as u64;
    for (name, want) in [(points_name(i), want_points), (shapes_name(i), want_circles)] {
        if present.contains_key(&name) {
            match snap.vector_info(&name) {
                Ok(v) if v.n_rows == want => {}
                Ok(v) => f.vector_problems.push(format!("{name}: {} row(s), expected {want}", v.n_rows)),
                Err(e) => f.vector_problems.push(format!("{name}: {e}")),
            }
        }
    }
}

/// The shared table: every worker's cells exactly once, and nothing else.
fn check_table(f: &mut Findings, snap: &Snapshot, args: &DemoArgs) {
    let t = match snap.read_table(DEMO_TABLE) {
        Ok(t) => t,
        Err(e) => return f.table_problems.push(format!("cannot read table '{DEMO_TABLE}': {e}")),
    };
    f.table_total = t.obs.num_rows();
    let mut by_region = match zarrtx::table::ids::ids_by_region(DEMO_TABLE, &t.obs, "region", "instance_id") {
        Ok(by_region) => by_region,
        Err(e) => return f.table_problems.push(e.to_string()),
    };
    for (i, rows) in f.rows_per_worker.iter_mut().enumerate() {
        for k in 0..args.per_worker {
            let region = labels_name(i, k);
            let mut got = by_region.remove(&region).unwrap_or_default();
            got.sort_unstable();
            let want = label_ids(&synthetic_labels(i, k, args.size));
            *rows += got.len();
            if got != want {
                f.table_problems.push(format!(
                    "region {region}: {} row(s), expected each of its {} cells exactly once",
                    got.len(),
                    want.len()
                ));
            }
        }
    }
    for (region, ids) in by_region {
        f.table_problems.push(format!("{} unexpected row(s) for region {region}", ids.len()));
    }
}
