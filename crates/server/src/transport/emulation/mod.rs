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

pub(crate) mod endpoint;
mod http_stream;
pub(crate) mod sse;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use rotor_core::transport::TransportInfo;
use rotor_protocol::Encoding;

use super::http_common::{answer, keep_alive, new_session, read_body, stream_headers, BodyError};
use super::origin::{self, OriginCheck};
use super::stream::{self, Framer, Start};
use crate::app::SharedState;
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
    answer(status, Body::empty(), cors, request)
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
    // Shutting down (the client reconnects to another node), or a node connection limit.
    if state.draining.is_cancelled() || state.limits.admit(&state.connections).is_err() {
        return empty(StatusCode::SERVICE_UNAVAILABLE, cors, request);
    }
    let pairs = request.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
    let session = new_session(&state, transport, encoding, pairs);
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
