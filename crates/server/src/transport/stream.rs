//! The streaming-response side shared by the HTTP transports whose server-to-client half is
//! one long response body: HTTP-streaming and SSE (with emulation), uni_sse and
//! uni_http_stream.
//!
//! One task per connection owns the [`Session`]: it runs the connect, then writes what the
//! session's queue holds through the transport's [`Framer`] and, for emulation, feeds the
//! frames that `/emulation` requests deliver to the session's inbox, in order. The body is a
//! channel of one chunk: when the client stops reading, hyper stops taking chunks, the next
//! write waits past `write_timeout` and the connection is closed (a write error, 3009; nothing
//! is queued beyond the session's byte budget, whose overflow closes as slow, 3008). When the
//! client goes away the body is dropped and the session ends (close code 3000, no push).

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
        let gone = {
            let tx = tx.clone();
            async move { tx.closed().await }
        };
        let conn = Conn {
            sink: ChannelSink(tx),
            gone,
        };
        run(state, session, start, prelude, inbox, framer, conn).await;
    });
    Body::from_stream(body)
}

/// Where a stream's chunks go.
pub(crate) trait ChunkSink: Send {
    /// Writes one chunk within `timeout`; false when the client is gone or does not read.
    fn send(
        &mut self,
        chunk: Bytes,
        timeout: Duration,
    ) -> impl std::future::Future<Output = bool> + Send;
    /// Ends the response after the last chunk.
    fn finish(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// A stream's output and the future that resolves when its client went away.
pub(crate) struct Conn<S, G> {
    pub sink: S,
    pub gone: G,
}

/// Chunks into hyper's response body (one chunk in flight).
struct ChannelSink(mpsc::Sender<Bytes>);

impl ChunkSink for ChannelSink {
    async fn send(&mut self, chunk: Bytes, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.0.send(chunk)).await,
            Ok(Ok(()))
        )
    }

    async fn finish(&mut self) {}
}

/// HTTP/1.1 chunked transfer coding written straight to the socket: the stream requests that
/// `crate::http` serves itself, as it serves WebSocket upgrades (no HTTP connection state
/// stays alive for the stream). Each chunk goes out in one write (size line, data and CRLF
/// copied into a reused buffer: a copy is cheaper than three syscalls).
pub(crate) struct RawChunked<W> {
    w: W,
    buf: Vec<u8>,
}

impl<W> RawChunked<W> {
    pub(crate) fn new(w: W) -> Self {
        Self { w, buf: Vec::new() }
    }
}

/// A write buffer larger than this is not kept after a burst.
const KEEP_BUF: usize = 16 * 1024;

impl<W: tokio::io::AsyncWrite + Unpin + Send> ChunkSink for RawChunked<W> {
    async fn send(&mut self, chunk: Bytes, timeout: Duration) -> bool {
        use std::io::Write as _;
        use tokio::io::AsyncWriteExt;
        if chunk.is_empty() {
            return true; // an empty chunk would end the response
        }
        self.buf.clear();
        let _ = write!(self.buf, "{:x}\r\n", chunk.len());
        self.buf.extend_from_slice(&chunk);
        self.buf.extend_from_slice(b"\r\n");
        let write = async {
            self.w.write_all(&self.buf).await?;
            self.w.flush().await
        };
        let ok = matches!(tokio::time::timeout(timeout, write).await, Ok(Ok(())));
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        ok
    }

    async fn finish(&mut self) {
        use tokio::io::AsyncWriteExt;
        let end = async {
            self.w.write_all(b"0\r\n\r\n").await?;
            self.w.flush().await?;
            self.w.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), end).await;
    }
}

/// Resolves when the peer closes its side (or the connection fails); bytes it sends meanwhile
/// are read and dropped (a stream request has nothing more to say).
pub(crate) async fn peer_gone<R: tokio::io::AsyncRead + Unpin>(mut r: R) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Runs a stream connection to its end: the connect, then the session's output through
/// `framer` into `conn.sink`, and (emulation) the inbox's frames into the session.
pub(crate) async fn run(
    state: SharedState,
    mut session: Session,
    start: Start,
    prelude: Option<Bytes>,
    mut inbox: Option<EmulationInbox>,
    mut framer: impl Framer,
    conn: Conn<impl ChunkSink, impl std::future::Future<Output = ()>>,
) {
    let node = state.node.clone();
    let shared = session.shared().clone();
    let cfg = node.config();
    let write_timeout = cfg
        .client_message_write_timeout
        .max(Duration::from_millis(100));
    let Conn { mut sink, gone } = conn;
    tokio::pin!(gone);
    if let Some(p) = prelude {
        if !sink.send(p, write_timeout).await {
            Box::pin(session.close()).await;
            return;
        }
    }
    let mut reading = match start {
        // Boxed, as every command below: an idle stream should not carry a command's space.
        Start::Frame(frame) => Box::pin(session.handle_frame(&frame)).await,
        Start::Uni(req) => Box::pin(session.connect_unidirectional(req)).await.is_ok(),
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
                if !out.is_empty() && !sink.send(out.split().freeze(), write_timeout).await {
                    // Counted as a write error (3009) unless a close was already decided.
                    shared.write_failed();
                    break;
                }
                if close.is_some() {
                    shared.cancel.cancel();
                    sink.finish().await;
                    break;
                }
            }
            _ = &mut gone => {
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
    Box::pin(session.close()).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn raw_chunks_are_http_1_1_chunked_coding() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut sink = RawChunked::new(a);
        let t = Duration::from_secs(1);
        assert!(sink.send(Bytes::from_static(b"\r\n"), t).await);
        assert!(
            sink.send(Bytes::new(), t).await,
            "an empty chunk is skipped"
        );
        assert!(sink.send(Bytes::from(vec![b'x'; 26]), t).await);
        sink.finish().await;
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        let want = [&b"2\r\n\r\n\r\n1a\r\n"[..], &[b'x'; 26], b"\r\n0\r\n\r\n"].concat();
        assert_eq!(got, want);
    }
}
