//! The backend seam: the decisions a session asks the application about, as the Go library's
//! event handlers do. A connect without a token, a connection reaching its `expire_at`, a
//! subscribe or publish in a namespace routed to the backend, a subscription refresh done by the
//! server, and every client `rpc`: each is one call on [`Backend`].
//!
//! The core knows nothing of HTTP or gRPC: `rotor-proxy` implements this trait for Centrifugo's
//! proxies. A node without a backend holds `None` and never builds the values below, so the
//! feature costs nothing when it is off. Calls run in the connection's command loop (one command
//! at a time, replies in order) and are bounded by the implementation's own timeouts.
//!
//! Payloads (`data`, `info`, `meta`) are the raw bytes: JSON text for a JSON client, whatever the
//! client sent for a Protobuf one; the implementation decides how to carry them (`data` or
//! `b64data`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use rotor_protocol::{Encoding, Generation};

/// Which generation of configuration keys set the backend up: the request shapes, the `b64*`
/// rules and a few access decisions follow it (PROXY.md §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendStyle {
    /// Centrifugo 2.x flat keys (`proxy_connect_endpoint`, ...).
    Legacy,
    /// Centrifugo 6 nested keys (`client.proxy.connect`, `channel.proxy.*`, `proxies`, ...).
    Modern,
}

/// What a backend offers; read when a connection starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// A connect without a token goes to the backend.
    pub connect: bool,
    /// Connections with an expiry are refreshed by the server through the backend (and the
    /// client-side `refresh` command is then refused).
    pub refresh: bool,
    /// Client `rpc` commands go to the backend (which may still answer 104/108 per method).
    pub rpc: bool,
}

/// The connection as the backend sees it on every call.
#[derive(Debug, Clone)]
pub struct ConnContext {
    pub client: Arc<str>,
    /// `websocket`, `sockjs`, `http_stream`, `sse`, ...
    pub transport: &'static str,
    pub encoding: Encoding,
    /// The client's protocol generation (client-facing framing follows it).
    pub generation: Generation,
    /// `""` for an anonymous connection (and on connect, before the backend names one).
    pub user: String,
    /// Connection meta set by the connect (or refresh) answer; never sent to the client.
    pub meta: Option<Bytes>,
    /// The transport request's headers the backend asked for (lower-case names, in order).
    pub headers: Arc<[(String, String)]>,
    /// v2 connect-frame `headers` (header emulation for transports that cannot set headers).
    pub emulated_headers: Arc<[(String, String)]>,
}

/// A connect without a token.
#[derive(Debug, Clone, Default)]
pub struct ConnectEvent {
    pub data: Option<Bytes>,
    pub name: String,
    pub version: String,
    /// Channels the client listed in its connect `subs` (v2).
    pub channels: Vec<String>,
}

/// Per-subscription overrides a backend may set (Centrifugo 6 `override`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubOverride {
    pub presence: Option<bool>,
    pub join_leave: Option<bool>,
    pub force_recovery: Option<bool>,
    pub force_positioning: Option<bool>,
    pub force_push_join_leave: Option<bool>,
}

/// A server-side subscription chosen by the connect answer (`channels`, or `subs` in v6), or
/// by a connection token's `subs` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSub {
    pub channel: String,
    pub info: Option<Bytes>,
    /// Sent in that subscription's result (v2 clients).
    pub data: Option<Bytes>,
    pub overrides: SubOverride,
}

/// The backend accepted a connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectGrant {
    /// `""` = anonymous, accepted even when anonymous mode is off.
    pub user: String,
    /// Unix seconds; `None` = never expires.
    pub expire_at: Option<i64>,
    pub info: Option<Bytes>,
    /// Sent in the connect reply.
    pub data: Option<Bytes>,
    pub subs: Vec<ServerSub>,
    pub meta: Option<Bytes>,
}

/// The backend's answer to a server-side connection refresh.
#[derive(Debug, Clone, Default)]
pub struct RefreshGrant {
    pub expired: bool,
    pub expire_at: Option<i64>,
    pub info: Option<Bytes>,
    pub meta: Option<Bytes>,
}

/// A subscribe routed to the backend.
#[derive(Debug, Clone, Default)]
pub struct SubscribeEvent {
    pub channel: String,
    pub data: Option<Bytes>,
}

/// The backend allowed a subscription.
#[derive(Debug, Clone, Default)]
pub struct SubscribeGrant {
    pub info: Option<Bytes>,
    pub data: Option<Bytes>,
    pub expire_at: Option<i64>,
    pub overrides: SubOverride,
}

/// A client publication routed to the backend.
#[derive(Debug, Clone, Default)]
pub struct PublishEvent {
    pub channel: String,
    pub data: Bytes,
}

/// The backend allowed a publication.
#[derive(Debug, Clone, Default)]
pub struct PublishGrant {
    /// Replaces the client's payload.
    pub data: Option<Bytes>,
    /// Publish without keeping it in the channel's history.
    pub skip_history: bool,
}

/// A server-side subscription refresh (Centrifugo 6 `sub_refresh`).
#[derive(Debug, Clone, Default)]
pub struct SubRefreshEvent {
    pub channel: String,
}

/// The backend's answer to a subscription refresh.
#[derive(Debug, Clone, Default)]
pub struct SubRefreshGrant {
    pub expired: bool,
    pub expire_at: Option<i64>,
    pub info: Option<Bytes>,
}

/// A client `rpc`.
#[derive(Debug, Clone, Default)]
pub struct RpcEvent {
    pub method: String,
    pub data: Option<Bytes>,
}

/// How a backend call did not grant what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend answered with an error for the client (its code, in the client's reply).
    #[error("backend error {code}: {message}")]
    Error {
        code: u32,
        message: String,
        temporary: bool,
    },
    /// The backend asked to close the connection.
    #[error("backend disconnect {code}: {reason}")]
    Disconnect {
        code: u16,
        reason: String,
        reconnect: bool,
    },
    /// The call itself failed (network, timeout, status, malformed answer): logged and counted
    /// by the implementation; the client gets error 100 (temporary on v2).
    #[error("backend call failed")]
    Failed,
}

pub type BackendResult<T> = Result<T, BackendError>;

/// The application backend. Every method has a default that says "not available" (108), so an
/// implementation only writes what it offers.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn style(&self) -> BackendStyle;

    fn capabilities(&self) -> Capabilities;

    /// Whether a transport request header (lower-case name) is to be kept for the calls of
    /// this connection. Transports ask once per header at the handshake.
    fn wants_header(&self, _name: &str) -> bool {
        false
    }

    /// Whether a v2 connect-frame header (lower-case name) is to be kept.
    fn wants_emulated_header(&self, _name: &str) -> bool {
        false
    }

    /// A connect without a token. `Ok(None)`: the backend gave no credentials.
    async fn connect(
        &self,
        _ctx: &ConnContext,
        _ev: ConnectEvent,
    ) -> BackendResult<Option<ConnectGrant>> {
        Err(not_available())
    }

    /// The connection reached its `expire_at`. `Ok(None)`: no result (the connection expires).
    async fn refresh(&self, _ctx: &ConnContext) -> BackendResult<Option<RefreshGrant>> {
        Err(not_available())
    }

    /// A subscribe in a namespace routed to the backend proxy `proxy` (`""` = the default one).
    async fn subscribe(
        &self,
        _proxy: &str,
        _ctx: &ConnContext,
        _ev: SubscribeEvent,
    ) -> BackendResult<SubscribeGrant> {
        Err(not_available())
    }

    /// A client publication in a namespace routed to the backend proxy `proxy`.
    async fn publish(
        &self,
        _proxy: &str,
        _ctx: &ConnContext,
        _ev: PublishEvent,
    ) -> BackendResult<PublishGrant> {
        Err(not_available())
    }

    /// A subscription refresh through the backend proxy `proxy`. `Ok(None)`: no result.
    async fn sub_refresh(
        &self,
        _proxy: &str,
        _ctx: &ConnContext,
        _ev: SubRefreshEvent,
    ) -> BackendResult<Option<SubRefreshGrant>> {
        Err(not_available())
    }

    /// A client `rpc`: the answer's data (routing by method is the implementation's).
    async fn rpc(&self, _ctx: &ConnContext, _ev: RpcEvent) -> BackendResult<Option<Bytes>> {
        Err(not_available())
    }
}

/// Error 108 "not available": what a missing handler answers.
pub fn not_available() -> BackendError {
    BackendError::Error {
        code: 108,
        message: "not available".to_string(),
        temporary: false,
    }
}
