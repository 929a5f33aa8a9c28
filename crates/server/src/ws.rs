//! The WebSocket transport: upgrades `/connection/websocket`, then runs one reader (frames into
//! the session, in order) and one writer (everything queued merged into as few frames and
//! writes as possible) per connection.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use rotor_core::writer::WriterStep;
use rotor_core::{ClientShared, Session};
use rotor_protocol::{DisconnectKind, Encoding, Generation};

use crate::app::SharedState;

/// Initial WebSocket read buffer; tungstenite grows it for larger messages.
const READ_BUFFER: usize = 1024;

/// Merged frames stay below this size unless a single message is larger.
const MAX_MERGED_FRAME: usize = 64 * 1024;

pub async fn handler(
    ws: WebSocketUpgrade,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    State(state): State<SharedState>,
) -> Response {
    if state.draining.is_cancelled() {
        // Shutting down: the client reconnects to another node.
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    rotor_core::metrics::METRICS.transport_connects.inc();
    let forced = match query.get("cf_protocol_version").map(String::as_str) {
        None => None,
        Some("v1") => Some(Generation::V1),
        Some("v2") => Some(Generation::V2),
        Some(_) => return (StatusCode::BAD_REQUEST, "unknown cf_protocol_version").into_response(),
    };
    // Protobuf by query (`format`, `cf_protocol`, 0.14's `protocol`) or by sub-protocol; a
    // 2.x-era client offers the sub-protocol only together with `format=protobuf`.
    let ws = ws.protocols(["centrifuge-protobuf", "centrifuge-json"]);
    let by_query = ["format", "cf_protocol", "protocol"]
        .iter()
        .any(|k| query.get(*k).is_some_and(|v| v == "protobuf"));
    let by_subprotocol = ws
        .selected_protocol()
        .is_some_and(|p| p.as_bytes() == b"centrifuge-protobuf");
    let encoding = if by_query || by_subprotocol {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    if let Some(allowed) = &state.settings.allowed_origins {
        let origin = headers
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !origin.is_empty() && !origin_allowed(allowed, origin) {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let max = state.node.config().client_request_max_size;
    // Small buffers: an idle connection should cost a few KB, not the 2×128 KB defaults. Our
    // writer already merges everything queued into one frame per write, so no write buffering
    // is needed below it.
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let fut = serve_socket(socket, state, forced, encoding);
            if std::env::var_os("ROTOR_DEBUG_SIZES").is_some() {
                eprintln!("connection future: {} bytes", std::mem::size_of_val(&fut));
            }
            fut
        })
}

/// `allowed_origins` patterns: `*` anywhere matches any run of characters.
fn origin_allowed(patterns: &[String], origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.split_once('*') {
            None => p == origin,
            Some((pre, post)) => {
                origin.len() >= pre.len() + post.len()
                    && origin.starts_with(pre)
                    && origin.ends_with(post)
            }
        }
    })
}

async fn serve_socket(
    mut socket: WebSocket,
    state: SharedState,
    forced: Option<Generation>,
    encoding: Encoding,
) {
    let _tracked = state.connections.token();
    let node = &state.node;
    let mut session = node.new_session(forced, encoding);
    let shared = session.shared().clone();
    let cfg = node.config();
    let stale_at = tokio::time::Instant::now() + cfg.client_stale_close_delay;
    let shutdown = node.shutdown_token();
    let write_timeout = cfg
        .client_message_write_timeout
        .max(Duration::from_millis(100));
    let mut out = Outbox::default();
    // One task per connection owns the socket: it writes what the queue holds and reads the
    // next frame, whichever is ready first. Writing wins a tie so replies and pushes are never
    // starved by a chatty client. After a close is queued, reading stops.
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            step = shared.queue.next(&mut out.batch) => {
                if !Box::pin(out.write(&mut socket, &shared, step, write_timeout)).await {
                    break;
                }
            }
            _ = shutdown.cancelled(), if reading => {
                shared.disconnect(DisconnectKind::Shutdown);
                reading = false;
            }
            _ = tokio::time::sleep_until(stale_at), if reading && !session.is_connected() => {
                shared.disconnect(DisconnectKind::Stale);
                reading = false;
            }
            m = socket.recv(), if reading => {
                // Boxed: command handling is a deep future, and an idle connection should not
                // carry its space.
                reading = Box::pin(read(&mut session, &shared, encoding, m)).await;
            }
        }
    }
    session.close().await;
}

/// Handles one inbound message; false once the connection stops reading.
async fn read(
    session: &mut Session,
    shared: &ClientShared,
    encoding: Encoding,
    m: Option<Result<Message, axum::Error>>,
) -> bool {
    match m {
        None | Some(Ok(Message::Close(_))) => {
            shared.drop_transport();
            false
        }
        Some(Ok(Message::Text(t))) => {
            if encoding.is_binary() {
                session.reject_bad_request();
                return false;
            }
            session.handle_frame(t.as_bytes()).await
        }
        // Protobuf travels as binary; on a JSON connection binary JSON is accepted the way the
        // Go server does, anything else fails to decode as a bad request.
        Some(Ok(Message::Binary(b))) => session.handle_frame(&b).await,
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
            session.touch();
            true
        }
        Some(Err(e)) => {
            tracing::debug!(client = %shared.id(), error = %e, "websocket read error");
            match classify(e) {
                ReadError::TooBig => {
                    shared.queue.close(Some(rotor_core::writer::CloseFrame {
                        code: 1009,
                        reason: "message too big".into(),
                    }));
                }
                ReadError::BadData => session.reject_bad_request(),
                ReadError::Gone => shared.drop_transport(),
            }
            false
        }
    }
}

enum ReadError {
    /// Larger than `client_request_max_size`: close 1009, as the Go server does.
    TooBig,
    /// Invalid UTF-8 in a text frame or a protocol violation: a bad request.
    BadData,
    /// The peer or the network went away.
    Gone,
}

fn classify(e: axum::Error) -> ReadError {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => ReadError::TooBig,
        Some(tungstenite::Error::Utf8(_) | tungstenite::Error::Protocol(_)) => ReadError::BadData,
        _ => ReadError::Gone,
    }
}

/// Reused write buffers of one connection.
#[derive(Default)]
struct Outbox {
    batch: Vec<Bytes>,
    buf: BytesMut,
}

impl Outbox {
    /// Performs one writer step; false when the connection is done.
    async fn write(
        &mut self,
        socket: &mut WebSocket,
        shared: &ClientShared,
        step: WriterStep,
        write_timeout: Duration,
    ) -> bool {
        if step == WriterStep::Data {
            // Let the fan-out that woke us finish queueing: one write instead of several.
            tokio::task::yield_now().await;
            shared.queue.take_more(&mut self.batch);
        }
        if !self.batch.is_empty() {
            let send = async {
                if shared.encoding().is_binary() {
                    for frame in merge_binary(&mut self.batch, &mut self.buf) {
                        socket.feed(Message::Binary(frame)).await?;
                    }
                } else {
                    for frame in merge(&mut self.batch, &mut self.buf) {
                        socket.feed(Message::Text(frame)).await?;
                    }
                }
                socket.flush().await
            };
            if !matches!(tokio::time::timeout(write_timeout, send).await, Ok(Ok(()))) {
                self.batch.clear();
                shared.cancel.cancel();
                return false;
            }
        }
        match step {
            WriterStep::Data => true,
            WriterStep::Ping => socket.send(Message::Ping(Bytes::new())).await.is_ok(),
            WriterStep::Close(frame) => {
                if let Some(f) = frame {
                    let close = Message::Close(Some(CloseFrame {
                        code: f.code,
                        reason: Utf8Bytes::from(f.reason),
                    }));
                    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
                shared.cancel.cancel();
                false
            }
        }
    }
}

/// Concatenates queued messages (each a complete JSON line, or a complete length-prefixed
/// Protobuf message) into frames of bounded size.
fn merge_binary(batch: &mut Vec<Bytes>, buf: &mut BytesMut) -> Vec<Bytes> {
    if batch.len() == 1 {
        return std::mem::take(batch);
    }
    let mut frames = Vec::new();
    for b in batch.drain(..) {
        if !buf.is_empty() && buf.len() + b.len() > MAX_MERGED_FRAME {
            frames.push(buf.split().freeze());
        }
        buf.extend_from_slice(&b);
    }
    if !buf.is_empty() {
        frames.push(buf.split().freeze());
    }
    frames
}

/// [`merge_binary`] for text frames. Our JSON output is always UTF-8; a frame that somehow is
/// not (raw bytes a Protobuf client published) is dropped rather than sent corrupt.
fn merge(batch: &mut Vec<Bytes>, buf: &mut BytesMut) -> Vec<Utf8Bytes> {
    merge_binary(batch, buf)
        .into_iter()
        .filter_map(|b| Utf8Bytes::try_from(b).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let p = vec![
            "https://*.example.com".to_string(),
            "http://localhost:3000".to_string(),
        ];
        assert!(origin_allowed(&p, "https://app.example.com"));
        assert!(origin_allowed(&p, "http://LOCALHOST:3000"));
        assert!(!origin_allowed(&p, "https://evil.com"));
        assert!(origin_allowed(&["*".to_string()], "anything"));
    }

    #[test]
    fn merge_bounds_frames() {
        let mut batch: Vec<Bytes> = (0..3).map(|_| Bytes::from(vec![b'a'; 40 * 1024])).collect();
        let mut buf = BytesMut::new();
        let frames = merge(&mut batch, &mut buf);
        assert_eq!(frames.len(), 3);
        let mut batch: Vec<Bytes> = (0..3).map(|_| Bytes::from_static(b"{}\n")).collect();
        let frames = merge(&mut batch, &mut buf);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].as_str(), "{}\n{}\n{}\n");
    }
}
