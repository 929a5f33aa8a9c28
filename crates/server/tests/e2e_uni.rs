//! The unidirectional transports against the real binary (TRANSPORTS.md §3): uni_websocket,
//! uni_sse and uni_http_stream, spoken raw. Each connects with a bare `ConnectRequest`
//! (token `channels` plus request `subs` of a public channel), gets the bare connect push
//! first, an API publication as a bare push, `{}` pings, and an API disconnect as the last
//! push before the end; plus the status codes of bad requests, a bad first WebSocket message
//! (3501), an expired token (3005) and `connect_code_to_http_response`.

mod common;
mod emulation_support;

use std::time::Duration;

use common::*;
use emulation_support::*;
use serde_json::{json, Value};

/// The uni transports on (v6 sections) with a 1 s ping interval; `extra` merged on top.
fn config(extra: Value) -> Value {
    let mut c = json!({
        "uni_websocket": {"enabled": true},
        "uni_sse": {"enabled": true},
        "uni_http_stream": {"enabled": true},
        "ping_interval": "1s",
        "pong_timeout": "1s",
    });
    if let (Some(a), Some(b)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
    c
}

/// A connect request for `user` with `news` in the token and `public` requested.
fn connect_request(user: &str) -> Value {
    json!({
        "token": jwt(&json!({"sub": user, "channels": ["news"]})),
        "subs": {"public": {}},
        "name": "uni-test",
    })
}

/// Asserts a bare connect push and returns its body.
fn assert_connect(v: &Value) -> Value {
    let c = v
        .get("connect")
        .unwrap_or_else(|| panic!("not a connect push: {v}"));
    assert!(c["client"].is_string(), "{v}");
    assert_eq!(c["ping"], 1, "{v}");
    assert!(c.get("pong").is_none(), "no pong on uni: {v}");
    assert!(c.get("node").is_none(), "no node on uni: {v}");
    assert!(c["subs"]["news"].is_object(), "token channel: {v}");
    assert!(c["subs"]["public"].is_object(), "requested channel: {v}");
    assert!(
        v.get("push").is_none() && v.get("id").is_none(),
        "bare: {v}"
    );
    c.clone()
}

/// Publishes on `news` and `public` through the API and checks both arrive as bare pushes,
/// then that a ping `{}` comes, then that an API disconnect is the last push.
async fn publications_ping_disconnect(server: &Server, user: &str, mut next: impl AsyncNext) {
    api_publish(server, "news", json!({"n": 1})).await;
    let p = next.non_ping().await;
    assert_eq!(p["channel"], "news", "{p}");
    assert_eq!(p["pub"]["data"], json!({"n": 1}), "{p}");
    assert!(p.get("push").is_none(), "bare push: {p}");
    api_publish(server, "public", json!({"n": 2})).await;
    let p = next.non_ping().await;
    assert_eq!(
        (p["channel"].as_str(), &p["pub"]["data"]),
        (Some("public"), &json!({"n": 2}))
    );
    // A ping within two intervals.
    let mut pinged = false;
    for _ in 0..5 {
        if next.any().await == json!({}) {
            pinged = true;
            break;
        }
    }
    assert!(pinged, "no {{}} ping");
    api_v1(server, "disconnect", json!({"user": user})).await;
    let d = next.non_ping().await;
    assert_eq!(d["disconnect"]["code"], 3503, "{d}");
    assert_eq!(d["disconnect"]["reason"], "force disconnect", "{d}");
}

/// Reading the next message of a connection, whatever the transport.
trait AsyncNext {
    async fn any(&mut self) -> Value;
    async fn non_ping(&mut self) -> Value {
        loop {
            let v = self.any().await;
            if v != json!({}) {
                return v;
            }
        }
    }
}

impl AsyncNext for &mut Stream {
    async fn any(&mut self) -> Value {
        self.json_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no message on the stream"))
    }
}

impl AsyncNext for &mut Ws {
    async fn any(&mut self) -> Value {
        self.recv().await
    }
}

async fn uni_http_stream(server: &Server, body: String) -> reqwest::Response {
    stream_client()
        .post(server.http_url("/connection/uni_http_stream"))
        .body(body)
        .send()
        .await
        .expect("uni_http_stream POST")
}

#[tokio::test]
async fn uni_http_stream_pushes() {
    let server = Server::start(config(json!({}))).await;
    let resp = uni_http_stream(&server, connect_request("alice").to_string()).await;
    let mut s = Stream::new(resp, Framing::JsonLines);
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), None);
    let c = assert_connect(&(&mut s).non_ping().await);
    assert_eq!(c["session"].as_str().map(str::len), Some(36), "{c}");
    publications_ping_disconnect(&server, "alice", &mut s).await;
    assert!(
        s.ends_within(WAIT).await,
        "the stream ends after the disconnect push"
    );
}

#[tokio::test]
async fn uni_sse_pushes_get_and_post() {
    let server = Server::start(config(json!({}))).await;
    let url = reqwest::Url::parse_with_params(
        &server.http_url("/connection/uni_sse"),
        &[("cf_connect", connect_request("alice").to_string())],
    )
    .unwrap();
    let resp = stream_client().get(url).send().await.unwrap();
    let mut s = Stream::new(resp, Framing::Sse);
    assert_eq!(s.status, 200);
    assert_eq!(
        s.header("content-type").as_deref(),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(s.take_raw(2).await, b"\r\n", "the SSE prelude");
    assert_connect(&(&mut s).non_ping().await);
    publications_ping_disconnect(&server, "alice", &mut s).await;
    assert!(s.ends_within(WAIT).await);

    // The same as a POST body.
    let resp = stream_client()
        .post(server.http_url("/connection/uni_sse"))
        .body(connect_request("bob").to_string())
        .send()
        .await
        .unwrap();
    let mut s = Stream::new(resp, Framing::Sse);
    assert_eq!(s.status, 200);
    assert_eq!(s.take_raw(2).await, b"\r\n");
    assert_connect(&(&mut s).non_ping().await);
    api_publish(&server, "news", json!({"to": "bob"})).await;
    assert_eq!(
        (&mut s).non_ping().await["pub"]["data"],
        json!({"to": "bob"})
    );
}

#[tokio::test]
async fn uni_websocket_pushes_pings_and_close() {
    let server = Server::start(config(json!({}))).await;
    let url = reqwest::Url::parse_with_params(
        &server.http_url("/connection/uni_websocket"),
        &[("cf_connect", connect_request("alice").to_string())],
    )
    .unwrap()
    .to_string()
    .replacen("http://", "ws://", 1);
    let mut ws = Ws::open(&url).await;
    assert_connect(&ws.recv().await);
    // WebSocket Ping frames each interval, besides the app pings (tungstenite answers them,
    // so the connection stays past interval + pong timeout).
    ws.assert_open_for(Duration::from_millis(2600)).await;
    assert!(
        ws.control_pings >= 2,
        "WebSocket Ping frames: {}",
        ws.control_pings
    );
    assert!(ws.pings >= 2, "app pings: {}", ws.pings);
    // A broadcast to both channels: two pushes, two messages (not joined by default).
    api_v1(
        &server,
        "broadcast",
        json!({"channels": ["news", "public"], "data": {"b": 1}}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!((&mut ws).non_ping().await["pub"]["data"], json!({"b": 1}));
    }
    publications_ping_disconnect(&server, "alice", &mut ws).await;
    // One text message per push.
    assert!(
        ws.frames.iter().all(|f| !f.contains('\n')),
        "{:?}",
        ws.frames
    );
    assert_eq!(
        ws.expect_close().await,
        (3503, "force disconnect".to_string()),
        "close frame with the plain reason after the push"
    );
}

#[tokio::test]
async fn uni_websocket_first_message_connect_and_bad_inputs() {
    let server = Server::start(config(json!({}))).await;
    let base = server
        .http_url("/connection/uni_websocket")
        .replacen("http://", "ws://", 1);
    // Connect request as the first message.
    let mut ws = Ws::open(&base).await;
    ws.send(&connect_request("carol")).await;
    assert_connect(&ws.recv().await);
    api_publish(&server, "news", json!({"x": 1})).await;
    assert_eq!((&mut ws).non_ping().await["pub"]["data"], json!({"x": 1}));
    // Whatever the client sends afterwards is dropped, the connection stays.
    ws.send_text("not json at all").await;
    api_publish(&server, "news", json!({"x": 2})).await;
    assert_eq!((&mut ws).non_ping().await["pub"]["data"], json!({"x": 2}));

    // A first message that is not a connect request: close 3501.
    let mut bad = Ws::open(&base).await;
    bad.send_text("{broken").await;
    assert_eq!(bad.expect_close().await.0, 3501);

    // A first message over `message_size_limit` (65536): close 1009.
    let mut big = Ws::open(&base).await;
    big.send(&json!({"token": "x".repeat(70_000)})).await;
    assert_eq!(big.expect_close().await.0, 1009);

    // A bad cf_connect: 400 before the upgrade.
    let url = format!("{base}?cf_connect=%7Bbroken");
    let err = Ws::try_open(&url).await.err().unwrap_or_default();
    assert!(err.contains("400"), "{err}");

    // An expired token: the 3005 disconnect push, then the close.
    let expired = jwt(&json!({"sub": "dave", "exp": now() - 60}));
    let mut ws = Ws::open(&base).await;
    ws.send(&json!({"token": expired})).await;
    let d = ws.recv().await;
    assert_eq!(d["disconnect"]["code"], 3005, "{d}");
    assert_eq!(ws.expect_close().await.0, 3005);
}

#[tokio::test]
async fn uni_websocket_joined_pushes() {
    let server = Server::start(config(json!({
        "uni_websocket": {"enabled": true, "join_push_messages": true},
    })))
    .await;
    let base = server
        .http_url("/connection/uni_websocket")
        .replacen("http://", "ws://", 1);
    let mut ws = Ws::open(&base).await;
    ws.send(&connect_request("erin")).await;
    assert_connect(&ws.recv().await);
    // One API broadcast to both of the client's channels: its two pushes are written at
    // once, as one message joined with `\n` (retried: the two may land in separate writes).
    let mut joined = None;
    for i in 0..10 {
        api_v1(
            &server,
            "broadcast",
            json!({"channels": ["news", "public"], "data": {"i": i}}),
        )
        .await;
        for _ in 0..2 {
            let v = (&mut ws).non_ping().await;
            assert_eq!(v["pub"]["data"], json!({"i": i}), "{v}");
        }
        joined = ws.frames.iter().find(|f| f.contains('\n')).cloned();
        if joined.is_some() {
            break;
        }
    }
    let joined = joined.unwrap_or_else(|| panic!("no joined message: {:?}", ws.frames));
    let parts: Vec<Value> = joined
        .split('\n')
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(parts.len() >= 2 && !joined.ends_with('\n'), "{joined:?}");
    assert!(
        parts
            .iter()
            .all(|p| p.get("channel").is_some() || *p == json!({})),
        "{joined:?}"
    );
}

#[tokio::test]
async fn uni_http_statuses() {
    let server = Server::start(config(json!({
        "uni_http_stream": {"enabled": true, "max_request_body_size": 100},
        "uni_sse": {"enabled": true, "max_request_body_size": 100},
        "allowed_origins": ["http://app.example"],
    })))
    .await;
    let c = http();
    let hs = server.http_url("/connection/uni_http_stream");
    let sse = server.http_url("/connection/uni_sse");
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(c.get(&hs).send().await.unwrap()), 405);
    assert_eq!(status(c.put(&sse).send().await.unwrap()), 405);
    assert_eq!(
        status(c.post(&hs).body("{broken").send().await.unwrap()),
        400
    );
    assert_eq!(status(c.post(&hs).body("").send().await.unwrap()), 400);
    assert_eq!(status(c.post(&sse).body("[1,").send().await.unwrap()), 400);
    let bad_query = format!("{sse}?cf_connect=%7Bbroken");
    assert_eq!(status(c.get(&bad_query).send().await.unwrap()), 400);
    let big = json!({"token": "x".repeat(200)}).to_string();
    assert_eq!(
        status(c.post(&hs).body(big.clone()).send().await.unwrap()),
        413
    );
    assert_eq!(status(c.post(&sse).body(big).send().await.unwrap()), 413);
    // The preflight of uni_http_stream.
    let r = c
        .request(reqwest::Method::OPTIONS, &hs)
        .header("Origin", "http://app.example")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        h("access-control-allow-origin").as_deref(),
        Some("http://app.example")
    );
    assert_eq!(
        h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        h("access-control-allow-headers").as_deref(),
        Some("content-type")
    );
    // A uni_websocket upgrade from a refused Origin.
    let ws_url = server
        .http_url("/connection/uni_websocket")
        .replacen("http://", "ws://", 1);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.err();
    assert!(format!("{err:?}").contains("403"), "{err:?}");
}

#[tokio::test]
async fn expired_token_disconnect_push() {
    let server = Server::start(config(json!({}))).await;
    let expired = jwt(&json!({"sub": "dave", "exp": now() - 60}));
    let resp = uni_http_stream(&server, json!({"token": expired}).to_string()).await;
    let mut s = Stream::new(resp, Framing::JsonLines);
    assert_eq!(s.status, 200);
    let d = (&mut s).non_ping().await;
    assert_eq!(d["disconnect"]["code"], 3005, "{d}");
    assert_eq!(d["disconnect"]["reason"], "connection expired", "{d}");
    assert!(s.ends_within(WAIT).await);
}

#[tokio::test]
async fn connect_code_to_http_response() {
    let transform = json!({
        "enabled": true,
        "connect_code_to_http_response": {
            "enabled": true,
            "transforms": [{"code": 109, "to": {"status_code": 401, "body": "token expired"}}],
        },
    });
    let server = Server::start(config(json!({
        "uni_http_stream": transform,
        "uni_sse": transform,
    })))
    .await;
    let expired = jwt(&json!({"sub": "dave", "exp": now() - 60}));
    let body = json!({"token": expired}).to_string();
    let r = http()
        .post(server.http_url("/connection/uni_http_stream"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.text().await.unwrap(), "token expired");
    let r = http()
        .post(server.http_url("/connection/uni_sse"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // No transform for this error: 500.
    let r = http()
        .post(server.http_url("/connection/uni_http_stream"))
        .body(json!({"token": "not.a.token"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(r.text().await.unwrap(), "Internal Server Error");
    // A good connect still streams.
    let resp = uni_http_stream(&server, connect_request("alice").to_string()).await;
    let mut s = Stream::new(resp, Framing::JsonLines);
    assert_eq!(s.status, 200);
    assert_connect(&(&mut s).non_ping().await);
    api_publish(&server, "news", json!({"ok": true})).await;
    assert_eq!(
        (&mut s).non_ping().await["pub"]["data"],
        json!({"ok": true})
    );
}

#[tokio::test]
async fn uni_websocket_without_pongs_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(config(json!({}))).await;
    // A raw client that upgrades and then never answers the server's Ping frames.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let query = reqwest::Url::parse_with_params(
        "http://x/connection/uni_websocket",
        &[("cf_connect", connect_request("frank").to_string())],
    )
    .unwrap();
    let head = format!(
        "GET /connection/uni_websocket?{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        query.query().unwrap_or("")
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.contains("{\"connect\":"),
        "the connect push came: {text}"
    );
    assert!(
        got.windows(2).any(|w| w == [0x89, 0x00]),
        "a Ping frame came"
    );
    assert!(ended.is_ok(), "closed within ping interval + pong timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before the pong wait: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_ends_uni_streams_with_a_shutdown_push() {
    let server = Server::start(config(json!({}))).await;
    let resp = uni_http_stream(&server, connect_request("gina").to_string()).await;
    let mut s = Stream::new(resp, Framing::JsonLines);
    assert_connect(&(&mut s).non_ping().await);
    let base = server
        .http_url("/connection/uni_websocket")
        .replacen("http://", "ws://", 1);
    let mut ws = Ws::open(&base).await;
    ws.send(&connect_request("gina")).await;
    assert_connect(&ws.recv().await);
    server.terminate();
    let d = (&mut s).non_ping().await;
    assert_eq!(d["disconnect"]["code"], 3001, "{d}");
    assert_eq!(d["disconnect"]["reason"], "shutdown", "{d}");
    assert!(s.ends_within(Duration::from_secs(10)).await);
    let d = (&mut ws).non_ping().await;
    assert_eq!(d["disconnect"]["code"], 3001, "{d}");
    assert_eq!(ws.close_within(Duration::from_secs(10)).await.0, 3001);
}
