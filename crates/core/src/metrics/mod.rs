//! Process-wide counters for Prometheus (`/metrics`), cheap enough for the hot path.
//!
//! Every hot counter is split into [`SHARDS`] cache-line-sized slots; a thread always adds to
//! its own slot (picked once per thread), so threads fanning out publications in parallel never
//! fight over one cache line. Nothing here locks or allocates when counting; reading sums the
//! slots (done by the exporter at scrape time). Labels are fixed enums (frame type, action,
//! method) or small lock-free code tables, so no label lookup happens per message.
//!
//! The names of what is counted follow Centrifugo (see the server's `metrics.rs` for the
//! exposition and the Centrifugo metric names).

mod metered;

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

pub(crate) use metered::{MeteredBroker, MeteredPresence};

/// Slots per sharded counter.
pub const SHARDS: usize = 16;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's slot index (assigned round robin on first use).
#[inline]
fn shard() -> usize {
    SHARD.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
        s.set(v);
        v
    })
}

#[repr(align(64))]
struct Slot(AtomicU64);

#[repr(align(64))]
struct SignedSlot(AtomicI64);

/// A monotonically increasing counter, sharded per thread.
pub struct Counter {
    slots: [Slot; SHARDS],
}

impl Counter {
    pub const fn new() -> Self {
        Self {
            slots: [const { Slot(AtomicU64::new(0)) }; SHARDS],
        }
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.slots[shard()].0.fetch_add(n, Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// A gauge moved up and down from many threads (sharded; the value is the sum of the slots).
pub struct Gauge {
    slots: [SignedSlot; SHARDS],
}

impl Gauge {
    pub const fn new() -> Self {
        Self {
            slots: [const { SignedSlot(AtomicI64::new(0)) }; SHARDS],
        }
    }

    #[inline]
    pub fn add(&self, n: i64) {
        self.slots[shard()].0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.slots.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Self::new()
    }
}

/// Bucket upper bounds (seconds) of client command durations: Centrifugo's.
pub const COMMAND_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket upper bounds (seconds) of fan-out durations: Centrifugo's `broadcast_duration_seconds`.
pub const BROADCAST_BUCKETS: &[f64] = &[
    0.000001, 0.000005, 0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Prometheus' default buckets (Centrifugo's API command histogram uses them).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Server API command durations: finer than [`DEFAULT_BUCKETS`] (whose bounds it contains, so
/// the exported histogram keeps Centrifugo's buckets) for useful summary quantiles.
pub const API_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Ping/pong round trip buckets: Centrifugo's `ping_pong_duration_seconds`.
pub const PING_PONG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Most buckets any histogram here has (plus one for +Inf).
const MAX_BUCKETS: usize = 20;

#[repr(align(64))]
struct HistShard {
    /// Per-bucket (not cumulative) counts; the last one is +Inf.
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_nanos: AtomicU64,
}

/// A histogram over fixed bucket bounds (seconds), sharded per thread.
pub struct Histogram {
    bounds: &'static [f64],
    shards: [HistShard; SHARDS],
}

/// A read of a [`Histogram`]: per-bucket counts (the last is +Inf) and the sum in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    pub counts: Vec<u64>,
    pub sum: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// `bounds` ascending, at most 19 of them.
    pub const fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() < MAX_BUCKETS);
        Self {
            bounds,
            shards: [const {
                HistShard {
                    buckets: [const { AtomicU64::new(0) }; MAX_BUCKETS],
                    sum_nanos: AtomicU64::new(0),
                }
            }; SHARDS],
        }
    }

    #[inline]
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        let s = &self.shards[shard()];
        s.buckets[i].fetch_add(1, Relaxed);
        s.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let n = self.bounds.len() + 1;
        let mut counts = vec![0u64; n];
        let mut nanos = 0u64;
        for s in &self.shards {
            for (c, b) in counts.iter_mut().zip(&s.buckets[..n]) {
                *c += b.load(Relaxed);
            }
            nanos = nanos.wrapping_add(s.sum_nanos.load(Relaxed));
        }
        HistogramSnapshot {
            bounds: self.bounds,
            counts,
            sum: nanos as f64 / 1e9,
        }
    }
}

/// Counts keyed by a numeric code (error or disconnect codes), lock-free: each code claims a
/// slot on first use. Not sharded: these count errors, not traffic.
pub struct CodeCounts {
    codes: [AtomicU32; 32],
    counts: [AtomicU64; 32],
}

impl CodeCounts {
    pub const fn new() -> Self {
        Self {
            codes: [const { AtomicU32::new(0) }; 32],
            counts: [const { AtomicU64::new(0) }; 32],
        }
    }

    pub fn inc(&self, code: u32) {
        let code = code.max(1);
        for i in 0..self.codes.len() {
            let c = self.codes[i].load(Relaxed);
            let claimed = c == code
                || (c == 0
                    && match self.codes[i].compare_exchange(0, code, Relaxed, Relaxed) {
                        Ok(_) => true,
                        Err(other) => other == code,
                    });
            if claimed {
                self.counts[i].fetch_add(1, Relaxed);
                return;
            }
        }
        // More than 32 distinct codes: the rest are not counted.
    }

    /// (code, count) for every code seen, ascending by code.
    pub fn snapshot(&self) -> Vec<(u32, u64)> {
        let mut out: Vec<(u32, u64)> = self
            .codes
            .iter()
            .zip(&self.counts)
            .map(|(c, n)| (c.load(Relaxed), n.load(Relaxed)))
            .filter(|(c, n)| *c != 0 && *n > 0)
            .collect();
        out.sort_unstable();
        out
    }
}

impl Default for CodeCounts {
    fn default() -> Self {
        Self::new()
    }
}

/// Frame types of the client protocol, as Centrifugo labels them (`frame_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    ServerPing,
    ClientPong,
    PushConnect,
    PushSubscribe,
    PushPublication,
    PushJoin,
    PushLeave,
    PushUnsubscribe,
    PushMessage,
    PushRefresh,
    PushDisconnect,
    Connect,
    Subscribe,
    Publish,
    Unsubscribe,
    Rpc,
    Presence,
    PresenceStats,
    History,
    Refresh,
    SubRefresh,
    Send,
    Ping,
    Unknown,
}

impl FrameType {
    pub const ALL: [FrameType; 24] = [
        FrameType::ServerPing,
        FrameType::ClientPong,
        FrameType::PushConnect,
        FrameType::PushSubscribe,
        FrameType::PushPublication,
        FrameType::PushJoin,
        FrameType::PushLeave,
        FrameType::PushUnsubscribe,
        FrameType::PushMessage,
        FrameType::PushRefresh,
        FrameType::PushDisconnect,
        FrameType::Connect,
        FrameType::Subscribe,
        FrameType::Publish,
        FrameType::Unsubscribe,
        FrameType::Rpc,
        FrameType::Presence,
        FrameType::PresenceStats,
        FrameType::History,
        FrameType::Refresh,
        FrameType::SubRefresh,
        FrameType::Send,
        FrameType::Ping,
        FrameType::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FrameType::ServerPing => "server_ping",
            FrameType::ClientPong => "client_pong",
            FrameType::PushConnect => "push_connect",
            FrameType::PushSubscribe => "push_subscribe",
            FrameType::PushPublication => "push_publication",
            FrameType::PushJoin => "push_join",
            FrameType::PushLeave => "push_leave",
            FrameType::PushUnsubscribe => "push_unsubscribe",
            FrameType::PushMessage => "push_message",
            FrameType::PushRefresh => "push_refresh",
            FrameType::PushDisconnect => "push_disconnect",
            FrameType::Connect => "connect",
            FrameType::Subscribe => "subscribe",
            FrameType::Publish => "publish",
            FrameType::Unsubscribe => "unsubscribe",
            FrameType::Rpc => "rpc",
            FrameType::Presence => "presence",
            FrameType::PresenceStats => "presence_stats",
            FrameType::History => "history",
            FrameType::Refresh => "refresh",
            FrameType::SubRefresh => "sub_refresh",
            FrameType::Send => "send",
            FrameType::Ping => "ping",
            FrameType::Unknown => "unknown",
        }
    }

    /// Whether this is a client command (it then also labels command durations and errors).
    pub fn is_command(self) -> bool {
        (self as u8) >= (FrameType::Connect as u8)
    }
}

const FRAME_TYPES: usize = FrameType::ALL.len();

/// Node actions (`centrifugo_node_action_count{action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Action {
    AddClient,
    RemoveClient,
    AddSubscription,
    RemoveSubscription,
    BrokerSubscribe,
    BrokerUnsubscribe,
    AddPresence,
    RemovePresence,
    Presence,
    PresenceStats,
    History,
    HistoryRecover,
    HistoryStreamTop,
    HistoryRemove,
}

impl Action {
    pub const ALL: [Action; 14] = [
        Action::AddClient,
        Action::RemoveClient,
        Action::AddSubscription,
        Action::RemoveSubscription,
        Action::BrokerSubscribe,
        Action::BrokerUnsubscribe,
        Action::AddPresence,
        Action::RemovePresence,
        Action::Presence,
        Action::PresenceStats,
        Action::History,
        Action::HistoryRecover,
        Action::HistoryStreamTop,
        Action::HistoryRemove,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::AddClient => "add_client",
            Action::RemoveClient => "remove_client",
            Action::AddSubscription => "add_subscription",
            Action::RemoveSubscription => "remove_subscription",
            Action::BrokerSubscribe => "broker_subscribe",
            Action::BrokerUnsubscribe => "broker_unsubscribe",
            Action::AddPresence => "add_presence",
            Action::RemovePresence => "remove_presence",
            Action::Presence => "presence",
            Action::PresenceStats => "presence_stats",
            Action::History => "history",
            Action::HistoryRecover => "history_recover",
            Action::HistoryStreamTop => "history_stream_top",
            Action::HistoryRemove => "history_remove",
        }
    }
}

/// Broker message kinds (`centrifugo_node_messages_{sent,received}_count{type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Publication,
    Join,
    Leave,
    Control,
}

impl MessageType {
    pub const ALL: [MessageType; 4] = [
        MessageType::Publication,
        MessageType::Join,
        MessageType::Leave,
        MessageType::Control,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MessageType::Publication => "publication",
            MessageType::Join => "join",
            MessageType::Leave => "leave",
            MessageType::Control => "control",
        }
    }
}

/// Server API methods (`centrifugo_api_command_duration_seconds{protocol,method}`).
pub const API_METHODS: [&str; 14] = [
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "channels",
    "info",
    "rpc",
    "refresh",
    "batch",
];

/// Everything counted in this process.
pub struct Metrics {
    /// Frames queued to client connections, and their bytes, by frame type.
    pub transport_sent: [Counter; FRAME_TYPES],
    pub transport_sent_bytes: [Counter; FRAME_TYPES],
    /// Commands received from client connections, and their bytes, by frame type.
    pub transport_received: [Counter; FRAME_TYPES],
    pub transport_received_bytes: [Counter; FRAME_TYPES],
    /// Connections accepted, by transport (`crate::transport::ALL` order).
    pub transport_connects: [Counter; 8],
    /// Messages this node handed to the broker / got from it.
    pub messages_sent: [Counter; 4],
    pub messages_received: [Counter; 4],
    pub actions: [Counter; 14],
    /// Client command durations by frame type (only command types are used).
    pub command_duration: [Histogram; FRAME_TYPES],
    /// Error replies by command frame type and error code.
    pub reply_errors: [CodeCounts; FRAME_TYPES],
    pub server_disconnects: CodeCounts,
    pub server_unsubscribes: CodeCounts,
    pub recovered: Counter,
    pub not_recovered: Counter,
    /// (channel, connection) pairs in the hub.
    pub subscriptions: Gauge,
    /// Publication fan-out to this node's subscribers.
    pub broadcast_duration: Histogram,
    /// Round trip of protocol-v2 server pings.
    pub ping_pong: Histogram,
    /// Time the broker took to accept a publish (the Redis round trip with the Redis engine).
    pub broker_publish_duration: Histogram,
    /// HTTP server API commands, by index in [`API_METHODS`].
    /// By [`crate::api::ApiProtocol`], then [`API_METHODS`].
    pub api_duration: [[Histogram; 14]; 2],
    pub api_errors: [[CodeCounts; 14]; 2],
}

impl Metrics {
    pub const fn new() -> Self {
        Self {
            transport_sent: [const { Counter::new() }; FRAME_TYPES],
            transport_sent_bytes: [const { Counter::new() }; FRAME_TYPES],
            transport_received: [const { Counter::new() }; FRAME_TYPES],
            transport_received_bytes: [const { Counter::new() }; FRAME_TYPES],
            transport_connects: [const { Counter::new() }; 8],
            messages_sent: [const { Counter::new() }; 4],
            messages_received: [const { Counter::new() }; 4],
            actions: [const { Counter::new() }; 14],
            command_duration: [const { Histogram::new(COMMAND_BUCKETS) }; FRAME_TYPES],
            reply_errors: [const { CodeCounts::new() }; FRAME_TYPES],
            server_disconnects: CodeCounts::new(),
            server_unsubscribes: CodeCounts::new(),
            recovered: Counter::new(),
            not_recovered: Counter::new(),
            subscriptions: Gauge::new(),
            broadcast_duration: Histogram::new(BROADCAST_BUCKETS),
            ping_pong: Histogram::new(PING_PONG_BUCKETS),
            broker_publish_duration: Histogram::new(BROADCAST_BUCKETS),
            api_duration: [const { [const { Histogram::new(API_BUCKETS) }; 14] }; 2],
            api_errors: [const { [const { CodeCounts::new() }; 14] }; 2],
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

/// A frame of `bytes` queued to a connection.
#[inline]
pub fn sent(t: FrameType, bytes: usize) {
    METRICS.transport_sent[t as usize].inc();
    METRICS.transport_sent_bytes[t as usize].add(bytes as u64);
}

/// `n` frames of `bytes` each queued (one fan-out).
#[inline]
pub fn sent_many(t: FrameType, n: u64, bytes: usize) {
    if n > 0 {
        METRICS.transport_sent[t as usize].add(n);
        METRICS.transport_sent_bytes[t as usize].add(n * bytes as u64);
    }
}

#[inline]
pub fn received(t: FrameType, bytes: usize) {
    METRICS.transport_received[t as usize].inc();
    METRICS.transport_received_bytes[t as usize].add(bytes as u64);
}

#[inline]
pub fn action(a: Action) {
    METRICS.actions[a as usize].inc();
}

#[inline]
pub fn message_sent(t: MessageType) {
    METRICS.messages_sent[t as usize].inc();
}

#[inline]
pub fn message_received(t: MessageType) {
    METRICS.messages_received[t as usize].inc();
}

/// One server API command took `d`; `error` is its API error code, if it failed.
pub fn api_command(
    protocol: crate::api::ApiProtocol,
    method: &str,
    d: Duration,
    error: Option<u32>,
) {
    let p = protocol as usize;
    if let Some(i) = API_METHODS.iter().position(|m| *m == method) {
        METRICS.api_duration[p][i].observe(d);
        if let Some(code) = error {
            METRICS.api_errors[p][i].inc(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_across_threads() {
        static C: Counter = Counter::new();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1000 {
                        C.inc();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(C.get(), 8000);
        let g = Gauge::new();
        g.add(3);
        g.add(-1);
        assert_eq!(g.get(), 2);
    }

    #[test]
    fn histogram_buckets() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        let s = h.snapshot();
        assert_eq!(s.counts, vec![1, 2, 1]);
        assert_eq!(s.count(), 4);
        assert!((s.sum - 1.0105).abs() < 1e-9);
    }

    #[test]
    fn code_counts() {
        let c = CodeCounts::new();
        c.inc(3001);
        c.inc(3001);
        c.inc(102);
        assert_eq!(c.snapshot(), vec![(102, 1), (3001, 2)]);
    }

    #[test]
    fn frame_type_table_matches_names() {
        for (i, t) in FrameType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
        }
        assert!(FrameType::Connect.is_command() && !FrameType::PushJoin.is_command());
    }
}
