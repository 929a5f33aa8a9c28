//! The NATS broker: [`NatsBroker`] implements `rotor_core::engine::Broker` on NATS PUB/SUB
//! (async-nats), so several Rotor nodes serve as one without Redis. A broker only: at-most-once
//! delivery, nothing stored, no JetStream. History and recovery answer 108 "not available";
//! presence comes from elsewhere (Redis, node-local memory, or none: see the server's
//! `engine.rs`).
//!
//! * Subjects as Centrifugo names them ([`subject`]): `P.client.<channel>` while this node has
//!   local subscribers to the channel (the core calls `subscribe` for the first and
//!   `unsubscribe` for the last), `P.control` and `P.node.<name>` always. Channels a NATS
//!   subject cannot carry are refused with 107.
//! * Payloads are Rotor's own versioned encoding ([`wire`]): Rotor nodes talk to Rotor nodes
//!   only. Centrifugo 2.x and 6.x nodes cannot share a prefix with each other either (their
//!   protobuf encodings differ), so a Rotor fleet needs its own prefix next to Centrifugo.
//! * No false acknowledgement: async-nats queues a publish even while disconnected and
//!   replays it later (or loses it with the socket). Here a publish (and a subscribe) fails at
//!   once with `Unavailable` while NATS is not connected, and is acknowledged only after a
//!   round trip on this node's private subject proved that the server handled it ([`sync`];
//!   concurrent publishes share one round trip). A publish during which the connection was
//!   replaced fails too.
//! * No silent gap: a disconnect makes the broker unhealthy (`/health` 503); after the
//!   reconnect, async-nats resends every SUB, a round trip proves they are active, and only
//!   then is the broker healthy again and the node told
//!   (`BrokerEventHandler::handle_reconnect`), so every subscription checks its position or is
//!   told to come back. A slow-consumer event (async-nats dropped messages of a full
//!   subscription) and an undecodable message are gaps too.
//! * TLS to NATS with `tls.enabled` (or a `tls://` URL): see [`config`]. A server certificate
//!   that does not verify keeps the broker unhealthy, as an unreachable server does.

pub mod config;
mod probe;
mod subject;
mod sync;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, Subscriber};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::RwLock;
use rotor_core::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryFilter, HistoryPage, PublishOptions,
    StreamPosition,
};
use rotor_protocol::ClientInfo;
use tokio::sync::{mpsc, Mutex};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

pub use config::{ConfigError, NatsConfig};
pub use subject::{check_channel, Subjects};

use sync::Syncer;

/// Messages async-nats may hold for one subscription before it drops (and reports a slow
/// consumer, which this broker turns into a gap).
pub const SUBSCRIPTION_CAPACITY: usize = 16_384;
/// Subscription map stripes: subscribe/unsubscribe of one channel are serialised, different
/// channels proceed in parallel.
const STRIPES: usize = 64;
/// When a TLS broker that is not healthy yet gets its TLS failure explained.
const PROBE_AFTER: Duration = Duration::from_secs(2);
/// How often the connection state is checked besides the events.
const CHECK_EVERY: Duration = Duration::from_millis(250);

struct Inner {
    client: Client,
    subjects: Subjects,
    handler: RwLock<Option<Arc<dyn BrokerEventHandler>>>,
    /// Connected, every SUB confirmed: publishes and subscribes are accepted.
    healthy: AtomicBool,
    syncer: Arc<Syncer>,
    write_timeout: Duration,
    /// Channel → (reader task, subscribe calls not yet matched by an unsubscribe).
    subs: Vec<Mutex<HashMap<String, (AbortHandle, usize)>>>,
    cancel: CancellationToken,
}

/// Publications, joins, leaves and control over NATS (see the crate docs).
#[derive(Clone)]
pub struct NatsBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("control", &self.inner.subjects.control())
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid NATS address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot subscribe to NATS subject {0}: {1}")]
    Subscribe(String, String),
    #[error("TLS to NATS: {0}")]
    Tls(ConfigError),
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("NATS {what}: {e}"))
}

impl NatsBroker {
    /// Connects (in the background: NATS may come up later, the broker is unhealthy until
    /// then) and subscribes to the control subjects. Must run inside the Tokio runtime.
    pub async fn start(cfg: NatsConfig) -> Result<NatsBroker, StartError> {
        let addrs: Vec<async_nats::ServerAddr> = cfg
            .urls
            .iter()
            .map(|u| {
                u.parse()
                    .map_err(|e: std::io::Error| StartError::Address(u.clone(), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let (events_tx, events_rx) = mpsc::channel::<Event>(1024);
        let uses_tls = cfg.tls.enabled || addrs.iter().any(|a| a.tls_required());
        let probe_at = uses_tls.then(|| (addrs[0].host().to_owned(), addrs[0].port()));
        let mut opts = ConnectOptions::new();
        if cfg.tls.enabled {
            let tls = cfg.tls_config().map_err(StartError::Tls)?;
            opts = opts.require_tls(true).tls_client_config(tls);
        }
        let opts = opts
            .name(format!("rotor {}", cfg.node_name))
            .connection_timeout(cfg.dial_timeout)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |ev| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.try_send(ev);
                }
            });
        let client = opts
            .connect(addrs)
            .await
            .map_err(|e| StartError::Address(cfg.urls.join(","), e.to_string()))?;
        let subjects = Subjects::new(
            &cfg.prefix,
            &cfg.node_name,
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        let sub = |s: String| {
            let client = client.clone();
            async move {
                client
                    .subscribe(s.clone())
                    .await
                    .map_err(|e| StartError::Subscribe(s, e.to_string()))
            }
        };
        let sync_sub = sub(subjects.sync().to_string()).await?;
        let control = sub(subjects.control().to_string()).await?;
        let node = sub(subjects.node().to_string()).await?;
        let cancel = CancellationToken::new();
        let syncer = Syncer::start(
            client.clone(),
            subjects.sync().to_string(),
            sync_sub,
            cfg.write_timeout,
            cancel.clone(),
        );
        let inner = Arc::new(Inner {
            client,
            subjects,
            handler: RwLock::new(None),
            healthy: AtomicBool::new(false),
            syncer,
            write_timeout: cfg.write_timeout,
            subs: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
            cancel,
        });
        for s in [control, node] {
            tokio::spawn(read_control(Arc::downgrade(&inner), s));
        }
        tokio::spawn(monitor(Arc::downgrade(&inner), events_rx));
        if let Some((host, port)) = probe_at {
            tokio::spawn(explain_tls_failure(Arc::downgrade(&inner), cfg, host, port));
        }
        Ok(NatsBroker { inner })
    }

    /// Waits until the broker is connected and ready, at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_healthy() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops the broker's tasks and the connection.
    pub fn close(&self) {
        self.inner.cancel.cancel();
    }
}

impl Inner {
    fn handler(&self) -> Option<Arc<dyn BrokerEventHandler>> {
        self.handler.read().clone()
    }

    fn connects(&self) -> u64 {
        self.client.statistics().connects.load(Ordering::Relaxed)
    }

    fn ready(&self) -> Result<(), EngineError> {
        if self.healthy.load(Ordering::Acquire)
            && self.client.connection_state() == State::Connected
        {
            Ok(())
        } else {
            Err(EngineError::Unavailable("NATS is not connected".into()))
        }
    }

    fn stripe(&self, channel: &str) -> &Mutex<HashMap<String, (AbortHandle, usize)>> {
        // FNV-1a: cheap and stable.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in channel.as_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        &self.subs[(h % STRIPES as u64) as usize]
    }

    /// Publishes and returns once NATS confirmed it (see the crate docs).
    async fn send(&self, subject: String, payload: Bytes) -> Result<(), EngineError> {
        self.ready()?;
        let before = self.connects();
        tokio::time::timeout(self.write_timeout, self.client.publish(subject, payload))
            .await
            .map_err(|_| unavailable("publish", "timed out"))?
            .map_err(|e| unavailable("publish", e))?;
        self.syncer.sync().await?;
        if self.connects() != before || !self.healthy.load(Ordering::Acquire) {
            return Err(EngineError::Unavailable(
                "NATS reconnected during the publish".into(),
            ));
        }
        Ok(())
    }
}

/// Delivers one channel subscription's messages to the handler, in order.
async fn read_channel(inner: std::sync::Weak<Inner>, channel: String, mut sub: Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(inner) = inner.upgrade() else { return };
        let Some(handler) = inner.handler() else {
            continue;
        };
        match wire::decode(&msg.payload) {
            Some(wire::Message::Publication(p, _epoch)) => handler.handle_publication(&channel, p),
            Some(wire::Message::Join(info)) => handler.handle_join(&channel, info),
            Some(wire::Message::Leave(info)) => handler.handle_leave(&channel, info),
            Some(wire::Message::Control(_)) | None => {
                tracing::warn!(
                    channel = %channel,
                    "dropped a message Rotor's NATS broker cannot read (another node's wire \
                     version, or a Centrifugo node on the same prefix?); subscribers are told"
                );
                handler.handle_gap(&channel);
            }
        }
    }
}

async fn read_control(inner: std::sync::Weak<Inner>, mut sub: Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(inner) = inner.upgrade() else { return };
        let Some(handler) = inner.handler() else {
            continue;
        };
        match wire::decode(&msg.payload) {
            Some(wire::Message::Control(data)) => handler.handle_control(&data),
            _ => tracing::warn!(
                subject = %msg.subject,
                "dropped a control message Rotor's NATS broker cannot read"
            ),
        }
    }
}

/// When a broker using TLS is not healthy [`PROBE_AFTER`] after start, logs why one TLS
/// handshake with the first server fails (async-nats only says "IO error"), see [`probe`].
async fn explain_tls_failure(
    weak: std::sync::Weak<Inner>,
    cfg: NatsConfig,
    host: String,
    port: u16,
) {
    tokio::time::sleep(PROBE_AFTER).await;
    match weak.upgrade() {
        Some(inner) if !inner.cancel.is_cancelled() && !inner.healthy.load(Ordering::Acquire) => {}
        _ => return,
    }
    // A tls:// URL without `tls.enabled` runs with async-nats' own configuration: the
    // system roots.
    let options = if cfg.tls.enabled {
        cfg
    } else {
        NatsConfig::default()
    };
    let Ok(tls) = options.tls_config() else {
        return;
    };
    let timeout = options.dial_timeout;
    let at = format!("{host}:{port}");
    let failure = tokio::task::spawn_blocking(move || {
        probe::tls_failure(&host, port, Arc::new(tls), timeout)
    })
    .await
    .ok()
    .flatten();
    if let Some(error) = failure {
        tracing::error!(server = %at, "TLS to NATS fails: {error}");
    }
}

/// Follows the connection: unhealthy while disconnected; after a reconnect, healthy again once
/// a round trip proved the resent SUBs active, and then the node is told of the gap.
async fn monitor(weak: std::sync::Weak<Inner>, mut events: mpsc::Receiver<Event>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The connect count when the broker last became healthy (0: never yet).
    let mut seen = 0u64;
    // A disconnect was observed since the broker last became healthy.
    let mut gap = false;
    loop {
        let Some(cancel) = weak.upgrade().map(|i| i.cancel.clone()) else {
            return;
        };
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.recv() => ev,
            _ = tick.tick() => None,
        };
        let Some(inner) = weak.upgrade() else { return };
        match event {
            Some(Event::SlowConsumer(sid)) => {
                tracing::warn!(
                    sid,
                    "NATS subscription overflowed (slow consumer): messages were dropped; \
                     subscribers are told"
                );
                if let Some(h) = inner.handler() {
                    h.handle_reconnect();
                }
            }
            Some(Event::Disconnected) => {
                gap = true;
                if inner.healthy.swap(false, Ordering::AcqRel) {
                    tracing::warn!("NATS disconnected; publishes fail and /health answers 503 until it is back");
                }
            }
            Some(Event::ServerError(e)) => tracing::warn!(error = %e, "NATS server error"),
            Some(Event::ClientError(e)) => tracing::warn!(error = %e, "NATS client error"),
            _ => {}
        }
        if inner.client.connection_state() != State::Connected {
            if seen != 0 {
                gap = true;
            }
            if inner.healthy.swap(false, Ordering::AcqRel) {
                tracing::warn!(
                    "NATS disconnected; publishes fail and /health answers 503 until it is back"
                );
            }
            continue;
        }
        let connects = inner.connects();
        if inner.healthy.load(Ordering::Acquire) && connects == seen && !gap {
            continue;
        }
        inner.healthy.store(false, Ordering::Release);
        if inner.syncer.sync().await.is_err() {
            continue;
        }
        let reconnected = seen != 0 && (gap || connects != seen);
        seen = connects;
        gap = false;
        inner.healthy.store(true, Ordering::Release);
        if reconnected {
            tracing::warn!("NATS reconnected and resubscribed; every subscription is checked or told of the gap");
            if let Some(h) = inner.handler() {
                h.handle_reconnect();
            }
        } else {
            tracing::info!("connected to NATS");
        }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn set_handler(&self, handler: Arc<dyn BrokerEventHandler>) {
        *self.inner.handler.write() = Some(handler);
    }

    /// History options are ignored (NATS stores nothing): the publication gets no offset.
    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        info: Option<Arc<ClientInfo>>,
        opts: PublishOptions,
    ) -> Result<StreamPosition, EngineError> {
        check_channel(channel)?;
        let payload = wire::publication(info.as_deref(), opts.tags.as_deref(), None, None, &data);
        self.inner
            .send(self.inner.subjects.client(channel), payload)
            .await?;
        Ok(StreamPosition::default())
    }

    async fn publish_join(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        check_channel(channel)?;
        let payload = wire::join_leave(&info, false);
        self.inner
            .send(self.inner.subjects.client(channel), payload)
            .await
    }

    async fn publish_leave(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        check_channel(channel)?;
        let payload = wire::join_leave(&info, true);
        self.inner
            .send(self.inner.subjects.client(channel), payload)
            .await
    }

    /// Returns once the server confirmed the SUB, so nothing published after it is missed.
    ///
    /// Subscribe and unsubscribe calls are counted per channel, and the NATS subscription
    /// ends only when every successful subscribe was matched by an unsubscribe: the core
    /// calls them for its first and last subscriber, and a new first subscriber's `subscribe`
    /// may overtake the previous last one's `unsubscribe`, which must not drop the channel.
    async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        check_channel(channel)?;
        let inner = &self.inner;
        inner.ready()?;
        let mut subs = inner.stripe(channel).lock().await;
        if let Some((_, count)) = subs.get_mut(channel) {
            *count += 1;
            return Ok(());
        }
        let sub = tokio::time::timeout(
            inner.write_timeout,
            inner.client.subscribe(inner.subjects.client(channel)),
        )
        .await
        .map_err(|_| unavailable("subscribe", "timed out"))?
        .map_err(|e| unavailable("subscribe", e))?;
        inner.syncer.sync().await?;
        let task = tokio::spawn(read_channel(
            Arc::downgrade(inner),
            channel.to_string(),
            sub,
        ));
        subs.insert(channel.to_string(), (task.abort_handle(), 1));
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        let mut subs = self.inner.stripe(channel).lock().await;
        if let Some((task, count)) = subs.get_mut(channel) {
            *count -= 1;
            if *count == 0 {
                // Dropping the subscriber with the task sends the UNSUB.
                task.abort();
                subs.remove(channel);
            }
        }
        Ok(())
    }

    async fn history(
        &self,
        _channel: &str,
        _filter: HistoryFilter,
    ) -> Result<HistoryPage, EngineError> {
        Err(EngineError::NotAvailable(
            "history is not available with the NATS broker".into(),
        ))
    }

    async fn remove_history(&self, _channel: &str) -> Result<(), EngineError> {
        Err(EngineError::NotAvailable(
            "history is not available with the NATS broker".into(),
        ))
    }

    async fn publish_control(&self, data: Bytes) -> Result<(), EngineError> {
        let payload = wire::control(&data);
        self.inner
            .send(self.inner.subjects.control().to_string(), payload)
            .await
    }

    fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Acquire)
            && self.inner.client.connection_state() == State::Connected
    }
}
