//! Settings of the transports beyond raw WebSocket (TRANSPORTS.md §1.1, §2.1, §3.2): SockJS
//! (Centrifugo 2.x keys), HTTP-streaming, SSE and the emulation endpoint, and the
//! unidirectional transports (Centrifugo 6 sections and the flat 5.x forms).
//!
//! The defaults are Centrifugo's: SockJS on at `/connection/sockjs` (as in 2.x), every modern
//! transport off until enabled.

use std::time::Duration;

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
