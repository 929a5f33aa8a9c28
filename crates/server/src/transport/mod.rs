//! The transports: how clients reach a session (see `rotor_core::transport` for the seam).
//!
//! * [`websocket`]: `/connection/websocket`, the fast path (its upgrade may also be taken by
//!   `crate::http` before hyper sees the request).
//! * [`sockjs`]: SockJS for Centrifugo 2.x clients (and v2 clients that ask for it).
//! * [`emulation`]: HTTP-streaming and SSE with the `/emulation` endpoint.
//! * [`uni`]: the unidirectional transports (WebSocket, SSE, HTTP-streaming, gRPC).
//! * [`origin`], [`http_common`] and [`stream`]: what the HTTP transports share (Origin checks
//!   and CORS, bodies and stream headers, the streaming response driven by a session).

pub(crate) mod emulation;
pub(crate) mod http_common;
pub(crate) mod origin;
pub(crate) mod sockjs;
pub(crate) mod stream;
pub(crate) mod uni;
pub(crate) mod websocket;

use axum::Router;

use crate::app::SharedState;
use crate::config::ServerSettings;

/// Adds the routes of every enabled non-WebSocket transport.
pub(crate) fn routes(mut r: Router<SharedState>, s: &ServerSettings) -> Router<SharedState> {
    let t = &s.transports;
    if t.sockjs.enabled {
        r = sockjs::routes(r, t);
    }
    if t.http_stream.enabled || t.sse.enabled {
        r = emulation::routes(r, t);
    }
    if t.uni_websocket.enabled || t.uni_sse.enabled || t.uni_http_stream.enabled {
        r = uni::routes(r, t);
    }
    r
}
