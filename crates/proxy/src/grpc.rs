//! gRPC proxy transport (PROXY.md §4): one lazily connecting tonic [`Channel`] per proxy
//! object, calling the `centrifugal.centrifugo.proxy.CentrifugoProxy` methods with the
//! proxy's timeout as the call's deadline and its metadata (allowed headers, static metadata,
//! the credentials pair), gzip when asked. Encoding the requests and reading the answers is in
//! `convert`; TLS (`grpc.tls`) in `tls`.

mod convert;
pub(crate) mod fuzz;
mod tls;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rotor_core::backend::{
    BackendStyle, ConnContext, ConnectEvent, ConnectGrant, PublishEvent, PublishGrant,
    RefreshGrant, RpcEvent, SubRefreshEvent, SubRefreshGrant, SubscribeEvent, SubscribeGrant,
};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, MetadataMap};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::{ProxySettings, LEGACY_DEFAULT_HEADERS};
use crate::proto::centrifugo_proxy_client::CentrifugoProxyClient;
use crate::{CallError, CallResult, Caller, ProxyConfigError};

/// One gRPC proxy object.
pub(crate) struct GrpcCaller {
    style: BackendStyle,
    settings: ProxySettings,
    channel: Channel,
    /// Transport headers forwarded as metadata (lower-case).
    headers: HashSet<String>,
    /// v2 connect-frame headers forwarded as metadata (lower-case; 6.x only).
    emulated: HashSet<String>,
    /// `grpc.static_metadata`, checked at start.
    static_md: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    /// `grpc.credentials_key` / `_value`.
    credentials: Option<(AsciiMetadataKey, AsciiMetadataValue)>,
}

/// Where a gRPC endpoint points: `grpc://host:port[/...]` or a bare `host:port`.
struct Target {
    /// `host:port` (IPv6 hosts in brackets).
    authority: String,
    /// The host without brackets, for the TLS server name.
    host: String,
}

fn parse_target(endpoint: &str) -> Result<Target, String> {
    let rest = match endpoint.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("grpc://") => endpoint.get(7..).unwrap_or_default(),
        _ => endpoint,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host".to_string());
    }
    let parsed: tonic::codegen::http::uri::Authority = authority
        .parse()
        .map_err(|e| format!("not host:port: {e}"))?;
    if authority.contains('@') {
        return Err("user info is not supported".to_string());
    }
    let host = parsed.host().trim_start_matches('[').trim_end_matches(']');
    // gRPC's resolver uses 443 when the target has no port.
    let port = parsed.port_u16().unwrap_or(443);
    let authority = match parsed.port_u16() {
        Some(_) => parsed.as_str().to_string(),
        None => format!("{}:{port}", parsed.host()),
    };
    Ok(Target {
        authority,
        host: host.to_string(),
    })
}

fn metadata_pair(key: &str, value: &str) -> Result<(AsciiMetadataKey, AsciiMetadataValue), String> {
    let k = AsciiMetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("{key:?} is not a valid metadata key"))?;
    let v = AsciiMetadataValue::try_from(value)
        .map_err(|_| format!("the value of {key:?} is not valid metadata"))?;
    Ok((k, v))
}

impl GrpcCaller {
    /// Checks the endpoint, TLS and metadata settings and prepares a channel that connects on
    /// the first call (inside a tokio runtime).
    pub(crate) fn new(style: BackendStyle, s: &ProxySettings) -> Result<Self, ProxyConfigError> {
        let bad = |message: String| ProxyConfigError::BadEndpoint {
            what: format!("proxy {:?} (gRPC)", s.name),
            endpoint: s.endpoint.clone(),
            message,
        };
        let target = parse_target(&s.endpoint).map_err(bad)?;
        let static_md = s
            .grpc_static_metadata
            .iter()
            .map(|(k, v)| {
                metadata_pair(k, v).map_err(|e| bad(format!("grpc.static_metadata: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = if s.grpc_credentials_key.is_empty() {
            None
        } else {
            let pair = metadata_pair(&s.grpc_credentials_key, &s.grpc_credentials_value)
                .map_err(|e| bad(format!("grpc.credentials_key: {e}")))?;
            Some(pair)
        };
        let uri: Uri = format!("http://{}", target.authority)
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        let endpoint = Endpoint::from(uri)
            .connect_timeout(s.timeout)
            .tcp_nodelay(true);
        let channel = if s.grpc_tls.enabled {
            let connector = tls::connector(&s.grpc_tls, &target.host)
                .map_err(|e| bad(format!("grpc.tls: {e}")))?;
            // The connector does the TLS; requests say `https` as a TLS client would.
            let origin: Uri = format!("https://{}", target.authority)
                .parse()
                .map_err(|e| bad(format!("{e}")))?;
            endpoint
                .origin(origin)
                .connect_with_connector_lazy(connector)
        } else {
            endpoint.connect_lazy()
        };
        let lower = |v: &[String]| -> HashSet<String> {
            v.iter().map(|h| h.to_ascii_lowercase()).collect()
        };
        let mut headers = lower(&s.http_headers);
        headers.extend(lower(&s.grpc_metadata));
        let emulated = match style {
            BackendStyle::Legacy => {
                headers.extend(LEGACY_DEFAULT_HEADERS.iter().map(|h| h.to_string()));
                HashSet::new()
            }
            BackendStyle::Modern => lower(&s.emulated_headers),
        };
        Ok(Self {
            style,
            settings: s.clone(),
            channel,
            headers,
            emulated,
            static_md,
            credentials,
        })
    }

    fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// The call's metadata, lowest precedence first: static metadata, allowed emulated
    /// headers, allowed transport headers (replacing what came before under the same name),
    /// the credentials pair. Values that cannot travel as metadata are dropped.
    fn metadata(&self, ctx: &ConnContext) -> MetadataMap {
        let mut md = MetadataMap::new();
        for (k, v) in &self.static_md {
            md.insert(k.clone(), v.clone());
        }
        for (k, v) in ctx.emulated_headers.iter() {
            let k = k.to_ascii_lowercase();
            if self.emulated.contains(&k) {
                set_header(&mut md, &k, v, true);
            }
        }
        let mut seen: HashSet<String> = HashSet::new();
        for (k, v) in ctx.headers.iter() {
            let k = k.to_ascii_lowercase();
            if self.headers.contains(&k) {
                let first = seen.insert(k.clone());
                set_header(&mut md, &k, v, first);
            }
        }
        if let Some((k, v)) = &self.credentials {
            md.insert(k.clone(), v.clone());
        }
        md
    }

    /// One unary call with this proxy's metadata, compression and deadline.
    async fn call<Q, R, F, Fut>(&self, ctx: &ConnContext, msg: Q, method: F) -> CallResult<R>
    where
        F: FnOnce(CentrifugoProxyClient<Channel>, tonic::Request<Q>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut client = CentrifugoProxyClient::new(self.channel.clone());
        if self.settings.grpc_compression {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        let mut req = tonic::Request::new(msg);
        *req.metadata_mut() = self.metadata(ctx);
        req.set_timeout(self.timeout());
        match tokio::time::timeout(self.timeout(), method(client, req)).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(CallError::Failed(describe(&status))),
            Err(_) => Err(CallError::Failed(format!(
                "no answer within the timeout ({:?})",
                self.timeout()
            ))),
        }
    }

    fn binary(&self, ctx: &ConnContext) -> bool {
        crate::payload::binary(self.style, &self.settings, ctx)
    }

    fn meta(&self, ctx: &ConnContext) -> Bytes {
        if self.settings.include_connection_meta {
            ctx.meta.clone().unwrap_or_default()
        } else {
            Bytes::new()
        }
    }
}

/// Sets (`replace`) or adds one header as metadata; `-bin` names carry the raw bytes.
fn set_header(md: &mut MetadataMap, key: &str, value: &str, replace: bool) {
    if key.ends_with("-bin") {
        let Ok(k) = BinaryMetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        let v = tonic::metadata::BinaryMetadataValue::from_bytes(value.as_bytes());
        if replace {
            md.insert_bin(k, v);
        } else {
            md.append_bin(k, v);
        }
        return;
    }
    let (Ok(k), Ok(v)) = (
        AsciiMetadataKey::from_bytes(key.as_bytes()),
        AsciiMetadataValue::try_from(value),
    ) else {
        tracing::debug!(
            header = key,
            "header cannot be sent as gRPC metadata, dropped"
        );
        return;
    };
    if replace {
        md.insert(k, v);
    } else {
        md.append(k, v);
    }
}

/// A status for the log line: its code, message and the transport's own error chain.
fn describe(status: &tonic::Status) -> String {
    let mut out = format!("gRPC status {:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

#[async_trait]
impl Caller for GrpcCaller {
    async fn connect(
        &self,
        ctx: &ConnContext,
        ev: &ConnectEvent,
    ) -> CallResult<Option<ConnectGrant>> {
        let req = convert::connect_request(ctx, self.binary(ctx), ev);
        let resp = self
            .call(ctx, req, |mut c, r| async move { c.connect(r).await })
            .await?;
        match convert::answer(resp.result, resp.error, resp.disconnect)? {
            None => Ok(None),
            Some(r) => convert::connect_grant(self.style, ctx, r)
                .map(Some)
                .map_err(CallError::Failed),
        }
    }

    async fn refresh(&self, ctx: &ConnContext) -> CallResult<Option<RefreshGrant>> {
        let req = convert::refresh_request(ctx, self.binary(ctx), self.meta(ctx));
        let resp = self
            .call(ctx, req, |mut c, r| async move { c.refresh(r).await })
            .await?;
        // Refresh ignores `error` and `disconnect`: without a result the connection expires.
        match resp.result {
            None => Ok(None),
            Some(r) => convert::refresh_grant(self.style, ctx, r)
                .map(Some)
                .map_err(CallError::Failed),
        }
    }

    async fn subscribe(
        &self,
        ctx: &ConnContext,
        ev: &SubscribeEvent,
    ) -> CallResult<Option<SubscribeGrant>> {
        let req = convert::subscribe_request(ctx, self.binary(ctx), self.meta(ctx), ev);
        let resp = self
            .call(ctx, req, |mut c, r| async move { c.subscribe(r).await })
            .await?;
        match convert::answer(resp.result, resp.error, resp.disconnect)? {
            None => Ok(None),
            Some(r) => convert::subscribe_grant(self.style, ctx, r)
                .map(Some)
                .map_err(CallError::Failed),
        }
    }

    async fn publish(
        &self,
        ctx: &ConnContext,
        ev: &PublishEvent,
    ) -> CallResult<Option<PublishGrant>> {
        let req = convert::publish_request(ctx, self.binary(ctx), self.meta(ctx), ev);
        let resp = self
            .call(ctx, req, |mut c, r| async move { c.publish(r).await })
            .await?;
        match convert::answer(resp.result, resp.error, resp.disconnect)? {
            None => Ok(None),
            Some(r) => convert::publish_grant(self.style, ctx, r)
                .map(Some)
                .map_err(CallError::Failed),
        }
    }

    async fn sub_refresh(
        &self,
        ctx: &ConnContext,
        ev: &SubRefreshEvent,
    ) -> CallResult<Option<SubRefreshGrant>> {
        let req = convert::sub_refresh_request(ctx, self.binary(ctx), self.meta(ctx), ev);
        let resp = self
            .call(ctx, req, |mut c, r| async move { c.sub_refresh(r).await })
            .await?;
        // As refresh: `error` and `disconnect` are ignored.
        match resp.result {
            None => Ok(None),
            Some(r) => convert::sub_refresh_grant(self.style, ctx, r)
                .map(Some)
                .map_err(CallError::Failed),
        }
    }

    async fn rpc(&self, ctx: &ConnContext, ev: &RpcEvent) -> CallResult<Option<Bytes>> {
        let req = convert::rpc_request(ctx, self.binary(ctx), self.meta(ctx), ev);
        let resp = self
            .call(ctx, req, |mut c, r| async move { c.rpc(r).await })
            .await?;
        match convert::answer(resp.result, resp.error, resp.disconnect)? {
            None => Ok(None),
            Some(r) => convert::rpc_data(self.style, ctx, r).map_err(CallError::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_host_and_port() {
        let t = parse_target("grpc://backend.local:10001").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.host.as_str()),
            ("backend.local:10001", "backend.local")
        );
        let t = parse_target("127.0.0.1:5000").unwrap();
        assert_eq!(t.authority, "127.0.0.1:5000");
        let t = parse_target("GRPC://[::1]:7/ignored").unwrap();
        assert_eq!((t.authority.as_str(), t.host.as_str()), ("[::1]:7", "::1"));
        let t = parse_target("grpc://backend").unwrap();
        assert_eq!(t.authority, "backend:443");
        assert!(parse_target("grpc://").is_err());
        assert!(parse_target("a b:1").is_err());
        assert!(parse_target("u@h:1").is_err());
    }

    #[test]
    fn bad_static_metadata_is_refused_at_start() {
        let s = ProxySettings {
            endpoint: "127.0.0.1:1".into(),
            grpc_static_metadata: vec![("bad key".into(), "v".into())],
            ..ProxySettings::default()
        };
        let err = GrpcCaller::new(BackendStyle::Modern, &s).err().unwrap();
        assert!(err.to_string().contains("grpc.static_metadata"), "{err}");
    }
}
