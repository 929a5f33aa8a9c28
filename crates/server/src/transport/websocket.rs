//! The WebSocket transport: upgrades `/connection/websocket`, then runs one reader (frames into
//! the session, in order) and one writer (everything queued merged into as few frames and
//! writes as possible) per connection.
//!
//! A connection that negotiated permessage-deflate runs on [`deflate::DeflateSocket`]; every
//! other one on tungstenite, exactly as without compression.

pub(crate) mod deflate;

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use rotor_core::writer::WriterStep;
use rotor_core::{ClientShared, Session};
use rotor_protocol::{DisconnectKind, Encoding, Generation};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use crate::app::{AppState, SharedState};
use deflate::DeflateSocket;

/// Initial WebSocket read buffer; tungstenite grows it for larger messages.
const READ_BUFFER: usize = 1024;

/// Merged frames stay below this size unless a single message is larger.
const MAX_MERGED_FRAME: usize = 64 * 1024;

/// Sub-protocols we speak, in the order a client's offer is matched against.
const PROTOCOLS: [&str; 2] = ["centrifuge-protobuf", "centrifuge-json"];

/// Header access shared by the two ways an upgrade arrives: parsed by [`crate::http`] as the
/// first request of a connection, or by hyper as a later one.
pub(crate) trait HeaderLookup {
    /// Every value of header `name` (lower case), in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
    /// Every header as `(name, value)`, in order.
    fn pairs<'a>(&'a self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a;
}

impl HeaderLookup for HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
    fn pairs<'a>(&'a self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.iter().map(|(k, v)| (k.as_str(), v.as_bytes()))
    }
}

impl HeaderLookup for [httparse::Header<'_>] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
    fn pairs<'a>(&'a self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.iter().map(|h| (h.name, h.value))
    }
}

/// The upgrade request's headers the backend asked for (lower-case names), for the proxies;
/// `None` without a backend, so a connection costs nothing more then.
pub(crate) type BackendHeaders = Option<Vec<(String, Vec<u8>)>>;

/// What the serving side needs beyond generation and encoding.
pub(crate) struct Handover {
    headers: BackendHeaders,
    /// Set when permessage-deflate was negotiated.
    deflate: Option<deflate::Params>,
    /// The connection counts toward `client.connection_limit` from its admission, before the
    /// `101` is written (a client that saw its 101 is counted).
    tracked: TaskTrackerToken,
}

impl Handover {
    /// The backend headers alone, for a transport without compression (SockJS).
    pub(crate) fn into_headers(self) -> BackendHeaders {
        self.headers
    }
}

/// A WebSocket connection as the transports drive it: tungstenite's, or the deflate one.
pub(crate) trait Socket:
    futures_util::Stream<Item = Result<Message, tungstenite::Error>>
    + futures_util::Sink<Message, Error = tungstenite::Error>
    + Unpin
{
}

impl<T> Socket for T where
    T: futures_util::Stream<Item = Result<Message, tungstenite::Error>>
        + futures_util::Sink<Message, Error = tungstenite::Error>
        + Unpin
{
}

/// The deflate parameters when `settings` enable compression and the request offers it.
pub(crate) fn negotiate<'a>(
    settings: &crate::config::transports::compression::WsCompression,
    message_limit: usize,
    offers: impl Iterator<Item = &'a [u8]>,
) -> Option<deflate::Params> {
    (settings.enabled && deflate::offered(offers)).then(|| deflate::Params {
        level: settings.level,
        min_size: settings.min_size,
        max_message: message_limit,
        max_inflated: settings.inflate_limit(message_limit),
    })
}

/// Adds the permessage-deflate answer to a `101` built by [`switching_response`].
pub(crate) fn with_deflate_answer(mut response: Response, deflate: bool) -> Response {
    if deflate {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(deflate::ANSWER),
        );
    }
    response
}

/// A valid upgrade request: what the connection will speak.
pub(crate) struct Accepted {
    forced: Option<Generation>,
    encoding: Encoding,
    protocol: Option<&'static str>,
    accept_key: String,
    headers: BackendHeaders,
    deflate: Option<deflate::Params>,
    tracked: TaskTrackerToken,
}

impl Accepted {
    /// For the fuzz target `websocket_upgrade` (FUZZING.md): the `Sec-WebSocket-Accept` value,
    /// whether Protobuf was chosen, the sub-protocol and whether deflate was negotiated.
    pub(crate) fn fuzz_summary(&self) -> (&str, bool, Option<&'static str>, bool) {
        (
            &self.accept_key,
            self.encoding == Encoding::Protobuf,
            self.protocol,
            self.deflate.is_some(),
        )
    }
}

/// A refused upgrade request: the status and a short plain-text reason.
pub(crate) struct Refused {
    pub status: StatusCode,
    pub reason: &'static str,
}

impl Refused {
    fn new(status: StatusCode, reason: &'static str) -> Self {
        Self { status, reason }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut r = (self.status, self.reason).into_response();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            r.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        r
    }
}

/// Checks a WebSocket upgrade request (RFC 6455 §4.2.1) and our own rules: draining, the
/// forced protocol generation, the encoding, allowed origins.
pub(crate) fn handshake<H: HeaderLookup + ?Sized>(
    state: &AppState,
    is_get: bool,
    query: Option<&str>,
    headers: &H,
) -> Result<Accepted, Refused> {
    let bad = |reason| Err(Refused::new(StatusCode::BAD_REQUEST, reason));
    if !is_get {
        return Err(Refused::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "websocket upgrade needs GET",
        ));
    }
    if !has_token(headers.values("connection"), b"upgrade") {
        return bad("Connection header did not include 'upgrade'");
    }
    if !has_token(headers.values("upgrade"), b"websocket") {
        return bad("Upgrade header did not include 'websocket'");
    }
    if !headers
        .values("sec-websocket-version")
        .any(|v| v.trim_ascii() == b"13")
    {
        return Err(Refused::new(
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let Some(key) = headers.values("sec-websocket-key").next() else {
        return bad("Sec-WebSocket-Key header missing");
    };
    if state.draining.is_cancelled() {
        // Shutting down: the client reconnects to another node.
        return Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down",
        ));
    }
    let forced = match query_param(query, "cf_protocol_version").as_deref() {
        None => None,
        Some("v1") => Some(Generation::V1),
        Some("v2") => Some(Generation::V2),
        Some(_) => return bad("unknown cf_protocol_version"),
    };
    // A refused Origin is answered before the connection limits are asked, so a page on a
    // foreign site cannot spend the rate limit's tokens.
    if super::origin::check(state, headers.values("origin").next()).is_refused() {
        return Err(Refused::new(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    if let Err(r) = state.limits.admit(&state.connections) {
        return Err(Refused::new(StatusCode::SERVICE_UNAVAILABLE, r.reason()));
    }
    let tracked = state.connections.token();
    // The first protocol the client offers that we speak.
    let protocol = headers
        .values("sec-websocket-protocol")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .find_map(|offered| PROTOCOLS.into_iter().find(|p| p.as_bytes() == offered));
    // Protobuf by query (`format`, `cf_protocol`, 0.14's `protocol`) or by sub-protocol; a
    // 2.x-era client offers the sub-protocol only together with `format=protobuf`.
    let by_query = ["format", "cf_protocol", "protocol"]
        .iter()
        .any(|k| query_param(query, k).is_some_and(|v| v == "protobuf"));
    let encoding = if by_query || protocol == Some(PROTOCOLS[0]) {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let backend_headers = state.node.backend().map(|backend| {
        let wanted = headers.pairs().filter_map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            backend.wants_header(&name).then(|| (name, value.to_vec()))
        });
        wanted.collect()
    });
    let deflate = negotiate(
        &state.settings.transports.websocket_compression,
        state.node.config().client_request_max_size,
        headers.values("sec-websocket-extensions"),
    );
    Ok(Accepted {
        forced,
        encoding,
        protocol,
        accept_key: tungstenite::handshake::derive_accept_key(key.trim_ascii()),
        headers: backend_headers,
        deflate,
        tracked,
    })
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token<'a>(mut values: impl Iterator<Item = &'a [u8]>, token: &[u8]) -> bool {
    values.any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// The first value of `key` in a URL query string.
fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<Cow<'a, str>> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

impl Accepted {
    /// The `101 Switching Protocols` response head, for the connection-level fast path.
    pub(crate) fn response_head(&self) -> Vec<u8> {
        let mut head = Vec::with_capacity(160);
        head.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: ",
        );
        head.extend_from_slice(self.accept_key.as_bytes());
        if let Some(p) = self.protocol {
            head.extend_from_slice(b"\r\nsec-websocket-protocol: ");
            head.extend_from_slice(p.as_bytes());
        }
        if self.deflate.is_some() {
            head.extend_from_slice(b"\r\nsec-websocket-extensions: ");
            head.extend_from_slice(deflate::ANSWER.as_bytes());
        }
        head.extend_from_slice(b"\r\n\r\n");
        head
    }
}

impl Accepted {
    /// What the session needs; the rest is only for the response.
    pub(crate) fn into_parts(self) -> (Option<Generation>, Encoding, Handover) {
        let handover = Handover {
            headers: self.headers,
            deflate: self.deflate,
            tracked: self.tracked,
        };
        (self.forced, self.encoding, handover)
    }
}

/// Serves a connection whose `101` has been written; `leftover` holds what the client sent
/// after its request head.
pub(crate) async fn run<S>(
    io: S,
    leftover: Vec<u8>,
    state: SharedState,
    forced: Option<Generation>,
    encoding: Encoding,
    handover: Handover,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Handover {
        headers,
        deflate,
        tracked: _tracked,
    } = handover;
    match deflate {
        None => {
            let config = socket_config(&state);
            let socket =
                WebSocketStream::from_partially_read(io, leftover, Role::Server, Some(config))
                    .await;
            serve_socket(socket, state, forced, encoding, headers).await;
        }
        Some(params) => {
            let socket = DeflateSocket::new(io, leftover, params);
            serve_socket(socket, state, forced, encoding, headers).await;
        }
    }
}

/// Small buffers: an idle connection should cost a few KB, not the 2×128 KB defaults. Our
/// writer already merges everything queued into one frame per write, so no write buffering is
/// needed below it.
fn socket_config(state: &AppState) -> WebSocketConfig {
    let max = state.node.config().client_request_max_size;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// The `101 Switching Protocols` response of an upgrade hyper handles (every WebSocket-based
/// transport's route); once hyper hands the connection over, `serve` runs on it in its own
/// task. `what` names the transport in the debug line of a failed switch.
pub(crate) fn switching_response<F, Fut>(
    accept_key: &str,
    protocol: Option<&'static str>,
    on_upgrade: hyper::upgrade::OnUpgrade,
    what: &'static str,
    serve: F,
) -> Response
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, transport = what, "upgrade failed"),
        }
    });
    response
}

/// The route for an upgrade that is not the first request of its connection (after a
/// keep-alive request, or a head too large for the fast path): hyper does the switch.
pub async fn handler(State(state): State<SharedState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let is_get = parts.method == axum::http::Method::GET;
    let accepted = match handshake(&state, is_get, parts.uri.query(), &parts.headers) {
        Ok(a) => a,
        Err(refused) => return refused.into_response(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return Refused::new(
            StatusCode::UPGRADE_REQUIRED,
            "connection cannot be upgraded",
        )
        .into_response();
    };
    let (accept, protocol) = (accepted.accept_key.clone(), accepted.protocol);
    let (forced, encoding, handover) = accepted.into_parts();
    let deflate = handover.deflate.is_some();
    let response = switching_response(&accept, protocol, on_upgrade, "websocket", move |io| {
        run(io, Vec::new(), state, forced, encoding, handover)
    });
    with_deflate_answer(response, deflate)
}

async fn serve_socket<W: Socket>(
    mut socket: W,
    state: SharedState,
    forced: Option<Generation>,
    encoding: Encoding,
    headers: BackendHeaders,
) {
    let node = &state.node;
    let mut session = node.new_session(forced, encoding);
    // Some only with a backend (see `handshake`).
    if let Some(headers) = headers {
        let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        session.set_transport("websocket", pairs);
    }
    let shared = session.shared().clone();
    let cfg = node.config();
    let stale_at = tokio::time::Instant::now() + cfg.client_stale_close_delay;
    let shutdown = node.shutdown_token();
    let write_timeout = cfg
        .client_message_write_timeout
        .max(Duration::from_millis(100));
    let mut out = Outbox::default();
    // One task per connection owns the socket: it writes what the queue holds and reads the
    // next frame, whichever is ready first. Writing wins a tie so replies and pushes are never
    // starved by a chatty client. After a close is queued, reading stops.
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            step = shared.queue.next(&mut out.batch) => {
                if !Box::pin(out.write(&mut socket, &shared, step, write_timeout)).await {
                    break;
                }
            }
            _ = shutdown.cancelled(), if reading => {
                shared.disconnect(DisconnectKind::Shutdown);
                reading = false;
            }
            _ = tokio::time::sleep_until(stale_at), if reading && !session.is_connected() => {
                shared.disconnect(DisconnectKind::Stale);
                reading = false;
            }
            m = socket.next(), if reading => {
                // Boxed: command handling is a deep future, and an idle connection should not
                // carry its space.
                reading = Box::pin(read(&mut session, &shared, encoding, m)).await;
            }
        }
    }
    session.close().await;
}

/// Handles one inbound message; false once the connection stops reading.
async fn read(
    session: &mut Session,
    shared: &ClientShared,
    encoding: Encoding,
    m: Option<Result<Message, tungstenite::Error>>,
) -> bool {
    match m {
        None | Some(Ok(Message::Close(_))) => {
            shared.drop_transport();
            false
        }
        Some(Ok(Message::Text(t))) => {
            if encoding.is_binary() {
                session.reject_bad_request();
                return false;
            }
            session.handle_frame(t.as_bytes()).await
        }
        // Protobuf travels as binary; on a JSON connection binary JSON is accepted the way the
        // Go server does, anything else fails to decode as a bad request.
        Some(Ok(Message::Binary(b))) => session.handle_frame(&b).await,
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
            session.touch();
            true
        }
        Some(Err(e)) => {
            tracing::debug!(client = %shared.id(), error = %e, "websocket read error");
            match classify(e) {
                ReadError::TooBig => {
                    shared.queue.close(Some(rotor_core::writer::CloseFrame {
                        code: 1009,
                        reason: "message too big".into(),
                    }));
                }
                ReadError::BadData => session.reject_bad_request(),
                ReadError::Gone => shared.drop_transport(),
            }
            false
        }
    }
}

enum ReadError {
    /// Larger than `client_request_max_size`: close 1009, as the Go server does.
    TooBig,
    /// Invalid UTF-8 in a text frame or a protocol violation: a bad request.
    BadData,
    /// The peer or the network went away.
    Gone,
}

fn classify(e: tungstenite::Error) -> ReadError {
    match e {
        tungstenite::Error::Capacity(_) => ReadError::TooBig,
        tungstenite::Error::Utf8(_) | tungstenite::Error::Protocol(_) => ReadError::BadData,
        _ => ReadError::Gone,
    }
}

/// Reused write buffers of one connection.
#[derive(Default)]
struct Outbox {
    batch: Vec<Bytes>,
    buf: BytesMut,
}

impl Outbox {
    /// Performs one writer step; false when the connection is done.
    async fn write<W: Socket>(
        &mut self,
        socket: &mut W,
        shared: &ClientShared,
        step: WriterStep,
        write_timeout: Duration,
    ) -> bool {
        if step == WriterStep::Data {
            // Let the fan-out that woke us finish queueing: one write instead of several.
            tokio::task::yield_now().await;
            shared.queue.take_more(&mut self.batch);
        }
        if !self.batch.is_empty() {
            let send = async {
                if shared.encoding().is_binary() {
                    for frame in merge_binary(&mut self.batch, &mut self.buf) {
                        socket.feed(Message::Binary(frame)).await?;
                    }
                } else {
                    for frame in merge(&mut self.batch, &mut self.buf) {
                        socket.feed(Message::Text(frame)).await?;
                    }
                }
                socket.flush().await
            };
            if !shared.write_within(write_timeout, send).await {
                self.batch.clear();
                return false;
            }
        }
        match step {
            WriterStep::Data => true,
            WriterStep::Ping => {
                let ping = socket.send(Message::Ping(Bytes::new()));
                shared.write_within(write_timeout, ping).await
            }
            WriterStep::Close(frame) => {
                if let Some(f) = frame {
                    let close = Message::Close(Some(CloseFrame {
                        code: CloseCode::from(f.code),
                        reason: Utf8Bytes::from(f.reason),
                    }));
                    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), SinkExt::close(socket)).await;
                shared.cancel.cancel();
                false
            }
        }
    }
}

/// Concatenates queued messages (each a complete JSON line, or a complete length-prefixed
/// Protobuf message) into frames of bounded size.
fn merge_binary(batch: &mut Vec<Bytes>, buf: &mut BytesMut) -> Vec<Bytes> {
    if batch.len() == 1 {
        return std::mem::take(batch);
    }
    let mut frames = Vec::new();
    for b in batch.drain(..) {
        if !buf.is_empty() && buf.len() + b.len() > MAX_MERGED_FRAME {
            frames.push(buf.split().freeze());
        }
        buf.extend_from_slice(&b);
    }
    if !buf.is_empty() {
        frames.push(buf.split().freeze());
    }
    frames
}

/// [`merge_binary`] for text frames. Our JSON output is always UTF-8; a frame that somehow is
/// not (raw bytes a Protobuf client published) is dropped rather than sent corrupt.
fn merge(batch: &mut Vec<Bytes>, buf: &mut BytesMut) -> Vec<Utf8Bytes> {
    merge_binary(batch, buf)
        .into_iter()
        .filter_map(|b| Utf8Bytes::try_from(b).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_bounds_frames() {
        let mut batch: Vec<Bytes> = (0..3).map(|_| Bytes::from(vec![b'a'; 40 * 1024])).collect();
        let mut buf = BytesMut::new();
        let frames = merge(&mut batch, &mut buf);
        assert_eq!(frames.len(), 3);
        let mut batch: Vec<Bytes> = (0..3).map(|_| Bytes::from_static(b"{}\n")).collect();
        let frames = merge(&mut batch, &mut buf);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].as_str(), "{}\n{}\n{}\n");
    }
}
