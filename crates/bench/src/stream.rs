//! Streaming-response clients over a plain HTTP/1.1 TCP connection: the HTTP-streaming and SSE
//! transports of Centrifugo 4+ (bidirectional emulation: the connect command travels in the
//! request, later commands and pongs as `POST /emulation`), and the response reader the SockJS
//! xhr-streaming client shares.
//!
//! [`HttpReader`] writes one request and takes the response body in as it arrives (chunked,
//! length-delimited or close-delimited) into one reused buffer, so the transports' framers hand
//! out borrowed slices as the WebSocket client does. [`Poster`] is a small pool of keep-alive
//! connections for the POSTs the clients of one process send (as a browser shares its pool).

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::token::json_str;
use crate::ws::{dial, Msg, Target};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Waiting for a chunk-size line.
    Size,
    /// Bytes left in the current chunk.
    Data(usize),
    /// The CRLF after a chunk's data.
    Crlf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Chunked(Chunk),
    Length(usize),
    Close,
}

/// One HTTP/1.1 response read as a stream.
pub struct HttpReader {
    target: Target,
    src: Option<IpAddr>,
    stream: TcpStream,
    raw: Vec<u8>,
    rs: usize,
    re: usize,
    body: Vec<u8>,
    /// Unconsumed body is `body[bs..]`.
    bs: usize,
    framing: Framing,
    /// The response body has ended (the connection may be reused unless `close`).
    pub ended: bool,
    close: bool,
}

impl HttpReader {
    /// Dials, writes `request` (a complete HTTP/1.1 request), reads the head; anything but
    /// `200` is an error.
    pub async fn open(
        target: &Target,
        src: Option<IpAddr>,
        buf: usize,
        request: &[u8],
    ) -> Result<Self, String> {
        let stream = dial(target.addr, src)
            .await
            .map_err(|e| format!("dial: {e}"))?;
        let mut r = HttpReader {
            target: target.clone(),
            src,
            stream,
            raw: vec![0; buf.max(4096)],
            rs: 0,
            re: 0,
            body: Vec::with_capacity(buf.max(1024)),
            bs: 0,
            framing: Framing::Close,
            ended: false,
            close: false,
        };
        r.request(request).await?;
        Ok(r)
    }

    /// Sends another request on the same connection once the body has ended (a new
    /// connection when the server closes it), and reads its head.
    pub async fn reopen(&mut self, request: &[u8]) -> Result<(), String> {
        if self.close || !self.ended {
            self.stream = dial(self.target.addr, self.src)
                .await
                .map_err(|e| format!("redial: {e}"))?;
            self.rs = 0;
            self.re = 0;
        }
        self.ended = false;
        self.close = false;
        self.request(request).await
    }

    async fn request(&mut self, request: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| format!("request write: {e}"))?;
        let head_end = loop {
            if let Some(i) = memmem::find(&self.raw[self.rs..self.re], b"\r\n\r\n") {
                break self.rs + i + 4;
            }
            if self.re - self.rs > MAX_HEAD {
                return Err("response head too long".into());
            }
            self.read_raw()
                .await
                .map_err(|e| format!("head read: {e}"))?;
        };
        let head = String::from_utf8_lossy(&self.raw[self.rs..head_end]).into_owned();
        self.rs = head_end;
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("");
        let mut chunked = false;
        let mut length = None;
        self.close = status.starts_with("HTTP/1.0");
        for (k, v) in lines.filter_map(|l| l.split_once(':')) {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "transfer-encoding" => chunked = v.contains("chunked"),
                "content-length" => length = v.parse::<usize>().ok(),
                "connection" => self.close = v.contains("close"),
                _ => {}
            }
        }
        if status.split(' ').nth(1) != Some("200") {
            return Err(format!("HTTP {}", status.trim()));
        }
        self.framing = if chunked {
            Framing::Chunked(Chunk::Size)
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            self.close = true;
            Framing::Close
        };
        self.decode();
        Ok(())
    }

    async fn read_raw(&mut self) -> io::Result<usize> {
        if self.rs == self.re {
            self.rs = 0;
            self.re = 0;
        } else if self.raw.len() - self.re < 1024 {
            self.raw.copy_within(self.rs..self.re, 0);
            self.re -= self.rs;
            self.rs = 0;
            if self.raw.len() - self.re < 1024 {
                let n = self.raw.len() * 2;
                self.raw.resize(n, 0);
            }
        }
        let n = self.stream.read(&mut self.raw[self.re..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.re += n;
        Ok(n)
    }

    /// Moves what the raw buffer holds of the body into `body`.
    fn decode(&mut self) {
        if self.bs > 0 && self.bs == self.body.len() {
            self.body.clear();
            self.bs = 0;
        } else if self.bs > 64 << 10 {
            self.body.drain(..self.bs);
            self.bs = 0;
        }
        loop {
            let avail = &self.raw[self.rs..self.re];
            match self.framing {
                Framing::Close => {
                    self.body.extend_from_slice(avail);
                    self.rs = self.re;
                    return;
                }
                Framing::Length(n) => {
                    let k = n.min(avail.len());
                    self.body.extend_from_slice(&avail[..k]);
                    self.rs += k;
                    self.framing = Framing::Length(n - k);
                    if n == k {
                        self.ended = true;
                    }
                    return;
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(i) = memmem::find(avail, b"\r\n") else {
                        return;
                    };
                    let line = &avail[..i];
                    let hex = line.split(|b| *b == b';').next().unwrap_or(b"");
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
                    self.rs += i + 2;
                    match size {
                        Some(0) | None => {
                            // Last chunk (trailers, if any, are not read) or a broken size.
                            self.ended = true;
                            self.close |= size.is_none();
                            if size.is_some() && self.raw[self.rs..self.re].starts_with(b"\r\n") {
                                self.rs += 2;
                            }
                            return;
                        }
                        Some(n) => self.framing = Framing::Chunked(Chunk::Data(n)),
                    }
                }
                Framing::Chunked(Chunk::Data(n)) => {
                    if avail.is_empty() {
                        return;
                    }
                    let k = n.min(avail.len());
                    self.body.extend_from_slice(&avail[..k]);
                    self.rs += k;
                    self.framing = Framing::Chunked(if k == n {
                        Chunk::Crlf
                    } else {
                        Chunk::Data(n - k)
                    });
                }
                Framing::Chunked(Chunk::Crlf) => {
                    if avail.len() < 2 {
                        return;
                    }
                    self.rs += 2;
                    self.framing = Framing::Chunked(Chunk::Size);
                }
            }
        }
    }

    /// Reads more of the body (at least one byte of the connection). An ended body is an
    /// `UnexpectedEof` error; so is the server closing the connection.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.ended {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match self.read_raw().await {
            Ok(n) => {
                self.decode();
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.ended = true;
                self.close = true;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The body received and not consumed yet.
    pub fn body(&self) -> &[u8] {
        &self.body[self.bs..]
    }

    /// Consumes `n` bytes of [`HttpReader::body`] and returns them.
    pub fn take(&mut self, n: usize) -> &[u8] {
        let a = self.bs;
        self.bs = (a + n).min(self.body.len());
        &self.body[a..self.bs]
    }

    /// Drops the connection (how a streaming client goes away).
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// A few keep-alive HTTP/1.1 connections shared by the clients of one process for their
/// POSTs (`/emulation`, SockJS `xhr_send`), each used by one request at a time.
pub struct Poster {
    target: Target,
    host: HeaderValue,
    slots: Vec<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>>,
    next: AtomicUsize,
}

impl Poster {
    pub fn new(target: Target, conns: usize) -> Result<Self, String> {
        Ok(Self {
            host: HeaderValue::from_str(&target.host).map_err(|e| format!("host: {e}"))?,
            target,
            slots: (0..conns.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// POSTs `body` to `path`; a status other than `want` is an error.
    pub async fn post(&self, path: &str, body: Bytes, want: u16) -> io::Result<()> {
        let i = self.next.fetch_add(1, Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if slot.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = dial(self.target.addr, None).await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(io::Error::other)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            *slot = Some(sender);
        }
        let Some(sender) = slot.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        let res: Result<u16, String> = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let req = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(HOST, self.host.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok(status)
        }
        .await;
        match res {
            Ok(s) if s == want => Ok(()),
            Ok(s) => Err(io::Error::other(format!("POST {path}: HTTP {s}"))),
            Err(e) => {
                *slot = None;
                Err(io::Error::other(format!("POST {path}: {e}")))
            }
        }
    }
}

/// `application/x-www-form-urlencoded` value encoding (what `URLSearchParams` writes).
pub fn form_encode(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The value of `"key":"..."` in a reply line.
fn str_field<'a>(line: &'a [u8], key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let i = memmem::find(line, pat.as_bytes())? + pat.len();
    let j = memchr::memchr(b'"', line.get(i..)?)?;
    std::str::from_utf8(line.get(i..i + j)?).ok()
}

/// The code of a disconnect push in a batch of replies, if any.
fn disconnect_code(data: &[u8]) -> Option<u16> {
    let i = memmem::find(data, b"\"disconnect\":{\"code\":")? + 21;
    crate::proto::parse_uint(data.get(i..)?).map(|(c, _)| c as u16)
}

/// An HTTP-streaming or SSE client with bidirectional emulation.
pub struct StreamConn {
    http: HttpReader,
    sse: bool,
    poster: std::sync::Arc<Poster>,
    emu_path: String,
    session: String,
    node: String,
    /// SSE: the events' data lines of one batch.
    out: Vec<u8>,
    disconnect: Option<u16>,
    post: Vec<u8>,
}

impl StreamConn {
    /// Opens the stream with the first command of `frame` (connect) in the request, waits for
    /// the connect reply (its `session` and `node`), then sends the rest of `frame` through
    /// the emulation endpoint. Data already received stays for [`StreamConn::next_msg`].
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        target: &Target,
        sse: bool,
        poster: std::sync::Arc<Poster>,
        emu_path: &str,
        src: Option<IpAddr>,
        buf: usize,
        frame: &[u8],
    ) -> Result<Self, String> {
        let (connect, rest) = match memchr::memchr(b'\n', frame) {
            Some(i) => (&frame[..i], &frame[i + 1..]),
            None => (frame, &b""[..]),
        };
        let req = if sse {
            let sep = if target.path.contains('?') { '&' } else { '?' };
            format!(
                "GET {}{sep}cf_connect={} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
                target.path,
                form_encode(connect),
                target.host
            )
            .into_bytes()
        } else {
            let mut r = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Accept: application/json\r\nContent-Length: {}\r\n\r\n",
                target.path,
                target.host,
                connect.len()
            )
            .into_bytes();
            r.extend_from_slice(connect);
            r
        };
        let mut http = HttpReader::open(target, src, buf, &req).await?;
        let (session, node) = loop {
            let body = http.body();
            let line = body
                .split(|b| *b == b'\n')
                .find(|l| memmem::find(l, b"\"id\":1,").is_some() && l.ends_with(b"}"));
            if let Some(l) = line {
                if memmem::find(l, b"\"error\":").is_some() {
                    return Err(format!("connect: {}", String::from_utf8_lossy(l)));
                }
                let s = str_field(l, "session").ok_or("connect reply without session")?;
                let n = str_field(l, "node").ok_or("connect reply without node")?;
                break (s.to_string(), n.to_string());
            }
            if let Some(c) = disconnect_code(body) {
                return Err(format!("disconnected with {c} while connecting"));
            }
            http.fill()
                .await
                .map_err(|e| format!("waiting for the connect reply: {e}"))?;
        };
        let mut c = StreamConn {
            http,
            sse,
            poster,
            emu_path: emu_path.to_string(),
            session,
            node,
            out: Vec::with_capacity(1024),
            disconnect: None,
            post: Vec::with_capacity(512),
        };
        if !rest.is_empty() {
            c.send_text(rest)
                .await
                .map_err(|e| format!("emulation: {e}"))?;
        }
        Ok(c)
    }

    /// Every complete line received since the last call, as one message (SSE: the events'
    /// data); a `Close` once the response has ended (the disconnect push's code, or 1006).
    pub fn next_msg(&mut self) -> io::Result<Option<Msg<'_>>> {
        let Some(last) = memchr::memrchr(b'\n', self.http.body()) else {
            if self.http.ended {
                return Ok(Some(Msg::Close(self.disconnect.unwrap_or(1006))));
            }
            return Ok(None);
        };
        let disc = disconnect_code(&self.http.body()[..=last]);
        if disc.is_some() {
            self.disconnect = disc;
        }
        if !self.sse {
            return Ok(Some(Msg::Data(self.http.take(last + 1))));
        }
        self.out.clear();
        let lines = self.http.take(last + 1);
        for l in lines.split(|b| *b == b'\n') {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            if let Some(d) = l.strip_prefix(b"data:") {
                self.out
                    .extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
                self.out.push(b'\n');
            }
        }
        if self.out.is_empty() {
            return self.next_msg();
        }
        Ok(Some(Msg::Data(&self.out)))
    }

    pub async fn fill(&mut self) -> io::Result<usize> {
        self.http.fill().await
    }

    /// Sends commands (a client frame) as `POST /emulation`.
    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        let (poster, path, body) = self.emulation_post(payload);
        poster.post(&path, body, 204).await
    }

    /// The `POST /emulation` that carries `payload`: pool, path, body.
    pub fn emulation_post(&mut self, payload: &[u8]) -> (std::sync::Arc<Poster>, String, Bytes) {
        self.post.clear();
        self.post.extend_from_slice(b"{\"session\":");
        self.post
            .extend_from_slice(json_str(&self.session).as_bytes());
        self.post.extend_from_slice(b",\"node\":");
        self.post.extend_from_slice(json_str(&self.node).as_bytes());
        self.post.extend_from_slice(b",\"data\":");
        self.post
            .extend_from_slice(json_str(&String::from_utf8_lossy(payload)).as_bytes());
        self.post.push(b'}');
        (
            self.poster.clone(),
            self.emu_path.clone(),
            Bytes::copy_from_slice(&self.post),
        )
    }

    pub async fn close(&mut self) {
        self.http.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server writing `response` in pieces of `step` bytes.
    async fn serve(response: Vec<u8>, step: usize) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b).await;
            for c in response.chunks(step) {
                s.write_all(c).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        Target::resolve(&format!("http://{addr}/x")).await.unwrap()
    }

    #[tokio::test]
    async fn chunked_body_in_any_pieces() {
        for step in [1usize, 3, 7, 1000] {
            let resp = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n"
                .to_vec();
            let t = serve(resp, step).await;
            let mut r = HttpReader::open(&t, None, 16, b"GET / HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            while !r.ended {
                r.fill().await.unwrap();
            }
            assert_eq!(r.body(), b"hello world", "step {step}");
            assert!(r.fill().await.is_err());
        }
    }

    #[tokio::test]
    async fn refused_status_is_an_error() {
        let t = serve(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
            100,
        )
        .await;
        let e = HttpReader::open(&t, None, 16, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .err()
            .unwrap();
        assert!(e.contains("404"), "{e}");
    }

    #[test]
    fn encodings() {
        assert_eq!(form_encode(br#"{"a":"b c"}"#), "%7B%22a%22%3A%22b+c%22%7D");
        let l = br#"{"id":1,"connect":{"client":"c","session":"s-1","node":"n1"}}"#;
        assert_eq!(str_field(l, "session"), Some("s-1"));
        assert_eq!(str_field(l, "node"), Some("n1"));
        assert_eq!(
            disconnect_code(br#"{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}"#),
            Some(3001)
        );
    }
}
