//! Several Rotor nodes as one service over NATS (issue 17): three nodes on one real
//! `nats-server`. Cross-node delivery to v1 and v2 clients, joins and leaves, control messages
//! (API unsubscribe/disconnect of a user on another node, `info` lists every node); what NATS
//! cannot do answers as Centrifugo does (history and recovery 108, presence 108 without a
//! presence manager, channels NATS cannot carry 107); presence across nodes from Redis
//! (2.x `engine: redis` + `broker: nats`, v6 `presence_manager`); both configuration
//! generations; `/health` 503 and failing publishes while NATS is down.

mod common;
mod nats_support;
mod redis_support;

use std::time::Duration;

use common::*;
use nats_support::*;
use redis_support::{health, wait_until, RedisProcess};
use serde_json::{json, Value};

const CHANNELS: usize = 3;

fn channel(i: usize) -> String {
    format!("room-{i}")
}

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

/// The next publication push on `ch` (joins/leaves skipped): (data, offset, publisher user).
async fn next_publication(ws: &mut Ws, ch: &str) -> (Value, Value, Value) {
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
            return (
                pb["data"].clone(),
                pb.get("offset").cloned().unwrap_or(Value::Null),
                pb["info"]["user"].clone(),
            );
        }
    }
}

fn error_code(rep: &Value) -> u64 {
    rep["error"]["code"].as_u64().unwrap_or(0)
}

/// Waits until `info` through `n` lists exactly `names`.
async fn wait_nodes(n: &Server, names: &[&str]) {
    wait_until(
        Duration::from_secs(10),
        "info to list every node",
        || async {
            let rep = api_v1(n, "info", json!({})).await;
            let got: Vec<String> = rep[0]["result"]["nodes"]
                .as_array()
                .map(|ns| {
                    ns.iter()
                        .map(|x| x["name"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            got.len() == names.len() && names.iter().all(|w| got.iter().any(|g| g == w))
        },
    )
    .await;
}

/// Delivery, join/leave and control across nodes `a`, `b`, `c`.
async fn across_nodes(a: &Server, b: &Server, c: &Server) -> (Ws, Ws, Ws) {
    for n in [a, b, c] {
        assert_eq!(health(n).await, 200, "node {} healthy", n.port);
    }
    let (mut alice, _) = a.v1_client("alice").await;
    let (mut carol, _) = c.v1_client("carol").await;
    subscribe_all(&mut alice, false).await;
    subscribe_all(&mut carol, false).await;
    let (mut bob, _) = b.v2_client("bob").await;
    subscribe_all(&mut bob, true).await;

    // Bob's joins (node B) reach alice (A) and carol (C).
    for ws in [&mut alice, &mut carol] {
        let mut joined = 0;
        while joined < CHANNELS {
            let p = ws.push().await;
            if p["result"]["type"] == json!(1) && p["result"]["data"]["info"]["user"] == "bob" {
                joined += 1;
            }
        }
    }
    // API publications through A reach every node's client; no offset (no history).
    for i in 0..CHANNELS {
        let ch = channel(i);
        let rep = api_publish(a, &ch, json!({"n": i})).await;
        assert_eq!(rep, vec![json!({})]);
        for ws in [&mut alice, &mut bob, &mut carol] {
            let (data, offset, _) = next_publication(ws, &ch).await;
            assert_eq!(data, json!({"n": i}));
            assert!(offset.is_null() || offset == json!(0), "offset {offset}");
        }
    }
    // A client publication on B reaches A and C with the publisher's info.
    let rep = bob
        .call_v2(
            "publish",
            json!({"channel": channel(0), "data": {"from": "bob"}}),
        )
        .await;
    assert!(rep.get("error").is_none(), "{rep}");
    for ws in [&mut alice, &mut carol, &mut bob] {
        let (data, _, user) = next_publication(ws, &channel(0)).await;
        assert_eq!((data, user), (json!({"from": "bob"}), json!("bob")));
    }
    // Carol leaves room-2 on C: alice on A sees the leave.
    let rep = carol.call_v1(2, json!({"channel": channel(2)})).await;
    assert!(rep.get("error").is_none(), "unsubscribe: {rep}");
    loop {
        let p = alice.push().await;
        if p["result"]["type"] == json!(2) {
            assert_eq!(p["result"]["channel"], json!(channel(2)), "{p}");
            assert_eq!(p["result"]["data"]["info"]["user"], json!("carol"), "{p}");
            break;
        }
    }
    wait_nodes(b, &["node-a", "node-b", "node-c"]).await;
    (alice, bob, carol)
}

/// Control across nodes: API unsubscribe through A reaches bob on B, disconnect through C
/// closes alice on A.
async fn control(a: &Server, c: &Server, alice: &mut Ws, bob: &mut Ws) {
    let rep = api_v1(
        a,
        "unsubscribe",
        json!({"user": "bob", "channel": channel(1)}),
    )
    .await;
    assert_eq!(rep, vec![json!({})]);
    loop {
        let p = bob.push().await;
        if p["push"].get("unsubscribe").is_some() {
            assert_eq!(p["push"]["channel"], json!(channel(1)), "{p}");
            break;
        }
    }
    let rep = api_v1(c, "disconnect", json!({"user": "alice"})).await;
    assert_eq!(rep, vec![json!({})]);
    let (code, reason) = alice.close_within(Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (3012, V1_FORCE_DISCONNECT));
}

fn rec_namespace() -> Value {
    json!({"namespaces": [
        {"name": "rec", "history_size": 10, "history_lifetime": 60, "history_recover": true,
         "presence": true, "publish": true},
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_memory_engine_nats_broker_2x() {
    if !nats_available() {
        return;
    }
    let nats = NatsProcess::start();
    let a = node_v2x(&nats, "node-a", rec_namespace()).await;
    let b = node_v2x(&nats, "node-b", rec_namespace()).await;
    let c = node_v2x(&nats, "node-c", rec_namespace()).await;
    // The start-up warning names the namespace asking for recovery, and the presence trap.
    let out = a.wait_output("ask for recovery or positioning").await;
    assert!(out.contains("rec"), "{out}");
    a.wait_output("presence and presence_stats answer 108")
        .await;

    let (mut alice, mut bob, _carol) = across_nodes(&a, &b, &c).await;

    // History: 108 on the API (both generations) and for a client.
    let rep = api_v1(&a, "history", json!({"channel": channel(0)})).await;
    assert_eq!(error_code(&rep[0]), 108, "{rep:?}");
    let rep = api_v2(&b, "history", json!({"channel": channel(0)})).await;
    assert_eq!(error_code(&rep), 108, "{rep}");
    let rep = bob
        .call_v2("history", json!({"channel": channel(0), "limit": 10}))
        .await;
    assert_eq!(error_code(&rep), 108, "{rep}");
    // Presence without a presence manager: 108.
    let rep = api_v1(&c, "presence", json!({"channel": channel(0)})).await;
    assert_eq!(error_code(&rep[0]), 108, "{rep:?}");
    let rep = bob
        .call_v2("presence", json!({"channel": channel(0)}))
        .await;
    assert_eq!(error_code(&rep), 108, "{rep}");
    // A publish with history options succeeds; no offset.
    let rep = api_publish(&a, "rec:x", json!({"h": 1})).await;
    assert_eq!(rep, vec![json!({})]);
    // A recovering subscribe: error 108, the connection stays.
    let rep = bob.call_v2("subscribe", json!({"channel": "rec:y"})).await;
    assert_eq!(error_code(&rep), 108, "{rep}");
    let rep = alice.subscribe_v1("rec:z").await;
    assert_eq!(error_code(&rep), 108, "{rep}");
    // Channels NATS cannot carry: 107 for clients and the API, no disconnect.
    for ch in ["news.", "a..b", "x*y", "g>"] {
        let rep = bob.call_v2("subscribe", json!({"channel": ch})).await;
        assert_eq!(error_code(&rep), 107, "subscribe {ch}: {rep}");
        let rep = api_v1(&a, "publish", json!({"channel": ch, "data": {}})).await;
        assert_eq!(error_code(&rep[0]), 107, "publish {ch}: {rep:?}");
    }
    let rep = bob
        .call_v2("subscribe", json!({"channel": "still-fine"}))
        .await;
    assert!(rep.get("error").is_none(), "{rep}");

    control(&a, &c, &mut alice, &mut bob).await;
    for n in [&a, &b, &c] {
        n.assert_alive();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_redis_presence_nats_broker_2x() {
    if !nats_available() || !redis_support::redis_available() {
        return;
    }
    let nats = NatsProcess::start();
    let redis = RedisProcess::start();
    let extra = json!({"engine": "redis", "redis_address": redis.addr()});
    let a = node_v2x(&nats, "node-a", extra.clone()).await;
    let b = node_v2x(&nats, "node-b", extra.clone()).await;
    let c = node_v2x(&nats, "node-c", extra).await;
    let (mut alice, mut bob, _carol) = across_nodes(&a, &b, &c).await;
    // Presence from Redis: every node sees all three users in room-0.
    for n in [&a, &b, &c] {
        let rep = api_v1(n, "presence_stats", json!({"channel": channel(0)})).await;
        assert_eq!(
            rep[0]["result"],
            json!({"num_clients": 3, "num_users": 3}),
            "{rep:?}"
        );
    }
    // History stays 108 (the broker is NATS), and nothing went to Redis streams.
    let rep = api_v1(&a, "history", json!({"channel": channel(0)})).await;
    assert_eq!(error_code(&rep[0]), 108, "{rep:?}");
    let keys = redis.cli(&["--scan", "--pattern", "centrifugo.stream.*"]);
    assert!(keys.is_empty(), "{keys}");
    control(&a, &c, &mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v6_config_nats_with_and_without_presence_manager() {
    if !nats_available() || !redis_support::redis_available() {
        return;
    }
    let nats = NatsProcess::start();
    let redis = RedisProcess::start();
    let pm = json!({"presence_manager": {"enabled": true, "type": "redis",
        "redis": {"address": redis.addr()}}});
    let a = node_v6(&nats, "node-a", pm.clone()).await;
    let b = node_v6(&nats, "node-b", pm.clone()).await;
    let c = node_v6(&nats, "node-c", pm).await;
    let (_alice, _bob, _carol) = across_nodes(&a, &b, &c).await;
    for n in [&a, &b, &c] {
        let rep = api_v2(n, "presence_stats", json!({"channel": channel(0)})).await;
        assert_eq!(
            rep["result"],
            json!({"num_clients": 3, "num_users": 3}),
            "{rep}"
        );
    }
    // The v6 prefix is used: a 2.x node on the default prefix does not see these channels.
    let d = node_v2x(&nats, "node-d", json!({})).await;
    let (mut dave, _) = d.v2_client("dave").await;
    let rep = dave
        .call_v2("subscribe", json!({"channel": channel(0)}))
        .await;
    assert!(rep.get("error").is_none(), "{rep}");
    api_publish(&a, &channel(0), json!({"to": "v6"})).await;
    dave.assert_no_push(Duration::from_millis(500)).await;

    // Without presence_manager, engine memory: node-local presence, with a warning.
    let e = node_v6(&nats, "node-e", json!({})).await;
    let f = node_v6(&nats, "node-f", json!({})).await;
    e.wait_output("presence is node-local").await;
    let (mut erin, _) = e.v2_client("erin").await;
    let (mut frank, _) = f.v2_client("frank").await;
    for ws in [&mut erin, &mut frank] {
        let rep = ws.call_v2("subscribe", json!({"channel": "local"})).await;
        assert!(rep.get("error").is_none(), "{rep}");
    }
    let rep = api_v2(&e, "presence_stats", json!({"channel": "local"})).await;
    assert_eq!(
        rep["result"],
        json!({"num_clients": 1, "num_users": 1}),
        "{rep}"
    );
    api_publish(&e, "local", json!({"x": 1})).await;
    let (data, _, _) = next_publication(&mut frank, "local").await;
    assert_eq!(data, json!({"x": 1}));
}

#[test]
fn config_refusals_name_what_is_not_built() {
    for (cfg, needle) in [
        (
            json!({"broker": "redis"}),
            "broker \"redis\" is not available",
        ),
        (
            json!({"broker": {"enabled": true, "type": "postgres"}}),
            "broker.type \"postgres\" is not supported",
        ),
        (
            json!({"broker": {"enabled": true, "type": "nats", "nats": {"raw_mode": {"enabled": true}}}}),
            "raw mode is not supported",
        ),
        (
            json!({"broker": {"enabled": true, "type": "nats", "nats": {"allow_wildcards": true}}}),
            "wildcard channels is not supported",
        ),
        (
            json!({"broker": "nats", "nats_prefix": "bad..prefix"}),
            "NATS prefix",
        ),
    ] {
        let mut full = base_config(free_port());
        for (k, v) in cfg.as_object().unwrap() {
            full[k] = v.clone();
        }
        let (status, out) = run_rotor_with_config_text(&full.to_string(), Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("rotor kept running with {cfg}: {out}"));
        assert!(!status.success(), "{cfg}: {out}");
        assert!(
            out.contains(needle),
            "{cfg}: expected {needle:?} in:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_keys_of_both_generations() {
    if !nats_available() {
        return;
    }
    let nats = NatsProcess::start();
    // v6 env names on one node, 2.x env names on the other, one prefix: they talk.
    let url = nats.url();
    let a = EnvNode::start(
        channel_options(),
        &[
            ("CENTRIFUGO_BROKER_ENABLED", "true"),
            ("CENTRIFUGO_BROKER_TYPE", "nats"),
            ("CENTRIFUGO_BROKER_NATS_URL", &url),
            ("CENTRIFUGO_BROKER_NATS_PREFIX", "envp"),
        ],
    );
    let b = EnvNode::start(
        channel_options(),
        &[
            ("CENTRIFUGO_BROKER", "nats"),
            ("CENTRIFUGO_NATS_URL", &url),
            ("CENTRIFUGO_NATS_PREFIX", "envp"),
            ("CENTRIFUGO_NATS_WRITE_TIMEOUT", "2"),
        ],
    );
    let mut bob = Ws::open(&b.ws_url()).await;
    bob.connect_v2(&conn_token("bob")).await;
    let rep = bob.call_v2("subscribe", json!({"channel": "e"})).await;
    assert!(rep.get("error").is_none(), "{rep}");
    wait_until(Duration::from_secs(5), "node a publishes", || async {
        a.publish("e", json!({"via": "env"})).await.trim() == "{}"
    })
    .await;
    let (data, _, _) = next_publication(&mut bob, "e").await;
    assert_eq!(data, json!({"via": "env"}));
    for n in [&a, &b] {
        let out = n.output();
        let bad = out
            .lines()
            .filter(|l| l.contains("unknown config key") || l.contains("not supported yet"))
            .filter(|l| l.contains("broker") || l.contains("nats"))
            .count();
        assert_eq!(bad, 0, "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_503_and_publish_fails_while_nats_is_down() {
    if !nats_available() {
        return;
    }
    let mut nats = NatsProcess::start();
    let a = node_v2x(&nats, "node-a", json!({})).await;
    assert_eq!(health(&a).await, 200);
    nats.kill();
    wait_until(Duration::from_secs(5), "/health 503", || async {
        health(&a).await == 503
    })
    .await;
    let rep = api_v1(&a, "publish", json!({"channel": "x", "data": {}})).await;
    assert_eq!(error_code(&rep[0]), 100, "{rep:?}");
    let (mut v2, _) = a.v2_client("u").await;
    let rep = v2.call_v2("subscribe", json!({"channel": "x"})).await;
    assert!(rep.get("error").is_some(), "subscribe while down: {rep}");
    nats.restart();
    wait_until(Duration::from_secs(10), "/health 200 again", || async {
        health(&a).await == 200
    })
    .await;
    let rep = api_publish(&a, "x", json!({"back": true})).await;
    assert_eq!(rep, vec![json!({})]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_503_while_the_redis_presence_beside_nats_is_down() {
    // NATS carries PUB/SUB, Redis presence: `/health` covers both, so a node whose presence
    // cannot be served is not reported healthy while NATS is fine.
    if !nats_available() || !redis_support::redis_available() {
        return;
    }
    let nats = NatsProcess::start();
    let mut redis = RedisProcess::start();
    let a = node_v2x(
        &nats,
        "node-a",
        json!({"engine": "redis", "redis_address": redis.addr()}),
    )
    .await;
    assert_eq!(health(&a).await, 200);
    redis.kill();
    wait_until(Duration::from_secs(10), "/health 503", || async {
        health(&a).await == 503
    })
    .await;
    // PUB/SUB through NATS still works meanwhile; presence answers an error.
    let rep = api_publish(&a, "x", json!({"during": true})).await;
    assert_eq!(rep, vec![json!({})]);
    let rep = api_v1(&a, "presence_stats", json!({"channel": "x"})).await;
    assert!(rep[0].get("error").is_some(), "{rep:?}");
    redis.restart();
    wait_until(Duration::from_secs(15), "/health 200 again", || async {
        health(&a).await == 200
    })
    .await;
}
