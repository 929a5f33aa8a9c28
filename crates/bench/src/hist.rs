//! Log-linear histograms of microsecond values, and counters that many threads bump cheaply.
//!
//! Buckets: one per microsecond below 128 µs, then 64 buckets per power of two, so a value is
//! off by less than 1/64 (1.6 %) of itself. 2,688 buckets cover up to ~2^47 µs.
//!
//! [`ShardedHist`] and [`ShardedCounter`] give every thread its own shard (picked by a small
//! per-thread number), so recording is an uncontended atomic add on a cache line that no other
//! thread writes; readers sum the shards.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Values below this are exact buckets.
const LINEAR: u64 = 128;
/// Buckets per power of two above `LINEAR`.
const SUB: usize = 64;
/// Number of buckets.
pub const BUCKETS: usize = LINEAR as usize + 40 * SUB;

/// Bucket of a value.
pub fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let bits = 64 - v.leading_zeros() as usize; // >= 8
    let e = bits - 7; // >= 1
    let i = LINEAR as usize + (e - 1) * SUB + (v >> e) as usize - SUB;
    i.min(BUCKETS - 1)
}

/// Lowest value that falls in bucket `i`, and the bucket's width.
pub fn bucket_range(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, 1);
    }
    let k = i - LINEAR as usize;
    let e = (k / SUB + 1) as u32;
    let m = (k % SUB + SUB) as u64;
    (m << e, 1u64 << e)
}

/// Representative value of bucket `i`: exact below 128, else the bucket's midpoint.
pub fn bucket_value(i: usize) -> f64 {
    let (lo, w) = bucket_range(i);
    if w == 1 {
        lo as f64
    } else {
        lo as f64 + w as f64 / 2.0
    }
}

/// A plain histogram (one owner), used for merging, percentiles and (de)serialising.
#[derive(Clone, Debug)]
pub struct Hist {
    pub counts: Vec<u64>,
    /// Exact largest value recorded (0 if none).
    pub max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

impl Hist {
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            max: 0,
        }
    }

    #[cfg(test)]
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    #[cfg(test)]
    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    /// The `p`-quantile (0..=1): the representative value of the bucket holding the
    /// ceil(p·n)-th smallest value (the smallest for p = 0); `None` if empty.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // Never report more than the exact maximum.
                return Some(bucket_value(i).min(self.max as f64));
            }
        }
        None
    }

    /// Non-empty buckets as `i:count,i:count,...` (`-` when empty), and the max as `max:v`.
    pub fn encode(&self) -> String {
        let mut s = format!("max:{}", self.max);
        for (i, c) in self.counts.iter().enumerate() {
            if *c > 0 {
                s.push_str(&format!(",{i}:{c}"));
            }
        }
        s
    }

    /// Adds what [`Hist::encode`] wrote; malformed items are an error.
    pub fn merge_encoded(&mut self, s: &str) -> Result<(), String> {
        for item in s.split(',').filter(|x| !x.is_empty()) {
            let (k, v) = item
                .split_once(':')
                .ok_or_else(|| format!("bad histogram item {item:?}"))?;
            let v: u64 = v
                .parse()
                .map_err(|_| format!("bad histogram count {item:?}"))?;
            if k == "max" {
                self.max = self.max.max(v);
                continue;
            }
            let i: usize = k
                .parse()
                .map_err(|_| format!("bad histogram bucket {item:?}"))?;
            if i >= BUCKETS {
                return Err(format!("histogram bucket out of range {item:?}"));
            }
            self.counts[i] += v;
        }
        Ok(())
    }
}

/// Shards per sharded structure; threads beyond this share shards (still correct: atomic adds).
const SHARDS: usize = 8;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SLOT: usize = NEXT_THREAD.fetch_add(1, Relaxed) % SHARDS;
}

fn slot() -> usize {
    THREAD_SLOT.with(|s| *s)
}

struct HistShard {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
}

/// A histogram that any thread records into without contention.
pub struct ShardedHist {
    shards: Box<[HistShard]>,
}

impl Default for ShardedHist {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardedHist {
    pub fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| HistShard {
                counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
                max: AtomicU64::new(0),
            })
            .collect();
        Self { shards }
    }

    #[inline]
    pub fn record(&self, v: u64) {
        self.record_n(v, 1);
    }

    /// Records `n` occurrences of `v`.
    #[inline]
    pub fn record_n(&self, v: u64, n: u64) {
        let s = &self.shards[slot()];
        s.counts[bucket(v)].fetch_add(n, Relaxed);
        if v > s.max.load(Relaxed) {
            s.max.fetch_max(v, Relaxed);
        }
    }

    /// A snapshot of all shards summed.
    pub fn snapshot(&self) -> Hist {
        let mut h = Hist::new();
        for s in self.shards.iter() {
            for (a, b) in h.counts.iter_mut().zip(s.counts.iter()) {
                *a += b.load(Relaxed);
            }
            h.max = h.max.max(s.max.load(Relaxed));
        }
        h
    }
}

#[repr(align(128))]
#[derive(Default)]
struct PaddedU64(AtomicU64);

/// A counter that any thread adds to without contention.
#[derive(Default)]
pub struct ShardedCounter {
    shards: [PaddedU64; SHARDS],
}

impl ShardedCounter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.shards[slot()].0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.shards.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_128_and_within_1_6_percent_above() {
        for v in 0..128u64 {
            assert_eq!(bucket(v), v as usize);
            assert_eq!(bucket_value(bucket(v)), v as f64);
        }
        let mut prev = 0;
        let mut v = 128u64;
        while v < 1u64 << 46 {
            let i = bucket(v);
            assert!(i >= prev, "buckets are monotonic");
            prev = i;
            let (lo, w) = bucket_range(i);
            assert!(lo <= v && v < lo + w, "{v} in [{lo}, {})", lo + w);
            let err = (bucket_value(i) - v as f64).abs() / v as f64;
            assert!(err <= 1.0 / 64.0, "error {err} at {v}");
            v = v + v / 37 + 1;
        }
        // Bucket boundaries around powers of two.
        assert_eq!(bucket(127), 127);
        assert_eq!(bucket(128), 128);
        assert_eq!(bucket(129), 128);
        assert_eq!(bucket(130), 129);
        assert_eq!(bucket(255), 191);
        assert_eq!(bucket(256), 192);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles() {
        let mut h = Hist::new();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=100u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(50.0));
        assert_eq!(h.quantile(0.99), Some(99.0));
        assert_eq!(h.quantile(1.0), Some(100.0));
        assert_eq!(h.quantile(0.0), Some(1.0));
        assert_eq!(h.max, 100);

        // One slow outlier among 999 fast ones shows at p999 and max, not at p99.
        let mut h = Hist::new();
        for _ in 0..999 {
            h.record(500);
        }
        h.record(250_000);
        let p99 = h.quantile(0.99).unwrap();
        assert!((p99 - 500.0).abs() / 500.0 < 0.016, "{p99}");
        let p999 = h.quantile(0.999).unwrap();
        assert!((p999 - 500.0).abs() / 500.0 < 0.016, "{p999}");
        let p100 = h.quantile(1.0).unwrap();
        assert!((p100 - 250_000.0).abs() / 250_000.0 < 0.016, "{p100}");
        assert_eq!(h.max, 250_000);
    }

    #[test]
    fn quantile_never_exceeds_the_exact_max() {
        let mut h = Hist::new();
        h.record(1000); // bucket [992, 1008): midpoint 1000 but max is exact
        h.record(993);
        assert!(h.quantile(1.0).unwrap() <= 1000.0);
        let mut h = Hist::new();
        h.record(993);
        assert_eq!(h.quantile(1.0), Some(993.0));
    }

    #[test]
    fn encode_merge_roundtrip() {
        let mut a = Hist::new();
        for v in [0u64, 5, 5, 127, 128, 1_000, 77_777, 1 << 40] {
            a.record(v);
        }
        let mut b = Hist::new();
        b.merge_encoded(&a.encode()).unwrap();
        assert_eq!(a.counts, b.counts);
        assert_eq!(a.max, b.max);
        b.merge_encoded(&a.encode()).unwrap();
        assert_eq!(b.count(), 2 * a.count());
        assert!(Hist::new().merge_encoded("3:x").is_err());
        assert!(Hist::new().merge_encoded("999999:1").is_err());
        assert!(Hist::new().merge_encoded("").is_ok());
    }

    #[test]
    fn sharded_structures_sum_over_threads() {
        let h = std::sync::Arc::new(ShardedHist::new());
        let c = std::sync::Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (h, c) = (h.clone(), c.clone());
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        h.record(i + t);
                        c.add(2);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 4000);
        assert_eq!(s.max, 1002);
        assert_eq!(c.get(), 8000);
        let mut m = Hist::new();
        m.merge(&s);
        m.merge(&s);
        assert_eq!(m.count(), 8000);
    }
}
