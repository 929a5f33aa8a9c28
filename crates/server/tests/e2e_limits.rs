//! Node connection limits against the real binary (CHANNELS-MODERN.md §4.1, trap 8):
//! `client.connection_limit` refuses a new real-time connection with HTTP 503 before the
//! upgrade or the stream once the node has that many (WebSocket through the first-request fast
//! path and through hyper, bidirectional SSE and HTTP-streaming, uni_sse), counts refusals in
//! `centrifugo_node_client_connection_limit` and logs one rate-limited warning; a freed slot
//! admits the next client. `client.connection_rate_limit` N admits a burst of N, then N per
//! second (the documented meaning). Both keys work flat and nested, and `checkconfig` shows them.

mod common;
mod emulation_support;

use std::time::{Duration, Instant};

use common::*;
use emulation_support::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UPGRADE: &str = "GET /connection/websocket HTTP/1.1\r\nHost: localhost\r\n\
    Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Reads one response head from `s` (5 s deadline): its status and its lower-cased text.
async fn read_head(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 1];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(1)) => buf.push(chunk[0]),
            other => panic!("no response head: {other:?}, got {buf:?}"),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {text}"));
    (status, text)
}

/// A WebSocket upgrade as the first request of a new TCP connection (the fast path): the
/// connection (open on 101) and the status.
async fn raw_upgrade(server: &Server) -> (TcpStream, u16) {
    let mut s = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    s.write_all(UPGRADE.as_bytes()).await.unwrap();
    let (status, _) = read_head(&mut s).await;
    (s, status)
}

/// A WebSocket upgrade as the second request of a keep-alive connection (hyper's path).
async fn upgrade_after_a_request(server: &Server) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (status, head) = read_head(&mut s).await;
    assert_eq!(status, 200, "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    s.write_all(UPGRADE.as_bytes()).await.unwrap();
    read_head(&mut s).await.0
}

/// The status a WebSocket client library sees: 101 when it opened, else the HTTP status.
async fn ws_status(server: &Server) -> (Option<Ws>, u16) {
    ws_status_at(&server.ws_url()).await
}

/// [`ws_status`] for `url`.
async fn ws_status_at(url: &str) -> (Option<Ws>, u16) {
    match Ws::try_open(url).await {
        Ok(ws) => (Some(ws), 101),
        Err(e) if e.contains("503") => (None, 503),
        Err(e) => panic!("unexpected handshake failure: {e}"),
    }
}

/// `centrifugo_node_client_connection_limit` from `/metrics`.
async fn refusals_metric(server: &Server) -> f64 {
    let text = http()
        .get(server.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("centrifugo_node_client_connection_limit "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no counter in:\n{text}"))
}

/// Retries `attempt` until it is admitted (5 s at most): a closed connection leaves the count
/// when its task ends, a moment after the client closed.
async fn admitted_within<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = attempt().await {
            return t;
        }
        assert!(Instant::now() < deadline, "never admitted again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn websocket_limit_refuses_with_503_before_the_upgrade() {
    let server = Server::start(json!({
        "client": {"connection_limit": 3},
        "prometheus": true,
        "health": true,
    }))
    .await;
    assert_eq!(refusals_metric(&server).await, 0.0);
    let (mut a, _) = server.v2_client("a").await;
    let (_b, _) = server.v2_client("b").await;
    // An upgraded connection counts before its connect command.
    let (_c, status) = raw_upgrade(&server).await;
    assert_eq!(status, 101);

    // The fourth: 503 as a client library sees it, on the fast path and on hyper's.
    assert!(ws_status(&server).await.0.is_none());
    let (_, status) = raw_upgrade(&server).await;
    assert_eq!(status, 503);
    assert_eq!(upgrade_after_a_request(&server).await, 503);
    for _ in 0..3 {
        assert_eq!(ws_status(&server).await.1, 503);
    }
    assert_eq!(refusals_metric(&server).await, 6.0);
    // The API, health and metrics are not real-time connections: not limited.
    assert_eq!(api_v1(&server, "channels", json!({})).await.len(), 1);

    // The connected clients are untouched.
    a.assert_open_for(Duration::from_millis(100)).await;

    // One leaves: a new one gets in, and the node is full again.
    a.close().await;
    let mut d = admitted_within(|| async { ws_status(&server).await.0 }).await;
    let reply = d.connect_v2(&conn_token("d")).await;
    assert!(reply["client"].is_string(), "{reply}");
    assert_eq!(ws_status(&server).await.1, 503);

    // One warning for the burst of refusals, not one a refusal.
    let out = server.wait_output("node connection limit reached").await;
    let warnings = out.matches("node connection limit reached").count();
    assert!((1..7).contains(&warnings), "{warnings} warnings:\n{out}");
    assert!(
        warnings < 3,
        "the warning is rate-limited: {warnings}\n{out}"
    );
}

#[tokio::test]
async fn streams_count_and_are_refused_with_503() {
    let server = Server::start(json!({
        "client_connection_limit": 2,
        "http_stream": {"enabled": true},
        "sse": {"enabled": true},
        "uni_sse": {"enabled": true},
        "uni_websocket": {"enabled": true},
        "prometheus": true,
    }))
    .await;
    let (_hs, _) = http_stream_json(&server, "alice").await;
    let (_sse, _) = sse_get(&server, "bob").await;

    // Full: every real-time endpoint answers 503 before its stream or upgrade.
    let body = json!({"id": 1, "connect": {"token": conn_token("carol")}}).to_string();
    let resp = stream_client()
        .post(server.http_url("/connection/http_stream"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let cmd = json!({"id": 1, "connect": {"token": conn_token("carol")}}).to_string();
    let sse_url = reqwest::Url::parse_with_params(
        &server.http_url("/connection/sse"),
        &[("cf_connect", cmd.as_str())],
    )
    .unwrap();
    let resp = stream_client().get(sse_url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 503, "SSE fast path");
    let uni = json!({"token": conn_token("carol")}).to_string();
    let uni_url = reqwest::Url::parse_with_params(
        &server.http_url("/connection/uni_sse"),
        &[("cf_connect", uni.as_str())],
    )
    .unwrap();
    let resp = stream_client().get(uni_url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 503, "uni_sse");
    assert_eq!(ws_status(&server).await.1, 503);
    let uni_ws = format!("ws://127.0.0.1:{}/connection/uni_websocket", server.port);
    assert_eq!(ws_status_at(&uni_ws).await.1, 503, "uni_websocket");
    // A new SockJS session is a new connection.
    let sockjs = server.http_url("/connection/sockjs/000/limited/xhr_streaming");
    let resp = stream_client().post(sockjs).send().await.unwrap();
    assert_eq!(resp.status(), 503, "SockJS");
    assert_eq!(refusals_metric(&server).await, 6.0);

    // alice's stream ends (server disconnect): a uni_sse client gets her slot, then none is left.
    api_v1(&server, "disconnect", json!({"user": "alice"})).await;
    let mut uni_stream = admitted_within(|| async {
        let resp = stream_client().get(uni_url.clone()).send().await.unwrap();
        (resp.status() == 200).then(|| Stream::new(resp, Framing::Sse))
    })
    .await;
    assert_eq!(uni_stream.take_raw(2).await, b"\r\n", "the SSE prelude");
    let connect = uni_stream.json().await;
    assert!(connect["connect"]["client"].is_string(), "{connect}");
    let resp = stream_client().get(sse_url).send().await.unwrap();
    assert_eq!(resp.status(), 503);
}

/// Sends `n` upgrades at once on fresh connections; the statuses, in order.
async fn upgrade_burst(server: &Server, n: usize, open: &mut Vec<TcpStream>) -> Vec<u16> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(
            TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    for s in &mut conns {
        s.write_all(UPGRADE.as_bytes()).await.unwrap();
    }
    let mut statuses = Vec::new();
    for mut s in conns {
        statuses.push(read_head(&mut s).await.0);
        open.push(s);
    }
    statuses
}

#[tokio::test]
async fn rate_limit_is_a_burst_of_n_refilled_n_per_second() {
    let server = Server::start(json!({
        "client": {"connection_rate_limit": 2},
        "prometheus": true,
    }))
    .await;
    let mut open = Vec::new();
    let mut statuses = upgrade_burst(&server, 3, &mut open).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [101, 101, 503], "burst of 2, the third refused");
    // 0.6 s refills 1.2 tokens at 2 per second (at Centrifugo's 1 per second: 0.6, refused).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (ws, status) = ws_status(&server).await;
    assert_eq!(status, 101, "refilled after 0.6 s");
    drop(ws);
    // Never more than the burst at once, however long the wait was.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let statuses = upgrade_burst(&server, 3, &mut open).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 101).count(),
        2,
        "{statuses:?}"
    );
    // Rate refusals are not connection-limit refusals, and are not logged (as Centrifugo).
    assert_eq!(refusals_metric(&server).await, 0.0);
    assert!(!server.output().contains("node connection limit reached"));
}

/// `rotor checkconfig -c <file>`: its stdout parsed, and its stderr.
fn checkconfig(name: &str, text: &str) -> (Value, String) {
    let dir = std::env::temp_dir().join(format!("rotor-limits-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("checkconfig")
        .arg("-c")
        .arg(&path)
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (v, stderr + &stdout)
}

#[test]
fn flat_and_nested_keys_show_in_checkconfig() {
    let flat = r#"{"token_hmac_secret_key": "s", "client_connection_limit": 7,
        "client_connection_rate_limit": 9}"#;
    let nested = r#"{"client": {"token": {"hmac_secret_key": "s"},
        "connection_limit": 7, "connection_rate_limit": 9}}"#;
    for (name, text) in [("flat.json", flat), ("nested.json", nested)] {
        let (v, all) = checkconfig(name, text);
        assert_eq!(v["client_connection_limit"], 7, "{name}: {v}");
        assert_eq!(v["client_connection_rate_limit"], 9, "{name}: {v}");
        assert!(!all.contains("not supported yet"), "{name}: {all}");
    }
    let (v, _) = checkconfig("default.json", r#"{"token_hmac_secret_key": "s"}"#);
    assert_eq!(v["client_connection_limit"], 0, "{v}");
    assert_eq!(v["client_connection_rate_limit"], 0, "{v}");
}
