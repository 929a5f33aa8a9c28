//! WebSocket permessage-deflate (CHANNELS-MODERN.md §2) against the real binary, at the byte
//! level over raw TCP: the negotiation answer, compressed frames both ways, the minimum size,
//! the inflated-size limit, both config generations, and the unidirectional WebSocket.

mod common;

use std::time::Duration;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ANSWER: &str =
    "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n";
const TRAILER: [u8; 4] = [0, 0, 0xff, 0xff];

fn upgrade(path: &str, extensions: Option<&str>) -> String {
    let ext = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{ext}\r\n"
    )
}

/// Raw deflate of one message, its sync-flush tail removed (what a client sends).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        let done = c.total_in() as usize;
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .unwrap();
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&TRAILER));
    out.truncate(out.len() - 4);
    out
}

/// Inflates one server message (the tail appended).
fn inflate(data: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&TRAILER);
    let mut out = Vec::with_capacity(data.len() * 8 + 1024);
    loop {
        let done = d.total_in() as usize;
        d.decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
            .expect("valid deflate data from the server");
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// A masked client frame; `rsv1` marks it compressed.
fn client_frame(opcode: u8, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | if rsv1 { 0x40 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A compressed text message.
fn compressed_text(json: &Value) -> Vec<u8> {
    client_frame(0x1, true, &deflate(json.to_string().as_bytes()))
}

/// One server frame.
struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    /// The message text, inflated when compressed.
    fn text(&self) -> String {
        assert_eq!(self.opcode, 1, "a text frame");
        let bytes = if self.rsv1 {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        };
        String::from_utf8(bytes).expect("UTF-8 text")
    }

    fn json(&self) -> Value {
        let text = self.text();
        serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(server: &Server, request: &str) -> (Conn, String) {
        let mut tcp = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("tcp connect");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut c = Conn {
            tcp,
            buf: Vec::new(),
        };
        let head = c.head().await;
        (c, head)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(5), self.tcp.read(&mut chunk))
            .await
            .expect("data within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed; had {:?}", self.buf);
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The response head.
    async fn head(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..i + 4].to_vec()).unwrap();
                self.buf.drain(..i + 4);
                return head;
            }
            self.fill().await;
        }
    }

    async fn frame(&mut self) -> Frame {
        loop {
            if let Some((f, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return f;
            }
            self.fill().await;
        }
    }

    /// The next data frame, skipping pings.
    async fn data(&mut self) -> Frame {
        loop {
            let f = self.frame().await;
            if f.opcode != 0x9 && f.opcode != 0xA {
                return f;
            }
        }
    }

    async fn send(&mut self, frame: &[u8]) {
        self.tcp.write_all(frame).await.unwrap();
    }

    /// Waits for a close frame; its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            let f = self.frame().await;
            if f.opcode == 0x8 {
                return u16::from_be_bytes([f.payload[0], f.payload[1]]);
            }
        }
    }
}

fn parse(b: &[u8]) -> Option<(Frame, usize)> {
    if b.len() < 2 {
        return None;
    }
    assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
    let (len, at) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 if b.len() >= 10 => (
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if b.len() < at + len {
        return None;
    }
    let f = Frame {
        fin: b[0] & 0x80 != 0,
        rsv1: b[0] & 0x40 != 0,
        opcode: b[0] & 0x0f,
        payload: b[at..at + len].to_vec(),
    };
    Some((f, at + len))
}

fn assert_101(head: &str) {
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

fn extension_lines(head: &str) -> Vec<String> {
    head.split("\r\n")
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("sec-websocket-extensions:")
        })
        .map(|l| format!("{}\r\n", l.to_ascii_lowercase()))
        .collect()
}

fn v1_connect(id: u64) -> Value {
    json!({"id": id, "params": {"token": conn_token("alice")}})
}

#[tokio::test]
async fn answer_is_exact_for_any_offer_on_both_upgrade_paths() {
    let server = Server::start(json!({"websocket_compression": true})).await;
    let offers = [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
        "x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover",
    ];
    for offer in offers {
        let (_c, head) = Conn::open(&server, &upgrade("/connection/websocket", Some(offer))).await;
        assert_101(&head);
        assert_eq!(
            extension_lines(&head),
            vec![ANSWER.to_string()],
            "{offer}: {head}"
        );
    }
    // Hyper's path: the upgrade after a keep-alive request.
    let mut request = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string();
    request.push_str(&upgrade(
        "/connection/websocket",
        Some("permessage-deflate; client_max_window_bits"),
    ));
    let (mut c, _) = Conn::open(&server, &request).await;
    let head = c.head().await;
    assert_101(&head);
    assert_eq!(extension_lines(&head), vec![ANSWER.to_string()], "{head}");
    // Another extension only, or none: no answer, plain frames.
    for offer in [Some("x-webkit-deflate-frame"), None] {
        let (mut c, head) = Conn::open(&server, &upgrade("/connection/websocket", offer)).await;
        assert_101(&head);
        assert!(extension_lines(&head).is_empty(), "{head}");
        c.send(&client_frame(
            0x1,
            false,
            v1_connect(1).to_string().as_bytes(),
        ))
        .await;
        let f = c.data().await;
        assert!(!f.rsv1, "uncompressed when not negotiated");
        assert_eq!(f.json()["id"], 1);
    }
}

#[tokio::test]
async fn compression_off_means_no_extension_and_plain_frames() {
    let server = Server::start(json!({})).await;
    let offer = Some("permessage-deflate; client_max_window_bits");
    let (mut c, head) = Conn::open(&server, &upgrade("/connection/websocket", offer)).await;
    assert_101(&head);
    assert!(extension_lines(&head).is_empty(), "{head}");
    c.send(&client_frame(
        0x1,
        false,
        v1_connect(1).to_string().as_bytes(),
    ))
    .await;
    let f = c.data().await;
    assert!(!f.rsv1 && f.fin);
    assert_eq!(
        f.json()["result"]["client"].as_str().map(str::len),
        Some(36)
    );
    // A compressed frame was not negotiated: a protocol error, the connection ends.
    c.send(&compressed_text(&json!({"id": 2, "method": 7})))
        .await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.tcp.read_to_end(&mut rest)).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains("\"id\":2"), "no reply to it: {text}");
}

#[tokio::test]
async fn compressed_commands_are_inflated_and_publications_compressed() {
    let server = Server::start(json!({"websocket_compression": true})).await;
    let offer = Some("permessage-deflate; client_max_window_bits");
    let (mut c, head) = Conn::open(&server, &upgrade("/connection/websocket", offer)).await;
    assert_101(&head);
    c.send(&compressed_text(&v1_connect(1))).await;
    let f = c.data().await;
    assert!(f.rsv1, "min size 0: every message compressed");
    let reply = f.json();
    assert_eq!(reply["id"], 1, "{reply}");
    assert_eq!(reply["result"]["client"].as_str().map(str::len), Some(36));
    // Subscribe in two fragments of one compressed message.
    let sub = deflate(
        json!({"id": 2, "method": 1, "params": {"channel": "news"}})
            .to_string()
            .as_bytes(),
    );
    let (a, b) = sub.split_at(sub.len() / 2);
    let mut first = client_frame(0x1, true, a);
    first[0] &= 0x7f;
    c.send(&first).await;
    // A ping between the fragments is answered at once.
    c.send(&client_frame(0x9, false, b"hi")).await;
    let pong = c.frame().await;
    assert_eq!(
        (pong.opcode, pong.rsv1, &pong.payload[..]),
        (0xA, false, &b"hi"[..])
    );
    c.send(&client_frame(0x0, false, b)).await;
    let reply = c.data().await.json();
    assert_eq!(reply, json!({"id": 2, "result": {}}));
    let text = "lorem ipsum ".repeat(200);
    api_publish(&server, "news", json!({"text": text})).await;
    let f = c.data().await;
    assert!(f.rsv1);
    assert!(
        f.payload.len() < 400,
        "compressed: {} bytes",
        f.payload.len()
    );
    let push = f.json();
    assert_eq!(push["result"]["channel"], "news", "{push}");
    assert_eq!(
        push["result"]["data"]["data"]["text"],
        json!(text),
        "{push}"
    );
    // An uncompressed client message is still accepted.
    c.send(&client_frame(
        0x1,
        false,
        json!({"id": 3, "method": 7}).to_string().as_bytes(),
    ))
    .await;
    assert_eq!(c.data().await.json()["id"], 3);
    // Messages larger than one read, plain and compressed (random-ish text deflates poorly).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..40_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let big = json!({"id": 4, "method": 7, "params": {"data": noise}});
    c.send(&client_frame(0x1, false, big.to_string().as_bytes()))
        .await;
    assert_eq!(c.data().await.json()["id"], 4);
    let big = json!({"id": 5, "method": 7, "params": {"data": noise}});
    let frame = compressed_text(&big);
    assert!(frame.len() > 20_000, "{}", frame.len());
    c.send(&frame).await;
    assert_eq!(c.data().await.json()["id"], 5);
}

/// The length of the v2 insecure connect reply's frame with compression off.
async fn reply_len(extra: Value) -> (bool, usize) {
    let mut cfg = json!({"client_insecure": true});
    cfg.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let server = Server::start(cfg).await;
    let offer = Some("permessage-deflate");
    let (mut c, _) = Conn::open(&server, &upgrade("/connection/websocket", offer)).await;
    c.send(&client_frame(0x1, false, br#"{"id":1,"connect":{}}"#))
        .await;
    let f = c.data().await;
    let len = if f.rsv1 {
        inflate(&f.payload).len()
    } else {
        f.payload.len()
    };
    assert!(f.json()["connect"]["client"].is_string());
    (f.rsv1, len)
}

#[tokio::test]
async fn only_messages_longer_than_min_size_are_compressed() {
    let (compressed, len) = reply_len(json!({})).await;
    assert!(!compressed);
    // 2.x keys: a message of exactly the minimum size stays plain.
    let (compressed, same) = reply_len(json!({
        "websocket_compression": true, "websocket_compression_min_size": len,
    }))
    .await;
    assert_eq!(same, len);
    assert!(!compressed, "len == min size: plain");
    // v6 keys: one byte over is compressed.
    let (compressed, same) = reply_len(json!({
        "websocket": {"compression": true, "compression_min_size": len - 1, "compression_level": 9},
    }))
    .await;
    assert_eq!(same, len);
    assert!(compressed, "len > min size: compressed");
}

#[tokio::test]
async fn inflated_size_is_limited() {
    // v6: an explicit limit.
    let server = Server::start(json!({
        "websocket": {"compression": true, "decompressed_message_size_limit": 2000},
    }))
    .await;
    let offer = Some("permessage-deflate");
    let (mut c, _) = Conn::open(&server, &upgrade("/connection/websocket", offer)).await;
    c.send(&compressed_text(&v1_connect(1))).await;
    assert_eq!(c.data().await.json()["id"], 1);
    let fits = json!({"id": 2, "method": 7, "params": {"data": "a".repeat(1500)}});
    c.send(&compressed_text(&fits)).await;
    assert_eq!(c.data().await.json()["id"], 2, "under the limit: served");
    let big = json!({"id": 3, "method": 7, "params": {"data": "a".repeat(5000)}});
    let frame = compressed_text(&big);
    assert!(frame.len() < 200, "small on the wire");
    c.send(&frame).await;
    assert_eq!(c.close_code().await, 1009);
    // The default: 10 × websocket_message_size_limit (2.x keys).
    let server = Server::start(json!({
        "websocket_compression": true, "websocket_message_size_limit": 1000,
    }))
    .await;
    let (mut c, _) = Conn::open(&server, &upgrade("/connection/websocket", offer)).await;
    c.send(&compressed_text(&v1_connect(1))).await;
    assert_eq!(c.data().await.json()["id"], 1);
    let fits = json!({"id": 2, "method": 7, "params": {"data": "a".repeat(9000)}});
    c.send(&compressed_text(&fits)).await;
    assert_eq!(
        c.data().await.json()["id"],
        2,
        "9 KB inflated of 10 KB allowed"
    );
    let big = json!({"id": 3, "method": 7, "params": {"data": "a".repeat(11000)}});
    c.send(&compressed_text(&big)).await;
    assert_eq!(c.close_code().await, 1009);
}

#[tokio::test]
async fn uni_websocket_compresses_pushes_and_inflates_the_connect() {
    let server = Server::start(json!({
        "uni_websocket": {"enabled": true, "compression": true, "compression_min_size": 10},
    }))
    .await;
    let connect = json!({"token": jwt(&json!({"sub": "u1", "channels": ["news"]}))});
    // The connect request as a compressed first message.
    let offer = Some("permessage-deflate; client_max_window_bits");
    let (mut c, head) = Conn::open(&server, &upgrade("/connection/uni_websocket", offer)).await;
    assert_101(&head);
    assert_eq!(extension_lines(&head), vec![ANSWER.to_string()], "{head}");
    c.send(&compressed_text(&connect)).await;
    let f = c.data().await;
    assert!(f.rsv1, "the connect push is longer than 10 bytes");
    assert!(f.json()["connect"]["client"].is_string(), "{}", f.text());
    api_publish(&server, "news", json!({"n": "x".repeat(300)})).await;
    let f = c.data().await;
    assert!(f.rsv1);
    assert_eq!(f.json()["pub"]["data"]["n"], json!("x".repeat(300)));
    // Off for the bidirectional WebSocket: no answer there.
    let (_c, head) = Conn::open(&server, &upgrade("/connection/websocket", offer)).await;
    assert!(extension_lines(&head).is_empty(), "{head}");
    // uni_websocket compression off: no answer, plain pushes.
    let server = Server::start(json!({"uni_websocket": {"enabled": true}})).await;
    let path = format!(
        "/connection/uni_websocket?{}",
        reqwest::Url::parse_with_params("http://x/", &[("cf_connect", connect.to_string())])
            .unwrap()
            .query()
            .unwrap()
    );
    let (mut c, head) = Conn::open(&server, &upgrade(&path, offer)).await;
    assert_101(&head);
    assert!(extension_lines(&head).is_empty(), "{head}");
    let f = c.data().await;
    assert!(!f.rsv1);
    assert!(f.json()["connect"]["client"].is_string());
}

#[tokio::test]
async fn bad_compression_level_refuses_to_start() {
    for (cfg, key) in [
        (
            json!({"websocket_compression_level": 10}),
            "websocket_compression_level",
        ),
        (
            json!({"uni_websocket": {"compression_level": -2}}),
            "uni_websocket",
        ),
    ] {
        let (status, text) = run_rotor_with_config_text(&cfg.to_string(), WAIT);
        assert!(
            status.is_some_and(|s| !s.success()),
            "{cfg}: {status:?} {text}"
        );
        assert!(
            text.contains(key) && text.contains("compression level"),
            "{text}"
        );
    }
}
