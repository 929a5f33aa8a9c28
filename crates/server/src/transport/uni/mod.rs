//! The unidirectional transports (TRANSPORTS.md §3). Not written yet.

use axum::Router;

use crate::app::SharedState;
use crate::config::transports::TransportSettings;

/// The routes of uni_websocket, uni_sse and uni_http_stream (each when enabled).
pub(crate) fn routes(r: Router<SharedState>, _t: &TransportSettings) -> Router<SharedState> {
    r
}

/// Starts the uni_grpc listener when enabled (its own port); `None` otherwise.
pub(crate) async fn spawn_grpc(
    _state: SharedState,
    _stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    Ok(None)
}
