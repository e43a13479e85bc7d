//! Where everything lives inside a store. All keys are relative to the store root and use `/`.
//!
//! ```text
//! zarr.json                     published view: root group + inline consolidated metadata + "zarrtx" key
//! images/ labels/ points/ shapes/ tables/   the type groups; elements installed at <type>/<name>/
//! .zarrtx/format.json           marks a zarrtx-managed store; its timing settings (publish fence, lease timeout)
//! .zarrtx/log/<v:020>.json      commit entries, immutable, created with create-if-absent
//! .zarrtx/checkpoints/<v:020>.json  full state as of version v (deterministic, create-if-absent)
//! .zarrtx/head                  hint: a committed version (never ahead of the truth)
//! .zarrtx/applied               hint: every entry up to this version is installed (never ahead of the truth)
//! .zarrtx/staging/<txn>/        element data (or an append's files) being written by transaction <txn>
//! .zarrtx/staging/<txn>.lease   the writer's lease on it (renewed while it works; gc keeps the area while alive)
//! .zarrtx/trash/<v:020>-<key>/  element data displaced by the commit at version v, kept for the grace period
//! .zarrtx/tmp/                  temporary files of atomic writes
//! .zarrtx/retired/<minute>/     second names of replaced view and table files, kept 10 minutes for NFS readers
//! .zarrtx/probe/                files of the create-if-absent probe
//! .zarrtx/locks/publish.lock    publishers of one node queue on it (an optimization; not needed for correctness)
//! .zarrtx/locks/table-<key>.lock  appenders of one table queue on it (an optimization; not needed for correctness)
//! .zarrtx/locks/user.lock       the whole-store user lock (`Store::lock` without a name)
//! .zarrtx/locks/user-<key>.lock the user lock named <key> (collision key: lower-cased element-name rules)
//! .zarrtx/plans/<plan id>/      a write plan: plan.json, staged/ (the element), parts/<i>.{lock,started,done},
//!                               commit.lock, committed.json (see `plan`)
//! ```

use crate::name::{ElementName, ElementType};

/// Directory holding every zarrtx-private file. spatialdata and zarr-python ignore it.
pub const META: &str = ".zarrtx";
/// Marker of a zarrtx-managed store.
pub const FORMAT: &str = ".zarrtx/format.json";
/// Directory of commit entries.
pub const LOG_DIR: &str = ".zarrtx/log";
/// Directory of checkpoints.
pub const CHECKPOINT_DIR: &str = ".zarrtx/checkpoints";
/// Hint of a committed version.
pub const HEAD_HINT: &str = ".zarrtx/head";
/// Version installed and published.
pub const APPLIED: &str = ".zarrtx/applied";
/// Staging area for element data.
pub const STAGING_DIR: &str = ".zarrtx/staging";
/// Displaced element data awaiting gc.
pub const TRASH_DIR: &str = ".zarrtx/trash";
/// Temporary files.
pub const TMP_DIR: &str = ".zarrtx/tmp";
/// Second names of replaced files, kept for readers on other NFS clients (see `retire`).
pub const RETIRED_DIR: &str = ".zarrtx/retired";
/// Probe files.
pub const PROBE_DIR: &str = ".zarrtx/probe";
/// Instance-id index runs of tables.
pub const TABLE_INDEX_DIR: &str = ".zarrtx/tableidx";
/// Lock directory.
pub const LOCK_DIR: &str = ".zarrtx/locks";
/// The publish lock file.
pub const PUBLISH_LOCK: &str = ".zarrtx/locks/publish.lock";
/// The whole-store user lock (`Store::lock` without a name; every named user lock holds it shared).
pub const USER_STORE_LOCK: &str = ".zarrtx/locks/user.lock";
/// Write plans (one directory per plan).
pub const PLANS_DIR: &str = ".zarrtx/plans";
/// The root group document (the published view).
pub const ROOT_ZARR_JSON: &str = "zarr.json";
/// Format version of the `.zarrtx` layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;
/// A checkpoint is written every this many versions.
pub const CHECKPOINT_INTERVAL: u64 = 64;

/// Key of the commit entry for `version`.
pub fn log_key(version: u64) -> String {
    format!("{LOG_DIR}/{version:020}.json")
}

/// Key of the checkpoint for `version`.
pub fn checkpoint_key(version: u64) -> String {
    format!("{CHECKPOINT_DIR}/{version:020}.json")
}

/// Parses a `<v:020>.json` file name.
pub fn parse_version_file(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Key of the staging directory of transaction `txn`.
pub fn staging_key(txn: &str) -> String {
    format!("{STAGING_DIR}/{txn}")
}

/// Key of the lock that orders appenders of one table (by collision key).
pub fn table_lock_key(key: &str) -> String {
    format!("{LOCK_DIR}/table-{key}.lock")
}

/// Key of the user lock named by collision key `key` (`Store::lock` with a name).
pub fn user_lock_key(key: &str) -> String {
    format!("{LOCK_DIR}/user-{key}.lock")
}

/// Key of the directory of write plan `plan_id`.
pub fn plan_key(plan_id: &str) -> String {
    format!("{PLANS_DIR}/{plan_id}")
}

/// Key of the lease a writer holds on its staging area while it may still commit it (see `storage::lease`).
pub fn staging_lease_key(txn: &str) -> String {
    format!("{STAGING_DIR}/{txn}.lease")
}

/// Key under which the element with collision key `key`, displaced by the commit at `version`, is kept.
pub fn trash_key(version: u64, key: &str) -> String {
    format!("{TRASH_DIR}/{version:020}-{key}")
}

/// Key of an installed element.
pub fn element_key(element_type: ElementType, name: &ElementName) -> String {
    format!("{}/{}", element_type.group(), name.as_str())
}

/// Key of a type group's `zarr.json`.
pub fn type_group_key(element_type: ElementType) -> String {
    format!("{}/zarr.json", element_type.group())
}
