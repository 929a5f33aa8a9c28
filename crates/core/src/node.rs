//! The node: owns the hub, the engine, the channel rules and the token verifier; runs the one
//! housekeeping tick that drives every connection's timers; shuts everything down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, Guard};
use rotor_protocol::{ClientInfo, DisconnectKind, Encoding, Generation, PositionFormat};
use tokio_util::sync::CancellationToken;

use crate::api::connections::{ConnFilter, DisconnectOrder, RefreshOrder, ServerSubscribe};
use crate::auth::TokenVerifier;
use crate::backend::Backend;
use crate::channel::ChannelRules;
use crate::client::{ClientShared, Gaps, Session, SubState, TickWork};
use crate::config::{ConfigError, NodeConfig};
use crate::control::{ControlMessage, NodeInfoMessage, NodeRegistry};
use crate::engine::{Broker, HistoryFilter, PresenceManager, StreamPosition};
use crate::hub::{Hub, HubHandler};
use crate::memory::MemoryEngine;

/// How often a node announces itself to the others.
const NODE_INFO_INTERVAL: Duration = Duration::from_secs(3);

/// Current unix time in seconds (token claims are in seconds).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) struct NodeInner {
    cfg: NodeConfig,
    /// Swapped whole by [`Node::reload`]; readers take a cheap snapshot per use.
    rules: ArcSwap<ChannelRules>,
    verifier: ArcSwap<TokenVerifier>,
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
    presence: Arc<dyn PresenceManager>,
    memory: Option<MemoryEngine>,
    cancel: CancellationToken,
    started: Instant,
    uid: String,
    nodes: NodeRegistry,
    /// Set when the broker reported a gap (see [`Gaps`]); the next tick takes `gaps`.
    check_positions: AtomicBool,
    /// Channels (or all) whose publications may have been missed since the last tick.
    gaps: parking_lot::Mutex<Gaps>,
    /// The application backend (proxies), set once before serving; `None` costs nothing.
    backend: std::sync::OnceLock<Arc<dyn Backend>>,
    /// Sessions reachable by emulation requests (see [`crate::emulation`]).
    emulation: Arc<crate::emulation::EmulationRegistry>,
    /// Client command rate limits, set once before serving; `None` costs one check.
    rate_limits: std::sync::OnceLock<Arc<crate::ratelimit::RateLimits>>,
}

/// A cheap handle on the node; clone it freely.
#[derive(Clone)]
pub struct Node(Arc<NodeInner>);

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("uid", &self.0.uid).finish()
    }
}

impl Node {
    /// A node on the in-memory engine.
    pub fn new(cfg: NodeConfig) -> Result<Self, ConfigError> {
        let mem = MemoryEngine::new(cfg.memory_history_meta_ttl);
        let broker: Arc<dyn Broker> = mem.broker.clone();
        let presence: Arc<dyn PresenceManager> = mem.presence.clone();
        Self::build(cfg, broker, presence, Some(mem))
    }

    /// A node on another engine (Redis, later).
    pub fn with_engine(
        cfg: NodeConfig,
        broker: Arc<dyn Broker>,
        presence: Arc<dyn PresenceManager>,
    ) -> Result<Self, ConfigError> {
        Self::build(cfg, broker, presence, None)
    }

    fn build(
        cfg: NodeConfig,
        broker: Arc<dyn Broker>,
        presence: Arc<dyn PresenceManager>,
        memory: Option<MemoryEngine>,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let broker: Arc<dyn Broker> = Arc::new(crate::metrics::MeteredBroker(broker));
        let presence: Arc<dyn PresenceManager> =
            Arc::new(crate::metrics::MeteredPresence(presence));
        let positions = if cfg.v3_use_offset {
            PositionFormat::Offset
        } else {
            PositionFormat::SeqGen
        };
        let hub = Arc::new(Hub::new(positions));
        let node = Node(Arc::new_cyclic(|weak: &Weak<NodeInner>| {
            let control_node = weak.clone();
            let reconnect_node = weak.clone();
            broker.set_handler(Arc::new(HubHandler {
                hub: hub.clone(),
                control: Box::new(move |data| {
                    if let Some(inner) = control_node.upgrade() {
                        Node(inner).handle_control(data);
                    }
                }),
                gap: Box::new(move |channel| {
                    if let Some(inner) = reconnect_node.upgrade() {
                        Node(inner).gap(channel);
                    }
                }),
            }));
            NodeInner {
                rules: ArcSwap::from_pointee(ChannelRules::new(&cfg)),
                verifier: ArcSwap::from_pointee(TokenVerifier::from_config(&cfg)),
                cfg,
                hub,
                broker,
                presence,
                memory,
                cancel: CancellationToken::new(),
                started: Instant::now(),
                uid: uuid::Uuid::new_v4().to_string(),
                nodes: NodeRegistry::default(),
                check_positions: AtomicBool::new(false),
                gaps: parking_lot::Mutex::new(Gaps::default()),
                backend: std::sync::OnceLock::new(),
                emulation: Arc::default(),
                rate_limits: std::sync::OnceLock::new(),
            }
        }));
        Ok(node)
    }

    pub fn config(&self) -> &NodeConfig {
        &self.0.cfg
    }
    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }
    /// The channel rules in force (a snapshot: a concurrent [`Node::reload`] does not change it).
    pub fn rules(&self) -> Guard<Arc<ChannelRules>> {
        self.0.rules.load()
    }
    /// The token verifier in force (a snapshot, like [`Node::rules`]).
    pub fn verifier(&self) -> Guard<Arc<TokenVerifier>> {
        self.0.verifier.load()
    }

    /// Swaps in the token settings (secret, audience, issuer) and the channel rules (options, namespaces, channel name
    /// symbols) of `cfg` without touching connections: subscriptions already made stay as they
    /// are, later commands see the new rules. Every other setting keeps its start-up value
    /// ([`Node::config`] is not changed).
    ///
    /// # Errors
    /// `cfg` does not validate; nothing is changed then.
    pub fn reload(&self, cfg: &NodeConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.0.rules.store(Arc::new(ChannelRules::new(cfg)));
        self.0
            .verifier
            .store(Arc::new(TokenVerifier::from_config(cfg)));
        Ok(())
    }
    /// As [`Node::reload`], installing `verifier` (built by the caller, e.g. with JWKS key
    /// sets through [`TokenVerifier::try_from_config_with`]) instead of one built from `cfg`.
    ///
    /// # Errors
    /// `cfg` does not validate; nothing is changed then.
    pub fn reload_with(
        &self,
        cfg: &NodeConfig,
        verifier: TokenVerifier,
    ) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.0.rules.store(Arc::new(ChannelRules::new(cfg)));
        self.0.verifier.store(Arc::new(verifier));
        Ok(())
    }
    /// Replaces the token verifier (e.g. at start, with the JWKS key sets the server built;
    /// the node's own [`TokenVerifier::from_config`] cannot fetch). Later commands use it.
    pub fn install_verifier(&self, verifier: TokenVerifier) {
        self.0.verifier.store(Arc::new(verifier));
    }
    /// Installs the application backend (the proxies). Call once, before serving connections;
    /// a second call is refused (the backend is not reloaded, as Centrifugo does not reload
    /// proxies on SIGHUP).
    pub fn set_backend(&self, backend: Arc<dyn Backend>) -> Result<(), Arc<dyn Backend>> {
        self.0.backend.set(backend)
    }
    /// Installs the client command rate limits. Call once, before serving connections.
    pub fn set_rate_limits(
        &self,
        limits: Arc<crate::ratelimit::RateLimits>,
    ) -> Result<(), Arc<crate::ratelimit::RateLimits>> {
        self.0.rate_limits.set(limits)
    }
    /// The rate limits, when any is configured.
    pub fn rate_limits(&self) -> Option<&Arc<crate::ratelimit::RateLimits>> {
        self.0.rate_limits.get()
    }
    /// The application backend, when proxies are configured.
    pub fn backend(&self) -> Option<&Arc<dyn Backend>> {
        self.0.backend.get()
    }
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.0.broker
    }
    pub fn presence(&self) -> &Arc<dyn PresenceManager> {
        &self.0.presence
    }
    /// Whether the broker and the presence manager can both serve (`/health`).
    pub fn engine_healthy(&self) -> bool {
        self.0.broker.is_healthy() && self.0.presence.is_healthy()
    }
    pub(crate) fn emulation_registry(&self) -> &Arc<crate::emulation::EmulationRegistry> {
        &self.0.emulation
    }
    /// Unique ID of this node process.
    pub fn uid(&self) -> &str {
        &self.0.uid
    }
    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }
    /// Cancelled when the node shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.0.cancel.clone()
    }

    /// A new connection. `forced` fixes the generation (`cf_protocol_version`); otherwise the
    /// first command decides.
    pub fn new_session(&self, forced: Option<Generation>, encoding: Encoding) -> Session {
        Session::new(self.clone(), &crate::transport::WEBSOCKET, forced, encoding)
    }

    /// A new connection on `transport` (see [`crate::transport`]).
    pub fn new_session_on(
        &self,
        transport: &'static crate::transport::TransportInfo,
        forced: Option<Generation>,
        encoding: Encoding,
    ) -> Session {
        Session::new(self.clone(), transport, forced, encoding)
    }

    /// Starts the housekeeping tick; it stops when the node shuts down.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(250));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut last_cleanup = Instant::now();
            let mut last_info: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = node.0.cancel.cancelled() => break,
                    _ = every.tick() => {}
                }
                node.housekeeping().await;
                if last_info.is_none_or(|t| t.elapsed() >= NODE_INFO_INTERVAL) {
                    last_info = Some(Instant::now());
                    node.announce().await;
                }
                if last_cleanup.elapsed() >= Duration::from_secs(5) {
                    last_cleanup = Instant::now();
                    if let Some(mem) = &node.0.memory {
                        mem.cleanup_expired(Instant::now());
                    }
                }
            }
        })
    }

    async fn housekeeping(&self) {
        let now = Instant::now();
        let now_unix = unix_now();
        let mut work = TickWork::default();
        let gaps = if self.0.check_positions.swap(false, Ordering::AcqRel) {
            Some(std::mem::take(&mut *self.0.gaps.lock()))
        } else {
            None
        };
        self.0
            .hub
            .for_each_client(|c| c.tick(&self.0.cfg, now, now_unix, gaps.as_ref(), &mut work));
        let mut tops: HashMap<String, Option<StreamPosition>> = HashMap::new();
        for (client, channel, offset, _epoch) in work.positions {
            let top = match tops.get(&channel) {
                Some(t) => t.clone(),
                None => {
                    let filter = HistoryFilter {
                        since: None,
                        limit: Some(0),
                        reverse: false,
                        history_meta_ttl: self
                            .rules()
                            .options(&channel)
                            .and_then(|o| o.history_meta_ttl),
                    };
                    let t = match self.0.broker.history(&channel, filter).await {
                        Ok(page) => Some(page.position),
                        Err(e) => {
                            tracing::warn!(%channel, error = %e, "position check failed");
                            None
                        }
                    };
                    tops.insert(channel.clone(), t.clone());
                    t
                }
            };
            if let Some(top) = top {
                client.position_checked(&channel, offset, &top);
            }
        }
        let ttl = self.0.cfg.client_presence_expire_interval.as_secs();
        for (channel, info) in work.presence {
            if let Err(e) = self.0.presence.add_presence(&channel, info, ttl).await {
                tracing::warn!(%channel, error = %e, "presence refresh failed");
            }
        }
        for (client, channel, sub, info) in work.cleanup {
            self.drop_subscription(&client, &channel, &sub, &info).await;
        }
        // Backend calls take up to their proxy's timeout: each runs on its own, not in the tick.
        for client in work.refresh {
            let node = self.clone();
            tokio::spawn(async move { node.refresh_via_backend(client).await });
        }
        for (client, channel, proxy) in work.sub_refresh {
            let node = self.clone();
            tokio::spawn(async move {
                node.sub_refresh_via_backend(client, channel, proxy.to_string())
                    .await
            });
        }
    }

    /// Undoes a subscription's effects outside the connection: hub entry, broker interest,
    /// presence, leave. The subscription is already gone from the connection's state; when
    /// the connection has subscribed to the channel again meanwhile (a v2 client resubscribing
    /// at once after an unsubscribe push, before the tick that does this cleanup), nothing is
    /// undone: the hub entry, presence and broker interest belong to the new subscription.
    pub(crate) async fn drop_subscription(
        &self,
        client: &ClientShared,
        channel: &str,
        sub: &SubState,
        info: &ClientInfo,
    ) {
        let removed = self
            .0
            .hub
            .remove_subscriber_unless(channel, client.id(), || {
                client.state.lock().subs.contains_key(channel)
            });
        let Some(last) = removed else {
            return;
        };
        if last {
            if let Err(e) = self.0.broker.unsubscribe(channel).await {
                tracing::warn!(channel, error = %e, "broker unsubscribe failed");
            }
        }
        if sub.presence {
            if let Err(e) = self.0.presence.remove_presence(channel, client.id()).await {
                tracing::warn!(channel, error = %e, "presence removal failed");
            }
        }
        if sub.emit_join_leave {
            let mut info = info.clone();
            info.chan_info = sub.chan_info.clone();
            if let Err(e) = self.0.broker.publish_leave(channel, info).await {
                tracing::warn!(channel, error = %e, "leave not published");
            }
        }
    }

    /// After a broker reconnect: publications may have been lost, so on the next tick every
    /// positioned subscription compares its position with the stream top and every other one
    /// is told (see [`crate::engine::BrokerEventHandler::handle_reconnect`]).
    pub fn check_positions_soon(&self) {
        self.gap(None);
    }

    /// A gap in `channel`'s publications (`None`: every channel's), handled on the next tick.
    pub fn gap(&self, channel: Option<&str>) {
        self.0.gaps.lock().add(channel);
        self.0.check_positions.store(true, Ordering::Release);
    }

    /// Tells every node (this one too) about this node, for `info`.
    async fn announce(&self) {
        let msg = ControlMessage::NodeInfo(self.own_info());
        if let Err(e) = self.0.broker.publish_control(msg.encode()).await {
            tracing::warn!(error = %e, "node info not published");
        }
    }

    pub(crate) fn own_info(&self) -> NodeInfoMessage {
        let channels = self.0.hub.channels();
        NodeInfoMessage {
            uid: self.0.uid.clone(),
            name: self.0.cfg.name.clone(),
            version: self.0.cfg.version.clone(),
            num_clients: self.0.hub.num_clients() as u64,
            num_users: self.0.hub.num_users() as u64,
            num_channels: channels.len() as u64,
            num_subs: channels.iter().map(|(_, n)| *n as u64).sum(),
            messages_sent: crate::metrics::METRICS
                .transport_sent
                .iter()
                .map(|c| c.get())
                .sum(),
            uptime: self.uptime().as_secs(),
            // Other nodes merge these into `channels`; a memory-engine node is alone.
            channels: if self.0.memory.is_some() {
                Vec::new()
            } else {
                channels
                    .into_iter()
                    .take(crate::control::MAX_ANNOUNCED_CHANNELS)
                    .map(|(c, n)| (c, n as u64))
                    .collect()
            },
        }
    }

    /// Whether another node `uid` announced itself recently (cheap: no figures gathered).
    pub(crate) fn is_live_node(&self, uid: &str) -> bool {
        self.0.nodes.is_live(uid, NODE_INFO_INTERVAL * 3)
    }

    /// Every live node, this one always included with fresh figures.
    pub(crate) fn live_nodes(&self) -> Vec<NodeInfoMessage> {
        let own = self.own_info();
        let mut nodes: Vec<_> = self
            .0
            .nodes
            .live(NODE_INFO_INTERVAL * 3)
            .into_iter()
            .filter(|n| n.uid != own.uid)
            .collect();
        nodes.push(own);
        nodes.sort_by(|a, b| (&a.name, &a.uid).cmp(&(&b.name, &b.uid)));
        nodes
    }

    /// A control message from the broker; our own are already applied.
    fn handle_control(&self, data: &[u8]) {
        let Some(msg) = ControlMessage::decode(data) else {
            tracing::warn!("undecodable control message");
            return;
        };
        match msg {
            ControlMessage::NodeInfo(info) => self.0.nodes.update(info),
            ControlMessage::Disconnect {
                from,
                user,
                client,
                except,
                reason,
                custom,
                whitelist,
                session,
            } => {
                if from != self.0.uid {
                    self.disconnect_local(&DisconnectOrder {
                        user,
                        client,
                        session,
                        except,
                        whitelist,
                        reason,
                        custom,
                    });
                }
            }
            ControlMessage::Refresh {
                from,
                user,
                client,
                session,
                expired,
                expire_at,
                b64info,
            } => {
                if from != self.0.uid {
                    use base64::Engine;
                    let info = b64info.and_then(|s| {
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .ok()
                            .map(bytes::Bytes::from)
                    });
                    let order = RefreshOrder {
                        user,
                        client,
                        session,
                        expired,
                        expire_at,
                        info,
                    };
                    let node = self.clone();
                    tokio::spawn(async move { node.refresh_local(&order).await });
                }
            }
            msg @ ControlMessage::Subscribe { .. } => {
                let ControlMessage::Subscribe { from, .. } = &msg else {
                    return;
                };
                if *from != self.0.uid {
                    if let Some(sub) = ServerSubscribe::from_message(msg) {
                        let node = self.clone();
                        tokio::spawn(async move { node.subscribe_local(&sub).await });
                    }
                }
            }
            ControlMessage::Emulation {
                from,
                to,
                id,
                session,
                data,
            } => {
                if to == self.0.uid {
                    self.handle_emulation(from, id, session, data);
                }
            }
            ControlMessage::EmulationDone { to, id } => {
                if to == self.0.uid {
                    self.handle_emulation_done(id);
                }
            }
            ControlMessage::Unsubscribe {
                from,
                user,
                channel,
                client,
                session,
                empty_push,
            } => {
                if from != self.0.uid {
                    let node = self.clone();
                    tokio::spawn(async move {
                        let filter = ConnFilter {
                            client: &client,
                            session: &session,
                        };
                        node.unsubscribe_local(&user, &channel, filter, empty_push)
                            .await;
                    });
                }
            }
        }
    }

    /// Closes every connection with `shutdown` and stops the housekeeping tick.
    pub fn shutdown(&self) {
        self.0.cancel.cancel();
        self.0.hub.for_each_client(|c| {
            c.disconnect(DisconnectKind::Shutdown);
            c.cancel.cancel();
        });
    }
}
