//! `uni_websocket` (TRANSPORTS.md §3.2): a WebSocket that only carries pushes to the client.
//!
//! The connect request is `?cf_connect=<JSON>` (bad → 400 before the upgrade) or else the
//! first WebSocket message (bad → close 3501); `message_size_limit` bounds what is read, and
//! whatever the client sends after its connect is read and dropped. Each bare JSON push goes
//! out as its own text message (`join_push_messages`: everything written at once joined with
//! `\n`). Besides the session's `{}` pings the server sends WebSocket Ping frames every ping
//! interval, and gives up on a client whose Pong does not come within interval + pong timeout.
//! A server close writes the disconnect push (unless `disable_disconnect_push`), then a close
//! frame with the code and the plain reason, and waits up to 5 s for the client's close
//! (unless `disable_closing_handshake`).
//!
//! With `uni_websocket.compression` on and permessage-deflate offered, the connection runs on
//! the deflate socket (`transport/websocket/deflate.rs`) with the same answer and rules as the
//! bidirectional WebSocket.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rotor_core::writer::{CloseFrame as Frame, WriterStep};
use rotor_protocol::{ConnectRequest, DisconnectKind, Encoding};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use super::{close_push, decode_json, for_each_push, new_session};
use crate::app::SharedState;
use crate::transport::origin;
use crate::transport::websocket::deflate::DeflateSocket;
use crate::transport::websocket::{negotiate, switching_response, with_deflate_answer, Socket};

/// How long a closing server waits for the client's close frame.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(5);

fn refuse(status: StatusCode, reason: &'static str) -> Response {
    (status, reason).into_response()
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

pub(super) async fn handler(State(state): State<SharedState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let headers = &parts.headers;
    if parts.method != Method::GET {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "websocket upgrade needs GET",
        );
    }
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return refuse(StatusCode::BAD_REQUEST, "not a websocket upgrade");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes().trim_ascii() != b"13")
    {
        let mut r = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version must be 13",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key header missing");
    };
    if origin::check_headers(&state, headers).is_refused() {
        return refuse(StatusCode::FORBIDDEN, "origin not allowed");
    }
    if state.draining.is_cancelled() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if let Err(r) = state.limits.admit(&state.connections) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, r.reason());
    }
    let connect = match super::cf_connect(parts.uri.query().unwrap_or("")) {
        None => None,
        Some(Some(r)) => Some(r),
        Some(None) => return refuse(StatusCode::BAD_REQUEST, "bad cf_connect"),
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes().trim_ascii());
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "connection cannot be upgraded",
        );
    };
    let backend: Vec<(String, Vec<u8>)> = if state.node.backend().is_some() {
        headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect()
    } else {
        Vec::new()
    };
    let settings = &state.settings.transports.uni_websocket;
    let limit = settings.message_size_limit;
    let deflate = negotiate(
        &settings.compression,
        limit,
        headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    // Counted from admission, before the 101 is written (see the WebSocket transport).
    let tracked = state.connections.token();
    let response = switching_response(
        &accept,
        None,
        on_upgrade,
        "uni_websocket",
        move |io| async move {
            let _tracked = tracked;
            if let Some(params) = deflate {
                let socket = DeflateSocket::new(io, Vec::new(), params);
                return serve(socket, state, connect, backend).await;
            }
            let config = WebSocketConfig::default()
                .read_buffer_size(1024)
                .write_buffer_size(0)
                .max_message_size(Some(limit))
                .max_frame_size(Some(limit));
            let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            serve(socket, state, connect, backend).await;
        },
    );
    with_deflate_answer(response, deflate.is_some())
}

/// Sends a close frame and closes the sink, bounded in time.
async fn send_close<W: Socket>(socket: &mut W, code: u16, reason: &str) {
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
}

/// The first message as a connect request: `None` (after closing 3501 or on a gone client)
/// when there is none.
async fn first_message<W: Socket>(socket: &mut W, wait: Duration) -> Option<ConnectRequest> {
    let deadline = Instant::now() + wait;
    loop {
        let m = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??;
        let bytes: Bytes = match m {
            Ok(Message::Text(t)) => Bytes::from(t),
            Ok(Message::Binary(b)) => b,
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Err(tungstenite::Error::Capacity(_)) => {
                // Over `message_size_limit`.
                send_close(socket, 1009, "message too big").await;
                return None;
            }
            Ok(Message::Close(_)) | Err(_) => return None,
        };
        return match decode_json(&bytes) {
            Some(r) => Some(r),
            None => {
                send_close(socket, 3501, "bad request").await;
                let _ = tokio::time::timeout(Duration::from_secs(1), SinkExt::close(socket)).await;
                None
            }
        };
    }
}

async fn serve<W: Socket>(
    mut socket: W,
    state: SharedState,
    connect: Option<ConnectRequest>,
    backend: Vec<(String, Vec<u8>)>,
) {
    let node = state.node.clone();
    let cfg = node.config();
    let settings = state.settings.transports.uni_websocket.clone();
    let req = match connect {
        Some(r) => r,
        None => match first_message(&mut socket, cfg.client_stale_close_delay).await {
            Some(r) => r,
            None => return,
        },
    };
    let pairs = backend.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
    let mut session = new_session(
        &state,
        &rotor_core::transport::UNI_WEBSOCKET,
        Encoding::Json,
        pairs,
    );
    let shared = session.shared().clone();
    let mut reading = session.connect_unidirectional(req).await.is_ok();
    let write_timeout = settings.write_timeout.max(Duration::from_millis(100));
    let ping_every = cfg.client_ping_interval;
    let pong_wait = ping_every + cfg.client_pong_timeout;
    let mut ticker = (!ping_every.is_zero()).then(|| {
        let mut t = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut read_deadline = Instant::now() + pong_wait;
    let shutdown = node.shutdown_token();
    let mut batch: Vec<Bytes> = Vec::new();
    loop {
        tokio::select! {
            biased;
            step = shared.queue.next(&mut batch) => {
                let close = match step {
                    WriterStep::Ping => None,
                    WriterStep::Data => {
                        tokio::task::yield_now().await;
                        shared.queue.take_more(&mut batch);
                        None
                    }
                    WriterStep::Close(frame) => Some(frame),
                };
                let msgs = messages(&batch, settings.join_push_messages);
                batch.clear();
                let send = async {
                    for m in msgs {
                        socket.feed(Message::Text(m)).await?;
                    }
                    socket.flush().await
                };
                if !shared.write_within(write_timeout, send).await {
                    break;
                }
                if let Some(frame) = close {
                    if let Some(f) = frame {
                        close_socket(&mut socket, &f, &settings).await;
                    }
                    shared.cancel.cancel();
                    break;
                }
            }
            _ = shutdown.cancelled(), if reading => {
                shared.disconnect(DisconnectKind::Shutdown);
                reading = false;
            }
            _ = tick(&mut ticker) => {
                let ping = socket.send(Message::Ping(Bytes::new()));
                if !shared.write_within(write_timeout, ping).await {
                    break;
                }
            }
            _ = tokio::time::sleep_until(read_deadline), if ticker.is_some() => {
                // No Pong in time: the client is gone.
                shared.drop_transport();
                break;
            }
            m = socket.next() => match m {
                Some(Ok(Message::Pong(_))) => read_deadline = Instant::now() + pong_wait,
                // Anything else the client sends is read and dropped.
                Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Frame(_))) => {}
                None | Some(Ok(Message::Close(_))) | Some(Err(_)) => {
                    shared.drop_transport();
                    break;
                }
            }
        }
    }
    session.close().await;
}

/// The next ping tick, or never without pings.
async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The text messages of the session's queued messages: one per bare push, or (joined) all of
/// them in one separated by `\n`.
fn messages(batch: &[Bytes], join: bool) -> Vec<Utf8Bytes> {
    let mut out = Vec::new();
    let mut joined = Vec::new();
    for_each_push(batch, |p| {
        if join {
            if !joined.is_empty() {
                joined.push(b'\n');
            }
            joined.extend_from_slice(p);
        } else if let Ok(t) = Utf8Bytes::try_from(Bytes::copy_from_slice(p)) {
            out.push(t);
        }
    });
    if join && !joined.is_empty() {
        if let Ok(t) = Utf8Bytes::try_from(Bytes::from(joined)) {
            out.push(t);
        }
    }
    out
}

/// A server close: the disconnect push, the close frame, the closing handshake.
async fn close_socket<W: Socket>(
    socket: &mut W,
    frame: &Frame,
    settings: &crate::config::transports::UniWebsocketSettings,
) {
    if frame.code == 3000 {
        return;
    }
    if !settings.disable_disconnect_push {
        if let Some(p) = close_push(Encoding::Json, frame) {
            if let Ok(t) = Utf8Bytes::try_from(p) {
                let _ = tokio::time::timeout(settings.write_timeout, socket.send(Message::Text(t)))
                    .await;
            }
        }
    }
    send_close(socket, frame.code, &frame.reason).await;
    if !settings.disable_closing_handshake {
        let wait = async {
            while let Some(Ok(m)) = socket.next().await {
                if m.is_close() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSING_HANDSHAKE, wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_push_or_joined() {
        let batch = [Bytes::from_static(b"{\"push\":{\"channel\":\"a\"}}\n{}\n")];
        let each = messages(&batch, false);
        assert_eq!(each.len(), 2);
        assert_eq!(each[0].as_str(), "{\"channel\":\"a\"}");
        let joined = messages(&batch, true);
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].as_str(), "{\"channel\":\"a\"}\n{}");
    }
}
