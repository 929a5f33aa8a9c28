//! The HTTP server: routes, shared state, start-up messages and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::{any, get};
use axum::Router;
use rotor_core::Node;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, LoadedConfig, ServerSettings};

/// What every handler needs.
pub struct AppState {
    pub node: Node,
    pub settings: ServerSettings,
    /// Every WebSocket connection's task, so shutdown can wait for their close frames.
    pub connections: TaskTracker,
    /// Cancelled when shutdown starts: readiness fails, new WebSocket connections are refused.
    pub draining: CancellationToken,
    /// `connection_limit` and `connection_rate_limit`, asked by every real-time entry point.
    pub limits: crate::limits::Limits,
}

pub type SharedState = Arc<AppState>;

/// Builds the router for `state` (separate from [`serve`] so tests can mount it).
pub fn router(state: SharedState) -> Router {
    let s = &state.settings;
    let mut r = Router::new();
    if !s.websocket_disable {
        r = r.route(
            &s.websocket_handler_prefix,
            any(crate::transport::websocket::handler),
        );
    }
    r = crate::transport::routes(r, s);
    if s.internal_port.is_none() {
        r = ops_routes(r, s);
    }
    r.with_state(state)
}

/// The router of `internal_port`: server API, health, metrics and admin, which then leave the
/// main port.
pub fn internal_router(state: SharedState) -> Router {
    ops_routes(Router::new(), &state.settings).with_state(state)
}

/// Server API, health and readiness, metrics and the admin UI, each when enabled.
fn ops_routes(mut r: Router<SharedState>, s: &ServerSettings) -> Router<SharedState> {
    if !s.api_disable {
        r = crate::api::routes(r, &s.api_handler_prefix);
    }
    if s.health {
        // 503 while draining or while the engine cannot serve (e.g. Redis unreachable).
        r = r
            .route("/health", get(crate::metrics::health))
            .route("/ready", get(crate::metrics::ready));
    }
    if s.prometheus {
        r = r.route("/metrics", get(crate::metrics::handler));
    }
    if s.admin {
        r = r.merge(crate::admin::routes());
    }
    r
}

/// `host:port`; an empty host means every interface.
fn listen_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .with_context(|| format!("bad listen address {host:?}"))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Serves `app` on `tcp` (over TLS when `tls` is given) until `stop` is cancelled; `ws` turns
/// on the WebSocket fast path of [`crate::http`].
fn spawn_http(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    ws: Option<SharedState>,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<std::io::Result<()>>> {
    // Real-time traffic: no Nagle delay on small frames (as Go servers do by default). Linux
    // copies the option from the listener to every accepted socket: one syscall less each.
    #[cfg(target_os = "linux")]
    socket2::SockRef::from(&tcp).set_tcp_nodelay(true)?;
    Ok(match tls {
        None => {
            #[cfg(not(target_os = "linux"))]
            let tcp = axum::serve::ListenerExt::tap_io(tcp, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            crate::http::spawn(tcp, app, ws, stop)
        }
        Some(acceptor) => {
            let tls = crate::tls::TlsListener::new(tcp, acceptor)?;
            crate::http::spawn(tls, app, ws, stop)
        }
    })
}

/// Installs the proxies to the application backend when any is configured (nothing otherwise:
/// the node then never builds a backend event). Runs inside the runtime: gRPC channels are
/// created on it.
fn install_backend(node: &Node, proxy: &rotor_proxy::ProxyConfig) -> anyhow::Result<()> {
    if proxy.is_empty() {
        return Ok(());
    }
    let backend = rotor_proxy::ProxyBackend::new(proxy)
        .map_err(|e| anyhow::anyhow!("cannot set up the proxies to the backend: {e}"))?;
    if node.set_backend(Arc::new(backend)).is_err() {
        anyhow::bail!("the node already has a backend");
    }
    let on: Vec<String> = [
        ("connect", &proxy.connect),
        ("refresh", &proxy.refresh),
        ("subscribe", &proxy.subscribe),
        ("publish", &proxy.publish),
        ("sub_refresh", &proxy.sub_refresh),
        ("rpc", &proxy.rpc),
    ]
    .into_iter()
    .filter_map(|(kind, p)| p.as_ref().map(|p| (kind, p)))
    .chain(proxy.named.iter().map(|p| (p.name.as_str(), p)))
    .map(|(name, p)| format!("{name} ({})", config::redact_url(&p.endpoint)))
    .collect();
    tracing::info!(style = ?proxy.style, proxies = %on.join(", "), "proxies to the backend on");
    Ok(())
}

pub async fn serve(cfg: LoadedConfig) -> anyhow::Result<()> {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let missing = config::missing_for_clients(&cfg);
    let node = crate::engine::build_node(&cfg).await?;
    // The token verifier with the JWKS key sets (the node's own cannot fetch).
    let verifier = config::token_verifier(&cfg.node).map_err(anyhow::Error::msg)?;
    node.install_verifier(verifier);
    install_backend(&node, &cfg.proxy)?;
    let ticker = node.start();
    // SIGHUP: reload the token secret and channel options, connections stay.
    config::watch_sighup(node.clone(), &cfg);
    let srv = &cfg.server;
    let tls = if srv.tls {
        Some(crate::tls::acceptor(&srv.tls_cert, &srv.tls_key)?)
    } else {
        None
    };
    let listener = bind(listen_addr(&srv.address, srv.port)?).await?;
    let internal = match srv.internal_port {
        Some(port) => {
            let host = if srv.internal_address.is_empty() {
                &srv.address
            } else {
                &srv.internal_address
            };
            Some(bind(listen_addr(host, port)?).await?)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "rotor {} listening on {scheme}://{} (engine: {}{})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        srv.engine,
        cfg.source
            .as_ref()
            .map(|p| format!(", config: {}", p.display()))
            .unwrap_or_else(|| ", no config file: embedded defaults".to_string())
    );
    if let Some(l) = &internal {
        println!(
            "internal endpoints (API, health, metrics, admin) on {scheme}://{}",
            l.local_addr()?
        );
    }
    for m in &missing {
        println!("note: {m}");
    }
    if srv.admin && !srv.admin_insecure {
        if srv.admin_password.is_empty() {
            tracing::warn!("admin is on but admin_password is not set: nobody can log in");
        }
        if srv.admin_secret.is_empty() {
            tracing::warn!("admin_secret is not set: admin logins last until this process exits");
        }
    }
    let termination_delay = srv.shutdown_termination_delay;
    let limits = crate::limits::Limits::new(
        cfg.server.client_connection_limit,
        cfg.server.client_connection_rate_limit,
    );
    let state = Arc::new(AppState {
        node: node.clone(),
        limits,
        settings: cfg.server,
        connections: TaskTracker::new(),
        draining: CancellationToken::new(),
    });
    let stop_http = CancellationToken::new();
    // The fast paths of `crate::http` (WebSocket upgrades, SSE streams) check their own switches.
    let ws = Some(state.clone());
    let mut servers = vec![spawn_http(
        listener,
        tls.clone(),
        router(state.clone()),
        ws,
        stop_http.clone(),
    )?];
    if let Some(l) = internal {
        let app = internal_router(state.clone());
        servers.push(spawn_http(l, tls, app, None, stop_http.clone())?);
    }
    if let Some(grpc) = crate::transport::uni::spawn_grpc(state.clone(), stop_http.clone()).await? {
        servers.push(grpc);
    }
    if let Some(api) = crate::api::grpc::spawn(state.clone(), stop_http.clone()).await? {
        servers.push(api);
    }
    let failed = async {
        let (r, _, _) = futures_util::future::select_all(servers.iter_mut()).await;
        r
    };
    tokio::select! {
        _ = crate::shutdown::signal() => {}
        r = failed => {
            let e = match r {
                Ok(Ok(())) => anyhow::anyhow!("listener stopped"),
                Ok(Err(e)) => anyhow::Error::new(e),
                Err(e) => anyhow::Error::new(e),
            };
            node.shutdown();
            return Err(e.context("server error"));
        }
    }
    tracing::info!("shutting down");
    crate::shutdown::drain(&state).await;
    stop_http.cancel();
    for s in servers {
        // Idle keep-alive connections close at once; a slow request gets a moment.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s).await;
    }
    let _ = ticker.await;
    if !termination_delay.is_zero() {
        tokio::time::sleep(termination_delay).await;
    }
    Ok(())
}
