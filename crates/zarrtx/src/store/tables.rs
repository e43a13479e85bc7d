//! Tables in the store: adding a table, concurrent row appends (guarantee G7), and snapshot reads.
//!
//! An append holds a short per-table lock while it (1) reads the committed table metadata, (2) checks the new
//! rows' schema and instance ids (against the table's id index, O(rows of the touched regions)), (3) writes every
//! file the append changes into its own staging area (`.zarrtx/staging/<txn>`): the rows' chunks beyond the
//! committed length, and the one partially filled boundary chunk per array rewritten whole with identical old rows,
//! (4) moves the staged files over the live table's (each move atomic, none changing a committed row) and (5)
//! commits an `append` entry carrying the grown metadata. Publishing then writes the grown `zarr.json` files in an
//! order that makes any intermediate state fail loudly for plain readers. zarrtx readers bound every array by the
//! committed length, so they never see uncommitted rows. The commit still checks that nothing changed underneath
//! and refuses with `Conflict` otherwise.
//!
//! TRANSITIONAL: step (4) comes before the commit, so the per-table lock is still what keeps two appenders from
//! installing boundary chunks over each other (a loser's installed boundary chunk would overwrite a winner's
//! committed rows). Once installation moves after the commit (publication), a loser installs nothing.

use crate::commit::{self, Build};
use crate::error::{Error, Result};
use crate::layout;
use crate::log::{ElementRecord, Op};
use crate::name::{ElementName, ElementType};
use crate::snapshot::Snapshot;
use crate::storage::lease::Lease;
use crate::storage::DataHandle;
use crate::store::{AddOptions, CommitInfo, Store};
use crate::table::{self, TableData, TableInfo};
use crate::table::ids as table_ids;

impl Store {
    /// Adds an AnnData table. The table is validated first (nothing is written for bad input).
    pub fn add_table(&self, name: &str, data: &TableData, options: &AddOptions<'_>) -> Result<CommitInfo> {
        let name = ElementName::new(name)?;
        table::validate(&name, data)?;
        self.ensure_writable()?;
        let runs = match &data.annotation {
            Some(a) => {
                let ids = table_ids::ids_by_region(name.as_str(), &data.obs, &a.region_key, &a.instance_key)?;
                table_ids::check_unique(name.as_str(), self.storage(), &[], &ids)?;
                table_ids::write_runs(self.storage(), &ids)?
            }
            None => Vec::new(),
        };
        let durable = self.durable();
        let result = self.add_staged_with_runs(&name, ElementType::Tables, options.overwrite, runs.clone(), |staged| {
            table::write_table(staged, &name, data, durable)
        });
        if matches!(result, Err(Error::ElementExists { .. })) {
            // The name was taken (by a racing add or first appender): nothing references these runs.
            self.delete_runs(&runs);
        }
        result
    }

    /// Deletes the index runs (and their directories) an attempt wrote that nothing references.
    fn delete_runs(&self, runs: &[String]) {
        let dirs: std::collections::BTreeSet<&str> = runs.iter().filter_map(|k| k.rsplit_once('/').map(|(d, _)| d)).collect();
        for dir in dirs {
            let _ = self.storage().delete_tree(dir);
        }
    }

    /// Appends `rows` to table `name`, creating the table when it does not exist (exactly once, however many
    /// writers race to create it). Safe from any number of threads, processes and nodes at once, with or without
    /// locks; costs O(rows appended) plus a look-up of the touched regions' instance ids.
    ///
    /// The rows' files — fresh chunks beyond the committed length, and the one boundary chunk per array that also
    /// holds committed rows (read, extended, written whole) — are written into the append's private staging area,
    /// never into the table. The commit then requires the table to be at the very generation and last append the
    /// rows were written against (optimistic concurrency: a writer that lost to another append writes again against
    /// the new end, having changed nothing), and publication moves the staged files over the table's in log order.
    /// Where the medium's locks work, appenders of one table queue on its lock instead of retrying.
    pub fn append(&self, name: &str, rows: &TableData) -> Result<CommitInfo> {
        let name = ElementName::new(name)?;
        table::validate(&name, rows)?;
        self.ensure_writable()?;
        let _queue = self.storage().locks().lock_exclusive(&layout::table_lock_key(&name.collision_key())).ok();
        for attempt in 1..=MAX_APPEND_ATTEMPTS {
            let state = self.latest_state()?;
            let Some(record) = state.get(&name).cloned() else {
                match self.add_table(name.as_str(), rows, &AddOptions::default()) {
                    // A plain add of the same name won meanwhile: append to it instead.
                    Err(Error::ElementExists { .. }) => continue,
                    other => return other,
                }
            };
            if record.element_type != ElementType::Tables {
                return Err(Error::InvalidElement {
                    name: name.to_string(),
                    reason: format!("'{}' is a {} element, not a table; choose another table name", record.name, record.element_type),
                });
            }
            // The rows of every earlier append must be in the table: the boundary chunks are read from it.
            if !self.ensure_applied(record.modified_version)? {
                // Other publishers are still moving files in (or the view kept moving): look again shortly.
                commit::backoff(attempt);
                continue;
            }
            let live = DataHandle::new(self.inner.storage.clone(), record.installed_key());
            let plan = table::plan_append(&live, &record.name, &record.tree, rows)?;
            let mut new_runs = Vec::new();
            if let Some(a) = &rows.annotation {
                let ids = table_ids::ids_by_region(name.as_str(), &rows.obs, &a.region_key, &a.instance_key)?;
                let mut runs = record.id_runs.clone();
                if runs.is_empty() && plan.base_rows > 0 {
                    // A table written by another tool has no index yet: build it once from its rows.
                    let existing = table::read_table(&live, &record.name, &record.tree)?;
                    let old = table_ids::ids_by_region(name.as_str(), &existing.obs, &a.region_key, &a.instance_key)?;
                    runs = table_ids::write_runs(self.storage(), &old)?;
                    new_runs.extend(runs.iter().cloned());
                }
                table_ids::check_unique(name.as_str(), self.storage(), &runs, &ids)?;
                new_runs.extend(table_ids::write_runs(self.storage(), &ids)?);
            }
            match self.stage_and_commit_append(&name, &record, &live, &plan, rows, new_runs.clone())? {
                Some(info) => return Ok(info),
                None => {
                    // Another append (or a replacement of the table) won: nothing of ours is in the table, and the
                    // index runs this attempt wrote are referenced by nothing. Again, against the new end.
                    self.delete_runs(&new_runs);
                    commit::backoff(attempt);
                }
            }
        }
        Err(Error::Contention { name: name.to_string(), attempts: MAX_APPEND_ATTEMPTS })
    }

    /// Stages the append's files (under a lease, so gc keeps them however long the write takes) and commits them
    /// against the table generation and last append of `record`. `None` when the table moved on meanwhile (the
    /// staged files are removed; nothing was committed).
    fn stage_and_commit_append(
        &self,
        name: &ElementName,
        record: &ElementRecord,
        live: &DataHandle,
        plan: &table::AppendPlan,
        rows: &TableData,
        id_runs: Vec<String>,
    ) -> Result<Option<CommitInfo>> {
        let txn = uuid::Uuid::new_v4().to_string();
        let staged = layout::staging_key(&txn);
        let lease = Lease::acquire(&self.inner.storage, &layout::staging_lease_key(&txn), self.settings().lease_timeout())?
            .ok_or_else(|| Error::Conflict { name: name.to_string(), reason: "a staging lease of a fresh transaction id exists".into() })?;
        let staging = DataHandle::new(self.inner.storage.clone(), staged.clone());
        let since = self.latest_state()?.version;
        let mut moved_on = false;
        let result = table::write_append(live, &staging, &record.name, &record.tree, plan, rows, self.durable()).and_then(|files| {
            self.commit(&txn, name.as_str(), |state| {
                lease.check()?;
                let Some(current) = state.get(name).filter(|r| r.version == record.version && r.modified_version == record.modified_version) else {
                    moved_on = true;
                    return Err(Error::Conflict { name: name.to_string(), reason: "the table moved on".into() });
                };
                Ok(Build::Ops(vec![Op::Append {
                    table: current.name.clone(),
                    table_version: record.version,
                    base_rows: plan.base_rows,
                    new_rows: plan.new_rows,
                    tree: plan.tree.clone(),
                    replaced_files: Vec::new(),
                    id_runs: id_runs.clone(),
                    staged: Some(staged.clone()),
                    staged_files: files.clone(),
                }]))
            })
        });
        if result.is_err() && self.txn_committed(&txn, since).is_ok_and(|c| c.is_none()) {
            let _ = staging.delete_tree("");
        }
        drop(lease);
        match result {
            Err(Error::Conflict { .. }) if moved_on => Ok(None),
            other => other.map(Some),
        }
    }
}

/// How many times an append is written again after other appends to its table won (without locks, every appender
/// of a busy table may lose a few times).
const MAX_APPEND_ATTEMPTS: u32 = 1_000;

impl Snapshot {
    /// Reads table `name` exactly as committed at this snapshot's version (rows appended later are not seen).
    pub fn read_table(&self, name: &str) -> Result<TableData> {
        let n = self.record_of(name)?.name.clone();
        self.read_with(name, |data, tree| table::read_table(data, &n, tree))
    }

    /// Size, columns and regions of table `name` at this snapshot's version.
    pub fn table_info(&self, name: &str) -> Result<TableInfo> {
        table::describe(&self.record_of(name)?.tree)
    }
}
