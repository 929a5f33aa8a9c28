//! One subscriber connection over any transport (`--transport`): raw WebSocket, HTTP-streaming
//! and SSE with emulation, SockJS over its WebSocket or xhr-streaming sub-transport. [`Conn`]
//! offers the WebSocket client's calls (messages borrowed from a reused buffer, `fill`, `send_text`
//! …), so the connection loop of `group.rs` is the same for all of them.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::sockjs::{SockJsWs, SockJsXhr};
use crate::stream::{Poster, StreamConn};
use crate::ws::{Msg, Target, WsConn};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Raw WebSocket (`--ws`).
    Websocket,
    /// HTTP-streaming (POST, `\n`-separated replies) with `/emulation` (v2).
    #[value(name = "http_stream")]
    HttpStream,
    /// Server-sent events (GET `?cf_connect=`) with `/emulation` (v2).
    Sse,
    /// SockJS xhr-streaming (+ xhr_send).
    SockjsXhr,
    /// SockJS over its WebSocket sub-transport.
    SockjsWs,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::HttpStream => "http_stream",
            Transport::Sse => "sse",
            Transport::SockjsXhr => "sockjs-xhr",
            Transport::SockjsWs => "sockjs-ws",
        }
    }

    fn default_path(self) -> &'static str {
        match self {
            Transport::Websocket => "/connection/websocket",
            Transport::HttpStream => "/connection/http_stream",
            Transport::Sse => "/connection/sse",
            Transport::SockjsXhr | Transport::SockjsWs => "/connection/sockjs",
        }
    }

    pub fn emulation(self) -> bool {
        matches!(self, Transport::HttpStream | Transport::Sse)
    }
}

/// The transport options of `fanout`, `channels`, `idle` and `emulation-rtt`.
#[derive(Args, Debug, Clone)]
pub struct TransportArgs {
    /// How subscribers connect.
    #[arg(long, value_enum, default_value_t = Transport::Websocket)]
    pub transport: Transport,
    /// The transport's URL (default: --ws's host with /connection/http_stream, /connection/sse
    /// or /connection/sockjs).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Emulation endpoint for http_stream and sse (default: --ws's host with /emulation).
    #[arg(long)]
    pub emulation: Option<String>,
    /// Keep-alive connections per process for the POSTs (/emulation, SockJS xhr_send).
    #[arg(long, default_value_t = 8)]
    pub post_conns: usize,
}

fn http_base(ws: &str) -> String {
    let rest = ws
        .strip_prefix("ws://")
        .or_else(|| ws.strip_prefix("http://"))
        .unwrap_or(ws);
    let host = rest.split('/').next().unwrap_or(rest);
    format!("http://{host}")
}

/// Everything a connection needs to dial its transport.
pub struct Dialer {
    pub transport: Transport,
    pub target: Target,
    poster: Option<Arc<Poster>>,
    emu_path: String,
}

impl Dialer {
    pub fn websocket(target: Target) -> Self {
        Dialer {
            transport: Transport::Websocket,
            target,
            poster: None,
            emu_path: String::new(),
        }
    }

    /// Resolves the endpoints of `args` (`ws` is the `--ws` URL); `proto` must be v2 for the
    /// emulation transports.
    pub async fn new(
        args: &TransportArgs,
        ws: &str,
        proto: crate::proto::Proto,
    ) -> Result<Self, String> {
        let t = args.transport;
        if t.emulation() && proto != crate::proto::Proto::V2 {
            return Err(format!("--transport {} needs --proto v2", t.name()));
        }
        let base = http_base(ws);
        let url = match (&args.endpoint, t) {
            (Some(u), _) => u.clone(),
            (None, Transport::Websocket) => ws.to_string(),
            (None, _) => format!("{base}{}", t.default_path()),
        };
        let target = Target::resolve(&url).await?;
        let (poster, emu_path) = match t {
            Transport::Websocket | Transport::SockjsWs => (None, String::new()),
            Transport::SockjsXhr => (
                Some(Arc::new(Poster::new(target.clone(), args.post_conns)?)),
                String::new(),
            ),
            Transport::HttpStream | Transport::Sse => {
                let emu = args
                    .emulation
                    .clone()
                    .unwrap_or_else(|| format!("{base}/emulation"));
                let et = Target::resolve(&emu).await?;
                let path = et.path.clone();
                (Some(Arc::new(Poster::new(et, args.post_conns)?)), path)
            }
        };
        Ok(Dialer {
            transport: t,
            target,
            poster,
            emu_path,
        })
    }
}

/// A connection over one of the transports.
pub enum Conn {
    Ws(WsConn),
    Stream(Box<StreamConn>),
    SockWs(SockJsWs),
    SockXhr(Box<SockJsXhr>),
}

impl Conn {
    /// Connects and sends `frame` (connect, then any subscribes, `\n`-separated) the way the
    /// transport does: in one message, or connect in the request and the rest through the
    /// emulation endpoint.
    pub async fn start(
        d: &Dialer,
        src: Option<IpAddr>,
        buf: usize,
        seed: u64,
        frame: &[u8],
    ) -> Result<Self, String> {
        let poster = || {
            d.poster
                .clone()
                .ok_or_else(|| "no POST pool for this transport".to_string())
        };
        Ok(match d.transport {
            Transport::Websocket => {
                let mut ws = WsConn::connect(&d.target, src, buf, seed).await?;
                ws.send_text(frame)
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                Conn::Ws(ws)
            }
            Transport::HttpStream | Transport::Sse => Conn::Stream(Box::new(
                StreamConn::start(
                    &d.target,
                    d.transport == Transport::Sse,
                    poster()?,
                    &d.emu_path,
                    src,
                    buf,
                    frame,
                )
                .await?,
            )),
            Transport::SockjsWs => {
                Conn::SockWs(SockJsWs::start(&d.target, src, buf, seed, frame).await?)
            }
            Transport::SockjsXhr => Conn::SockXhr(Box::new(
                SockJsXhr::start(&d.target, poster()?, src, buf, seed, frame).await?,
            )),
        })
    }

    pub fn next_msg(&mut self) -> io::Result<Option<Msg<'_>>> {
        match self {
            Conn::Ws(c) => c.next_msg(),
            Conn::Stream(c) => c.next_msg(),
            Conn::SockWs(c) => c.next_msg(),
            Conn::SockXhr(c) => c.next_msg(),
        }
    }

    pub async fn fill(&mut self) -> io::Result<usize> {
        match self {
            Conn::Ws(c) => c.fill().await,
            Conn::Stream(c) => c.fill().await,
            Conn::SockWs(c) => c.fill().await,
            Conn::SockXhr(c) => c.fill().await,
        }
    }

    /// Answers a WebSocket ping (the other transports have none at this level).
    pub async fn flush_control(&mut self) -> io::Result<()> {
        match self {
            Conn::Ws(c) => c.flush_control().await,
            Conn::SockWs(c) => c.flush_control().await,
            Conn::Stream(_) | Conn::SockXhr(_) => Ok(()),
        }
    }

    /// Sends one client frame.
    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        match self {
            Conn::Ws(c) => c.send_text(payload).await,
            Conn::Stream(c) => c.send_text(payload).await,
            Conn::SockWs(c) => c.send_text(payload).await,
            Conn::SockXhr(c) => c.send_text(payload).await,
        }
    }

    /// Goes away: a WebSocket close frame, or the streaming request dropped.
    pub async fn send_close(&mut self, code: u16) -> io::Result<()> {
        match self {
            Conn::Ws(c) => c.send_close(code).await,
            Conn::SockWs(c) => c.send_close(code).await,
            Conn::Stream(c) => {
                c.close().await;
                Ok(())
            }
            Conn::SockXhr(c) => {
                c.close().await;
                Ok(())
            }
        }
    }

    /// For the transports whose client messages are POSTs: the POST that carries `payload`
    /// (pool, path, body), to be sent apart while this connection keeps reading.
    pub fn detached_post(&mut self, payload: &[u8]) -> Option<(Arc<Poster>, String, bytes::Bytes)> {
        match self {
            Conn::Stream(c) => Some(c.emulation_post(payload)),
            Conn::SockXhr(c) => Some(c.send_post(payload)),
            Conn::Ws(_) | Conn::SockWs(_) => None,
        }
    }
}
