//! Per-client limits against the real binary, both generations and both key forms
//! (CHANNELS-MODERN.md §4.1, trap 8): `client.user_connection_limit` (2.x
//! `client_user_connection_limit`) closes the extra connection with 3504 (v2) / 3013 (v1);
//! `client.channel_limit` (`client_channel_limit`) answers a subscribe over it with 106 and,
//! for v2, closes a connection given more server-side subscriptions with 3505;
//! `client.queue_max_size` (`client_queue_max_size`) closes with 3008 (default 1 MB for a v6
//! configuration, 10 MB for a 2.x one). Every refusal is counted in `/metrics`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or(0)
}

/// The value of the sample `name{labels}` in `/metrics` (0 when absent).
async fn metric(server: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = http()
        .get(server.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn disconnects(server: &Server, code: u16) -> f64 {
    let code = code.to_string();
    metric(
        server,
        "centrifugo_client_num_server_disconnects",
        &[("code", &code)],
    )
    .await
}

#[tokio::test]
async fn user_connection_limit_closes_the_extra_connection_in_both_generations() {
    for (cfg, what) in [
        (json!({"client": {"user_connection_limit": 1}}), "v6 key"),
        (json!({"client_user_connection_limit": 1}), "2.x key"),
    ] {
        let mut cfg = cfg;
        cfg["prometheus"] = json!(true);
        let s = Server::start(cfg).await;
        let (mut first, _) = s.v2_client("alice").await;
        // v2: 3504 "connection limit".
        let mut ws = Ws::open(&s.ws_url()).await;
        ws.cmd_v2("connect", json!({"token": conn_token("alice")}))
            .await;
        assert_eq!(
            ws.expect_close().await,
            (3504, "connection limit".into()),
            "{what}"
        );
        // v1: 3013 with 2.x's reconnect advice.
        let mut ws = Ws::open(&s.ws_url()).await;
        ws.cmd_v1(0, json!({"token": conn_token("alice")})).await;
        assert_eq!(
            ws.expect_close().await,
            (3013, V1_CONNECTION_LIMIT.into()),
            "{what}"
        );
        // Another user is not limited by it; the first connection stays.
        let (_other, _) = s.v2_client("bob").await;
        first.assert_open_for(Duration::from_millis(100)).await;
        assert_eq!(disconnects(&s, 3504).await, 1.0, "{what}");
        assert_eq!(disconnects(&s, 3013).await, 1.0, "{what}");
    }
}

#[tokio::test]
async fn channel_limit_refuses_the_extra_subscribe_with_106() {
    for (cfg, what) in [
        (json!({"client": {"channel_limit": 2}}), "v6 key"),
        (json!({"client_channel_limit": 2}), "2.x key"),
    ] {
        let mut cfg = cfg;
        cfg["prometheus"] = json!(true);
        let s = Server::start(cfg).await;
        let (mut v2, _) = s.v2_client("u2").await;
        for ch in ["a", "b"] {
            assert!(v2.subscribe_v2(ch).await.get("error").is_none(), "{what}");
        }
        let r = v2.subscribe_v2("c").await;
        assert_eq!(code(&r), 106, "{what}: {r}");
        assert_eq!(
            r["error"]["message"],
            json!("limit exceeded"),
            "{what}: {r}"
        );
        // After an unsubscribe there is room again.
        v2.call_v2("unsubscribe", json!({"channel": "a"})).await;
        assert!(v2.subscribe_v2("c").await.get("error").is_none(), "{what}");
        let (mut v1, _) = s.v1_client("u1").await;
        for ch in ["a", "b"] {
            assert!(v1.subscribe_v1(ch).await.get("error").is_none(), "{what}");
        }
        let r = v1.subscribe_v1("c").await;
        assert_eq!(code(&r), 106, "{what}: {r}");
        v1.assert_open_for(Duration::from_millis(100)).await;
        let errors = metric(
            &s,
            "centrifugo_client_num_reply_errors",
            &[("method", "subscribe"), ("code", "106")],
        )
        .await;
        assert_eq!(errors, 2.0, "{what}");
    }
}

#[tokio::test]
async fn server_side_subscriptions_over_the_channel_limit() {
    let s = Server::start(json!({"client": {"channel_limit": 2}, "prometheus": true})).await;
    let token = jwt(&json!({"sub": "u", "channels": ["a", "b", "c"]}));
    let v2_token = jwt(&json!({"sub": "u", "subs": {"a": {}, "b": {}, "c": {}}}));
    // v2 (Centrifugo 6): the connection is closed with 3505 "channel limit".
    let mut ws = Ws::open(&s.ws_url()).await;
    ws.cmd_v2("connect", json!({"token": v2_token})).await;
    assert_eq!(ws.expect_close().await, (3505, "channel limit".into()));
    assert_eq!(disconnects(&s, 3505).await, 1.0);
    // Within the limit it connects with both.
    let mut ws = Ws::open(&s.ws_url()).await;
    let res = ws
        .connect_v2(&jwt(&json!({"sub": "u", "subs": {"a": {}, "b": {}}})))
        .await;
    assert_eq!(res["subs"].as_object().map(|m| m.len()), Some(2), "{res}");
    // v1 (2.8 had no such check): connected, subscribed to all three.
    let mut v1 = Ws::open(&s.ws_url()).await;
    v1.connect_v1(&token).await;
    api_publish(&s, "c", json!({"n": 1})).await;
    let p = v1.push().await;
    assert_eq!(p["result"]["channel"], json!("c"), "{p}");
}

#[tokio::test]
async fn queue_max_size_closes_a_client_with_3008() {
    for (cfg, what) in [
        (json!({"client": {"queue_max_size": 2000}}), "v6 key"),
        (json!({"client_queue_max_size": 2000}), "2.x key"),
    ] {
        let mut cfg = cfg;
        cfg["prometheus"] = json!(true);
        let s = Server::start(cfg).await;
        let (mut v2, _) = s.v2_client("u2").await;
        let (mut v1, _) = s.v1_client("u1").await;
        assert!(v2.subscribe_v2("big").await.get("error").is_none());
        assert!(v1.subscribe_v1("big").await.get("error").is_none());
        // A small publication passes, one larger than the whole queue closes both.
        api_publish(&s, "big", json!({"n": 1})).await;
        v2.push().await;
        v1.push().await;
        api_publish(&s, "big", json!({"pad": "x".repeat(3000)})).await;
        assert_eq!(v2.expect_close().await, (3008, "slow".into()), "{what}");
        assert_eq!(v1.expect_close().await, (3008, V1_SLOW.into()), "{what}");
        assert_eq!(disconnects(&s, 3008).await, 2.0, "{what}");
    }
}

#[tokio::test]
async fn queue_max_size_default_depends_on_the_configuration_generation() {
    let pad = "x".repeat(1_200_000);
    // A v6 configuration (any nested key): 1 MB, so a 1.2 MB publication is too much.
    let v6 = Server::start(json!({"client": {"channel_limit": 128}})).await;
    // A 2.x configuration: 10 MB.
    let v2x = Server::start(json!({"client_channel_limit": 128})).await;
    for (s, closes) in [(&v6, true), (&v2x, false)] {
        let (mut c, _) = s.v2_client("u").await;
        assert!(c.subscribe_v2("big").await.get("error").is_none());
        let r = api_v2(
            s,
            "publish",
            json!({"channel": "big", "data": {"pad": pad}}),
        )
        .await;
        assert!(r.get("error").is_none(), "{r}");
        if closes {
            assert_eq!(c.expect_close().await, (3008, "slow".into()));
        } else {
            let p = c.push().await;
            assert_eq!(
                p["push"]["pub"]["data"]["pad"].as_str().map(str::len),
                Some(pad.len())
            );
        }
    }
}

#[tokio::test]
async fn channel_limit_zero_means_no_limit() {
    let s = Server::start(json!({"client_channel_limit": 0})).await;
    let (mut v2, _) = s.v2_client("u").await;
    for n in 0..200 {
        let r = v2.subscribe_v2(&format!("ch{n}")).await;
        assert!(r.get("error").is_none(), "{n}: {r}");
    }
}
