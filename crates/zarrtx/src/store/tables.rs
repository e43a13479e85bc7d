//! Tables in the store: adding a table, concurrent row appends (guarantee G7), and snapshot reads.
//!
//! An append holds a short per-table lock while it (1) reads the committed table metadata, (2) checks the new
//! rows' schema and instance ids (against the table's id index, O(rows of the touched regions)), (3) writes the
//! rows' chunks beyond the committed length — the one partially filled boundary chunk per array is replaced
//! atomically with identical old rows — and (4) commits an `append` entry carrying the grown metadata. Publishing
//! then writes the grown `zarr.json` files in an order that makes any intermediate state fail loudly for plain
//! readers. zarrtx readers bound every array by the committed length, so they never see uncommitted rows. The
//! lock only orders appenders of one table (they would otherwise write the same boundary chunks); the commit
//! still checks that nothing changed underneath and refuses with `Conflict` otherwise.

use crate::commit::Build;
use crate::error::{Error, Result};
use crate::layout;
use crate::log::Op;
use crate::name::{ElementName, ElementType};
use crate::snapshot::Snapshot;
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
        self.add_staged_with_runs(&name, ElementType::Tables, options.overwrite, runs, |staged| {
            table::write_table(&staged.local_dir()?, &name, data, durable)
        })
    }

    /// Appends `rows` to table `name`, creating the table when it does not exist (exactly once, however many
    /// writers race to create it). Safe from any number of threads, processes and nodes at once; costs
    /// O(rows appended) plus a look-up of the touched regions' instance ids.
    pub fn append(&self, name: &str, rows: &TableData) -> Result<CommitInfo> {
        let name = ElementName::new(name)?;
        table::validate(&name, rows)?;
        self.ensure_writable()?;
        for _ in 0..3 {
            let lock = self.storage().locks().lock_exclusive(&layout::table_lock_key(&name.collision_key()))?;
            let state = self.latest_state()?;
            let Some(record) = state.get(&name).cloned() else {
                match self.add_table(name.as_str(), rows, &AddOptions::default()) {
                    // A plain add of the same name won meanwhile: append to it instead.
                    Err(Error::ElementExists { .. }) => {
                        drop(lock);
                        continue;
                    }
                    other => return other,
                }
            };
            if record.element_type != ElementType::Tables {
                return Err(Error::InvalidElement {
                    name: name.to_string(),
                    reason: format!("'{}' is a {} element, not a table; choose another table name", record.name, record.element_type),
                });
            }
            self.ensure_applied(record.version)?;
            let dir_key = record.installed_key();
            let dir = DataHandle::new(self.inner.storage.clone(), dir_key.clone()).local_dir()?;
            let plan = table::plan_append(&dir, &record.name, &record.tree, rows)?;
            let mut new_runs = Vec::new();
            if let Some(a) = &rows.annotation {
                let ids = table_ids::ids_by_region(name.as_str(), &rows.obs, &a.region_key, &a.instance_key)?;
                let mut runs = record.id_runs.clone();
                if runs.is_empty() && plan.base_rows > 0 {
                    // A table written by another tool has no index yet: build it once from its rows.
                    let existing = table::read_table(&dir, &record.name, &record.tree)?;
                    let old = table_ids::ids_by_region(name.as_str(), &existing.obs, &a.region_key, &a.instance_key)?;
                    runs = table_ids::write_runs(self.storage(), &old)?;
                    new_runs.extend(runs.iter().cloned());
                }
                table_ids::check_unique(name.as_str(), self.storage(), &runs, &ids)?;
                new_runs.extend(table_ids::write_runs(self.storage(), &ids)?);
            }
            table::write_append(&dir, &record.name, &record.tree, &plan, rows, self.durable())?;
            // The grown region list too, before the commit: it keeps the committed regions first, so readers
            // bounded by any committed shape read a correct prefix, and a snapshot at the new version finds it.
            for (rel, bytes) in &plan.replaced_files {
                self.storage().put_relaxed(&format!("{dir_key}/{rel}"), bytes)?;
            }
            let txn = uuid::Uuid::new_v4().to_string();
            let result = self.commit(&txn, name.as_str(), |state| {
                let current = state
                    .get(&name)
                    .filter(|r| r.version == record.version && r.modified_version == record.modified_version)
                    .ok_or_else(|| Error::Conflict {
                        name: name.to_string(),
                        reason: "the table was deleted, replaced or appended to by a writer that bypassed the \
                                 table lock while these rows were written; nothing was committed, retry the append"
                            .into(),
                    })?;
                Ok(Build::Ops(vec![Op::Append {
                    table: current.name.clone(),
                    table_version: record.version,
                    base_rows: plan.base_rows,
                    new_rows: plan.new_rows,
                    tree: plan.tree.clone(),
                    replaced_files: plan.replaced_files.clone(),
                    id_runs: new_runs.clone(),
                    staged: None,
                    staged_files: Vec::new(),
                }]))
            });
            drop(lock);
            return result;
        }
        Err(Error::Contention { name: name.to_string(), attempts: 3 })
    }
}

impl Snapshot {
    /// Reads table `name` exactly as committed at this snapshot's version (rows appended later are not seen).
    pub fn read_table(&self, name: &str) -> Result<TableData> {
        let n = self.record_of(name)?.name.clone();
        self.read_with(name, |data, tree| table::read_table(&data.local_dir()?, &n, tree))
    }

    /// Size, columns and regions of table `name` at this snapshot's version.
    pub fn table_info(&self, name: &str) -> Result<TableInfo> {
        table::describe(&self.record_of(name)?.tree)
    }
}
