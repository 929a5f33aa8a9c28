//! Centrifugo 6 recovery and positioning options against the real binary with raw WebSocket
//! clients of both generations (CHANNELS-MODERN.md §3, §1.3, trap 6): `force_positioning`,
//! `allow_positioning` / `allow_recovery` (granted by the option or by history permission,
//! silently refused otherwise), `force_recovery_mode: cache` (latest publication only, none
//! when the client has it, empty history not recovered, the newest matching one with a tags
//! filter), `auto_cache_recover`, `flag` 2 (error 112 for a failed stream recovery), `type` ≠ 0
//! (103) and `force_push_join_leave`. Protocol v1 clients keep Centrifugo 2.8 behaviour.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or(0)
}

/// The `subscribe` result of a v2 reply, asserting it is not an error.
fn sub_result(reply: &Value) -> Value {
    assert!(reply.get("error").is_none(), "subscribe failed: {reply}");
    reply["subscribe"].clone()
}

fn history(extra: Value) -> Value {
    let mut o = json!({"history_size": 10, "history_ttl": "300s"});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

fn ns(name: &str, extra: Value) -> Value {
    let mut o = history(extra);
    o["name"] = json!(name);
    o
}

async fn server() -> Server {
    Server::start(json!({
        "channel": {"namespaces": [
            ns("pos", json!({"force_positioning": true})),
            ns("ask", json!({"allow_positioning": true, "allow_recovery": true})),
            ns("closed", json!({})),
            ns("hist", json!({"allow_history_for_subscriber": true})),
            ns("stream", json!({"force_recovery": true})),
            ns("cache", json!({"force_recovery": true, "force_recovery_mode": "cache",
                "allow_tags_filter": true})),
            ns("auto", json!({"force_recovery": true, "force_recovery_mode": "cache",
                "auto_cache_recover": true})),
            {"name": "jl", "presence": true, "join_leave": true, "force_push_join_leave": true},
            {"name": "jlplain", "presence": true, "join_leave": true}
        ]}
    }))
    .await
}

async fn publish(s: &Server, channel: &str, data: Value, tags: Option<Value>) -> u64 {
    let mut params = json!({"channel": channel, "data": data});
    if let Some(t) = tags {
        params["tags"] = t;
    }
    let r = api_v2(s, "publish", params).await;
    assert!(r.get("error").is_none(), "publish: {r}");
    r["result"]["offset"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn force_positioning_gives_v2_a_positioned_subscription() {
    let s = server().await;
    publish(&s, "pos:a", json!({"n": 1}), None).await;
    publish(&s, "pos:a", json!({"n": 2}), None).await;
    let (mut v2, _) = s.v2_client("u").await;
    let r = sub_result(&v2.subscribe_v2("pos:a").await);
    assert_eq!(r["positioned"], json!(true), "{r}");
    assert_eq!(r["offset"], json!(2), "{r}");
    assert!(r["epoch"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    assert!(r.get("recoverable").is_none(), "{r}");
    // Live publications keep coming (offsets follow).
    publish(&s, "pos:a", json!({"n": 3}), None).await;
    let p = v2.push().await;
    assert_eq!(p["push"]["pub"]["offset"], json!(3), "{p}");
    // A 2.x client: no positioning fields (Centrifugo 2.8 has none).
    let (mut v1, _) = s.v1_client("u1").await;
    let r = v1.subscribe_v1("pos:a").await;
    assert_eq!(r["result"], json!({}), "{r}");
}

#[tokio::test]
async fn allow_positioning_and_recovery_grant_only_what_is_asked() {
    let s = server().await;
    publish(&s, "ask:a", json!({"n": 1}), None).await;
    let (mut c, _) = s.v2_client("u").await;
    // Not asked: a plain subscription.
    let r = sub_result(&c.subscribe_v2("ask:a").await);
    assert!(
        r.get("positioned").is_none() && r.get("recoverable").is_none(),
        "{r}"
    );
    // Positioned asked and allowed.
    let r = sub_result(
        &c.call_v2("subscribe", json!({"channel": "ask:b", "positioned": true}))
            .await,
    );
    assert_eq!(r["positioned"], json!(true), "{r}");
    assert!(r.get("recoverable").is_none(), "{r}");
    // Recoverable asked and allowed: positioned too; a recovery returns what was missed.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "ask:c", "recoverable": true}),
        )
        .await,
    );
    assert_eq!(
        (&r["recoverable"], &r["positioned"]),
        (&json!(true), &json!(true)),
        "{r}"
    );
    let epoch = r["epoch"].as_str().unwrap().to_string();
    c.call_v2("unsubscribe", json!({"channel": "ask:c"})).await;
    publish(&s, "ask:c", json!({"n": 1}), None).await;
    publish(&s, "ask:c", json!({"n": 2}), None).await;
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "ask:c", "recoverable": true, "recover": true, "offset": 0,
                   "epoch": epoch}),
        )
        .await,
    );
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(r["publications"].as_array().map(Vec::len), Some(2), "{r}");

    // Neither option nor history permission: silently plain.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "closed:a", "positioned": true, "recoverable": true, "recover": true}),
        )
        .await,
    );
    assert!(
        r.get("positioned").is_none() && r.get("recoverable").is_none(),
        "{r}"
    );
    assert!(r.get("was_recovering").is_none(), "{r}");
    // History permission grants both.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "hist:a", "recoverable": true}),
        )
        .await,
    );
    assert_eq!(
        (&r["recoverable"], &r["positioned"]),
        (&json!(true), &json!(true)),
        "{r}"
    );
}

#[tokio::test]
async fn cache_recovery_returns_only_the_latest_publication() {
    let s = server().await;
    let (mut c, _) = s.v2_client("u").await;
    // Empty history: not recovered, nothing sent.
    let r = sub_result(
        &c.call_v2("subscribe", json!({"channel": "cache:a", "recover": true}))
            .await,
    );
    assert_eq!(r["was_recovering"], json!(true), "{r}");
    assert!(
        r.get("recovered").is_none() && r.get("publications").is_none(),
        "{r}"
    );
    let epoch = r["epoch"].as_str().unwrap().to_string();
    c.call_v2("unsubscribe", json!({"channel": "cache:a"}))
        .await;
    for n in 1..=3 {
        publish(&s, "cache:a", json!({"n": n}), None).await;
    }
    // Behind: only the latest, recovered.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "cache:a", "recover": true, "offset": 1, "epoch": epoch}),
        )
        .await,
    );
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 3}, "offset": 3}]),
        "{r}"
    );
    assert_eq!(r["offset"], json!(3), "{r}");
    c.call_v2("unsubscribe", json!({"channel": "cache:a"}))
        .await;
    // Already at the top: nothing, recovered.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "cache:a", "recover": true, "offset": 3, "epoch": epoch}),
        )
        .await,
    );
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert!(r.get("publications").is_none(), "{r}");
    c.call_v2("unsubscribe", json!({"channel": "cache:a"}))
        .await;
    // Another epoch (a client from elsewhere): still the latest state.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "cache:a", "recover": true, "offset": 3, "epoch": "other"}),
        )
        .await,
    );
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 3}, "offset": 3}]),
        "{r}"
    );

    // With a tags filter: the newest matching publication.
    publish(&s, "cache:t", json!({"k": "a1"}), Some(json!({"k": "a"}))).await;
    publish(&s, "cache:t", json!({"k": "b1"}), Some(json!({"k": "b"}))).await;
    publish(&s, "cache:t", json!({"k": "a2"}), Some(json!({"k": "a"}))).await;
    publish(&s, "cache:t", json!({"k": "b2"}), Some(json!({"k": "b"}))).await;
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "cache:t", "recover": true, "offset": 0, "epoch": "x",
                   "tf": {"key": "k", "cmp": "eq", "val": "a"}}),
        )
        .await,
    );
    assert_eq!(r["recovered"], json!(true), "{r}");
    let pubs = r["publications"].as_array().cloned().unwrap_or_default();
    assert_eq!(pubs.len(), 1, "{r}");
    assert_eq!(
        (&pubs[0]["data"], &pubs[0]["offset"]),
        (&json!({"k": "a2"}), &json!(3)),
        "{r}"
    );

    // A 2.x client on a cache namespace recovers as 2.8 did: every missed publication.
    let (mut v1, _) = s.v1_client("u1").await;
    let r = v1
        .call_v1(
            1,
            json!({"channel": "cache:a", "recover": true, "offset": 1, "epoch": epoch}),
        )
        .await;
    assert_eq!(r["result"]["recovered"], json!(true), "{r}");
    assert_eq!(
        r["result"]["publications"].as_array().map(Vec::len),
        Some(2),
        "{r}"
    );
}

#[tokio::test]
async fn auto_cache_recover_recovers_without_asking() {
    let s = server().await;
    publish(&s, "auto:a", json!({"n": 1}), None).await;
    publish(&s, "auto:a", json!({"n": 2}), None).await;
    let (mut c, _) = s.v2_client("u").await;
    let r = sub_result(&c.subscribe_v2("auto:a").await);
    assert_eq!(r["was_recovering"], json!(true), "{r}");
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 2}, "offset": 2}]),
        "{r}"
    );
    // A server-side subscription recovers too (connect with a token's subs).
    let mut ws = Ws::open(&s.ws_url()).await;
    let token = jwt(&json!({"sub": "srv", "subs": {"auto:a": {}}}));
    let res = ws.connect_v2(&token).await;
    let sub = &res["subs"]["auto:a"];
    assert_eq!(
        sub["publications"],
        json!([{"data": {"n": 2}, "offset": 2}]),
        "{res}"
    );
}

#[tokio::test]
async fn flag_2_turns_a_failed_stream_recovery_into_error_112() {
    let s = server().await;
    publish(&s, "stream:a", json!({"n": 1}), None).await;
    let (mut c, _) = s.v2_client("u").await;
    // Flag 1 alone (what every centrifuge-js sends): recovered false, as always.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "stream:a", "recover": true, "epoch": "gone", "flag": 1}),
        )
        .await,
    );
    assert_eq!(r["was_recovering"], json!(true), "{r}");
    assert!(r.get("recovered").is_none(), "{r}");
    c.call_v2("unsubscribe", json!({"channel": "stream:a"}))
        .await;
    // Flag 2: error 112, and the channel is not subscribed (a new subscribe works).
    let r = c
        .call_v2(
            "subscribe",
            json!({"channel": "stream:a", "recover": true, "epoch": "gone", "flag": 3}),
        )
        .await;
    assert_eq!(code(&r), 112, "{r}");
    assert_eq!(
        r["error"]["message"],
        json!("unrecoverable position"),
        "{r}"
    );
    publish(&s, "stream:a", json!({"n": 2}), None).await;
    c.assert_no_push(Duration::from_millis(200)).await;
    let r = sub_result(&c.subscribe_v2("stream:a").await);
    assert_eq!(r["recoverable"], json!(true), "{r}");
    // A successful recovery with flag 2 is a normal answer.
    let epoch = r["epoch"].as_str().unwrap().to_string();
    c.call_v2("unsubscribe", json!({"channel": "stream:a"}))
        .await;
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "stream:a", "recover": true, "offset": 1, "epoch": epoch, "flag": 2}),
        )
        .await,
    );
    assert_eq!(r["recovered"], json!(true), "{r}");
    c.assert_open_for(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn subscription_type_other_than_stream_is_permission_denied() {
    let s = server().await;
    let (mut c, _) = s.v2_client("u").await;
    for t in [1, 2, 3, 4] {
        let r = c
            .call_v2("subscribe", json!({"channel": "stream:m", "type": t}))
            .await;
        assert_eq!(code(&r), 103, "type {t}: {r}");
    }
    let r = sub_result(
        &c.call_v2("subscribe", json!({"channel": "stream:m", "type": 0}))
            .await,
    );
    assert_eq!(r["recoverable"], json!(true), "{r}");
}

#[tokio::test]
async fn force_push_join_leave_pushes_to_every_subscriber() {
    let s = server().await;
    let (mut a, _) = s.v2_client("a").await;
    sub_result(&a.subscribe_v2("jl:x").await);
    sub_result(&a.subscribe_v2("jlplain:x").await);
    // Its own join comes first (it is a subscriber when the join is published).
    let p = a.push().await;
    assert_eq!(p["push"]["join"]["info"]["user"], json!("a"), "{p}");
    let (mut b, _) = s.v2_client("b").await;
    sub_result(&b.subscribe_v2("jl:x").await);
    sub_result(&b.subscribe_v2("jlplain:x").await);
    // `a` never asked for join_leave: the forced namespace pushes b's join, the plain one not.
    let p = a.push().await;
    assert_eq!(p["push"]["channel"], json!("jl:x"), "{p}");
    assert_eq!(p["push"]["join"]["info"]["user"], json!("b"), "{p}");
    a.assert_no_push(Duration::from_millis(300)).await;
    b.close().await;
    let p = a.push().await;
    assert_eq!(p["push"]["channel"], json!("jl:x"), "{p}");
    assert_eq!(p["push"]["leave"]["info"]["user"], json!("b"), "{p}");
    a.assert_no_push(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn server_refuses_to_start_with_an_option_it_does_not_serve() {
    for (opt, value) in [
        ("subscription_type", json!("map")),
        ("shared_poll", json!({"enabled": true})),
        ("proxy_cache_empty", json!(true)),
    ] {
        let cfg = json!({
            "address": "127.0.0.1", "port": free_port(),
            "channel": {"namespaces": [{"name": "bad", opt: value}]}
        });
        let (status, out) = run_rotor_with_config_text(&cfg.to_string(), Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| !s.success()),
            "{opt}: {status:?}; {out}"
        );
        assert!(out.contains("is not supported by Rotor"), "{opt}: {out}");
        assert!(out.contains("\"bad\""), "{opt}: {out}");
    }
}

#[tokio::test]
async fn server_api_subscribe_follows_the_namespace_options() {
    let s = server().await;
    publish(&s, "auto:api", json!({"n": 1}), None).await;
    publish(&s, "auto:api", json!({"n": 2}), None).await;
    let (mut v2, _) = s.v2_client("api-user").await;
    // auto_cache_recover: the subscribe push, then the latest publication.
    let r = api_v2(
        &s,
        "subscribe",
        json!({"user": "api-user", "channel": "auto:api"}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    let p = v2.push().await;
    assert_eq!(p["push"]["channel"], json!("auto:api"), "{p}");
    assert_eq!(p["push"]["subscribe"]["recoverable"], json!(true), "{p}");
    let p = v2.push().await;
    assert_eq!(
        p["push"]["pub"],
        json!({"data": {"n": 2}, "offset": 2}),
        "{p}"
    );
    // force_positioning: a positioned subscription, not recoverable.
    let r = api_v2(
        &s,
        "subscribe",
        json!({"user": "api-user", "channel": "pos:api"}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    let p = v2.push().await;
    assert_eq!(p["push"]["subscribe"]["positioned"], json!(true), "{p}");
    assert!(p["push"]["subscribe"].get("recoverable").is_none(), "{p}");
    v2.assert_no_push(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_positioned_subscription_that_loses_its_stream_is_told_insufficient_state() {
    // The stream's meta expires 2 s after the last publication: a new epoch, which the
    // periodic position check (every second here) notices.
    let s = Server::start(json!({
        "memory_history_meta_ttl": "2s",
        "client_channel_position_check_delay": "1s",
        "channel": {"namespaces": [
            {"name": "pos", "history_size": 10, "history_ttl": "1s", "force_positioning": true}
        ]}
    }))
    .await;
    publish(&s, "pos:gone", json!({"n": 1}), None).await;
    let (mut v2, _) = s.v2_client("u").await;
    let r = sub_result(&v2.subscribe_v2("pos:gone").await);
    assert_eq!(r["positioned"], json!(true), "{r}");
    let p = v2
        .push_within(Duration::from_secs(8))
        .await
        .expect("an unsubscribe push once the epoch changed");
    assert_eq!(p["push"]["channel"], json!("pos:gone"), "{p}");
    assert_eq!(p["push"]["unsubscribe"]["code"], json!(2500), "{p}");
}
