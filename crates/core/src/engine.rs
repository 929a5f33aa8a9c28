//! The seams between the node and where channel state lives: [`Broker`] (publications, stream
//! positions, history) and [`PresenceManager`]. The memory engine implements both in process;
//! the Redis engine will implement them across nodes. Both are async so that a networked engine
//! fits without changing callers.
//!
//! Ordering contract: a broker delivers the publications of one channel to the
//! [`BrokerEventHandler`] in offset order, one at a time, and assigns offsets without gaps.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rotor_protocol::{ClientInfo, Publication, Tags};

/// A position in a channel's stream: the offset of its last publication and the stream's epoch
/// (which changes when the stream is recreated, so old offsets become meaningless).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: String,
}

/// How one publish is stored and delivered. Everything past the history settings is off by
/// default and costs nothing when off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// 0 = keep no history (the publication gets no offset).
    pub history_size: usize,
    /// Seconds; 0 = keep no history.
    pub history_lifetime: u64,
    /// Tags delivered with the publication (and kept in history).
    pub tags: Option<Arc<Tags>>,
    /// Server API `idempotency_key`: a second publish with the same key in the same channel
    /// within [`PublishOptions::idempotent_ttl`] is not published again and answers the first
    /// result. Checked by the broker, so it holds across nodes on a shared broker.
    pub idempotency_key: Option<String>,
    /// How long an idempotency key is remembered (Centrifugo: 300 s). Zero = the default.
    pub idempotent_ttl: Duration,
    /// Server API `delta`: subscribers that negotiated delta compression may get this
    /// publication as a delta against the previous one in the stream.
    pub delta: bool,
    /// Server API `version` (0 = none): in a channel with history, a publication whose version
    /// is not above the last one stored (with the same `version_epoch`) is dropped silently and
    /// the publish answers the current stream top.
    pub version: u64,
    pub version_epoch: String,
    /// The namespace's `history_meta_ttl`: how long the stream's offset and epoch outlive the
    /// last publish. `None` = the engine's own setting (`memory_history_meta_ttl`,
    /// `redis_history_meta_ttl`).
    pub history_meta_ttl: Option<Duration>,
}

/// Centrifugo's idempotency window.
pub const DEFAULT_IDEMPOTENT_TTL: Duration = Duration::from_secs(300);

impl PublishOptions {
    /// The idempotency window in effect.
    pub fn idempotent_ttl(&self) -> Duration {
        if self.idempotent_ttl.is_zero() {
            DEFAULT_IDEMPOTENT_TTL
        } else {
            self.idempotent_ttl
        }
    }
}

impl PublishOptions {
    pub fn keeps_history(&self) -> bool {
        self.history_size > 0 && self.history_lifetime > 0
    }
}

/// Which part of a stream to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Return publications after this position (exclusive). With `reverse`, publications before
    /// it, newest first. `None` = from the start (or from the end when `reverse`).
    pub since: Option<StreamPosition>,
    /// Maximum number of publications; `None` = all, `Some(0)` = only the stream top.
    pub limit: Option<usize>,
    pub reverse: bool,
    /// The namespace's `history_meta_ttl`, for a stream this read creates (see
    /// [`PublishOptions::history_meta_ttl`]); `None` = the engine's own setting.
    pub history_meta_ttl: Option<Duration>,
}

impl HistoryFilter {
    /// The current generation's history options (client command and `/api/history`): limit
    /// absent/0 = only the stream top, negative = all.
    pub fn from_request(
        limit: i64,
        since: Option<rotor_protocol::command::StreamPosition>,
        reverse: bool,
    ) -> Self {
        Self {
            since: since.map(|s| StreamPosition {
                offset: s.offset,
                epoch: s.epoch,
            }),
            limit: if limit < 0 {
                None
            } else {
                Some(usize::try_from(limit).unwrap_or(usize::MAX))
            },
            reverse,
            history_meta_ttl: None,
        }
    }
}

/// The result of a history read: the publications asked for and the current stream top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub publications: Vec<Publication>,
    pub position: StreamPosition,
}

/// A failure inside an engine; clients see error 100.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EngineError {
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    #[error("engine error: {0}")]
    Internal(String),
    /// The engine does not offer this at all (history on a broker without storage, presence
    /// without a presence manager): clients and the API get 108 "not available".
    #[error("not available: {0}")]
    NotAvailable(String),
    /// The broker cannot carry this channel name (a NATS subject with `*`, `>`, whitespace or
    /// an empty token): clients and the API get 107 "bad request", not a disconnect.
    #[error("channel not supported by the broker: {0}")]
    BadChannel(String),
}

impl EngineError {
    /// Whether this is [`EngineError::NotAvailable`] (108), not a failure (100).
    pub fn is_not_available(&self) -> bool {
        matches!(self, EngineError::NotAvailable(_))
    }

    /// The protocol error code clients and the API get: 108, 107, else 100 (internal).
    pub fn code(&self) -> u32 {
        match self {
            EngineError::NotAvailable(_) => 108,
            EngineError::BadChannel(_) => 107,
            EngineError::Unavailable(_) | EngineError::Internal(_) => 100,
        }
    }
}

/// Where the broker delivers what it receives, on this node.
pub trait BrokerEventHandler: Send + Sync {
    /// A publication for `channel` (already carrying its offset when history is on).
    fn handle_publication(&self, channel: &str, publication: Publication);
    fn handle_join(&self, channel: &str, info: ClientInfo);
    fn handle_leave(&self, channel: &str, info: ClientInfo);
    /// A control message from some node (this one included), see [`Broker::publish_control`].
    fn handle_control(&self, _data: &[u8]) {}
    /// The broker was cut off from its backend and is back: publications of any channel may
    /// have been missed meanwhile. Every positioned subscription checks its stream position
    /// (a gap ends in `recovered: false` / insufficient state); every other subscription is
    /// told explicitly (v2: unsubscribe 2500, the client resubscribes; v1: disconnect 3010,
    /// the client reconnects), so no client misses a publication silently.
    fn handle_reconnect(&self) {}
    /// Like [`BrokerEventHandler::handle_reconnect`], for one channel only (a dropped message,
    /// a changed stream epoch).
    fn handle_gap(&self, _channel: &str) {
        self.handle_reconnect()
    }
}

/// Publications, join/leave fan-in and stream history.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Called once at start-up, before any other method.
    fn set_handler(&self, handler: Arc<dyn BrokerEventHandler>);
    /// Stores `publication` in history (when `opts` says so), assigns its offset and delivers it
    /// to every node's handler. Returns the new stream top.
    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        info: Option<Arc<ClientInfo>>,
        opts: PublishOptions,
    ) -> Result<StreamPosition, EngineError>;
    async fn publish_join(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError>;
    async fn publish_leave(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError>;
    /// This node has its first subscriber to `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), EngineError>;
    /// This node's last subscriber to `channel` left.
    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError>;
    async fn history(
        &self,
        channel: &str,
        filter: HistoryFilter,
    ) -> Result<HistoryPage, EngineError>;
    async fn remove_history(&self, channel: &str) -> Result<(), EngineError>;
    /// Sends an opaque control message to every node's handler (this node's too); used for
    /// node-to-node commands such as disconnecting a user everywhere.
    async fn publish_control(&self, data: Bytes) -> Result<(), EngineError>;
    /// Whether the broker can serve right now (false while its backend is unreachable); drives
    /// `/health`.
    fn is_healthy(&self) -> bool {
        true
    }
}

/// Presence summary of a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    pub num_clients: u32,
    pub num_users: u32,
}

/// Who is in a channel. Entries expire unless refreshed (the node refreshes them periodically).
#[async_trait]
pub trait PresenceManager: Send + Sync {
    /// Adds or refreshes `info` (keyed by its client ID); it expires after `expire` seconds.
    async fn add_presence(
        &self,
        channel: &str,
        info: ClientInfo,
        expire_secs: u64,
    ) -> Result<(), EngineError>;
    async fn remove_presence(&self, channel: &str, client_id: &str) -> Result<(), EngineError>;
    /// Live entries, any order.
    async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, EngineError>;
    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, EngineError>;
    /// Whether presence can be served right now (false while its backend is unreachable);
    /// drives `/health` together with [`Broker::is_healthy`] (they differ when presence lives
    /// on Redis beside a NATS broker).
    fn is_healthy(&self) -> bool {
        true
    }
}

/// No presence at all (Centrifugo 2.x `engine: memory` with `broker: nats`): entries are not
/// kept, and asking for presence answers 108 "not available".
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPresence;

#[async_trait]
impl PresenceManager for NoPresence {
    async fn add_presence(
        &self,
        _channel: &str,
        _info: ClientInfo,
        _expire_secs: u64,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    async fn remove_presence(&self, _channel: &str, _client_id: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn presence(&self, _channel: &str) -> Result<Vec<ClientInfo>, EngineError> {
        Err(EngineError::NotAvailable("no presence manager".into()))
    }

    async fn presence_stats(&self, _channel: &str) -> Result<PresenceStats, EngineError> {
        Err(EngineError::NotAvailable("no presence manager".into()))
    }
}
