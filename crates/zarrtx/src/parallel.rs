//! Parallel loops whose number of items in flight is capped, so that memory stays bounded by
//! `limit × (memory of one item)` however many cores the machine has.

use crate::error::Result;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Default upper bound, in bytes, on the working memory of the chunk and tile tasks in flight at once (half of
/// [`DEFAULT_MEMORY_LIMIT`](crate::raster::DEFAULT_MEMORY_LIMIT)).
pub(crate) const IN_FLIGHT_BUDGET: u64 = 128 << 20;

/// How many tasks of `task_bytes` each fit in `budget` bytes (at least 1, at most the thread count).
pub(crate) fn limit_within(budget: u64, task_bytes: u64) -> usize {
    let fit = (budget / task_bytes.max(1)).max(1);
    (fit.min(usize::MAX as u64) as usize).min(rayon::current_num_threads().max(1))
}

/// Runs `f` on every item with at most `limit` items in flight; stops at the first error (items already started
/// finish) and returns it.
pub(crate) fn try_for_each_limited<T, F>(items: &[T], limit: usize, f: F) -> Result<()>
where
    T: Sync,
    F: Fn(&T) -> Result<()> + Sync,
{
    let limit = limit.max(1).min(items.len());
    if limit <= 1 {
        return items.iter().try_for_each(f);
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    (0..limit).into_par_iter().try_for_each(|_| loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { return Ok(()) };
        if let Err(e) = f(item) {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    })
}

/// Maps every item with at most `limit` in flight, keeping the input order.
pub(crate) fn try_map_limited<T, R, F>(items: &[T], limit: usize, f: F) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R> + Sync,
{
    let slots: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let indexed: Vec<usize> = (0..items.len()).collect();
    try_for_each_limited(&indexed, limit, |&i| {
        let r = f(&items[i])?;
        if let Ok(mut slot) = slots[i].lock() {
            *slot = Some(r);
        }
        Ok(())
    })?;
    Ok(slots
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn caps_concurrency_and_keeps_order() {
        let live = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..64).collect();
        let out = try_map_limited(&items, 2, |&x| {
            let now = live.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(1));
            live.fetch_sub(1, Ordering::SeqCst);
            Ok(x * 2)
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn returns_first_error() {
        let items: Vec<u32> = (0..100).collect();
        let r = try_for_each_limited(&items, 4, |&x| {
            if x == 10 {
                Err(Error::InvalidElement { name: "e".into(), reason: "x".into() })
            } else {
                Ok(())
            }
        });
        assert!(r.is_err());
    }
}
