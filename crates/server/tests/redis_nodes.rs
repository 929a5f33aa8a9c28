//! Several Rotor nodes as one service on the Redis engine (issue 5): three nodes on one Redis,
//! and three nodes sharding their channels over two Redis servers. On each: a client on every
//! node (both protocol generations) sees a publication made through node A's API, joins,
//! presence and history agree on every node, `info` lists every node, and the server API's
//! `unsubscribe` / `disconnect` reach a user's connections on other nodes.

mod common;
mod redis_support;

use std::time::Duration;

use common::*;
use redis_support::*;
use serde_json::{json, Value};

const CHANNELS: usize = 6;

fn channel(i: usize) -> String {
    format!("room-{i}")
}

/// Subscribes `ws` (v1 or v2) to every test channel; asserts success.
async fn subscribe_all(ws: &mut Ws, v2: bool) {
    for i in 0..CHANNELS {
        let ch = channel(i);
        let rep = if v2 {
            ws.call_v2("subscribe", json!({"channel": ch, "join_leave": true}))
                .await
        } else {
            ws.subscribe_v1(&ch).await
        };
        assert!(rep.get("error").is_none(), "subscribe {ch}: {rep}");
    }
}

/// The publication push `ws` receives next on `ch`, skipping joins/leaves; (data, offset).
async fn next_publication(ws: &mut Ws, ch: &str) -> (Value, u64) {
    loop {
        let p = ws.push().await;
        let (pub_obj, got_ch) = if let Some(push) = p.get("push") {
            (push.get("pub").cloned(), push["channel"].clone())
        } else {
            let r = &p["result"];
            let is_pub = r.get("type").is_none();
            (is_pub.then(|| r["data"].clone()), r["channel"].clone())
        };
        if let Some(pb) = pub_obj {
            assert_eq!(got_ch, json!(ch), "publication on another channel: {p}");
            return (pb["data"].clone(), pb["offset"].as_u64().unwrap_or(0));
        }
    }
}

/// Every node's view of `method` on `ch` (sorted JSON text), asserted equal; returns it.
async fn same_everywhere(nodes: &[&Server], method: &str, ch: &str) -> Value {
    let mut seen: Option<Value> = None;
    for n in nodes {
        let rep = api_v1(n, method, json!({"channel": ch})).await;
        assert!(
            rep[0].get("error").is_none(),
            "{method} on {}: {rep:?}",
            n.port
        );
        let v = rep[0]["result"].clone();
        if let Some(s) = &seen {
            assert_eq!(s, &v, "{method} differs between nodes");
        }
        seen = Some(v);
    }
    seen.unwrap()
}

/// The whole multi-node scenario on nodes configured with `redis` keys.
async fn scenario(redis: Value) {
    let a = node(redis.clone(), "node-a").await;
    let b = node(redis.clone(), "node-b").await;
    let c = node(redis, "node-c").await;
    for n in [&a, &b, &c] {
        assert_eq!(health(n).await, 200, "node {} healthy", n.port);
    }

    // Clients: alice (v1) on A, carol (v1) on C, then bob (v2) on B.
    let (mut alice, _) = a.v1_client("alice").await;
    let (mut carol, carol_id) = c.v1_client("carol").await;
    subscribe_all(&mut alice, false).await;
    subscribe_all(&mut carol, false).await;
    let (mut bob, bob_id) = b.v2_client("bob").await;
    subscribe_all(&mut bob, true).await;

    // Bob's joins reach alice (other node) and carol (third node); carol's join reached alice.
    for ws in [&mut alice, &mut carol] {
        let mut joined = 0;
        while joined < CHANNELS {
            let p = ws.push().await;
            if p["result"]["type"] == json!(1) && p["result"]["data"]["info"]["user"] == "bob" {
                joined += 1;
            }
        }
    }

    // A publication through node A's API reaches every node's client, with the same offset.
    for i in 0..CHANNELS {
        let ch = channel(i);
        let rep = api_publish(&a, &ch, json!({"n": i})).await;
        assert_eq!(rep, vec![json!({})]);
        for ws in [&mut alice, &mut bob, &mut carol] {
            let (data, offset) = next_publication(ws, &ch).await;
            assert_eq!(data, json!({"n": i}));
            assert_eq!(offset, 1, "first publication of {ch}");
        }
    }
    // A client publication on node B reaches A and C with its publisher's info.
    let rep = bob
        .call_v2(
            "publish",
            json!({"channel": channel(0), "data": {"from": "bob"}}),
        )
        .await;
    assert!(rep.get("error").is_none(), "{rep}");
    for ws in [&mut alice, &mut carol] {
        let p = ws.push().await;
        assert_eq!(p["result"]["data"]["data"], json!({"from": "bob"}), "{p}");
        assert_eq!(p["result"]["data"]["offset"], json!(2), "{p}");
        assert_eq!(p["result"]["data"]["info"]["user"], json!("bob"), "{p}");
    }
    let _ = bob.push().await;

    // Presence and history agree on every node.
    for i in 0..CHANNELS {
        let ch = channel(i);
        let presence = same_everywhere(&[&a, &b, &c], "presence", &ch).await;
        let users: Vec<&str> = presence["presence"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["user"].as_str().unwrap())
            .collect();
        assert_eq!(users.len(), 3, "{presence}");
        for u in ["alice", "bob", "carol"] {
            assert!(users.contains(&u), "{u} in {presence}");
        }
        let stats = same_everywhere(&[&a, &b, &c], "presence_stats", &ch).await;
        assert_eq!(stats, json!({"num_clients": 3, "num_users": 3}));
        let history = same_everywhere(&[&a, &b, &c], "history", &ch).await;
        let n = if i == 0 { 2 } else { 1 };
        assert_eq!(
            history["publications"].as_array().unwrap().len(),
            n,
            "{history}"
        );
    }

    // Recovery across nodes: carol's position on C, publications through A, a new client of
    // carol's on B recovers them.
    let ch = channel(1);
    let top = api_v2(&c, "history", json!({"channel": ch, "limit": 0})).await;
    let (offset, epoch) = (
        top["result"]["offset"].clone(),
        top["result"]["epoch"].clone(),
    );
    assert_eq!(offset, json!(1), "{top}");
    for k in 0..3 {
        api_publish(&a, &ch, json!({"later": k})).await;
    }
    let (mut carol2, _) = b.v2_client("carol").await;
    let rep = carol2
        .call_v2(
            "subscribe",
            json!({"channel": ch, "recover": true, "offset": offset, "epoch": epoch}),
        )
        .await;
    let res = &rep["subscribe"];
    assert_eq!(res["recovered"], json!(true), "{rep}");
    let recovered: Vec<Value> = res["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(
        recovered,
        [
            json!({"later": 0}),
            json!({"later": 1}),
            json!({"later": 2})
        ]
    );

    // `info` lists all three nodes, from any node.
    wait_until(
        Duration::from_secs(10),
        "info to list three nodes",
        || async {
            let rep = api_v1(&b, "info", json!({})).await;
            let names: Vec<String> = rep[0]["result"]["nodes"]
                .as_array()
                .map(|ns| {
                    ns.iter()
                        .map(|n| n["name"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            names.len() == 3
                && ["node-a", "node-b", "node-c"]
                    .iter()
                    .all(|n| names.iter().any(|x| x == n))
        },
    )
    .await;

    // `channels` counts every node's subscribers (other nodes' lists come with their pings).
    wait_until(
        Duration::from_secs(10),
        "channels to count all nodes",
        || async {
            let rep = api_v2(&c, "channels", json!({})).await;
            let chans = &rep["result"]["channels"];
            // carol's second connection (recovery check above) is in room-1 too.
            (0..CHANNELS)
                .all(|i| chans[channel(i)]["num_clients"] == json!(if i == 1 { 4 } else { 3 }))
        },
    )
    .await;
    let rep = api_v1(&a, "channels", json!({})).await;
    let names = rep[0]["result"]["channels"].as_array().unwrap().clone();
    for i in 0..CHANNELS {
        assert!(names.contains(&json!(channel(i))), "{rep:?}");
    }

    // The API's unsubscribe through node A reaches bob on node B.
    let rep = api_v1(
        &a,
        "unsubscribe",
        json!({"user": "bob", "channel": channel(2)}),
    )
    .await;
    assert_eq!(rep, vec![json!({})]);
    loop {
        let p = bob.push().await;
        if p["push"].get("unsubscribe").is_some() {
            assert_eq!(p["push"]["channel"], json!(channel(2)), "{p}");
            break;
        }
    }
    // And a disconnect through node C closes alice's connection on node A.
    let rep = api_v1(&c, "disconnect", json!({"user": "alice"})).await;
    assert_eq!(rep, vec![json!({})]);
    let (code, reason) = alice.close_within(Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (3012, V1_FORCE_DISCONNECT));
    // Alice's presence disappears everywhere; the others stay.
    wait_until(
        Duration::from_secs(5),
        "alice gone from presence",
        || async {
            let rep = api_v1(&b, "presence_stats", json!({"channel": channel(3)})).await;
            rep[0]["result"] == json!({"num_clients": 2, "num_users": 2})
        },
    )
    .await;
    let _ = (carol_id, bob_id);
    for n in [&a, &b, &c] {
        n.assert_alive();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_redis() {
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    scenario(json!({"redis_address": redis.addr()})).await;
    // Everything lives under the default prefix.
    let keys = redis.cli(&["--scan", "--pattern", "centrifugo.*"]);
    assert!(keys.contains("centrifugo.stream.{room-0}"), "{keys}");
    assert!(keys.contains("centrifugo.meta.{room-0}"), "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_sharded_over_two_redis_servers() {
    if !redis_available() {
        return;
    }
    let r1 = RedisProcess::start();
    let r2 = RedisProcess::start();
    // 2.x style: one host, a comma-separated port list.
    scenario(json!({"redis_host": "127.0.0.1", "redis_port": format!("{},{}", r1.port, r2.port)}))
        .await;
    // Channels landed on both servers, each channel's keys on exactly one.
    let k1 = r1.cli(&["--scan", "--pattern", "centrifugo.stream.*"]);
    let k2 = r2.cli(&["--scan", "--pattern", "centrifugo.stream.*"]);
    assert!(!k1.is_empty() && !k2.is_empty(), "r1: {k1:?}, r2: {k2:?}");
    for i in 0..CHANNELS {
        let key = format!("centrifugo.stream.{{{}}}", channel(i));
        assert!(
            k1.lines().any(|l| l == key) != k2.lines().any(|l| l == key),
            "{key} on exactly one shard"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_meta_expires_after_720h_with_v6_keys_and_never_with_2x_keys() {
    // Centrifugo 6's `channel.history_meta_ttl` defaults to 720h on every engine; 2.x kept
    // the meta forever (`redis_history_meta_ttl: 0`), so each channel ever published to
    // left a key behind.
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    let v6 = Server::start(json!({
        "engine": {"type": "redis", "redis": {"address": redis.addr()}},
        "channel": {"without_namespace": {"history_size": 10, "history_ttl": "60s"}}
    }))
    .await;
    let v2x = Server::start(json!({
        "engine": "redis", "redis_address": redis.addr(),
        "history_size": 10, "history_lifetime": 60
    }))
    .await;
    assert_eq!(api_publish(&v6, "six", json!({})).await, vec![json!({})]);
    assert_eq!(api_publish(&v2x, "two", json!({})).await, vec![json!({})]);
    let ttl = |ch: &str| {
        redis
            .cli(&["ttl", &format!("centrifugo.meta.{{{ch}}}")])
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let six = ttl("six");
    assert!(
        (720 * 3600 - 60..=720 * 3600).contains(&six),
        "v6 meta TTL {six}"
    );
    assert_eq!(ttl("two"), -1, "2.x meta kept without expiry");
}
