//! Centrifugo 6 recovery modes on the Redis engine (CHANNELS-MODERN.md §3): cache recovery
//! reads the newest stream entry (the newest matching one with a tags filter) across two
//! nodes, `auto_cache_recover` hands it to a fresh subscriber, and `flag` 2 turns a failed
//! stream recovery into error 112. Real `redis-server` on a free port, real binaries.

mod common;
mod redis_support;

use common::*;
use redis_support::*;
use serde_json::{json, Value};

fn sub_result(reply: &Value) -> Value {
    assert!(reply.get("error").is_none(), "subscribe failed: {reply}");
    reply["subscribe"].clone()
}

async fn redis_node(redis: &RedisProcess) -> Server {
    Server::start(json!({
        "engine": "redis",
        "redis_address": redis.addr(),
        "channel": {"namespaces": [
            {"name": "cache", "history_size": 10, "history_ttl": "300s", "force_recovery": true,
             "force_recovery_mode": "cache", "allow_tags_filter": true},
            {"name": "auto", "history_size": 10, "history_ttl": "300s", "force_recovery": true,
             "force_recovery_mode": "cache", "auto_cache_recover": true},
            {"name": "stream", "history_size": 10, "history_ttl": "300s", "force_recovery": true}
        ]}
    }))
    .await
}

async fn publish(s: &Server, channel: &str, data: Value, tags: Option<Value>) {
    let mut params = json!({"channel": channel, "data": data});
    if let Some(t) = tags {
        params["tags"] = t;
    }
    let r = api_v2(s, "publish", params).await;
    assert!(r.get("error").is_none(), "publish: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_recovery_and_flag_2_on_redis() {
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    let a = redis_node(&redis).await;
    let b = redis_node(&redis).await;
    // Published on node A, recovered on node B: only the latest.
    for n in 1..=4 {
        publish(
            &a,
            "cache:r",
            json!({"n": n}),
            Some(json!({"odd": (n % 2).to_string()})),
        )
        .await;
    }
    let (mut c, _) = b.v2_client("u").await;
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "cache:r", "recover": true, "offset": 1, "epoch": "x"}),
        )
        .await,
    );
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 4}, "offset": 4, "tags": {"odd": "0"}}]),
        "{r}"
    );
    let epoch = r["epoch"].as_str().unwrap().to_string();
    c.call_v2("unsubscribe", json!({"channel": "cache:r"}))
        .await;
    // The newest matching a filter.
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "cache:r", "recover": true, "offset": 1, "epoch": epoch,
                   "tf": {"key": "odd", "cmp": "eq", "val": "1"}}),
        )
        .await,
    );
    let pubs = r["publications"].as_array().cloned().unwrap_or_default();
    assert_eq!(pubs.len(), 1, "{r}");
    assert_eq!(pubs[0]["data"], json!({"n": 3}), "{r}");
    // At the top: nothing.
    c.call_v2("unsubscribe", json!({"channel": "cache:r"}))
        .await;
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "cache:r", "recover": true, "offset": 4, "epoch": epoch}),
        )
        .await,
    );
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert!(r.get("publications").is_none(), "{r}");

    // auto_cache_recover.
    publish(&a, "auto:r", json!({"n": 1}), None).await;
    publish(&a, "auto:r", json!({"n": 2}), None).await;
    let r = sub_result(&c.subscribe_v2("auto:r").await);
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 2}, "offset": 2}]),
        "{r}"
    );

    // Flag 2 on a stream namespace with a wrong epoch: 112; without the flag: recovered false.
    publish(&a, "stream:r", json!({"n": 1}), None).await;
    let r = c
        .call_v2(
            "subscribe",
            json!({"channel": "stream:r", "recover": true, "epoch": "gone", "flag": 3}),
        )
        .await;
    assert_eq!(r["error"]["code"], json!(112), "{r}");
    let r = sub_result(
        &c.call_v2(
            "subscribe",
            json!({"channel": "stream:r", "recover": true, "epoch": "gone", "flag": 1}),
        )
        .await,
    );
    assert!(r.get("recovered").is_none(), "{r}");
    assert_eq!(r["was_recovering"], json!(true), "{r}");
}
