//! The transport seam: what a connection's transport tells the session about itself, so that
//! one session state machine serves every way a client reaches the server.
//!
//! Three shapes exist (TRANSPORTS.md §0):
//!
//! * **Bidirectional** framed transports (WebSocket, SockJS): commands and replies on one
//!   connection; the close is a transport frame.
//! * **Emulation** (HTTP-streaming, SSE): replies and pushes stream on one response, commands
//!   arrive as separate `/emulation` requests (see [`crate::emulation`]); the connect result
//!   carries `session` and `node`, and the close is a disconnect push.
//! * **Unidirectional** (uni_websocket, uni_sse, uni_http_stream, uni_grpc): one bare
//!   `ConnectRequest` in, bare `Push` messages out ([`crate::Session::connect_unidirectional`]);
//!   pings are not answered.
//!
//! Every transport drives the same [`crate::Session`]: it feeds inbound frames to
//! [`crate::Session::handle_frame`] and drains [`crate::ClientShared::queue`] into its own
//! framing. A transport is a `&'static TransportInfo`, so a connection pays one pointer for it
//! and the WebSocket path reads nothing it did not read before.

/// The shape of a transport (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Bidirectional,
    Emulation,
    Unidirectional,
}

/// What a transport offers the session.
#[derive(Debug)]
pub struct TransportInfo {
    /// The name the backend (proxies) and logs see: `websocket`, `sockjs`, `http_stream`,
    /// `sse`, `uni_websocket`, `uni_sse`, `uni_http_stream`, `uni_grpc`.
    pub name: &'static str,
    pub kind: TransportKind,
    /// Whether protocol v2 application pings (`{}`) are sent: every transport but uni_grpc
    /// (which relies on HTTP/2 keepalive, as Centrifugo's does).
    pub app_pings: bool,
    /// Whether the transport carries binary frames (Protobuf is possible at all).
    pub binary: bool,
    /// Position in [`ALL`] (the metrics' label index).
    pub id: usize,
}

/// Every transport, in the order of their `id`.
pub static ALL: [&TransportInfo; 8] = [
    &WEBSOCKET,
    &SOCKJS,
    &HTTP_STREAM,
    &SSE,
    &UNI_WEBSOCKET,
    &UNI_SSE,
    &UNI_HTTP_STREAM,
    &UNI_GRPC,
];

impl TransportInfo {
    /// Whether the client answers server pings (bidirectional and emulation transports).
    pub fn client_pongs(&self) -> bool {
        self.kind != TransportKind::Unidirectional
    }

    /// Whether the connection gets a session id (emulation and unidirectional transports).
    pub fn has_session(&self) -> bool {
        self.kind != TransportKind::Bidirectional
    }

    /// Whether the server closes it with a disconnect push rather than a transport frame.
    pub fn closes_with_push(&self) -> bool {
        self.kind != TransportKind::Bidirectional
    }
}

/// The raw WebSocket transport (`/connection/websocket`).
pub static WEBSOCKET: TransportInfo = TransportInfo {
    name: "websocket",
    kind: TransportKind::Bidirectional,
    app_pings: true,
    binary: true,
    id: 0,
};

/// SockJS (`/connection/sockjs`): JSON only; heartbeats are the transport's (`h` frames).
pub static SOCKJS: TransportInfo = TransportInfo {
    name: "sockjs",
    kind: TransportKind::Bidirectional,
    app_pings: true,
    binary: false,
    id: 1,
};

/// HTTP-streaming with bidirectional emulation.
pub static HTTP_STREAM: TransportInfo = TransportInfo {
    name: "http_stream",
    kind: TransportKind::Emulation,
    app_pings: true,
    binary: true,
    id: 2,
};

/// Server-sent events with bidirectional emulation (JSON only).
pub static SSE: TransportInfo = TransportInfo {
    name: "sse",
    kind: TransportKind::Emulation,
    app_pings: true,
    binary: false,
    id: 3,
};

/// Unidirectional WebSocket.
pub static UNI_WEBSOCKET: TransportInfo = TransportInfo {
    name: "uni_websocket",
    kind: TransportKind::Unidirectional,
    app_pings: true,
    binary: false,
    id: 4,
};

/// Unidirectional server-sent events.
pub static UNI_SSE: TransportInfo = TransportInfo {
    name: "uni_sse",
    kind: TransportKind::Unidirectional,
    app_pings: true,
    binary: false,
    id: 5,
};

/// Unidirectional HTTP-streaming.
pub static UNI_HTTP_STREAM: TransportInfo = TransportInfo {
    name: "uni_http_stream",
    kind: TransportKind::Unidirectional,
    app_pings: true,
    binary: false,
    id: 6,
};

/// Unidirectional gRPC (`CentrifugoUniStream.Consume`): Protobuf, no application pings.
pub static UNI_GRPC: TransportInfo = TransportInfo {
    name: "uni_grpc",
    kind: TransportKind::Unidirectional,
    app_pings: false,
    binary: true,
    id: 7,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_index_all_and_names_are_distinct() {
        for (i, t) in ALL.iter().enumerate() {
            assert_eq!(t.id, i, "{}", t.name);
            assert_eq!(ALL.iter().filter(|o| o.name == t.name).count(), 1);
        }
        assert!(WEBSOCKET.client_pongs() && !WEBSOCKET.has_session());
        assert!(SSE.has_session() && SSE.closes_with_push() && SSE.client_pongs());
        assert!(!UNI_SSE.client_pongs() && !UNI_GRPC.app_pings);
    }
}
