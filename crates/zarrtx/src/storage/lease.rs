//! Leases: claims that expire unless their holder renews them. They replace `flock` wherever the protocol must
//! know whether a writer is still alive (gc must not reclaim what a live writer still needs), because locks may be
//! node-local or absent while a lease is an object every node sees.
//!
//! A lease is an object created with create-if-absent (so exactly one holder gets it) whose content names its
//! holder (a unique token) and its timeout. A thread renews it (atomic replace) every fifth of the timeout while the
//! [`Lease`] lives; dropping it stops the renewals and deletes the object. Anyone may judge a lease by its age (the
//! object's modification time against the clock): older than its timeout means the holder is dead or stalled, and
//! its claim may be broken — gc deletes the lease object first ("revokes" it), then the data it protected.
//!
//! Fencing: before a holder acts on what the lease protects (commits staged data, records a part as done), it calls
//! [`Lease::check`], which fails when the lease was revoked or taken over, or when its own last renewal is older than
//! half the timeout (it may have been judged expired). What remains is the usual assumption of every lease: a holder
//! does not pause for longer than half the timeout between its check and its act, and clocks of different nodes
//! differ by much less than the timeout.

use super::Storage;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Unique to the holder.
    pub token: String,
    /// The timeout the holder renews against, in milliseconds.
    pub timeout_ms: u64,
    /// Who holds it.
    pub holder: crate::log::WriterInfo,
}

/// A held lease, renewed in the background until dropped.
#[derive(Debug)]
pub struct Lease {
    storage: Arc<dyn Storage>,
    key: String,
    record: LeaseRecord,
    timeout: Duration,
    renewed: Arc<Mutex<Instant>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

fn encode(storage: &dyn Storage, key: &str, record: &LeaseRecord) -> Result<Vec<u8>> {
    super::json::json_bytes(storage, key, record)
}

impl Lease {
    /// Takes the lease at `key` if nobody holds it: `None` when the object exists already (alive or not — breaking
    /// an expired lease is the caller's decision, see [`revoke_if_expired`]).
    pub fn acquire(storage: &Arc<dyn Storage>, key: &str, timeout: Duration) -> Result<Option<Lease>> {
        let record = LeaseRecord {
            token: uuid::Uuid::new_v4().to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            holder: crate::log::WriterInfo::current(),
        };
        let bytes = encode(storage.as_ref(), key, &record)?;
        if storage.put_if_absent(key, &bytes)? == super::PutOutcome::AlreadyExists {
            return Ok(None);
        }
        let renewed = Arc::new(Mutex::new(Instant::now()));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (storage, key, renewed, stop) = (storage.clone(), key.to_string(), renewed.clone(), stop.clone());
            let interval = (timeout / 5).max(Duration::from_millis(10));
            std::thread::Builder::new()
                .name("zarrtx-lease".into())
                .spawn(move || renew_until_stopped(storage.as_ref(), &key, &bytes, interval, &renewed, &stop))
                .ok()
        };
        Ok(Some(Lease { storage: storage.clone(), key: key.to_string(), record, timeout, renewed, stop, thread }))
    }

    /// The lease's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Fails unless this holder still holds the lease: the object still names it, and its own last renewal is
    /// younger than half the timeout.
    pub fn check(&self) -> Result<()> {
        let lost = |why: &str| Error::Conflict {
            name: self.key.clone(),
            reason: format!(
                "this writer's lease {why}; another process may have taken over or gc may have reclaimed its data, so \
                 nothing was committed: run the operation again"
            ),
        };
        let since = self.renewed.lock().map(|t| t.elapsed()).unwrap_or(Duration::MAX);
        if since > self.timeout / 2 {
            return Err(lost(&format!("was last renewed {} ms ago (timeout {} ms)", since.as_millis(), self.timeout.as_millis())));
        }
        match self.storage.get(&self.key)? {
            Some(bytes) if serde_json::from_slice::<LeaseRecord>(&bytes).is_ok_and(|r| r.token == self.record.token) => Ok(()),
            Some(_) => Err(lost("was taken over by another writer")),
            None => Err(lost("was revoked")),
        }
    }
}

fn renew_until_stopped(
    storage: &dyn Storage,
    key: &str,
    bytes: &[u8],
    interval: Duration,
    renewed: &Mutex<Instant>,
    stop: &(Mutex<bool>, Condvar),
) {
    let (flag, cv) = stop;
    let Ok(mut stopped) = flag.lock() else { return };
    loop {
        let waited = cv.wait_timeout(stopped, interval);
        let Ok((guard, _)) = waited else { return };
        stopped = guard;
        if *stopped {
            return;
        }
        // Renew only a lease that is still ours and that nobody could have judged expired yet: a revoked or
        // taken-over lease must not come back to life.
        let late = renewed.lock().map(|t| t.elapsed() > interval * 4).unwrap_or(true);
        if late {
            return;
        }
        let ours = matches!(storage.get(key), Ok(Some(current)) if current == bytes);
        if ours && storage.put(key, bytes).is_ok() {
            if let Ok(mut t) = renewed.lock() {
                *t = Instant::now();
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        if let Ok(mut stopped) = flag.lock() {
            *stopped = true;
        }
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Delete only our own lease (not one a taker created after revoking ours).
        if matches!(self.storage.get(&self.key), Ok(Some(b)) if serde_json::from_slice::<LeaseRecord>(&b).is_ok_and(|r| r.token == self.record.token)) {
            let _ = self.storage.delete(&self.key);
        }
    }
}

/// The state of the lease object at `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// There is no lease object.
    Absent,
    /// Renewed within its timeout (or `min_timeout`, when longer): its holder may be alive.
    Alive,
    /// Not renewed for longer than its timeout: its holder is dead or stalled.
    Expired,
}

/// Judges the lease at `key` by its age. The timeout is the one the holder declared, but at least `min_timeout`.
pub fn lease_state(storage: &dyn Storage, key: &str, min_timeout: Duration) -> Result<LeaseState> {
    let Some(modified) = storage.modified(key)? else { return Ok(LeaseState::Absent) };
    let declared = storage
        .get(key)?
        .and_then(|b| serde_json::from_slice::<LeaseRecord>(&b).ok())
        .map(|r| Duration::from_millis(r.timeout_ms))
        .unwrap_or(min_timeout);
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    Ok(if age > declared.max(min_timeout) { LeaseState::Expired } else { LeaseState::Alive })
}

/// Deletes the lease at `key` when it expired (or is absent): `true` when nobody holds it any more.
pub fn revoke_if_expired(storage: &dyn Storage, key: &str, min_timeout: Duration) -> Result<bool> {
    match lease_state(storage, key, min_timeout)? {
        LeaseState::Alive => Ok(false),
        LeaseState::Absent => Ok(true),
        LeaseState::Expired => {
            storage.delete(key)?;
            Ok(true)
        }
    }
}
