//! Who is connected and who listens where: channel → subscribers, client ID → connection and
//! user → connections, each sharded so that publishing to one channel never takes a global
//! lock. Fan-out encodes a push at most once per protocol generation and hands the same bytes
//! to every subscriber; subscribers with Fossil deltas get forms encoded at most once each too
//! (see `client::delta`), built only when such a subscriber is reached.
//!
//! Lock order: a hub shard may be held while a client's state lock is taken (fan-out), never
//! the other way round.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use rotor_protocol::codec::Encoder;
use rotor_protocol::{ClientInfo, Encoding, Generation, PositionFormat, Publication, Push};

use crate::client::{ClientShared, DeltaForms};
use crate::engine::BrokerEventHandler;
use crate::metrics::{self, Action, FrameType, MessageType};

const SHARDS: usize = 64;

type Subscribers = HashMap<Arc<str>, Arc<ClientShared>>;

/// Number of (generation, encoding) wire variants.
const VARIANTS: usize = 4;

/// A push encoded lazily, at most once per (generation, encoding), and for publications once
/// per form a delta subscriber needs (created on the first one; others never touch it).
pub struct PreparedPush<'a> {
    push: Push<'a>,
    encoders: &'a [Encoder; VARIANTS],
    cache: [OnceLock<Bytes>; VARIANTS],
    delta: OnceLock<Box<DeltaForms>>,
}

impl<'a> PreparedPush<'a> {
    pub fn new(push: Push<'a>, encoders: &'a [Encoder; VARIANTS]) -> Self {
        Self {
            push,
            encoders,
            cache: Default::default(),
            delta: OnceLock::new(),
        }
    }

    /// The publication for a v2 subscription that negotiated Fossil deltas: a patch when
    /// `may_patch` (the subscriber holds the previous publication) and the publication carries
    /// a base that gives one worth sending, else the full data (JSON: as a string).
    pub(crate) fn delta_bytes(&self, encoding: Encoding, may_patch: bool) -> Bytes {
        let Push::Publication {
            channel,
            publication,
        } = self.push
        else {
            return self.bytes(Generation::V2, encoding);
        };
        let forms = self.delta.get_or_init(Default::default);
        let enc = &self.encoders[variant(Generation::V2, encoding)];
        if may_patch && publication.prev_data.is_some() {
            if let Some(b) = forms.patch(enc, channel, publication) {
                return b;
            }
        }
        match encoding {
            Encoding::Json => forms.full_json(enc, channel, publication),
            Encoding::Protobuf => self.bytes(Generation::V2, encoding),
        }
    }

    /// Whether a delta subscriber was reached (the delta forms exist).
    #[cfg(test)]
    pub(crate) fn has_delta_forms(&self) -> bool {
        self.delta.get().is_some()
    }

    /// The push, encoded for a connection's wire variant (shared bytes; no copy per
    /// subscriber).
    pub fn bytes(&self, generation: Generation, encoding: Encoding) -> Bytes {
        let i = variant(generation, encoding);
        self.cache[i]
            .get_or_init(|| {
                let mut buf = Vec::with_capacity(128);
                self.encoders[i].push(&mut buf, &self.push);
                Bytes::from(buf)
            })
            .clone()
    }
}

fn variant(g: Generation, e: Encoding) -> usize {
    let g = match g {
        Generation::V1 => 0,
        Generation::V2 => 1,
    };
    let e = match e {
        Encoding::Json => 0,
        Encoding::Protobuf => 1,
    };
    g * 2 + e
}

/// The node's registry of connections and subscriptions.
pub struct Hub {
    hasher: std::collections::hash_map::RandomState,
    channels: Vec<RwLock<HashMap<String, Subscribers>>>,
    clients: Vec<RwLock<HashMap<Arc<str>, Arc<ClientShared>>>>,
    users: Vec<RwLock<HashMap<String, Subscribers>>>,
    encoders: [Encoder; VARIANTS],
}

impl Hub {
    pub fn new(positions: PositionFormat) -> Self {
        fn mk<K, V>() -> Vec<RwLock<HashMap<K, V>>> {
            (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect()
        }
        Self {
            hasher: Default::default(),
            channels: mk(),
            clients: mk(),
            users: mk(),
            // v1 Protobuf clients (centrifuge-js 2.8.5's bundled schema) have no seq/gen
            // fields, so they always get offsets.
            encoders: [
                Encoder::new(Generation::V1, Encoding::Json, positions),
                Encoder::new(Generation::V1, Encoding::Protobuf, PositionFormat::Offset),
                Encoder::new(Generation::V2, Encoding::Json, PositionFormat::Offset),
                Encoder::new(Generation::V2, Encoding::Protobuf, PositionFormat::Offset),
            ],
        }
    }

    /// The encoder for a wire variant (replies use the same position format as pushes).
    pub fn encoder(&self, g: Generation, e: Encoding) -> Encoder {
        self.encoders[variant(g, e)]
    }

    fn shard<K: Hash + ?Sized>(&self, k: &K) -> usize {
        (self.hasher.hash_one(k) as usize) % SHARDS
    }

    /// Registers an authenticated connection.
    pub fn add_client(&self, c: &Arc<ClientShared>, user: &str) {
        self.clients[self.shard(c.id())]
            .write()
            .insert(c.id_arc(), c.clone());
        self.users[self.shard(user)]
            .write()
            .entry(user.to_string())
            .or_default()
            .insert(c.id_arc(), c.clone());
        metrics::action(Action::AddClient);
    }

    pub fn remove_client(&self, c: &ClientShared, user: &str) {
        if self.clients[self.shard(c.id())]
            .write()
            .remove(c.id())
            .is_some()
        {
            metrics::action(Action::RemoveClient);
        }
        let mut users = self.users[self.shard(user)].write();
        if let Some(set) = users.get_mut(user) {
            set.remove(c.id());
            if set.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Connections of `user` on this node.
    pub fn user_connections(&self, user: &str) -> Vec<Arc<ClientShared>> {
        self.users[self.shard(user)]
            .read()
            .get(user)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn user_connection_count(&self, user: &str) -> usize {
        self.users[self.shard(user)]
            .read()
            .get(user)
            .map_or(0, |s| s.len())
    }

    /// Every authenticated connection, one shard at a time (for timers and shutdown).
    pub fn for_each_client(&self, mut f: impl FnMut(&Arc<ClientShared>)) {
        let mut batch = Vec::new();
        for shard in &self.clients {
            batch.extend(shard.read().values().cloned());
            for c in batch.drain(..) {
                f(&c);
            }
        }
    }

    pub fn num_clients(&self) -> usize {
        self.clients.iter().map(|s| s.read().len()).sum()
    }

    pub fn num_users(&self) -> usize {
        self.users.iter().map(|s| s.read().len()).sum()
    }

    /// Adds a subscriber; returns true if it is the channel's first on this node.
    pub fn add_subscriber(&self, channel: &str, c: &Arc<ClientShared>) -> bool {
        let mut shard = self.channels[self.shard(channel)].write();
        let subs = shard.entry(channel.to_string()).or_default();
        if subs.insert(c.id_arc(), c.clone()).is_none() {
            metrics::METRICS.subscriptions.add(1);
            metrics::action(Action::AddSubscription);
        }
        subs.len() == 1
    }

    /// Removes a subscriber; returns true if the channel has none left on this node.
    pub fn remove_subscriber(&self, channel: &str, client_id: &str) -> bool {
        let mut shard = self.channels[self.shard(channel)].write();
        let Some(subs) = shard.get_mut(channel) else {
            return false;
        };
        if subs.remove(client_id).is_none() {
            return false;
        }
        metrics::METRICS.subscriptions.add(-1);
        metrics::action(Action::RemoveSubscription);
        if subs.is_empty() {
            shard.remove(channel);
            return true;
        }
        false
    }

    /// Removes a subscriber unless `keep()` says it subscribed again meanwhile (evaluated under
    /// the channel's lock, so a resubscription cannot slip between the check and the removal;
    /// the lock order channel → connection state is the fan-out's). `None`: kept; `Some(last)`:
    /// removed, `last` when the channel has none left on this node.
    pub fn remove_subscriber_unless(
        &self,
        channel: &str,
        client_id: &str,
        keep: impl FnOnce() -> bool,
    ) -> Option<bool> {
        let mut shard = self.channels[self.shard(channel)].write();
        if keep() {
            return None;
        }
        let Some(subs) = shard.get_mut(channel) else {
            return Some(false);
        };
        if subs.remove(client_id).is_none() {
            return Some(false);
        }
        metrics::METRICS.subscriptions.add(-1);
        metrics::action(Action::RemoveSubscription);
        if subs.is_empty() {
            shard.remove(channel);
            return Some(true);
        }
        Some(false)
    }

    /// Channels with subscribers on this node, with their subscriber counts.
    pub fn channels(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for shard in &self.channels {
            out.extend(shard.read().iter().map(|(k, v)| (k.clone(), v.len())));
        }
        out
    }

    /// Channels with subscribers on this node.
    pub fn num_channels(&self) -> usize {
        self.channels.iter().map(|s| s.read().len()).sum()
    }

    pub fn num_subscribers(&self, channel: &str) -> usize {
        self.channels[self.shard(channel)]
            .read()
            .get(channel)
            .map_or(0, |s| s.len())
    }

    fn fan_out(
        &self,
        channel: &str,
        push: Push<'_>,
        deliver: impl Fn(&ClientShared, &PreparedPush<'_>),
    ) {
        let shard = self.channels[self.shard(channel)].read();
        let Some(subs) = shard.get(channel) else {
            return;
        };
        let prepared = PreparedPush::new(push, &self.encoders);
        for c in subs.values() {
            deliver(c, &prepared);
        }
    }
}

/// Where control messages go (the node).
pub type ControlCallback = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The hub as the broker's delivery target; control messages go on to the node.
pub struct HubHandler {
    pub hub: Arc<Hub>,
    pub control: ControlCallback,
    pub gap: GapCallback,
}

/// Told of a gap in one channel (`Some`) or in every channel (`None`).
pub type GapCallback = Box<dyn Fn(Option<&str>) + Send + Sync>;

impl BrokerEventHandler for HubHandler {
    fn handle_control(&self, data: &[u8]) {
        metrics::message_received(MessageType::Control);
        (self.control)(data)
    }

    fn handle_reconnect(&self) {
        (self.gap)(None)
    }

    fn handle_gap(&self, channel: &str) {
        (self.gap)(Some(channel))
    }

    fn handle_publication(&self, channel: &str, publication: Publication) {
        metrics::message_received(MessageType::Publication);
        let started = std::time::Instant::now();
        let p = &publication;
        self.hub.fan_out(
            channel,
            Push::Publication {
                channel,
                publication: p,
            },
            |c, prepared| c.deliver_publication(channel, p, prepared),
        );
        metrics::METRICS
            .broadcast_duration
            .observe(started.elapsed());
    }

    fn handle_join(&self, channel: &str, info: ClientInfo) {
        metrics::message_received(MessageType::Join);
        self.hub.fan_out(
            channel,
            Push::Join {
                channel,
                info: &info,
            },
            |c, prepared| c.deliver_join_leave(channel, prepared, FrameType::PushJoin),
        );
    }

    fn handle_leave(&self, channel: &str, info: ClientInfo) {
        metrics::message_received(MessageType::Leave);
        self.hub.fan_out(
            channel,
            Push::Leave {
                channel,
                info: &info,
            },
            |c, prepared| c.deliver_join_leave(channel, prepared, FrameType::PushLeave),
        );
    }
}

/// An encoder for messages whose shape does not depend on position format (unsubscribe,
/// message pushes).
pub(crate) fn encoder_for(g: Generation, e: Encoding) -> Encoder {
    Encoder::new(g, e, PositionFormat::Offset)
}
