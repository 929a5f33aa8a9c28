//! End-to-end tests of the gRPC proxies (`centrifugal.centrifugo.proxy.CentrifugoProxy`,
//! PROXY.md §4): the real `rotor` binary with `endpoint: "grpc://127.0.0.1:PORT"`, a real tonic
//! backend started by the test (`proxy_support::grpc`, whose fixed answers are documented
//! there), raw WebSocket frames. Checks what the client sees, what the backend received
//! (request fields and metadata), and a backend that is down.

mod common;
mod proxy_support;

use std::time::{Duration, Instant};

use common::*;
use proxy_support::grpc::{GReq, GrpcBackend};
use proxy_support::*;
use serde_json::{json, Value};

fn grpc_proxy(endpoint: &str) -> Value {
    json!({"endpoint": endpoint, "timeout": "2s"})
}

fn modern_grpc_config(endpoint: &str) -> Value {
    let mut connect = grpc_proxy(endpoint);
    connect["enabled"] = json!(true);
    json!({
        "client": {"proxy": {"connect": connect}},
        "channel": {
            "without_namespace": {"presence": true, "allow_subscribe_for_client": true},
            "proxy": {"subscribe": grpc_proxy(endpoint), "publish": grpc_proxy(endpoint)},
            "namespaces": [
                {"name": "sp", "subscribe_proxy_enabled": true, "presence": true},
                {"name": "pp", "publish_proxy_enabled": true, "allow_subscribe_for_client": true},
            ],
        },
        "rpc": {"proxy": grpc_proxy(endpoint), "without_namespace": {"proxy_enabled": true}},
    })
}

fn as_json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

#[tokio::test]
async fn grpc_connect_rpc_subscribe_and_publish() {
    let g = GrpcBackend::start().await;
    let server = Server::start(modern_grpc_config(&g.endpoint())).await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let rep = ws
        .call_v2("connect", json!({"name": "js", "data": {"hi": 1}}))
        .await;
    let res = &rep["connect"];
    let client = res["client"].as_str().unwrap_or_default().to_string();
    assert!(is_uuid_v4(&client), "{rep}");
    assert_eq!(res["data"], json!({"grpc": "welcome"}), "{rep}");
    assert!(res["subs"]["grpc-news"].is_object(), "{rep}");

    let rep = ws
        .call_v2("rpc", json!({"method": "echo", "data": {"a": 1}}))
        .await;
    assert_eq!(
        rep,
        json!({"id": 2, "rpc": {"data": {"method": "echo", "echo": {"a": 1}}}})
    );
    let rep = ws
        .call_v2("rpc", json!({"method": "fail", "data": {}}))
        .await;
    assert_eq!(
        rep,
        json!({"id": 3, "error": {"code": 1001, "message": "grpc says no"}})
    );

    let rep = ws
        .call_v2("subscribe", json!({"channel": "sp:room", "flag": 1}))
        .await;
    assert_eq!(rep["subscribe"]["data"], json!({"sub": "grpc"}), "{rep}");
    let rep = ws
        .call_v2("subscribe", json!({"channel": "sp:denied", "flag": 1}))
        .await;
    assert_eq!(
        rep,
        json!({"id": 5, "error": {"code": 1403, "message": "grpc forbidden"}})
    );
    let p = api_v2(&server, "presence", json!({"channel": "sp:room"})).await;
    let me = &p["result"]["presence"][client.as_str()];
    assert_eq!(me["user"], "grpc-user", "{p}");
    assert_eq!(me["conn_info"], json!({"via": "grpc"}), "{p}");
    assert_eq!(me["chan_info"], json!({"chan": "grpc"}), "{p}");

    let rep = ws
        .call_v2("subscribe", json!({"channel": "pp:room", "flag": 1}))
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    let rep = ws
        .call_v2("publish", json!({"channel": "pp:room", "data": {"t": 1}}))
        .await;
    assert_eq!(rep, json!({"id": 7, "publish": {}}));
    let push = ws.push().await;
    assert_eq!(
        push["push"]["pub"]["data"],
        json!({"grpc_replaced": {"t": 1}}),
        "{push}"
    );

    let seen = g.seen();
    assert_eq!(
        seen.len(),
        6,
        "connect, 2 rpc, 2 subscribe, 1 publish: {seen:#?}"
    );
    match &seen[0].req {
        GReq::Connect(c) => {
            assert_eq!(
                (
                    c.client.as_str(),
                    c.transport.as_str(),
                    c.protocol.as_str(),
                    c.encoding.as_str()
                ),
                (client.as_str(), "websocket", "json", "json"),
                "{c:?}"
            );
            assert_eq!(as_json(&c.data), json!({"hi": 1}), "{c:?}");
            assert_eq!(c.name, "js");
        }
        other => panic!("first call is connect: {other:?}"),
    }
    match &seen[1].req {
        GReq::Rpc(r) => {
            assert_eq!((r.user.as_str(), r.method.as_str()), ("grpc-user", "echo"));
            assert_eq!(r.client, client);
            assert_eq!(as_json(&r.data), json!({"a": 1}), "{r:?}");
        }
        other => panic!("second call is rpc: {other:?}"),
    }
    match &seen[3].req {
        GReq::Subscribe(s) => {
            assert_eq!(
                (s.user.as_str(), s.channel.as_str()),
                ("grpc-user", "sp:room")
            );
            assert_eq!(s.client, client);
        }
        other => panic!("fourth call is subscribe: {other:?}"),
    }
    match &seen[5].req {
        GReq::Publish(p) => {
            assert_eq!(
                (p.user.as_str(), p.channel.as_str()),
                ("grpc-user", "pp:room")
            );
            assert_eq!(as_json(&p.data), json!({"t": 1}), "{p:?}");
        }
        other => panic!("sixth call is publish: {other:?}"),
    }
}

#[tokio::test]
async fn grpc_metadata_carries_listed_headers_static_metadata_and_credentials() {
    let g = GrpcBackend::start().await;
    let mut cfg = modern_grpc_config(&g.endpoint());
    cfg["client"]["proxy"]["connect"]["http_headers"] = json!(["X-Custom"]);
    cfg["client"]["proxy"]["connect"]["grpc"] = json!({
        "static_metadata": {"x-static": "s1"},
        "credentials_key": "x-cred",
        "credentials_value": "secret-1",
    });
    cfg["rpc"]["proxy"]["http_headers"] = json!(["x-custom"]);
    cfg["rpc"]["proxy"]["include_connection_meta"] = json!(true);
    let server = Server::start(cfg).await;
    let mut ws = Conn::open(
        &server.ws_url(),
        &[("X-Custom", "from-ws"), ("Cookie", "c=1")],
    )
    .await;
    let rep = ws.call_v2("connect", json!({})).await;
    assert!(rep["connect"].is_object(), "{rep}");
    let rep = ws.call_v2("rpc", json!({"method": "echo"})).await;
    assert!(rep["rpc"].is_object(), "{rep}");

    let seen = g.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let (connect, rpc) = (&seen[0], &seen[1]);
    assert_eq!(connect.meta("x-custom"), Some("from-ws"), "{connect:#?}");
    assert_eq!(connect.meta("cookie"), None, "unlisted: {connect:#?}");
    assert_eq!(connect.meta("x-static"), Some("s1"), "{connect:#?}");
    assert_eq!(connect.meta("x-cred"), Some("secret-1"), "{connect:#?}");
    assert_eq!(rpc.meta("x-custom"), Some("from-ws"), "{rpc:#?}");
    assert_eq!(rpc.meta("x-static"), None, "another proxy object: {rpc:#?}");
}

#[tokio::test]
async fn grpc_endpoints_with_2x_flat_keys() {
    let g = GrpcBackend::start().await;
    let server = Server::start(json!({
        "proxy_connect_endpoint": g.endpoint(),
        "proxy_connect_timeout": 2.0,
        "proxy_rpc_endpoint": g.endpoint(),
        "proxy_rpc_timeout": 2.0,
    }))
    .await;
    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    ws.send(&json!({"id": 1, "params": {"data": {"hi": 2}}}))
        .await;
    let rep = ws.reply(1).await;
    assert_eq!(rep["result"]["data"], json!({"grpc": "welcome"}), "{rep}");
    let rep = ws
        .call_v1(9, json!({"method": "echo", "data": {"b": 2}}))
        .await;
    assert_eq!(
        rep,
        json!({"id": 2, "result": {"data": {"method": "echo", "echo": {"b": 2}}}})
    );
    let seen = g.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    match &seen[1].req {
        GReq::Rpc(r) => assert_eq!(r.user, "grpc-user", "{r:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn grpc_backend_down_is_temporary_100() {
    let endpoint = format!("grpc://{}", dead_addr());
    let mut cfg = modern_grpc_config(&endpoint);
    for path in [
        "/client/proxy/connect",
        "/rpc/proxy",
        "/channel/proxy/subscribe",
    ] {
        cfg.pointer_mut(path).unwrap()["timeout"] = json!("300ms");
    }
    let server = Server::start(cfg).await;
    let internal = |id: u64| json!({"id": id, "error": {"code": 100, "message": "internal server error", "temporary": true}});

    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let started = Instant::now();
    assert_eq!(ws.call_v2("connect", json!({})).await, internal(1));
    assert!(started.elapsed() < Duration::from_millis(1500));

    let mut ws = Conn::open(&server.ws_url(), &[]).await;
    let rep = ws
        .call_v2("connect", json!({"token": conn_token("jwt")}))
        .await;
    assert!(rep["connect"].is_object(), "{rep}");
    let started = Instant::now();
    assert_eq!(
        ws.call_v2("rpc", json!({"method": "echo", "data": {}}))
            .await,
        internal(2)
    );
    assert_eq!(
        ws.call_v2("subscribe", json!({"channel": "sp:x", "flag": 1}))
            .await,
        internal(3)
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
    let rep = ws
        .call_v2("subscribe", json!({"channel": "plain", "flag": 1}))
        .await;
    assert!(rep["subscribe"].is_object(), "still connected: {rep}");
}
