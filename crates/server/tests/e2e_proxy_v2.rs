//! End-to-end tests of the proxies with a Centrifugo 6 nested config (`client.proxy.connect`,
//! `channel.proxy.*`, `rpc.proxy`, `rpc.namespaces`, `proxies`) and client protocol v2
//! (centrifuge-js 5.x framing): the real `rotor` binary, a real HTTP backend started by the test,
//! raw WebSocket JSON frames. Each test checks what the client sees and what the backend
//! received. Expectations: PROXY.md (§2.2, §3, §5, §6) and notes/behaviour.md.

mod common;
mod proxy_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use proxy_support::*;
use serde_json::{json, Value};

fn error_reply(id: u64, code: u64, message: &str) -> Value {
    json!({"id": id, "error": {"code": code, "message": message}})
}

/// The backend of most tests; answers by path and by what the client sent.
///
/// * `/connect`: client data `{"case":"error"}` → temporary error 1000; `disconnect` →
///   disconnect 4500 "go away"; `noresult` → `{}`; `anon` → user ""; otherwise user `v2u` with
///   info, data, `channels` [news], `subs` {feed: info, data} and `meta` {tenant}.
/// * `/rpc` (rpc.proxy) → `{"price":1}`; `/shop` (named proxy `shop-proxy`) → `{"shop":true}`.
/// * `/subscribe`: `sp:denied` → error 1403; `sp:hidden` → presence override off; otherwise
///   info `{"role":"admin"}` and data `{"welcome":"sub"}`.
/// * `/publish`: data `{"skip":true}` → data replaced by `{"n":100}` with skip_history;
///   `{"refuse":true}` → error 1004; otherwise `{}` (published as sent).
fn standard(s: &Seen) -> Answer {
    let data = &s.body["data"];
    match s.path.as_str() {
        "/connect" => match data["case"].as_str() {
            Some("error") => {
                Answer::json(json!({"error": {"code": 1000, "message": "nope", "temporary": true}}))
            }
            Some("disconnect") => Answer::disconnect(4500, "go away"),
            Some("noresult") => Answer::json(json!({})),
            Some("anon") => Answer::result(json!({"user": ""})),
            _ => Answer::result(json!({
                "user": "v2u",
                "info": {"n": 1},
                "data": {"welcome": 2},
                "channels": ["news"],
                "subs": {"feed": {"info": {"ci": 1}, "data": {"sd": 1}}},
                "meta": {"tenant": "t1"},
            })),
        },
        "/rpc" => Answer::result(json!({"data": {"price": 1}})),
        "/shop" => Answer::result(json!({"data": {"shop": true}})),
        "/subscribe" => match s.str("channel") {
            "sp:denied" => Answer::error(1403, "forbidden"),
            "sp:hidden" => Answer::result(json!({
                "info": {"role": "ghost"},
                "override": {"presence": {"value": false}},
            })),
            _ => Answer::result(json!({"info": {"role": "admin"}, "data": {"welcome": "sub"}})),
        },
        "/publish" => {
            if data["skip"] == json!(true) {
                Answer::result(json!({"data": {"n": 100}, "skip_history": true}))
            } else if data["refuse"] == json!(true) {
                Answer::error(1004, "refused")
            } else {
                Answer::result(json!({}))
            }
        }
        _ => Answer::status(404, "no such path"),
    }
}

/// A v6 proxy object on `b` at `path`.
fn proxy(b: &HttpBackend, path: &str) -> Value {
    json!({"endpoint": b.url(path), "timeout": "2s"})
}

fn modern_config(b: &HttpBackend) -> Value {
    let mut connect = proxy(b, "/connect");
    connect["enabled"] = json!(true);
    connect["http_headers"] = json!(["Cookie", "x-custom"]);
    let mut rpc = proxy(b, "/rpc");
    rpc["include_connection_meta"] = json!(true);
    let mut shop = proxy(b, "/shop");
    shop["name"] = json!("shop-proxy");
    json!({
        "client": {"proxy": {"connect": connect}},
        "channel": {
            "without_namespace": {"presence": true},
            "proxy": {"subscribe": proxy(b, "/subscribe"), "publish": proxy(b, "/publish")},
            "namespaces": [
                {"name": "sp", "subscribe_proxy_enabled": true, "presence": true},
                {
                    "name": "pp",
                    "publish_proxy_enabled": true,
                    "allow_subscribe_for_client": true,
                    "history_size": 10,
                    "history_ttl": "60s",
                },
            ],
        },
        "rpc": {
            "proxy": rpc,
            "without_namespace": {"proxy_enabled": true},
            "namespaces": [
                {"name": "shop", "proxy_enabled": true, "proxy_name": "shop-proxy"},
                {"name": "off", "proxy_enabled": false},
            ],
            "ping": {"enabled": true},
        },
        "proxies": [shop],
    })
}

async fn modern_server() -> (HttpBackend, Server) {
    let b = HttpBackend::start(standard).await;
    let s = Server::start(modern_config(&b)).await;
    (b, s)
}

/// A v2 connect without a token; returns the whole reply.
async fn connect_v2(ws: &mut Conn, params: Value) -> Value {
    ws.call_v2("connect", params).await
}

/// A v2 connect without a token that must succeed; returns the client id.
async fn proxy_connect_v2(ws: &mut Conn) -> String {
    let rep = connect_v2(ws, json!({})).await;
    assert!(rep["connect"].is_object(), "proxy connect failed: {rep}");
    rep["connect"]["client"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A v2 connection with a token for `user`; returns the client id.
async fn jwt_connect_v2(ws: &mut Conn, user: &str) -> String {
    let rep = connect_v2(ws, json!({"token": conn_token(user)})).await;
    assert!(rep["connect"].is_object(), "JWT connect failed: {rep}");
    rep["connect"]["client"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v2_connect_proxy_sets_user_data_subs_and_meta() {
    let (b, server) = modern_server().await;
    let mut ws = Conn::open(
        &server.ws_url(),
        &[
            ("Cookie", "s=1"),
            ("X-Custom", "c"),
            ("User-Agent", "ua"),
            ("Authorization", "Bearer x"),
        ],
    )
    .await;
    let rep = connect_v2(
        &mut ws,
        json!({"name": "js", "version": "5.8.0", "data": {"hi": 1}, "subs": {"client-listed": {}}}),
    )
    .await;
    let res = &rep["connect"];
    let client = res["client"].as_str().unwrap_or_default().to_string();
    assert!(is_uuid_v4(&client), "{rep}");
    assert_eq!(res["data"], json!({"welcome": 2}), "connect data: {rep}");
    assert!(res["subs"]["news"].is_object(), "channels → subs: {rep}");
    assert_eq!(res["subs"]["feed"]["data"], json!({"sd": 1}), "{rep}");
    assert!(
        res["subs"].get("client-listed").is_none(),
        "a channel the client listed is only forwarded: {rep}"
    );
    assert_eq!(
        (res["ping"].clone(), res["pong"].clone()),
        (json!(25), json!(true))
    );
    assert!(res.get("expires").is_none(), "{rep}");
    assert!(
        !ws.frames.iter().any(|f| f.contains("tenant")),
        "meta never reaches the client: {:?}",
        ws.frames
    );

    let seen = b.seen_at("/connect");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let s = &seen[0];
    assert_head(s, &client);
    assert_eq!((s.str("name"), s.str("version")), ("js", "5.8.0"));
    assert_eq!(s.body["data"], json!({"hi": 1}));
    assert_eq!(s.body["channels"], json!(["client-listed"]), "{s:#?}");
    assert_eq!(s.header("cookie"), Some("s=1"), "{s:#?}");
    assert_eq!(s.header("x-custom"), Some("c"), "{s:#?}");
    assert_eq!(s.header("user-agent"), None, "only listed headers: {s:#?}");
    assert_eq!(
        s.header("authorization"),
        None,
        "only listed headers: {s:#?}"
    );

    // meta reaches the rpc proxy (include_connection_meta); the rpc proxy lists no headers.
    let rep = ws
        .call_v2("rpc", json!({"method": "getPrice", "data": {"id": 1}}))
        .await;
    assert_eq!(rep, json!({"id": 2, "rpc": {"data": {"price": 1}}}));
    let r = &b.seen_at("/rpc")[0];
    assert_head(r, &client);
    assert_eq!((r.str("user"), r.str("method")), ("v2u", "getPrice"));
    assert_eq!(r.body["data"], json!({"id": 1}));
    assert_eq!(r.body["meta"], json!({"tenant": "t1"}), "{r:#?}");
    assert_eq!(r.header("cookie"), None, "{r:#?}");

    // User, conn info and the subs' chan info, as presence shows them.
    let p = api_v2(&server, "presence", json!({"channel": "feed"})).await;
    let me = &p["result"]["presence"][client.as_str()];
    assert_eq!(me["user"], "v2u", "{p}");
    assert_eq!(me["conn_info"], json!({"n": 1}), "{p}");
    assert_eq!(me["chan_info"], json!({"ci": 1}), "{p}");
    api_v2(
        &server,
        "publish",
        json!({"channel": "news", "data": {"k": 1}}),
    )
    .await;
    let push = ws.push().await;
    assert_eq!(push["push"]["channel"], "news", "{push}");
    assert_eq!(push["push"]["pub"]["data"], json!({"k": 1}), "{push}");
}

#[tokio::test]
async fn v2_connect_proxy_error_and_disconnect_reach_the_client() {
    let (b, server) = modern_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let rep = connect_v2(&mut ws, json!({"data": {"case": "error"}})).await;
    assert_eq!(
        rep,
        json!({"id": 1, "error": {"code": 1000, "message": "nope", "temporary": true}})
    );

    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.cmd_v2("connect", json!({"data": {"case": "disconnect"}}))
        .await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (4500, "go away"),
        "{:?}",
        ws.buffered()
    );

    // No result and anonymous access off: bad request.
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.cmd_v2("connect", json!({"data": {"case": "noresult"}}))
        .await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (3501, "bad request"),
        "{:?}",
        ws.buffered()
    );
    assert_eq!(b.seen_at("/connect").len(), 3);
}

#[tokio::test]
async fn v2_connect_proxy_empty_user_is_anonymous_and_a_token_skips_the_proxy() {
    let (b, server) = modern_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let rep = connect_v2(&mut ws, json!({"data": {"case": "anon"}})).await;
    assert!(rep["connect"].is_object(), "user \"\" accepted: {rep}");
    let rep = ws.call_v2("rpc", json!({"method": "m", "data": {}})).await;
    assert_eq!(rep["rpc"], json!({"data": {"price": 1}}), "{rep}");
    let r = &b.seen_at("/rpc")[0];
    assert_eq!(
        r.body.get("user"),
        Some(&json!("")),
        "user always present: {r:#?}"
    );

    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    jwt_connect_v2(&mut ws, "alice").await;
    let mut bad = Conn::open(&server.ws_url(), &[]).await;
    bad.cmd_v2("connect", json!({"token": "not-a-jwt"})).await;
    let (code, reason) = bad.expect_close().await;
    assert_eq!((code, reason.as_str()), (3500, "invalid token"));
    assert_eq!(b.seen_at("/connect").len(), 1, "{:#?}", b.seen());
}

#[tokio::test]
async fn v2_send_closes_with_3508() {
    let (b, server) = modern_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    proxy_connect_v2(&mut ws).await;
    ws.send(&json!({"send": {"data": {"x": 1}}})).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (3508, "not available"));
    assert_eq!(
        b.seen().len(),
        1,
        "send reached no backend: {:#?}",
        b.seen()
    );
}

// ---------------------------------------------------------------------------------------------
// rpc namespaces
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v2_rpc_namespaces_route_by_method_prefix() {
    let (b, server) = modern_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let client = jwt_connect_v2(&mut ws, "carol").await;
    let rep = ws
        .call_v2("rpc", json!({"method": "shop:buy", "data": {"q": 1}}))
        .await;
    assert_eq!(rep, json!({"id": 2, "rpc": {"data": {"shop": true}}}));
    let rep = ws
        .call_v2("rpc", json!({"method": "plain", "data": {}}))
        .await;
    assert_eq!(rep, json!({"id": 3, "rpc": {"data": {"price": 1}}}));
    let rep = ws
        .call_v2("rpc", json!({"method": "nope:x", "data": {}}))
        .await;
    assert_eq!(rep, error_reply(4, 104, "method not found"));
    let rep = ws.call_v2("rpc", json!({"method": "ping"})).await;
    assert_eq!(
        rep,
        json!({"id": 5, "rpc": {}}),
        "rpc.ping answered locally"
    );

    let shop = b.seen_at("/shop");
    assert_eq!(shop.len(), 1, "{:#?}", b.seen());
    assert_head(&shop[0], &client);
    assert_eq!(shop[0].str("method"), "shop:buy", "the full method is sent");
    assert_eq!(shop[0].body["data"], json!({"q": 1}));
    assert_eq!(shop[0].str("user"), "carol");
    let rpc = b.seen_at("/rpc");
    let methods: Vec<&str> = rpc.iter().map(|s| s.str("method")).collect();
    assert_eq!(methods, ["plain"], "{:#?}", b.seen());
    // A namespace with proxy_enabled false: 108, rpc.ping or not (Centrifugo 6.9.1 answers 104
    // only when no rpc proxy exists at all: internal/client/handler.go OnRPC).
    let rep = ws
        .call_v2("rpc", json!({"method": "off:x", "data": {}}))
        .await;
    assert_eq!(rep, error_reply(6, 108, "not available"));
    assert_eq!(b.seen().len(), 2, "{:#?}", b.seen());
}

// ---------------------------------------------------------------------------------------------
// subscribe and publish
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v2_subscribe_proxy_data_info_override_and_error() {
    let (b, server) = modern_server().await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let client = jwt_connect_v2(&mut ws, "alice").await;

    let rep = ws
        .call_v2(
            "subscribe",
            json!({"channel": "sp:room", "data": {"want": 1}, "flag": 1}),
        )
        .await;
    assert_eq!(rep["subscribe"]["data"], json!({"welcome": "sub"}), "{rep}");
    let rep = ws
        .call_v2("subscribe", json!({"channel": "sp:hidden", "flag": 1}))
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    let rep = ws
        .call_v2("subscribe", json!({"channel": "sp:denied", "flag": 1}))
        .await;
    assert_eq!(
        rep,
        error_reply(4, 1403, "forbidden"),
        "non-temporary error"
    );

    let p = api_v2(&server, "presence", json!({"channel": "sp:room"})).await;
    let me = &p["result"]["presence"][client.as_str()];
    assert_eq!(me["user"], "alice", "{p}");
    assert_eq!(me["chan_info"], json!({"role": "admin"}), "{p}");
    assert_eq!(
        api_v2(&server, "presence", json!({"channel": "sp:hidden"})).await,
        json!({"result": {"presence": {}}}),
        "override presence:false keeps the subscriber out of presence"
    );
    assert_eq!(
        api_v2(&server, "presence", json!({"channel": "sp:denied"})).await,
        json!({"result": {"presence": {}}})
    );

    let seen = b.seen_at("/subscribe");
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_head(&seen[0], &client);
    assert_eq!(
        (seen[0].str("user"), seen[0].str("channel")),
        ("alice", "sp:room")
    );
    assert_eq!(
        seen[0].body["data"],
        json!({"want": 1}),
        "subscribe data: {seen:#?}"
    );
}

#[tokio::test]
async fn v2_publish_proxy_replaces_data_and_skips_history() {
    let (b, server) = modern_server().await;
    let mut sub = Conn::open(&server.ws_url(), &[]).await;
    jwt_connect_v2(&mut sub, "reader").await;
    let rep = sub
        .call_v2("subscribe", json!({"channel": "pp:room", "flag": 1}))
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    let mut publisher = Conn::open(&server.ws_url(), &[]).await;
    let pub_client = jwt_connect_v2(&mut publisher, "writer").await;
    let history = || async {
        let h = api_v2(
            &server,
            "history",
            json!({"channel": "pp:room", "limit": -1}),
        )
        .await;
        h["result"]["publications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p["data"].clone())
            .collect::<Vec<Value>>()
    };

    let rep = publisher
        .call_v2(
            "publish",
            json!({"channel": "pp:room", "data": {"skip": true}}),
        )
        .await;
    assert_eq!(rep, json!({"id": 2, "publish": {}}));
    let push = sub.push().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"n": 100}), "{push}");
    assert_eq!(history().await, Vec::<Value>::new(), "skip_history");

    let rep = publisher
        .call_v2("publish", json!({"channel": "pp:room", "data": {"n": 2}}))
        .await;
    assert_eq!(rep, json!({"id": 3, "publish": {}}));
    let push = sub.push().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"n": 2}), "{push}");
    assert_eq!(history().await, vec![json!({"n": 2})]);

    let rep = publisher
        .call_v2(
            "publish",
            json!({"channel": "pp:room", "data": {"refuse": true}}),
        )
        .await;
    assert_eq!(rep, error_reply(4, 1004, "refused"));
    assert!(sub.push_within(Duration::from_millis(300)).await.is_none());
    assert_eq!(history().await, vec![json!({"n": 2})]);

    let seen = b.seen_at("/publish");
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_head(&seen[0], &pub_client);
    assert_eq!(
        (seen[0].str("user"), seen[0].str("channel")),
        ("writer", "pp:room")
    );
    assert_eq!(seen[0].body["data"], json!({"skip": true}));
}

// ---------------------------------------------------------------------------------------------
// sub_refresh
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v2_sub_refresh_proxy_extends_then_unsubscribes_with_2501() {
    // The subscribe proxy grants 1 s; the first sub_refresh of a channel extends by 1 s, the
    // second says expired.
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let b = HttpBackend::start(move |s| match s.path.as_str() {
        "/subscribe" => Answer::result(json!({"expire_at": now() + 1})),
        "/sub_refresh" => {
            let mut c = calls.lock().unwrap();
            let n = c.entry(s.str("channel").to_string()).or_default();
            *n += 1;
            if *n == 1 {
                Answer::result(json!({"expire_at": now() + 1}))
            } else {
                Answer::result(json!({"expired": true}))
            }
        }
        _ => Answer::status(404, ""),
    })
    .await;
    let server = Server::start(json!({
        "client": {"expired_sub_close_delay": "1s", "presence_update_interval": "1s"},
        "channel": {
            "proxy": {"subscribe": proxy(&b, "/subscribe"), "sub_refresh": proxy(&b, "/sub_refresh")},
            "namespaces": [{
                "name": "sr",
                "subscribe_proxy_enabled": true,
                "sub_refresh_proxy_enabled": true,
            }],
        },
    }))
    .await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let client = jwt_connect_v2(&mut ws, "dave").await;
    let rep = ws
        .call_v2("subscribe", json!({"channel": "sr:x", "flag": 1}))
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    assert!(
        rep["subscribe"].get("expires").is_none(),
        "the server refreshes it: {rep}"
    );
    let first = b.wait_for("/sub_refresh", 1, Duration::from_secs(6)).await;
    assert_head(&first[0], &client);
    assert_eq!(
        (first[0].str("user"), first[0].str("channel")),
        ("dave", "sr:x")
    );
    let push = ws
        .push_within(Duration::from_secs(8))
        .await
        .unwrap_or_else(|| panic!("no unsubscribe push; backend saw {:#?}", b.seen()));
    assert_eq!(
        push,
        json!({"push": {"channel": "sr:x", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}})
    );
    assert_eq!(b.seen_at("/sub_refresh").len(), 2, "{:#?}", b.seen());
    // The connection itself stays.
    let rep = ws.call_v2("rpc", json!({"method": "m"})).await;
    assert_eq!(rep, error_reply(3, 108, "not available"));
}
