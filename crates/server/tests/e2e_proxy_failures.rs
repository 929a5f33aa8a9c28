//! End-to-end tests of failing proxies: a backend that times out, answers 500, refuses the
//! connection, sends a body that is not JSON or a body of the wrong shape. The client gets error
//! 100 "internal server error" (temporary on v2) in the reply to that command, within the proxy
//! timeout plus a margin; its connection stays usable and the server keeps serving others; the
//! failures show in `/metrics` under Centrifugo 6's names (`centrifugo_proxy_errors`,
//! `centrifugo_proxy_duration_seconds_histogram`, labels protocol/type/name).

mod common;
mod ops_support;
mod proxy_support;

use std::time::{Duration, Instant};

use common::*;
use ops_support::scrape;
use proxy_support::*;
use serde_json::{json, Value};

/// How a failing call looks to a v2 client.
fn internal_v2(id: u64) -> Value {
    json!({"id": id, "error": {"code": 100, "message": "internal server error", "temporary": true}})
}

/// How a failing call looks to a v1 client (no `temporary` in protocol v1).
fn internal_v1(id: u64) -> Value {
    json!({"id": id, "error": {"code": 100, "message": "internal server error"}})
}

/// The failure a request asks for, by rpc method or by connect/subscribe/publish data `case`.
fn failing(case: &str) -> Option<Answer> {
    Some(match case {
        "slow" | "long:slow" => {
            Answer::result(json!({"data": {"late": true}})).after(Duration::from_secs(3))
        }
        "fail500" => Answer::status(500, r#"{"result":{"data":{"ignored":true}}}"#),
        "garbage" => Answer::raw("this is not json"),
        "badtype" => Answer::json(json!({"result": "a string where an object belongs"})),
        "badfield" => Answer::json(json!({"result": {"user": 42, "data": {"x": 1}}})),
        _ => return None,
    })
}

fn backend_answer(s: &Seen) -> Answer {
    let case = match s.path.as_str() {
        "/rpc" | "/long" => s.str("method").to_string(),
        _ => s.body["data"]["case"].as_str().unwrap_or("").to_string(),
    };
    if let Some(a) = failing(&case) {
        return a;
    }
    match s.path.as_str() {
        "/connect" => Answer::result(json!({"user": "fine"})),
        "/rpc" | "/long" => Answer::result(json!({"data": {"ok": true}})),
        _ => Answer::result(json!({})),
    }
}

/// v6 config: every proxy on `b` with a 300 ms timeout; rpc namespace `down` goes to a proxy
/// where nothing listens, `long` to one with a 1 s timeout; prometheus on.
fn modern_config(b: &HttpBackend) -> Value {
    let p = |path: &str| json!({"endpoint": b.url(path), "timeout": "300ms"});
    let mut connect = p("/connect");
    connect["enabled"] = json!(true);
    json!({
        "prometheus": true,
        "client": {"proxy": {"connect": connect}},
        "channel": {
            "proxy": {"subscribe": p("/subscribe"), "publish": p("/publish")},
            "namespaces": [
                {"name": "sp", "subscribe_proxy_enabled": true},
                {"name": "pp", "publish_proxy_enabled": true},
            ],
        },
        "rpc": {
            "proxy": p("/rpc"),
            "without_namespace": {"proxy_enabled": true},
            "namespaces": [
                {"name": "down", "proxy_enabled": true, "proxy_name": "down-proxy"},
                {"name": "long", "proxy_enabled": true, "proxy_name": "long-proxy"},
            ],
        },
        "proxies": [
            {"name": "down-proxy", "endpoint": format!("http://{}/rpc", dead_addr()), "timeout": "300ms"},
            {"name": "long-proxy", "endpoint": b.url("/long"), "timeout": "1s"},
        ],
    })
}

async fn jwt_v2(server: &Server, user: &str) -> Conn {
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let rep = ws
        .call_v2("connect", json!({"token": conn_token(user)}))
        .await;
    assert!(rep["connect"].is_object(), "{rep}");
    ws
}

#[tokio::test]
async fn v2_rpc_failures_are_temporary_100_and_the_connection_stays_usable() {
    let b = HttpBackend::start(backend_answer).await;
    let server = Server::start(modern_config(&b)).await;
    let mut ws = jwt_v2(&server, "alice").await;
    let ok = json!({"rpc": {"data": {"ok": true}}});
    for method in ["slow", "fail500", "garbage", "badtype", "down:x"] {
        let started = Instant::now();
        let id = ws
            .cmd_v2("rpc", json!({"method": method, "data": {}}))
            .await;
        let rep = ws.reply(id).await;
        let took = started.elapsed();
        assert_eq!(rep, internal_v2(id), "rpc {method}");
        assert!(
            took < Duration::from_millis(1500),
            "rpc {method} took {took:?}"
        );
        if method == "slow" {
            assert!(
                took >= Duration::from_millis(250),
                "answered at the 300 ms timeout, not before ({took:?})"
            );
        }
        let id = ws
            .cmd_v2("rpc", json!({"method": "fine", "data": {}}))
            .await;
        let mut after = ws.reply(id).await;
        after.as_object_mut().map(|o| o.remove("id"));
        assert_eq!(after, ok, "the connection still works after {method}");
    }
    let methods: Vec<String> = b
        .seen_at("/rpc")
        .iter()
        .map(|s| s.str("method").to_string())
        .collect();
    assert_eq!(
        methods,
        ["slow", "fine", "fail500", "fine", "garbage", "fine", "badtype", "fine", "fine"],
        "every call reached the backend (down:x has none)"
    );
    server.assert_alive();
}

#[tokio::test]
async fn proxy_metrics_count_calls_and_failures_per_proxy() {
    let b = HttpBackend::start(backend_answer).await;
    let server = Server::start(modern_config(&b)).await;
    let mut ws = jwt_v2(&server, "alice").await;
    for method in [
        "slow", "fine", "fail500", "fine", "garbage", "fine", "badtype", "fine",
    ] {
        ws.call_v2("rpc", json!({"method": method, "data": {}}))
            .await;
    }
    let rep = ws
        .call_v2("rpc", json!({"method": "down:x", "data": {}}))
        .await;
    assert_eq!(rep["error"]["code"], 100, "{rep}");
    let rep = ws
        .call_v2("rpc", json!({"method": "fine", "data": {}}))
        .await;
    assert_eq!(rep["rpc"], json!({"data": {"ok": true}}), "{rep}");
    assert_eq!(b.seen_at("/rpc").len(), 9);

    // Counted per proxy: 4 failures of "default", 1 of "down-proxy", none of the answered calls.
    let m = scrape(&server).await;
    let errors = |name: &str| {
        m.sum(
            "centrifugo_proxy_errors",
            &[("type", "rpc"), ("name", name), ("protocol", "http")],
        )
    };
    let proxy_lines: Vec<&str> = m.text.lines().filter(|l| l.contains("proxy")).collect();
    assert_eq!(
        errors("default"),
        4.0,
        "proxy lines of /metrics:\n{}",
        proxy_lines.join("\n")
    );
    assert_eq!(errors("down-proxy"), 1.0);
    assert_eq!(
        m.types.get("centrifugo_proxy_errors").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        m.types
            .get("centrifugo_proxy_duration_seconds_histogram")
            .map(String::as_str),
        Some("histogram")
    );
    let calls = m.sum(
        "centrifugo_proxy_duration_seconds_histogram_count",
        &[("type", "rpc"), ("name", "default")],
    );
    assert_eq!(calls, 9.0, "every call to the default rpc proxy is timed");
}

#[tokio::test]
async fn a_slow_backend_delays_only_its_own_client() {
    let b = HttpBackend::start(backend_answer).await;
    let server = Server::start(modern_config(&b)).await;
    let mut a = jwt_v2(&server, "alice").await;
    let started = Instant::now();
    let slow = a
        .cmd_v2("rpc", json!({"method": "long:slow", "data": {}}))
        .await;
    b.wait_for("/long", 1, Duration::from_secs(2)).await;

    // While alice waits for her backend (1 s timeout), bob connects, calls and receives.
    let mut other = jwt_v2(&server, "bob").await;
    let rep = other
        .call_v2("rpc", json!({"method": "fine", "data": {}}))
        .await;
    assert_eq!(rep["rpc"], json!({"data": {"ok": true}}), "{rep}");
    let rep = other
        .call_v2("subscribe", json!({"channel": "news", "flag": 1}))
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    api_v2(
        &server,
        "publish",
        json!({"channel": "news", "data": {"hi": 1}}),
    )
    .await;
    assert_eq!(other.push().await["push"]["pub"]["data"], json!({"hi": 1}));
    let bob_done = started.elapsed();
    assert!(
        bob_done < Duration::from_millis(900),
        "bob was served while alice's call was pending ({bob_done:?})"
    );

    assert_eq!(a.reply(slow).await, internal_v2(slow));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "alice's error at the 1 s timeout ({took:?})"
    );
    let rep = a
        .call_v2("rpc", json!({"method": "fine", "data": {}}))
        .await;
    assert_eq!(rep["rpc"], json!({"data": {"ok": true}}), "{rep}");
}

#[tokio::test]
async fn v2_connect_subscribe_and_publish_failures_are_temporary_100() {
    let b = HttpBackend::start(backend_answer).await;
    let server = Server::start(modern_config(&b)).await;
    for case in ["slow", "fail500", "garbage", "badtype", "badfield"] {
        let mut ws = Conn::open(&server.ws_url(), &[]).await;
        let started = Instant::now();
        let rep = ws.call_v2("connect", json!({"data": {"case": case}})).await;
        assert_eq!(rep, internal_v2(1), "connect {case}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "connect {case}"
        );
    }
    assert_eq!(b.seen_at("/connect").len(), 5);

    let mut ws = jwt_v2(&server, "carol").await;
    for case in ["slow", "fail500", "garbage", "badtype"] {
        let id = ws
            .cmd_v2(
                "subscribe",
                json!({"channel": format!("sp:{case}"), "data": {"case": case}, "flag": 1}),
            )
            .await;
        assert_eq!(ws.reply(id).await, internal_v2(id), "subscribe {case}");
        let id = ws
            .cmd_v2(
                "publish",
                json!({"channel": "pp:room", "data": {"case": case}}),
            )
            .await;
        assert_eq!(ws.reply(id).await, internal_v2(id), "publish {case}");
    }
    // Still connected, and a working subscribe goes through.
    let rep = ws
        .call_v2("subscribe", json!({"channel": "sp:fine", "flag": 1}))
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    assert_eq!(b.seen_at("/subscribe").len(), 5);
    assert_eq!(b.seen_at("/publish").len(), 4);
    server.assert_alive();
}

#[tokio::test]
async fn connect_proxy_refusing_connections_gives_100_to_both_generations() {
    let dead = dead_addr();
    let server = Server::start(json!({
        "client": {"proxy": {"connect": {
            "enabled": true,
            "endpoint": format!("http://{dead}/connect"),
            "timeout": "300ms",
        }}},
    }))
    .await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    assert_eq!(ws.call_v2("connect", json!({})).await, internal_v2(1));
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    assert_eq!(ws.call_v1(0, json!({})).await, internal_v1(1));
    // Tokens do not depend on the backend.
    let (mut ok, _) = server.v1_client("jwt").await;
    assert_eq!(ok.subscribe_v1("room").await["result"], json!({}));
}

#[tokio::test]
async fn v1_failures_are_100_without_temporary() {
    let b = HttpBackend::start(backend_answer).await;
    let server = Server::start(json!({
        "proxy_connect_endpoint": b.url("/connect"),
        "proxy_connect_timeout": 0.3,
        "proxy_rpc_endpoint": b.url("/rpc"),
        "proxy_rpc_timeout": 0.3,
    }))
    .await;
    for case in ["slow", "fail500", "garbage", "badtype"] {
        let mut ws = Conn::open(&server.ws_url(), &[]).await;
        ws.send(&json!({"id": 1, "params": {"data": {"case": case}}}))
            .await;
        assert_eq!(ws.reply(1).await, internal_v1(1), "v1 connect {case}");
    }
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.send(&json!({"id": 1, "params": {}})).await;
    assert!(ws.reply(1).await["result"].is_object());
    for method in ["slow", "fail500", "garbage", "badtype"] {
        let started = Instant::now();
        let rep = ws.call_v1(9, json!({"method": method, "data": {}})).await;
        let id = rep["id"].as_u64().unwrap_or(0);
        assert_eq!(rep, internal_v1(id), "v1 rpc {method}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "v1 rpc {method}"
        );
        ws.send(&json!({"id": 100 + id, "method": 7})).await;
        assert_eq!(ws.reply(100 + id).await, json!({"id": 100 + id}));
    }
    let rep = ws.call_v1(9, json!({"method": "fine", "data": {}})).await;
    assert_eq!(rep["result"], json!({"data": {"ok": true}}), "{rep}");
}
