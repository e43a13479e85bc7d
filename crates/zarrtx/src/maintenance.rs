//! `verify` (what is wrong or left over) and `gc` (reclaim what nothing needs any more).

use crate::adopt::read_node_tree;
use crate::error::Result;
use crate::layout;
use crate::log::reader::{self, read_entry};
use crate::log::{ElementRecord, Op, StoreState};
use crate::name::ElementType;
use crate::publish;
use crate::storage::lease::{self, LeaseState};
use crate::storage::{DataHandle, Storage};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    /// The latest committed version.
    pub version: u64,
    /// The version the root `zarr.json` view reflects, if it is a zarrtx view.
    pub published_version: Option<u64>,
    /// Disagreements between the log, the view and the data: each line says what and where.
    pub problems: Vec<String>,
    /// Debris of interrupted writers (unreferenced staging, temporary and probe files): reclaimed by `gc`.
    pub leftovers: Vec<PathBuf>,
    /// Data of deleted or overwritten elements, kept for readers of older versions until `gc` reclaims it.
    pub retained: Vec<PathBuf>,
}

impl VerifyReport {
    /// True when there are no problems and no leftovers (retained old versions are expected).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.leftovers.is_empty()
    }
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// Removed paths.
    pub removed: Vec<PathBuf>,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Version published after rolling forward.
    pub published_version: u64,
}

/// Staging keys referenced by committed adds and appends that are not installed yet.
fn pending_staging(store: &Store, state: &StoreState) -> Result<BTreeSet<String>> {
    let applied = publish::applied_version(store.storage())?;
    let mut pending = BTreeSet::new();
    let first = applied.map(|a| a + 1).unwrap_or(0);
    for v in first..=state.version {
        if let Some(entry) = read_entry(store.storage(), v)? {
            for op in entry.ops {
                match op {
                    Op::Add { staged, .. } | Op::Append { staged: Some(staged), .. } => {
                        pending.insert(staged);
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(pending)
}

/// A displaced generation whose data still sits at its element's location (a delete leaves it there until gc or a
/// later add of the name evicts it to the trash): (displacing version, collision key, location).
fn unevicted(store: &Store, state: &StoreState) -> Result<Vec<(u64, String, String)>> {
    let storage = store.storage();
    let mut out = Vec::new();
    for (generation, d) in &state.displaced {
        let Some((_, key)) = generation.split_once(':') else { continue };
        let Some((t, n)) = &d.element else { continue };
        if storage.exists(&layout::trash_key(d.version, key))? {
            continue;
        }
        let location = layout::element_key(*t, n);
        // The location holds this generation unless a later generation of the name is installed there.
        let newer_installed = state
            .elements
            .get(key)
            .is_some_and(|r| r.installed_key() == location && r.staged.as_ref().is_none_or(|s| !storage.exists(s).unwrap_or(true)));
        if !newer_installed && storage.exists(&format!("{location}/zarr.json"))? {
            out.push((d.version, key.to_string(), location));
        }
    }
    Ok(out)
}

/// What keeps a plain reader (spatialdata, anndata) from reading the committed table at `key`: data that does not
/// decode as its metadata says, or rows whose regions differ from the regions `uns/spatialdata_attrs` lists
/// (spatialdata refuses such a table: "Regions in the AnnData object and `region` do not match").
fn table_problems(storage: &Arc<dyn Storage>, key: &str, record: &ElementRecord) -> Vec<String> {
    let table = match crate::table::read_table(&DataHandle::new(storage.clone(), key), &record.name, &record.tree) {
        Ok(t) => t,
        Err(e) => return vec![format!("{key}: its data cannot be read ({e}); spatialdata and anndata could not read it either")],
    };
    let Some(a) = &table.annotation else { return Vec::new() };
    let present = match crate::table::ids::ids_by_region(key, &table.obs, &a.region_key, &a.instance_key) {
        Ok(by_region) => by_region.into_keys().collect::<BTreeSet<_>>(),
        Err(e) => return vec![format!("{key}: its annotation columns are unusable: {e}")],
    };
    let listed: BTreeSet<String> = a.region.iter().cloned().collect();
    if present == listed {
        return Vec::new();
    }
    vec![format!(
        "{key}: the rows' regions {present:?} differ from the regions uns/spatialdata_attrs lists {listed:?}; spatialdata \
         refuses to read the table (its rows were changed by a writer outside zarrtx's commits?)"
    )]
}

fn age(store: &Store, key: &str) -> Result<Duration> {
    Ok(store
        .storage()
        .modified(key)?
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default())
}

/// Timestamps of every commit, by version (for the age of trash entries).
fn commit_times(store: &Store, head: u64) -> Result<BTreeMap<u64, u64>> {
    let mut out = BTreeMap::new();
    for v in 0..=head {
        if let Some(e) = read_entry(store.storage(), v)? {
            out.insert(v, e.timestamp_ms);
        }
    }
    Ok(out)
}

/// Names of the `.zarrtx/tableidx/<dir>` directories that committed tables use.
fn referenced_index_dirs(state: &StoreState) -> BTreeSet<String> {
    state
        .elements
        .values()
        .flat_map(|r| r.id_runs.iter())
        .filter_map(|run| run.strip_prefix(layout::TABLE_INDEX_DIR)?.trim_start_matches('/').split('/').next().map(str::to_string))
        .collect()
}

fn trash_version(name: &str) -> Option<u64> {
    name.get(..20)?.parse().ok()
}

impl Store {
    /// Checks the store: the log parses and is contiguous, the view matches the log, every committed element's
    /// data is where it should be with the metadata the log recorded, and lists leftovers of crashed writers.
    pub fn verify(&self) -> Result<VerifyReport> {
        let storage = self.storage();
        let mut report = VerifyReport::default();
        let state = match reader::load_state(storage, None) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(format!("the commit log cannot be replayed: {e}"));
                return Ok(report);
            }
        };
        report.version = state.version;
        for name in storage.list(layout::LOG_DIR)? {
            match layout::parse_version_file(&name) {
                Some(v) if v > state.version => report
                    .problems
                    .push(format!("log entry {name} lies beyond a gap after version {}", state.version)),
                Some(_) => {}
                None => report.leftovers.push(storage.location().join(layout::LOG_DIR).join(name)),
            }
        }
        let applied = publish::applied_version(storage)?;
        if applied.is_none_or(|a| a < state.version) {
            report.problems.push(format!(
                "versions {}..={} are committed but not published yet (a writer stopped after committing); \
                 `zarrtx gc` or any write publishes them",
                applied.map(|a| a + 1).unwrap_or(0),
                state.version
            ));
        }
        match storage.get(layout::ROOT_ZARR_JSON)? {
            None => report.problems.push("the root zarr.json is missing".into()),
            Some(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Err(e) => report.problems.push(format!("the root zarr.json does not parse: {e}")),
                Ok(doc) => {
                    report.published_version = publish::view_version(&doc);
                    if report.published_version == Some(state.version) && doc != publish::root_view(&state) {
                        report.problems.push(
                            "the root zarr.json disagrees with the log at its version (edited by another tool?)"
                                .into(),
                        );
                    }
                }
            },
        }
        let installed_ok = applied.is_some_and(|a| a >= state.version);
        for record in state.elements.values() {
            if !installed_ok {
                break;
            }
            let key = record.installed_key();
            if !storage.exists(&format!("{key}/zarr.json"))? {
                report.problems.push(format!("{key}: committed at version {} but its data is missing", record.version));
                continue;
            }
            if read_node_tree(storage, &key)? != record.tree {
                report.problems.push(format!(
                    "{key}: its zarr.json files differ from what version {} committed",
                    record.version
                ));
            } else if record.element_type == ElementType::Tables {
                report.problems.extend(table_problems(&self.inner.storage, &key, record));
            }
        }
        let kept: Vec<(u64, String, String)> = unevicted(self, &state)?;
        for t in ElementType::ALL {
            for child in storage.list(t.group())? {
                if child == "zarr.json" || child.starts_with('.') {
                    continue;
                }
                let committed = state
                    .elements
                    .values()
                    .any(|r| r.element_type == t && r.name.as_str() == child);
                let key = format!("{}/{child}", t.group());
                if !committed && kept.iter().any(|(_, _, location)| *location == key) {
                    // Deleted (or displaced) data kept in place for readers of older versions, until gc.
                    report.retained.push(storage.location().join(key));
                    continue;
                }
                if !committed {
                    report.problems.push(format!(
                        "{}/{child} is not a committed element (invisible to readers; written by another tool?)",
                        t.group()
                    ));
                }
            }
        }
        let pending = pending_staging(self, &state)?;
        for name in storage.list(layout::STAGING_DIR)? {
            let key = format!("{}/{name}", layout::STAGING_DIR);
            if !pending.contains(&key) && !name.ends_with(".lease") {
                report.leftovers.push(storage.location().join(key));
            }
        }
        for dir in [layout::TMP_DIR, layout::PROBE_DIR] {
            for name in storage.list(dir)? {
                report.leftovers.push(storage.location().join(dir).join(name));
            }
        }
        // Write plans not committed: running, or abandoned (gc reclaims those after the grace period).
        report.leftovers.extend(crate::plan::reclaim::leftovers(self)?);
        let referenced = referenced_index_dirs(&state);
        for name in storage.list(layout::TABLE_INDEX_DIR)? {
            if !referenced.contains(&name) {
                report.leftovers.push(storage.location().join(layout::TABLE_INDEX_DIR).join(name));
            }
        }
        for name in storage.list(layout::TRASH_DIR)? {
            report.retained.push(storage.location().join(layout::TRASH_DIR).join(name));
        }
        Ok(report)
    }

    /// Publishes anything committed but unpublished, then removes what no version within `grace` needs: data of
    /// elements deleted or overwritten more than `grace` ago, staging / temporary files of writers that stopped
    /// (older than `grace` and not locked by a running writer), and write plans idle for `grace` whose part and
    /// commit locks nobody holds (abandoned plans whole; committed plans' records).
    pub fn gc(&self, grace: Duration) -> Result<GcReport> {
        let published_version = self.publish()?;
        let storage = self.storage();
        let state = self.latest_state()?;
        let mut report = GcReport { published_version, ..Default::default() };
        let remove = |key: String, report: &mut GcReport| -> Result<()> {
            report.bytes_freed += storage.delete_tree(&key)?;
            report.removed.push(storage.location().join(key));
            Ok(())
        };
        let pending = pending_staging(self, &state)?;
        let lease_timeout = self.settings().lease_timeout();
        for name in storage.list(layout::STAGING_DIR)? {
            let key = format!("{}/{name}", layout::STAGING_DIR);
            let txn = name.strip_suffix(".lease").or_else(|| name.strip_suffix(".lock")).unwrap_or(&name);
            let lease = layout::staging_lease_key(txn);
            if name.ends_with(".lease") {
                // A lease whose writer is gone (and whose area went with it): nothing to keep.
                if !storage.exists(&layout::staging_key(txn))? && lease::lease_state(storage, &key, lease_timeout)? == LeaseState::Expired {
                    remove(key, &mut report)?;
                }
                continue;
            }
            if pending.contains(&key) || age(self, &key)? < grace {
                continue;
            }
            // A writer renews its lease for as long as it may still commit: revoke only an expired one (the writer's
            // own check before committing then fails), never a live one.
            if !lease::revoke_if_expired(storage, &lease, lease_timeout)? {
                continue;
            }
            remove(key, &mut report)?;
        }
        // Data of deleted generations still at their element's location: into the trash once the fence passed
        // since their delete was seen (no publisher can list them any more) and they are older than the grace period.
        let fence = self.settings().publish_fence();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let times = commit_times(self, state.version)?;
        for (displaced_at, key, location) in unevicted(self, &state)? {
            let old_enough = times.get(&displaced_at).is_some_and(|ms| now_ms.saturating_sub(*ms) >= grace.as_millis() as u64);
            if !old_enough || !storage.capabilities().rename {
                continue;
            }
            if !storage.capabilities().conditional_replace {
                if let Some(wait) = (self.inner.seen_at(displaced_at) + fence).checked_duration_since(std::time::Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            storage.rename(&location, &layout::trash_key(displaced_at, &key))?;
        }
        // Write plans idle for the grace period whose locks nobody holds (abandoned, or committed long ago).
        for (key, bytes) in crate::plan::reclaim::gc(self, grace, &pending)? {
            report.bytes_freed += bytes;
            report.removed.push(storage.location().join(key));
        }
        for name in storage.list(layout::TRASH_DIR)? {
            let key = format!("{}/{name}", layout::TRASH_DIR);
            let displaced_ms = trash_version(&name).and_then(|v| times.get(&v).copied());
            let old_enough = match displaced_ms {
                Some(ms) => now_ms.saturating_sub(ms) >= grace.as_millis() as u64,
                None => age(self, &key)? >= grace,
            };
            if old_enough {
                remove(key, &mut report)?;
            }
        }
        for dir in [layout::TMP_DIR, layout::PROBE_DIR] {
            for name in storage.list(dir)? {
                let key = format!("{dir}/{name}");
                if age(self, &key)? >= grace {
                    remove(key, &mut report)?;
                }
            }
        }
        report.bytes_freed += crate::retire::sweep(storage, grace.min(crate::retire::RETAIN));
        // Index runs of tables that no longer exist, or of appends that never committed.
        let referenced = referenced_index_dirs(&state);
        for name in storage.list(layout::TABLE_INDEX_DIR)? {
            let key = format!("{}/{name}", layout::TABLE_INDEX_DIR);
            if !referenced.contains(&name) && age(self, &key)? >= grace {
                remove(key, &mut report)?;
            }
        }
        Ok(report)
    }
}
