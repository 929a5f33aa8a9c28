//! Graceful shutdown (SIGTERM/SIGINT): drain, then stop.
//!
//! 1. Draining starts: `/health` and `/ready` answer 503 (load balancers take the node out) and
//!    new WebSocket connections are refused with 503; HTTP keeps being served meanwhile.
//! 2. Every connected client is told to reconnect (disconnect code 3001 "shutdown"); with
//!    `shutdown_spread` the closes are spread evenly over that window (at most half of
//!    `shutdown_timeout`), so a fleet of clients does not come back to the other nodes at the
//!    same instant.
//! 3. The node shuts down (whatever is still open, e.g. connections that never sent `connect`,
//!    is closed too) and shutdown waits until every connection has sent its close frame,
//!    within `shutdown_timeout` counted from the signal.
//! 4. The caller stops the HTTP listeners and, after `shutdown_termination_delay`, exits 0.

use std::time::Duration;

use rotor_core::Node;
use rotor_protocol::DisconnectKind;
use tokio::time::Instant;

use crate::app::SharedState;

/// Runs steps 1–3 above; returns when every connection is closed or the timeout passed.
pub async fn drain(state: &SharedState) {
    let s = &state.settings;
    let deadline = Instant::now() + s.shutdown_timeout;
    state.draining.cancel();
    let window = s.shutdown_spread.min(s.shutdown_timeout / 2);
    let clients = spread_closes(&state.node, window).await;
    tracing::info!(
        clients,
        window_ms = window.as_millis() as u64,
        "clients told to reconnect"
    );
    state.node.shutdown();
    state.connections.close();
    if tokio::time::timeout_at(deadline, state.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = state.connections.len(),
            "shutdown_timeout reached with connections still open"
        );
    }
}

/// Closes every connected client with "shutdown", the i-th of n at `window * i / n` from now;
/// returns how many. Deadlines are absolute, so a slow timer closes in small batches instead
/// of stretching the window.
async fn spread_closes(node: &Node, window: Duration) -> usize {
    let mut clients = Vec::new();
    node.hub().for_each_client(|c| clients.push(c.clone()));
    let n = clients.len();
    let start = Instant::now();
    for (i, c) in clients.into_iter().enumerate() {
        if !window.is_zero() {
            tokio::time::sleep_until(start + window.mul_f64(i as f64 / n as f64)).await;
        }
        c.disconnect(DisconnectKind::Shutdown);
        c.cancel.cancel();
    }
    n
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
