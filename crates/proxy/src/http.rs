//! HTTP proxy transport (PROXY.md §3): each event is a `POST` of a JSON body to the proxy's
//! endpoint, answered with a JSON `{result, error, disconnect}` envelope.
//!
//! Every HTTP proxy shares one pooled keep-alive client ([`SharedClient`], HTTP/1.1), except a
//! proxy with its own `http.tls`, which gets a client of its own. The proxy's timeout bounds the
//! whole call, connecting and reading the body included. Headers follow the generation of the
//! keys (D1–D2): 2.x forwards the default seven plus `proxy_extra_http_headers`; 6.x only what
//! the proxy lists, over its `static_headers` and the allowed v2 emulated headers.
//! `Content-Type: application/json` is always set last.

mod tls;
mod wire;

#[doc(hidden)]
pub use wire::fuzz_answer;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rotor_core::backend::*;
use rotor_netclient::Connector;
use serde::Serialize;

use crate::config::{ProxySettings, StatusTransform, LEGACY_DEFAULT_HEADERS};
use crate::payload;
use crate::{CallError, CallResult, Caller, ProxyConfigError};
use wire::{Answer, Head, Payload};

type HttpClient = Client<Connector, Full<Bytes>>;

/// The largest answer read from a backend (Centrifugo sets none; an answer is a few fields and
/// payloads no bigger than a client message, so 16 MiB only stops a runaway backend).
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Idle keep-alive connections kept per host (Centrifugo's `DefaultMaxIdleConnsPerHost`).
const MAX_IDLE_PER_HOST: usize = 255;
/// How long an idle connection is kept (Go's default transport).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

fn build_client(connector: Connector) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// The keep-alive client pool shared by every HTTP proxy (cheap to clone).
#[derive(Clone)]
pub(crate) struct SharedClient(HttpClient);

impl Default for SharedClient {
    fn default() -> Self {
        Self(build_client(Connector::system()))
    }
}

/// Headers never copied from the client's request: they describe that request's own framing.
const HOP_BY_HOP: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// One HTTP proxy object.
pub(crate) struct HttpCaller {
    style: BackendStyle,
    settings: ProxySettings,
    uri: Uri,
    client: HttpClient,
    /// `static_headers`, already validated.
    static_headers: HeaderMap,
    /// Transport headers forwarded (lower-case).
    allowed: Vec<String>,
    /// v2 emulated headers forwarded (lower-case; 6.x only).
    allowed_emulated: Vec<String>,
}

/// What came back from the endpoint.
enum Reply {
    /// A 200 answer's body.
    Body(Bytes),
    /// A status turned into an error or a disconnect by `status_to_code_transforms`.
    Transformed(BackendError),
}

fn bad(s: &ProxySettings, message: String) -> ProxyConfigError {
    ProxyConfigError::BadEndpoint {
        what: format!("proxy {:?}", s.name),
        endpoint: s.endpoint.clone(),
        message,
    }
}

fn lower(names: &[String]) -> Vec<String> {
    names.iter().map(|h| h.to_ascii_lowercase()).collect()
}

impl HttpCaller {
    pub(crate) fn new(
        style: BackendStyle,
        s: &ProxySettings,
        shared: &SharedClient,
    ) -> Result<Self, ProxyConfigError> {
        let uri: Uri = s
            .endpoint
            .parse()
            .map_err(|e| bad(s, format!("invalid URL: {e}")))?;
        if uri.host().is_none() {
            return Err(bad(s, "invalid URL: no host".to_string()));
        }
        let client = if s.http_tls.enabled {
            build_client(tls::custom(&s.http_tls).map_err(|e| bad(s, e))?)
        } else {
            shared.0.clone()
        };
        let mut static_headers = HeaderMap::new();
        for (k, v) in &s.static_headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad(s, format!("static header {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| bad(s, format!("static header {k:?}: {e}")))?;
            static_headers.insert(name, value);
        }
        let (allowed, allowed_emulated) = match style {
            BackendStyle::Legacy => {
                let mut a: Vec<String> = LEGACY_DEFAULT_HEADERS
                    .iter()
                    .map(|h| h.to_string())
                    .collect();
                a.extend(lower(&s.http_headers));
                (a, Vec::new())
            }
            BackendStyle::Modern => (lower(&s.http_headers), lower(&s.emulated_headers)),
        };
        Ok(Self {
            style,
            settings: s.clone(),
            uri,
            client,
            static_headers,
            allowed,
            allowed_emulated,
        })
    }

    fn binary(&self, ctx: &ConnContext) -> bool {
        payload::binary(self.style, &self.settings, ctx)
    }

    /// `meta` of the requests after connect, when the proxy includes it.
    fn meta<'a>(
        &self,
        ctx: &'a ConnContext,
    ) -> CallResult<Option<&'a serde_json::value::RawValue>> {
        if !self.settings.include_connection_meta {
            return Ok(None);
        }
        wire::raw_json(ctx.meta.as_deref(), "meta").map_err(CallError::Failed)
    }

    /// The headers of a call (§3.1).
    fn headers(&self, ctx: &ConnContext) -> HeaderMap {
        let mut h = self.static_headers.clone();
        for (k, v) in ctx.emulated_headers.iter() {
            if self.allowed_emulated.contains(k) {
                if let Some((name, value)) = header(k, v) {
                    h.insert(name, value);
                }
            }
        }
        let mut replaced: Vec<HeaderName> = Vec::new();
        for (k, v) in ctx.headers.iter() {
            if !self.allowed.contains(k) {
                continue;
            }
            let Some((name, value)) = header(k, v) else {
                continue;
            };
            // Transport headers replace every value set before them, and keep all their own.
            if !replaced.contains(&name) {
                h.remove(&name);
                replaced.push(name.clone());
            }
            h.append(name, value);
        }
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h
    }

    /// Posts a body; the proxy's timeout bounds everything, [`MAX_RESPONSE_BYTES`] the answer.
    async fn post(&self, ctx: &ConnContext, body: Vec<u8>) -> CallResult<Reply> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers(ctx);
        let timeout = self.settings.timeout;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("HTTP request error: {}", chain(&e)))?;
            let status = resp.status();
            if status != StatusCode::OK {
                return match transform(&self.settings.status_transforms, status.as_u16()) {
                    Some(answer) => Ok(Reply::Transformed(answer)),
                    None => Err(format!("unexpected HTTP status code: {}", status.as_u16())),
                };
            }
            let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("error reading HTTP body: {e}"))?;
            Ok(Reply::Body(body.to_bytes()))
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r.map_err(CallError::Failed),
            Err(_) => Err(CallError::Failed(format!(
                "HTTP request timed out after {timeout:?}"
            ))),
        }
    }

    /// A call whose answer may refuse (`error` / `disconnect` honoured).
    async fn call<R: Serialize, T>(
        &self,
        ctx: &ConnContext,
        req: &R,
        decode: impl FnOnce(&wire::Fields<'_>) -> Result<T, String>,
    ) -> CallResult<Option<T>> {
        let body = wire::encode(req).map_err(CallError::Failed)?;
        match self.post(ctx, body).await? {
            Reply::Transformed(answer) => Err(CallError::Answer(answer)),
            Reply::Body(b) => match wire::answer(&b, true).map_err(CallError::Failed)? {
                Answer::Refused(answer) => Err(CallError::Answer(answer)),
                Answer::Result(r) => decode(&r).map(Some).map_err(CallError::Failed),
                Answer::Nothing => Ok(None),
            },
        }
    }

    /// A refresh-like call: `error` and `disconnect` (sent or transformed) mean no result.
    async fn call_refresh<R: Serialize, T>(
        &self,
        ctx: &ConnContext,
        req: &R,
        decode: impl FnOnce(&wire::Fields<'_>) -> Result<T, String>,
    ) -> CallResult<Option<T>> {
        let body = wire::encode(req).map_err(CallError::Failed)?;
        match self.post(ctx, body).await? {
            Reply::Transformed(_) => Ok(None),
            Reply::Body(b) => match wire::answer(&b, false).map_err(CallError::Failed)? {
                Answer::Result(r) => decode(&r).map(Some).map_err(CallError::Failed),
                Answer::Refused(_) | Answer::Nothing => Ok(None),
            },
        }
    }
}

/// A forwarded header, if its name and value are valid on the wire (and it is not hop-by-hop).
fn header(k: &str, v: &str) -> Option<(HeaderName, HeaderValue)> {
    if HOP_BY_HOP.contains(&k) {
        return None;
    }
    let name = HeaderName::from_bytes(k.as_bytes()).ok()?;
    let value = HeaderValue::from_str(v).ok()?;
    Some((name, value))
}

/// The first `status_to_code_transforms` entry for `status`: its error when `to_error.code`
/// is set, else its disconnect when `to_disconnect.code` is set.
fn transform(transforms: &[StatusTransform], status: u16) -> Option<BackendError> {
    transforms.iter().find_map(|t| {
        if t.status_code != status {
            None
        } else if t.error_code > 0 {
            Some(BackendError::Error {
                code: t.error_code,
                message: t.error_message.clone(),
                temporary: t.error_temporary,
            })
        } else if t.disconnect_code > 0 {
            Some(BackendError::Disconnect {
                code: t.disconnect_code,
                reason: t.disconnect_reason.clone(),
                reconnect: false,
            })
        } else {
            None
        }
    })
}

/// An error and its causes, `: `-separated (hyper's own message is only the outermost kind).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        if !s.ends_with(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}

#[async_trait]
impl Caller for HttpCaller {
    async fn connect(
        &self,
        ctx: &ConnContext,
        ev: &ConnectEvent,
    ) -> CallResult<Option<ConnectGrant>> {
        let binary = self.binary(ctx);
        let req = wire::ConnectRequest {
            head: Head::new(ctx, binary),
            payload: Payload::new(binary, ev.data.as_deref()).map_err(CallError::Failed)?,
            name: &ev.name,
            version: &ev.version,
            channels: match self.style {
                BackendStyle::Legacy => &[],
                BackendStyle::Modern => &ev.channels,
            },
        };
        self.call(ctx, &req, |r| wire::connect_result(self.style, ctx, r))
            .await
    }

    async fn refresh(&self, ctx: &ConnContext) -> CallResult<Option<RefreshGrant>> {
        let req = wire::RefreshRequest {
            head: Head::new(ctx, self.binary(ctx)),
            user: &ctx.user,
            meta: self.meta(ctx)?,
        };
        self.call_refresh(ctx, &req, |r| wire::refresh_result(self.style, ctx, r))
            .await
    }

    async fn subscribe(
        &self,
        ctx: &ConnContext,
        ev: &SubscribeEvent,
    ) -> CallResult<Option<SubscribeGrant>> {
        let binary = self.binary(ctx);
        // 2.x sends no subscribe data.
        let data = match self.style {
            BackendStyle::Legacy => None,
            BackendStyle::Modern => ev.data.as_deref(),
        };
        let req = wire::SubscribeRequest {
            head: Head::new(ctx, binary),
            user: &ctx.user,
            channel: &ev.channel,
            meta: self.meta(ctx)?,
            payload: Payload::new(binary, data).map_err(CallError::Failed)?,
        };
        self.call(ctx, &req, |r| wire::subscribe_result(self.style, ctx, r))
            .await
    }

    async fn publish(
        &self,
        ctx: &ConnContext,
        ev: &PublishEvent,
    ) -> CallResult<Option<PublishGrant>> {
        let binary = self.binary(ctx);
        let req = wire::PublishRequest {
            head: Head::new(ctx, binary),
            user: &ctx.user,
            channel: &ev.channel,
            payload: Payload::new(binary, Some(&ev.data)).map_err(CallError::Failed)?,
            meta: self.meta(ctx)?,
        };
        self.call(ctx, &req, |r| wire::publish_result(self.style, ctx, r))
            .await
    }

    async fn sub_refresh(
        &self,
        ctx: &ConnContext,
        ev: &SubRefreshEvent,
    ) -> CallResult<Option<SubRefreshGrant>> {
        let req = wire::SubRefreshRequest {
            head: Head::new(ctx, self.binary(ctx)),
            user: &ctx.user,
            channel: &ev.channel,
            meta: self.meta(ctx)?,
        };
        self.call_refresh(ctx, &req, |r| wire::sub_refresh_result(self.style, ctx, r))
            .await
    }

    async fn rpc(&self, ctx: &ConnContext, ev: &RpcEvent) -> CallResult<Option<Bytes>> {
        let binary = self.binary(ctx);
        let req = wire::RpcRequest {
            head: Head::new(ctx, binary),
            user: &ctx.user,
            method: &ev.method,
            payload: Payload::new(binary, ev.data.as_deref()).map_err(CallError::Failed)?,
            meta: self.meta(ctx)?,
        };
        self.call(ctx, &req, |r| wire::rpc_result(self.style, ctx, r))
            .await
            .map(Option::flatten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::{Encoding, Generation};
    use std::sync::Arc;

    fn pairs(v: &[(&str, &str)]) -> Arc<[(String, String)]> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into()
    }

    fn ctx() -> ConnContext {
        ConnContext {
            client: Arc::from("c"),
            transport: "websocket",
            encoding: Encoding::Json,
            generation: Generation::V2,
            user: String::new(),
            meta: None,
            headers: pairs(&[
                ("cookie", "a=1"),
                ("x-trace", "t1"),
                ("x-trace", "t2"),
                ("content-length", "5"),
                ("x-both", "transport"),
            ]),
            emulated_headers: pairs(&[("x-emu", "e"), ("x-both", "emulated"), ("x-only", "no")]),
        }
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_string())
            .collect()
    }

    #[tokio::test]
    async fn modern_headers_follow_centrifugo_precedence() {
        let s = ProxySettings {
            endpoint: "http://127.0.0.1:1/x".into(),
            http_headers: vec![
                "X-Trace".into(),
                "x-both".into(),
                "content-length".into(),
                "x-only".into(),
            ],
            emulated_headers: vec!["x-emu".into(), "X-Both".into()],
            static_headers: vec![
                ("x-static".into(), "s".into()),
                ("x-emu".into(), "static".into()),
                ("content-type".into(), "text/plain".into()),
            ],
            ..ProxySettings::default()
        };
        let c =
            HttpCaller::new(BackendStyle::Modern, &s, &SharedClient::default()).expect("caller");
        let h = c.headers(&ctx());
        assert_eq!(values(&h, "x-static"), ["s"]);
        assert_eq!(values(&h, "x-emu"), ["e"]);
        assert_eq!(values(&h, "x-trace"), ["t1", "t2"]);
        assert_eq!(values(&h, "x-both"), ["transport"]);
        assert_eq!(values(&h, "content-type"), ["application/json"]);
        assert!(h.get("cookie").is_none());
        assert!(h.get("content-length").is_none());
        // Only in http_headers: never taken from the emulated map.
        assert!(h.get("x-only").is_none());
    }

    #[tokio::test]
    async fn legacy_headers_are_the_default_seven_and_the_extra_ones() {
        let s = ProxySettings {
            endpoint: "http://127.0.0.1:1/x".into(),
            http_headers: vec!["X-Trace".into()],
            emulated_headers: vec!["x-emu".into()],
            ..ProxySettings::default()
        };
        let c =
            HttpCaller::new(BackendStyle::Legacy, &s, &SharedClient::default()).expect("caller");
        let h = c.headers(&ctx());
        assert_eq!(values(&h, "cookie"), ["a=1"]);
        assert_eq!(values(&h, "x-trace"), ["t1", "t2"]);
        assert!(h.get("x-emu").is_none());
        assert!(h.get("x-both").is_none());
    }

    #[test]
    fn status_transforms_pick_error_then_disconnect() {
        let t = [
            StatusTransform {
                status_code: 404,
                error_code: 1404,
                error_message: "nope".into(),
                ..StatusTransform::default()
            },
            StatusTransform {
                status_code: 403,
                disconnect_code: 4403,
                disconnect_reason: "forbidden".into(),
                ..StatusTransform::default()
            },
        ];
        assert!(matches!(
            transform(&t, 404),
            Some(BackendError::Error { code: 1404, .. })
        ));
        assert!(matches!(
            transform(&t, 403),
            Some(BackendError::Disconnect { code: 4403, .. })
        ));
        assert!(transform(&t, 500).is_none());
    }

    #[tokio::test]
    async fn bad_endpoints_and_static_headers_are_config_errors() {
        let shared = SharedClient::default();
        let s = ProxySettings {
            endpoint: "http://".into(),
            ..ProxySettings::default()
        };
        assert!(HttpCaller::new(BackendStyle::Modern, &s, &shared).is_err());
        let s = ProxySettings {
            endpoint: "http://127.0.0.1:1".into(),
            static_headers: vec![("bad name".into(), "v".into())],
            ..ProxySettings::default()
        };
        assert!(HttpCaller::new(BackendStyle::Modern, &s, &shared).is_err());
    }
}
