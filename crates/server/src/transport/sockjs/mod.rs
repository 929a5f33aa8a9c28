//! SockJS at `sockjs.handler_prefix` (default `/connection/sockjs`, TRANSPORTS.md §1) for
//! Centrifugo 2.x clients (centrifuge-js 2.x with sockjs-client 1.x) and protocol-v2 clients
//! that ask for it with `cf_protocol_version=v2`.
//!
//! * [`frames`]: the SockJS frames, quoting and escaping, the client payload parser, the wire
//!   form per sub-transport.
//! * [`session`]: the session registry; one task per session drives one rotor session.
//! * [`routes`]: every route of the protocol (info, iframe, the HTTP sub-transports).
//! * [`websocket`]: the WebSocket sub-transport (one fresh session per connection).
//!
//! JSON only. Each SockJS message from the client is one client frame; everything the session
//! queues between two writes is one SockJS message.

pub(crate) mod frames;
mod routes;
mod session;
mod websocket;

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::routing::any;
use axum::Router;

use crate::app::SharedState;
use crate::config::transports::TransportSettings;

/// The SockJS routes under `sockjs.handler_prefix` (the prefix itself, `prefix/` and
/// everything below).
pub(crate) fn routes(r: Router<SharedState>, t: &TransportSettings) -> Router<SharedState> {
    let registry = Arc::new(session::Registry::default());
    let prefix = t.sockjs.handler_prefix.trim_end_matches('/').to_string();
    let root = {
        let registry = registry.clone();
        move |State(state): State<SharedState>, req: Request| {
            let registry = registry.clone();
            async move { routes::dispatch(state, registry, String::new(), req).await }
        }
    };
    let below = move |State(state): State<SharedState>, Path(rest): Path<String>, req: Request| {
        let registry = registry.clone();
        async move { routes::dispatch(state, registry, rest, req).await }
    };
    let base = if prefix.is_empty() {
        ""
    } else {
        prefix.as_str()
    };
    let mut r = r.route(&format!("{base}/"), any(root.clone()));
    if !base.is_empty() {
        r = r.route(base, any(root));
    }
    r.route(&format!("{base}/{{*rest}}"), any(below))
}
