//! A small WebSocket client (RFC 6455) built for a load generator: one reused read buffer per
//! connection that takes in as many frames as one `read` returns and hands out borrowed
//! payloads (no allocation per message), masked client frames written from a reused buffer, and
//! pings answered by the connection itself. The handshake key and its check come from
//! `tungstenite`.

use std::io;
use std::net::{IpAddr, SocketAddr};

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Where to connect: resolved address, `Host` header and request path (with query).
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

impl Target {
    /// Parses `ws://host:port/path?query` (or `http://`) and resolves the host.
    pub async fn resolve(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("{url}: only ws:// and http:// URLs are supported"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .find(|a| a.is_ipv4())
            .ok_or_else(|| format!("{url}: no IPv4 address"))?;
        Ok(Self {
            addr,
            host: hostport.to_string(),
            path: path.to_string(),
        })
    }
}

/// Opens a TCP connection, bound to `src` (port chosen by the kernel) when given.
pub async fn dial(addr: SocketAddr, src: Option<IpAddr>) -> io::Result<TcpStream> {
    dial_with(addr, src, None).await
}

/// [`dial`] with the receive buffer fixed at `rcvbuf` bytes when given (the kernel then does
/// not grow it: a client that stops reading holds at most that much).
pub async fn dial_with(
    addr: SocketAddr,
    src: Option<IpAddr>,
    rcvbuf: Option<u32>,
) -> io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One complete message (or a close) taken from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// A text or binary message.
    Data(&'a [u8]),
    /// The peer sent a close frame with this code (1005 if none).
    Close(u16),
}

enum Step {
    Data(usize, usize),
    Fragmented,
    Close(u16),
    Continue,
}

pub struct WsConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes the next frame needs in the buffer (0 = unknown).
    need: usize,
    frag: Vec<u8>,
    in_frag: bool,
    out: Vec<u8>,
    pong: Option<Vec<u8>>,
    rng: u64,
}

/// Largest frame accepted from a server.
const MAX_FRAME: usize = 64 << 20;

impl WsConn {
    /// TCP connect and WebSocket handshake; `buf_size` is the initial read buffer (it grows
    /// when a frame needs more).
    pub async fn connect(
        target: &Target,
        src: Option<IpAddr>,
        buf_size: usize,
        seed: u64,
    ) -> Result<Self, String> {
        Self::connect_with(target, src, buf_size, seed, None).await
    }

    /// [`WsConn::connect`] with the socket's receive buffer fixed (see [`dial_with`]).
    pub async fn connect_with(
        target: &Target,
        src: Option<IpAddr>,
        buf_size: usize,
        seed: u64,
        rcvbuf: Option<u32>,
    ) -> Result<Self, String> {
        let stream = dial_with(target.addr, src, rcvbuf)
            .await
            .map_err(|e| format!("dial: {e}"))?;
        let mut ws = WsConn {
            stream,
            buf: vec![0; buf_size.max(512)],
            start: 0,
            end: 0,
            need: 0,
            frag: Vec::new(),
            in_frag: false,
            out: Vec::with_capacity(256),
            pong: None,
            rng: seed | 1,
        };
        ws.handshake(target).await?;
        Ok(ws)
    }

    async fn handshake(&mut self, target: &Target) -> Result<(), String> {
        let key = tungstenite::handshake::client::generate_key();
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.path, target.host
        );
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("handshake write: {e}"))?;
        let head_end = loop {
            if let Some(i) = memmem::find(&self.buf[..self.end], b"\r\n\r\n") {
                break i + 4;
            }
            if self.end == self.buf.len() {
                return Err("handshake: response headers too long".into());
            }
            let n = self
                .stream
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| format!("handshake read: {e}"))?;
            if n == 0 {
                return Err("handshake: connection closed".into());
            }
            self.end += n;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("");
        if status.split(' ').nth(1) != Some("101") {
            return Err(format!("handshake: {}", status.trim()));
        }
        let accept = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|(_, v)| v.trim().to_string())
            .ok_or("handshake: no Sec-WebSocket-Accept")?;
        if accept != tungstenite::handshake::derive_accept_key(key.as_bytes()) {
            return Err("handshake: wrong Sec-WebSocket-Accept".into());
        }
        self.start = head_end;
        Ok(())
    }

    /// Reads more bytes into the buffer (at least one), growing it if the next frame needs it.
    /// An orderly end of stream is an `UnexpectedEof` error.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let have = self.end - self.start;
        let want = self.need.max(have + 1);
        if self.buf.len() - self.start < want || self.buf.len() - self.end < 256 {
            // Move what is left to the front, then grow if that is still not enough room.
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = have;
            if self.buf.len() < want || self.buf.len() - self.end < 256 {
                let len = (self.buf.len() * 2).max(want + 256);
                self.buf.resize(len, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(n)
    }

    /// The next complete message in the buffer, if any. Pings are answered by
    /// [`WsConn::flush_control`]; pongs are skipped.
    pub fn next_msg(&mut self) -> io::Result<Option<Msg<'_>>> {
        loop {
            match self.parse_one()? {
                None => return Ok(None),
                Some(Step::Continue) => continue,
                Some(Step::Data(a, b)) => return Ok(Some(Msg::Data(&self.buf[a..b]))),
                Some(Step::Fragmented) => return Ok(Some(Msg::Data(&self.frag))),
                Some(Step::Close(c)) => return Ok(Some(Msg::Close(c))),
            }
        }
    }

    fn parse_one(&mut self) -> io::Result<Option<Step>> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 2 {
            self.need = 2;
            return Ok(None);
        }
        let (b0, b1) = (avail[0], avail[1]);
        let fin = b0 & 0x80 != 0;
        let op = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        let (len, mut hdr) = match b1 & 0x7f {
            126 => {
                if avail.len() < 4 {
                    self.need = 4;
                    return Ok(None);
                }
                (u16::from_be_bytes([avail[2], avail[3]]) as usize, 4)
            }
            127 => {
                if avail.len() < 10 {
                    self.need = 10;
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&avail[2..10]);
                let l = u64::from_be_bytes(b);
                if l > MAX_FRAME as u64 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "frame too large",
                    ));
                }
                (l as usize, 10)
            }
            n => (n as usize, 2),
        };
        let mask_at = hdr;
        if masked {
            hdr += 4;
        }
        if avail.len() < hdr + len {
            self.need = hdr + len;
            return Ok(None);
        }
        self.need = 0;
        let a = self.start + hdr;
        let b = a + len;
        if masked {
            let mut key = [0u8; 4];
            key.copy_from_slice(&self.buf[self.start + mask_at..self.start + mask_at + 4]);
            for (i, x) in self.buf[a..b].iter_mut().enumerate() {
                *x ^= key[i & 3];
            }
        }
        self.start = b;
        Ok(Some(match op {
            0x1 | 0x2 if fin => {
                self.in_frag = false;
                Step::Data(a, b)
            }
            0x1 | 0x2 => {
                self.frag.clear();
                self.frag.extend_from_slice(&self.buf[a..b]);
                self.in_frag = true;
                Step::Continue
            }
            0x0 if self.in_frag => {
                self.frag.extend_from_slice(&self.buf[a..b]);
                if fin {
                    self.in_frag = false;
                    Step::Fragmented
                } else {
                    Step::Continue
                }
            }
            0x8 => {
                let code = if len >= 2 {
                    u16::from_be_bytes([self.buf[a], self.buf[a + 1]])
                } else {
                    1005
                };
                Step::Close(code)
            }
            0x9 => {
                self.pong = Some(self.buf[a..b].to_vec());
                Step::Continue
            }
            0xA => Step::Continue,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected websocket opcode {op:#x}"),
                ))
            }
        }))
    }

    /// Answers a ping that arrived (if any).
    pub async fn flush_control(&mut self) -> io::Result<()> {
        if let Some(p) = self.pong.take() {
            self.send(0xA, &p).await?;
        }
        Ok(())
    }

    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(0x1, payload).await
    }

    pub async fn send_binary(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(0x2, payload).await
    }

    /// Sends a close frame with `code` (does not wait for the answer).
    pub async fn send_close(&mut self, code: u16) -> io::Result<()> {
        self.send(0x8, &code.to_be_bytes()).await
    }

    async fn send(&mut self, op: u8, payload: &[u8]) -> io::Result<()> {
        let mask = self.next_mask();
        self.out.clear();
        encode_client_frame(&mut self.out, op, payload, mask);
        self.stream.write_all(&self.out).await
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift64: masks only need to be unpredictable to intermediaries, not secret.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_be_bytes()
    }
}

/// Appends one final, masked client frame.
pub fn encode_client_frame(out: &mut Vec<u8>, op: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | op);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;

    #[test]
    fn client_frames_are_masked_with_the_right_length_encoding() {
        for n in [0usize, 5, 125, 126, 300, 65_535, 65_536] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_client_frame(&mut out, 0x1, &payload, [1, 2, 3, 4]);
            assert_eq!(out[0], 0x81);
            assert!(out[1] & 0x80 != 0);
            let hdr = match n {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), hdr + 4 + n);
            let unmasked: Vec<u8> = out[hdr + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i & 3])
                .collect();
            assert_eq!(unmasked, payload);
        }
    }

    /// Against a tungstenite server: handshake, messages of all sizes (many per read),
    /// a fragmented message, a ping answered with a pong, masked client frames, close.
    #[tokio::test]
    async fn talks_to_a_tungstenite_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            // Client's first message.
            let m = ws.next().await.unwrap().unwrap();
            assert_eq!(m, Message::Text("hello".into()));
            for n in [1usize, 100, 126, 70_000, 3] {
                ws.feed(Message::Text("x".repeat(n).into())).await.unwrap();
            }
            ws.flush().await.unwrap();
            ws.send(Message::Ping(b"pp".to_vec().into())).await.unwrap();
            // The pong comes back before the client's next text.
            let m = ws.next().await.unwrap().unwrap();
            assert_eq!(m, Message::Pong(b"pp".to_vec().into()));
            let m = ws.next().await.unwrap().unwrap();
            assert_eq!(m, Message::Text("after-ping".into()));
            // A fragmented message, written as raw frames.
            let raw = ws.get_mut();
            raw.write_all(&[0x01, 3, b'a', b'b', b'c', 0x80, 2, b'd', b'e'])
                .await
                .unwrap();
            raw.write_all(&[0x88, 2, 0x03, 0xe8]).await.unwrap();
            raw.flush().await.unwrap();
            // Close from the client.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(Some(f)))) => {
                        assert_eq!(u16::from(f.code), 1000);
                        break;
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("expected close, got {other:?}"),
                }
            }
        });

        let target = Target::resolve(&format!("ws://{addr}/connection/websocket"))
            .await
            .unwrap();
        let mut c = WsConn::connect(&target, None, 512, 7).await.unwrap();
        c.send_text(b"hello").await.unwrap();
        let mut got: Vec<usize> = Vec::new();
        while got.len() < 5 {
            while let Some(m) = c.next_msg().unwrap() {
                match m {
                    Msg::Data(p) => {
                        assert!(p.iter().all(|b| *b == b'x'));
                        got.push(p.len());
                    }
                    Msg::Close(c) => panic!("close {c}"),
                }
            }
            if got.len() < 5 {
                c.fill().await.unwrap();
            }
        }
        assert_eq!(got, vec![1, 100, 126, 70_000, 3]);
        // Ping: answered by flush_control once it has been read.
        while c.pong.is_none() {
            c.fill().await.unwrap();
            assert_eq!(c.next_msg().unwrap(), None);
        }
        c.flush_control().await.unwrap();
        c.send_text(b"after-ping").await.unwrap();
        let mut msgs = Vec::new();
        let close = loop {
            match c.next_msg().unwrap() {
                Some(Msg::Data(p)) => msgs.push(p.to_vec()),
                Some(Msg::Close(code)) => break code,
                None => {
                    c.fill().await.unwrap();
                }
            }
        };
        assert_eq!(msgs, vec![b"abcde".to_vec()]);
        assert_eq!(close, 1000);
        c.send_close(1000).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn handshake_rejection_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = tcp.read(&mut b).await;
            tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let target = Target::resolve(&format!("ws://{addr}/x")).await.unwrap();
        let err = WsConn::connect(&target, None, 512, 1).await.err().unwrap();
        assert!(err.contains("400"), "{err}");
    }
}
