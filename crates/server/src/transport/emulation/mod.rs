//! HTTP-streaming and SSE with bidirectional emulation (TRANSPORTS.md §2), for protocol v2
//! clients (centrifuge-js 5.x `transports`).
//!
//! The server-to-client half of a connection is one long response body driven by
//! [`super::stream`]: [`http_stream`] writes the encoded messages as they are (`\n`-terminated
//! JSON lines or varint-prefixed Protobuf), [`sse`] writes each JSON message as its own
//! `data:` event. The client-to-server half (every command after the connect, and the pongs)
//! arrives as separate `POST /emulation` requests ([`endpoint`]), which any node may receive:
//! the core forwards them to the node that holds the session. Both stream transports register
//! the session's emulation inbox before its connect runs, so a request that follows the connect
//! reply at once finds the session.
//!
//! This module holds what the three routes share: the routes themselves, the cache headers of
//! a stream, the preflight answer, and reading a request body under a size limit.

mod endpoint;
mod http_stream;
mod sse;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rotor_core::transport::TransportInfo;
use rotor_core::Session;
use rotor_protocol::{Encoding, Generation};

use super::origin::{self, OriginCheck};
use super::stream::{self, Framer, Start};
use crate::app::{AppState, SharedState};
use crate::config::transports::TransportSettings;

/// The routes of HTTP-streaming and SSE (each when enabled) and `/emulation` (when either is).
pub(crate) fn routes(mut r: Router<SharedState>, t: &TransportSettings) -> Router<SharedState> {
    if t.http_stream.enabled {
        r = r.route(&t.http_stream.handler_prefix, any(http_stream::handler));
    }
    if t.sse.enabled {
        r = r.route(&t.sse.handler_prefix, any(sse::handler));
    }
    if t.http_stream.enabled || t.sse.enabled {
        r = r.route(&t.emulation.handler_prefix, any(endpoint::handler));
    }
    r
}

/// An empty answer with `status`, with the CORS headers for an admitted Origin.
fn empty(status: StatusCode, cors: OriginCheck<'_>, request: &HeaderMap) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    origin::add_cors(cors, request, resp.headers_mut());
    resp
}

/// The preflight answer of `/connection/http_stream` and `/emulation`: 204 with
/// `Access-Control-Max-Age: 300` and `Access-Control-Allow-Methods: POST, OPTIONS`.
fn preflight(cors: OriginCheck<'_>, request: &HeaderMap) -> Response {
    let mut resp = empty(StatusCode::NO_CONTENT, cors, request);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    resp
}

/// Whether the request says `Content-Type: application/octet-stream` (exactly): Protobuf.
fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/octet-stream")
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Longer than the limit (413).
    TooLarge,
    /// The client went away or sent a broken body.
    Broken,
}

/// Reads the whole body, at most `limit` bytes.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let cap = declared.map_or(0, |n| n as usize).min(limit);
    let mut buf = BytesMut::with_capacity(cap);
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Starts an emulation connection: a v2 session on `transport` in `encoding`, its inbox
/// registered, its connect frame run inside the stream task; answers 200 with the stream
/// headers (plus `content_type` when given) and the body the task writes.
#[allow(clippy::too_many_arguments)]
fn start_stream(
    state: SharedState,
    transport: &'static TransportInfo,
    encoding: Encoding,
    connect: Bytes,
    prelude: Option<Bytes>,
    content_type: Option<&'static str>,
    cors: OriginCheck<'_>,
    request: &HeaderMap,
    framer: impl Framer,
) -> Response {
    if state.draining.is_cancelled() {
        // Shutting down: the client reconnects to another node.
        return empty(StatusCode::SERVICE_UNAVAILABLE, cors, request);
    }
    let session = new_session(&state, transport, encoding, request);
    let inbox = session
        .shared()
        .session_id()
        .map(|id| state.node.emulation_inbox(id));
    let body = stream::spawn(
        state,
        session,
        Start::Frame(connect),
        prelude,
        inbox,
        framer,
    );
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    stream_headers(h);
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    origin::add_cors(cors, request, h);
    resp
}

fn new_session(
    state: &AppState,
    transport: &'static TransportInfo,
    encoding: Encoding,
    request: &HeaderMap,
) -> Session {
    let session = state
        .node
        .new_session_on(transport, Some(Generation::V2), encoding);
    if state.node.backend().is_some() {
        let pairs = request.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
        session.set_transport(transport.name, pairs);
    }
    session
}

/// `Connection: keep-alive` on an HTTP/1.x stream response, as Centrifugo sends it (HTTP/2 has
/// no connection headers).
fn keep_alive(version: Version, resp: &mut Response) {
    if version == Version::HTTP_10 || version == Version::HTTP_11 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
}

/// The cache headers of a stream response (TRANSPORTS.md §2.2; `Expire` is Centrifugo's
/// spelling).
fn stream_headers(h: &mut HeaderMap) {
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("expire"),
        HeaderValue::from_static("0"),
    );
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
}
