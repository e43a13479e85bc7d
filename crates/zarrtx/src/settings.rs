//! The timing settings every writer of one store must agree on, recorded in `.zarrtx/format.json` when the store
//! (or hierarchy) is created and read by every process that opens it.
//!
//! - `publish_fence_ms`: on media without compare-and-swap (POSIX filesystems), a publisher writes a view only if
//!   less than this much time passed since it read the head of the log, and data displaced by a commit moves only
//!   this long after the commit was seen (see `publish`). Default 2 s.
//! - `lease_ms`: how long a writer's lease (on its staging area, a plan part, a plan commit) lives without renewal
//!   before gc or another writer may treat the writer as dead (see `storage::lease`). Default 30 s.
//!
//! The defaults can be changed for new stores with `ZARRTX_PUBLISH_FENCE_MS` and `ZARRTX_LEASE_MS`, or with
//! [`crate::OpenOptions::settings`].

use crate::error::Result;
use crate::layout;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default publish fence (milliseconds).
pub const DEFAULT_PUBLISH_FENCE_MS: u64 = 2_000;
/// Default lease timeout (milliseconds).
pub const DEFAULT_LEASE_MS: u64 = 30_000;

/// Timing settings of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSettings {
    /// See the module documentation.
    #[serde(default = "default_fence")]
    pub publish_fence_ms: u64,
    /// See the module documentation.
    #[serde(default = "default_lease")]
    pub lease_ms: u64,
}

fn default_fence() -> u64 {
    DEFAULT_PUBLISH_FENCE_MS
}

fn default_lease() -> u64 {
    DEFAULT_LEASE_MS
}

fn env_ms(var: &str) -> Option<u64> {
    std::env::var(var).ok()?.trim().parse().ok().filter(|&ms| ms > 0)
}

impl Default for StoreSettings {
    /// The defaults, or `ZARRTX_PUBLISH_FENCE_MS` / `ZARRTX_LEASE_MS` when set.
    fn default() -> Self {
        StoreSettings {
            publish_fence_ms: env_ms("ZARRTX_PUBLISH_FENCE_MS").unwrap_or(DEFAULT_PUBLISH_FENCE_MS),
            lease_ms: env_ms("ZARRTX_LEASE_MS").unwrap_or(DEFAULT_LEASE_MS),
        }
    }
}

impl StoreSettings {
    /// The publish fence.
    pub fn publish_fence(&self) -> Duration {
        Duration::from_millis(self.publish_fence_ms)
    }

    /// The lease timeout.
    pub fn lease_timeout(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// The settings recorded in `.zarrtx/format.json`, or `fallback` for a store written before they were
    /// recorded (or whose marker is unreadable: the marker is not what decides races).
    pub fn load(storage: &dyn Storage, fallback: StoreSettings) -> Result<StoreSettings> {
        #[derive(Deserialize)]
        struct Format {
            #[serde(default)]
            settings: Option<StoreSettings>,
        }
        Ok(storage
            .get(layout::FORMAT)?
            .and_then(|b| serde_json::from_slice::<Format>(&b).ok())
            .and_then(|f| f.settings)
            .unwrap_or(fallback))
    }

    /// The `.zarrtx/format.json` document of a new store with these settings.
    pub fn format_document(&self) -> serde_json::Value {
        serde_json::json!({"format": "zarrtx", "version": layout::FORMAT_VERSION, "settings": self})
    }
}
