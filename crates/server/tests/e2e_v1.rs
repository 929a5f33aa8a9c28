//! End-to-end tests of client protocol v1 (Centrifugo 2.x, centrifuge-js 2.x): numeric
//! `method`, `params`, `result`, pushes as id-less replies, disconnects as close frames with a
//! JSON reason. Each test starts its own `rotor` process (see `common`). Expectations follow
//! PROTOCOL.md §1–5 and §2.7 (frames the reference server sent to the real client).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn error_reply(id: u64, code: u64, message: &str) -> Value {
    json!({ "id": id, "error": { "code": code, "message": message } })
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Connects a v1 client with the given token and returns the raw reply to the connect command.
async fn raw_connect(server: &Server, token: &str) -> (Ws, Value) {
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send(&json!({"id": 1, "params": {"token": token}})).await;
    let ev = ws.next_event_within(WAIT).await;
    match ev {
        Some(Event::Value(v)) => (ws, v),
        other => panic!("expected a connect reply, got {other:?}"),
    }
}

/// Sends a connect with this token and expects the connection to be closed with (code, reason).
async fn connect_expect_close(server: &Server, token: &str, code: u16, reason: &str) {
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send(&json!({"id": 1, "params": {"token": token}})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!(
        (c, r.as_str()),
        (code, reason),
        "close for token {token:?}; buffered {:?}",
        ws.buffered()
    );
    assert!(
        ws.buffered().is_empty(),
        "no reply expected before the close: {:?}",
        ws.buffered()
    );
}

// ---------------------------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connect_with_token_returns_uuid_client_and_version() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = raw_connect(&server, &conn_token("alice")).await;
    assert_eq!(keys(&rep), ["id", "result"], "reply: {rep}");
    assert_eq!(rep["id"], 1);
    let res = &rep["result"];
    assert_eq!(
        keys(res),
        ["client", "version"],
        "no exp → no expires/ttl: {rep}"
    );
    assert!(
        is_uuid_v4(res["client"].as_str().unwrap()),
        "client is a UUIDv4: {rep}"
    );
    assert!(res["version"].is_string(), "version is a string: {rep}");
}

#[tokio::test]
async fn every_connection_gets_a_fresh_client_id() {
    let server = Server::start(json!({})).await;
    let (_a, a) = server.v1_client("alice").await;
    let (_b, b) = server.v1_client("alice").await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn connect_with_method_zero_is_connect() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send(&json!({"id": 1, "method": 0, "params": {"token": conn_token("alice")}}))
        .await;
    let rep = ws.reply(1).await;
    assert!(
        is_uuid_v4(rep["result"]["client"].as_str().unwrap_or("")),
        "reply: {rep}"
    );
}

#[tokio::test]
async fn connect_with_method_name_string_is_connect() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send(&json!({"id": 1, "method": "connect", "params": {"token": conn_token("alice")}}))
        .await;
    let rep = ws.reply(1).await;
    assert!(
        is_uuid_v4(rep["result"]["client"].as_str().unwrap_or("")),
        "reply: {rep}"
    );
}

#[tokio::test]
async fn connect_with_only_an_id_connects_anonymously_when_allowed() {
    let server = Server::start(json!({"client_anonymous": true})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(r#"{"id":1}"#).await;
    let rep = ws.reply(1).await;
    assert_eq!(keys(&rep["result"]), ["client", "version"], "reply: {rep}");
    assert!(is_uuid_v4(rep["result"]["client"].as_str().unwrap()));
}

#[tokio::test]
async fn connect_without_token_closes_3003_bad_request() {
    let server = Server::start(json!({})).await;
    for first in [
        r#"{"id":1}"#,
        r#"{"id":1,"params":{}}"#,
        r#"{"id":1,"method":0,"params":{"token":""}}"#,
    ] {
        let mut ws = Ws::open(&server.ws_url()).await;
        ws.send_text(first).await;
        let (c, r) = ws.expect_close().await;
        assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST), "after {first}");
    }
}

#[tokio::test]
async fn connect_with_exp_reports_expires_and_ttl() {
    let server = Server::start(json!({})).await;
    let token = jwt(&json!({"sub": "alice", "exp": now() + 3600}));
    let (_ws, rep) = raw_connect(&server, &token).await;
    let res = &rep["result"];
    assert_eq!(
        keys(res),
        ["client", "expires", "ttl", "version"],
        "reply: {rep}"
    );
    assert_eq!(res["expires"], true);
    assert_int_in(&res["ttl"], 3590, 3600, "ttl");
}

#[tokio::test]
async fn connect_with_expired_token_gets_error_109_and_stays_open() {
    let server = Server::start(json!({})).await;
    let token = jwt(&json!({"sub": "alice", "exp": now() - 60}));
    let (mut ws, rep) = raw_connect(&server, &token).await;
    assert_eq!(rep, error_reply(1, 109, "token expired"));
    ws.assert_open_for(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn connect_with_future_nbf_gets_error_109() {
    let server = Server::start(json!({})).await;
    let token = jwt(&json!({"sub": "alice", "nbf": now() + 3600}));
    let (_ws, rep) = raw_connect(&server, &token).await;
    assert_eq!(rep, error_reply(1, 109, "token expired"));
}

#[tokio::test]
async fn connect_with_iat_in_the_future_is_accepted() {
    // 2.x never checks iat.
    let server = Server::start(json!({})).await;
    let token = jwt(&json!({"sub": "alice", "iat": now() + 3600}));
    let (_ws, rep) = raw_connect(&server, &token).await;
    assert!(rep["result"]["client"].is_string(), "reply: {rep}");
}

#[tokio::test]
async fn connect_with_bad_signature_closes_3002_invalid_token() {
    let server = Server::start(json!({})).await;
    let token = jwt_with("HS256", b"not-the-secret", &json!({"sub": "alice"}));
    connect_expect_close(&server, &token, 3002, V1_INVALID_TOKEN).await;
}

#[tokio::test]
async fn connect_with_alg_none_closes_3002_invalid_token() {
    let server = Server::start(json!({})).await;
    let token = jwt_with("none", b"", &json!({"sub": "alice"}));
    connect_expect_close(&server, &token, 3002, V1_INVALID_TOKEN).await;
}

#[tokio::test]
async fn connect_with_garbage_token_closes_3002_invalid_token() {
    let server = Server::start(json!({})).await;
    for token in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "...."] {
        connect_expect_close(&server, token, 3002, V1_INVALID_TOKEN).await;
    }
}

#[tokio::test]
async fn connect_with_rsa_or_unknown_alg_against_hmac_key_closes_3002() {
    let server = Server::start(json!({})).await;
    for alg in ["RS256", "ES256", "XX999"] {
        let token = jwt_with(alg, SECRET.as_bytes(), &json!({"sub": "alice"}));
        connect_expect_close(&server, &token, 3002, V1_INVALID_TOKEN).await;
    }
}

#[tokio::test]
async fn connect_with_hs384_and_hs512_tokens_succeeds() {
    let server = Server::start(json!({})).await;
    for alg in ["HS384", "HS512"] {
        let token = jwt_with(alg, SECRET.as_bytes(), &json!({"sub": "alice"}));
        let (_ws, rep) = raw_connect(&server, &token).await;
        assert!(rep["result"]["client"].is_string(), "{alg}: {rep}");
    }
}

#[tokio::test]
async fn connect_with_bad_b64info_closes_3002() {
    let server = Server::start(json!({})).await;
    let token = jwt(&json!({"sub": "alice", "b64info": "%%% not base64 %%%"}));
    connect_expect_close(&server, &token, 3002, V1_INVALID_TOKEN).await;
}

#[tokio::test]
async fn connect_token_info_and_b64info_become_conn_info() {
    let server = Server::start(json!({"presence": true})).await;
    let mut a = Ws::open(&server.ws_url()).await;
    let a_id = a
        .connect_v1(&jwt(&json!({"sub": "alice", "info": {"name": "Alice"}})))
        .await["client"]
        .as_str()
        .unwrap()
        .to_string();
    let mut b = Ws::open(&server.ws_url()).await;
    let b64 = base64_std(br#"{"name":"Bob"}"#);
    let b_id = b
        .connect_v1(&jwt(
            &json!({"sub": "bob", "info": {"ignored": true}, "b64info": b64}),
        ))
        .await["client"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.subscribe_v1("room").await["result"], json!({}));
    assert_eq!(b.subscribe_v1("room").await["result"], json!({}));
    let rep = a.call_v1(4, json!({"channel": "room"})).await;
    assert_eq!(
        rep["result"],
        json!({"presence": {
            a_id.clone(): {"user": "alice", "client": a_id, "conn_info": {"name": "Alice"}},
            b_id.clone(): {"user": "bob", "client": b_id, "conn_info": {"name": "Bob"}},
        }})
    );
}

#[tokio::test]
async fn anonymous_connection_appears_as_empty_user_in_presence() {
    let server =
        Server::start(json!({"client_anonymous": true, "anonymous": true, "presence": true})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(r#"{"id":1,"params":{}}"#).await;
    let client = ws.reply(1).await["result"]["client"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ws.subscribe_v1("lobby").await,
        json!({"id": 2, "result": {}})
    );
    let rep = ws.call_v1(4, json!({"channel": "lobby"})).await;
    assert_eq!(
        rep["result"],
        json!({"presence": {client.clone(): {"user": "", "client": client}}})
    );
}

#[tokio::test]
async fn anonymous_connection_cannot_subscribe_without_anonymous_channel_option() {
    let server = Server::start(json!({"client_anonymous": true})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(r#"{"id":1}"#).await;
    ws.reply(1).await;
    assert_eq!(
        ws.subscribe_v1("lobby").await,
        error_reply(2, 103, "permission denied")
    );
}

#[tokio::test]
async fn command_before_connect_closes_3003() {
    let server = Server::start(json!({})).await;
    for first in [
        json!({"id": 1, "method": 1, "params": {"channel": "news"}}),
        json!({"id": 1, "method": 7}),
        json!({"id": 1, "method": "presence", "params": {"channel": "news"}}),
    ] {
        let mut ws = Ws::open(&server.ws_url()).await;
        ws.send(&first).await;
        let (c, r) = ws.expect_close().await;
        assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST), "after {first}");
    }
}

#[tokio::test]
async fn second_connect_closes_3003() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send(&json!({"id": 2, "params": {"token": conn_token("alice")}}))
        .await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
}

#[tokio::test]
async fn id_zero_on_a_command_other_than_send_closes_3003() {
    let server = Server::start(json!({})).await;
    for cmd in [
        r#"{"method":7}"#,
        r#"{"id":0,"method":1,"params":{"channel":"news"}}"#,
    ] {
        let (mut ws, _) = server.v1_client("alice").await;
        ws.send_text(cmd).await;
        let (c, r) = ws.expect_close().await;
        assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST), "after {cmd}");
    }
}

#[tokio::test]
async fn unknown_method_number_gets_error_104() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    let rep = ws.call_v1(42, json!({})).await;
    assert_eq!(rep, error_reply(2, 104, "method not found"));
    // the connection keeps working
    let id = ws.cmd_v1(7, json!({})).await;
    assert_eq!(ws.reply(id).await, json!({"id": id}));
}

#[tokio::test]
async fn method_names_as_strings_are_accepted_case_insensitively() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send(&json!({"id": 2, "method": "subscribe", "params": {"channel": "news"}}))
        .await;
    assert_eq!(ws.reply(2).await, json!({"id": 2, "result": {}}));
    ws.send(&json!({"id": 3, "method": "PING"})).await;
    assert_eq!(ws.reply(3).await, json!({"id": 3}));
    ws.send(&json!({"id": 4, "method": "Presence_Stats", "params": {"channel": "news"}}))
        .await;
    assert_eq!(
        ws.reply(4).await,
        json!({"id": 4, "result": {"num_clients": 1, "num_users": 1}})
    );
}

#[tokio::test]
async fn several_commands_in_one_frame_are_all_answered_each_reply_ending_with_newline() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_lines(&[
        json!({"id": 1, "params": {"token": conn_token("alice")}}),
        json!({"id": 2, "method": 1, "params": {"channel": "a"}}),
        json!({"id": 3, "method": 1, "params": {"channel": "b"}}),
        json!({"id": 4, "method": 7}),
    ])
    .await;
    assert!(ws.reply(1).await["result"]["client"].is_string());
    assert_eq!(ws.reply(2).await, json!({"id": 2, "result": {}}));
    assert_eq!(ws.reply(3).await, json!({"id": 3, "result": {}}));
    assert_eq!(ws.reply(4).await, json!({"id": 4}));
    for f in &ws.frames {
        assert!(f.ends_with('\n'), "every reply is followed by \\n: {f:?}");
    }
}

#[tokio::test]
async fn connection_gets_websocket_control_pings_not_json_pings() {
    let server = Server::start(json!({"client_ping_interval": 1})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.assert_open_for(Duration::from_millis(3500)).await;
    assert!(
        ws.control_pings >= 2,
        "WebSocket ping frames about every second: {}",
        ws.control_pings
    );
    assert_eq!(ws.pings, 0, "no v2 application pings on a v1 connection");
    assert!(
        ws.buffered().is_empty(),
        "nothing else arrived: {:?}",
        ws.buffered()
    );
}

#[tokio::test]
async fn silent_connection_is_closed_3007_stale() {
    let server = Server::start(json!({"client_stale_close_delay": 1})).await;
    let mut ws = Ws::open(&server.ws_url_with("cf_protocol_version=v1")).await;
    let (c, r) = ws.close_within(Duration::from_secs(6)).await;
    assert_eq!((c, r.as_str()), (3007, V1_STALE));
}

// ---------------------------------------------------------------------------------------------
// subscribe / unsubscribe
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn subscribe_to_public_channel_returns_empty_result() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_text(r#"{"id":2,"method":1,"params":{"channel":"news"}}"#)
        .await;
    assert_eq!(ws.reply(2).await, json!({"id": 2, "result": {}}));
}

#[tokio::test]
async fn second_subscribe_to_same_channel_gets_105() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(
        ws.subscribe_v1("news").await,
        json!({"id": 2, "result": {}})
    );
    assert_eq!(
        ws.subscribe_v1("news").await,
        error_reply(3, 105, "already subscribed")
    );
}

#[tokio::test]
async fn subscribe_to_unknown_namespace_gets_102() {
    let server = Server::start(json!({"namespaces": [{"name": "chat"}]})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(
        ws.subscribe_v1("nope:room").await,
        error_reply(2, 102, "unknown channel")
    );
    assert_eq!(
        ws.subscribe_v1("chat:room").await,
        json!({"id": 3, "result": {}})
    );
}

#[tokio::test]
async fn commands_on_unknown_namespace_get_102() {
    let server = Server::start(
        json!({"publish": true, "presence": true, "history_size": 10, "history_lifetime": 60}),
    )
    .await;
    let (mut ws, _) = server.v1_client("alice").await;
    for method in [3, 4, 5, 6] {
        let id = ws.peek_id();
        let rep = ws
            .call_v1(method, json!({"channel": "nope:x", "data": {}}))
            .await;
        assert_eq!(
            rep,
            error_reply(id, 102, "unknown channel"),
            "method {method}"
        );
    }
}

#[tokio::test]
async fn user_connection_limit_closes_extra_connection_3013() {
    let server = Server::start(json!({"client_user_connection_limit": 1})).await;
    let (mut first, _) = server.v1_client("alice").await;
    let mut second = Ws::open(&server.ws_url()).await;
    second
        .send(&json!({"id": 1, "params": {"token": conn_token("alice")}}))
        .await;
    let (c, r) = second.expect_close().await;
    assert_eq!((c, r.as_str()), (3013, V1_CONNECTION_LIMIT));
    first.assert_open_for(Duration::from_millis(300)).await;
    let (_other_user, _) = server.v1_client("bob").await;
}

#[tokio::test]
async fn insecure_client_ignores_token_exp() {
    let server = Server::start(json!({"client_insecure": true})).await;
    let token = jwt(&json!({"sub": "alice", "exp": now() - 60}));
    let (_ws, rep) = raw_connect(&server, &token).await;
    assert!(
        rep["result"]["client"].is_string(),
        "exp ignored with client_insecure: {rep}"
    );
}

#[tokio::test]
async fn presence_and_history_disabled_for_client_get_108_but_api_still_answers() {
    let server = Server::start(json!({
        "presence": true, "presence_disable_for_client": true,
        "history_size": 10, "history_lifetime": 60, "history_disable_for_client": true,
    }))
    .await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("room").await["result"], json!({}));
    assert_eq!(
        ws.call_v1(4, json!({"channel": "room"})).await,
        error_reply(3, 108, "not available")
    );
    assert_eq!(
        ws.call_v1(5, json!({"channel": "room"})).await,
        error_reply(4, 108, "not available")
    );
    assert_eq!(
        ws.call_v1(6, json!({"channel": "room"})).await,
        error_reply(5, 108, "not available")
    );
    let lines = api_v1(&server, "presence_stats", json!({"channel": "room"})).await;
    assert_eq!(
        lines,
        vec![json!({"result": {"num_clients": 1, "num_users": 1}})]
    );
    let lines = api_v1(&server, "history", json!({"channel": "room"})).await;
    assert_eq!(lines, vec![json!({"result": {"publications": []}})]);
}

#[tokio::test]
async fn server_side_channels_refuse_client_subscribe_with_103() {
    let server = Server::start(json!({"namespaces": [{"name": "srv", "server_side": true}]})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(
        ws.subscribe_v1("srv:feed").await,
        error_reply(2, 103, "permission denied")
    );
    // but a token's `channels` claim still subscribes there
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws
        .connect_v1(&jwt(&json!({"sub": "alice", "channels": ["srv:feed"]})))
        .await;
    assert!(res["subs"].get("srv:feed").is_some(), "{res}");
}

#[tokio::test]
async fn custom_private_prefix_decides_which_channels_need_a_token() {
    let server = Server::start(json!({"channel_private_prefix": "priv-"})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    assert_eq!(
        ws.subscribe_v1("$plain").await,
        json!({"id": 2, "result": {}})
    );
    assert_eq!(
        ws.subscribe_v1("priv-room").await,
        error_reply(3, 103, "permission denied")
    );
    assert_eq!(
        ws.subscribe_v1_token("priv-room", &sub_token(&client, "priv-room"))
            .await,
        json!({"id": 4, "result": {}})
    );
}

#[tokio::test]
async fn namespace_options_apply_to_its_channels_only() {
    let server =
        Server::start(json!({"namespaces": [{"name": "chat", "presence": true, "publish": true}]}))
            .await;
    let (mut ws, client) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("chat:room").await["result"], json!({}));
    assert_eq!(ws.subscribe_v1("plain").await["result"], json!({}));
    let rep = ws.call_v1(5, json!({"channel": "chat:room"})).await;
    assert_eq!(
        rep["result"],
        json!({"num_clients": 1, "num_users": 1}),
        "{rep} ({client})"
    );
    let id = ws.peek_id();
    assert_eq!(
        ws.call_v1(5, json!({"channel": "plain"})).await,
        error_reply(id, 108, "not available")
    );
    let id = ws.peek_id();
    assert_eq!(
        ws.call_v1(3, json!({"channel": "plain", "data": {}})).await,
        error_reply(id, 103, "permission denied")
    );
    let id = ws.peek_id();
    assert_eq!(
        ws.call_v1(3, json!({"channel": "chat:room", "data": {}}))
            .await,
        json!({"id": id, "result": {}})
    );
}

#[tokio::test]
async fn subscribe_with_empty_channel_closes_3003() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.cmd_v1(1, json!({"channel": ""})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
}

#[tokio::test]
async fn subscribing_past_channel_limit_gets_106() {
    let server = Server::start(json!({"client_channel_limit": 2})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("a").await["result"], json!({}));
    assert_eq!(ws.subscribe_v1("b").await["result"], json!({}));
    assert_eq!(
        ws.subscribe_v1("c").await,
        error_reply(4, 106, "limit exceeded")
    );
}

#[tokio::test]
async fn channel_name_longer_than_max_gets_106() {
    let server = Server::start(json!({"channel_max_length": 10})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("0123456789").await["result"], json!({}));
    assert_eq!(
        ws.subscribe_v1("0123456789x").await,
        error_reply(3, 106, "limit exceeded")
    );
}

#[tokio::test]
async fn user_limited_channel_admits_only_listed_users() {
    let server = Server::start(json!({})).await;
    let (mut alice, _) = server.v1_client("alice").await;
    let (mut carol, _) = server.v1_client("carol").await;
    assert_eq!(
        alice.subscribe_v1("dialog#alice,bob").await,
        json!({"id": 2, "result": {}})
    );
    assert_eq!(
        carol.subscribe_v1("dialog#alice,bob").await,
        error_reply(2, 103, "permission denied")
    );
}

#[tokio::test]
async fn unsubscribe_returns_empty_result_and_stops_delivery() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("news").await["result"], json!({}));
    assert_eq!(
        ws.call_v1(2, json!({"channel": "news"})).await,
        json!({"id": 3, "result": {}})
    );
    api_publish(&server, "news", json!({"n": 1})).await;
    ws.assert_no_push(Duration::from_millis(400)).await;
    // and one can subscribe again
    assert_eq!(
        ws.subscribe_v1("news").await,
        json!({"id": 4, "result": {}})
    );
}

#[tokio::test]
async fn unsubscribe_from_channel_not_subscribed_is_not_an_error() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(
        ws.call_v1(2, json!({"channel": "never"})).await,
        json!({"id": 2, "result": {}})
    );
}

#[tokio::test]
async fn unsubscribe_with_empty_channel_closes_3003() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.cmd_v1(2, json!({"channel": ""})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
}

// ---------------------------------------------------------------------------------------------
// publish
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_publish_reaches_subscribers_with_publisher_info() {
    let server = Server::start(json!({"publish": true})).await;
    let mut alice = Ws::open(&server.ws_url()).await;
    let a_id = alice
        .connect_v1(&jwt(&json!({"sub": "alice", "info": {"name": "Alice"}})))
        .await["client"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut bob, _) = server.v1_client("bob").await;
    assert_eq!(alice.subscribe_v1("chat").await["result"], json!({}));
    assert_eq!(bob.subscribe_v1("chat").await["result"], json!({}));
    let rep = alice
        .call_v1(3, json!({"channel": "chat", "data": {"text": "hi"}}))
        .await;
    assert_eq!(rep, json!({"id": 3, "result": {}}));
    let expected = json!({"result": {"channel": "chat", "data": {
        "data": {"text": "hi"},
        "info": {"user": "alice", "client": a_id, "conn_info": {"name": "Alice"}},
    }}});
    assert_eq!(bob.push().await, expected);
    assert_eq!(
        alice.push().await,
        expected,
        "the publisher gets its own publication too"
    );
}

#[tokio::test]
async fn client_publish_without_being_subscribed_is_allowed_by_default() {
    let server = Server::start(json!({"publish": true})).await;
    let (mut alice, _) = server.v1_client("alice").await;
    let (mut bob, _) = server.v1_client("bob").await;
    assert_eq!(bob.subscribe_v1("chat").await["result"], json!({}));
    assert_eq!(
        alice
            .call_v1(3, json!({"channel": "chat", "data": 1}))
            .await,
        json!({"id": 2, "result": {}})
    );
    assert_eq!(bob.push().await["result"]["data"]["data"], 1);
}

#[tokio::test]
async fn client_publish_with_subscribe_to_publish_requires_subscription() {
    let server = Server::start(json!({"publish": true, "subscribe_to_publish": true})).await;
    let (mut alice, _) = server.v1_client("alice").await;
    assert_eq!(
        alice
            .call_v1(3, json!({"channel": "chat", "data": 1}))
            .await,
        error_reply(2, 103, "permission denied")
    );
    assert_eq!(alice.subscribe_v1("chat").await["result"], json!({}));
    assert_eq!(
        alice
            .call_v1(3, json!({"channel": "chat", "data": 1}))
            .await,
        json!({"id": 4, "result": {}})
    );
}

#[tokio::test]
async fn client_publish_in_private_channel_carries_publisher_chan_info() {
    let server = Server::start(json!({"publish": true})).await;
    let (mut alice, a_id) = server.v1_client("alice").await;
    let (mut bob, b_id) = server.v1_client("bob").await;
    let ch = "$secret";
    let tok = jwt(&json!({"client": a_id, "channel": ch, "info": {"role": "mod"}}));
    assert_eq!(
        alice.subscribe_v1_token(ch, &tok).await,
        json!({"id": 2, "result": {}})
    );
    assert_eq!(
        bob.subscribe_v1_token(ch, &sub_token(&b_id, ch)).await,
        json!({"id": 2, "result": {}})
    );
    assert_eq!(
        alice
            .call_v1(3, json!({"channel": ch, "data": {"t": 1}}))
            .await,
        json!({"id": 3, "result": {}})
    );
    assert_eq!(
        bob.push().await,
        json!({"result": {"channel": ch, "data": {
            "data": {"t": 1},
            "info": {"user": "alice", "client": a_id, "chan_info": {"role": "mod"}},
        }}})
    );
}

#[tokio::test]
async fn client_publish_without_publish_option_gets_103() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("chat").await["result"], json!({}));
    assert_eq!(
        ws.call_v1(3, json!({"channel": "chat", "data": {"text": "hi"}}))
            .await,
        error_reply(3, 103, "permission denied")
    );
    ws.assert_no_push(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn client_publish_with_insecure_client_is_allowed_without_publish_option() {
    let server = Server::start(json!({"client_insecure": true})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_text(r#"{"id":1}"#).await;
    assert!(ws.reply(1).await["result"]["client"].is_string());
    assert_eq!(ws.subscribe_v1("chat").await["result"], json!({}));
    assert_eq!(
        ws.call_v1(3, json!({"channel": "chat", "data": 1})).await,
        json!({"id": 3, "result": {}})
    );
    assert_eq!(ws.push().await["result"]["data"]["data"], 1);
}

#[tokio::test]
async fn publish_with_missing_data_closes_3003() {
    let server = Server::start(json!({"publish": true})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.cmd_v1(3, json!({"channel": "chat"})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
}

// ---------------------------------------------------------------------------------------------
// ping, send, rpc
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ping_reply_is_exactly_the_id() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_text(r#"{"id":2,"method":7}"#).await;
    assert_eq!(ws.recv().await, json!({"id": 2}));
    ws.send_text(r#"{"id":3,"method":7,"params":{}}"#).await;
    assert_eq!(ws.recv().await, json!({"id": 3}));
}

#[tokio::test]
async fn send_gets_no_reply() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.send_text(r#"{"method":8,"params":{"data":{"x":1}}}"#)
        .await;
    ws.send_text(r#"{"id":7,"method":8,"params":{"data":"hello"}}"#)
        .await;
    ws.send_text(r#"{"id":8,"method":7}"#).await;
    assert_eq!(
        ws.recv().await,
        json!({"id": 8}),
        "the first frame after two sends is the ping reply"
    );
}

#[tokio::test]
async fn rpc_without_handler_gets_108_not_available() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(
        ws.call_v1(9, json!({"data": {"x": 1}})).await,
        error_reply(2, 108, "not available")
    );
    assert_eq!(
        ws.call_v1(9, json!({"method": "getUser", "data": {}}))
            .await,
        error_reply(3, 108, "not available")
    );
}

// ---------------------------------------------------------------------------------------------
// presence, history
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn presence_lists_each_subscriber_with_user_and_client() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut a, a_id) = server.v1_client("alice").await;
    let (mut b, b_id) = server.v1_client("bob").await;
    let (_c, _) = server.v1_client("carol").await; // connected, not subscribed
    assert_eq!(a.subscribe_v1("room").await["result"], json!({}));
    assert_eq!(b.subscribe_v1("room").await["result"], json!({}));
    assert_eq!(
        a.call_v1(4, json!({"channel": "room"})).await,
        json!({"id": 3, "result": {"presence": {
            a_id.clone(): {"user": "alice", "client": a_id},
            b_id.clone(): {"user": "bob", "client": b_id},
        }}})
    );
}

#[tokio::test]
async fn presence_stats_counts_clients_and_users() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut a1, _) = server.v1_client("alice").await;
    let (mut a2, _) = server.v1_client("alice").await;
    let (mut b, _) = server.v1_client("bob").await;
    for ws in [&mut a1, &mut a2, &mut b] {
        assert_eq!(ws.subscribe_v1("room").await["result"], json!({}));
    }
    assert_eq!(
        a1.call_v1(5, json!({"channel": "room"})).await,
        json!({"id": 3, "result": {"num_clients": 3, "num_users": 2}})
    );
    assert_eq!(
        b.call_v1(2, json!({"channel": "room"})).await["result"],
        json!({})
    );
    let rep = a1.call_v1(5, json!({"channel": "room"})).await;
    assert_eq!(
        rep["result"],
        json!({"num_clients": 2, "num_users": 1}),
        "after bob left: {rep}"
    );
}

#[tokio::test]
async fn presence_and_presence_stats_when_disabled_get_108() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("room").await["result"], json!({}));
    assert_eq!(
        ws.call_v1(4, json!({"channel": "room"})).await,
        error_reply(3, 108, "not available")
    );
    assert_eq!(
        ws.call_v1(5, json!({"channel": "room"})).await,
        error_reply(4, 108, "not available")
    );
}

#[tokio::test]
async fn presence_when_not_subscribed_gets_103() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(
        ws.call_v1(4, json!({"channel": "room"})).await,
        error_reply(2, 103, "permission denied")
    );
    assert_eq!(
        ws.call_v1(5, json!({"channel": "room"})).await,
        error_reply(3, 103, "permission denied")
    );
}

#[tokio::test]
async fn history_returns_publications_oldest_first() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("feed").await["result"], json!({}));
    for n in 1..=3 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let rep = ws.call_v1(6, json!({"channel": "feed"})).await;
    assert_eq!(rep["id"], 3);
    let pubs = rep["result"]["publications"]
        .as_array()
        .unwrap_or_else(|| panic!("publications: {rep}"));
    let data: Vec<Value> = pubs.iter().map(|p| p["data"].clone()).collect();
    assert_eq!(
        data,
        vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
    );
    for p in pubs {
        assert!(
            p.get("offset").is_none(),
            "default v3_use_offset:false strips offset: {p}"
        );
        assert!(
            p.get("info").is_none(),
            "API publications carry no info: {p}"
        );
    }
}

#[tokio::test]
async fn history_is_trimmed_to_history_size() {
    let server = Server::start(json!({"history_size": 2, "history_lifetime": 60})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("feed").await["result"], json!({}));
    for n in 1..=4 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let rep = ws.call_v1(6, json!({"channel": "feed"})).await;
    let data: Vec<Value> = rep["result"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(data, vec![json!({"n": 3}), json!({"n": 4})]);
}

#[tokio::test]
async fn history_of_empty_channel_has_publications_key() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("feed").await["result"], json!({}));
    assert_eq!(
        ws.call_v1(6, json!({"channel": "feed"})).await,
        json!({"id": 3, "result": {"publications": []}})
    );
}

#[tokio::test]
async fn history_when_disabled_gets_108() {
    let server = Server::start(json!({"history_size": 10})).await; // no lifetime → no history
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("feed").await["result"], json!({}));
    assert_eq!(
        ws.call_v1(6, json!({"channel": "feed"})).await,
        error_reply(3, 108, "not available")
    );
}

#[tokio::test]
async fn history_when_not_subscribed_gets_103() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(
        ws.call_v1(6, json!({"channel": "feed"})).await,
        error_reply(2, 103, "permission denied")
    );
}

// ---------------------------------------------------------------------------------------------
// connection refresh and expiry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_with_valid_token_returns_client_version_expires_ttl() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws
        .connect_v1(&jwt(&json!({"sub": "alice", "exp": now() + 60})))
        .await;
    let client = res["client"].as_str().unwrap().to_string();
    let rep = ws
        .call_v1(
            10,
            json!({"token": jwt(&json!({"sub": "alice", "exp": now() + 3600}))}),
        )
        .await;
    assert_eq!(rep["id"], 2);
    let r = &rep["result"];
    assert_eq!(
        keys(r),
        ["client", "expires", "ttl", "version"],
        "reply: {rep}"
    );
    assert_eq!(r["client"], json!(client));
    assert_eq!(r["expires"], true);
    assert_int_in(&r["ttl"], 3590, 3600, "ttl");
}

#[tokio::test]
async fn refresh_with_expired_token_closes_3005_expired() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v1(&jwt(&json!({"sub": "alice", "exp": now() + 60})))
        .await;
    ws.cmd_v1(
        10,
        json!({"token": jwt(&json!({"sub": "alice", "exp": now() - 10}))}),
    )
    .await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3005, V1_EXPIRED));
}

#[tokio::test]
async fn refresh_with_invalid_token_closes_3002() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v1(&jwt(&json!({"sub": "alice", "exp": now() + 60})))
        .await;
    ws.cmd_v1(
        10,
        json!({"token": jwt_with("HS256", b"wrong", &json!({"sub": "alice", "exp": now() + 60}))}),
    )
    .await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3002, V1_INVALID_TOKEN));
}

#[tokio::test]
async fn refresh_with_empty_token_closes_3003() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    ws.cmd_v1(10, json!({"token": ""})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
}

#[tokio::test]
async fn connection_not_refreshed_is_closed_3005_after_grace() {
    let server = Server::start(json!({"client_expired_close_delay": 1})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let started = Instant::now();
    let res = ws
        .connect_v1(&jwt(&json!({"sub": "alice", "exp": now() + 2})))
        .await;
    assert_eq!(res["expires"], true);
    let (c, r) = ws.close_within(Duration::from_secs(10)).await;
    assert_eq!((c, r.as_str()), (3005, V1_EXPIRED));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed too early: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refreshed_connection_stays_open_past_old_expiry() {
    let server = Server::start(json!({"client_expired_close_delay": 1})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v1(&jwt(&json!({"sub": "alice", "exp": now() + 2})))
        .await;
    let rep = ws
        .call_v1(
            10,
            json!({"token": jwt(&json!({"sub": "alice", "exp": now() + 3600}))}),
        )
        .await;
    assert_eq!(rep["result"]["expires"], true, "{rep}");
    ws.assert_open_for(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------------
// private channels (§5)
// ---------------------------------------------------------------------------------------------

async fn private_subscribe_error(
    token_for: impl FnOnce(&str) -> Option<String>,
    code: u64,
    message: &str,
) {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let ch = "$gossips";
    let params = match token_for(&client) {
        Some(t) => json!({"channel": ch, "token": t}),
        None => json!({"channel": ch}),
    };
    assert_eq!(ws.call_v1(1, params).await, error_reply(2, code, message));
    // the connection stays up and usable
    assert_eq!(ws.call_v1(7, json!({})).await, json!({"id": 3}));
}

#[tokio::test]
async fn private_subscribe_without_token_gets_103() {
    private_subscribe_error(|_| None, 103, "permission denied").await;
}

#[tokio::test]
async fn private_subscribe_with_empty_token_gets_103() {
    private_subscribe_error(|_| Some(String::new()), 103, "permission denied").await;
}

#[tokio::test]
async fn private_subscribe_with_token_for_another_client_gets_103() {
    private_subscribe_error(
        |_| {
            Some(sub_token(
                "9a3c1f0e-5b7d-4c2a-8e6f-0123456789ab",
                "$gossips",
            ))
        },
        103,
        "permission denied",
    )
    .await;
}

#[tokio::test]
async fn private_subscribe_with_token_for_another_channel_gets_103() {
    private_subscribe_error(|c| Some(sub_token(c, "$other")), 103, "permission denied").await;
}

#[tokio::test]
async fn private_subscribe_with_token_signed_by_wrong_secret_gets_103() {
    private_subscribe_error(
        |c| {
            Some(jwt_with(
                "HS256",
                b"wrong",
                &json!({"client": c, "channel": "$gossips"}),
            ))
        },
        103,
        "permission denied",
    )
    .await;
}

#[tokio::test]
async fn private_subscribe_with_alg_none_token_gets_103() {
    private_subscribe_error(
        |c| {
            Some(jwt_with(
                "none",
                b"",
                &json!({"client": c, "channel": "$gossips"}),
            ))
        },
        103,
        "permission denied",
    )
    .await;
}

#[tokio::test]
async fn private_subscribe_with_empty_claims_gets_103() {
    private_subscribe_error(|_| Some(jwt(&json!({}))), 103, "permission denied").await;
}

#[tokio::test]
async fn private_subscribe_with_expired_token_gets_109() {
    private_subscribe_error(
        |c| {
            Some(jwt(
                &json!({"client": c, "channel": "$gossips", "exp": now() - 10}),
            ))
        },
        109,
        "token expired",
    )
    .await;
}

#[tokio::test]
async fn private_subscribe_with_future_nbf_gets_109() {
    private_subscribe_error(
        |c| {
            Some(jwt(
                &json!({"client": c, "channel": "$gossips", "nbf": now() + 3600}),
            ))
        },
        109,
        "token expired",
    )
    .await;
}

#[tokio::test]
async fn private_subscribe_with_valid_token_returns_empty_result() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let ch = "$gossips";
    ws.send(
        &json!({"method": 1, "params": {"channel": ch, "token": sub_token(&client, ch)}, "id": 2}),
    )
    .await;
    assert_eq!(ws.reply(2).await, json!({"id": 2, "result": {}}));
    // and publications reach it
    api_publish(&server, ch, json!({"g": 1})).await;
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": ch, "data": {"data": {"g": 1}}}})
    );
}

#[tokio::test]
async fn private_subscribe_in_namespace_needs_token_too() {
    let server = Server::start(json!({"namespaces": [{"name": "chat"}]})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    assert_eq!(
        ws.subscribe_v1("$chat:room").await,
        error_reply(2, 103, "permission denied")
    );
    assert_eq!(
        ws.subscribe_v1_token("$chat:room", &sub_token(&client, "$chat:room"))
            .await,
        json!({"id": 3, "result": {}})
    );
    assert_eq!(
        ws.subscribe_v1_token("$nope:room", &sub_token(&client, "$nope:room"))
            .await,
        error_reply(4, 102, "unknown channel")
    );
}

#[tokio::test]
async fn private_subscribe_with_exp_returns_expires_and_ttl() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 3600}));
    let rep = ws.subscribe_v1_token("$g", &tok).await;
    assert_eq!(keys(&rep["result"]), ["expires", "ttl"], "{rep}");
    assert_eq!(rep["result"]["expires"], true);
    assert_int_in(&rep["result"]["ttl"], 3590, 3600, "ttl");
}

#[tokio::test]
async fn private_subscribe_with_eto_does_not_report_expiry() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 3600, "eto": true}));
    assert_eq!(
        ws.subscribe_v1_token("$g", &tok).await,
        json!({"id": 2, "result": {}})
    );
}

#[tokio::test]
async fn presence_shows_chan_info_from_subscription_token_info() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "info": {"role": "mod"}}));
    assert_eq!(ws.subscribe_v1_token("$g", &tok).await["result"], json!({}));
    assert_eq!(
        ws.call_v1(4, json!({"channel": "$g"})).await["result"],
        json!({"presence": {client.clone(): {"user": "alice", "client": client, "chan_info": {"role": "mod"}}}})
    );
}

#[tokio::test]
async fn presence_shows_chan_info_from_subscription_token_b64info_which_wins_over_info() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({
        "client": client, "channel": "$g",
        "info": {"role": "ignored"}, "b64info": base64_std(br#"{"role":"b64"}"#),
    }));
    assert_eq!(ws.subscribe_v1_token("$g", &tok).await["result"], json!({}));
    assert_eq!(
        ws.call_v1(4, json!({"channel": "$g"})).await["result"],
        json!({"presence": {client.clone(): {"user": "alice", "client": client, "chan_info": {"role": "b64"}}}})
    );
}

#[tokio::test]
async fn subscriber_receives_its_own_join_with_chan_info() {
    let server = Server::start(json!({"join_leave": true})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let client = ws
        .connect_v1(&jwt(&json!({"sub": "alice", "info": {"name": "A"}})))
        .await["client"]
        .as_str()
        .unwrap()
        .to_string();
    let tok = jwt(&json!({"client": client, "channel": "$g", "info": {"role": "mod"}}));
    assert_eq!(
        ws.subscribe_v1_token("$g", &tok).await,
        json!({"id": 2, "result": {}})
    );
    assert_eq!(
        ws.push().await,
        json!({"result": {"type": 1, "channel": "$g", "data": {"info": {
            "user": "alice", "client": client, "conn_info": {"name": "A"}, "chan_info": {"role": "mod"},
        }}}})
    );
}

#[tokio::test]
async fn other_subscribers_receive_join_and_leave() {
    let server = Server::start(json!({"join_leave": true})).await;
    let (mut a, _) = server.v1_client("alice").await;
    assert_eq!(a.subscribe_v1("room").await["result"], json!({}));
    let own = a.push().await;
    assert_eq!(own["result"]["type"], 1, "own join: {own}");
    let (mut b, b_id) = server.v1_client("bob").await;
    assert_eq!(b.subscribe_v1("room").await["result"], json!({}));
    let info = json!({"user": "bob", "client": b_id});
    assert_eq!(
        a.push().await,
        json!({"result": {"type": 1, "channel": "room", "data": {"info": info}}})
    );
    assert_eq!(
        b.call_v1(2, json!({"channel": "room"})).await["result"],
        json!({})
    );
    assert_eq!(
        a.push().await,
        json!({"result": {"type": 2, "channel": "room", "data": {"info": info}}})
    );
    // leave on disconnect too
    let (mut c, c_id) = server.v1_client("carol").await;
    assert_eq!(c.subscribe_v1("room").await["result"], json!({}));
    assert_eq!(a.push().await["result"]["type"], 1);
    c.close().await;
    assert_eq!(
        a.push().await,
        json!({"result": {"type": 2, "channel": "room", "data": {"info": {"user": "carol", "client": c_id}}}})
    );
}

#[tokio::test]
async fn no_join_or_leave_without_join_leave_option() {
    let server = Server::start(json!({})).await;
    let (mut a, _) = server.v1_client("alice").await;
    assert_eq!(a.subscribe_v1("room").await["result"], json!({}));
    let (mut b, _) = server.v1_client("bob").await;
    assert_eq!(b.subscribe_v1("room").await["result"], json!({}));
    a.assert_no_push(Duration::from_millis(400)).await;
}

// ---------------------------------------------------------------------------------------------
// sub_refresh (§5.5)
// ---------------------------------------------------------------------------------------------

/// A client subscribed to `$g` with a token expiring in an hour.
async fn subscribed_private(server: &Server) -> (Ws, String) {
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 3600}));
    assert_eq!(
        ws.subscribe_v1_token("$g", &tok).await["result"]["expires"],
        true
    );
    (ws, client)
}

#[tokio::test]
async fn sub_refresh_with_valid_token_returns_expires_and_ttl() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = subscribed_private(&server).await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 7200}));
    let rep = ws.call_v1(11, json!({"channel": "$g", "token": tok})).await;
    assert_eq!(rep["id"], 3);
    assert_eq!(keys(&rep["result"]), ["expires", "ttl"], "{rep}");
    assert_eq!(rep["result"]["expires"], true);
    assert_int_in(&rep["result"]["ttl"], 7190, 7200, "ttl");
}

#[tokio::test]
async fn sub_refresh_with_token_without_exp_returns_empty_result() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = subscribed_private(&server).await;
    let rep = ws
        .call_v1(
            11,
            json!({"channel": "$g", "token": sub_token(&client, "$g")}),
        )
        .await;
    assert_eq!(rep, json!({"id": 3, "result": {}}));
}

#[tokio::test]
async fn sub_refresh_replaces_chan_info() {
    // Presence entries are re-added on the presence tick (1 s here), so the new chan_info must
    // show up in presence within a few seconds at the latest.
    let server = Server::start(json!({"presence": true, "client_presence_ping_interval": 1})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let t1 =
        jwt(&json!({"client": client, "channel": "$g", "exp": now() + 3600, "info": {"v": 1}}));
    assert_eq!(
        ws.subscribe_v1_token("$g", &t1).await["result"]["expires"],
        true
    );
    let t2 =
        jwt(&json!({"client": client, "channel": "$g", "exp": now() + 3600, "info": {"v": 2}}));
    assert_eq!(
        ws.call_v1(11, json!({"channel": "$g", "token": t2})).await["result"]["expires"],
        true
    );
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let rep = ws.call_v1(4, json!({"channel": "$g"})).await;
        let info = rep["result"]["presence"][client.as_str()]["chan_info"].clone();
        if info == json!({"v": 2}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chan_info not replaced in presence: {rep}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sub_refresh_with_token_for_another_client_closes_3002() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = subscribed_private(&server).await;
    let tok = jwt(
        &json!({"client": "9a3c1f0e-5b7d-4c2a-8e6f-0123456789ab", "channel": "$g", "exp": now() + 60}),
    );
    ws.cmd_v1(11, json!({"channel": "$g", "token": tok})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3002, V1_INVALID_TOKEN));
}

#[tokio::test]
async fn sub_refresh_with_token_for_another_channel_closes_3002() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = subscribed_private(&server).await;
    let tok = jwt(&json!({"client": client, "channel": "$other", "exp": now() + 60}));
    ws.cmd_v1(11, json!({"channel": "$g", "token": tok})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3002, V1_INVALID_TOKEN));
}

#[tokio::test]
async fn sub_refresh_with_bad_signature_closes_3002() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = subscribed_private(&server).await;
    let tok = jwt_with(
        "HS256",
        b"wrong",
        &json!({"client": client, "channel": "$g", "exp": now() + 60}),
    );
    ws.cmd_v1(11, json!({"channel": "$g", "token": tok})).await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3002, V1_INVALID_TOKEN));
}

#[tokio::test]
async fn sub_refresh_for_channel_not_subscribed_gets_103() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 60}));
    assert_eq!(
        ws.call_v1(11, json!({"channel": "$g", "token": tok})).await,
        error_reply(2, 103, "permission denied")
    );
}

#[tokio::test]
async fn sub_refresh_with_empty_token_gets_107() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = subscribed_private(&server).await;
    assert_eq!(
        ws.call_v1(11, json!({"channel": "$g", "token": ""})).await,
        error_reply(3, 107, "bad request")
    );
}

#[tokio::test]
async fn sub_refresh_with_already_expired_token_gets_109() {
    // Rotor deliberately does not copy Centrifugo 2.8's quirk (reply {} and drop the expiry).
    let server = Server::start(json!({})).await;
    let (mut ws, client) = subscribed_private(&server).await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() - 10}));
    assert_eq!(
        ws.call_v1(11, json!({"channel": "$g", "token": tok})).await,
        error_reply(3, 109, "token expired")
    );
}

#[tokio::test]
async fn sub_refresh_with_empty_channel_closes_3003() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = subscribed_private(&server).await;
    ws.cmd_v1(
        11,
        json!({"channel": "", "token": sub_token(&client, "$g")}),
    )
    .await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
}

fn expiry_config() -> Value {
    json!({"client_expired_sub_close_delay": 1, "client_presence_ping_interval": 1})
}

#[tokio::test]
async fn expired_private_subscription_not_refreshed_closes_3006() {
    let server = Server::start(expiry_config()).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 2}));
    let rep = ws.subscribe_v1_token("$g", &tok).await;
    assert_eq!(rep["result"]["expires"], true, "{rep}");
    let (c, r) = ws.close_within(Duration::from_secs(10)).await;
    assert_eq!((c, r.as_str()), (3006, V1_SUB_EXPIRED));
}

#[tokio::test]
async fn refreshed_private_subscription_is_not_closed() {
    let server = Server::start(expiry_config()).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 2}));
    assert_eq!(
        ws.subscribe_v1_token("$g", &tok).await["result"]["expires"],
        true
    );
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 3600}));
    assert_eq!(
        ws.call_v1(11, json!({"channel": "$g", "token": tok})).await["result"]["expires"],
        true
    );
    ws.assert_open_for(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn eto_subscription_is_not_closed_after_token_exp() {
    let server = Server::start(expiry_config()).await;
    let (mut ws, client) = server.v1_client("alice").await;
    let tok = jwt(&json!({"client": client, "channel": "$g", "exp": now() + 2, "eto": true}));
    assert_eq!(
        ws.subscribe_v1_token("$g", &tok).await,
        json!({"id": 2, "result": {}})
    );
    ws.assert_open_for(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------------
// server-side subscriptions (token `channels`)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn token_channels_claim_subscribes_server_side() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws
        .connect_v1(&jwt(&json!({"sub": "alice", "channels": ["news"]})))
        .await;
    assert!(
        res["subs"].get("news").is_some(),
        "connect result lists the server-side sub: {res}"
    );
    api_publish(&server, "news", json!({"s": 1})).await;
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "news", "data": {"data": {"s": 1}}}})
    );
}

#[tokio::test]
async fn token_channels_claim_with_unknown_namespace_gets_102() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = raw_connect(
        &server,
        &jwt(&json!({"sub": "alice", "channels": ["nope:x"]})),
    )
    .await;
    assert_eq!(rep, error_reply(1, 102, "unknown channel"));
}

// ---------------------------------------------------------------------------------------------
// positions: seq/gen vs offset, recovery (§7)
// ---------------------------------------------------------------------------------------------

fn recover_config(use_offset: bool) -> Value {
    json!({"history_size": 10, "history_lifetime": 60, "history_recover": true, "v3_use_offset": use_offset})
}

#[tokio::test]
async fn recoverable_channel_subscribe_reports_recoverable_and_epoch() {
    let server = Server::start(recover_config(false)).await;
    let (mut ws, _) = server.v1_client("alice").await;
    let rep = ws.subscribe_v1("feed").await;
    assert_eq!(
        keys(&rep["result"]),
        ["epoch", "recoverable"],
        "empty stream: position 0 omitted: {rep}"
    );
    assert_eq!(rep["result"]["recoverable"], true);
    assert!(
        rep["result"]["epoch"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{rep}"
    );
}

#[tokio::test]
async fn publications_carry_seq_not_offset_by_default() {
    let server = Server::start(recover_config(false)).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("feed").await["result"]["recoverable"], true);
    for n in 1..=2 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "feed", "data": {"seq": 1, "data": {"n": 1}}}})
    );
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "feed", "data": {"seq": 2, "data": {"n": 2}}}})
    );
    let (mut late, _) = server.v1_client("bob").await;
    let rep = late.subscribe_v1("feed").await;
    assert_eq!(rep["result"]["seq"], 2, "{rep}");
    assert!(rep["result"].get("offset").is_none(), "{rep}");
}

#[tokio::test]
async fn publications_carry_offset_with_v3_use_offset() {
    let server = Server::start(recover_config(true)).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("feed").await["result"]["recoverable"], true);
    for n in 1..=2 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "feed", "data": {"offset": 1, "data": {"n": 1}}}})
    );
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "feed", "data": {"offset": 2, "data": {"n": 2}}}})
    );
    let (mut late, _) = server.v1_client("bob").await;
    let rep = late.subscribe_v1("feed").await;
    assert_eq!(rep["result"]["offset"], 2, "{rep}");
    assert!(rep["result"].get("seq").is_none(), "{rep}");
}

#[tokio::test]
async fn publications_in_channel_without_history_carry_no_position() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("feed").await["result"], json!({}));
    api_publish(&server, "feed", json!({"n": 1})).await;
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "feed", "data": {"data": {"n": 1}}}})
    );
}

#[tokio::test]
async fn recovery_in_offset_mode_returns_missed_publications_ascending() {
    let server = Server::start(recover_config(true)).await;
    let (mut ws, _) = server.v1_client("alice").await;
    let rep = ws.subscribe_v1("feed").await;
    let epoch = rep["result"]["epoch"].as_str().unwrap().to_string();
    for n in 1..=4 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let (mut again, _) = server.v1_client("alice").await;
    let rep = again
        .call_v1(
            1,
            json!({"channel": "feed", "recover": true, "offset": 1, "epoch": epoch}),
        )
        .await;
    let r = &rep["result"];
    assert_eq!(r["recoverable"], true, "{rep}");
    assert_eq!(r["recovered"], true, "{rep}");
    assert_eq!(r["offset"], 4, "{rep}");
    assert_eq!(r["epoch"], json!(epoch));
    let offsets: Vec<Value> = r["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].clone())
        .collect();
    assert_eq!(offsets, vec![json!(2), json!(3), json!(4)], "{rep}");
}

#[tokio::test]
async fn recovery_in_seq_mode_returns_missed_publications_newest_first() {
    let server = Server::start(recover_config(false)).await;
    let (mut ws, _) = server.v1_client("alice").await;
    let rep = ws.subscribe_v1("feed").await;
    let epoch = rep["result"]["epoch"].as_str().unwrap().to_string();
    for n in 1..=3 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let (mut again, _) = server.v1_client("alice").await;
    let rep = again
        .call_v1(
            1,
            json!({"channel": "feed", "recover": true, "seq": 1, "gen": 0, "epoch": epoch}),
        )
        .await;
    let r = &rep["result"];
    assert_eq!(r["recoverable"], true, "{rep}");
    assert_eq!(r["recovered"], true, "{rep}");
    assert_eq!(r["seq"], 3, "{rep}");
    assert!(r.get("offset").is_none(), "{rep}");
    let seqs: Vec<Value> = r["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].clone())
        .collect();
    assert_eq!(
        seqs,
        vec![json!(3), json!(2)],
        "seq/gen mode sends newest first: {rep}"
    );
}

#[tokio::test]
async fn connect_with_token_for_another_audience_closes_3002_invalid_token() {
    let server = Server::start(json!({"token_audience": "rotor", "token_issuer": "i"})).await;
    for claims in [
        json!({"sub": "alice", "aud": "other", "iss": "i"}),
        json!({"sub": "alice", "aud": "rotor", "iss": "other"}),
        json!({"sub": "alice"}),
    ] {
        connect_expect_close(&server, &jwt(&claims), 3002, V1_INVALID_TOKEN).await;
    }
    let token = jwt(&json!({"sub": "alice", "aud": ["rotor"], "iss": "i"}));
    let (_ws, rep) = raw_connect(&server, &token).await;
    assert!(rep["result"]["client"].is_string(), "reply: {rep}");
}

/// A burst of publications reaches a subscriber merged, several to a frame, also right after
/// the writer has sent a lone publication on its own. Every publication arrives, in order.
#[tokio::test]
async fn a_burst_after_a_lone_publication_is_merged_into_few_frames() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("news").await["result"], json!({}));
    api_publish(&server, "news", json!({"n": 0})).await;
    assert_eq!(ws.push().await["result"]["data"]["data"], json!({"n": 0}));
    let before = ws.frames.len();
    const BURST: u64 = 300;
    let body = (1..=BURST)
        .map(|n| json!({"method": "publish", "params": {"channel": "news", "data": {"n": n}}}))
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let r = api_v1_raw(&server, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    for n in 1..=BURST {
        assert_eq!(ws.push().await["result"]["data"]["data"], json!({ "n": n }));
    }
    let frames = ws.frames.len() - before;
    assert!(
        frames <= (BURST / 3) as usize,
        "{BURST} publications in {frames} frames: the burst was not merged"
    );
}
