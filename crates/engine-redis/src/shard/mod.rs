//! One shard: a Redis server (fixed, or the master the sentinels name) or a whole Redis Cluster,
//! with one supervisor task that owns its PUB/SUB connection(s) and its data connection.
//!
//! The supervisor connects (with backoff), subscribes to every PUB/SUB channel this node wants
//! from the shard, and only then publishes the data connection: until that moment the shard is
//! not ready, and every operation on it fails with [`EngineError::Unavailable`]. So a publish is
//! never acknowledged while this node could miss it. After a reconnect (not the first connect)
//! it tells the [`Sink`], which makes the node check every recoverable subscription's position.
//!
//! Lost connections are noticed three ways: the PUB/SUB connection closes (Redis pushes a
//! disconnection), a periodic PING on it fails or times out, or a data command fails with a
//! connection-class error ([`Shard::fail`]). Each makes the shard unready at once and the
//! supervisor reconnect.
//!
//! Subscriptions are reference counted by PUB/SUB channel name ([`Shard::subscribe`] /
//! [`Shard::unsubscribe`] calls pair up), so calls racing for the same channel settle on the
//! right state. The supervisor batches: it drains every pending request and sends one
//! SUBSCRIBE and one UNSUBSCRIBE for the lot. A subscribe call returns once Redis confirmed.
//!
//! Messages go to the sink straight from the PUB/SUB connection's reader ([`PushRouter`]), in
//! the order Redis delivered them, so the publications of one channel arrive in offset order.
//! Nothing queues between Redis and the sink, whose own queues are bounded (a message that
//! finds its queue full is dropped and the node checks positions, so clients recover it from
//! history): however far the node falls behind, its memory does not grow with the backlog.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use redis::aio::{AsyncPushSender, ConnectionLike, MultiplexedConnection, SendError};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, ProtocolVersion, PushInfo, PushKind, RedisError,
    RedisFuture, RedisResult, Value,
};
use rotor_core::engine::EngineError;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterTarget, ShardTarget};

mod cluster;
mod link;

use link::Link;

/// Where the supervisor delivers what the shard receives.
pub(crate) trait Sink: Send + Sync + 'static {
    /// A message on PUB/SUB channel `channel`.
    fn message(&self, channel: Vec<u8>, payload: Bytes);
    /// The shard was cut off and is connected and subscribed again.
    fn reconnected(&self);
    /// PUB/SUB channel `channel` was dropped by the server (its cluster slot moved) and is
    /// subscribed again: what was published meanwhile may be missing.
    fn gap(&self, channel: &[u8]);
}

/// Where a PUB/SUB connection's pushes go. Messages are handed to the sink right away by the
/// connection's reader (the sink never blocks: it only queues, bounded); the rest, subscription
/// confirmations and changes and the disconnection notice, go to the supervisor, and only as
/// many of them exist as this node's own subscription changes cause.
#[derive(Clone)]
struct PushRouter {
    sink: Arc<dyn Sink>,
    control: mpsc::UnboundedSender<PushInfo>,
}

impl AsyncPushSender for PushRouter {
    fn send(&self, push: PushInfo) -> Result<(), SendError> {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                deliver(&*self.sink, push);
                Ok(())
            }
            _ => self.control.send(push).map_err(|_| SendError),
        }
    }
}

/// Hands a PUB/SUB message (channel, payload) to the sink.
fn deliver(sink: &dyn Sink, push: PushInfo) {
    let mut it = push.data.into_iter();
    if let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
        (it.next(), it.next())
    {
        sink.message(channel, Bytes::from(payload));
    }
}

/// How to reach the shard.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Single(ShardTarget),
    Cluster(ClusterTarget),
}

/// Timeouts of the shard's connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub connect: Duration,
    pub read: Duration,
    pub ping: Duration,
}

/// Names a fresh connection (best effort: a server without CLIENT SETNAME rights still works).
async fn set_name(conn: &mut MultiplexedConnection, name: Option<&str>, suffix: &str) {
    if let Some(name) = name {
        let _: RedisResult<Value> = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("{name}{suffix}"))
            .query_async(conn)
            .await;
    }
}

/// The connection data commands go through.
#[derive(Clone)]
pub(crate) enum DataConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for DataConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            DataConn::Single(c) => c.req_packed_command(cmd),
            DataConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            DataConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            DataConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            DataConn::Single(c) => c.get_db(),
            DataConn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connected session: data connection, PUB/SUB link, broadcast command.
struct Session {
    data: DataConn,
    link: Link,
    sharded: bool,
    /// A Redis Cluster's masters and state, checked on every ping (cluster.rs).
    cluster: Option<cluster::ClusterWatch>,
    /// Classic PUB/SUB on a Redis Cluster: a connection to the node the PUB/SUB link is on,
    /// for broadcasts (see [`Conn::broadcast`]).
    broadcast: Option<MultiplexedConnection>,
}

/// A ready shard's data connection, for one operation.
#[derive(Clone)]
pub(crate) struct Conn {
    pub data: DataConn,
    /// Broadcast with SPUBLISH (sharded PUB/SUB) instead of PUBLISH.
    pub sharded: bool,
    /// A Redis Cluster: the scripts check which master serves a stream (a failover to a
    /// replica that may have lost entries starts a new epoch, see `lua/publish.lua`).
    pub cluster: bool,
    /// Where a broadcast (a PUBLISH without history) goes instead of `data`: on a Redis
    /// Cluster with classic PUB/SUB, the node this session's PUB/SUB link is on. A PUBLISH
    /// reaches every node from any node, so one connection to one node takes them all, in
    /// deep pipelines, where routing each by its channel's slot spreads them thinly over
    /// every master (each then reads and answers a few at a time).
    pub broadcast: Option<MultiplexedConnection>,
    session: u64,
}

impl Conn {
    /// The broadcast command for this shard.
    pub fn publish_command(&self) -> &'static str {
        if self.sharded {
            "spublish"
        } else {
            "publish"
        }
    }
}

/// A pending change of interest in a PUB/SUB channel; `reply` waits for Redis to confirm.
struct Request {
    channel: String,
    reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// One shard (see the module docs).
pub(crate) struct Shard {
    pub label: String,
    target: Target,
    timing: Timing,
    client_name: Option<String>,
    /// The data connection while the shard is ready; `None` otherwise.
    data: RwLock<Option<Conn>>,
    /// Counts connected sessions, so a late failure of an old session's command is ignored.
    session: AtomicU64,
    ready: AtomicBool,
    /// PUB/SUB channel → number of subscribe calls not yet undone.
    wanted: Mutex<HashMap<String, usize>>,
    requests: mpsc::UnboundedSender<Request>,
    lost: Notify,
    /// A cluster's nodes as learned so far (`host:port`), the last one that answered first.
    known: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("label", &self.label)
            .field("ready", &self.is_ready())
            .finish()
    }
}

fn unavailable(what: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(what.to_string())
}

/// Whether `e` means the connection (or the server behind it) is unusable, as opposed to a
/// failure of one command.
fn is_connection_error(e: &RedisError) -> bool {
    use redis::ServerErrorKind as S;
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal() {
        return true;
    }
    matches!(
        e.kind(),
        redis::ErrorKind::Server(S::ReadOnly | S::MasterDown | S::BusyLoading | S::ClusterDown)
    )
}

impl Shard {
    /// Creates the shard and starts its supervisor; `permanent` PUB/SUB channels are always
    /// subscribed (control).
    pub fn start(
        target: Target,
        timing: Timing,
        client_name: Option<String>,
        permanent: &[String],
        sink: Arc<dyn Sink>,
        cancel: CancellationToken,
    ) -> Arc<Shard> {
        // One of several clusters (client-side sharding) is served like a single cluster.
        let target = match target {
            Target::Single(ShardTarget::Cluster(c)) => Target::Cluster(c),
            t => t,
        };
        let label = match &target {
            Target::Single(t) => t.label(),
            Target::Cluster(c) => c.label(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let shard = Arc::new(Shard {
            label,
            target,
            timing,
            client_name,
            data: RwLock::new(None),
            session: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            wanted: Mutex::new(permanent.iter().map(|c| (c.clone(), 1)).collect()),
            requests: tx,
            lost: Notify::new(),
            known: Mutex::new(Vec::new()),
        });
        tokio::spawn(Arc::clone(&shard).supervise(rx, sink, cancel));
        shard
    }

    /// Connected and subscribed to everything wanted.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The data connection; unavailable while the shard is not ready.
    pub fn conn(&self) -> Result<Conn, EngineError> {
        self.data
            .read()
            .clone()
            .ok_or_else(|| unavailable(format_args!("redis {} is not connected", self.label)))
    }

    /// Maps a failed data command to an engine error; a connection-class failure makes the
    /// shard unready and its supervisor reconnect.
    pub fn fail(&self, conn: &Conn, e: RedisError) -> EngineError {
        if is_connection_error(&e) {
            if conn.session == self.session.load(Ordering::Acquire) {
                self.set_unready();
                self.lost.notify_one();
            }
            unavailable(format_args!("redis {}: {e}", self.label))
        } else {
            EngineError::Internal(format!("redis {}: {e}", self.label))
        }
    }

    fn set_unready(&self) {
        self.ready.store(false, Ordering::Release);
        *self.data.write() = None;
    }

    /// Wants PUB/SUB channel `channel`; returns once Redis confirmed the subscription.
    pub async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        if !self.is_ready() {
            return Err(unavailable(format_args!(
                "redis {} is not connected",
                self.label
            )));
        }
        *self.wanted.lock().entry(channel.to_string()).or_insert(0) += 1;
        let (tx, rx) = oneshot::channel();
        let request = Request {
            channel: channel.to_string(),
            reply: Some(tx),
        };
        let result = if self.requests.send(request).is_err() {
            Err(unavailable("redis engine stopped"))
        } else {
            let wait = self.timing.connect + self.timing.read;
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(unavailable(e)),
                Ok(Err(_)) => Err(unavailable("redis engine stopped")),
                Err(_) => Err(unavailable("subscribe timed out")),
            }
        };
        if result.is_err() {
            self.unsubscribe(channel);
        }
        result
    }

    /// Undoes one [`Shard::subscribe`]; the last one unsubscribes in Redis (in the background).
    pub fn unsubscribe(&self, channel: &str) {
        let mut wanted = self.wanted.lock();
        let Some(count) = wanted.get_mut(channel) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            wanted.remove(channel);
            drop(wanted);
            let _ = self.requests.send(Request {
                channel: channel.to_string(),
                reply: None,
            });
        }
    }

    fn is_wanted(&self, channel: &str) -> bool {
        self.wanted.lock().contains_key(channel)
    }

    async fn supervise(
        self: Arc<Self>,
        mut requests: mpsc::UnboundedReceiver<Request>,
        sink: Arc<dyn Sink>,
        cancel: CancellationToken,
    ) {
        let mut delay = Duration::from_millis(50);
        let mut connected_before = false;
        loop {
            let (control, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
            let router = PushRouter {
                sink: sink.clone(),
                control,
            };
            let attempt = tokio::select! {
                _ = cancel.cancelled() => return,
                r = tokio::time::timeout(self.timing.connect * 3, self.connect(router)) => r,
            };
            let mut session = match attempt {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    self.backoff(&mut requests, &cancel, &mut delay, &e.to_string())
                        .await;
                    continue;
                }
                Err(_) => {
                    self.backoff(&mut requests, &cancel, &mut delay, "connect timed out")
                        .await;
                    continue;
                }
            };
            let mut active: HashSet<String> = HashSet::new();
            let everything: Vec<String> = self.wanted.lock().keys().cloned().collect();
            if let Err(e) = session.link.change(&everything, true).await {
                self.backoff(&mut requests, &cancel, &mut delay, &e.to_string())
                    .await;
                continue;
            }
            active.extend(everything);
            // A failure reported by the previous session must not end this one.
            tokio::select! {
                biased;
                _ = self.lost.notified() => {}
                _ = std::future::ready(()) => {}
            }
            let id = self.session.fetch_add(1, Ordering::AcqRel) + 1;
            *self.data.write() = Some(Conn {
                data: session.data.clone(),
                sharded: session.sharded,
                cluster: session.cluster.is_some(),
                broadcast: session.broadcast.clone(),
                session: id,
            });
            self.ready.store(true, Ordering::Release);
            delay = Duration::from_millis(50);
            if connected_before {
                tracing::warn!(shard = %self.label, channels = active.len(), "redis reconnected and resubscribed");
                sink.reconnected();
            } else {
                tracing::info!(shard = %self.label, "redis connected");
            }
            connected_before = true;

            let reason = self
                .serve(
                    &mut session,
                    &mut active,
                    &mut requests,
                    &mut pushes,
                    &cancel,
                    &*sink,
                )
                .await;
            self.set_unready();
            // Control pushes read before the connection broke (messages went to the sink).
            while let Ok(push) = pushes.try_recv() {
                self.dispatch(push, &active);
            }
            let Some(reason) = reason else { return };
            tracing::warn!(shard = %self.label, %reason, "redis connection lost; reconnecting");
        }
    }

    /// Serves a connected session until it breaks (`Some(reason)`) or the engine stops (`None`).
    async fn serve(
        &self,
        session: &mut Session,
        active: &mut HashSet<String>,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        pushes: &mut mpsc::UnboundedReceiver<PushInfo>,
        cancel: &CancellationToken,
        sink: &dyn Sink,
    ) -> Option<String> {
        let mut ping = tokio::time::interval(self.timing.ping);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            // Not biased: a burst of control pushes must not starve subscribes and pings.
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = self.lost.notified() => return Some("a command failed on the connection".into()),
                push = pushes.recv() => match push {
                    None => return Some("connection closed".into()),
                    Some(p) if p.kind == PushKind::Disconnection => {
                        return Some("connection closed".into());
                    }
                    Some(p) => {
                        if let Some(channel) = self.dispatch(p, active) {
                            // A cluster slot moved (link.rs): put back every subscription
                            // the server dropped so far, then report their gaps.
                            let mut moved = vec![channel];
                            while let Ok(p) = pushes.try_recv() {
                                if p.kind == PushKind::Disconnection {
                                    return Some("connection closed".into());
                                }
                                moved.extend(self.dispatch(p, active));
                            }
                            tracing::warn!(shard = %self.label, channels = moved.len(), "redis dropped subscriptions (slot moved); resubscribing");
                            if let Err(e) = session.link.resubscribe_moved(&moved).await {
                                return Some(format!("resubscribe after a slot move failed: {e}"));
                            }
                            for ch in &moved {
                                sink.gap(ch.as_bytes());
                            }
                        }
                    }
                },
                req = requests.recv() => {
                    let first = req?;
                    let mut batch = vec![first];
                    while let Ok(more) = requests.try_recv() {
                        batch.push(more);
                    }
                    if let Err(e) = self.apply(session, active, &mut batch).await {
                        let msg = format!("redis {}: {e}", self.label);
                        for r in batch {
                            if let Some(reply) = r.reply {
                                let _ = reply.send(Err(msg.clone()));
                            }
                        }
                        return Some(format!("subscription change failed: {e}"));
                    }
                }
                _ = ping.tick() => {
                    if let Err(e) = session.link.ping().await {
                        return Some(format!("ping failed: {e}"));
                    }
                    if let Some(watch) = session.cluster.as_mut() {
                        match tokio::time::timeout(self.timing.read, watch.check()).await {
                            Ok(Ok(nodes)) => self.learn(None, &nodes),
                            Ok(Err(reason)) => return Some(reason),
                            Err(_) => return Some("cluster check timed out".into()),
                        }
                    }
                }
            }
        }
    }

    /// Brings Redis in line with `wanted` for the channels named in `batch`, then answers the
    /// waiting callers.
    async fn apply(
        &self,
        session: &mut Session,
        active: &mut HashSet<String>,
        batch: &mut Vec<Request>,
    ) -> RedisResult<()> {
        let mut add = Vec::new();
        let mut remove = Vec::new();
        let mut seen = HashSet::new();
        for r in batch.iter() {
            if !seen.insert(r.channel.clone()) {
                continue;
            }
            match (self.is_wanted(&r.channel), active.contains(&r.channel)) {
                (true, false) => add.push(r.channel.clone()),
                (false, true) => remove.push(r.channel.clone()),
                _ => {}
            }
        }
        if !remove.is_empty() {
            for ch in &remove {
                active.remove(ch);
            }
            session.link.change(&remove, false).await?;
        }
        if !add.is_empty() {
            session.link.change(&add, true).await?;
            active.extend(add);
        }
        for r in batch.drain(..) {
            if let Some(reply) = r.reply {
                let _ = reply.send(Ok(()));
            }
        }
        Ok(())
    }

    /// Looks at a control push (messages went to the sink through [`PushRouter`]); `Some(channel)`
    /// when the server dropped a subscription this node still wants (a cluster slot moved away).
    fn dispatch(&self, push: PushInfo, active: &HashSet<String>) -> Option<String> {
        match push.kind {
            PushKind::SUnsubscribe => {
                // Our own unsubscribes removed the channel from `active` before they were sent;
                // one still active was dropped by the server (slot migration).
                let channel = match push.data.first() {
                    Some(Value::BulkString(c)) => String::from_utf8_lossy(c).into_owned(),
                    _ => return None,
                };
                (active.contains(&channel) && self.is_wanted(&channel)).then_some(channel)
            }
            _ => None,
        }
    }

    /// Waits before the next connect attempt, failing subscribe calls meanwhile.
    async fn backoff(
        &self,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        cancel: &CancellationToken,
        delay: &mut Duration,
        reason: &str,
    ) {
        self.set_unready();
        tracing::warn!(shard = %self.label, reason, retry_in = ?*delay, "redis unavailable");
        let sleep = tokio::time::sleep(*delay);
        tokio::pin!(sleep);
        *delay = (*delay * 2).min(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = &mut sleep => return,
                req = requests.recv() => match req {
                    None => return,
                    Some(r) => {
                        if let Some(reply) = r.reply {
                            let _ = reply.send(Err(format!("redis {} is not connected", self.label)));
                        }
                    }
                },
            }
        }
    }

    fn conn_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timing.connect))
            .set_response_timeout(Some(self.timing.read))
    }

    async fn connect(&self, pushes: PushRouter) -> RedisResult<Session> {
        match &self.target {
            Target::Single(t) => {
                let client = match t {
                    ShardTarget::Direct(info) => {
                        let redis = info
                            .redis_settings()
                            .clone()
                            .set_protocol(ProtocolVersion::RESP3);
                        Client::open(info.clone().set_redis_settings(redis))?
                    }
                    ShardTarget::Sentinel {
                        master_name,
                        sentinels,
                        sentinel_password,
                        password,
                        username,
                        db,
                    } => {
                        let mut b = SentinelClientBuilder::new(
                            sentinels.clone(),
                            master_name,
                            SentinelServerType::Master,
                        )?
                        .set_client_to_redis_protocol(ProtocolVersion::RESP3)
                        .set_client_to_redis_db(*db);
                        if let Some(p) = password {
                            b = b.set_client_to_redis_password(p);
                        }
                        if let Some(u) = username {
                            b = b.set_client_to_redis_username(u);
                        }
                        if let Some(p) = sentinel_password {
                            b = b.set_client_to_sentinel_password(p);
                        }
                        b.build()?.async_get_client().await?
                    }
                    ShardTarget::Cluster(c) => return self.connect_cluster(c, pushes).await,
                };
                let mut data = client
                    .get_multiplexed_async_connection_with_config(&self.conn_config())
                    .await?;
                let mut sub = client
                    .get_multiplexed_async_connection_with_config(
                        &self.conn_config().set_push_sender(pushes),
                    )
                    .await?;
                set_name(&mut data, self.client_name.as_deref(), "").await;
                set_name(&mut sub, self.client_name.as_deref(), "-pubsub").await;
                Ok(Session {
                    data: DataConn::Single(data),
                    link: Link::Plain(sub),
                    sharded: false,
                    cluster: None,
                    broadcast: None,
                })
            }
            Target::Cluster(c) => self.connect_cluster(c, pushes).await,
        }
    }
}
