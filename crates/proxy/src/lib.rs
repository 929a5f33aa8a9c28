//! Centrifugo's proxies to the application backend, as an implementation of the core's
//! [`Backend`] seam: HTTP (JSON bodies, `http`) and gRPC (`centrifugal.centrifugo.proxy.
//! CentrifugoProxy`, `grpc`), configured by [`ProxyConfig`] from either generation of keys.
//!
//! [`ProxyBackend`] routes each event to its proxy object (the default one, a named one from
//! `proxies`, or the RPC namespace's), times the call, counts it, and logs a failed call once
//! with the proxy's name; the transport modules only encode, call and decode.

pub mod config;
mod grpc;
/// The gRPC proxy protocol generated from `proto/proxy.proto`: messages, the
/// `CentrifugoProxy` client and server (for backends written in Rust, and tests).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("centrifugal.centrifugo.proxy");
}
mod http;
/// Fuzz entry point of the gRPC proxy answer decoders (FUZZING.md); not an API.
#[doc(hidden)]
pub use grpc::fuzz::{fuzz_grpc_answer, KINDS as GRPC_ANSWER_KINDS};
/// Fuzz entry point of the HTTP proxy answer decoder (FUZZING.md); not an API.
#[doc(hidden)]
pub use http::fuzz_answer as fuzz_http_answer;
pub mod metrics;
mod payload;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use rotor_core::backend::{
    Backend, BackendError, BackendResult, BackendStyle, Capabilities, ConnContext, ConnectEvent,
    ConnectGrant, PublishEvent, PublishGrant, RefreshGrant, RpcEvent, SubRefreshEvent,
    SubRefreshGrant, SubscribeEvent, SubscribeGrant,
};

pub use config::{ProxyConfig, ProxyConfigError, ProxySettings};

/// The event a call is for: the `type` label of the metrics and the log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    Connect,
    Refresh,
    Subscribe,
    Publish,
    SubRefresh,
    Rpc,
}

impl ProxyKind {
    pub const ALL: [ProxyKind; 6] = [
        ProxyKind::Connect,
        ProxyKind::Refresh,
        ProxyKind::Subscribe,
        ProxyKind::Publish,
        ProxyKind::SubRefresh,
        ProxyKind::Rpc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Connect => "connect",
            ProxyKind::Refresh => "refresh",
            ProxyKind::Subscribe => "subscribe",
            ProxyKind::Publish => "publish",
            ProxyKind::SubRefresh => "sub_refresh",
            ProxyKind::Rpc => "rpc",
        }
    }
}

/// How one call to one proxy went wrong.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The backend answered with `error` or `disconnect` (or an HTTP status transformed into
    /// one): passed to the client, not a failure of the proxy.
    Answer(BackendError),
    /// The call failed: what happened, for the log line.
    Failed(String),
}

pub(crate) type CallResult<T> = Result<T, CallError>;

/// One proxy object over one transport: encodes the request of each event, calls, decodes the
/// answer. `None` results are answers without `result`.
#[async_trait]
pub(crate) trait Caller: Send + Sync {
    async fn connect(
        &self,
        ctx: &ConnContext,
        ev: &ConnectEvent,
    ) -> CallResult<Option<ConnectGrant>>;
    async fn refresh(&self, ctx: &ConnContext) -> CallResult<Option<RefreshGrant>>;
    async fn subscribe(
        &self,
        ctx: &ConnContext,
        ev: &SubscribeEvent,
    ) -> CallResult<Option<SubscribeGrant>>;
    async fn publish(
        &self,
        ctx: &ConnContext,
        ev: &PublishEvent,
    ) -> CallResult<Option<PublishGrant>>;
    async fn sub_refresh(
        &self,
        ctx: &ConnContext,
        ev: &SubRefreshEvent,
    ) -> CallResult<Option<SubRefreshGrant>>;
    async fn rpc(&self, ctx: &ConnContext, ev: &RpcEvent) -> CallResult<Option<Bytes>>;
}

/// A proxy object ready to call.
struct Proxy {
    name: String,
    caller: Arc<dyn Caller>,
    metrics: metrics::ProxyMetrics,
}

impl Proxy {
    fn build(
        style: BackendStyle,
        s: &ProxySettings,
        shared: &http::SharedClient,
    ) -> Result<Self, ProxyConfigError> {
        let protocol = if s.is_http() { "http" } else { "grpc" };
        let caller: Arc<dyn Caller> = if s.is_http() {
            Arc::new(http::HttpCaller::new(style, s, shared)?)
        } else {
            Arc::new(grpc::GrpcCaller::new(style, s)?)
        };
        Ok(Self {
            name: s.name.clone(),
            caller,
            metrics: metrics::ProxyMetrics::new(&s.name, protocol),
        })
    }
}

/// Where an RPC namespace sends its methods.
enum RpcTarget {
    /// `proxy_enabled` off: 108.
    Disabled,
    Proxy(Arc<Proxy>),
}

/// The node's backend: every configured proxy, routed per event.
pub struct ProxyBackend {
    style: BackendStyle,
    caps: Capabilities,
    /// Some RPC route leads to a proxy (Centrifugo then registers its rpc handler).
    rpc_proxied: bool,
    connect: Option<Arc<Proxy>>,
    refresh: Option<Arc<Proxy>>,
    subscribe: Option<Arc<Proxy>>,
    publish: Option<Arc<Proxy>>,
    sub_refresh: Option<Arc<Proxy>>,
    named: HashMap<String, Arc<Proxy>>,
    /// 2.x: every method; 6.x: methods without a namespace.
    rpc_default: Option<RpcTarget>,
    rpc_namespaces: HashMap<String, RpcTarget>,
    rpc_boundary: String,
    rpc_ping: Option<String>,
    headers: HashSet<String>,
    emulated_headers: HashSet<String>,
}

impl std::fmt::Debug for ProxyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBackend")
            .field("style", &self.style)
            .field("caps", &self.caps)
            .finish()
    }
}

impl ProxyBackend {
    /// Builds every proxy of `cfg` (checked with [`ProxyConfig::validate`] first). Must be
    /// called inside a tokio runtime (gRPC channels connect lazily on it).
    pub fn new(cfg: &ProxyConfig) -> Result<Self, ProxyConfigError> {
        let shared = http::SharedClient::default();
        let style = cfg.style;
        let build = |s: &Option<ProxySettings>| -> Result<Option<Arc<Proxy>>, ProxyConfigError> {
            s.as_ref()
                .map(|s| Proxy::build(style, s, &shared).map(Arc::new))
                .transpose()
        };
        let connect = build(&cfg.connect)?;
        let refresh = build(&cfg.refresh)?;
        let subscribe = build(&cfg.subscribe)?;
        let publish = build(&cfg.publish)?;
        let sub_refresh = build(&cfg.sub_refresh)?;
        let rpc = build(&cfg.rpc)?;
        let defaults = [
            (&connect, ProxyKind::Connect),
            (&refresh, ProxyKind::Refresh),
            (&subscribe, ProxyKind::Subscribe),
            (&publish, ProxyKind::Publish),
            (&sub_refresh, ProxyKind::SubRefresh),
            (&rpc, ProxyKind::Rpc),
        ];
        for (p, kind) in defaults {
            if let Some(p) = p {
                p.metrics.declare(kind);
            }
        }
        let mut named = HashMap::new();
        for s in &cfg.named {
            named.insert(s.name.clone(), Arc::new(Proxy::build(style, s, &shared)?));
        }
        let route = |r: &config::RpcRoute| -> RpcTarget {
            if !r.proxy_enabled {
                return RpcTarget::Disabled;
            }
            let p = if r.proxy_name.is_empty() || r.proxy_name == config::DEFAULT_PROXY {
                rpc.clone()
            } else {
                named.get(&r.proxy_name).cloned()
            };
            p.map_or(RpcTarget::Disabled, RpcTarget::Proxy)
        };
        let (rpc_default, rpc_namespaces) = match style {
            BackendStyle::Legacy => (rpc.clone().map(RpcTarget::Proxy), HashMap::new()),
            BackendStyle::Modern => (
                Some(route(&cfg.rpc_without_namespace)),
                cfg.rpc_namespaces
                    .iter()
                    .map(|n| (n.name.clone(), route(&n.route)))
                    .collect(),
            ),
        };
        let all = [
            &cfg.connect,
            &cfg.refresh,
            &cfg.subscribe,
            &cfg.publish,
            &cfg.sub_refresh,
            &cfg.rpc,
        ];
        let every = all
            .into_iter()
            .flatten()
            .chain(cfg.named.iter())
            .collect::<Vec<_>>();
        let headers = match style {
            BackendStyle::Legacy if !every.is_empty() => {
                let mut h: HashSet<String> = config::LEGACY_DEFAULT_HEADERS
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                h.extend(
                    every
                        .iter()
                        .flat_map(|p| p.http_headers.iter())
                        .map(|h| h.to_ascii_lowercase()),
                );
                h
            }
            _ => every
                .iter()
                .flat_map(|p| p.http_headers.iter().chain(p.grpc_metadata.iter()))
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        };
        let emulated_headers = every
            .iter()
            .flat_map(|p| p.emulated_headers.iter())
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let rpc_proxied = rpc_default
            .iter()
            .chain(rpc_namespaces.values())
            .any(|t| matches!(t, RpcTarget::Proxy(_)));
        let rpc_any = rpc_proxied || !rpc_namespaces.is_empty() || cfg.rpc_ping;
        let caps = Capabilities {
            connect: connect.is_some(),
            refresh: refresh.is_some(),
            rpc: rpc_any,
        };
        Ok(Self {
            style,
            caps,
            rpc_proxied,
            connect,
            refresh,
            subscribe,
            publish,
            sub_refresh,
            named,
            rpc_default,
            rpc_namespaces,
            rpc_boundary: cfg.rpc_namespace_boundary.clone(),
            rpc_ping: cfg.rpc_ping.then(|| cfg.rpc_ping_method.clone()),
            headers,
            emulated_headers,
        })
    }

    fn channel_proxy(&self, name: &str, default: &Option<Arc<Proxy>>) -> Option<Arc<Proxy>> {
        if name.is_empty() || name == config::DEFAULT_PROXY {
            default.clone()
        } else {
            self.named.get(name).cloned()
        }
    }
}

/// Runs one call: times it, counts it under (kind, proxy name), logs a failure once, and maps
/// it to what the session needs.
async fn run<T, F>(kind: ProxyKind, proxy: &Proxy, client: &str, call: F) -> BackendResult<T>
where
    F: std::future::Future<Output = CallResult<T>>,
{
    let series = proxy.metrics.get(kind);
    let inflight = series.start();
    let started = Instant::now();
    let result = call.await;
    let ok = !matches!(result, Err(CallError::Failed(_)));
    series.observe(started.elapsed(), ok);
    drop(inflight);
    match result {
        Ok(v) => Ok(v),
        Err(CallError::Answer(a)) => Err(a),
        Err(CallError::Failed(why)) => {
            tracing::error!(
                proxy = %proxy.name,
                r#type = kind.as_str(),
                client,
                error = %why,
                "proxy call failed"
            );
            Err(BackendError::Failed)
        }
    }
}

#[async_trait]
impl Backend for ProxyBackend {
    fn style(&self) -> BackendStyle {
        self.style
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn wants_header(&self, name: &str) -> bool {
        self.headers.contains(name)
    }

    fn wants_emulated_header(&self, name: &str) -> bool {
        self.emulated_headers.contains(name)
    }

    async fn connect(
        &self,
        ctx: &ConnContext,
        ev: ConnectEvent,
    ) -> BackendResult<Option<ConnectGrant>> {
        let Some(p) = &self.connect else {
            return Err(rotor_core::backend::not_available());
        };
        run(
            ProxyKind::Connect,
            p,
            &ctx.client,
            p.caller.connect(ctx, &ev),
        )
        .await
    }

    async fn refresh(&self, ctx: &ConnContext) -> BackendResult<Option<RefreshGrant>> {
        let Some(p) = &self.refresh else {
            return Err(rotor_core::backend::not_available());
        };
        run(ProxyKind::Refresh, p, &ctx.client, p.caller.refresh(ctx)).await
    }

    async fn subscribe(
        &self,
        proxy: &str,
        ctx: &ConnContext,
        ev: SubscribeEvent,
    ) -> BackendResult<SubscribeGrant> {
        let Some(p) = self.channel_proxy(proxy, &self.subscribe) else {
            return Err(rotor_core::backend::not_available());
        };
        run(
            ProxyKind::Subscribe,
            &p,
            &ctx.client,
            p.caller.subscribe(ctx, &ev),
        )
        .await
        .map(Option::unwrap_or_default)
    }

    async fn publish(
        &self,
        proxy: &str,
        ctx: &ConnContext,
        ev: PublishEvent,
    ) -> BackendResult<PublishGrant> {
        let Some(p) = self.channel_proxy(proxy, &self.publish) else {
            return Err(rotor_core::backend::not_available());
        };
        run(
            ProxyKind::Publish,
            &p,
            &ctx.client,
            p.caller.publish(ctx, &ev),
        )
        .await
        .map(Option::unwrap_or_default)
    }

    async fn sub_refresh(
        &self,
        proxy: &str,
        ctx: &ConnContext,
        ev: SubRefreshEvent,
    ) -> BackendResult<Option<SubRefreshGrant>> {
        let Some(p) = self.channel_proxy(proxy, &self.sub_refresh) else {
            return Err(rotor_core::backend::not_available());
        };
        run(
            ProxyKind::SubRefresh,
            &p,
            &ctx.client,
            p.caller.sub_refresh(ctx, &ev),
        )
        .await
    }

    async fn rpc(&self, ctx: &ConnContext, ev: RpcEvent) -> BackendResult<Option<Bytes>> {
        if self.rpc_ping.as_deref() == Some(ev.method.as_str()) {
            return Ok(None);
        }
        let method_not_found = || BackendError::Error {
            code: 104,
            message: "method not found".to_string(),
            temporary: false,
        };
        if !self.rpc_proxied {
            // No rpc proxy at all: with rpc.ping on, every other method is unknown (104);
            // without it there is no handler (108), as in Centrifugo 6.
            return Err(if self.rpc_ping.is_some() {
                method_not_found()
            } else {
                rotor_core::backend::not_available()
            });
        }
        let target = match self.style {
            BackendStyle::Legacy => self.rpc_default.as_ref(),
            BackendStyle::Modern => match ev.method.split_once(self.rpc_boundary.as_str()) {
                Some((ns, _)) if !self.rpc_boundary.is_empty() => {
                    Some(self.rpc_namespaces.get(ns).ok_or_else(method_not_found)?)
                }
                _ => self.rpc_default.as_ref(),
            },
        };
        // A namespace with proxy_enabled off (or methods without one, unrouted): 108.
        let Some(RpcTarget::Proxy(p)) = target else {
            return Err(rotor_core::backend::not_available());
        };
        run(ProxyKind::Rpc, p, &ctx.client, p.caller.rpc(ctx, &ev)).await
    }
}
