//! `/connection/sse` (TRANSPORTS.md §2.3): Server-sent events with bidirectional emulation,
//! JSON only. The connect command comes form-encoded in `GET ?cf_connect=` (missing or empty →
//! 400) or as a `POST` body (413 over `sse.max_request_body_size`); every other method,
//! OPTIONS included, is 405. The answer is `text/event-stream; charset=utf-8`, starts with
//! `\r\n` (written before the connect runs), then carries each JSON message as its own
//! `data: <json>\n\n` event; a server close ends it after a disconnect push event.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use rotor_core::writer::CloseFrame;
use rotor_protocol::Encoding;

use super::{empty, keep_alive, new_session, read_body, start_stream, BodyError};
use crate::app::SharedState;
use crate::transport::origin;
use crate::transport::stream::{self, disconnect_push, Framer};

pub(super) async fn handler(State(state): State<SharedState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let cors = origin::check_headers(&state, headers);
    let connect = if parts.method == Method::GET {
        let query = parts.uri.query().unwrap_or("");
        let value = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "cf_connect")
            .map(|(_, v)| v.into_owned());
        match value {
            Some(v) if !v.is_empty() => Bytes::from(v),
            _ => return empty(StatusCode::BAD_REQUEST, cors, headers),
        }
    } else if parts.method == Method::POST {
        let limit = state.settings.transports.sse.max_request_body_size;
        match read_body(headers, body, limit).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return empty(StatusCode::PAYLOAD_TOO_LARGE, cors, headers),
            Err(BodyError::Broken) => return empty(StatusCode::BAD_REQUEST, cors, headers),
        }
    } else {
        return empty(StatusCode::METHOD_NOT_ALLOWED, cors, headers);
    };
    let mut resp = start_stream(
        state.clone(),
        &rotor_core::transport::SSE,
        Encoding::Json,
        connect,
        Some(Bytes::from_static(b"\r\n")),
        Some("text/event-stream; charset=utf-8"),
        cors,
        headers,
        EventFramer,
    );
    keep_alive(parts.version, resp.headers_mut());
    resp
}

/// One `data:` event per JSON message.
struct EventFramer;

fn events(msgs: &[u8], out: &mut BytesMut) {
    // JSON escapes line breaks inside strings, so each line is one whole message.
    for line in msgs.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\n\n");
    }
}

impl Framer for EventFramer {
    fn data(&mut self, msgs: &[Bytes], out: &mut BytesMut) {
        for m in msgs {
            events(m, out);
        }
    }

    fn close(&mut self, frame: &CloseFrame, out: &mut BytesMut) {
        if frame.code == 3000 {
            return; // the client went away: nobody to tell
        }
        events(&disconnect_push(Encoding::Json, frame), out);
    }
}

/// An SSE `GET` that `crate::http` serves itself when it is the first request of a
/// connection, as it serves WebSocket upgrades: the response head and the chunked events are
/// written straight to the socket, so no HTTP connection state stays alive for the stream (an
/// idle SSE connection then costs what an idle WebSocket does, plus its emulation inbox).
/// Anything unusual (no `cf_connect`, draining, a POST) takes hyper's path and [`handler`].
pub(crate) struct FastSse {
    connect: Bytes,
    allow_origin: Option<String>,
    allow_headers: Option<Vec<u8>>,
    /// Every request header, kept only when there is a backend (it picks what it wants).
    headers: Option<Vec<(String, Vec<u8>)>>,
}

impl FastSse {
    /// The fast path for a parsed request head of `GET <sse prefix>?<query>`, or `None`.
    pub(crate) fn from_head(
        state: &crate::app::AppState,
        query: Option<&str>,
        headers: &[httparse::Header<'_>],
    ) -> Option<Self> {
        if state.draining.is_cancelled() {
            return None;
        }
        let value = form_urlencoded::parse(query?.as_bytes())
            .find(|(k, _)| k == "cf_connect")
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())?;
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let (allow_origin, allow_headers) = match origin::check(state, header("origin")) {
            origin::OriginCheck::Allowed(o) => (
                Some(o.to_string()),
                header("access-control-request-headers").map(<[u8]>::to_vec),
            ),
            _ => (None, None),
        };
        let keep = state.node.backend().is_some().then(|| {
            headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect()
        });
        Some(Self {
            connect: Bytes::from(value),
            allow_origin,
            allow_headers,
            headers: keep,
        })
    }

    /// The response head (chunked; the same headers as [`handler`]'s answer).
    fn response_head(&self) -> Vec<u8> {
        let mut h = String::with_capacity(384);
        h.push_str(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
             cache-control: private, no-cache, no-store, must-revalidate, max-age=0\r\n\
             pragma: no-cache\r\nexpire: 0\r\nx-accel-buffering: no\r\n\
             connection: keep-alive\r\ntransfer-encoding: chunked\r\n",
        );
        let mut head = h.into_bytes();
        if let Some(o) = &self.allow_origin {
            // Header values came from the request head, where httparse admits no CR or LF.
            head.extend_from_slice(b"access-control-allow-origin: ");
            head.extend_from_slice(o.as_bytes());
            head.extend_from_slice(b"\r\naccess-control-allow-credentials: true\r\n");
            if let Some(a) = &self.allow_headers {
                head.extend_from_slice(b"access-control-allow-headers: ");
                head.extend_from_slice(a);
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"vary: Origin\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    /// Serves the stream on `io` (the request head already read) until it ends.
    pub(crate) async fn serve<S>(self, mut io: S, state: SharedState)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        use tokio::io::AsyncWriteExt;
        let _tracked = state.connections.token();
        if io.write_all(&self.response_head()).await.is_err() {
            return;
        }
        let transport = &rotor_core::transport::SSE;
        let pairs = self.headers.iter().flatten();
        let pairs = pairs.map(|(k, v)| (k.as_str(), v.as_slice()));
        let session = new_session(&state, transport, Encoding::Json, pairs);
        let inbox = session
            .shared()
            .session_id()
            .map(|id| state.node.emulation_inbox(id));
        let (r, w) = tokio::io::split(io);
        let conn = stream::Conn {
            sink: stream::RawChunked::new(w),
            gone: stream::peer_gone(r),
        };
        let prelude = Some(Bytes::from_static(b"\r\n"));
        let start = stream::Start::Frame(self.connect);
        stream::run(state, session, start, prelude, inbox, EventFramer, conn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_message() {
        let mut out = BytesMut::new();
        EventFramer.data(
            &[
                Bytes::from_static(b"{\"id\":1}\n{}\n"),
                Bytes::from_static(b"{\"id\":2}\n"),
            ],
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"data: {\"id\":1}\n\ndata: {}\n\ndata: {\"id\":2}\n\n"
        );
        out.clear();
        EventFramer.close(
            &CloseFrame {
                code: 3012,
                reason: "no pong".into(),
            },
            &mut out,
        );
        assert!(out.starts_with(b"data: {") && out.ends_with(b"}\n\n"));
    }
}
