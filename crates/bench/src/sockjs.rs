//! SockJS clients (TRANSPORTS.md §1.4) for the two sub-transports a Node sockjs-client uses
//! first: `websocket` (`<base>/<server>/<session>/websocket`, one SockJS frame per WebSocket
//! text message, client sends `["..."]`) and `xhr_streaming` (a POST answered with a prelude of
//! 2048 `h` and then frames, one per `\n`-ended line; the response ends after a byte limit and
//! the client opens the next one on the same session; client messages are `POST xhr_send`).
//!
//! Frames: `o` open, `h` heartbeat, `a[...]` messages (JSON strings: unescaped into one reused
//! buffer, one line per message, so the scans over replies and publications work as on a
//! WebSocket), `c[code,"reason"]` close.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::stream::{HttpReader, Poster};
use crate::token::json_str;
use crate::ws::{Msg, Target, WsConn};

/// What one SockJS frame was.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Open,
    Heartbeat,
    /// Messages appended to the output buffer.
    Data,
    Close(u16),
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sockjs: {what}"))
}

/// Decodes one frame; the messages of an `a` frame are appended to `out`, each ending in `\n`.
pub fn decode_frame(f: &[u8], out: &mut Vec<u8>) -> io::Result<Frame> {
    let f = f.strip_suffix(b"\r").unwrap_or(f);
    match f.first() {
        Some(b'o') => Ok(Frame::Open),
        Some(b'h') => Ok(Frame::Heartbeat),
        Some(b'c') => {
            let code = f
                .get(2..)
                .and_then(crate::proto::parse_uint)
                .map(|(c, _)| c as u16)
                .ok_or_else(|| bad("close frame without a code"))?;
            Ok(Frame::Close(code))
        }
        Some(b'a') => {
            decode_array(f.get(1..).unwrap_or(b""), out)?;
            Ok(Frame::Data)
        }
        Some(b'm') => {
            let mut p = 1;
            decode_string(f, &mut p, out)?;
            end_message(out);
            Ok(Frame::Data)
        }
        _ => Err(bad(&format!(
            "unknown frame {:?}",
            String::from_utf8_lossy(&f[..f.len().min(40)])
        ))),
    }
}

fn end_message(out: &mut Vec<u8>) {
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
}

fn skip_ws(s: &[u8], p: &mut usize) {
    while s.get(*p).is_some_and(|b| b.is_ascii_whitespace()) {
        *p += 1;
    }
}

/// A JSON array of strings.
fn decode_array(s: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let mut p = 0;
    skip_ws(s, &mut p);
    if s.get(p) != Some(&b'[') {
        return Err(bad("array expected"));
    }
    p += 1;
    skip_ws(s, &mut p);
    if s.get(p) == Some(&b']') {
        return Ok(());
    }
    loop {
        skip_ws(s, &mut p);
        decode_string(s, &mut p, out)?;
        end_message(out);
        skip_ws(s, &mut p);
        match s.get(p) {
            Some(b',') => p += 1,
            Some(b']') => return Ok(()),
            _ => return Err(bad("broken array")),
        }
    }
}

fn hex4(s: &[u8], p: usize) -> io::Result<u32> {
    let h = s.get(p..p + 4).ok_or_else(|| bad("short \\u escape"))?;
    let h = std::str::from_utf8(h).map_err(|_| bad("bad \\u escape"))?;
    u32::from_str_radix(h, 16).map_err(|_| bad("bad \\u escape"))
}

/// A JSON string at `s[*p]` (the opening quote), unescaped onto `out`.
fn decode_string(s: &[u8], p: &mut usize, out: &mut Vec<u8>) -> io::Result<()> {
    if s.get(*p) != Some(&b'"') {
        return Err(bad("string expected"));
    }
    *p += 1;
    loop {
        let rest = s.get(*p..).ok_or_else(|| bad("unterminated string"))?;
        let Some(i) = memchr::memchr2(b'"', b'\\', rest) else {
            return Err(bad("unterminated string"));
        };
        out.extend_from_slice(&rest[..i]);
        *p += i;
        if s[*p] == b'"' {
            *p += 1;
            return Ok(());
        }
        let e = *s.get(*p + 1).ok_or_else(|| bad("unterminated escape"))?;
        *p += 2;
        match e {
            b'"' | b'\\' | b'/' => out.push(e),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'u' => {
                let mut c = hex4(s, *p)?;
                *p += 4;
                if (0xD800..0xDC00).contains(&c) && s.get(*p..*p + 2) == Some(b"\\u") {
                    let lo = hex4(s, *p + 2)?;
                    if (0xDC00..0xE000).contains(&lo) {
                        c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                        *p += 6;
                    }
                }
                let ch = char::from_u32(c).unwrap_or('\u{FFFD}');
                let mut b = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            }
            _ => return Err(bad("unknown escape")),
        }
    }
}

/// `["<payload>"]`: one client message.
pub fn encode_send(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 16);
    v.push(b'[');
    v.extend_from_slice(json_str(&String::from_utf8_lossy(payload)).as_bytes());
    v.push(b']');
    v
}

/// `<base>/<server>/<session>/<suffix>` with the base's query kept at the end.
pub fn session_path(base: &str, seed: u64, suffix: &str) -> String {
    const ALPHA: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz012345";
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (base, String::new()),
    };
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut sess = String::with_capacity(8);
    for _ in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sess.push(ALPHA[(x & 31) as usize] as char);
    }
    format!(
        "{}/{:03}/{sess}/{suffix}{query}",
        path.trim_end_matches('/'),
        seed % 1000
    )
}

/// The WebSocket sub-transport.
pub struct SockJsWs {
    ws: WsConn,
    dec: Vec<u8>,
}

impl SockJsWs {
    /// Opens the socket, waits for `o`, sends `frame` as one message.
    pub async fn start(
        target: &Target,
        src: Option<IpAddr>,
        buf: usize,
        seed: u64,
        frame: &[u8],
    ) -> Result<Self, String> {
        let t = Target {
            path: session_path(&target.path, seed, "websocket"),
            ..target.clone()
        };
        let ws = WsConn::connect(&t, src, buf, seed).await?;
        let mut c = SockJsWs {
            ws,
            dec: Vec::with_capacity(1024),
        };
        loop {
            let f = match c.ws.next_msg().map_err(|e| format!("read: {e}"))? {
                Some(Msg::Data(p)) => decode_frame(p, &mut c.dec).map_err(|e| e.to_string())?,
                Some(Msg::Close(code)) => return Err(format!("closed with {code} before o")),
                None => {
                    c.ws.fill()
                        .await
                        .map_err(|e| format!("waiting for o: {e}"))?;
                    continue;
                }
            };
            match f {
                Frame::Open => break,
                Frame::Close(code) => return Err(format!("sockjs close {code} before o")),
                _ => continue,
            }
        }
        c.dec.clear();
        c.send_text(frame).await.map_err(|e| format!("send: {e}"))?;
        Ok(c)
    }

    pub fn next_msg(&mut self) -> io::Result<Option<Msg<'_>>> {
        self.dec.clear();
        loop {
            let f = match self.ws.next_msg()? {
                None => return Ok(None),
                Some(Msg::Close(c)) => return Ok(Some(Msg::Close(c))),
                Some(Msg::Data(p)) => decode_frame(p, &mut self.dec)?,
            };
            match f {
                Frame::Data => break,
                Frame::Close(c) => return Ok(Some(Msg::Close(c))),
                Frame::Open => return Ok(Some(Msg::Close(1006))),
                Frame::Heartbeat => continue,
            }
        }
        Ok(Some(Msg::Data(&self.dec)))
    }

    pub async fn fill(&mut self) -> io::Result<usize> {
        self.ws.fill().await
    }

    pub async fn flush_control(&mut self) -> io::Result<()> {
        self.ws.flush_control().await
    }

    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.ws.send_text(&encode_send(payload)).await
    }

    pub async fn send_close(&mut self, code: u16) -> io::Result<()> {
        self.ws.send_close(code).await
    }
}

/// The xhr-streaming sub-transport.
pub struct SockJsXhr {
    http: HttpReader,
    /// The receiving request, sent again when a response ends.
    req: Vec<u8>,
    send_path: String,
    poster: Arc<Poster>,
    dec: Vec<u8>,
    /// Responses after the first (each ended at the server's streaming limit).
    pub reopens: u64,
}

impl SockJsXhr {
    /// Opens the receiving request, waits for `o`, sends `frame` through `xhr_send`.
    pub async fn start(
        target: &Target,
        poster: Arc<Poster>,
        src: Option<IpAddr>,
        buf: usize,
        seed: u64,
        frame: &[u8],
    ) -> Result<Self, String> {
        let recv = session_path(&target.path, seed, "xhr_streaming");
        let send_path = session_path(&target.path, seed, "xhr_send");
        let req = format!(
            "POST {recv} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            target.host
        )
        .into_bytes();
        let http = HttpReader::open(target, src, buf, &req).await?;
        let mut c = SockJsXhr {
            http,
            req,
            send_path,
            poster,
            dec: Vec::with_capacity(1024),
            reopens: 0,
        };
        'open: loop {
            while let Some(i) = memchr::memchr(b'\n', c.http.body()) {
                let line = c.http.take(i + 1);
                match decode_frame(&line[..i], &mut c.dec).map_err(|e| e.to_string())? {
                    Frame::Open => break 'open,
                    Frame::Close(code) => return Err(format!("sockjs close {code} before o")),
                    _ => {}
                }
            }
            c.http
                .fill()
                .await
                .map_err(|e| format!("waiting for o: {e}"))?;
        }
        c.dec.clear();
        c.send_text(frame)
            .await
            .map_err(|e| format!("xhr_send: {e}"))?;
        Ok(c)
    }

    /// The messages of every complete frame received since the last call.
    pub fn next_msg(&mut self) -> io::Result<Option<Msg<'_>>> {
        self.dec.clear();
        while let Some(i) = memchr::memchr(b'\n', self.http.body()) {
            let line = self.http.take(i + 1);
            match decode_frame(&line[..i], &mut self.dec)? {
                Frame::Data | Frame::Heartbeat => {}
                Frame::Close(c) => return Ok(Some(Msg::Close(c))),
                // A new session on a reopen: the server lost ours.
                Frame::Open => return Ok(Some(Msg::Close(1006))),
            }
        }
        if self.dec.is_empty() {
            return Ok(None);
        }
        Ok(Some(Msg::Data(&self.dec)))
    }

    /// Reads more; when the response has ended, opens the next one on the same session.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if !self.http.ended {
            match self.http.fill().await {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.http.ended => {}
                r => return r,
            }
        }
        self.reopens += 1;
        self.http
            .reopen(&self.req)
            .await
            .map_err(io::Error::other)?;
        Ok(1)
    }

    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        let (poster, path, body) = self.send_post(payload);
        poster.post(&path, body, 204).await
    }

    /// The `POST xhr_send` that carries `payload`: pool, path, body.
    pub fn send_post(&self, payload: &[u8]) -> (Arc<Poster>, String, Bytes) {
        (
            self.poster.clone(),
            self.send_path.clone(),
            Bytes::from(encode_send(payload)),
        )
    }

    pub async fn close(&mut self) {
        self.http.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mut out = Vec::new();
        assert_eq!(decode_frame(b"o", &mut out).unwrap(), Frame::Open);
        assert_eq!(
            decode_frame(&[b'h'; 2048], &mut out).unwrap(),
            Frame::Heartbeat
        );
        assert_eq!(
            decode_frame(br#"c[3012,"{\"reason\":\"x\"}"]"#, &mut out).unwrap(),
            Frame::Close(3012)
        );
        let f = br#"a["{\"id\":1,\"result\":{}}\n{\"result\":{\"data\":\"\u00e9\ud83d\ude00\/\"}}\n","x"]"#;
        assert_eq!(decode_frame(f, &mut out).unwrap(), Frame::Data);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "{\"id\":1,\"result\":{}}\n{\"result\":{\"data\":\"é😀/\"}}\nx\n"
        );
        out.clear();
        assert_eq!(decode_frame(b"a[]", &mut out).unwrap(), Frame::Data);
        assert!(out.is_empty());
        assert!(decode_frame(br#"a["x"#, &mut out).is_err());
        assert!(decode_frame(b"z", &mut out).is_err());
    }

    #[test]
    fn sends_and_paths() {
        assert_eq!(
            encode_send(b"{\"id\":1}\n{}"),
            br#"["{\"id\":1}\n{}"]"#.to_vec()
        );
        let p = session_path(
            "/connection/sockjs/?cf_protocol_version=v2",
            1234,
            "xhr_send",
        );
        let parts: Vec<&str> = p.split('/').collect();
        assert_eq!(parts[1..3], ["connection", "sockjs"]);
        assert_eq!(parts[3], "234");
        assert_eq!(parts[4].len(), 8);
        assert!(parts[4]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'0'..=b'5').contains(&b)));
        assert_eq!(parts[5], "xhr_send?cf_protocol_version=v2");
        assert_eq!(
            p,
            session_path(
                "/connection/sockjs?cf_protocol_version=v2",
                1234,
                "xhr_send"
            )
        );
    }
}
