//! [`MemoryBroker`]: the in-process [`Broker`]. Keeps one stream per channel that has (or had)
//! history, and delivers publications straight to this node's [`BrokerEventHandler`].
//!
//! Invariants:
//! * A stream's offsets start at 1 and grow by exactly 1 per publish with history; they never
//!   go back while the stream lives. A stream's epoch is fixed at creation.
//! * The metadata TTL in effect for a call is the namespace's `history_meta_ttl` when the call
//!   carries one ([`PublishOptions::history_meta_ttl`], [`HistoryFilter::history_meta_ttl`]),
//!   else the broker's `meta_ttl` (`memory_history_meta_ttl`). Below, `meta_ttl` is that value.
//! * With a zero `meta_ttl` a stream, once published to, lives as long as the process, so its
//!   epoch can be derived from the channel name and a per-process random salt. Reading a
//!   channel never published to then stores nothing: it answers offset 0 and the epoch the
//!   first publication will create. Subscribing to a million distinct channels costs no memory
//!   after they are left. A stream created with a derived epoch keeps its metadata forever
//!   even if later calls carry a non-zero TTL (a config reload), so a derived epoch is never
//!   reused for a second stream.
//! * With a non-zero `meta_ttl` a stream may be dropped and recreated later, so each stream gets
//!   a random epoch, different from the previous one's, and reads create the stream to keep
//!   that epoch stable until the metadata expires.
//! * History expiry (`history_lifetime`) covers the whole stream and is reset by every publish;
//!   expired history reads as empty but leaves the offset and epoch in place. The metadata
//!   itself expires `meta_ttl` after the last publish (or after creation), never before the
//!   history does; a zero `meta_ttl` keeps it forever. After metadata expiry the next access
//!   creates a fresh stream: offset 0, new epoch.
//! * Ordering: a publication's offset is assigned and the publication is handed to the handler
//!   under the same shard lock, so the handler sees each channel's publications one at a time
//!   and in offset order. This relies on the handler being non-blocking and never calling back
//!   into the broker (which would deadlock on the shard lock).
//! * Publish options: `tags` travel on the publication as delivered and as stored (an `Arc`
//!   clone, nothing when absent). An `idempotency_key` is looked up and its result remembered
//!   under the same shard lock as the publish (see [`super::idempotency`] for the bound). A
//!   `version` is kept per stream beside offset and epoch (so it expires with the metadata) and
//!   only checked in channels with history.
//! * Delta base: a publish marked `delta` in a channel with history is delivered with
//!   `prev_data` = the data of the stream's last retained publication, read under the same lock
//!   just before the append (`None` for the first publication of an epoch or after the history
//!   expired). Only the delivered copy carries it: history never stores or returns `prev_data`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rand::distr::{Alphanumeric, SampleString};
use rotor_protocol::{ClientInfo, Publication};

use super::idempotency::{self, Results};
use super::{deadline, is_expired, shard_index, system_clock, Clock, NUM_SHARDS};
use crate::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryFilter, HistoryPage, PublishOptions,
    StreamPosition,
};

/// Length of a generated epoch.
const EPOCH_LEN: usize = 8;

/// One channel's stream: its position and its retained publications.
struct Stream {
    /// Offset of the last publication (0 before the first).
    top_offset: u64,
    epoch: String,
    /// Retained publications, oldest first, with contiguous offsets ending at `top_offset`.
    items: VecDeque<Publication>,
    /// When `items` expire as a whole; `None` = no history to expire (or never).
    expire_at: Option<Instant>,
    /// When the stream itself (offset, epoch) expires; `None` = never.
    meta_expire_at: Option<Instant>,
    /// The last publish `version` and its `version_epoch` (0 = none yet).
    version: u64,
    version_epoch: String,
    /// The epoch is [`MemoryBroker::derived_epoch`]: the metadata never expires.
    derived: bool,
}

impl Stream {
    fn new(now: Instant, meta_ttl: Duration, epoch: String) -> Self {
        Self {
            top_offset: 0,
            epoch,
            items: VecDeque::new(),
            expire_at: None,
            meta_expire_at: deadline(now, meta_ttl),
            version: 0,
            version_epoch: String::new(),
            derived: meta_ttl.is_zero(),
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.top_offset,
            epoch: self.epoch.clone(),
        }
    }

    /// Drops the retained publications (releasing their memory), keeping offset and epoch.
    fn clear_history(&mut self) {
        self.items = VecDeque::new();
        self.expire_at = None;
    }

    /// Applies lazy history expiry as of `now`.
    fn expire_history(&mut self, now: Instant) {
        if is_expired(self.expire_at, now) {
            self.clear_history();
        }
    }

    /// Whether a publish with `version` (> 0) in `epoch` is not newer than the last one kept:
    /// the same epoch (an empty one matches any, as in Centrifugo) and a version not above.
    fn is_outdated(&self, version: u64, epoch: &str) -> bool {
        self.version > 0
            && (epoch.is_empty() || epoch == self.version_epoch)
            && version <= self.version
    }

    /// Assigns the next offset to `publication`, retains it, refreshes both expiries and
    /// records the publish version. Returns the publication as delivered (with its offset, and
    /// with the previous retained publication's data as `prev_data` when `opts.delta`).
    fn append(
        &mut self,
        mut publication: Publication,
        opts: &PublishOptions,
        now: Instant,
        meta_ttl: Duration,
    ) -> Publication {
        if opts.version > 0 {
            self.version = opts.version;
            self.version_epoch.clone_from(&opts.version_epoch);
        }
        // Retained items end at `top_offset` with contiguous offsets, so the last one is the
        // predecessor of the publication being appended.
        let prev_data = if opts.delta {
            self.items.back().map(|p| p.data.clone())
        } else {
            None
        };
        self.top_offset += 1;
        publication.offset = self.top_offset;
        self.items.push_back(publication.clone());
        while self.items.len() > opts.history_size {
            self.items.pop_front();
        }
        self.expire_at = deadline(now, Duration::from_secs(opts.history_lifetime));
        if !meta_ttl.is_zero() && !self.derived {
            // The metadata must not vanish while the history it describes is still alive.
            self.meta_expire_at = match (deadline(now, meta_ttl), self.expire_at) {
                (Some(meta), Some(history)) => Some(meta.max(history)),
                _ => None,
            };
        }
        publication.prev_data = prev_data;
        publication
    }

    /// The publications `filter` selects, in the order it asks for.
    fn select(&self, filter: &HistoryFilter) -> Vec<Publication> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Vec::new();
        }
        match (&filter.since, filter.reverse) {
            (None, false) => self.items.iter().take(limit).cloned().collect(),
            (None, true) => self.items.iter().rev().take(limit).cloned().collect(),
            (Some(since), false) => {
                let start = self.items.partition_point(|p| p.offset <= since.offset);
                self.items.range(start..).take(limit).cloned().collect()
            }
            (Some(since), true) => {
                let end = self.items.partition_point(|p| p.offset < since.offset);
                self.items.range(..end).rev().take(limit).cloned().collect()
            }
        }
    }
}

/// Returns the live stream of `channel`, creating it (with a new epoch) when it does not exist
/// or its metadata has expired, and applying lazy history expiry.
fn live_stream<'a>(
    streams: &'a mut HashMap<String, Stream>,
    channel: &str,
    now: Instant,
    meta_ttl: Duration,
    new_epoch: impl FnOnce() -> String,
) -> &'a mut Stream {
    let recreate = match streams.get_mut(channel) {
        Some(stream) if !is_expired(stream.meta_expire_at, now) => {
            stream.expire_history(now);
            false
        }
        _ => true,
    };
    if recreate {
        streams.insert(channel.to_owned(), Stream::new(now, meta_ttl, new_epoch()));
    }
    streams
        .get_mut(channel)
        .expect("stream was just ensured to exist")
}

/// What one shard holds: the streams of its channels and their idempotency results.
#[derive(Default)]
struct ShardState {
    streams: HashMap<String, Stream>,
    results: Results,
}

/// In-process [`Broker`]: sharded per-channel streams with bounded, expiring history.
///
/// Publishing never takes a global lock; each channel lives in one of [`NUM_SHARDS`] shards.
/// Call [`MemoryBroker::cleanup_expired`] periodically to reclaim expired state.
pub struct MemoryBroker {
    shards: Box<[Mutex<ShardState>]>,
    /// Idempotency results held over all shards (see [`idempotency::MAX_RESULTS`]).
    results_total: AtomicUsize,
    handler: RwLock<Option<Arc<dyn BrokerEventHandler>>>,
    meta_ttl: Duration,
    clock: Clock,
    /// Per-process random key for [`MemoryBroker::derived_epoch`].
    epoch_salt: [u8; 16],
}

impl MemoryBroker {
    /// A broker on the system clock. `meta_ttl` is `memory_history_meta_ttl` (zero = keep
    /// stream offset and epoch forever).
    pub fn new(meta_ttl: Duration) -> Self {
        Self::with_clock(meta_ttl, system_clock())
    }

    /// Like [`MemoryBroker::new`] with a custom clock (for tests).
    pub fn with_clock(meta_ttl: Duration, clock: Clock) -> Self {
        Self {
            shards: (0..NUM_SHARDS)
                .map(|_| Mutex::new(ShardState::default()))
                .collect(),
            results_total: AtomicUsize::new(0),
            handler: RwLock::new(None),
            meta_ttl,
            clock,
            epoch_salt: rand::random(),
        }
    }

    /// The epoch of `channel`'s stream when `meta_ttl` is zero: stable for this process, so a
    /// channel needs no stored state until its first publication; different after a restart,
    /// when the history is gone.
    fn derived_epoch(&self, channel: &str) -> String {
        use sha2::{Digest, Sha256};
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let digest = Sha256::new()
            .chain_update(self.epoch_salt)
            .chain_update(channel.as_bytes())
            .finalize();
        digest[..EPOCH_LEN]
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect()
    }

    /// The metadata TTL in effect for a call carrying the namespace's `history_meta_ttl`.
    fn meta_ttl(&self, namespace: Option<Duration>) -> Duration {
        namespace.unwrap_or(self.meta_ttl)
    }

    /// The epoch for a stream being created now with metadata TTL `meta_ttl`.
    fn new_epoch(&self, channel: &str, meta_ttl: Duration) -> String {
        if meta_ttl.is_zero() {
            self.derived_epoch(channel)
        } else {
            Alphanumeric.sample_string(&mut rand::rng(), EPOCH_LEN)
        }
    }

    fn shard(&self, channel: &str) -> &Mutex<ShardState> {
        &self.shards[shard_index(channel)]
    }

    fn handler(&self) -> Option<Arc<dyn BrokerEventHandler>> {
        self.handler.read().clone()
    }

    /// Drops expired history, expired streams and expired idempotency results as of `now`.
    /// Locks one shard at a time. Streams whose metadata never expires (`meta_ttl` zero) are
    /// kept, only emptied.
    pub fn cleanup_expired(&self, now: Instant) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.streams.retain(|_, stream| {
                if is_expired(stream.meta_expire_at, now) {
                    return false;
                }
                stream.expire_history(now);
                true
            });
            shard.results.sweep(now, &self.results_total);
        }
    }

    /// Number of channel streams currently held (live or awaiting cleanup).
    pub fn num_streams(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().streams.len())
            .sum()
    }

    /// Number of idempotency results currently held (live or awaiting cleanup); never above
    /// [`idempotency::MAX_RESULTS`].
    pub fn num_idempotency_results(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().results.len())
            .sum()
    }
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("meta_ttl", &self.meta_ttl)
            .field("shards", &self.shards.len())
            .field("has_handler", &self.handler.read().is_some())
            .finish()
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn set_handler(&self, handler: Arc<dyn BrokerEventHandler>) {
        *self.handler.write() = Some(handler);
    }

    /// With history: assigns the next offset, retains the publication and delivers it, all
    /// under the channel's shard lock, and returns the new top. Without history: delivers the
    /// publication with offset 0 (also under the shard lock, so a channel's deliveries stay one
    /// at a time), creates no stream and returns the default (empty) position.
    ///
    /// Before that, under the same lock: a repeated `idempotency_key` still in its window
    /// answers the first publish's result and does nothing else; with history, a `version` not
    /// above the stream's last one (same `version_epoch`) answers the current top and does
    /// nothing else. The result of a publish with a key is remembered for `idempotent_ttl()`.
    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        info: Option<Arc<ClientInfo>>,
        opts: PublishOptions,
    ) -> Result<StreamPosition, EngineError> {
        let handler = self.handler();
        let now = (self.clock)();
        let mut shard = self.shard(channel).lock();
        let result_id = opts
            .idempotency_key
            .as_deref()
            .map(|key| idempotency::result_id(&self.epoch_salt, channel, key));
        if let Some(id) = result_id {
            if let Some(first) = shard.results.get(id, now, &self.results_total) {
                return Ok(first);
            }
        }
        let publication = Publication {
            tags: opts.tags.clone(),
            delta: false,
            prev_data: None,
            offset: 0,
            data,
            info,
        };
        let position = if opts.keeps_history() {
            let meta_ttl = self.meta_ttl(opts.history_meta_ttl);
            let stream = live_stream(&mut shard.streams, channel, now, meta_ttl, || {
                self.new_epoch(channel, meta_ttl)
            });
            if opts.version > 0 && stream.is_outdated(opts.version, &opts.version_epoch) {
                return Ok(stream.position());
            }
            let publication = stream.append(publication, &opts, now, meta_ttl);
            // Delivered before the lock is released: see the ordering note in the module docs.
            if let Some(handler) = handler {
                handler.handle_publication(channel, publication);
            }
            stream.position()
        } else {
            if let Some(handler) = handler {
                handler.handle_publication(channel, publication);
            }
            StreamPosition::default()
        };
        if let Some(id) = result_id {
            if let Some(until) = now.checked_add(opts.idempotent_ttl()) {
                shard
                    .results
                    .insert(id, position.clone(), until, &self.results_total);
            }
        }
        Ok(position)
    }

    async fn publish_join(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        if let Some(handler) = self.handler() {
            handler.handle_join(channel, info);
        }
        Ok(())
    }

    async fn publish_leave(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        if let Some(handler) = self.handler() {
            handler.handle_leave(channel, info);
        }
        Ok(())
    }

    /// Nothing to do: every publication already reaches this node's handler.
    async fn subscribe(&self, _channel: &str) -> Result<(), EngineError> {
        Ok(())
    }

    /// Nothing to do (see [`MemoryBroker::subscribe`]).
    async fn unsubscribe(&self, _channel: &str) -> Result<(), EngineError> {
        Ok(())
    }

    /// Reads history per `filter`. A channel never published to answers offset 0 and the epoch
    /// its first publication will have: derived (nothing stored) with a zero `meta_ttl`,
    /// otherwise from a stream created here so that it stays stable until the metadata expires.
    /// `since.epoch` is not checked: the caller compares it with the returned position to decide
    /// whether recovery succeeded.
    async fn history(
        &self,
        channel: &str,
        filter: HistoryFilter,
    ) -> Result<HistoryPage, EngineError> {
        let now = (self.clock)();
        let meta_ttl = self.meta_ttl(filter.history_meta_ttl);
        let mut shard = self.shard(channel).lock();
        let streams = &mut shard.streams;
        if meta_ttl.is_zero() && !streams.contains_key(channel) {
            return Ok(HistoryPage {
                publications: Vec::new(),
                position: StreamPosition {
                    offset: 0,
                    epoch: self.derived_epoch(channel),
                },
            });
        }
        let stream = live_stream(streams, channel, now, meta_ttl, || {
            self.new_epoch(channel, meta_ttl)
        });
        Ok(HistoryPage {
            publications: stream.select(&filter),
            position: stream.position(),
        })
    }

    /// Empties the channel's history, keeping its offset and epoch. Creates nothing.
    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        if let Some(stream) = self.shard(channel).lock().streams.get_mut(channel) {
            stream.clear_history();
        }
        Ok(())
    }

    async fn publish_control(&self, data: Bytes) -> Result<(), EngineError> {
        if let Some(handler) = self.handler() {
            handler.handle_control(&data);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
