//! `user_personal_single_connection` (Centrifugo 2.8, PROTOCOL.md §4.4) on real server
//! processes and WebSockets: when a user connects, every older connection of the same user is
//! closed with `connection limit` (3013 for v1 clients, 3504 for v2, no reconnect), on this node
//! and on the other nodes of a Redis engine; the newest connection keeps working. Without the
//! option a user's connections coexist.

mod common;
mod redis_support;

use std::time::Duration;

use common::*;
use redis_support::*;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Gen {
    V1,
    V2,
}

async fn client(server: &Server, g: Gen, user: &str) -> Ws {
    match g {
        Gen::V1 => server.v1_client(user).await.0,
        Gen::V2 => server.v2_client(user).await.0,
    }
}

/// The close a client of generation `g` sees when a newer connection of its user takes over.
fn connection_limit(g: Gen) -> (u16, String) {
    match g {
        Gen::V1 => (3013, V1_CONNECTION_LIMIT.to_string()),
        Gen::V2 => (3504, "connection limit".to_string()),
    }
}

/// The data of the next publication `ws` receives on `ch` (either generation's push shape).
async fn publication_data(ws: &mut Ws, ch: &str) -> Value {
    loop {
        let p = ws.push().await;
        if let Some(push) = p.get("push") {
            if push["channel"] == json!(ch) && push.get("pub").is_some() {
                return push["pub"]["data"].clone();
            }
        } else if p["result"]["channel"] == json!(ch) && p["result"].get("type").is_none() {
            return p["result"]["data"]["data"].clone();
        }
    }
}

/// The option on, personal channel `#<user>` (top-level presence) or in namespace `personal`.
fn single_connection_config(namespaced: bool) -> Value {
    if namespaced {
        json!({
            "user_subscribe_to_personal": true,
            "user_personal_single_connection": true,
            "user_personal_channel_namespace": "personal",
            "namespaces": [{"name": "personal", "presence": true}],
        })
    } else {
        json!({
            "user_subscribe_to_personal": true,
            "user_personal_single_connection": true,
            "presence": true,
        })
    }
}

#[tokio::test]
async fn newer_connection_closes_older_one_with_connection_limit_in_both_generations() {
    let server = Server::start(single_connection_config(false)).await;
    let mut bob = client(&server, Gen::V1, "bob").await;
    for (old_gen, new_gen) in [
        (Gen::V1, Gen::V1),
        (Gen::V2, Gen::V2),
        (Gen::V1, Gen::V2),
        (Gen::V2, Gen::V1),
    ] {
        let mut first = client(&server, old_gen, "alice").await;
        let mut second = client(&server, new_gen, "alice").await;
        assert_eq!(
            first.expect_close().await,
            connection_limit(old_gen),
            "{old_gen:?} then {new_gen:?}; buffered: {:?}",
            first.buffered()
        );
        // The newest stays and still gets its personal publications.
        api_publish(&server, "#alice", json!({"to": "newest"})).await;
        assert_eq!(
            publication_data(&mut second, "#alice").await,
            json!({"to": "newest"}),
            "{old_gen:?} then {new_gen:?}"
        );
        second.assert_open_for(Duration::from_millis(200)).await;
        second.close().await;
    }
    // Another user's connection is left alone.
    bob.assert_open_for(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn each_new_connection_closes_all_older_ones_of_the_user() {
    let server = Server::start(single_connection_config(true)).await;
    let mut a1 = client(&server, Gen::V2, "alice").await;
    let mut a2 = client(&server, Gen::V2, "alice").await;
    assert_eq!(a1.expect_close().await, connection_limit(Gen::V2));
    let mut a3 = client(&server, Gen::V1, "alice").await;
    assert_eq!(a2.expect_close().await, connection_limit(Gen::V2));
    api_publish(&server, "personal:#alice", json!({"n": 3})).await;
    assert_eq!(
        publication_data(&mut a3, "personal:#alice").await,
        json!({"n": 3})
    );
    // Presence of the personal channel settles on the one connection left.
    wait_until(Duration::from_secs(3), "one client in presence", || async {
        let r = api_v1(
            &server,
            "presence_stats",
            json!({"channel": "personal:#alice"}),
        )
        .await;
        r[0]["result"]["num_clients"] == json!(1)
    })
    .await;
    a3.assert_open_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn without_the_option_connections_of_a_user_coexist() {
    let server = Server::start(json!({
        "user_subscribe_to_personal": true,
        "presence": true,
    }))
    .await;
    let mut first = client(&server, Gen::V1, "alice").await;
    let mut second = client(&server, Gen::V2, "alice").await;
    api_publish(&server, "#alice", json!({"to": "both"})).await;
    assert_eq!(
        publication_data(&mut first, "#alice").await,
        json!({"to": "both"})
    );
    assert_eq!(
        publication_data(&mut second, "#alice").await,
        json!({"to": "both"})
    );
    first.assert_open_for(Duration::from_millis(300)).await;
    second.assert_open_for(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn newer_connection_on_another_redis_node_closes_the_older_one() {
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    let mut cfg = single_connection_config(false);
    cfg["redis_address"] = json!(redis.addr());
    let n1 = node(cfg.clone(), "node-1").await;
    let n2 = node(cfg, "node-2").await;
    let mut bob = client(&n1, Gen::V2, "bob").await;
    let mut first = client(&n1, Gen::V1, "alice").await;
    let mut second = client(&n2, Gen::V2, "alice").await;
    assert_eq!(
        first.expect_close().await,
        connection_limit(Gen::V1),
        "buffered: {:?}",
        first.buffered()
    );
    // The newest, on node 2, gets a publication made through node 1's API.
    api_publish(&n1, "#alice", json!({"via": "node-1"})).await;
    assert_eq!(
        publication_data(&mut second, "#alice").await,
        json!({"via": "node-1"})
    );
    second.assert_open_for(Duration::from_millis(200)).await;
    bob.assert_open_for(Duration::from_millis(50)).await;
}
