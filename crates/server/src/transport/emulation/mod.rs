//! HTTP-streaming, SSE and the `/emulation` endpoint (TRANSPORTS.md §2). Not written yet.

use axum::Router;

use crate::app::SharedState;
use crate::config::transports::TransportSettings;

/// The routes of HTTP-streaming and SSE (each when enabled) and `/emulation`.
pub(crate) fn routes(r: Router<SharedState>, _t: &TransportSettings) -> Router<SharedState> {
    r
}
