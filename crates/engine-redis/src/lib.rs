//! The Redis engine: [`RedisBroker`] and [`RedisPresence`], the `rotor-core` engine traits
//! implemented on Redis, so that several Rotor nodes serve as one.
//!
//! * Publications, joins, leaves and control messages travel between nodes over Redis
//!   PUB/SUB. A node subscribes in Redis only to channels it has local subscribers for (the
//!   core calls [`rotor_core::engine::Broker::subscribe`] for the first and `unsubscribe` for the
//!   last), plus one control channel.
//! * History lives in a Redis stream per channel, with the top offset and the epoch in a hash
//!   beside it; a Lua script assigns the offset, appends, trims, sets expiries and broadcasts
//!   in one step, so what subscribers receive is exactly what history holds.
//! * The same script applies the publish options: an idempotency key's result is a key of its
//!   own (`SET … PX`, in the channel's slot) checked first, so a repeat from any node within the
//!   window answers the first result and reaches nobody; a `version` not above the stream's last
//!   one (kept in the metadata hash) is dropped the same way. Tags travel inside the publication
//!   body ([`wire`]).
//! * Presence is a hash (client → info) and a sorted set (client → expiry) per channel.
//! * Channels are spread over shards (a list of Redis servers, by consistent hashing), or live in
//!   one Redis Cluster, where every key and the sharded PUB/SUB channel of a channel share a
//!   hash slot.
//! * No silent loss on faults: a shard that lost its connection is unready (`is_healthy` false,
//!   every operation fails) until it has reconnected **and resubscribed**; only then does it
//!   accept publishes again, and it tells the node to check every recoverable subscription's
//!   position ([`rotor_core::engine::BrokerEventHandler::handle_reconnect`]). A publication whose
//!   epoch differs from the previous one seen on a channel (the stream was recreated, say by a
//!   Redis restart without persistence) triggers the same check.
//!
//! Requires Redis 6 or newer (RESP3 PUB/SUB); sharded PUB/SUB needs Redis 7 in cluster mode.

mod broker;
pub mod config;
mod droplog;
/// Fuzz entry points (FUZZING.md, target `redis_reply`); not an API.
#[doc(hidden)]
pub mod fuzz;
mod keys;
mod presence;
mod ratelimit;
mod scripts;
mod shard;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rotor_core::engine::BrokerEventHandler;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use broker::RedisBroker;
pub use config::{ConfigError, RedisConfig, ShardTarget, Topology};
pub use keys::{jump_hash, shard_of, slot};
pub use presence::RedisPresence;
pub use ratelimit::RedisRateLimiter;

use droplog::DropLog;
use keys::Names;
use shard::{Shard, Sink, Target, Timing};

/// Delivers what the shards receive to this node's handler, on a few worker tasks: a PUB/SUB
/// channel always goes to the same worker, so each channel's messages stay in order while
/// different channels fan out in parallel, and a shard's connection task never waits for a
/// fan-out.
struct Dispatcher {
    names: Names,
    handler: RwLock<Option<Arc<dyn BrokerEventHandler>>>,
    /// Last epoch seen in a publication, per channel with local subscribers.
    epochs: Mutex<HashMap<String, String>>,
    /// Bounded: a dispatcher that falls this far behind Redis drops messages and has every
    /// recoverable subscription check its position (they recover from history), rather than
    /// letting memory grow without limit.
    workers: Vec<mpsc::Sender<(Vec<u8>, Bytes)>>,
    drops: DropLog,
}

/// Messages one dispatcher worker may hold before new ones are dropped (see `workers`).
const DISPATCH_QUEUE: usize = 65_536;

impl Dispatcher {
    fn start(names: Names, cancel: &CancellationToken) -> Arc<Dispatcher> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
        let mut receivers = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(DISPATCH_QUEUE);
            workers.push(tx);
            receivers.push(rx);
        }
        let dispatcher = Arc::new(Dispatcher {
            names,
            handler: RwLock::new(None),
            epochs: Mutex::new(HashMap::new()),
            workers,
            drops: DropLog::new(),
        });
        for mut rx in receivers {
            let weak = Arc::downgrade(&dispatcher);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        _ = cancel.cancelled() => return,
                        next = rx.recv() => next,
                    };
                    let (Some((pubsub, payload)), Some(d)) = (next, weak.upgrade()) else {
                        return;
                    };
                    d.deliver(&pubsub, payload);
                }
            });
        }
        dispatcher
    }

    fn deliver(&self, pubsub: &[u8], payload: Bytes) {
        let Some(handler) = self.handler.read().clone() else {
            return;
        };
        if pubsub == self.names.control_channel().as_bytes() {
            match wire::decode_control(&payload) {
                Some(data) => handler.handle_control(&data),
                None => tracing::warn!("malformed control message from redis"),
            }
            return;
        }
        let Some(channel) = self.names.channel_of(pubsub) else {
            return;
        };
        match wire::decode_channel_message(&payload) {
            Some(wire::ChannelMessage::Publication { publication, epoch }) => {
                let mut changed = false;
                if publication.offset > 0 && !epoch.is_empty() {
                    let mut epochs = self.epochs.lock();
                    match epochs.get_mut(&channel) {
                        Some(seen) if *seen != epoch => {
                            *seen = epoch;
                            changed = true;
                        }
                        Some(_) => {}
                        None => {
                            epochs.insert(channel.clone(), epoch);
                        }
                    }
                }
                handler.handle_publication(&channel, publication);
                if changed {
                    tracing::warn!(%channel, "stream epoch changed; checking positions");
                    handler.handle_gap(&channel);
                }
            }
            Some(wire::ChannelMessage::Join(info)) => handler.handle_join(&channel, info),
            Some(wire::ChannelMessage::Leave(info)) => handler.handle_leave(&channel, info),
            None => tracing::warn!(%channel, "malformed message from redis"),
        }
    }
}

impl Sink for Dispatcher {
    fn message(&self, pubsub: Vec<u8>, payload: Bytes) {
        let i = (keys::fnv1a(&pubsub) % self.workers.len() as u64) as usize;
        if let Err(mpsc::error::TrySendError::Full((pubsub, _))) =
            self.workers[i].try_send((pubsub, payload))
        {
            self.drops.dropped();
            if let Some(handler) = self.handler.read().clone() {
                match self.names.channel_of(&pubsub) {
                    Some(channel) => handler.handle_gap(&channel),
                    None => handler.handle_reconnect(),
                }
            }
        }
    }

    fn reconnected(&self) {
        if let Some(handler) = self.handler.read().clone() {
            handler.handle_reconnect();
        }
    }

    fn gap(&self, pubsub: &[u8]) {
        if let Some(handler) = self.handler.read().clone() {
            match self.names.channel_of(pubsub) {
                Some(channel) => handler.handle_gap(&channel),
                None => handler.handle_reconnect(),
            }
        }
    }
}

/// What the broker and the presence manager share: names, shards, the dispatcher.
pub(crate) struct Core {
    names: Names,
    meta_ttl_secs: u64,
    shards: Vec<Arc<Shard>>,
    dispatcher: Arc<Dispatcher>,
    cancel: CancellationToken,
}

impl Core {
    fn shard(&self, channel: &str) -> &Arc<Shard> {
        &self.shards[keys::shard_of(channel, self.shards.len())]
    }

    /// Control messages live on the first shard.
    fn control_shard(&self) -> &Arc<Shard> {
        &self.shards[0]
    }

    fn is_ready(&self) -> bool {
        self.shards.iter().all(|s| s.is_ready())
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The broker and the presence manager of one node, sharing their connections.
pub struct RedisEngine {
    pub broker: Arc<RedisBroker>,
    pub presence: Arc<RedisPresence>,
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("shards", &self.core.shards)
            .finish()
    }
}

impl RedisEngine {
    /// Starts connecting to every shard in the background (must run inside a Tokio runtime).
    /// The engine is usable once [`RedisEngine::is_ready`]; before that every operation fails
    /// with `EngineError::Unavailable`.
    pub fn start(cfg: RedisConfig) -> Self {
        let partitions = match &cfg.topology {
            Topology::Cluster(c) => c.sharded_pub_sub_partitions,
            Topology::Shards(_) => 0,
        };
        let names = Names::new(&cfg.prefix).with_partitions(partitions);
        let cancel = CancellationToken::new();
        let dispatcher = Dispatcher::start(names.clone(), &cancel);
        let timing = Timing {
            connect: cfg.connect_timeout,
            read: cfg.read_timeout,
            ping: cfg.ping_interval,
        };
        let targets: Vec<Target> = match &cfg.topology {
            Topology::Shards(list) => list.iter().cloned().map(Target::Single).collect(),
            Topology::Cluster(c) => vec![Target::Cluster(c.clone())],
        };
        let shards = targets
            .into_iter()
            .enumerate()
            .map(|(i, target)| {
                let permanent = if i == 0 {
                    vec![names.control_channel().to_string()]
                } else {
                    Vec::new()
                };
                let sink: Arc<dyn Sink> = dispatcher.clone();
                Shard::start(
                    target,
                    timing,
                    cfg.client_name.clone(),
                    &permanent,
                    sink,
                    cancel.child_token(),
                )
            })
            .collect();
        let core = Arc::new(Core {
            names,
            meta_ttl_secs: cfg.history_meta_ttl.as_secs(),
            shards,
            dispatcher,
            cancel,
        });
        Self {
            broker: Arc::new(RedisBroker::new(core.clone())),
            presence: Arc::new(RedisPresence::new(core.clone())),
            core,
        }
    }

    /// Every shard is connected and subscribed.
    pub fn is_ready(&self) -> bool {
        self.core.is_ready()
    }

    /// Waits until [`RedisEngine::is_ready`], at most `timeout`; returns whether it is.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_ready() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Labels of the shards that are not ready (for logs).
    pub fn unready_shards(&self) -> Vec<String> {
        self.core
            .shards
            .iter()
            .filter(|s| !s.is_ready())
            .map(|s| s.label.clone())
            .collect()
    }

    /// Stops every connection task.
    pub fn shutdown(&self) {
        self.core.cancel.cancel();
    }
}
