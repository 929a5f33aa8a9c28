//! The server API (HTTP `/api`, `/api/<method>`, both gRPC services): what the backend may do
//! to channels and connections. Requests are the protocol crate's typed params (every
//! transport decodes into them); [`Node::api_execute`] runs one in the rules of its
//! generation and returns a typed [`ApiResult`] that each transport encodes in its own shape.
//! The generation decides check order, error texts and defaults where 2.x and v6 differ
//! (GRPC-API.md §3.1); the protocol only labels the metrics.

pub(crate) mod connections;
mod glob;
mod publish;
mod query;

use bytes::Bytes;
use rotor_protocol::api::{ApiCommand, BatchEntry};
use rotor_protocol::ClientInfo;

use crate::engine::{HistoryPage, PresenceStats, StreamPosition};
use crate::node::Node;

/// A server API error (its own code set, distinct from client errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("api error {code}")]
pub struct ApiError {
    pub code: u32,
}

impl ApiError {
    pub const INTERNAL: Self = Self { code: 100 };
    pub const UNKNOWN_CHANNEL: Self = Self { code: 102 };
    pub const METHOD_NOT_FOUND: Self = Self { code: 104 };
    pub const BAD_REQUEST: Self = Self { code: 107 };
    pub const NOT_AVAILABLE: Self = Self { code: 108 };

    /// 108 for what the engine does not offer at all, 107 for a channel the broker cannot
    /// carry, 100 for a failure.
    pub fn from_engine(e: crate::engine::EngineError) -> Self {
        Self { code: e.code() }
    }
    pub const UNRECOVERABLE_POSITION: Self = Self { code: 112 };
    pub const CONFLICT: Self = Self { code: 113 };

    /// The message text: 2.x (`/api`, the `api.Centrifugo` service) and the current API word
    /// some codes differently.
    pub fn message(&self, legacy: bool) -> &'static str {
        match self.code {
            100 => "internal server error",
            102 if legacy => "namespace not found",
            102 => "unknown channel",
            104 if legacy => "method not found",
            104 => "not found",
            106 => "limit exceeded",
            107 => "bad request",
            108 => "not available",
            112 => "unrecoverable position",
            113 => "conflict",
            _ => "error",
        }
    }
}

/// Whose rules a call follows: 2.x (`/api`, gRPC `api.Centrifugo`) or the current API
/// (`/api/<method>`, gRPC `centrifugal.centrifugo.api.CentrifugoApi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiGeneration {
    V1,
    V2,
}

impl ApiGeneration {
    pub fn is_legacy(self) -> bool {
        self == Self::V1
    }
}

/// How a call arrived (the `protocol` label of the `centrifugo_api_*` metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiProtocol {
    Http = 0,
    Grpc = 1,
}

impl ApiProtocol {
    pub const ALL: [ApiProtocol; 2] = [ApiProtocol::Http, ApiProtocol::Grpc];

    pub fn name(self) -> &'static str {
        match self {
            ApiProtocol::Http => "http",
            ApiProtocol::Grpc => "grpc",
        }
    }
}

/// What `info` reports about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: u64,
    pub num_users: u64,
    pub num_channels: u64,
    pub num_subs: u64,
    pub uptime_secs: u64,
    /// Messages queued to the node's clients since it started (see
    /// [`crate::control::NodeInfoMessage::messages_sent`]).
    pub messages_sent: u64,
}

/// A successful call's result, for the transport to encode. Methods without a result (2.x
/// leaves it unset, the current API sends `{}`) have a unit variant.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiResult {
    Publish(StreamPosition),
    /// One outcome per channel, in request order (2.x stops at the first error instead).
    Broadcast(Vec<Result<StreamPosition, ApiError>>),
    Subscribe,
    Unsubscribe,
    Disconnect,
    Refresh,
    /// Sorted by client ID.
    Presence(Vec<ClientInfo>),
    PresenceStats(PresenceStats),
    History(HistoryPage),
    HistoryRemove,
    /// Channel and subscriber count over every node, sorted by channel.
    Channels(Vec<(String, usize)>),
    Info(Vec<NodeInfo>),
    Rpc(Bytes),
}

/// Largest number of batch commands run at once with `parallel` (Centrifugo's bound).
pub const BATCH_PARALLELISM: usize = 1024;

impl Node {
    /// Publishes `data` to `channel` with the channel's history settings and nothing else
    /// (the admin UI, tests): the current API's `publish` with only `channel` and `data`.
    pub async fn api_publish_data(
        &self,
        channel: &str,
        data: Bytes,
    ) -> Result<StreamPosition, ApiError> {
        let fields = rotor_protocol::api::PublishFields {
            data: Some(data),
            ..Default::default()
        };
        self.api_publish(ApiGeneration::V2, channel, &fields).await
    }

    /// Runs one API command in `generation`'s rules, counting it in the API metrics.
    pub async fn api_execute(
        &self,
        generation: ApiGeneration,
        protocol: ApiProtocol,
        cmd: ApiCommand,
    ) -> Result<ApiResult, ApiError> {
        let method = cmd.method();
        let started = std::time::Instant::now();
        let result = self.api_run(generation, cmd).await;
        let error = result.as_ref().err().map(|e| e.code);
        crate::metrics::api_command(protocol, method, started.elapsed(), error);
        result
    }

    async fn api_run(
        &self,
        generation: ApiGeneration,
        cmd: ApiCommand,
    ) -> Result<ApiResult, ApiError> {
        Ok(match cmd {
            ApiCommand::Publish(p) => ApiResult::Publish(
                self.api_publish(generation, &p.channel, &p.fields())
                    .await?,
            ),
            ApiCommand::Broadcast(p) => ApiResult::Broadcast(
                self.api_broadcast(generation, &p.channels, &p.fields())
                    .await?,
            ),
            ApiCommand::Subscribe(p) => {
                self.api_subscribe(&p).await?;
                ApiResult::Subscribe
            }
            ApiCommand::Unsubscribe(p) => {
                self.api_unsubscribe(generation, &p).await?;
                ApiResult::Unsubscribe
            }
            ApiCommand::Disconnect(p) => {
                self.api_disconnect(generation, &p).await?;
                ApiResult::Disconnect
            }
            ApiCommand::Refresh(p) => {
                self.api_refresh(&p).await?;
                ApiResult::Refresh
            }
            ApiCommand::Presence(p) => ApiResult::Presence(self.api_presence(&p.channel).await?),
            ApiCommand::PresenceStats(p) => {
                ApiResult::PresenceStats(self.api_presence_stats(&p.channel).await?)
            }
            ApiCommand::History(p) => ApiResult::History(self.api_history(generation, &p).await?),
            ApiCommand::HistoryRemove(p) => {
                self.api_history_remove(&p.channel).await?;
                ApiResult::HistoryRemove
            }
            ApiCommand::Channels(p) => ApiResult::Channels(self.api_channels(&p.pattern)?),
            ApiCommand::Info => ApiResult::Info(self.api_info()),
            ApiCommand::Rpc(p) => ApiResult::Rpc(self.api_rpc(&p)?),
        })
    }

    /// A current-API batch: one outcome per entry, in request order; `parallel` runs up to
    /// [`BATCH_PARALLELISM`] commands at once. The batch itself never fails; it is counted as
    /// method `batch` and each command under its own method.
    pub async fn api_batch(
        &self,
        protocol: ApiProtocol,
        entries: Vec<BatchEntry>,
        parallel: bool,
    ) -> Vec<Result<ApiResult, ApiError>> {
        let started = std::time::Instant::now();
        let replies = self.api_batch_run(protocol, entries, parallel).await;
        crate::metrics::api_command(protocol, "batch", started.elapsed(), None);
        replies
    }

    async fn api_batch_run(
        &self,
        protocol: ApiProtocol,
        entries: Vec<BatchEntry>,
        parallel: bool,
    ) -> Vec<Result<ApiResult, ApiError>> {
        let run = |entry: BatchEntry| async move {
            match entry {
                BatchEntry::Command(cmd) => {
                    self.api_execute(ApiGeneration::V2, protocol, cmd).await
                }
                BatchEntry::Null => Err(ApiError::BAD_REQUEST),
                BatchEntry::NoMethod => Err(ApiError::METHOD_NOT_FOUND),
            }
        };
        if !parallel {
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                out.push(run(e).await);
            }
            return out;
        }
        use futures_util::stream::{self, StreamExt};
        stream::iter(entries.into_iter().map(run))
            .buffered(BATCH_PARALLELISM)
            .collect()
            .await
    }
}
