//! Client command rate limits against the real binary (`client.rate_limit`, Centrifugo PRO's
//! key shape; CHANNELS-MODERN.md §4.2), with raw v2 and v1 WebSocket clients: error 111 after
//! the burst (temporary for v2, code and message only for v1), tokens back after the interval,
//! per-user buckets across connections and for connect, a namespace override replacing the
//! base buckets, an rpc method override, the `client_error` budget closing with 3509, dry run
//! that never refuses but counts in `/metrics`, unsubscribe counted but never refused, a
//! unidirectional connect over the limit closing with 3013, and bad buckets refusing the start.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn per_sec(rate: u32) -> Value {
    json!([{"interval": "1s", "rate": rate}])
}

fn per_min(rate: u32) -> Value {
    json!([{"interval": "1m", "rate": rate}])
}

/// A server with `rate_limit` as `client.rate_limit`, publish allowed, a `chat` namespace.
async fn server(rate_limit: Value) -> Server {
    Server::start(json!({
        "client": {"rate_limit": rate_limit},
        "publish": true,
        "prometheus": true,
        "namespaces": [{"name": "chat", "publish": true}],
    }))
    .await
}

async fn publish_v2(ws: &mut Ws, channel: &str) -> Value {
    ws.call_v2("publish", json!({"channel": channel, "data": {"n": 1}}))
        .await
}

/// The error code of a reply, 0 for success.
fn code(rep: &Value) -> u64 {
    rep["error"]["code"].as_u64().unwrap_or(0)
}

/// `centrifugo_rate_limit_client_over_limit_count` for (layer, command, dry_run).
async fn over_limit(server: &Server, layer: &str, command: &str, dry_run: bool) -> f64 {
    let text = http()
        .get(server.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = format!(
        "centrifugo_rate_limit_client_over_limit_count{{layer=\"{layer}\",command=\"{command}\",\
         namespace=\"\",dry_run=\"{dry_run}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&labels))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn v2_publish_is_refused_with_111_after_the_burst_and_refills() {
    let s = server(json!({"client_command": {"enabled": true,
        "publish": {"enabled": true, "buckets": per_sec(2)}}}))
    .await;
    let (mut ws, _) = s.v2_client("alice").await;
    assert_eq!(code(&publish_v2(&mut ws, "news").await), 0);
    assert_eq!(code(&publish_v2(&mut ws, "news").await), 0);
    let refused = publish_v2(&mut ws, "news").await;
    assert_eq!(
        refused["error"],
        json!({"code": 111, "message": "too many requests", "temporary": true}),
        "{refused}"
    );
    // Other commands are not limited by publish's bucket.
    let rep = ws.subscribe_v2("news").await;
    assert_eq!(code(&rep), 0, "{rep}");
    // One token back after half the interval, two after the whole.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(code(&publish_v2(&mut ws, "news").await), 0);
    assert_eq!(code(&publish_v2(&mut ws, "news").await), 0);
    assert_eq!(code(&publish_v2(&mut ws, "news").await), 111);
    ws.assert_open_for(Duration::from_millis(200)).await;
    assert_eq!(
        over_limit(&s, "client_command", "publish", false).await,
        2.0
    );
    // Another connection of the same user has its own buckets.
    let (mut other, _) = s.v2_client("alice").await;
    assert_eq!(code(&publish_v2(&mut other, "news").await), 0);
}

#[tokio::test]
async fn v1_client_gets_111_without_temporary() {
    let s = server(json!({"client_command": {"enabled": true,
        "default": {"enabled": true, "buckets": per_min(1)}}}))
    .await;
    let (mut ws, _) = s.v1_client("bob").await;
    let ok = ws.call_v1(3, json!({"channel": "news", "data": {}})).await;
    assert!(ok.get("error").is_none(), "{ok}");
    let refused = ws.call_v1(3, json!({"channel": "news", "data": {}})).await;
    assert_eq!(
        refused["error"],
        json!({"code": 111, "message": "too many requests"}),
        "{refused}"
    );
    // `default` gives history its own limiter: one subscribe, one history still pass.
    assert!(ws.subscribe_v1("news").await.get("error").is_none());
    let rep = ws.call_v1(6, json!({"channel": "news"})).await;
    assert_ne!(code(&rep), 111, "{rep}");
    let rep = ws.call_v1(6, json!({"channel": "news"})).await;
    assert_eq!(code(&rep), 111, "{rep}");
}

#[tokio::test]
async fn per_user_buckets_span_connections_and_limit_connect() {
    let s = server(json!({"user_command": {"enabled": true,
        "publish": {"enabled": true, "buckets": per_min(2)},
        "connect": {"enabled": true, "buckets": per_min(3)}}}))
    .await;
    let (mut a, _) = s.v2_client("carol").await;
    let (mut b, _) = s.v2_client("carol").await;
    assert_eq!(code(&publish_v2(&mut a, "news").await), 0);
    assert_eq!(code(&publish_v2(&mut b, "news").await), 0);
    assert_eq!(code(&publish_v2(&mut a, "news").await), 111);
    assert_eq!(code(&publish_v2(&mut b, "news").await), 111);
    // Another user is not affected.
    let (mut d, _) = s.v2_client("dave").await;
    assert_eq!(code(&publish_v2(&mut d, "news").await), 0);
    // The third connect of carol passes, the fourth is refused with 111.
    let (_c, _) = s.v2_client("carol").await;
    let mut fourth = Ws::open(&s.ws_url()).await;
    let rep = fourth
        .call_v2("connect", json!({"token": conn_token("carol")}))
        .await;
    assert_eq!(
        rep["error"],
        json!({"code": 111, "message": "too many requests", "temporary": true}),
        "{rep}"
    );
    assert_eq!(over_limit(&s, "user_command", "connect", false).await, 1.0);
    assert_eq!(over_limit(&s, "user_command", "publish", false).await, 2.0);
}

#[tokio::test]
async fn namespace_override_replaces_the_base_buckets() {
    let s = server(json!({"client_command": {"enabled": true,
        "publish": {"enabled": true, "buckets": per_min(1),
            "namespace_overrides": [
                {"namespace_name": "chat", "enabled": true, "buckets": per_min(3)}]}}}))
    .await;
    let (mut ws, _) = s.v2_client("erin").await;
    for _ in 0..3 {
        assert_eq!(code(&publish_v2(&mut ws, "chat:room").await), 0);
    }
    assert_eq!(code(&publish_v2(&mut ws, "chat:other").await), 111);
    // Top-level channels keep the base bucket (1), untouched by the chat publishes.
    assert_eq!(code(&publish_v2(&mut ws, "news").await), 0);
    assert_eq!(code(&publish_v2(&mut ws, "news").await), 111);
}

#[tokio::test]
async fn rpc_method_override_has_its_own_bucket() {
    let s = server(json!({"client_command": {"enabled": true,
        "rpc": {"enabled": true, "buckets": per_min(5),
            "method_overrides": [
                {"method": "slow", "enabled": true, "buckets": per_min(1)}]}}}))
    .await;
    let (mut ws, _) = s.v2_client("frank").await;
    let rpc = |m: &'static str| json!({"method": m, "data": {}});
    let first = ws.call_v2("rpc", rpc("slow")).await;
    assert_ne!(
        code(&first),
        111,
        "no RPC handler: an error, not a refusal: {first}"
    );
    assert_eq!(code(&ws.call_v2("rpc", rpc("slow")).await), 111);
    for _ in 0..5 {
        assert_ne!(code(&ws.call_v2("rpc", rpc("fast")).await), 111);
    }
    assert_eq!(code(&ws.call_v2("rpc", rpc("fast")).await), 111);
}

#[tokio::test]
async fn error_budget_closes_with_3509() {
    let s = server(json!({"client_error": {"enabled": true,
        "total": {"enabled": true, "buckets": per_min(3)}}}))
    .await;
    // v2: three errors are answered; the fourth is answered, then the connection closes.
    let (mut ws, _) = s.v2_client("gina").await;
    for _ in 0..3 {
        let rep = ws.subscribe_v2("nope:x").await;
        assert_eq!(code(&rep), 102, "{rep}");
    }
    let rep = ws.subscribe_v2("nope:x").await;
    assert_eq!(code(&rep), 102, "{rep}");
    assert_eq!(
        ws.expect_close().await,
        (3509, "too many errors".to_string())
    );
    // v1: the same close, with the JSON reason telling the client not to reconnect.
    let (mut v1, _) = s.v1_client("gina").await;
    for _ in 0..4 {
        let rep = v1.subscribe_v1("nope:x").await;
        assert_eq!(code(&rep), 102, "{rep}");
    }
    assert_eq!(
        v1.expect_close().await,
        (
            3509,
            r#"{"reason":"too many errors","reconnect":false}"#.to_string()
        )
    );
    assert_eq!(over_limit(&s, "client_error", "error", false).await, 2.0);
    s.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn dry_run_never_refuses_but_counts() {
    let s = server(json!({
        "client_command": {"enabled": true, "dry_run": true,
            "publish": {"enabled": true, "buckets": per_min(1)}},
        "client_error": {"enabled": true, "dry_run": true,
            "total": {"enabled": true, "buckets": per_min(1)}}}))
    .await;
    let (mut ws, _) = s.v2_client("hank").await;
    for _ in 0..5 {
        assert_eq!(code(&publish_v2(&mut ws, "news").await), 0);
    }
    for _ in 0..3 {
        assert_eq!(code(&ws.subscribe_v2("nope:x").await), 102);
    }
    ws.assert_open_for(Duration::from_millis(300)).await;
    assert_eq!(over_limit(&s, "client_command", "publish", true).await, 4.0);
    assert_eq!(
        over_limit(&s, "client_command", "publish", false).await,
        0.0
    );
    assert_eq!(over_limit(&s, "client_error", "error", true).await, 2.0);
}

#[tokio::test]
async fn no_limits_configured_changes_nothing() {
    let s = server(json!({"client_command": {"enabled": false,
        "publish": {"enabled": true, "buckets": per_min(1)}}}))
    .await;
    let (mut ws, _) = s.v2_client("ivy").await;
    for _ in 0..5 {
        assert_eq!(code(&publish_v2(&mut ws, "news").await), 0);
    }
}

#[test]
fn bad_buckets_refuse_the_start_naming_the_key() {
    for (bucket, needle) in [
        (json!({"interval": "100ms", "rate": 1}), "between 1s and 1h"),
        (
            json!({"interval": "1s", "rate": 0}),
            "rate: must be a whole number above 0",
        ),
        (json!({"interval": "soon", "rate": 1}), "invalid duration"),
    ] {
        let mut cfg = base_config(free_port());
        cfg["client"] = json!({"rate_limit": {"user_command": {"enabled": true,
            "publish": {"enabled": true, "buckets": [bucket]}}}});
        let (status, out) = run_rotor_with_config_text(&cfg.to_string(), WAIT);
        let status = status.expect("rotor must exit");
        assert!(!status.success(), "{out}");
        assert!(
            out.contains("client.rate_limit.user_command.publish.buckets[0]")
                && out.contains(needle),
            "{out}"
        );
    }
    // redis_user_command needs the Redis engine.
    let mut cfg = base_config(free_port());
    cfg["client"] = json!({"rate_limit": {"redis_user_command": {"enabled": true,
        "publish": {"enabled": true, "buckets": per_sec(1)}}}});
    let (status, out) = run_rotor_with_config_text(&cfg.to_string(), WAIT);
    assert!(!status.expect("rotor must exit").success(), "{out}");
    assert!(out.contains("redis engine"), "{out}");
}

#[tokio::test]
async fn unidirectional_connect_over_the_limit_closes_with_3013() {
    let s = Server::start(json!({
        "uni_websocket": {"enabled": true},
        "client": {"rate_limit": {"user_command": {"enabled": true,
            "connect": {"enabled": true, "buckets": per_min(1)}}}},
    }))
    .await;
    let url = reqwest::Url::parse_with_params(
        &s.http_url("/connection/uni_websocket"),
        &[(
            "cf_connect",
            json!({"token": conn_token("uni")}).to_string(),
        )],
    )
    .unwrap()
    .to_string()
    .replacen("http://", "ws://", 1);
    let mut first = Ws::open(&url).await;
    let push = first.recv().await;
    assert!(push["connect"]["client"].is_string(), "{push}");
    let mut second = Ws::open(&url).await;
    assert_eq!(
        second.expect_close().await,
        (3013, "too many requests".to_string())
    );
}

#[tokio::test]
async fn unsubscribe_is_counted_but_never_refused() {
    let s = server(json!({"client_command": {"enabled": true,
        "unsubscribe": {"enabled": true, "buckets": per_min(1)}}}))
    .await;
    let (mut ws, _) = s.v2_client("jack").await;
    for ch in ["a", "b", "c"] {
        assert_eq!(code(&ws.subscribe_v2(ch).await), 0);
    }
    for ch in ["a", "b", "c"] {
        let rep = ws.call_v2("unsubscribe", json!({"channel": ch})).await;
        assert_eq!(code(&rep), 0, "{rep}");
    }
    ws.assert_open_for(Duration::from_millis(200)).await;
    assert_eq!(
        over_limit(&s, "client_command", "unsubscribe", false).await,
        2.0
    );
}
