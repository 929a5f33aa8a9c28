//! SockJS at `/connection/sockjs` (TRANSPORTS.md §1). Not written yet.

use axum::Router;

use crate::app::SharedState;
use crate::config::transports::TransportSettings;

/// The SockJS routes under `sockjs.handler_prefix`.
pub(crate) fn routes(r: Router<SharedState>, _t: &TransportSettings) -> Router<SharedState> {
    r
}
