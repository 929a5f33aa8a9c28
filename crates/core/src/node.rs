//! The node: owns the hub, the engine, the channel rules and the token verifier; runs the one
//! housekeeping tick that drives every connection's timers; shuts everything down.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rotor_protocol::{ClientInfo, DisconnectKind, Generation, PositionFormat};
use tokio_util::sync::CancellationToken;

use crate::auth::TokenVerifier;
use crate::channel::ChannelRules;
use crate::client::{ClientShared, Session, SubState, TickWork};
use crate::config::{ConfigError, NodeConfig};
use crate::engine::{Broker, PresenceManager};
use crate::hub::{Hub, HubHandler};
use crate::memory::MemoryEngine;

/// Current unix time in seconds (token claims are in seconds).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) struct NodeInner {
    cfg: NodeConfig,
    rules: ChannelRules,
    verifier: TokenVerifier,
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
    presence: Arc<dyn PresenceManager>,
    memory: Option<MemoryEngine>,
    cancel: CancellationToken,
    started: Instant,
    uid: String,
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
        let positions = if cfg.v3_use_offset {
            PositionFormat::Offset
        } else {
            PositionFormat::SeqGen
        };
        let hub = Arc::new(Hub::new(positions));
        broker.set_handler(Arc::new(HubHandler(hub.clone())));
        Ok(Node(Arc::new(NodeInner {
            rules: ChannelRules::new(&cfg),
            verifier: TokenVerifier::new(&cfg.token_hmac_secret_key),
            cfg,
            hub,
            broker,
            presence,
            memory,
            cancel: CancellationToken::new(),
            started: Instant::now(),
            uid: uuid::Uuid::new_v4().to_string(),
        })))
    }

    pub fn config(&self) -> &NodeConfig {
        &self.0.cfg
    }
    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }
    pub fn rules(&self) -> &ChannelRules {
        &self.0.rules
    }
    pub fn verifier(&self) -> &TokenVerifier {
        &self.0.verifier
    }
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.0.broker
    }
    pub fn presence(&self) -> &Arc<dyn PresenceManager> {
        &self.0.presence
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
    pub fn new_session(&self, forced: Option<Generation>) -> Session {
        Session::new(self.clone(), forced)
    }

    /// Starts the housekeeping tick; it stops when the node shuts down.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(250));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut last_cleanup = Instant::now();
            loop {
                tokio::select! {
                    _ = node.0.cancel.cancelled() => break,
                    _ = every.tick() => {}
                }
                node.housekeeping().await;
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
        self.0
            .hub
            .for_each_client(|c| c.tick(&self.0.cfg, now, now_unix, &mut work));
        let ttl = self.0.cfg.client_presence_expire_interval.as_secs();
        for (channel, info) in work.presence {
            if let Err(e) = self.0.presence.add_presence(&channel, info, ttl).await {
                tracing::warn!(%channel, error = %e, "presence refresh failed");
            }
        }
        for (client, channel, sub, info) in work.cleanup {
            self.drop_subscription(&client, &channel, &sub, &info).await;
        }
    }

    /// Undoes a subscription's effects outside the connection: hub entry, broker interest,
    /// presence, leave. The subscription is already gone from the connection's state.
    pub(crate) async fn drop_subscription(
        &self,
        client: &ClientShared,
        channel: &str,
        sub: &SubState,
        info: &ClientInfo,
    ) {
        if self.0.hub.remove_subscriber(channel, client.id()) {
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

    /// Closes every connection with `shutdown` and stops the housekeeping tick.
    pub fn shutdown(&self) {
        self.0.cancel.cancel();
        self.0.hub.for_each_client(|c| {
            c.disconnect(DisconnectKind::Shutdown);
            c.cancel.cancel();
        });
    }
}
