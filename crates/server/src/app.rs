//! The HTTP server: routes, shared state, start-up messages and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get, post};
use axum::Router;
use rotor_core::Node;
use tokio_util::task::TaskTracker;

use crate::config::{self, LoadedConfig, ServerSettings};

/// What every handler needs.
pub struct AppState {
    pub node: Node,
    pub settings: ServerSettings,
    /// Every WebSocket connection's task, so shutdown can wait for their close frames.
    pub connections: TaskTracker,
}

pub type SharedState = Arc<AppState>;

/// Builds the router for `state` (separate from [`serve`] so tests can mount it).
pub fn router(state: SharedState) -> Router {
    let s = &state.settings;
    let mut r = Router::new();
    if !s.websocket_disable {
        r = r.route(&s.websocket_handler_prefix, any(crate::ws::handler));
    }
    if !s.api_disable {
        r = r
            .route(&s.api_handler_prefix, post(crate::api::legacy))
            .route(
                &format!("{}/{{method}}", s.api_handler_prefix),
                post(crate::api::method),
            );
    }
    if s.health {
        // 503 while the engine cannot serve (e.g. Redis unreachable).
        r = r.route(
            "/health",
            get(|State(st): State<SharedState>| async move {
                if st.node.broker().is_healthy() {
                    (StatusCode::OK, "{}")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "{}")
                }
            }),
        );
    }
    r.with_state(state)
}

pub async fn serve(cfg: LoadedConfig) -> anyhow::Result<()> {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let missing = config::missing_for_clients(&cfg);
    let node = crate::engine::build_node(&cfg).await?;
    let ticker = node.start();
    let host = if cfg.server.address.is_empty() {
        "0.0.0.0"
    } else {
        cfg.server.address.as_str()
    };
    let addr: SocketAddr = format!("{host}:{}", cfg.server.port)
        .parse()
        .or_else(|_| format!("[{host}]:{}", cfg.server.port).parse())
        .with_context(|| format!("bad listen address {host:?}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "rotor {} listening on http://{} (engine: {}{})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr().unwrap_or(addr),
        cfg.server.engine,
        cfg.source
            .as_ref()
            .map(|p| format!(", config: {}", p.display()))
            .unwrap_or_else(|| ", no config file: embedded defaults".to_string())
    );
    for m in &missing {
        println!("note: {m}");
    }
    let shutdown_timeout = cfg.server.shutdown_timeout;
    let connections = TaskTracker::new();
    let state = Arc::new(AppState {
        node: node.clone(),
        settings: cfg.server,
        connections: connections.clone(),
    });
    let app = router(state);
    let stop = node.shutdown_token();
    let signal_node = node.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        signal_node.shutdown();
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.cancelled().await;
    });
    tokio::select! {
        r = server => r.context("server error")?,
        _ = async {
            node.shutdown_token().cancelled().await;
            tokio::time::sleep(shutdown_timeout).await;
        } => tracing::warn!("shutdown timeout reached; closing remaining connections"),
    }
    // Upgraded connections outlive the HTTP server: let them send their close frames.
    connections.close();
    if tokio::time::timeout(shutdown_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown timeout");
    }
    let _ = ticker.await;
    Ok(())
}

async fn shutdown_signal() {
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
