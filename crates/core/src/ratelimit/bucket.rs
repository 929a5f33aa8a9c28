//! Token bucket arithmetic, exact and clock-free: every call takes `now` (nanoseconds on a
//! monotonic clock the caller owns), so tests drive time by hand.
//!
//! A bucket of `rate` tokens per `interval` holds at most `rate` tokens (the burst) and starts
//! full. Tokens come back continuously: after `d` of idle time, `rate × d / interval` tokens,
//! fractions included (fractions accumulate; a command needs one whole token). The level is an
//! integer: one token is `interval_ns` units, `d` nanoseconds of refill add `d × rate` units, and
//! the capacity is `rate × interval_ns` units, so no rounding ever happens and no drift
//! accumulates.

use std::time::Duration;

/// One configured bucket: `rate` tokens per `interval`, burst `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub interval: Duration,
    pub rate: u32,
}

impl Bucket {
    fn interval_ns(&self) -> u128 {
        self.interval.as_nanos().max(1)
    }

    fn capacity(&self) -> u128 {
        u128::from(self.rate) * self.interval_ns()
    }
}

/// The state of one bucket: its level (in units, see the module doc) at `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    level: u128,
    last: u64,
}

impl BucketState {
    /// A full bucket at `now`.
    pub fn full(b: &Bucket, now: u64) -> Self {
        Self {
            level: b.capacity(),
            last: now,
        }
    }

    /// Brings the level up to `now` (a clock going backwards adds nothing).
    fn refill(&mut self, b: &Bucket, now: u64) {
        let elapsed = u128::from(now.saturating_sub(self.last));
        self.level = (self.level + elapsed * u128::from(b.rate)).min(b.capacity());
        self.last = self.last.max(now);
    }

    /// Whether a whole token is there at `now` (after refilling).
    fn has_token(&mut self, b: &Bucket, now: u64) -> bool {
        self.refill(b, now);
        self.level >= b.interval_ns()
    }

    fn take(&mut self, b: &Bucket) {
        self.level -= b.interval_ns();
    }

    /// Whole tokens available (for tests and diagnostics).
    pub fn tokens(&self, b: &Bucket) -> u128 {
        self.level / b.interval_ns()
    }
}

/// The buckets of one limiter (all must pass) with their states.
#[derive(Debug, Clone)]
pub struct BucketSet {
    states: Vec<BucketState>,
}

impl BucketSet {
    pub fn new(buckets: &[Bucket], now: u64) -> Self {
        Self {
            states: buckets.iter().map(|b| BucketState::full(b, now)).collect(),
        }
    }

    /// Whether every bucket has a token at `now`; takes nothing.
    pub fn allows(&mut self, buckets: &[Bucket], now: u64) -> bool {
        let mut ok = true;
        for (s, b) in self.states.iter_mut().zip(buckets) {
            // Refill every bucket even after a refusal, so each is current.
            ok &= s.has_token(b, now);
        }
        ok
    }

    /// Takes one token from every bucket; call only after [`BucketSet::allows`] said yes at
    /// the same `now`.
    pub fn take(&mut self, buckets: &[Bucket]) {
        for (s, b) in self.states.iter_mut().zip(buckets) {
            s.take(b);
        }
    }

    /// Takes a token from each bucket that has one (commands that are counted, never refused).
    pub fn take_available(&mut self, buckets: &[Bucket], now: u64) -> bool {
        let mut all = true;
        for (s, b) in self.states.iter_mut().zip(buckets) {
            if s.has_token(b, now) {
                s.take(b);
            } else {
                all = false;
            }
        }
        all
    }

    /// `allows` then `take`: one token from every bucket, or nothing.
    pub fn try_take(&mut self, buckets: &[Bucket], now: u64) -> bool {
        let ok = self.allows(buckets, now);
        if ok {
            self.take(buckets);
        }
        ok
    }

    /// The state of bucket `i`.
    pub fn state(&self, i: usize) -> &BucketState {
        &self.states[i]
    }

    /// The last time any bucket was looked at.
    pub fn last_used(&self) -> u64 {
        self.states.iter().map(|s| s.last).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn b(rate: u32, secs: u64) -> Bucket {
        Bucket {
            interval: Duration::from_secs(secs),
            rate,
        }
    }

    #[test]
    fn burst_is_rate_then_refused() {
        let bs = [b(3, 1)];
        let mut set = BucketSet::new(&bs, 0);
        assert!(set.try_take(&bs, 0));
        assert!(set.try_take(&bs, 0));
        assert!(set.try_take(&bs, 0));
        assert!(!set.try_take(&bs, 0), "a fourth in the same instant");
    }

    #[test]
    fn refill_is_continuous_with_fractions() {
        let bs = [b(3, 1)];
        let mut set = BucketSet::new(&bs, 0);
        for _ in 0..3 {
            assert!(set.try_take(&bs, 0));
        }
        // One token every 1/3 s: at 0.3 s none yet (0.9 of a token).
        assert!(!set.try_take(&bs, 3 * S / 10));
        // At 0.34 s one whole token (1.02); the 0.02 remainder is kept.
        assert!(set.try_take(&bs, 34 * S / 100));
        assert!(!set.try_take(&bs, 34 * S / 100));
        // 0.02 + 0.98 (at 0.3666..+) makes the next: at 0.67 s 0.02 + 0.99 = 1.01 tokens.
        assert!(set.try_take(&bs, 67 * S / 100));
        // Never more than the burst, however long the pause.
        let later = 3600 * S;
        for _ in 0..3 {
            assert!(set.try_take(&bs, later));
        }
        assert!(!set.try_take(&bs, later));
    }

    #[test]
    fn a_refusal_consumes_nothing() {
        let bs = [b(1, 1), b(10, 60)];
        let mut set = BucketSet::new(&bs, 0);
        assert!(set.try_take(&bs, 0));
        // The 1/s bucket refuses: the 10/min bucket must keep its 9 tokens.
        for _ in 0..100 {
            assert!(!set.try_take(&bs, S / 2));
        }
        assert_eq!(set.state(1).tokens(&bs[1]), 9);
        assert!(set.try_take(&bs, S));
        assert_eq!(set.state(1).tokens(&bs[1]), 8);
    }

    #[test]
    fn every_bucket_must_pass() {
        let bs = [b(10, 1), b(2, 60)];
        let mut set = BucketSet::new(&bs, 0);
        assert!(set.try_take(&bs, 0));
        assert!(set.try_take(&bs, S));
        // The per-second bucket is full again, the per-minute one is empty.
        assert!(!set.try_take(&bs, 2 * S));
        assert!(
            set.try_take(&bs, 30 * S),
            "one of the 2 per minute is back after 30 s"
        );
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let bs = [b(1, 1)];
        let mut set = BucketSet::new(&bs, 10 * S);
        assert!(set.try_take(&bs, 10 * S));
        assert!(!set.try_take(&bs, 5 * S));
        assert!(!set.try_take(&bs, 10 * S + S / 2));
        assert!(set.try_take(&bs, 11 * S));
    }

    #[test]
    fn take_available_takes_what_is_there() {
        let bs = [b(1, 1), b(5, 1)];
        let mut set = BucketSet::new(&bs, 0);
        assert!(set.take_available(&bs, 0));
        assert!(!set.take_available(&bs, 0));
        assert_eq!(set.state(1).tokens(&bs[1]), 3);
    }

    #[test]
    fn large_rates_and_intervals_do_not_overflow() {
        let bs = [Bucket {
            interval: Duration::from_secs(3600),
            rate: u32::MAX,
        }];
        let mut set = BucketSet::new(&bs, 0);
        assert!(set.try_take(&bs, u64::MAX));
        assert!(set.try_take(&bs, u64::MAX));
    }
}
