//! Settings of the transports beyond raw WebSocket (TRANSPORTS.md §1.1, §2.1, §3.2): SockJS
//! (Centrifugo 2.x keys), HTTP-streaming, SSE and the emulation endpoint, and the
//! unidirectional transports (Centrifugo 6 sections and the flat 5.x forms).
//!
//! The defaults are Centrifugo's: SockJS on at `/connection/sockjs` (as in 2.x), every modern
//! transport off until enabled.

use std::time::Duration;

pub mod compression;

use super::values::{boolean, duration, or_default, port, positive, size, string, Input};
use super::SetError;

/// Every non-WebSocket transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSettings {
    pub sockjs: SockjsSettings,
    pub http_stream: StreamSettings,
    pub sse: StreamSettings,
    pub emulation: EmulationSettings,
    pub uni_websocket: UniWebsocketSettings,
    pub uni_sse: UniStreamSettings,
    pub uni_http_stream: UniStreamSettings,
    pub uni_grpc: UniGrpcSettings,
    /// permessage-deflate of the bidirectional WebSocket (`websocket_compression*`).
    pub websocket_compression: compression::WsCompression,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            sockjs: SockjsSettings::default(),
            http_stream: StreamSettings::http_stream(),
            sse: StreamSettings::sse(),
            emulation: EmulationSettings::default(),
            uni_websocket: UniWebsocketSettings::default(),
            uni_sse: UniStreamSettings::uni_sse(),
            uni_http_stream: UniStreamSettings::uni_http_stream(),
            uni_grpc: UniGrpcSettings::default(),
            websocket_compression: compression::WsCompression::default(),
        }
    }
}

/// SockJS (`sockjs_*` keys of Centrifugo 2.x).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockjsSettings {
    /// `!sockjs_disable`.
    pub enabled: bool,
    /// `sockjs_handler_prefix`, trailing `/` trimmed.
    pub handler_prefix: String,
    /// `sockjs_url`: the sockjs-client script the iframe page loads.
    pub url: String,
    /// `sockjs_heartbeat_delay`: `h` frame period; zero = none.
    pub heartbeat_delay: Duration,
    /// Rotor: `sockjs_jsessionid` sets the `JSESSIONID` cookie for cookie-keyed balancers
    /// (off, as in Centrifugo).
    pub jsessionid: bool,
    /// Rotor: how long a session without a receiver lives (`sockjs_disconnect_delay`, 5 s).
    pub disconnect_delay: Duration,
    /// Rotor: bytes a streaming receiver gets before it must reconnect (128 KiB).
    pub streaming_limit: usize,
}

impl Default for SockjsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            handler_prefix: "/connection/sockjs".into(),
            url: "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js".into(),
            heartbeat_delay: Duration::from_secs(25),
            jsessionid: false,
            disconnect_delay: Duration::from_secs(5),
            streaming_limit: 128 * 1024,
        }
    }
}

/// HTTP-streaming or SSE with bidirectional emulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub enabled: bool,
    pub handler_prefix: String,
    /// Bytes of the connect request body (POST).
    pub max_request_body_size: usize,
}

impl StreamSettings {
    fn new(prefix: &str) -> Self {
        Self {
            enabled: false,
            handler_prefix: prefix.into(),
            max_request_body_size: 65536,
        }
    }

    pub fn http_stream() -> Self {
        Self::new("/connection/http_stream")
    }

    pub fn sse() -> Self {
        Self::new("/connection/sse")
    }
}

/// The `/emulation` endpoint (served when HTTP-streaming or SSE is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulationSettings {
    pub handler_prefix: String,
    pub max_request_body_size: usize,
}

impl Default for EmulationSettings {
    fn default() -> Self {
        Self {
            handler_prefix: "/emulation".into(),
            max_request_body_size: 65536,
        }
    }
}

/// `uni_websocket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniWebsocketSettings {
    pub enabled: bool,
    pub handler_prefix: String,
    pub message_size_limit: usize,
    pub write_timeout: Duration,
    /// Several pushes in one message, joined with `\n`.
    pub join_push_messages: bool,
    pub disable_closing_handshake: bool,
    pub disable_disconnect_push: bool,
    /// `uni_websocket_compression*`.
    pub compression: compression::WsCompression,
}

impl Default for UniWebsocketSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            handler_prefix: "/connection/uni_websocket".into(),
            message_size_limit: 65536,
            write_timeout: Duration::from_secs(1),
            join_push_messages: false,
            disable_closing_handshake: false,
            disable_disconnect_push: false,
            compression: compression::WsCompression::default(),
        }
    }
}

/// `uni_sse` and `uni_http_stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniStreamSettings {
    pub enabled: bool,
    pub handler_prefix: String,
    pub max_request_body_size: usize,
    /// `connect_code_to_http_response`: a connect error with a listed code becomes that HTTP
    /// answer instead of a disconnect push (`None`: off).
    pub connect_code_to_http_response: Option<Vec<CodeToHttp>>,
}

impl UniStreamSettings {
    pub fn uni_sse() -> Self {
        Self {
            enabled: false,
            handler_prefix: "/connection/uni_sse".into(),
            max_request_body_size: 65536,
            connect_code_to_http_response: None,
        }
    }

    pub fn uni_http_stream() -> Self {
        Self {
            handler_prefix: "/connection/uni_http_stream".into(),
            ..Self::uni_sse()
        }
    }
}

/// One `connect_code_to_http_response.transforms` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeToHttp {
    pub code: u32,
    pub status_code: u16,
    /// Empty: the error's reason.
    pub body: String,
}

/// `uni_grpc`: its own gRPC listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniGrpcSettings {
    pub enabled: bool,
    pub address: String,
    pub port: u16,
    pub max_receive_message_size: usize,
    pub tls: bool,
    pub tls_cert: String,
    pub tls_key: String,
}

impl Default for UniGrpcSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            address: String::new(),
            port: 11000,
            max_receive_message_size: 65536,
            tls: false,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

/// Applies one flat key of the transports (the Centrifugo 2.x `sockjs_*` keys, the 5.x flat
/// keys, and the flat names the Centrifugo 6 sections map onto, see `nested.rs`).
pub(crate) fn set(t: &mut TransportSettings, key: &str, i: &Input) -> Result<(), SetError> {
    let body = |i: &Input| size(i).map(|n| or_default(n, 65536));
    match key {
        "sockjs_disable" => t.sockjs.enabled = !boolean(i)?,
        "sockjs_handler_prefix" => t.sockjs.handler_prefix = super::prefix(&string(i)?),
        "sockjs_url" => t.sockjs.url = string(i)?,
        "sockjs_heartbeat_delay" => t.sockjs.heartbeat_delay = duration(i)?,
        "sockjs_jsessionid" => t.sockjs.jsessionid = boolean(i)?,
        "sockjs_disconnect_delay" => t.sockjs.disconnect_delay = positive(i)?,
        "http_stream" => t.http_stream.enabled = boolean(i)?,
        "http_stream_handler_prefix" => t.http_stream.handler_prefix = super::prefix(&string(i)?),
        "http_stream_max_request_body_size" => t.http_stream.max_request_body_size = body(i)?,
        "sse" => t.sse.enabled = boolean(i)?,
        "sse_handler_prefix" => t.sse.handler_prefix = super::prefix(&string(i)?),
        "sse_max_request_body_size" => t.sse.max_request_body_size = body(i)?,
        "emulation_handler_prefix" => t.emulation.handler_prefix = super::prefix(&string(i)?),
        "emulation_max_request_body_size" => t.emulation.max_request_body_size = body(i)?,
        "uni_websocket" => t.uni_websocket.enabled = boolean(i)?,
        "uni_websocket_handler_prefix" => {
            t.uni_websocket.handler_prefix = super::prefix(&string(i)?)
        }
        "uni_websocket_message_size_limit" => t.uni_websocket.message_size_limit = body(i)?,
        "uni_websocket_write_timeout" => {
            t.uni_websocket.write_timeout = or_default(duration(i)?, Duration::from_secs(1))
        }
        "uni_websocket_join_push_messages" => t.uni_websocket.join_push_messages = boolean(i)?,
        "uni_websocket_disable_closing_handshake" => {
            t.uni_websocket.disable_closing_handshake = boolean(i)?
        }
        "uni_websocket_disable_disconnect_push" => {
            t.uni_websocket.disable_disconnect_push = boolean(i)?
        }
        "uni_sse" => t.uni_sse.enabled = boolean(i)?,
        "uni_sse_handler_prefix" => t.uni_sse.handler_prefix = super::prefix(&string(i)?),
        "uni_sse_max_request_body_size" => t.uni_sse.max_request_body_size = body(i)?,
        "uni_sse_connect_code_to_http_response" => {
            t.uni_sse.connect_code_to_http_response = code_transforms(i)?
        }
        "uni_http_stream" => t.uni_http_stream.enabled = boolean(i)?,
        "uni_http_stream_handler_prefix" => {
            t.uni_http_stream.handler_prefix = super::prefix(&string(i)?)
        }
        "uni_http_stream_max_request_body_size" => {
            t.uni_http_stream.max_request_body_size = body(i)?
        }
        "uni_http_stream_connect_code_to_http_response" => {
            t.uni_http_stream.connect_code_to_http_response = code_transforms(i)?
        }
        "uni_grpc" => t.uni_grpc.enabled = boolean(i)?,
        "uni_grpc_address" => t.uni_grpc.address = string(i)?,
        "uni_grpc_port" => t.uni_grpc.port = port(i)?,
        "uni_grpc_max_receive_message_size" => t.uni_grpc.max_receive_message_size = body(i)?,
        "uni_grpc_tls" => t.uni_grpc.tls = boolean(i)?,
        "uni_grpc_tls_cert" => t.uni_grpc.tls_cert = string(i)?,
        "uni_grpc_tls_key" => t.uni_grpc.tls_key = string(i)?,
        other => return compression::set(t, other, i),
    }
    Ok(())
}

/// `connect_code_to_http_response`: `{"enabled": bool, "transforms": [{"code": N, "to":
/// {"status_code": N, "body": "..."}}]}` (an environment value is that JSON). Off unless
/// `enabled`.
fn code_transforms(i: &Input) -> Result<Option<Vec<CodeToHttp>>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        transforms: Vec<RawTransform>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawTransform {
        code: u32,
        to: RawTo,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawTo {
        status_code: u16,
        #[serde(default)]
        body: String,
    }
    let v = match i {
        Input::Json(v) => v.clone(),
        Input::Env(s) => serde_json::from_str(s).map_err(|e| format!("expected JSON: {e}"))?,
    };
    let raw: Raw = serde_json::from_value(v).map_err(|e| {
        format!("expected {{\"enabled\": bool, \"transforms\": [{{\"code\": N, \"to\": {{\"status_code\": N, \"body\": \"..\"}}}}]}}: {e}")
    })?;
    let mut out = Vec::with_capacity(raw.transforms.len());
    for t in raw.transforms {
        if !(100..=599).contains(&t.to.status_code) {
            return Err(format!(
                "transform for code {}: status_code {} is not an HTTP status",
                t.code, t.to.status_code
            ));
        }
        out.push(CodeToHttp {
            code: t.code,
            status_code: t.to.status_code,
            body: t.to.body,
        });
    }
    Ok(raw.enabled.then_some(out))
}

/// Checks what single keys cannot: distinct paths, the uni_grpc TLS files.
pub(crate) fn check(t: &TransportSettings, ws_prefix: &str) -> Result<(), (&'static str, String)> {
    let mut seen: Vec<(&'static str, &str)> = vec![("websocket_handler_prefix", ws_prefix)];
    let mut paths = vec![];
    if t.sockjs.enabled {
        paths.push(("sockjs_handler_prefix", t.sockjs.handler_prefix.as_str()));
    }
    if t.http_stream.enabled {
        paths.push((
            "http_stream_handler_prefix",
            t.http_stream.handler_prefix.as_str(),
        ));
    }
    if t.sse.enabled {
        paths.push(("sse_handler_prefix", t.sse.handler_prefix.as_str()));
    }
    if t.http_stream.enabled || t.sse.enabled {
        paths.push((
            "emulation_handler_prefix",
            t.emulation.handler_prefix.as_str(),
        ));
    }
    for (key, on, p) in [
        (
            "uni_websocket_handler_prefix",
            t.uni_websocket.enabled,
            &t.uni_websocket.handler_prefix,
        ),
        (
            "uni_sse_handler_prefix",
            t.uni_sse.enabled,
            &t.uni_sse.handler_prefix,
        ),
        (
            "uni_http_stream_handler_prefix",
            t.uni_http_stream.enabled,
            &t.uni_http_stream.handler_prefix,
        ),
    ] {
        if on {
            paths.push((key, p.as_str()));
        }
    }
    for (key, p) in paths {
        if let Some((other, _)) = seen.iter().find(|(_, q)| *q == p) {
            return Err((key, format!("path {p:?} is already used by {other}")));
        }
        seen.push((key, p));
    }
    let g = &t.uni_grpc;
    if g.enabled && g.tls {
        for (key, path) in [
            ("uni_grpc_tls_cert", &g.tls_cert),
            ("uni_grpc_tls_key", &g.tls_key),
        ] {
            if path.is_empty() {
                return Err((key, "must be set when uni_grpc_tls is on".into()));
            }
        }
    }
    Ok(())
}
