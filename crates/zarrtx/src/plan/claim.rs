//! Claims: "one worker does this at a time" (write part `i` of a plan, commit a plan) on any medium, without
//! locks. A claim is an epoch number taken with create-if-absent, and a lease that shows its holder alive:
//!
//! ```text
//! <base>.claim.<e>     created with create-if-absent: exactly one worker holds epoch e
//! <base>.lease.<e>     its lease, renewed while it works (storage::lease)
//! <base>.released.<e>  written when the holder lets go cleanly (the next worker need not wait)
//! ```
//!
//! The current epoch is the highest claimed. A worker takes epoch `e + 1` when epoch `e` was released, or when its
//! holder stopped renewing for longer than the lease timeout (killed, or its node lost) — so a dead worker's job is
//! taken over without anyone waiting for a lock the kernel of another node would have to release. A holder checks
//! [`Claim::check`] before it records its result: a holder that was taken over (it stalled past its lease) finds a
//! newer epoch and gives up, and results are recorded per epoch, so a stale holder's result never counts.

use crate::error::{Error, Result};
use crate::storage::lease::{lease_state, Lease, LeaseState};
use crate::storage::{parent, PutOutcome, Storage};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A held claim, released when dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    storage: Arc<dyn Storage>,
    base: String,
    /// The epoch this holder claimed.
    pub epoch: u64,
    lease: Option<Lease>,
}

/// What trying to claim found.
pub(crate) enum Claimed {
    /// The caller holds it now.
    Held(Box<Claim>),
    /// Another worker holds it and is alive (epoch, when its claim was made).
    Busy(u64),
}

fn claim_key(base: &str, epoch: u64) -> String {
    format!("{base}.claim.{epoch}")
}

fn lease_key(base: &str, epoch: u64) -> String {
    format!("{base}.lease.{epoch}")
}

fn released_key(base: &str, epoch: u64) -> String {
    format!("{base}.released.{epoch}")
}

/// The highest epoch claimed at `base`, if any.
pub(crate) fn current_epoch(storage: &dyn Storage, base: &str) -> Result<Option<u64>> {
    let stem = base.rsplit('/').next().unwrap_or(base);
    let prefix = format!("{stem}.claim.");
    Ok(storage
        .list(parent(base))?
        .iter()
        .filter_map(|n| n.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max())
}

/// Whether the holder of epoch `epoch` at `base` may still be working.
fn holder_alive(storage: &dyn Storage, base: &str, epoch: u64, timeout: Duration) -> Result<bool> {
    if storage.exists(&released_key(base, epoch))? {
        return Ok(false);
    }
    match lease_state(storage, &lease_key(base, epoch), timeout)? {
        LeaseState::Alive => Ok(true),
        LeaseState::Expired => Ok(false),
        // Claimed but no lease yet: the claimer is between its two writes, or died there.
        LeaseState::Absent => {
            let age = storage
                .modified(&claim_key(base, epoch))?
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or_default();
            Ok(age <= timeout)
        }
    }
}

/// True when a worker may be working on `base` now (the current epoch is neither released nor expired).
pub(crate) fn busy(storage: &dyn Storage, base: &str, timeout: Duration) -> Result<bool> {
    match current_epoch(storage, base)? {
        None => Ok(false),
        Some(e) => holder_alive(storage, base, e, timeout),
    }
}

/// Takes the claim at `base` unless a live worker holds it.
pub(crate) fn try_claim(storage: &Arc<dyn Storage>, base: &str, timeout: Duration) -> Result<Claimed> {
    let next = match current_epoch(storage.as_ref(), base)? {
        None => 0,
        Some(e) if holder_alive(storage.as_ref(), base, e, timeout)? => return Ok(Claimed::Busy(e)),
        Some(e) => e + 1,
    };
    let record = serde_json::json!({"epoch": next, "holder": crate::log::WriterInfo::current(), "token": uuid::Uuid::new_v4().to_string()});
    if storage.put_if_absent(&claim_key(base, next), record.to_string().as_bytes())? == PutOutcome::AlreadyExists {
        return Ok(Claimed::Busy(next));
    }
    let lease = Lease::acquire(storage, &lease_key(base, next), timeout)?;
    if lease.is_none() {
        return Ok(Claimed::Busy(next));
    }
    Ok(Claimed::Held(Box::new(Claim { storage: storage.clone(), base: base.to_string(), epoch: next, lease })))
}

/// Takes the claim at `base`, waiting (polling) while a live worker holds it; `gone()` ends the wait with its error
/// (the thing claimed disappeared).
pub(crate) fn claim_waiting(
    storage: &Arc<dyn Storage>,
    base: &str,
    timeout: Duration,
    gone: impl Fn() -> Result<()>,
) -> Result<Claim> {
    let mut sleep = Duration::from_millis(5);
    loop {
        gone()?;
        if let Claimed::Held(c) = try_claim(storage, base, timeout)? {
            return Ok(*c);
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(200));
    }
}

impl Claim {
    /// Fails unless this holder still holds the claim: its lease is alive and no worker took a newer epoch.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(lease) = &self.lease {
            lease.check()?;
        }
        match current_epoch(self.storage.as_ref(), &self.base)? {
            Some(e) if e == self.epoch => Ok(()),
            _ => Err(Error::Conflict {
                name: self.base.clone(),
                reason: format!(
                    "another worker took this job over (epoch {} is not the newest): this worker stalled for longer \
                     than its lease; its result is discarded",
                    self.epoch
                ),
            }),
        }
    }

    /// The lease behind the claim (for commits that must check it at every attempt).
    pub(crate) fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = self.storage.put(&released_key(&self.base, self.epoch), b"released");
        drop(self.lease.take());
    }
}
