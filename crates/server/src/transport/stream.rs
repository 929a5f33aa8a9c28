//! The streaming-response side shared by the HTTP transports whose server-to-client half is
//! one long response body: HTTP-streaming and SSE (with emulation), uni_sse and
//! uni_http_stream.
//!
//! One task per connection owns the [`Session`]: it runs the connect, then writes what the
//! session's queue holds through the transport's [`Framer`] and, for emulation, feeds the
//! frames that `/emulation` requests deliver to the session's inbox, in order. The body is a
//! channel of one chunk: when the client stops reading, hyper stops taking chunks, the next
//! write waits past `write_timeout` and the connection is closed (as slow, nothing queued
//! beyond the session's byte budget). When the client goes away the body is dropped and the
//! session ends (close code 3000, no push).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use rotor_core::emulation::EmulationInbox;
use rotor_core::writer::{CloseFrame, WriterStep};
use rotor_core::Session;
use rotor_protocol::codec::Encoder;
use rotor_protocol::{DisconnectKind, Encoding, Generation, PositionFormat, Push};
use tokio::sync::mpsc;

use crate::app::SharedState;

/// A transport's wire form of the session's output.
pub(crate) trait Framer: Send + 'static {
    /// Appends the wire form of `msgs` (each one or more whole encoded messages: replies,
    /// pushes, pings) to `out`.
    fn data(&mut self, msgs: &[Bytes], out: &mut BytesMut);
    /// Appends the last bytes of the stream for a server close (a disconnect push).
    fn close(&mut self, frame: &CloseFrame, out: &mut BytesMut);
}

/// How the connection starts inside its task.
pub(crate) enum Start {
    /// An emulation connection: its first inbound frame (the connect command).
    Frame(Bytes),
    /// A unidirectional connection: its bare connect request.
    Uni(rotor_protocol::ConnectRequest),
    /// Already connected by the handler (which needed the outcome for its HTTP status).
    Ready,
}

/// Spawns the connection's task and returns the response body it writes.
pub(crate) fn spawn(
    state: SharedState,
    session: Session,
    start: Start,
    prelude: Option<Bytes>,
    inbox: Option<EmulationInbox>,
    framer: impl Framer,
) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let tracked = state.connections.token();
    tokio::spawn(async move {
        let _tracked = tracked;
        run(state, session, start, prelude, inbox, framer, tx).await;
    });
    Body::from_stream(body)
}

async fn run(
    state: SharedState,
    mut session: Session,
    start: Start,
    prelude: Option<Bytes>,
    mut inbox: Option<EmulationInbox>,
    mut framer: impl Framer,
    tx: mpsc::Sender<Bytes>,
) {
    let node = state.node.clone();
    let shared = session.shared().clone();
    let cfg = node.config();
    let write_timeout = cfg
        .client_message_write_timeout
        .max(Duration::from_millis(100));
    let send = |chunk: Bytes| {
        let tx = &tx;
        async move {
            matches!(
                tokio::time::timeout(write_timeout, tx.send(chunk)).await,
                Ok(Ok(()))
            )
        }
    };
    if let Some(p) = prelude {
        if !send(p).await {
            session.close().await;
            return;
        }
    }
    let mut reading = match start {
        Start::Frame(frame) => session.handle_frame(&frame).await,
        Start::Uni(req) => session.connect_unidirectional(req).await.is_ok(),
        Start::Ready => true,
    };
    let shutdown = node.shutdown_token();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            biased;
            step = shared.queue.next(&mut batch) => {
                let close = match step {
                    WriterStep::Ping => continue,
                    WriterStep::Data => {
                        // Let the fan-out that woke us finish queueing: one chunk, not several.
                        tokio::task::yield_now().await;
                        shared.queue.take_more(&mut batch);
                        None
                    }
                    WriterStep::Close(frame) => Some(frame),
                };
                framer.data(&batch, &mut out);
                batch.clear();
                if let Some(Some(frame)) = &close {
                    framer.close(frame, &mut out);
                }
                if !out.is_empty() && !send(out.split().freeze()).await {
                    shared.cancel.cancel();
                    break;
                }
                if close.is_some() {
                    shared.cancel.cancel();
                    break;
                }
            }
            _ = tx.closed() => {
                // The client went away.
                shared.drop_transport();
                break;
            }
            _ = shutdown.cancelled(), if reading => {
                shared.disconnect(DisconnectKind::Shutdown);
                reading = false;
            }
            frame = recv(&mut inbox) => {
                match frame {
                    Some(f) => {
                        if reading {
                            reading = Box::pin(session.handle_frame(&f.data)).await;
                        }
                        let _ = f.done.send(());
                    }
                    None => inbox = None,
                }
            }
        }
    }
    drop(inbox);
    session.close().await;
}

/// The next frame of the inbox, or never without one.
async fn recv(inbox: &mut Option<EmulationInbox>) -> Option<rotor_core::emulation::EmulationFrame> {
    match inbox {
        Some(i) => i.recv().await,
        None => std::future::pending().await,
    }
}

/// The v2 disconnect push for `frame` in `encoding` (JSON line with `\n`, or a length-prefixed
/// Protobuf `Reply`), as the emulation transports end their stream.
pub(crate) fn disconnect_push(encoding: Encoding, frame: &CloseFrame) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    Encoder::new(Generation::V2, encoding, PositionFormat::Offset).push(
        &mut buf,
        &Push::Disconnect {
            code: frame.code,
            reason: &frame.reason,
        },
    );
    buf
}
