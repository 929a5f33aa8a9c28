//! `allowed_origins` on every browser transport, over raw sockets: the client WebSocket (on a
//! fresh connection, the fast path, and after a keep-alive request, hyper's path), SockJS's
//! WebSocket and XHR routes, HTTP-streaming, SSE (both paths), `/emulation`, `uni_websocket`,
//! `uni_sse` and `uni_http_stream`, each with an allowed Origin, a foreign one and none.
//!
//! A refused Origin gets 403 on the WebSocket upgrades and no CORS headers on the HTTP
//! transports (served, but the browser withholds the answer), as Centrifugo does. Four
//! configurations: 2.x flat keys without `allowed_origins` (every Origin passes), 2.x with a
//! list, nested (Centrifugo 4+) keys without `client.allowed_origins` (every Origin refused,
//! Origin-less requests pass), and nested keys with a list.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GOOD: &str = "http://good.example";
const EVIL: &str = "http://evil.example";
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A fresh SockJS session id for every request (`{id}` in a path).
fn fresh_ids(path: &str) -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    path.replace("{id}", &format!("s{}", SEQ.fetch_add(1, Ordering::Relaxed)))
}

/// The transports under test, everything on, with flat keys (a nested key would make the
/// configuration a modern one).
fn transports() -> Value {
    json!({
        "health": true,
        "http_stream": true,
        "sse": true,
        "uni_websocket": true,
        "uni_sse": true,
        "uni_http_stream": true,
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// Reads one response head (status line and headers, lower-cased) and the bytes after it.
async fn read_head(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("no status in {head:?}"));
            return (status, head, buf[end + 4..].to_vec());
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("a response head in time")
            .expect("read");
        assert!(n > 0, "closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `GET /health` on `s`, read whole (keep-alive): the next request on `s` goes to hyper.
async fn keep_alive_request(s: &mut TcpStream) {
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head, rest) = read_head(s).await;
    assert_eq!(status, 200, "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.saturating_sub(rest.len())];
    s.read_exact(&mut body).await.unwrap();
}

/// One browser transport's first request.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// `GET` upgrade to this path: 101 or 403.
    Upgrade(&'static str),
    /// `GET`/`POST` whose answer carries CORS headers or not.
    Cors(&'static str, &'static str),
}

fn sse_query(cmd: &Value) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("cf_connect", &cmd.to_string())
        .finish()
}

/// Every browser transport's connection request; `(name, case, body)`.
fn cases() -> Vec<(&'static str, Case, String)> {
    let connect = json!({"id": 1, "connect": {"token": conn_token("u")}});
    let bare = json!({"token": conn_token("u")});
    let sse = Box::leak(format!("/connection/sse?{}", sse_query(&connect)).into_boxed_str());
    let uni_sse = Box::leak(format!("/connection/uni_sse?{}", sse_query(&bare)).into_boxed_str());
    vec![
        (
            "websocket",
            Case::Upgrade("/connection/websocket"),
            String::new(),
        ),
        (
            "sockjs websocket",
            Case::Upgrade("/connection/sockjs/000/{id}/websocket"),
            String::new(),
        ),
        (
            "uni_websocket",
            Case::Upgrade("/connection/uni_websocket"),
            String::new(),
        ),
        (
            "sockjs xhr",
            Case::Cors("POST", "/connection/sockjs/000/{id}/xhr"),
            String::new(),
        ),
        (
            "sockjs info",
            Case::Cors("GET", "/connection/sockjs/info"),
            String::new(),
        ),
        (
            "http_stream",
            Case::Cors("POST", "/connection/http_stream"),
            connect.to_string(),
        ),
        ("sse", Case::Cors("GET", sse), String::new()),
        (
            "emulation",
            Case::Cors("POST", "/emulation"),
            json!({"node": "none", "session": "none", "data": "{}"}).to_string(),
        ),
        ("uni_sse", Case::Cors("GET", uni_sse), String::new()),
        (
            "uni_http_stream",
            Case::Cors("POST", "/connection/uni_http_stream"),
            bare.to_string(),
        ),
    ]
}

fn request(case: Case, body: &str, origin: Option<&str>) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    match case {
        Case::Upgrade(path) => {
            let path = fresh_ids(path);
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{origin}\r\n"
            )
        }
        Case::Cors(method, path) => {
            let path = fresh_ids(path);
            format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{origin}\r\n{body}",
                body.len()
            )
        }
    }
}

/// What a browser would see: `true` = it may use the transport.
async fn admitted(
    server: &Server,
    name: &str,
    case: Case,
    body: &str,
    origin: Option<&str>,
) -> bool {
    let mut verdicts = Vec::new();
    for after_keep_alive in [false, true] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        if after_keep_alive {
            keep_alive_request(&mut s).await;
        }
        s.write_all(request(case, body, origin).as_bytes())
            .await
            .unwrap();
        let (status, head, _) = read_head(&mut s).await;
        let what = format!("{name} origin {origin:?} after keep-alive {after_keep_alive}: {head}");
        let verdict = match case {
            Case::Upgrade(_) => {
                assert!(status == 101 || status == 403, "{what}");
                status == 101
            }
            Case::Cors(..) => {
                // `/emulation` for an unknown node: 404, with CORS like any other answer.
                assert!(status < 300 || status == 404, "served either way: {what}");
                let acao = head
                    .lines()
                    .find_map(|l| l.strip_prefix("access-control-allow-origin: "))
                    .map(str::to_string);
                match (origin, acao) {
                    (Some(o), Some(a)) => {
                        assert_eq!(a, o, "the exact Origin, never `*`: {what}");
                        assert!(
                            head.contains("access-control-allow-credentials: true"),
                            "{what}"
                        );
                        true
                    }
                    (Some(_), None) => false,
                    // Without an Origin there is no CORS to speak of: not a browser.
                    (None, _) => true,
                }
            }
        };
        verdicts.push(verdict);
    }
    assert_eq!(
        verdicts[0], verdicts[1],
        "both paths agree for {name} {origin:?}"
    );
    verdicts[0]
}

/// Checks every transport: `good`/`evil` = whether those Origins are admitted.
async fn check_all(server: &Server, good: bool, evil: bool) {
    for (name, case, body) in cases() {
        assert_eq!(
            admitted(server, name, case, &body, Some(GOOD)).await,
            good,
            "{name} from {GOOD}"
        );
        assert_eq!(
            admitted(server, name, case, &body, Some(EVIL)).await,
            evil,
            "{name} from {EVIL}"
        );
        assert!(
            admitted(server, name, case, &body, None).await,
            "{name} without an Origin"
        );
    }
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn flat_config_without_allowed_origins_admits_every_origin() {
    let server = Server::start(transports()).await;
    check_all(&server, true, true).await;
}

#[tokio::test]
async fn flat_allowed_origins_enforced_on_every_transport() {
    let server = Server::start(with(transports(), json!({"allowed_origins": [GOOD]}))).await;
    check_all(&server, true, false).await;
}

#[tokio::test]
async fn nested_config_without_allowed_origins_refuses_browsers() {
    // `client.*` nested keys: a Centrifugo 4+ configuration.
    let server = Server::start(with(
        transports(),
        json!({"client": {"ping_interval": "25s"}}),
    ))
    .await;
    check_all(&server, false, false).await;
}

#[tokio::test]
async fn nested_allowed_origins_enforced_on_every_transport() {
    let server = Server::start(with(
        transports(),
        json!({"client": {"allowed_origins": ["http://*.example"]}}),
    ))
    .await;
    // A pattern: both match.
    check_all(&server, true, true).await;
    let server = Server::start(with(
        transports(),
        json!({"client": {"allowed_origins": [GOOD]}}),
    ))
    .await;
    check_all(&server, true, false).await;
}

#[tokio::test]
async fn refused_origins_do_not_spend_the_connection_rate_limit() {
    // A burst of 3 new connections per second. Twenty upgrades from a foreign page are
    // refused for their Origin (403) before the limit is asked, so the page's own users still
    // get in right after; then the limit itself still acts (503 once the burst is spent).
    let server = Server::start(with(
        transports(),
        json!({"allowed_origins": [GOOD], "client_connection_rate_limit": 3}),
    ))
    .await;
    let port = server.port;
    let upgrade = |origin: &'static str| async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let req = request(Case::Upgrade("/connection/websocket"), "", Some(origin));
        s.write_all(req.as_bytes()).await.unwrap();
        read_head(&mut s).await.0
    };
    // A full bucket whatever the start-up probe took.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..20 {
        assert_eq!(
            upgrade(EVIL).await,
            403,
            "a foreign Origin is refused as such"
        );
    }
    let mut good = Vec::new();
    for _ in 0..6 {
        good.push(upgrade(GOOD).await);
    }
    assert_eq!(
        &good[..3],
        &[101, 101, 101],
        "the burst is intact: {good:?}"
    );
    assert!(
        good[3..].contains(&503),
        "the rate limit still acts: {good:?}"
    );
}
