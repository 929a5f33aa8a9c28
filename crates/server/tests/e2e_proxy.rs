//! End-to-end tests of the proxies to the application backend with a Centrifugo 2.x flat config
//! (`proxy_*_endpoint`, namespace `proxy_subscribe` / `proxy_publish`) and client protocol v1
//! (centrifuge-js 2.x framing), JSON and Protobuf: the real `rotor` binary, a real HTTP backend
//! started by the test (`proxy_support::HttpBackend`), raw WebSocket frames. Each test checks
//! what the client sees and what the backend received. Expectations: PROXY.md (§3, §5, §6) and
//! the lead's decisions in notes/behaviour.md.

mod common;
mod proxy_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use proxy_support::*;
use serde_json::{json, Value};

/// Proxy timeout of these servers, in 2.x float seconds: generous, no test here waits for it.
const T: f64 = 2.0;

fn error_reply(id: u64, code: u64, message: &str) -> Value {
    json!({"id": id, "error": {"code": code, "message": message}})
}

/// The backend most tests use; the answer depends on the path and on what the client sent.
///
/// * `/connect`: client data `{"case":"disconnect"}` → disconnect 4000 "bye" reconnect;
///   `{"case":"error"}` → error 1000; `noresult` → `{}`; `anon` → user ""; `badchan` → a
///   channel in an unknown namespace; `past` → expire_at in the past; otherwise user `u42`,
///   info, data, channel `news`.
/// * `/rpc`: by method: `getPrice` → `{"price":2019}`; none → echo of the data; `refuse` →
///   error 1001; `empty` → a result without data; `bye` → disconnect 4001.
/// * `/subscribe`: `sp:denied` → error 1003; otherwise info `{"role":"mod"}`.
/// * `/publish`: data `{"refuse":true}` → error 1004; otherwise data replaced.
fn standard(s: &Seen) -> Answer {
    let data = &s.body["data"];
    match s.path.as_str() {
        "/connect" => match data["case"].as_str() {
            Some("disconnect") => Answer::json(
                json!({"disconnect": {"code": 4000, "reason": "bye", "reconnect": true}}),
            ),
            Some("error") => Answer::error(1000, "custom error"),
            Some("noresult") => Answer::json(json!({})),
            Some("anon") => Answer::result(json!({"user": ""})),
            Some("badchan") => Answer::result(json!({"user": "u42", "channels": ["nope:x"]})),
            Some("past") => Answer::result(json!({"user": "u42", "expire_at": now() - 10})),
            _ => Answer::result(json!({
                "user": "u42",
                "info": {"name": "Alice"},
                "data": {"welcome": true},
                "channels": ["news"],
            })),
        },
        "/rpc" => match s.body.get("method").and_then(Value::as_str) {
            Some("getPrice") => Answer::result(json!({"data": {"price": 2019}})),
            Some("refuse") => Answer::error(1001, "no"),
            Some("empty") => Answer::result(json!({})),
            Some("bye") => Answer::json(
                json!({"disconnect": {"code": 4001, "reason": "rpc bye", "reconnect": false}}),
            ),
            Some(_) => Answer::error(1002, "unknown method"),
            None => Answer::result(json!({"data": {"echo": data}})),
        },
        "/subscribe" => match s.str("channel") {
            "sp:denied" => Answer::error(1003, "denied"),
            _ => Answer::result(json!({"info": {"role": "mod"}})),
        },
        "/publish" => {
            if data["refuse"] == json!(true) {
                Answer::error(1004, "refused")
            } else {
                Answer::result(json!({"data": {"replaced": true, "orig": data}}))
            }
        }
        _ => Answer::status(404, "no such path"),
    }
}

/// Every 2.x proxy but refresh on `b`, presence on, namespaces `sp` (subscribe proxy), `pp`
/// (publish proxy, publish allowed) and `pq` (publish proxy, publish not allowed).
fn legacy_config(b: &HttpBackend) -> Value {
    json!({
        "proxy_connect_endpoint": b.url("/connect"),
        "proxy_connect_timeout": T,
        "proxy_rpc_endpoint": b.url("/rpc"),
        "proxy_rpc_timeout": T,
        "proxy_subscribe_endpoint": b.url("/subscribe"),
        "proxy_subscribe_timeout": T,
        "proxy_publish_endpoint": b.url("/publish"),
        "proxy_publish_timeout": T,
        "presence": true,
        "namespaces": [
            {"name": "sp", "proxy_subscribe": true, "presence": true},
            {"name": "pp", "proxy_publish": true, "publish": true},
            {"name": "pq", "proxy_publish": true},
        ],
    })
}

async fn legacy_server() -> (HttpBackend, Server) {
    let b = HttpBackend::start(standard).await;
    let s = Server::start(legacy_config(&b)).await;
    (b, s)
}

/// A v1 connect without a token through the proxy; returns the connect result.
async fn proxy_connect_v1(ws: &mut Conn, params: Value) -> Value {
    let id = ws.take_id();
    ws.send(&json!({"id": id, "params": params})).await;
    let rep = ws.reply(id).await;
    assert!(rep.get("error").is_none(), "proxy connect failed: {rep}");
    rep["result"].clone()
}

// ---------------------------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_connect_proxy_sets_user_info_data_and_server_side_channels() {
    let b = HttpBackend::start(standard).await;
    let mut cfg = legacy_config(&b);
    cfg["proxy_extra_http_headers"] = json!(["X-Custom"]);
    let server = Server::start(cfg).await;
    let mut ws = Conn::open(
        &server.ws_url(),
        &[
            ("Cookie", "session=abc"),
            ("Authorization", "Bearer app-token"),
            ("Origin", "http://app.example"),
            ("User-Agent", "proxy-e2e"),
            ("X-Request-Id", "req-1"),
            ("X-Custom", "yes"),
            ("X-Other", "no"),
        ],
    )
    .await;
    let res = proxy_connect_v1(
        &mut ws,
        json!({"name": "js", "version": "2.8.5", "data": {"hello": "world"}}),
    )
    .await;
    let client = res["client"].as_str().unwrap_or_default().to_string();
    assert!(is_uuid_v4(&client), "{res}");
    assert_eq!(res["data"], json!({"welcome": true}), "connect data: {res}");
    assert!(res["subs"]["news"].is_object(), "server-side sub: {res}");
    assert!(
        res.get("expires").is_none() && res.get("ttl").is_none(),
        "no expiry: {res}"
    );

    let seen = b.seen_at("/connect");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let s = &seen[0];
    assert_head(s, &client);
    assert_eq!(s.body["name"], "js", "{s:#?}");
    assert_eq!(s.body["version"], "2.8.5", "{s:#?}");
    assert_eq!(s.body["data"], json!({"hello": "world"}), "{s:#?}");
    assert!(s.body.get("b64data").is_none(), "{s:#?}");
    // The seven 2.x default headers that were sent, plus proxy_extra_http_headers.
    for (h, v) in [
        ("cookie", "session=abc"),
        ("authorization", "Bearer app-token"),
        ("origin", "http://app.example"),
        ("user-agent", "proxy-e2e"),
        ("x-request-id", "req-1"),
        ("x-custom", "yes"),
    ] {
        assert_eq!(s.header(h), Some(v), "header {h} forwarded: {s:#?}");
    }
    assert_eq!(s.header("x-other"), None, "unlisted header: {s:#?}");

    // The user and info the backend chose, in the server-side subscription's presence.
    let p = api_v1(&server, "presence", json!({"channel": "news"})).await;
    let entry = &p[0]["result"]["presence"][client.as_str()];
    assert_eq!(entry["user"], "u42", "{p:?}");
    assert_eq!(entry["conn_info"], json!({"name": "Alice"}), "{p:?}");
    api_publish(&server, "news", json!({"n": 1})).await;
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "news", "data": {"data": {"n": 1}}}})
    );
}

#[tokio::test]
async fn v1_connect_proxy_disconnect_closes_with_json_advice() {
    let (b, server) = legacy_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.send(&json!({"id": 1, "params": {"data": {"case": "disconnect"}}}))
        .await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (4000, r#"{"reason":"bye","reconnect":true}"#),
        "buffered: {:?}",
        ws.buffered()
    );
    assert!(ws.buffered().is_empty(), "no reply: {:?}", ws.buffered());
    assert_eq!(b.seen_at("/connect").len(), 1);
}

#[tokio::test]
async fn v1_connect_proxy_error_is_the_connect_reply() {
    let (b, server) = legacy_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.send(&json!({"id": 1, "params": {"data": {"case": "error"}}}))
        .await;
    assert_eq!(ws.reply(1).await, error_reply(1, 1000, "custom error"));
    // A grant the server cannot honour (PROXY.md §3.4).
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.send(&json!({"id": 1, "params": {"data": {"case": "badchan"}}}))
        .await;
    assert_eq!(ws.reply(1).await, error_reply(1, 102, "unknown channel"));
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.send(&json!({"id": 1, "params": {"data": {"case": "past"}}}))
        .await;
    assert_eq!(ws.reply(1).await, error_reply(1, 110, "expired"));
    assert_eq!(b.seen_at("/connect").len(), 3);
}

#[tokio::test]
async fn v1_connect_with_a_token_does_not_call_the_proxy() {
    let (b, server) = legacy_server().await;
    let (mut ws, client) = server.v1_client("jwt-user").await;
    let rep = ws.call_v1(1, json!({"channel": "room"})).await;
    assert_eq!(rep["result"], json!({}), "{rep}");
    let p = api_v1(&server, "presence", json!({"channel": "room"})).await;
    assert_eq!(
        p[0]["result"]["presence"][client.as_str()]["user"],
        "jwt-user"
    );
    // An invalid token is refused by the JWT path, not handed to the proxy either.
    let mut bad = Conn::open(&server.ws_url(), &[]).await;
    bad.send(&json!({"id": 1, "params": {"token": "not-a-jwt"}}))
        .await;
    let (code, reason) = bad.expect_close().await;
    assert_eq!((code, reason.as_str()), (3002, V1_INVALID_TOKEN));
    assert!(b.seen().is_empty(), "no proxy call: {:#?}", b.seen());
}

#[tokio::test]
async fn v1_connect_proxy_without_credentials_needs_anonymous_mode() {
    let (b, server) = legacy_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.send(&json!({"id": 1, "params": {"data": {"case": "noresult"}}}))
        .await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (3003, V1_BAD_REQUEST));
    // A result naming user "" is an anonymous connection even with anonymous mode off; 2.x
    // still refuses it a subscription in a namespace without `anonymous` before the proxy.
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    proxy_connect_v1(&mut ws, json!({"data": {"case": "anon"}})).await;
    assert_eq!(
        ws.call_v1(1, json!({"channel": "sp:room"})).await,
        error_reply(2, 103, "permission denied")
    );
    assert!(b.seen_at("/subscribe").is_empty(), "{:#?}", b.seen());

    let mut cfg = legacy_config(&b);
    cfg["client_anonymous"] = json!(true);
    let anon_server = Server::start(cfg).await;
    let mut ws = Conn::open(&anon_server.ws_url(), &[]).await;
    let res = proxy_connect_v1(&mut ws, json!({"data": {"case": "noresult"}})).await;
    assert!(is_uuid_v4(res["client"].as_str().unwrap_or("")), "{res}");
    let rep = ws.call_v1(9, json!({"data": {}})).await;
    assert!(rep.get("result").is_some(), "{rep}");
    let last = b.seen_at("/rpc").pop().expect("rpc call");
    assert_eq!(last.body.get("user"), Some(&json!("")), "{last:#?}");
}

// ---------------------------------------------------------------------------------------------
// rpc and send
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_rpc_goes_to_the_rpc_proxy_with_and_without_method() {
    let (b, server) = legacy_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let res = proxy_connect_v1(&mut ws, json!({})).await;
    let client = res["client"].as_str().unwrap_or_default().to_string();

    let rep = ws
        .call_v1(9, json!({"method": "getPrice", "data": {"id": 12}}))
        .await;
    assert_eq!(rep, json!({"id": 2, "result": {"data": {"price": 2019}}}));
    let rep = ws.call_v1(9, json!({"data": {"x": 1}})).await;
    assert_eq!(
        rep,
        json!({"id": 3, "result": {"data": {"echo": {"x": 1}}}})
    );
    let rep = ws.call_v1(9, json!({"method": "refuse", "data": {}})).await;
    assert_eq!(rep, error_reply(4, 1001, "no"));
    let rep = ws.call_v1(9, json!({"method": "empty", "data": {}})).await;
    assert_eq!(rep, json!({"id": 5, "result": {}}));
    ws.send(&json!({"id": 6, "method": 9, "params": {"method": "bye", "data": {}}}))
        .await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (4001, r#"{"reason":"rpc bye","reconnect":false}"#),
        "a disconnect answer to a command closes the connection"
    );

    let seen = b.seen_at("/rpc");
    assert_eq!(seen.len(), 5, "{seen:#?}");
    for s in &seen {
        assert_head(s, &client);
        assert_eq!(s.body["user"], "u42", "{s:#?}");
    }
    assert_eq!(seen[0].body["method"], "getPrice");
    assert_eq!(seen[0].body["data"], json!({"id": 12}));
    assert!(
        seen[1].body.get("method").is_none(),
        "no method → no method key: {:#?}",
        seen[1]
    );
    assert_eq!(seen[1].body["data"], json!({"x": 1}));
}

#[tokio::test]
async fn v1_rpc_without_an_rpc_proxy_is_108() {
    let b = HttpBackend::start(standard).await;
    let server = Server::start(json!({
        "proxy_connect_endpoint": b.url("/connect"),
        "proxy_connect_timeout": T,
    }))
    .await;
    let (mut ws, _) = server.v1_client("bob").await;
    let rep = ws
        .call_v1(9, json!({"method": "getPrice", "data": {}}))
        .await;
    assert_eq!(rep, error_reply(2, 108, "not available"));
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    proxy_connect_v1(&mut ws, json!({})).await;
    let rep = ws.call_v1(9, json!({"data": {}})).await;
    assert_eq!(rep, error_reply(2, 108, "not available"));
    assert!(b.seen_at("/rpc").is_empty());
}

#[tokio::test]
async fn v1_send_is_dropped_and_the_connection_goes_on() {
    let (b, server) = legacy_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    proxy_connect_v1(&mut ws, json!({})).await;
    ws.send(&json!({"method": 8, "params": {"data": {"x": 1}}}))
        .await;
    ws.send(&json!({"id": 3, "method": 7})).await;
    assert_eq!(ws.reply(3).await, json!({"id": 3}));
    let rep = ws
        .call_v1(9, json!({"method": "getPrice", "data": {}}))
        .await;
    assert_eq!(rep["result"], json!({"data": {"price": 2019}}), "{rep}");
    ws.assert_open_for(Duration::from_millis(200)).await;
    assert!(ws.buffered().is_empty(), "{:?}", ws.buffered());
    let paths: Vec<String> = b.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/connect", "/rpc"], "send reached no backend");
}

// ---------------------------------------------------------------------------------------------
// subscribe and publish
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_subscribe_proxy_allows_with_chan_info_and_refuses_with_its_code() {
    let (b, server) = legacy_server().await;
    let (mut ws, client) = server.v1_client("bob").await;
    let rep = ws.subscribe_v1("sp:room").await;
    assert_eq!(rep, json!({"id": 2, "result": {}}));
    let rep = ws.call_v1(4, json!({"channel": "sp:room"})).await;
    let me = &rep["result"]["presence"][client.as_str()];
    assert_eq!(me["user"], "bob", "{rep}");
    assert_eq!(me["chan_info"], json!({"role": "mod"}), "chan info: {rep}");

    assert_eq!(
        ws.subscribe_v1("sp:denied").await,
        error_reply(4, 1003, "denied")
    );
    // Not proxied outside the namespace.
    assert_eq!(ws.subscribe_v1("plain").await["result"], json!({}));

    let seen = b.seen_at("/subscribe");
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for (s, ch) in seen.iter().zip(["sp:room", "sp:denied"]) {
        assert_head(s, &client);
        assert_eq!(s.body["user"], "bob", "{s:#?}");
        assert_eq!(s.body["channel"], ch, "{s:#?}");
    }
    // The refused subscription did not happen; the allowed one still delivers.
    api_publish(&server, "sp:room", json!({"m": 1})).await;
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "sp:room", "data": {"data": {"m": 1}}}})
    );
    assert_eq!(
        api_v1(&server, "presence", json!({"channel": "sp:denied"})).await,
        vec![json!({"result": {"presence": {}}})]
    );
}

#[tokio::test]
async fn v1_publish_proxy_replaces_the_data_subscribers_get() {
    let (b, server) = legacy_server().await;
    let (mut sub, _) = server.v1_client("reader").await;
    assert_eq!(sub.subscribe_v1("pp:room").await["result"], json!({}));
    let (mut publisher, pub_client) = server.v1_client("writer").await;
    let rep = publisher
        .call_v1(3, json!({"channel": "pp:room", "data": {"text": "hi"}}))
        .await;
    assert_eq!(rep, json!({"id": 2, "result": {}}));
    let push = sub.push().await;
    assert_eq!(push["result"]["channel"], "pp:room", "{push}");
    assert_eq!(
        push["result"]["data"]["data"],
        json!({"replaced": true, "orig": {"text": "hi"}}),
        "{push}"
    );
    assert_eq!(push["result"]["data"]["info"]["user"], "writer", "{push}");

    let rep = publisher
        .call_v1(3, json!({"channel": "pp:room", "data": {"refuse": true}}))
        .await;
    assert_eq!(rep, error_reply(3, 1004, "refused"));
    sub.assert_no_push(Duration::from_millis(300)).await;

    // 2.x: the namespace's `publish` permission is checked before the proxy.
    let rep = publisher
        .call_v1(3, json!({"channel": "pq:room", "data": {"text": "hi"}}))
        .await;
    assert_eq!(rep, error_reply(4, 103, "permission denied"));

    let seen = b.seen_at("/publish");
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_head(&seen[0], &pub_client);
    assert_eq!(seen[0].body["user"], "writer");
    assert_eq!(seen[0].body["channel"], "pp:room");
    assert_eq!(seen[0].body["data"], json!({"text": "hi"}));
}

// ---------------------------------------------------------------------------------------------
// refresh
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_refresh_proxy_extends_then_expires_the_connection() {
    // Connect: expires in 2 s. Refresh: the first call of a client extends by 2 s, the second
    // says expired.
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let b = HttpBackend::start(move |s| match s.path.as_str() {
        "/connect" => Answer::result(json!({"user": "refresher", "expire_at": now() + 2})),
        "/refresh" => {
            let mut c = calls.lock().unwrap();
            let n = c.entry(s.str("client").to_string()).or_default();
            *n += 1;
            if *n == 1 {
                Answer::result(json!({"expire_at": now() + 2, "info": {"refreshed": 1}}))
            } else {
                Answer::result(json!({"expired": true}))
            }
        }
        _ => Answer::status(404, ""),
    })
    .await;
    let server = Server::start(json!({
        "proxy_connect_endpoint": b.url("/connect"),
        "proxy_connect_timeout": T,
        "proxy_refresh_endpoint": b.url("/refresh"),
        "proxy_refresh_timeout": T,
    }))
    .await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let res = proxy_connect_v1(&mut ws, json!({})).await;
    let connected = Instant::now();
    let client = res["client"].as_str().unwrap_or_default().to_string();
    assert!(
        res.get("expires").is_none() || res["expires"] == json!(false),
        "server-side refresh: the client is not told to refresh: {res}"
    );

    let first = b.wait_for("/refresh", 1, Duration::from_secs(5)).await;
    let waited = first[0].at.duration_since(connected);
    assert!(
        waited >= Duration::from_millis(900),
        "refreshed at expire_at, not at once ({waited:?})"
    );
    assert_head(&first[0], &client);
    assert_eq!(first[0].body["user"], "refresher");
    // Extended: still open and serving.
    ws.send(&json!({"id": 10, "method": 7})).await;
    assert_eq!(ws.reply(10).await, json!({"id": 10}));

    let (code, reason) = ws.close_within(Duration::from_secs(6)).await;
    assert_eq!((code, reason.as_str()), (3005, V1_EXPIRED));
    let all = b.seen_at("/refresh");
    assert_eq!(all.len(), 2, "{all:#?}");
    let gap = all[1].at.duration_since(all[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "second refresh at the extended expire_at ({gap:?})"
    );

    // With a refresh proxy the client-side refresh command is a bad request.
    let mut other = Conn::open(&server.ws_url(), &[]).await;
    proxy_connect_v1(&mut other, json!({})).await;
    other
        .send(&json!({"id": 2, "method": 10, "params": {"token": "x"}}))
        .await;
    let (code, reason) = other.expect_close().await;
    assert_eq!((code, reason.as_str()), (3003, V1_BAD_REQUEST));
}

// ---------------------------------------------------------------------------------------------
// Protobuf client
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_protobuf_client_payloads_travel_as_b64data() {
    let b = HttpBackend::start(|s| match s.path.as_str() {
        "/connect" => Answer::result(json!({
            "user": "pb-user",
            "b64data": base64_std(b"\x00\x01binary-welcome"),
            "data": {"json": "ignored for a binary client"},
        })),
        "/rpc" => Answer::result(json!({"b64data": base64_std(b"rpc-bytes")})),
        _ => Answer::status(404, ""),
    })
    .await;
    let server = Server::start(json!({
        "proxy_connect_endpoint": b.url("/connect"),
        "proxy_connect_timeout": T,
        "proxy_rpc_endpoint": b.url("/rpc"),
        "proxy_rpc_timeout": T,
    }))
    .await;
    let mut ws = Conn::open(&server.ws_url_with("format=protobuf"), &[]).await;
    let mut connect = Vec::new();
    pb::put_bytes(&mut connect, 2, b"\xff\xfeclient-bytes");
    pb::put_bytes(&mut connect, 4, b"js");
    ws.send_bin(pb::v1_command(1, 0, &connect)).await;
    let rep = pb::v1_reply(&ws.bin().await);
    assert_eq!((rep.id, rep.error.clone()), (1, None), "{rep:?}");
    let result = pb::decode(&rep.result);
    let client = pb::string_of(&result, 1);
    assert!(is_uuid_v4(&client), "{result:?}");
    assert_eq!(
        pb::bytes_of(&result, 5).as_deref(),
        Some(&b"\x00\x01binary-welcome"[..]),
        "connect data from b64data: {result:?}"
    );

    let mut rpc = Vec::new();
    pb::put_bytes(&mut rpc, 1, b"\x01rpc-in");
    pb::put_bytes(&mut rpc, 2, b"bin");
    ws.send_bin(pb::v1_command(2, 9, &rpc)).await;
    let rep = pb::v1_reply(&ws.bin().await);
    assert_eq!((rep.id, rep.error.clone()), (2, None), "{rep:?}");
    assert_eq!(
        pb::bytes_of(&pb::decode(&rep.result), 1).as_deref(),
        Some(&b"rpc-bytes"[..])
    );

    let c = &b.seen_at("/connect")[0];
    assert_eq!(
        (c.str("protocol"), c.str("encoding")),
        ("protobuf", "binary"),
        "{c:#?}"
    );
    assert_eq!(
        c.str("b64data"),
        base64_std(b"\xff\xfeclient-bytes"),
        "{c:#?}"
    );
    assert!(c.body.get("data").is_none(), "{c:#?}");
    assert_eq!(c.str("name"), "js");
    let r = &b.seen_at("/rpc")[0];
    assert_eq!(
        (r.str("protocol"), r.str("encoding")),
        ("protobuf", "binary")
    );
    assert_eq!(r.str("b64data"), base64_std(b"\x01rpc-in"), "{r:#?}");
    assert_eq!((r.str("method"), r.str("user")), ("bin", "pb-user"));
    assert_eq!(r.str("client"), client);
}
