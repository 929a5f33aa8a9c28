//! WebSocket framing with permessage-deflate (RFC 7692) for connections that negotiated it
//! (CHANNELS-MODERN.md §2); every other connection stays on tungstenite, unchanged.
//!
//! Why our own framing: tungstenite rejects frames with RSV1 set and has no extension hook, so
//! deflate cannot be added beneath or beside it. Of the crates that do RFC 7692, yawc builds a
//! server socket only from hyper's upgrade (its constructor over an upgraded stream with
//! already-read bytes is private, and Rotor's fast path does its own HTTP upgrade) and carries
//! `unsafe` masking and split code; ratchet has `from_upgraded` but its negotiation echoes the
//! offer instead of the fixed answer, compresses every message (no minimum size) and has not
//! been released since 2024; sockudo-ws is an `unsafe`/SIMD-heavy library with its own server.
//! So this module speaks the server side of RFC 6455 itself, on flate2's raw deflate:
//!
//! * The answer is always `permessage-deflate; server_no_context_takeover;
//!   client_no_context_takeover`, whatever the offer's parameters: every message is compressed
//!   and inflated on its own (no window shared across messages).
//! * Outgoing Text/Binary messages longer than `min_size` bytes are deflated with a sync flush,
//!   the trailing `00 00 ff ff` dropped, and sent as one frame with RSV1; shorter ones go out
//!   plain. The writer merges queued messages before they get here, so one merged frame is one
//!   compressed message.
//! * Incoming messages with RSV1 are inflated (the trailer appended) up to the inflate limit;
//!   beyond it, or beyond the raw message limit, reading fails with tungstenite's `Capacity`
//!   error, which the transports answer with close 1009.
//! * Compressors and the read buffer are per worker thread (compressors reset per message), so
//!   an idle connection holds no zlib state and no read buffer.
//!
//! The socket is a `Stream` and `Sink` of tungstenite [`Message`]s with tungstenite's errors,
//! so the transports drive it exactly as a `WebSocketStream`.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::error::{CapacityError, ProtocolError};
use tungstenite::protocol::frame::coding::{CloseCode, Data as OpData};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error, Message, Utf8Bytes};

/// The `Sec-WebSocket-Extensions` answer, the same for every offer.
pub(crate) const ANSWER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// What RFC 7692 §7.2.1 strips from each compressed message and §7.2.2 appends before inflating.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Bytes read from the connection at a time (into a per-thread buffer, so an idle connection
/// holds no read buffer).
const READ_CHUNK: usize = 16 * 1024;

/// A write buffer grown past this is released once written.
const KEEP_WRITE_BUFFER: usize = 16 * 1024;

/// Queued output beyond which `poll_ready` writes before accepting more.
const WRITE_HIGH: usize = 128 * 1024;

/// Whether the client offers permessage-deflate, with any parameters.
pub(crate) fn offered<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> bool {
    values.any(|v| {
        v.split(|&b| b == b',').any(|ext| {
            let name = ext.split(|&b| b == b';').next().unwrap_or_default();
            name.trim_ascii()
                .eq_ignore_ascii_case(b"permessage-deflate")
        })
    })
}

/// The negotiated parameters of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// zlib level, 0–9.
    pub level: u32,
    /// Outgoing messages of at most this many bytes are not compressed.
    pub min_size: usize,
    /// Largest incoming message on the wire (compressed or not).
    pub max_message: usize,
    /// Largest incoming message once inflated.
    pub max_inflated: usize,
}

/// A message being received in fragments.
struct Partial {
    text: bool,
    compressed: bool,
    data: BytesMut,
}

/// A server-role WebSocket with permessage-deflate over `S`.
pub(crate) struct DeflateSocket<S> {
    io: S,
    params: Params,
    /// Read but not yet parsed (starts with what followed the upgrade request).
    rd: BytesMut,
    /// Encoded frames not yet written.
    wr: BytesMut,
    partial: Option<Partial>,
    /// A close frame arrived, or reading failed: the stream has ended.
    read_done: bool,
    close_sent: bool,
}

impl<S> DeflateSocket<S> {
    pub(crate) fn new(io: S, leftover: Vec<u8>, params: Params) -> Self {
        Self {
            io,
            params,
            rd: BytesMut::from(&leftover[..]),
            wr: BytesMut::new(),
            partial: None,
            read_done: false,
            close_sent: false,
        }
    }
}

/// One parsed frame's effect.
enum Step {
    /// A message for the caller.
    Message(Message),
    /// A fragment was consumed; parse on.
    Again,
    /// The buffer holds no complete frame.
    NeedMore,
}

impl<S: AsyncRead + AsyncWrite + Unpin> DeflateSocket<S> {
    /// Parses the next frame from `rd`.
    fn parse(&mut self) -> Result<Step, Error> {
        let buf = &self.rd[..];
        if buf.len() < 2 {
            return Ok(Step::NeedMore);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f);
        if b0 & 0x30 != 0 {
            return Err(ProtocolError::NonZeroReservedBits.into());
        }
        if b1 & 0x80 == 0 {
            return Err(ProtocolError::UnmaskedFrameFromClient.into());
        }
        let (len, mut at) = match b1 & 0x7f {
            126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 if buf.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            126 | 127 => return Ok(Step::NeedMore),
            n => (u64::from(n), 2),
        };
        let control = opcode & 0x08 != 0;
        if control {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame.into());
            }
            if len > 125 {
                return Err(ProtocolError::ControlFrameTooBig.into());
            }
            if rsv1 {
                return Err(ProtocolError::NonZeroReservedBits.into());
            }
        }
        // A control frame between fragments is not part of the message.
        let so_far = match &self.partial {
            Some(p) if !control => p.data.len(),
            _ => 0,
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if so_far.saturating_add(len) > self.params.max_message {
            return Err(Error::Capacity(CapacityError::MessageTooLong {
                size: so_far.saturating_add(len),
                max_size: self.params.max_message,
            }));
        }
        if buf.len() < at + 4 + len {
            return Ok(Step::NeedMore);
        }
        let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        self.rd.advance(at);
        let mut payload = self.rd.split_to(len);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
        match opcode {
            0x0 => {
                let Some(p) = self.partial.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinueFrame.into());
                };
                if rsv1 {
                    return Err(ProtocolError::NonZeroReservedBits.into());
                }
                p.data.extend_from_slice(&payload);
                if !fin {
                    return Ok(Step::Again);
                }
                let p = self.partial.take().expect("checked above");
                self.finish(p.text, p.compressed, p.data).map(Step::Message)
            }
            0x1 | 0x2 => {
                let text = opcode == 0x1;
                if self.partial.is_some() {
                    let d = if text { OpData::Text } else { OpData::Binary };
                    return Err(ProtocolError::ExpectedFragment(d).into());
                }
                if fin {
                    return self.finish(text, rsv1, payload).map(Step::Message);
                }
                self.partial = Some(Partial {
                    text,
                    compressed: rsv1,
                    data: payload,
                });
                Ok(Step::Again)
            }
            0x8 => self.on_close(payload.freeze()).map(Step::Message),
            0x9 => {
                let payload = payload.freeze();
                if !self.close_sent {
                    encode_frame(&mut self.wr, 0xA, false, &payload);
                }
                Ok(Step::Message(Message::Ping(payload)))
            }
            0xA => Ok(Step::Message(Message::Pong(payload.freeze()))),
            op if control => Err(ProtocolError::UnknownControlFrameType(op).into()),
            op => Err(ProtocolError::UnknownDataFrameType(op).into()),
        }
    }

    /// A complete data message: inflated if compressed, UTF-8 checked if text.
    fn finish(&self, text: bool, compressed: bool, data: BytesMut) -> Result<Message, Error> {
        let data = if compressed {
            let limit = self.params.max_inflated;
            Bytes::from(inflate(&data, limit).map_err(|e| match e {
                Inflate::TooBig(size) => Error::Capacity(CapacityError::MessageTooLong {
                    size,
                    max_size: limit,
                }),
                Inflate::Bad => Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "invalid permessage-deflate data",
                )),
            })?)
        } else {
            data.freeze()
        };
        if text {
            Utf8Bytes::try_from(data)
                .map(Message::Text)
                .map_err(|_| Error::Utf8("invalid UTF-8 in a text message".into()))
        } else {
            Ok(Message::Binary(data))
        }
    }

    /// The client's close: answered with its code (unless we closed first), then the end.
    fn on_close(&mut self, payload: Bytes) -> Result<Message, Error> {
        self.read_done = true;
        let frame = match payload.len() {
            0 => None,
            1 => return Err(ProtocolError::InvalidCloseSequence.into()),
            _ => {
                let code = CloseCode::from(u16::from_be_bytes([payload[0], payload[1]]));
                let reason = Utf8Bytes::try_from(payload.slice(2..))
                    .map_err(|_| Error::Utf8("invalid UTF-8 in a close reason".into()))?;
                Some(CloseFrame { code, reason })
            }
        };
        if !self.close_sent {
            self.close_sent = true;
            let code = frame.as_ref().map(|f| u16::from(f.code));
            encode_close(&mut self.wr, code, "");
        }
        Ok(Message::Close(frame))
    }

    /// Reads more bytes into `rd`; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        READ_SCRATCH.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(&mut scratch[..]);
            let r = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            self.rd.extend_from_slice(rb.filled());
            let n = rb.filled().len();
            r.map(|r| r.map(|()| n))
        })
    }

    /// Writes everything queued, then flushes.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wr.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wr) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.wr.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.wr.capacity() > KEEP_WRITE_BUFFER {
            self.wr = BytesMut::new();
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for DeflateSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if !this.wr.is_empty() {
                // Pongs and the close answer go out as soon as the socket takes them; a
                // failure shows on the next write.
                let _ = this.poll_drain(cx);
            }
            if this.read_done {
                return Poll::Ready(None);
            }
            match this.parse() {
                Ok(Step::Message(m)) => return Poll::Ready(Some(Ok(m))),
                Ok(Step::Again) => continue,
                Ok(Step::NeedMore) => {
                    if this.rd.is_empty() && this.rd.capacity() > 0 {
                        // Between messages: no buffer kept while the connection idles.
                        this.rd = BytesMut::new();
                    }
                }
                Err(e) => {
                    this.read_done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            match this.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    this.read_done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.read_done = true;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for DeflateSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.wr.len() >= WRITE_HIGH {
            return this.poll_drain(cx).map_err(Error::Io);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, m: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if this.close_sent {
            return Err(ProtocolError::SendAfterClosing.into());
        }
        let p = this.params;
        match m {
            Message::Text(t) => encode_data(&mut this.wr, 0x1, t.as_bytes(), &p),
            Message::Binary(b) => encode_data(&mut this.wr, 0x2, &b, &p),
            Message::Ping(b) => encode_frame(&mut this.wr, 0x9, false, &b[..b.len().min(125)]),
            Message::Pong(b) => encode_frame(&mut this.wr, 0xA, false, &b[..b.len().min(125)]),
            Message::Close(f) => {
                this.close_sent = true;
                match f {
                    Some(f) => encode_close(&mut this.wr, Some(u16::from(f.code)), &f.reason),
                    None => encode_close(&mut this.wr, None, ""),
                }
            }
            // Raw frames are never sent by the transports.
            Message::Frame(_) => {}
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_drain(cx).map_err(Error::Io)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx)).map_err(Error::Io)?;
        Pin::new(&mut this.io).poll_shutdown(cx).map_err(Error::Io)
    }
}

/// A data message: compressed when longer than the minimum size.
fn encode_data(wr: &mut BytesMut, opcode: u8, payload: &[u8], p: &Params) {
    if payload.len() <= p.min_size {
        encode_frame(wr, opcode, false, payload);
        return;
    }
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        deflate(payload, p.level, out);
        encode_frame(wr, opcode, true, out);
    });
}

/// A close frame with an optional code and a reason cut to fit a control frame.
fn encode_close(wr: &mut BytesMut, code: Option<u16>, reason: &str) {
    let mut payload = Vec::with_capacity(2 + reason.len());
    if let Some(code) = code {
        payload.extend_from_slice(&code.to_be_bytes());
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
    }
    encode_frame(wr, 0x8, false, &payload);
}

/// One unmasked, final server frame.
fn encode_frame(wr: &mut BytesMut, opcode: u8, rsv1: bool, payload: &[u8]) {
    let b0 = 0x80 | if rsv1 { 0x40 } else { 0 } | opcode;
    let len = payload.len();
    wr.reserve(10 + len);
    wr.extend_from_slice(&[b0]);
    if len < 126 {
        wr.extend_from_slice(&[len as u8]);
    } else if let Ok(l) = u16::try_from(len) {
        wr.extend_from_slice(&[126]);
        wr.extend_from_slice(&l.to_be_bytes());
    } else {
        wr.extend_from_slice(&[127]);
        wr.extend_from_slice(&(len as u64).to_be_bytes());
    }
    wr.extend_from_slice(payload);
}

thread_local! {
    /// One raw-deflate compressor per level, per worker thread.
    static COMPRESSORS: RefCell<Vec<(u32, Compress)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    /// Compressed output before it is framed.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// What one read takes from a connection.
    static READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Deflates `input` as one message (RFC 7692 §7.2.1) into `out`: a fresh stream, sync-flushed,
/// its `00 00 ff ff` tail removed.
pub(crate) fn deflate(input: &[u8], level: u32, out: &mut Vec<u8>) {
    COMPRESSORS.with_borrow_mut(|all| {
        let i = match all.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                all.push((level, Compress::new(Compression::new(level), false)));
                all.len() - 1
            }
        };
        let c = &mut all[i].1;
        c.reset();
        out.reserve(input.len() / 2 + 64);
        let start = c.total_in();
        loop {
            let done = (c.total_in() - start) as usize;
            let r = c.compress_vec(&input[done..], out, FlushCompress::Sync);
            let consumed = (c.total_in() - start) as usize == input.len();
            // With room left after a sync flush, the flush is complete.
            if r.is_err() || (consumed && out.len() < out.capacity()) {
                break;
            }
            out.reserve(out.capacity().max(1024));
        }
        if out.ends_with(&TRAILER) {
            out.truncate(out.len() - TRAILER.len());
        }
    });
}

pub(crate) enum Inflate {
    /// Inflated past the limit (the size reached).
    TooBig(usize),
    /// Not a valid deflate stream.
    Bad,
}

/// Inflates one message (RFC 7692 §7.2.2: the trailer appended), at most `limit` bytes.
pub(crate) fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, Inflate> {
    DECOMPRESSOR.with_borrow_mut(|slot| {
        let d = slot.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        // The buffer never holds more than one byte past the limit: enough to tell "too big".
        let most = limit.saturating_add(1);
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).max(256).min(most));
        for input in [data, &TRAILER[..]] {
            let start = d.total_in();
            loop {
                if out.len() > limit {
                    return Err(Inflate::TooBig(out.len()));
                }
                if out.len() == out.capacity() {
                    // Doubling (amortised), capped at `most`: `reserve` could round up to
                    // twice the limit (fuzz target websocket_deflate).
                    out.reserve_exact(out.len().max(4096).min(most - out.len()));
                }
                let before = (d.total_in(), d.total_out());
                let done = (d.total_in() - start) as usize;
                let status = d
                    .decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
                    .map_err(|_| Inflate::Bad)?;
                if status == Status::StreamEnd {
                    return if out.len() > limit {
                        Err(Inflate::TooBig(out.len()))
                    } else {
                        Ok(out)
                    };
                }
                let consumed = (d.total_in() - start) as usize == input.len();
                let room = out.len() < out.capacity();
                if consumed && room {
                    break;
                }
                if room && before == (d.total_in(), d.total_out()) {
                    return Err(Inflate::Bad);
                }
            }
        }
        if out.len() > limit {
            Err(Inflate::TooBig(out.len()))
        } else {
            Ok(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection task holds either socket: the deflate one must not make an uncompressed
    /// connection's task larger.
    #[test]
    fn no_larger_than_tungstenite() {
        type Tcp = tokio::net::TcpStream;
        let ours = std::mem::size_of::<DeflateSocket<Tcp>>();
        let theirs = std::mem::size_of::<tokio_tungstenite::WebSocketStream<Tcp>>();
        assert!(ours <= theirs, "{ours} > {theirs}");
    }

    #[test]
    fn offers_with_any_parameters() {
        let yes: [&[u8]; 3] = [
            b"permessage-deflate",
            b"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
            b"Permessage-Deflate;server_max_window_bits=10",
        ];
        for v in yes {
            assert!(offered(std::iter::once(v)), "{v:?}");
        }
        assert!(!offered(std::iter::once(&b"x-webkit-deflate-frame"[..])));
        assert!(!offered(std::iter::empty()));
    }

    #[test]
    fn round_trip_and_limit() {
        let input = br#"{"push":{"channel":"news","pub":{"data":{"text":"hello hello hello"}}}}"#;
        let mut out = Vec::new();
        deflate(input, 1, &mut out);
        assert!(!out.ends_with(&TRAILER));
        assert!(out.len() < input.len());
        assert_eq!(inflate(&out, 1024).ok().as_deref(), Some(&input[..]));
        assert!(matches!(inflate(&out, 10), Err(Inflate::TooBig(_))));
        let big = vec![b'a'; 1 << 20];
        let mut bomb = Vec::new();
        deflate(&big, 9, &mut bomb);
        assert!(bomb.len() < 8192);
        assert!(matches!(inflate(&bomb, 65536), Err(Inflate::TooBig(n)) if n < 200_000));
        assert!(matches!(inflate(b"\xff\xff\xff", 1024), Err(Inflate::Bad)));
    }

    /// Found by the fuzz target `websocket_deflate` (fuzz/regressions/websocket_deflate/):
    /// the output buffer grew by `reserve`, which may double it, so a message inflating near
    /// the limit allocated up to twice the limit, and "too big" was reported at sizes past it.
    #[test]
    fn inflating_never_allocates_past_the_limit() {
        let text = br#"{"push":{"channel":"news","pub":{"data":{"text":"hello hello hello"}}}}"#;
        let input: Vec<u8> = text.iter().copied().cycle().take(300).collect();
        let mut small = Vec::new();
        deflate(&input, 6, &mut small);
        let out = inflate(&small, 1024).ok().unwrap_or_default();
        assert_eq!(out, input);
        assert!(out.capacity() <= 1025, "{}", out.capacity());
        let mut bomb = Vec::new();
        deflate(&vec![b'a'; 200_000], 9, &mut bomb);
        for limit in [0, 16, 4096, 65_536, 199_999] {
            match inflate(&bomb, limit) {
                Err(Inflate::TooBig(n)) => assert_eq!(n, limit + 1),
                _ => panic!("limit {limit}: not refused as too big"),
            }
        }
        assert_eq!(inflate(&bomb, 200_000).ok().map(|o| o.len()), Some(200_000));
    }
}
