//! The in-process engine: [`MemoryBroker`] (publications, stream positions, history) and
//! [`MemoryPresence`], both keeping all state in this process's memory. Suitable for a single
//! node; everything is lost on restart, after which every stream gets a new epoch.
//!
//! Invariants shared by both halves:
//! * State is split into [`NUM_SHARDS`] independently locked shards chosen by a hash of the
//!   channel name, so operations on different channels rarely contend and no operation takes a
//!   global lock. A shard lock is never held across an `.await`.
//! * Expiry is lazy: reads treat expired entries as absent (and drop them when convenient).
//!   Memory is reclaimed by [`MemoryEngine::cleanup_expired`], which the node's housekeeping
//!   tick calls; the engine runs no timers of its own.
//! * Time comes from an injectable [`Clock`], so tests can move it forward deterministically.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod broker;
#[cfg(test)]
mod delta_meta_tests;
mod idempotency;
mod presence;
#[cfg(test)]
mod publish_options_tests;

pub use broker::MemoryBroker;
pub use idempotency::MAX_RESULTS as MAX_IDEMPOTENCY_RESULTS;
pub use presence::MemoryPresence;

/// The source of "now" for expiry decisions. [`system_clock`] in production.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// A [`Clock`] reading [`Instant::now`].
pub fn system_clock() -> Clock {
    Arc::new(Instant::now)
}

/// Number of independently locked shards in each memory structure (a power of two).
pub const NUM_SHARDS: usize = 64;

/// Picks the shard of `key` (FNV-1a; cheap, and good enough to spread channel names).
fn shard_index(key: &str) -> usize {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // Fold the high bits in: FNV's low bits alone mix poorly for short keys.
    ((hash ^ (hash >> 32)) as usize) & (NUM_SHARDS - 1)
}

/// `now + ttl`, where a zero `ttl` (or one too large to represent) means "never" (`None`).
fn deadline(now: Instant, ttl: Duration) -> Option<Instant> {
    if ttl.is_zero() {
        None
    } else {
        now.checked_add(ttl)
    }
}

/// Whether a deadline computed by [`deadline`] has passed at `now`.
fn is_expired(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|at| at <= now)
}

/// The memory broker and presence manager together, sharing one clock.
pub struct MemoryEngine {
    pub broker: Arc<MemoryBroker>,
    pub presence: Arc<MemoryPresence>,
}

impl MemoryEngine {
    /// An engine on the system clock. `meta_ttl` is `memory_history_meta_ttl`: how long a
    /// stream's offset and epoch survive without publications (zero = forever).
    pub fn new(meta_ttl: Duration) -> Self {
        Self::with_clock(meta_ttl, system_clock())
    }

    /// Like [`MemoryEngine::new`] with a custom clock (for tests).
    pub fn with_clock(meta_ttl: Duration, clock: Clock) -> Self {
        Self {
            broker: Arc::new(MemoryBroker::with_clock(meta_ttl, clock.clone())),
            presence: Arc::new(MemoryPresence::with_clock(clock)),
        }
    }

    /// Reclaims expired history, stream metadata and presence entries as of `now`.
    pub fn cleanup_expired(&self, now: Instant) {
        self.broker.cleanup_expired(now);
        self.presence.cleanup_expired(now);
    }
}

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("broker", &self.broker)
            .field("presence", &self.presence)
            .finish()
    }
}

/// Test helpers shared by the broker and presence tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::Clock;

    /// A clock that only moves when told to.
    pub(crate) struct ManualClock {
        base: Instant,
        elapsed_ms: AtomicU64,
    }

    impl ManualClock {
        pub(crate) fn new() -> Arc<Self> {
            Arc::new(Self {
                base: Instant::now(),
                elapsed_ms: AtomicU64::new(0),
            })
        }

        pub(crate) fn now(&self) -> Instant {
            self.base + Duration::from_millis(self.elapsed_ms.load(Ordering::SeqCst))
        }

        pub(crate) fn advance(&self, by: Duration) {
            let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
        }

        pub(crate) fn clock(self: &Arc<Self>) -> Clock {
            let this = Arc::clone(self);
            Arc::new(move || this.now())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_index_is_in_range_and_spreads() {
        let mut used = [false; NUM_SHARDS];
        for i in 0..10_000 {
            let idx = shard_index(&format!("chat:{i}"));
            assert!(idx < NUM_SHARDS);
            used[idx] = true;
        }
        assert!(
            used.iter().all(|u| *u),
            "every shard should get some channel"
        );
        assert_eq!(shard_index("news"), shard_index("news"));
    }

    #[test]
    fn deadline_zero_means_never() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::ZERO), None);
        assert!(!is_expired(None, now));
        let at = deadline(now, Duration::from_secs(1));
        assert!(!is_expired(at, now));
        assert!(is_expired(at, now + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn engine_cleanup_covers_both_halves() {
        use crate::engine::{Broker, HistoryFilter, PresenceManager, PublishOptions};
        use rotor_protocol::ClientInfo;

        let clock = testing::ManualClock::new();
        let engine = MemoryEngine::with_clock(Duration::from_secs(10), clock.clock());
        let opts = PublishOptions {
            history_size: 5,
            history_lifetime: 5,
            ..Default::default()
        };
        engine
            .broker
            .publish("a", bytes::Bytes::from_static(b"1"), None, opts)
            .await
            .unwrap();
        let info = ClientInfo {
            user: "u".into(),
            client: "c".into(),
            ..Default::default()
        };
        engine.presence.add_presence("a", info, 5).await.unwrap();
        assert_eq!(engine.broker.num_streams(), 1);
        assert_eq!(engine.presence.num_channels(), 1);

        clock.advance(Duration::from_secs(11));
        engine.cleanup_expired(clock.now());
        assert_eq!(engine.broker.num_streams(), 0);
        assert_eq!(engine.presence.num_channels(), 0);
        let page = engine
            .broker
            .history("a", HistoryFilter::default())
            .await
            .unwrap();
        assert_eq!(page.position.offset, 0);
    }
}
