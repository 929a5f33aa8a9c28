//! Throttled reporting of PUB/SUB messages dropped at a full dispatcher queue.
//!
//! A flood the node cannot take drops messages by the thousand; one warning per message would
//! bury the log (and cost more than the drop itself). Drops are counted, and at most one line a
//! second says how many there were since the last line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Milliseconds between two warnings.
const INTERVAL_MS: u64 = 1_000;

pub(crate) struct DropLog {
    start: Instant,
    /// Drops not yet reported.
    pending: AtomicU64,
    /// Earliest time (ms since `start`) the next warning may be written.
    next_ms: AtomicU64,
}

impl DropLog {
    pub(crate) fn new() -> Self {
        DropLog {
            start: Instant::now(),
            pending: AtomicU64::new(0),
            next_ms: AtomicU64::new(0),
        }
    }

    /// Counts one drop and writes the warning when one is due.
    pub(crate) fn dropped(&self) {
        let now_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(count) = self.record(now_ms) {
            tracing::warn!(
                dropped = count,
                "redis dispatcher overloaded: messages dropped; subscriptions check their positions"
            );
        }
    }

    /// Counts one drop at `now_ms`; returns the count to report when a warning is due.
    fn record(&self, now_ms: u64) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms < next {
            return None;
        }
        // One caller wins the right to report this interval.
        self.next_ms
            .compare_exchange(
                next,
                now_ms.saturating_add(INTERVAL_MS),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .ok()?;
        Some(self.pending.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_reported_once_then_summed_per_interval() {
        let log = DropLog::new();
        assert_eq!(log.record(5), Some(1), "the first drop is reported at once");
        for ms in 6..1_005 {
            assert_eq!(
                log.record(ms),
                None,
                "quiet within the interval (at {ms} ms)"
            );
        }
        assert_eq!(
            log.record(1_005),
            Some(1_000),
            "the next line carries every drop since the last"
        );
        assert_eq!(log.record(1_500), None);
        assert_eq!(
            log.record(60_000),
            Some(2),
            "after a quiet spell, at once again"
        );
    }

    #[test]
    fn concurrent_drops_are_all_counted_and_reported_once_per_interval() {
        let log = std::sync::Arc::new(DropLog::new());
        let reported: u64 = (0..4)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || (0..10_000).filter_map(|_| log.record(0)).sum::<u64>())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        let reports_left = log.record(INTERVAL_MS).unwrap();
        assert_eq!(
            reported + reports_left,
            40_001,
            "no drop lost from the counts"
        );
        assert!(
            (1..40_000).contains(&reported),
            "one report in the first interval"
        );
    }
}
