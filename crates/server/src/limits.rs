//! Node-level limits on new real-time connections: `client.connection_limit` (at most N
//! current client connections on this node) and `client.connection_rate_limit` (at most N new
//! connections per second), Centrifugo's `client_connection_limit` and
//! `client_connection_rate_limit` in flat configs.
//!
//! Every real-time entry point (WebSocket, including the first-request fast path of
//! [`crate::http`], SockJS sessions, HTTP-streaming and SSE, the unidirectional transports and
//! uni gRPC) asks [`Limits::admit`] before it upgrades or starts a stream; a refusal is answered
//! with HTTP 503 (gRPC: `UNAVAILABLE`). `/emulation` posts join an existing session and are not
//! new connections. Current connections are the connection tasks of the server's
//! [`TaskTracker`] (its length is one atomic load), so a connection counts from its upgrade
//! until its task ends, whether or not its connect command has arrived yet.
//!
//! Refusals by the connection limit count in `centrifugo_node_client_connection_limit` and are
//! logged as a warning at most once every [`LOG_EVERY`], as Centrifugo does; refusals by the
//! rate limit are silent, as in Centrifugo.
//!
//! The rate limit is a token bucket with burst N, refilled at N tokens per second: the meaning
//! Centrifugo documents. Centrifugo's own code builds `rate.NewLimiter(rate.Every(1s), N)`,
//! which refills one token per second; a config written for the documentation must not refuse
//! connections its operator allowed, so Rotor follows the documentation.
//!
//! With both limits at 0 (the default) [`Limits::admit`] reads two plain fields and returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::task::TaskTracker;

/// The connection-limit warning is logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(3);

/// Refusals by the connection limit since start (`centrifugo_node_client_connection_limit`).
static LIMIT_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Milliseconds after [`epoch`] of the last warning, plus one (0: never logged).
static LOGGED_AT: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Refusals by the connection limit since the process started.
pub fn limit_refusals() -> u64 {
    LIMIT_REFUSED.load(Ordering::Relaxed)
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `connection_limit` current connections already.
    Limit,
    /// `connection_rate_limit` new connections in the last second already.
    Rate,
}

impl Refusal {
    /// The body of the HTTP 503 answer.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Limit => "connection limit reached",
            Refusal::Rate => "connection rate limit reached",
        }
    }
}

/// The node's connection limits; see the module documentation.
#[derive(Debug, Default)]
pub struct Limits {
    /// 0: off.
    limit: usize,
    /// `None`: off.
    rate: Option<Bucket>,
}

impl Limits {
    /// `limit` current connections and `rate` new connections per second; 0 turns each off.
    pub fn new(limit: usize, rate: usize) -> Self {
        let rate = (rate > 0).then(|| Bucket::new(rate as f64, Instant::now()));
        Self { limit, rate }
    }

    /// Whether a new connection may start now, with `connections` the tracker of the current
    /// connections' tasks. The connection limit is checked first, so a refused attempt does
    /// not spend the rate budget.
    #[inline]
    pub fn admit(&self, connections: &TaskTracker) -> Result<(), Refusal> {
        if self.limit == 0 && self.rate.is_none() {
            return Ok(());
        }
        self.admit_slow(connections.len())
    }

    #[cold]
    fn admit_slow(&self, current: usize) -> Result<(), Refusal> {
        if self.limit > 0 && current >= self.limit {
            LIMIT_REFUSED.fetch_add(1, Ordering::Relaxed);
            warn_throttled(self.limit);
            return Err(Refusal::Limit);
        }
        match &self.rate {
            Some(bucket) if !bucket.take(Instant::now()) => Err(Refusal::Rate),
            _ => Ok(()),
        }
    }
}

/// Logs the connection-limit warning unless it was logged less than [`LOG_EVERY`] ago.
fn warn_throttled(limit: usize) {
    let now = u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let last = LOGGED_AT.load(Ordering::Relaxed);
    let every = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
    if last != 0 && now.saturating_sub(last) < every {
        return;
    }
    // One of several racing refusals logs.
    if LOGGED_AT
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        tracing::warn!(limit, "node connection limit reached");
    }
}

/// A token bucket: `capacity` tokens at most, refilled at `capacity` per second.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(capacity: f64, now: Instant) -> Self {
        Self {
            capacity,
            state: Mutex::new((capacity, now)),
        }
    }

    /// Takes one token at `now` if there is one.
    fn take(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        let (tokens, at) = &mut *s;
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.capacity).min(self.capacity);
        *at = now.max(*at);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_admits_everything() {
        let l = Limits::new(0, 0);
        let t = TaskTracker::new();
        for _ in 0..1000 {
            assert_eq!(l.admit(&t), Ok(()));
        }
    }

    #[test]
    fn limit_counts_tracked_tasks() {
        let l = Limits::new(2, 0);
        let t = TaskTracker::new();
        let a = t.token();
        assert_eq!(l.admit(&t), Ok(()));
        let b = t.token();
        let before = limit_refusals();
        assert_eq!(l.admit(&t), Err(Refusal::Limit));
        assert!(limit_refusals() > before);
        drop(a);
        assert_eq!(l.admit(&t), Ok(()));
        drop(b);
    }

    #[test]
    fn bucket_has_burst_n_and_refills_n_per_second() {
        let t0 = Instant::now();
        let b = Bucket::new(4.0, t0);
        assert!((0..4).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        // A quarter second later: one token (4 per second), not zero (1 per second).
        let t1 = t0 + Duration::from_millis(260);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // Long idle: back to the burst, never more.
        let t2 = t1 + Duration::from_secs(60);
        assert!((0..4).all(|_| b.take(t2)));
        assert!(!b.take(t2));
    }

    #[test]
    fn refused_by_limit_does_not_spend_the_rate() {
        let l = Limits::new(1, 1);
        let t = TaskTracker::new();
        let a = t.token();
        assert_eq!(l.admit(&t), Err(Refusal::Limit));
        drop(a);
        assert_eq!(l.admit(&t), Ok(()));
        assert_eq!(l.admit(&t), Err(Refusal::Rate));
    }
}
