//! A namespace's `history_meta_ttl` (CHANNELS-MODERN.md §3) against the real binary with raw v2
//! WebSocket clients, on the memory engine and on the Redis engine (a redis-server started on a
//! free port): the stream's offset and epoch expire that long after the last publication, so a
//! client recovering afterwards gets `recovered: false` and a new epoch, while a namespace
//! without the option keeps its position (the engine's own setting: forever here) and recovers.

mod common;
mod redis_support;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn ns(name: &str, extra: Value) -> Value {
    let mut o = json!({"name": name, "history_size": 10, "history_ttl": "1s",
        "force_recovery": true});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

async fn server(engine: Option<Value>) -> Server {
    let mut cfg = json!({
        "channel": {"namespaces": [
            ns("short", json!({"history_meta_ttl": "2s"})),
            ns("kept", json!({})),
        ]}
    });
    if let Some(e) = engine {
        cfg["engine"] = e;
    }
    Server::start(cfg).await
}

async fn publish(s: &Server, channel: &str, n: u64) -> Value {
    let r = api_v2(s, "publish", json!({"channel": channel, "data": {"n": n}})).await;
    assert!(r.get("error").is_none(), "publish: {r}");
    r["result"].clone()
}

async fn recover(s: &Server, channel: &str, offset: &Value, epoch: &Value) -> Value {
    let (mut c, _) = s.v2_client("u").await;
    let r = c
        .call_v2(
            "subscribe",
            json!({"channel": channel, "recover": true, "offset": offset, "epoch": epoch}),
        )
        .await;
    assert!(r.get("error").is_none(), "subscribe: {r}");
    r["subscribe"].clone()
}

async fn scenario(s: &Server) {
    let mut tops = Vec::new();
    for ch in ["short:a", "kept:a"] {
        publish(s, ch, 1).await;
        tops.push(publish(s, ch, 2).await);
    }
    for top in &tops {
        assert_eq!(top["offset"], json!(2), "{top}");
    }
    // Within the meta TTL (and past the history's 1 s): the position is kept, nothing missed.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = recover(s, "short:a", &tops[0]["offset"], &tops[0]["epoch"]).await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(r["epoch"], tops[0]["epoch"], "{r}");
    // Past it (2 s after the last publication): a new epoch, not recovered.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let r = recover(s, "short:a", &tops[0]["offset"], &tops[0]["epoch"]).await;
    // (false fields are omitted on the wire, as Centrifugo does)
    assert_eq!(r["was_recovering"], json!(true), "{r}");
    assert!(r.get("recovered").is_none_or(|v| v == &json!(false)), "{r}");
    assert_ne!(r["epoch"], tops[0]["epoch"], "{r}");
    assert!(r.get("offset").is_none_or(|o| o == &json!(0)), "{r}");
    // The namespace without the option keeps offset and epoch.
    let r = recover(s, "kept:a", &tops[1]["offset"], &tops[1]["epoch"]).await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(
        (&r["offset"], &r["epoch"]),
        (&json!(2), &tops[1]["epoch"]),
        "{r}"
    );
    // The new epoch goes on from offset 1.
    let next = publish(s, "short:a", 3).await;
    assert_eq!(next["offset"], json!(1), "{next}");
}

#[tokio::test]
async fn namespace_meta_ttl_expires_the_position_on_the_memory_engine() {
    let s = server(None).await;
    scenario(&s).await;
}

#[tokio::test]
async fn namespace_meta_ttl_expires_the_position_on_the_redis_engine() {
    if !redis_support::redis_available() {
        return;
    }
    let redis = redis_support::RedisProcess::start();
    let s = server(Some(
        json!({"type": "redis", "redis": {"address": redis.addr()}}),
    ))
    .await;
    scenario(&s).await;
}
