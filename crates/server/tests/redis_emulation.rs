//! Bidirectional emulation across two Rotor nodes on one Redis (TRANSPORTS.md §2.8): a client
//! streams from node A while every `/emulation` request goes to node B, as behind a balancer
//! without sticky sessions. B forwards each request over the control channel to A (named by
//! the connect result's `node`), answers 204 once A handled it, and 404 for a node id that no
//! node announced.

mod common;
mod emulation_support;
mod redis_support;

use std::time::Duration;

use common::*;
use emulation_support::*;
use redis_support::*;
use serde_json::{json, Value};

fn emulation_on(redis: &RedisProcess) -> Value {
    json!({
        "redis_address": redis.addr(),
        "http_stream": {"enabled": true},
        "sse": {"enabled": true},
    })
}

/// The number of nodes `server`'s `info` lists.
async fn node_count(server: &Server) -> usize {
    let r = api_v1_raw(server, r#"{"method":"info","params":{}}"#).await;
    if r.status != 200 {
        return 0;
    }
    r.lines()
        .first()
        .and_then(|l| l["result"]["nodes"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulation_requests_forwarded_to_the_session_node() {
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    let a = node(emulation_on(&redis), "node-a").await;
    let b = node(emulation_on(&redis), "node-b").await;
    wait_until(
        Duration::from_secs(10),
        "both nodes see each other",
        || async { node_count(&a).await == 2 && node_count(&b).await == 2 },
    )
    .await;

    for sse in [false, true] {
        let (mut s, conn) = if sse {
            sse_get(&a, "sse-user").await
        } else {
            http_stream_json(&a, "stream-user").await
        };
        let channel = if sse { "forwarded-sse" } else { "forwarded" };
        // Every command goes to node B.
        let st = emulate(
            &b,
            &conn,
            &[json!({"id": 2, "subscribe": {"channel": channel}})],
        )
        .await;
        assert_eq!(st, 204, "forwarded subscribe");
        let r = s.json().await;
        assert_eq!(r["id"], 2, "{r}");
        assert!(r["subscribe"].is_object(), "subscribe ran on node A: {r}");

        // Published through B's API, delivered by A on the stream.
        api_publish(&b, channel, json!({"via": "b"})).await;
        let m = s.json().await;
        assert_eq!(m["push"]["channel"], channel, "{m}");
        assert_eq!(m["push"]["pub"]["data"], json!({"via": "b"}), "{m}");

        // A client publish forwarded through B reaches the stream too.
        let st = emulate(
            &b,
            &conn,
            &[json!({"id": 3, "publish": {"channel": channel, "data": "mine"}})],
        )
        .await;
        assert_eq!(st, 204);
        let mut got = (false, false);
        while !(got.0 && got.1) {
            let m = s.json().await;
            if m["id"] == 3 {
                assert!(m.get("error").is_none(), "{m}");
                got.0 = true;
            } else if m["push"]["pub"]["data"] == "mine" {
                got.1 = true;
            }
        }

        // Unknown node: 404 from B; an unknown session on a live node: 204.
        let unknown = json!({"node": "not-a-node", "session": conn["session"]});
        assert_eq!(
            emulate(&b, &unknown, &[json!({"id": 4, "ping": {}})]).await,
            404
        );
        let gone = json!({"node": conn["node"], "session": "no-such-session"});
        assert_eq!(
            emulate(&b, &gone, &[json!({"id": 4, "ping": {}})]).await,
            204
        );
    }
    a.assert_alive();
    b.assert_alive();
}
