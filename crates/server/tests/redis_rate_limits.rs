//! `client.rate_limit.redis_user_command` across two Rotor nodes on one real redis-server:
//! a user's buckets are shared by every node (one Lua call per command on the Redis clock),
//! other users have their own, tokens come back after the interval, and the state is one
//! hash-tagged key per user and limiter that expires when it would be full again.

mod common;
mod redis_support;

use std::time::Duration;

use common::*;
use redis_support::*;
use serde_json::{json, Value};

async fn publish(ws: &mut Ws) -> u64 {
    let rep = ws
        .call_v2("publish", json!({"channel": "news", "data": {"n": 1}}))
        .await;
    rep["error"]["code"].as_u64().unwrap_or(0)
}

fn limited_node_config(redis: &RedisProcess) -> Value {
    json!({
        "redis_address": redis.addr(),
        "client": {"rate_limit": {"redis_user_command": {"enabled": true,
            "redis": {"reuse_from_engine": true},
            "publish": {"enabled": true, "buckets": [{"interval": "1s", "rate": 2}]},
            "connect": {"enabled": true, "buckets": [{"interval": "1m", "rate": 3}]}}}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_buckets_are_shared_by_every_node() {
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    let a = node(limited_node_config(&redis), "a").await;
    let b = node(limited_node_config(&redis), "b").await;
    let (mut on_a, _) = a.v2_client("uma").await;
    let (mut on_b, _) = b.v2_client("uma").await;
    assert_eq!(publish(&mut on_a).await, 0);
    assert_eq!(publish(&mut on_b).await, 0);
    // Two per second for the user, wherever the commands arrive.
    assert_eq!(publish(&mut on_a).await, 111);
    assert_eq!(publish(&mut on_b).await, 111);
    let (mut other, _) = b.v2_client("vic").await;
    assert_eq!(publish(&mut other).await, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(publish(&mut on_b).await, 0);
    assert_eq!(publish(&mut on_a).await, 0);
    assert_eq!(publish(&mut on_a).await, 111);

    // connect: 3 per minute for the user across nodes (two above, a third here, then 111).
    let (_third, _) = a.v2_client("uma").await;
    let mut fourth = Ws::open(&b.ws_url()).await;
    let rep = fourth
        .call_v2("connect", json!({"token": conn_token("uma")}))
        .await;
    assert_eq!(rep["error"]["code"], json!(111), "{rep}");
    assert_eq!(rep["error"]["temporary"], json!(true), "{rep}");

    // The state: one hash per user and limiter, with a TTL of the longest interval at most.
    let key = "centrifugo.ratelimit.{uma}.publish";
    assert_eq!(redis.cli(&["exists", key]), "1");
    let ttl: i64 = redis.cli(&["pttl", key]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 1000, "pttl {ttl}");
    let ttl: i64 = redis
        .cli(&["pttl", "centrifugo.ratelimit.{uma}.connect"])
        .parse()
        .unwrap();
    assert!(ttl > 1000 && ttl <= 60_000, "pttl {ttl}");
}
