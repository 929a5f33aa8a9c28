//! HTTP-streaming and SSE with bidirectional emulation against the real binary, spoken raw over
//! HTTP (TRANSPORTS.md §2): the connect result's `session` and `node`, commands through
//! `/emulation` (JSON and Protobuf), publications on the stream, the status codes of each
//! route, server disconnects as a push, pings answered by pongs through `/emulation`, and a
//! client that never reads its stream being closed without hurting the others.

mod common;
mod emulation_support;

use std::time::Duration;

use common::*;
use emulation_support::*;
use serde_json::{json, Value};

/// The transports on (v6 sections), plus channel options for client publish and presence.
fn config(extra: Value) -> Value {
    let mut c = json!({
        "http_stream": {"enabled": true},
        "sse": {"enabled": true},
        "publish": true,
        "presence": true,
    });
    if let (Some(a), Some(b)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
    c
}

/// The next publication push's data on `stream` (asserting its channel).
async fn publication(stream: &mut Stream, channel: &str) -> Value {
    loop {
        let m = stream.json().await;
        if let Some(p) = m.get("push").and_then(|p| p.get("pub")) {
            assert_eq!(m["push"]["channel"], channel, "{m}");
            return p["data"].clone();
        }
    }
}

/// The reply with `id` on `stream`.
async fn reply(stream: &mut Stream, id: u64) -> Value {
    loop {
        let m = stream.json().await;
        if m["id"] == id {
            return m;
        }
    }
}

#[tokio::test]
async fn http_stream_json_commands_via_emulation() {
    let server = Server::start(config(json!({}))).await;
    let (mut s, conn) = http_stream_json(&server, "alice").await;
    // Headers of the stream: no Content-Type, no caching, no proxy buffering.
    assert_eq!(s.header("content-type"), None);
    assert_eq!(
        s.header("cache-control").as_deref(),
        Some("private, no-cache, no-store, must-revalidate, max-age=0")
    );
    assert_eq!(s.header("pragma").as_deref(), Some("no-cache"));
    assert_eq!(s.header("expire").as_deref(), Some("0"));
    assert_eq!(s.header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(s.header("connection").as_deref(), Some("keep-alive"));
    // The connect result names the session and this node.
    let session = conn["session"].as_str().unwrap_or("");
    let node = conn["node"].as_str().unwrap_or("");
    assert_eq!(session.len(), 36, "session is a UUID: {conn}");
    assert!(!node.is_empty(), "node id: {conn}");
    assert!(conn["client"].is_string(), "{conn}");

    // subscribe and publish through /emulation; the replies come on the stream.
    let st = emulate(
        &server,
        &conn,
        &[json!({"id": 2, "subscribe": {"channel": "news"}})],
    )
    .await;
    assert_eq!(st, 204);
    let r = reply(&mut s, 2).await;
    assert!(
        r.get("error").is_none() && r["subscribe"].is_object(),
        "{r}"
    );

    api_publish(&server, "news", json!({"text": "from api"})).await;
    assert_eq!(
        publication(&mut s, "news").await,
        json!({"text": "from api"})
    );

    // Two commands in one request (one frame, `\n`-separated): publish and presence.
    let st = emulate(
        &server,
        &conn,
        &[
            json!({"id": 3, "publish": {"channel": "news", "data": {"text": "mine"}}}),
            json!({"id": 4, "presence": {"channel": "news"}}),
        ],
    )
    .await;
    assert_eq!(st, 204);
    let mut seen_pub = false;
    let mut seen = (false, false);
    while !(seen.0 && seen.1 && seen_pub) {
        let m = s.json().await;
        if m["id"] == 3 {
            assert!(m.get("error").is_none(), "{m}");
            seen.0 = true;
        } else if m["id"] == 4 {
            let presence = &m["presence"]["presence"];
            assert_eq!(presence.as_object().map(|o| o.len()), Some(1), "{m}");
            assert_eq!(presence[conn["client"].as_str().unwrap()]["user"], "alice");
            seen.1 = true;
        } else if let Some(p) = m.get("push").and_then(|p| p.get("pub")) {
            assert_eq!(p["data"], json!({"text": "mine"}));
            seen_pub = true;
        }
    }
    server.assert_alive();
}

#[tokio::test]
async fn http_stream_protobuf_round_trip() {
    let server = Server::start(config(json!({}))).await;
    let connect = pb::Command {
        id: 1,
        connect: Some(pb::ConnectRequest {
            token: conn_token("bob"),
        }),
        ..Default::default()
    };
    let resp = stream_client()
        .post(server.http_url("/connection/http_stream"))
        .header("Content-Type", "application/octet-stream")
        .body(pb::delimited(&connect))
        .send()
        .await
        .unwrap();
    let mut s = Stream::new(resp, Framing::Protobuf);
    assert_eq!(s.status, 200);
    let r = s.reply_pb().await;
    assert_eq!(r.id, 1);
    let res = r
        .connect
        .clone()
        .unwrap_or_else(|| panic!("connect result: {r:?}"));
    assert_eq!(res.session.len(), 36, "{res:?}");
    assert!(!res.node.is_empty());

    // A Protobuf EmulationRequest whose data is a Protobuf command (the client's encoding).
    let sub = pb::Command {
        id: 2,
        subscribe: Some(pb::SubscribeRequest {
            channel: "bin".into(),
        }),
        ..Default::default()
    };
    let req = pb::EmulationRequest {
        node: res.node.clone(),
        session: res.session.clone(),
        data: pb::delimited(&sub),
    };
    let st = emulate_raw(
        &server,
        "application/octet-stream",
        prost::Message::encode_to_vec(&req),
    )
    .await;
    assert_eq!(st, 204);
    let r = s.reply_pb().await;
    assert_eq!(
        (r.id, r.error.is_none(), r.subscribe.is_some()),
        (2, true, true),
        "{r:?}"
    );

    api_publish(&server, "bin", json!({"n": 1})).await;
    let r = s.reply_pb().await;
    let push = r.push.clone().unwrap_or_else(|| panic!("a push: {r:?}"));
    assert_eq!(push.channel, "bin");
    let data = push.r#pub.map(|p| p.data).unwrap_or_default();
    assert_eq!(
        serde_json::from_slice::<Value>(&data).ok(),
        Some(json!({"n": 1}))
    );

    // A server disconnect: a Protobuf disconnect push, then the body ends.
    let client = res.client.clone();
    api_v1(&server, "disconnect", json!({"user": "bob"})).await;
    let r = s.reply_pb().await;
    let d = r.push.clone().and_then(|p| p.disconnect);
    assert!(d.is_some_and(|d| d.code >= 3000), "client {client}: {r:?}");
    assert!(s.ends_within(WAIT).await, "the stream ends after the push");
}

#[tokio::test]
async fn sse_with_cf_connect_and_post() {
    let server = Server::start(config(json!({}))).await;
    let (mut s, conn) = sse_get(&server, "carol").await;
    assert_eq!(
        s.header("content-type").as_deref(),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(s.header("expire").as_deref(), Some("0"));
    assert_eq!(conn["session"].as_str().map(str::len), Some(36), "{conn}");
    let st = emulate(
        &server,
        &conn,
        &[json!({"id": 2, "subscribe": {"channel": "feed"}})],
    )
    .await;
    assert_eq!(st, 204);
    assert!(reply(&mut s, 2).await["subscribe"].is_object());
    api_publish(&server, "feed", json!("a\nb %20")).await;
    assert_eq!(publication(&mut s, "feed").await, json!("a\nb %20"));

    // The same connect as a POST body.
    let cmd = json!({"id": 1, "connect": {"token": conn_token("dave")}});
    let resp = stream_client()
        .post(server.http_url("/connection/sse"))
        .body(cmd.to_string())
        .send()
        .await
        .unwrap();
    let mut p = Stream::new(resp, Framing::Sse);
    assert_eq!(p.status, 200);
    assert_eq!(p.take_raw(2).await, b"\r\n");
    let r = p.json().await;
    assert!(r["connect"]["session"].is_string(), "{r}");

    // A server disconnect: the push as an event, then the end.
    api_v1(&server, "disconnect", json!({"user": "carol"})).await;
    let m = s.json().await;
    let d = &m["push"]["disconnect"];
    assert!(d["code"].as_u64().is_some_and(|c| c >= 3000), "{m}");
    assert!(d["reason"].is_string(), "{m}");
    assert!(s.ends_within(WAIT).await);
}

async fn status(req: reqwest::RequestBuilder) -> reqwest::Response {
    req.timeout(WAIT).send().await.expect("request")
}

#[tokio::test]
async fn status_codes() {
    let server = Server::start(config(json!({
        "http_stream": {"enabled": true, "max_request_body_size": 1000},
        "sse": {"enabled": true, "max_request_body_size": 1000},
        "emulation": {"max_request_body_size": 1000},
    })))
    .await;
    let c = stream_client();
    let hs = server.http_url("/connection/http_stream");
    let sse = server.http_url("/connection/sse");
    let em = server.http_url("/emulation");
    let big = vec![b'x'; 1001];

    // http_stream
    let r = status(c.request(reqwest::Method::OPTIONS, &hs)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-max-age"], "300");
    assert_eq!(r.headers()["access-control-allow-methods"], "POST, OPTIONS");
    assert_eq!(status(c.get(&hs)).await.status(), 405);
    assert_eq!(status(c.put(&hs)).await.status(), 405);
    assert_eq!(status(c.post(&hs).body(big.clone())).await.status(), 413);

    // sse
    assert_eq!(
        status(c.request(reqwest::Method::OPTIONS, &sse))
            .await
            .status(),
        405
    );
    assert_eq!(status(c.put(&sse)).await.status(), 405);
    assert_eq!(status(c.get(&sse)).await.status(), 400);
    assert_eq!(
        status(c.get(format!("{sse}?cf_connect="))).await.status(),
        400
    );
    assert_eq!(status(c.post(&sse).body(big.clone())).await.status(), 413);

    // /emulation
    let r = status(c.request(reqwest::Method::OPTIONS, &em)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-methods"], "POST, OPTIONS");
    assert_eq!(status(c.get(&em)).await.status(), 405);
    assert_eq!(status(c.post(&em).body(big)).await.status(), 413);
    assert_eq!(
        emulate_raw(&server, "application/json", b"{nope".to_vec()).await,
        400
    );
    // `data` must be a JSON string.
    let obj = br#"{"node":"n","session":"s","data":{"id":1}}"#.to_vec();
    assert_eq!(emulate_raw(&server, "application/json", obj).await, 400);
    assert_eq!(
        emulate_raw(&server, "application/octet-stream", vec![0xff; 3]).await,
        400
    );

    // A live session tells us this node's id: an unknown node is 404, an unknown session on
    // this node 204.
    let (_s, conn) = http_stream_json(&server, "eve").await;
    let unknown_node = json!({"node": "no-such-node", "session": conn["session"]});
    assert_eq!(
        emulate(&server, &unknown_node, &[json!({"id": 2, "ping": {}})]).await,
        404
    );
    let unknown_session = json!({"node": conn["node"], "session": "no-such-session"});
    assert_eq!(
        emulate(&server, &unknown_session, &[json!({"id": 2, "ping": {}})]).await,
        204
    );
    server.assert_alive();
}

#[tokio::test]
async fn cors_only_for_allowed_origins() {
    let server = Server::start(config(json!({"allowed_origins": ["http://good.example"]}))).await;
    let c = stream_client();
    let em = server.http_url("/emulation");
    let r = status(
        c.request(reqwest::Method::OPTIONS, &em)
            .header("Origin", "http://good.example")
            .header("Access-Control-Request-Headers", "content-type"),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://good.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(r.headers()["access-control-allow-headers"], "content-type");
    // A refused Origin is served, without CORS headers.
    let body = json!({"id": 1, "connect": {"token": conn_token("x")}}).to_string();
    let r = status(
        c.post(server.http_url("/connection/http_stream"))
            .header("Origin", "http://evil.example")
            .body(body),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn pings_answered_through_emulation_keep_the_stream() {
    let server = Server::start(config(
        json!({"client_ping_interval": 2, "client_pong_timeout": 1}),
    ))
    .await;
    let (mut kept, conn) = http_stream_json(&server, "pinger").await;
    let (mut silent, _) = http_stream_json(&server, "silent").await;
    assert_eq!(conn["ping"], 2, "{conn}");
    assert_eq!(conn["pong"], true, "{conn}");
    // Three pings, each answered by a pong through /emulation.
    for _ in 0..3 {
        let m = kept
            .json_within(Duration::from_secs(4))
            .await
            .expect("a ping within the interval");
        assert_eq!(m, json!({}), "a ping is an empty message");
        assert_eq!(emulate(&server, &conn, &[json!({})]).await, 204);
    }
    // The silent one is disconnected for its missing pong (3012), then its stream ends.
    loop {
        let m = silent
            .json_within(Duration::from_secs(4))
            .await
            .expect("disconnect push");
        if m == json!({}) {
            continue;
        }
        assert_eq!(m["push"]["disconnect"]["code"], 3012, "{m}");
        break;
    }
    assert!(silent.ends_within(WAIT).await);
    // The answering one is still served.
    assert_eq!(
        emulate(
            &server,
            &conn,
            &[json!({"id": 9, "subscribe": {"channel": "x"}})]
        )
        .await,
        204
    );
    let r = reply(&mut kept, 9).await;
    assert!(r.get("error").is_none(), "{r}");
    // A Protobuf stream's ping is an empty Reply: one 0x00 length prefix.
    let connect = pb::Command {
        id: 1,
        connect: Some(pb::ConnectRequest {
            token: conn_token("pb-pinger"),
        }),
        ..Default::default()
    };
    let resp = stream_client()
        .post(server.http_url("/connection/http_stream"))
        .header("Content-Type", "application/octet-stream")
        .body(pb::delimited(&connect))
        .send()
        .await
        .unwrap();
    let mut binary = Stream::new(resp, Framing::Protobuf);
    assert_eq!(binary.reply_pb().await.id, 1);
    let ping = binary.message_within(Duration::from_secs(4)).await;
    assert_eq!(ping, Some(Vec::new()), "an empty Protobuf message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_alone() {
    let server = Server::start(config(json!({"client_queue_max_size": 1048576}))).await;
    let (mut stuck, stuck_conn) = http_stream_json(&server, "stuck").await;
    let (mut good, good_conn) = http_stream_json(&server, "good").await;
    for conn in [&stuck_conn, &good_conn] {
        let st = emulate(
            &server,
            conn,
            &[json!({"id": 2, "subscribe": {"channel": "flood"}})],
        )
        .await;
        assert_eq!(st, 204);
    }
    assert!(reply(&mut stuck, 2).await["subscribe"].is_object());
    assert!(reply(&mut good, 2).await["subscribe"].is_object());

    // 24 MB of publications; `good` reads them all, `stuck` reads nothing meanwhile.
    let blob = "x".repeat(64 * 1024);
    let total = 384;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            let m = good.json().await;
            if m.get("push").is_some() {
                n += 1;
            }
        }
        good
    });
    for i in 0..total {
        api_publish(&server, "flood", json!({"i": i, "blob": blob})).await;
    }
    let mut good = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the reading client got every publication in time")
        .expect("reader task");

    // The stuck stream was closed: reading it now reaches its end, short of everything.
    let read = stuck
        .drain_within(Duration::from_secs(15))
        .await
        .expect("the stuck stream ends");
    assert!(
        read < total * blob.len(),
        "stuck got {read} bytes: not closed early"
    );
    // The other client and the server are fine.
    api_publish(&server, "flood", json!("after")).await;
    assert_eq!(publication(&mut good, "flood").await, json!("after"));
    server.assert_alive();
}

#[tokio::test]
async fn a_refused_connect_ends_the_stream_with_a_disconnect_push() {
    let server = Server::start(config(json!({}))).await;
    let body = json!({"id": 1, "connect": {"token": "not-a-jwt"}}).to_string();
    let resp = stream_client()
        .post(server.http_url("/connection/http_stream"))
        .body(body)
        .send()
        .await
        .unwrap();
    let mut s = Stream::new(resp, Framing::JsonLines);
    assert_eq!(s.status, 200);
    let m = s.json().await;
    assert_eq!(m["push"]["disconnect"]["code"], 3500, "{m}");
    assert_eq!(m["push"]["disconnect"]["reason"], "invalid token", "{m}");
    assert!(s.ends_within(WAIT).await);
    // Not a connect at all: the stream ends too (bad request).
    let resp = stream_client()
        .post(server.http_url("/connection/http_stream"))
        .body("{\"id\":1,\"subscribe\":{\"channel\":\"x\"}}")
        .send()
        .await
        .unwrap();
    let mut s = Stream::new(resp, Framing::JsonLines);
    assert!(s.ends_within(WAIT).await);
    server.assert_alive();
}
