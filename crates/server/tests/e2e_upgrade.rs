//! The WebSocket upgrade at the byte level, over raw TCP: the fast path (the upgrade is the
//! connection's first request) and hyper's path (an upgrade after a keep-alive request, or a
//! head too large for the fast path) must accept and refuse exactly alike.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// RFC 6455 §1.3's sample key and the accept value the server must derive from it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn upgrade_request(query: &str, extra: &str) -> String {
    format!(
        "GET /connection/websocket{query} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

/// A masked client text frame.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![0x81];
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

/// Reads an HTTP response head (and a body of `content-length`); returns status, the head
/// lines lower-cased, and the body.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String, String) {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("response within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("utf-8 head");
    buf.drain(..head_end);
    let status: u16 = head[9..12].parse().expect("status code");
    let lower = head.to_ascii_lowercase();
    let len = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().expect("content-length"))
        .unwrap_or(0);
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8(buf.drain(..len).collect()).expect("utf-8 body");
    (status, lower, body)
}

/// Reads one unmasked server frame's payload (text frames only).
async fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if buf.len() >= 2 {
            assert_eq!(buf[0], 0x81, "a final text frame");
            let (len, start) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n if n < 126 => (n as usize, 2),
                _ => (usize::MAX, 0),
            };
            if len != usize::MAX && buf.len() >= start + len {
                let payload = buf[start..start + len].to_vec();
                buf.drain(..start + len);
                return String::from_utf8(payload).expect("utf-8 frame");
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("frame within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed before a frame");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connect_command() -> Vec<u8> {
    client_frame(
        json!({"id": 1, "params": {"token": conn_token("alice")}})
            .to_string()
            .as_bytes(),
    )
}

/// After a 101, a v1 connect is answered with a client ID.
async fn assert_connects(s: &mut TcpStream, buf: &mut Vec<u8>) {
    s.write_all(&connect_command()).await.unwrap();
    let reply: Value = serde_json::from_str(&read_frame(s, buf).await).expect("JSON reply");
    assert_eq!(reply["id"], 1, "{reply}");
    assert_eq!(
        reply["result"]["client"].as_str().map(str::len),
        Some(36),
        "{reply}"
    );
}

fn assert_switched(status: u16, head: &str) {
    assert_eq!(status, 101, "{head}");
    assert!(
        head.contains(&format!(
            "sec-websocket-accept: {}",
            ACCEPT.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(head.contains("upgrade: websocket"), "{head}");
}

/// A plain keep-alive request first, so what follows is the connection's second request.
async fn health_request(s: &mut TcpStream, buf: &mut Vec<u8>) {
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(s, buf).await.0, 200);
}

async fn open(server: &Server) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("tcp connect")
}

#[tokio::test]
async fn first_request_upgrade_with_the_first_frame_in_the_same_packet() {
    let server = Server::start(json!({})).await;
    let mut s = open(&server).await;
    let mut packet = upgrade_request("", "").into_bytes();
    packet.extend_from_slice(&connect_command());
    s.write_all(&packet).await.unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = read_response(&mut s, &mut buf).await;
    assert_switched(status, &head);
    let reply: Value = serde_json::from_str(&read_frame(&mut s, &mut buf).await).unwrap();
    assert_eq!(reply["result"]["client"].as_str().map(str::len), Some(36));
}

#[tokio::test]
async fn request_head_split_over_several_writes() {
    let server = Server::start(json!({})).await;
    let mut s = open(&server).await;
    let req = upgrade_request("?cf_protocol_version=v1", "");
    for chunk in req.as_bytes().chunks(7) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut buf = Vec::new();
    let (status, head, _) = read_response(&mut s, &mut buf).await;
    assert_switched(status, &head);
    assert_connects(&mut s, &mut buf).await;
}

#[tokio::test]
async fn upgrade_after_a_keep_alive_request_goes_through_hyper() {
    let server = Server::start(json!({"health": true})).await;
    let mut s = open(&server).await;
    let mut buf = Vec::new();
    health_request(&mut s, &mut buf).await;
    s.write_all(
        upgrade_request("", "Sec-WebSocket-Protocol: chat, centrifuge-json\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (status, head, _) = read_response(&mut s, &mut buf).await;
    assert_switched(status, &head);
    assert!(
        head.contains("sec-websocket-protocol: centrifuge-json"),
        "{head}"
    );
    assert_connects(&mut s, &mut buf).await;
}

#[tokio::test]
async fn upgrade_with_a_head_too_large_for_the_fast_path_still_connects() {
    let server = Server::start(json!({})).await;
    let mut s = open(&server).await;
    let cookie = format!("Cookie: session={}\r\n", "x".repeat(20_000));
    s.write_all(upgrade_request("", &cookie).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = read_response(&mut s, &mut buf).await;
    assert_switched(status, &head);
    assert_connects(&mut s, &mut buf).await;
}

#[tokio::test]
async fn subprotocol_offer_picks_the_first_we_speak() {
    let server = Server::start(json!({})).await;
    let mut s = open(&server).await;
    let req = upgrade_request(
        "",
        "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: centrifuge-protobuf, centrifuge-json\r\n",
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (status, head, _) = read_response(&mut s, &mut Vec::new()).await;
    assert_switched(status, &head);
    assert!(
        head.contains("sec-websocket-protocol: centrifuge-protobuf"),
        "{head}"
    );
}

/// Each bad request, first on a fresh connection (fast path), then after a keep-alive
/// request (hyper's path): the same status, a reason in the body, and the server lives on.
#[tokio::test]
async fn bad_upgrades_get_the_same_clear_status_on_both_paths() {
    let server =
        Server::start(json!({"health": true, "allowed_origins": ["https://good.example"]})).await;
    let good = upgrade_request("", "");
    let cases: Vec<(String, u16, &str)> = vec![
        (
            good.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            426,
            "sec-websocket-version: 13",
        ),
        (
            good.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            400,
            "",
        ),
        (good.replace("GET ", "POST "), 405, ""),
        (good.replace("keep-alive, Upgrade", "keep-alive"), 400, ""),
        (upgrade_request("?cf_protocol_version=v9", ""), 400, ""),
        (
            upgrade_request("", "Origin: https://evil.example\r\n"),
            403,
            "",
        ),
    ];
    for (req, want, header) in &cases {
        for after_keep_alive in [false, true] {
            let mut s = open(&server).await;
            let mut buf = Vec::new();
            if after_keep_alive {
                health_request(&mut s, &mut buf).await;
            }
            s.write_all(req.as_bytes()).await.unwrap();
            let (status, head, body) = read_response(&mut s, &mut buf).await;
            assert_eq!(
                status, *want,
                "after keep-alive {after_keep_alive}: {req}\n{head}{body}"
            );
            assert!(!body.is_empty(), "a reason in the body: {head}");
            assert!(head.contains(header), "{head}");
        }
    }
    // An allowed origin connects.
    let mut s = open(&server).await;
    s.write_all(upgrade_request("", "Origin: https://good.example\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = read_response(&mut s, &mut buf).await;
    assert_switched(status, &head);
    assert_connects(&mut s, &mut buf).await;
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn api_requests_on_a_fresh_connection_and_keep_alive_still_work() {
    let server = Server::start(json!({})).await;
    let mut s = open(&server).await;
    let body = r#"{"method":"info","params":{}}"#;
    let req = format!(
        "POST /api HTTP/1.1\r\nHost: localhost\r\nAuthorization: apikey {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, _, resp) = read_response(&mut s, &mut buf).await;
        assert_eq!(status, 200, "{resp}");
        let v: Value = serde_json::from_str(&resp).expect("JSON");
        assert!(v["result"]["nodes"].is_array(), "{v}");
    }
}
