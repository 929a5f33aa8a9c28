//! Every request size is bounded, over real sockets: the HTTP head (431 past 64 KiB or 100
//! headers), request bodies (server API 413 past 2 MiB, HTTP-streaming and `/emulation` past
//! their `max_request_body_size`, SockJS `xhr_send` past its limit), WebSocket messages past
//! `websocket_message_size_limit` (close 1009, also when the oversized part is the token).
//! And the slow-loris case (issue 18 item 4): many connections that never finish their
//! request head do not stop others from connecting, and each is closed by the head timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `req` on a fresh connection; the status of the answer (0 if the server closed
/// without one).
async fn raw_status(port: u16, req: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(req).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn http_heads_are_bounded() {
    let server = Server::start(json!({"health": true})).await;
    let ok = raw_status(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(ok, 200);
    // A head past 64 KiB (one huge cookie), on the WebSocket path and elsewhere.
    for path in ["/health", "/connection/websocket"] {
        let big = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        );
        assert_eq!(raw_status(server.port, big.as_bytes()).await, 431, "{path}");
    }
    // Within the limit (a 40 KiB head goes past the fast path's 16 KiB, to hyper): served.
    let fine = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    assert_eq!(raw_status(server.port, fine.as_bytes()).await, 200);
    // More than 100 headers.
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(raw_status(server.port, req.as_bytes()).await, 431);
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn request_bodies_are_bounded() {
    let server = Server::start(json!({
        "http_stream": true,
        "http_stream_max_request_body_size": 1000,
        "emulation_max_request_body_size": 1000,
    }))
    .await;
    let c = http();
    // Server API: 2 MiB.
    let big = format!(
        r#"{{"channel":"a","data":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024 + 10)
    );
    let r = c
        .post(server.http_url("/api/publish"))
        .header("X-API-Key", API_KEY)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // HTTP-streaming connect and /emulation: their configured limits.
    let token = conn_token(&"u".repeat(2000));
    let connect = json!({"id": 1, "connect": {"token": token}}).to_string();
    let r = c
        .post(server.http_url("/connection/http_stream"))
        .body(connect)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let emu = json!({"node": "n", "session": "s", "data": "x".repeat(2000)}).to_string();
    let r = c
        .post(server.http_url("/emulation"))
        .body(emu)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // SockJS xhr_send: 1 MiB at least.
    let r = c
        .post(server.http_url("/connection/sockjs/000/big1/xhr"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let frames = serde_json::to_string(&vec!["x".repeat(1024); 1100]).unwrap();
    let r = c
        .post(server.http_url("/connection/sockjs/000/big1/xhr_send"))
        .body(frames)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn websocket_messages_and_tokens_are_bounded() {
    let server = Server::start(json!({"websocket_message_size_limit": 1024})).await;
    // A token larger than the message limit: close 1009.
    let mut ws = Ws::open(&server.ws_url()).await;
    let token = conn_token(&"u".repeat(2000));
    ws.send(&json!({"id": 1, "connect": {"token": token}}))
        .await;
    assert_eq!(ws.close_within(WAIT).await.0, 1009);
    // A large message after a normal connect: 1009 as well.
    let (mut ws, _) = server.v2_client("alice").await;
    ws.send_text(&format!(
        r#"{{"id":2,"publish":{{"channel":"a","data":"{}"}}}}"#,
        "x".repeat(2000)
    ))
    .await;
    assert_eq!(ws.close_within(WAIT).await.0, 1009);
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn unfinished_heads_do_not_lock_others_out_and_time_out() {
    // A connection limit too: connections that never upgrade do not count toward it.
    let server = Server::start(json!({"health": true, "client_connection_limit": 5})).await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        // Half send part of an upgrade head, half a keep-alive request and then part of a
        // second head (hyper's path).
        if i % 2 == 0 {
            s.write_all(b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpg")
                .await
                .unwrap();
        } else {
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHo")
                .await
                .unwrap();
        }
        stalled.push(s);
    }
    // Others are served meanwhile: API, health, and real-time clients up to the limit.
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(server.v2_client(&format!("u{i}")).await);
    }
    let status = raw_status(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 200);
    // The limit still holds for real connections.
    assert!(Ws::try_open(&server.ws_url()).await.is_err());
    drop(clients);
    // Trickle one byte per second on a few: the head timeout (30 s) still ends them.
    let trickle_until = Instant::now() + Duration::from_secs(40);
    let mut closed = vec![None; stalled.len()];
    let mut buf = [0u8; 4096];
    while closed.iter().any(Option::is_none) && Instant::now() < trickle_until {
        for (i, s) in stalled.iter_mut().enumerate() {
            if closed[i].is_some() {
                continue;
            }
            if i < 10 {
                let _ = s.write_all(b"x").await;
            }
            // Read what is there (the keep-alive request's answer), and notice the close.
            loop {
                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        closed[i] = Some(started.elapsed());
                        break;
                    }
                    Ok(Ok(_)) => continue,
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "every unfinished head closed within 40 s");
    let first = closed.iter().flatten().min().unwrap();
    assert!(
        *first >= Duration::from_secs(25),
        "not closed before the timeout: {first:?}"
    );
    server.assert_serves_fresh_client().await;
}
