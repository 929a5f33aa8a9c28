//! The HTTP/1.1 accept loop.
//!
//! A real-time connection makes exactly one HTTP request, the WebSocket upgrade (or an SSE
//! stream request), so when the first request of a connection is that upgrade (or a plain SSE
//! `GET`) it is answered here, in the connection's own task: no HTTP connection task handing the socket over to an upgrade task, no request and
//! header-map allocations. Everything else (the server API, health, metrics, admin, and an
//! upgrade that comes later on a keep-alive connection) goes to hyper and the axum router, with
//! the bytes already read replayed in front of the stream.
//!
//! Plain HTTP/1.1 only, as Centrifugo serves it without TLS: no h2c prior-knowledge sniffing,
//! which would cost an extra read of every connection's first 24 bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use bytes::{Buf, Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::SharedState;
use crate::transport::emulation::sse::FastSse;
use crate::transport::websocket::{self as ws, Refused};

/// First read of a connection; a browser's upgrade request with cookies fits.
const HEAD_BUFFER: usize = 1024;
/// A first request head larger than this goes to hyper, whose own limits apply.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed on the fast path; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
/// A connection that has not sent its first request head by then is closed; hyper applies the
/// same bound to every later request head of a keep-alive connection (slow-loris).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head hyper reads (431 beyond), and its header count (431 beyond).
const MAX_HTTP_HEAD: usize = 64 * 1024;
const MAX_HTTP_HEADERS: usize = 100;

/// Serves `app` on `listener` until `stop` is cancelled, then lets the HTTP connections finish
/// their requests. With `ws`, upgrades to its `websocket_handler_prefix` take the fast path.
pub fn spawn<L: Listener<Addr = std::net::SocketAddr>>(
    mut listener: L,
    app: Router,
    ws: Option<SharedState>,
    stop: CancellationToken,
) -> JoinHandle<io::Result<()>> {
    tokio::spawn(async move {
        let connections = TaskTracker::new();
        loop {
            let (io, peer) = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let conn = connection(io, peer, app.clone(), ws.clone(), stop.clone());
            connections.spawn(conn);
        }
        drop(listener);
        connections.close();
        connections.wait().await;
        Ok(())
    })
}

/// What the first request head of a connection turned out to be.
enum First {
    /// The peer closed, failed or stalled before sending a complete head.
    Gone,
    /// A WebSocket upgrade on our path, and the head's length.
    Upgrade(Result<ws::Accepted, Refused>, usize),
    /// An SSE stream request (`GET /connection/sse?cf_connect=...`), served here too.
    Sse(Box<FastSse>),
    /// Anything else: hyper's.
    Http,
}

async fn connection<S>(
    mut io: S,
    peer: std::net::SocketAddr,
    app: Router,
    ws: Option<SharedState>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut head = BytesMut::new();
    if let Some(state) = ws {
        let first = tokio::time::timeout(HEAD_TIMEOUT, read_first(&mut io, &mut head, &state))
            .await
            .unwrap_or(First::Gone);
        match first {
            First::Gone => return,
            First::Upgrade(Ok(accepted), len) => {
                // Nothing of the HTTP side stays alive for the connection's lifetime.
                drop((app, stop));
                let response = accepted.response_head();
                let (forced, encoding, headers) = accepted.into_parts();
                // Flushed: over TLS the record may otherwise wait in the session's buffer.
                if io.write_all(&response).await.is_err() || io.flush().await.is_err() {
                    return;
                }
                drop(response);
                let leftover = head.split_off(len).to_vec();
                drop(head);
                ws::run(io, leftover, state, forced, encoding, headers).await;
                return;
            }
            First::Upgrade(Err(refused), _) => {
                if io.write_all(&refusal(&refused)).await.is_ok() {
                    let _ = io.shutdown().await;
                }
                return;
            }
            First::Sse(sse) => {
                drop((app, stop));
                drop(head);
                if let Err(r) = state.limits.admit(&state.connections) {
                    let refused = Refused {
                        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        reason: r.reason(),
                    };
                    if io.write_all(&refusal(&refused)).await.is_ok() {
                        let _ = io.shutdown().await;
                    }
                    return;
                }
                // Boxed, as hyper's side below: a WebSocket connection's task should not carry
                // the stream driver's space.
                Box::pin(sse.serve(io, state)).await;
                return;
            }
            First::Http => {}
        }
    }
    // Boxed: hyper's connection state is large, and a WebSocket connection's task, which lives
    // on in this future, should not carry its space.
    Box::pin(serve_http(
        Rewind {
            prefix: head.freeze(),
            inner: io,
        },
        peer,
        app,
        stop,
    ))
    .await;
}

/// Reads until the first request head is complete and classifies it.
async fn read_first<S>(io: &mut S, head: &mut BytesMut, state: &SharedState) -> First
where
    S: AsyncRead + Unpin,
{
    head.reserve(HEAD_BUFFER);
    loop {
        match io.read_buf(head).await {
            Ok(0) | Err(_) => return First::Gone,
            Ok(_) => {}
        }
        if let Some(first) = classify(head, state) {
            return first;
        }
        if head.capacity() == head.len() {
            head.reserve(HEAD_BUFFER);
        }
    }
}

/// Classifies a complete head; `None` while it is incomplete. Not async: the parsed headers
/// stay on the stack instead of in every connection's future.
fn classify(head: &[u8], state: &SharedState) -> Option<First> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(len)) => {
            let target = req.path.unwrap_or("");
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            let t = &state.settings.transports;
            if req.version == Some(1)
                && t.sse.enabled
                && req.method == Some("GET")
                && path == t.sse.handler_prefix
            {
                return Some(match FastSse::from_head(state, query, req.headers) {
                    Some(sse) => First::Sse(Box::new(sse)),
                    None => First::Http,
                });
            }
            let ours = req.version == Some(1)
                && !state.settings.websocket_disable
                && path == state.settings.websocket_handler_prefix
                && req
                    .headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
            if !ours {
                return Some(First::Http);
            }
            let is_get = req.method == Some("GET");
            Some(First::Upgrade(
                ws::handshake(state, is_get, query, req.headers),
                len,
            ))
        }
        Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => None,
        // Too large, too many headers or malformed: hyper answers it.
        _ => Some(First::Http),
    }
}

/// A refused upgrade's response; the connection closes after it.
fn refusal(r: &Refused) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        r.status.as_u16(),
        r.status.canonical_reason().unwrap_or(""),
        r.reason.len()
    );
    if r.status == axum::http::StatusCode::UPGRADE_REQUIRED {
        out.push_str("sec-websocket-version: 13\r\n");
    }
    out.push_str("\r\n");
    out.push_str(r.reason);
    out.into_bytes()
}

/// Runs hyper's HTTP/1.1 connection (with upgrades) until it ends; on `stop`, in-flight
/// requests finish and idle keep-alive connections close. Handlers find the peer's address as
/// `ConnectInfo<SocketAddr>` (the admin login's rate limit keys on it).
async fn serve_http<S>(io: S, peer: std::net::SocketAddr, app: Router, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let app = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    });
    let service = TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(MAX_HTTP_HEAD)
        .max_headers(MAX_HTTP_HEADERS)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(error = %e, "http connection ended with an error");
    }
}

/// A stream that first yields bytes already read from it.
struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewind_replays_the_prefix_then_reads_on() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut r = Rewind {
            prefix: Bytes::from_static(b"hello"),
            inner: b,
        };
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[test]
    fn refusal_is_a_complete_response() {
        let r = Refused {
            status: axum::http::StatusCode::UPGRADE_REQUIRED,
            reason: "Sec-WebSocket-Version must be 13",
        };
        let text = String::from_utf8(refusal(&r)).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("content-length: 32\r\n"));
        assert!(text.contains("sec-websocket-version: 13\r\n"));
        assert!(text.ends_with("\r\n\r\nSec-WebSocket-Version must be 13"));
    }
}
