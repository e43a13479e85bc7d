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

use crate::error::{Error, Result};
use crate::layout;
use crate::log::Op;
use crate::meta::NodeTree;
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
            table::write_table(staged, &name, data, durable)
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
            let txn = uuid::Uuid::new_v4().to_string();
            self.stage_and_install_append(&txn, &live, &record.name, &record.tree, &plan, rows)?;
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
                Ok(vec![Op::Append {
                    table: current.name.clone(),
                    table_version: record.version,
                    base_rows: plan.base_rows,
                    new_rows: plan.new_rows,
                    tree: plan.tree.clone(),
                    replaced_files: plan.replaced_files.clone(),
                    id_runs: new_runs.clone(),
                }])
            });
            drop(lock);
            return result;
        }
        Err(Error::Contention { name: name.to_string(), attempts: 3 })
    }
}

impl Store {
    /// Writes the append's files into the staging area of transaction `txn` (never into `live`), then moves them
    /// over the live table's in the order [`table::write_append`] gives and removes the staging area. The staging
    /// area is locked meanwhile, so `gc` leaves it alone however long the write takes.
    ///
    /// TRANSITIONAL: this installs before the append's commit; the commit protocol will install after it.
    fn stage_and_install_append(
        &self,
        txn: &str,
        live: &DataHandle,
        name: &ElementName,
        tree: &NodeTree,
        plan: &table::AppendPlan,
        rows: &TableData,
    ) -> Result<()> {
        let storage = self.storage();
        let in_use = storage.locks().lock_exclusive(&layout::staging_lock_key(txn))?;
        let staging = DataHandle::new(self.inner.storage.clone(), layout::staging_key(txn));
        let durable = self.durable();
        let result = (|| {
            let keys = table::write_append(live, &staging, name, tree, plan, rows, durable)?;
            let installed = table::install_staged_files(storage, staging.prefix(), live.prefix(), &keys)?;
            if durable {
                storage.sync(&installed)?;
            }
            Ok(())
        })();
        let _ = staging.delete_tree("");
        drop(in_use);
        let _ = storage.delete(&layout::staging_lock_key(txn));
        result
    }
}

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
