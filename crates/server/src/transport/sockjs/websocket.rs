//! The SockJS WebSocket sub-transport (`/<server>/<session>/websocket`, TRANSPORTS.md §1.4
//! "WS sub-transport", trap 11): each connection is a fresh session whatever its id. The
//! server sends `o` at once, then `a[...]` frames and `h` heartbeats as text messages; every
//! client message must be a JSON array of strings (each element one client frame), anything
//! else ends the connection. A close is the text frame `c[code,"reason"]` and then the TCP
//! connection is dropped, without a WebSocket close frame, as sockjs-go does.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rotor_core::writer::WriterStep;
use rotor_core::Session;
use rotor_protocol::{DisconnectKind, Encoding, Generation};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use super::frames;
use super::session::data_frame;
use crate::app::SharedState;
use crate::transport::websocket::{handshake, switching_response, BackendHeaders};

/// Upgrades the request and serves the connection.
pub(crate) async fn handler(state: SharedState, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let is_get = parts.method == axum::http::Method::GET;
    let accepted = match handshake(&state, is_get, parts.uri.query(), &parts.headers) {
        Ok(a) => a,
        Err(refused) => {
            if refused.status == StatusCode::FORBIDDEN {
                // sockjs-go's upgrader writes nothing for a refused Origin.
                return StatusCode::FORBIDDEN.into_response();
            }
            return refused.into_response();
        }
    };
    let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes().trim_ascii());
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "connection cannot be upgraded",
        )
            .into_response();
    };
    let (forced, _, headers) = accepted.into_parts();
    switching_response(&accept, None, on_upgrade, "sockjs", move |io| async move {
        let config = socket_config(&state);
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        serve(socket, state, forced, headers.into_headers()).await;
    })
}

fn socket_config(state: &SharedState) -> WebSocketConfig {
    // A client message holds a JSON array of quoted client frames: allow for the quoting.
    let max = state
        .node
        .config()
        .client_request_max_size
        .saturating_mul(2);
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

async fn serve<S>(
    mut socket: WebSocketStream<S>,
    state: SharedState,
    forced: Option<Generation>,
    headers: BackendHeaders,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _tracked = state.connections.token();
    let node = state.node.clone();
    let mut session = node.new_session_on(&rotor_core::transport::SOCKJS, forced, Encoding::Json);
    if let Some(headers) = headers {
        let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        session.set_transport("sockjs", pairs);
    }
    let shared = session.shared().clone();
    let cfg = node.config();
    let write_timeout = cfg
        .client_message_write_timeout
        .max(Duration::from_millis(100));
    let heartbeat_delay = state.settings.transports.sockjs.heartbeat_delay;
    let stale_at = Instant::now() + cfg.client_stale_close_delay;
    let shutdown = node.shutdown_token();
    let mut next_heartbeat = Instant::now() + heartbeat_delay;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut reading = true;
    if !send(
        &mut socket,
        &shared,
        frames::OPEN.to_string(),
        write_timeout,
    )
    .await
    {
        session.close().await;
        return;
    }
    loop {
        tokio::select! {
            biased;
            step = shared.queue.next(&mut batch) => {
                let close = match step {
                    WriterStep::Ping => continue,
                    WriterStep::Data => {
                        tokio::task::yield_now().await;
                        shared.queue.take_more(&mut batch);
                        None
                    }
                    WriterStep::Close(frame) => Some(frame),
                };
                if !batch.is_empty() {
                    let frame = data_frame(&batch, shared.generation());
                    batch.clear();
                    if !send(&mut socket, &shared, frame, write_timeout).await {
                        break;
                    }
                }
                if let Some(frame) = close {
                    if let Some(f) = frame {
                        let _ = send(&mut socket, &shared, frames::close(f.code, &f.reason), write_timeout).await;
                    }
                    // No WebSocket close frame: the TCP connection is dropped.
                    shared.cancel.cancel();
                    break;
                }
            }
            _ = tokio::time::sleep_until(next_heartbeat), if !heartbeat_delay.is_zero() => {
                next_heartbeat = Instant::now() + heartbeat_delay;
                if !send(&mut socket, &shared, frames::HEARTBEAT.to_string(), write_timeout).await {
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
            m = socket.next(), if reading => {
                reading = Box::pin(read(&mut session, m)).await;
                if !reading && !shared.queue.is_closing() {
                    shared.drop_transport();
                }
            }
        }
    }
    drop(socket);
    session.close().await;
}

/// Handles one inbound WebSocket message; false once the connection stops reading.
async fn read(session: &mut Session, m: Option<Result<Message, tungstenite::Error>>) -> bool {
    let text = match m {
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
            session.touch();
            return true;
        }
        // Binary messages are not SockJS; a close, an error or the end stop the connection.
        _ => {
            session.shared().drop_transport();
            return false;
        }
    };
    if text.is_empty() {
        // The protocol suite wants empty messages ignored.
        return true;
    }
    let Ok(messages) = frames::parse_messages(text.as_bytes()) else {
        // Not a JSON array of strings: the connection ends (no close frame, trap 11).
        session.shared().drop_transport();
        return false;
    };
    for m in messages {
        if !session.handle_frame(m.as_bytes()).await {
            return false;
        }
    }
    true
}

/// Writes one SockJS frame within `timeout` (see `ClientShared::write_within`).
async fn send<S>(
    socket: &mut WebSocketStream<S>,
    shared: &rotor_core::ClientShared,
    frame: String,
    timeout: Duration,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let write = socket.send(Message::Text(Utf8Bytes::from(frame)));
    shared.write_within(timeout, write).await
}
