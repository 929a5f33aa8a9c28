//! End-to-end tests of client protocol v2 (Centrifugo 4+, centrifuge-js 5.x): named command
//! fields, `{"push":{...}}` pushes, application ping `{}` / pong `{}`, and close frames with
//! plain-text reasons from the modern code table. Expectations follow PROTOCOL.md §10
//! (§10.8, what the current clients do, wins).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn error_reply(id: u64, code: u64, message: &str) -> Value {
    json!({ "id": id, "error": { "code": code, "message": message } })
}

/// A v2 token for `user` on `channel` (v4+ rules: `sub` must equal the connection's user).
fn v2_sub_token(user: &str, channel: &str) -> String {
    jwt(&json!({ "sub": user, "channel": channel }))
}

async fn expect_close_v2(ws: &mut Ws, code: u16, reason: &str) {
    let (c, r) = ws.expect_close().await;
    assert_eq!(
        (c, r.as_str()),
        (code, reason),
        "buffered: {:?}",
        ws.buffered()
    );
}

// ---------------------------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connect_returns_client_version_ping_and_pong() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send(&json!({"id": 1, "connect": {"token": conn_token("alice"), "name": "js"}}))
        .await;
    let rep = ws.reply(1).await;
    assert!(rep.get("error").is_none(), "{rep}");
    let res = &rep["connect"];
    assert!(
        is_uuid_v4(res["client"].as_str().unwrap_or("")),
        "client is a UUIDv4: {rep}"
    );
    assert!(res["version"].is_string(), "{rep}");
    assert_eq!(res["ping"], 25, "default ping interval advertised: {rep}");
    assert_eq!(res["pong"], true, "{rep}");
    assert!(
        res.get("expires").is_none() && res.get("ttl").is_none(),
        "no exp → no expiry: {rep}"
    );
    assert!(
        rep.get("result").is_none(),
        "v2 replies carry no v1 result: {rep}"
    );
}

#[tokio::test]
async fn connect_with_exp_reports_expires_and_ttl() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws
        .connect_v2(&jwt(&json!({"sub": "alice", "exp": now() + 600})))
        .await;
    assert_eq!(res["expires"], true, "{res}");
    assert_int_in(&res["ttl"], 590, 600, "ttl");
}

#[tokio::test]
async fn connect_with_hs512_token_succeeds() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws
        .connect_v2(&jwt_with(
            "HS512",
            SECRET.as_bytes(),
            &json!({"sub": "alice"}),
        ))
        .await;
    assert!(is_uuid_v4(res["client"].as_str().unwrap_or("")));
}

#[tokio::test]
async fn connect_with_invalid_token_closes_3500_invalid_token() {
    let server = Server::start(json!({})).await;
    for token in [
        jwt_with("HS256", b"wrong", &json!({"sub": "alice"})),
        jwt_with("none", b"", &json!({"sub": "alice"})),
        jwt_with("RS256", SECRET.as_bytes(), &json!({"sub": "alice"})),
        "garbage".to_string(),
    ] {
        let mut ws = Ws::open(&server.ws_url()).await;
        ws.send(&json!({"id": 1, "connect": {"token": token}}))
            .await;
        expect_close_v2(&mut ws, 3500, "invalid token").await;
    }
}

#[tokio::test]
async fn connect_with_expired_token_gets_error_109_and_stays_open() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let token = jwt(&json!({"sub": "alice", "exp": now() - 60}));
    let rep = ws.call_v2("connect", json!({"token": token})).await;
    assert_eq!(rep, error_reply(1, 109, "token expired"));
    ws.assert_open_for(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn connect_without_token_closes_3501_bad_request() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send(&json!({"id": 1, "connect": {}})).await;
    expect_close_v2(&mut ws, 3501, "bad request").await;
}

#[tokio::test]
async fn anonymous_connection_is_user_empty_and_subscribes_with_empty_sub_token() {
    let server =
        Server::start(json!({"client_anonymous": true, "anonymous": true, "presence": true})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let rep = ws.call_v2("connect", json!({})).await;
    let client = rep["connect"]["client"]
        .as_str()
        .unwrap_or_else(|| panic!("{rep}"))
        .to_string();
    let rep = ws
        .call_v2(
            "subscribe",
            json!({"channel": "$g", "token": v2_sub_token("", "$g"), "flag": 1}),
        )
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    let rep = ws.call_v2("presence", json!({"channel": "$g"})).await;
    assert_eq!(
        rep["presence"],
        json!({"presence": {client.clone(): {"user": "", "client": client}}}),
        "{rep}"
    );
}

/// Centrifugo 6 lets a subscription token decide for an anonymous v2 connection: the 2.x
/// `anonymous` namespace rule does not run first (handler.go OnSubscribe). Without a token the
/// rule still refuses.
#[tokio::test]
async fn anonymous_v2_connection_subscribes_with_a_token_where_anonymous_is_off() {
    let server = Server::start(json!({"client_anonymous": true})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let rep = ws.call_v2("connect", json!({})).await;
    assert!(rep["connect"]["client"].is_string(), "{rep}");
    let rep = ws
        .call_v2(
            "subscribe",
            json!({"channel": "news", "token": v2_sub_token("", "news")}),
        )
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    let rep = ws.call_v2("subscribe", json!({"channel": "other"})).await;
    assert_eq!(rep["error"]["code"], 103, "{rep}");
}

#[tokio::test]
async fn user_connection_limit_closes_extra_connection_3504() {
    let server = Server::start(json!({"client_user_connection_limit": 1})).await;
    let (mut first, _) = server.v2_client("alice").await;
    let mut second = Ws::open(&server.ws_url()).await;
    second
        .send(&json!({"id": 1, "connect": {"token": conn_token("alice")}}))
        .await;
    expect_close_v2(&mut second, 3504, "connection limit").await;
    first.assert_open_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn command_before_connect_closes_3501() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send(&json!({"id": 1, "subscribe": {"channel": "news"}}))
        .await;
    expect_close_v2(&mut ws, 3501, "bad request").await;
}

#[tokio::test]
async fn second_connect_closes_3501() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    ws.send(&json!({"id": 2, "connect": {"token": conn_token("alice")}}))
        .await;
    expect_close_v2(&mut ws, 3501, "bad request").await;
}

#[tokio::test]
async fn malformed_command_after_connect_closes_3501() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    ws.send_text("{\"id\":2,\"subscribe\":").await;
    expect_close_v2(&mut ws, 3501, "bad request").await;
}

#[tokio::test]
async fn silent_connection_is_closed_3502_stale() {
    let server = Server::start(json!({"client_stale_close_delay": 1})).await;
    let mut ws = Ws::open(&server.ws_url_with("cf_protocol_version=v2")).await;
    let (c, r) = ws.close_within(Duration::from_secs(6)).await;
    assert_eq!((c, r.as_str()), (3502, "stale"));
}

#[tokio::test]
async fn several_commands_in_one_frame_are_all_answered() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.send_lines(&[
        json!({"id": 1, "connect": {"token": conn_token("alice")}}),
        json!({"id": 2, "subscribe": {"channel": "a", "flag": 1}}),
        json!({"id": 3, "subscribe": {"channel": "b", "flag": 1}}),
    ])
    .await;
    assert!(ws.reply(1).await["connect"]["client"].is_string());
    assert!(ws.reply(2).await["subscribe"].is_object());
    assert!(ws.reply(3).await["subscribe"].is_object());
}

// ---------------------------------------------------------------------------------------------
// ping / pong (§10.4, §10.8 items 2–3)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_ping_is_empty_object_and_answering_keeps_connection_open() {
    let server = Server::start(json!({"client_ping_interval": 1})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    let first = tokio::time::timeout(Duration::from_secs(3), ws.recv())
        .await
        .expect("a ping within 3 s");
    assert_eq!(first, json!({}), "a server ping is an empty object");
    ws.send_text("{}").await;
    ws.auto_pong = true;
    ws.assert_open_for(Duration::from_secs(4)).await;
    assert!(
        ws.pings >= 3,
        "pings keep coming about every second: {}",
        ws.pings
    );
    let rep = ws.subscribe_v2("still-here").await;
    assert!(rep["subscribe"].is_object(), "{rep}");
}

#[tokio::test]
async fn connect_advertises_configured_ping_interval() {
    let server = Server::start(json!({"client_ping_interval": 1})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws.connect_v2(&conn_token("alice")).await;
    assert_eq!(res["ping"], 1, "{res}");
    assert_eq!(res["pong"], true, "{res}");
}

#[tokio::test]
async fn unanswered_ping_closes_3012_no_pong() {
    // The pong timeout (Centrifugo default 8 s; `client_pong_timeout` if the server reads it)
    // stays below the ping interval, as the reference implementation requires: each new ping
    // re-arms the pong deadline there.
    let server = Server::start(json!({"client_ping_interval": 9, "client_pong_timeout": 1})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    let (c, r) = ws.close_within(Duration::from_secs(25)).await;
    assert_eq!((c, r.as_str()), (3012, "no pong"));
    assert!(ws.pings >= 1, "pings were sent before the close");
}

#[tokio::test]
async fn pong_before_any_ping_closes_3501() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    ws.send_text("{}").await;
    expect_close_v2(&mut ws, 3501, "bad request").await;
}

// ---------------------------------------------------------------------------------------------
// subscribe, publish, unsubscribe
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn subscribe_with_flag_and_unknown_fields_returns_subscribe_result() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    ws.send_text(
        r#"{"id":2,"subscribe":{"channel":"news","flag":1,"some_future_field":{"x":[1,2]}}}"#,
    )
    .await;
    let rep = ws.reply(2).await;
    assert!(rep.get("error").is_none(), "{rep}");
    assert!(rep["subscribe"].is_object(), "{rep}");
    ws.send_text(r#"{"id":3,"subscribe":{"channel":"other","flag":3}}"#)
        .await;
    assert!(ws.reply(3).await["subscribe"].is_object());
}

#[tokio::test]
async fn second_subscribe_gets_105() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("news").await["subscribe"].is_object());
    assert_eq!(
        ws.subscribe_v2("news").await,
        error_reply(3, 105, "already subscribed")
    );
}

#[tokio::test]
async fn subscribe_to_unknown_namespace_gets_102() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert_eq!(
        ws.subscribe_v2("nope:room").await,
        error_reply(2, 102, "unknown channel")
    );
}

#[tokio::test]
async fn subscribe_with_empty_channel_closes_3501() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    ws.cmd_v2("subscribe", json!({"channel": ""})).await;
    expect_close_v2(&mut ws, 3501, "bad request").await;
}

#[tokio::test]
async fn subscribing_past_channel_limit_gets_106() {
    let server = Server::start(json!({"client_channel_limit": 1})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("a").await["subscribe"].is_object());
    assert_eq!(
        ws.subscribe_v2("b").await,
        error_reply(3, 106, "limit exceeded")
    );
}

#[tokio::test]
async fn api_publication_push_has_channel_and_pub() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("news").await["subscribe"].is_object());
    api_publish(&server, "news", json!({"text": "hi"})).await;
    assert_eq!(
        ws.push().await,
        json!({"push": {"channel": "news", "pub": {"data": {"text": "hi"}}}})
    );
}

#[tokio::test]
async fn publication_push_carries_offset_when_history_is_on() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("news").await["subscribe"].is_object());
    api_publish(&server, "news", json!({"n": 1})).await;
    api_publish(&server, "news", json!({"n": 2})).await;
    assert_eq!(
        ws.push().await,
        json!({"push": {"channel": "news", "pub": {"data": {"n": 1}, "offset": 1}}})
    );
    assert_eq!(
        ws.push().await,
        json!({"push": {"channel": "news", "pub": {"data": {"n": 2}, "offset": 2}}})
    );
}

#[tokio::test]
async fn client_publish_replies_publish_and_push_carries_publisher_info() {
    let server = Server::start(json!({"publish": true})).await;
    let mut alice = Ws::open(&server.ws_url()).await;
    let a_id = alice
        .connect_v2(&jwt(&json!({"sub": "alice", "info": {"name": "A"}})))
        .await["client"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut bob, _) = server.v2_client("bob").await;
    assert!(alice.subscribe_v2("chat").await["subscribe"].is_object());
    assert!(bob.subscribe_v2("chat").await["subscribe"].is_object());
    let rep = alice
        .call_v2(
            "publish",
            json!({"channel": "chat", "data": {"text": "hi"}}),
        )
        .await;
    assert!(rep.get("error").is_none(), "{rep}");
    assert!(rep["publish"].is_object(), "{rep}");
    assert_eq!(
        bob.push().await,
        json!({"push": {"channel": "chat", "pub": {
            "data": {"text": "hi"},
            "info": {"user": "alice", "client": a_id, "conn_info": {"name": "A"}},
        }}})
    );
}

#[tokio::test]
async fn client_publish_without_publish_option_gets_103() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("chat").await["subscribe"].is_object());
    assert_eq!(
        ws.call_v2("publish", json!({"channel": "chat", "data": {}}))
            .await,
        error_reply(3, 103, "permission denied")
    );
}

#[tokio::test]
async fn unsubscribe_replies_unsubscribe_and_stops_delivery() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("news").await["subscribe"].is_object());
    let rep = ws.call_v2("unsubscribe", json!({"channel": "news"})).await;
    assert!(rep.get("error").is_none(), "{rep}");
    assert!(rep["unsubscribe"].is_object(), "{rep}");
    api_publish(&server, "news", json!({"n": 1})).await;
    ws.assert_no_push(Duration::from_millis(400)).await;
}

/// Centrifugo 6 has no handler for `send` and closes the connection with 3508 "not available"
/// (PROXY.md §5); v1 drops it (e2e_v1).
#[tokio::test]
async fn send_closes_3508_not_available() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    ws.send_text(r#"{"send":{"data":{"x":1}}}"#).await;
    expect_close_v2(&mut ws, 3508, "not available").await;
}

#[tokio::test]
async fn rpc_without_handler_gets_108_not_available() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert_eq!(
        ws.call_v2("rpc", json!({"method": "getUser", "data": {"id": 1}}))
            .await,
        error_reply(2, 108, "not available")
    );
}

// ---------------------------------------------------------------------------------------------
// subscription tokens (§10.6, §10.8 item 6)
// ---------------------------------------------------------------------------------------------

async fn v2_subscribe_with(
    server: &Server,
    claims: impl FnOnce(&str) -> Option<Value>,
) -> (Ws, Value) {
    let (mut ws, client) = server.v2_client("alice").await;
    let mut params = json!({"channel": "$g", "flag": 1});
    if let Some(c) = claims(&client) {
        params["token"] = json!(jwt(&c));
    }
    ws.cmd_v2("subscribe", params).await;
    let ev = ws.next_event_within(WAIT).await;
    match ev {
        Some(Event::Value(v)) => (ws, v),
        Some(Event::Closed(c, r)) => {
            let v = json!({"closed": c, "reason": r});
            (ws, v)
        }
        None => panic!("no answer to subscribe"),
    }
}

#[tokio::test]
async fn private_subscribe_without_token_gets_103() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = v2_subscribe_with(&server, |_| None).await;
    assert_eq!(rep, error_reply(2, 103, "permission denied"));
}

#[tokio::test]
async fn private_subscribe_with_sub_and_channel_succeeds() {
    let server = Server::start(json!({})).await;
    let (mut ws, rep) =
        v2_subscribe_with(&server, |_| Some(json!({"sub": "alice", "channel": "$g"}))).await;
    assert_eq!(rep["id"], 2, "{rep}");
    assert!(rep["subscribe"].is_object(), "{rep}");
    api_publish(&server, "$g", json!({"p": 1})).await;
    assert_eq!(
        ws.push().await,
        json!({"push": {"channel": "$g", "pub": {"data": {"p": 1}}}})
    );
}

#[tokio::test]
async fn private_subscribe_with_matching_client_claim_succeeds() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = v2_subscribe_with(&server, |c| {
        Some(json!({"sub": "alice", "channel": "$g", "client": c}))
    })
    .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
}

#[tokio::test]
async fn private_subscribe_with_client_claim_of_another_client_closes_3500() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = v2_subscribe_with(&server, |_| {
        Some(json!({"sub": "alice", "channel": "$g", "client": "9a3c1f0e-5b7d-4c2a-8e6f-0123456789ab"}))
    })
    .await;
    assert_eq!(rep, json!({"closed": 3500, "reason": "invalid token"}));
}

#[tokio::test]
async fn private_subscribe_with_token_of_another_user_closes_3500() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) =
        v2_subscribe_with(&server, |_| Some(json!({"sub": "bob", "channel": "$g"}))).await;
    assert_eq!(rep, json!({"closed": 3500, "reason": "invalid token"}));
}

#[tokio::test]
async fn private_subscribe_with_v1_style_token_without_sub_closes_3500() {
    // A 2.x token ({client, channel}) has no `sub`, i.e. user "" ≠ "alice".
    let server = Server::start(json!({})).await;
    let (_ws, rep) =
        v2_subscribe_with(&server, |c| Some(json!({"client": c, "channel": "$g"}))).await;
    assert_eq!(rep, json!({"closed": 3500, "reason": "invalid token"}));
}

#[tokio::test]
async fn private_subscribe_with_token_for_another_channel_closes_3500() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = v2_subscribe_with(&server, |_| {
        Some(json!({"sub": "alice", "channel": "$other"}))
    })
    .await;
    assert_eq!(rep, json!({"closed": 3500, "reason": "invalid token"}));
}

#[tokio::test]
async fn private_subscribe_with_expired_token_gets_109() {
    let server = Server::start(json!({})).await;
    let (mut ws, rep) = v2_subscribe_with(&server, |_| {
        Some(json!({"sub": "alice", "channel": "$g", "exp": now() - 10}))
    })
    .await;
    assert_eq!(rep, error_reply(2, 109, "token expired"));
    ws.assert_open_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn private_subscribe_with_badly_signed_token_gets_103() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    let tok = jwt_with("HS256", b"wrong", &json!({"sub": "alice", "channel": "$g"}));
    let rep = ws
        .call_v2("subscribe", json!({"channel": "$g", "token": tok}))
        .await;
    assert_eq!(rep, error_reply(2, 103, "permission denied"));
    ws.assert_open_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn private_subscribe_with_exp_reports_expires_and_ttl() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = v2_subscribe_with(&server, |_| {
        Some(json!({"sub": "alice", "channel": "$g", "exp": now() + 600}))
    })
    .await;
    assert_eq!(rep["subscribe"]["expires"], true, "{rep}");
    assert_int_in(&rep["subscribe"]["ttl"], 590, 600, "ttl");
}

#[tokio::test]
async fn private_subscribe_with_expire_at_claim_reports_that_expiry() {
    let server = Server::start(json!({})).await;
    let (_ws, rep) = v2_subscribe_with(&server, |_| {
        Some(json!({"sub": "alice", "channel": "$g", "expire_at": now() + 600}))
    })
    .await;
    assert_eq!(rep["subscribe"]["expires"], true, "{rep}");
    assert_int_in(&rep["subscribe"]["ttl"], 590, 600, "ttl");
}

#[tokio::test]
async fn token_for_public_channel_is_accepted_and_its_info_becomes_chan_info() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut ws, client) = server.v2_client("alice").await;
    let tok = jwt(&json!({"sub": "alice", "channel": "room", "info": {"role": "mod"}}));
    let rep = ws
        .call_v2(
            "subscribe",
            json!({"channel": "room", "token": tok, "flag": 1}),
        )
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    let rep = ws.call_v2("presence", json!({"channel": "room"})).await;
    assert_eq!(
        rep,
        json!({"id": 3, "presence": {"presence": {
            client.clone(): {"user": "alice", "client": client, "chan_info": {"role": "mod"}},
        }}})
    );
}

// ---------------------------------------------------------------------------------------------
// sub_refresh, refresh, expiry
// ---------------------------------------------------------------------------------------------

async fn v2_subscribed_private(server: &Server, exp_in: i64) -> (Ws, String) {
    let (mut ws, client) = server.v2_client("alice").await;
    let tok = jwt(&json!({"sub": "alice", "channel": "$g", "exp": now() + exp_in}));
    let rep = ws
        .call_v2(
            "subscribe",
            json!({"channel": "$g", "token": tok, "flag": 1}),
        )
        .await;
    assert_eq!(rep["subscribe"]["expires"], true, "{rep}");
    (ws, client)
}

#[tokio::test]
async fn sub_refresh_with_valid_token_returns_expires_and_ttl() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = v2_subscribed_private(&server, 600).await;
    let tok = jwt(&json!({"sub": "alice", "channel": "$g", "exp": now() + 1200}));
    let rep = ws
        .call_v2("sub_refresh", json!({"channel": "$g", "token": tok}))
        .await;
    assert_eq!(rep["id"], 3);
    assert_eq!(rep["sub_refresh"]["expires"], true, "{rep}");
    assert_int_in(&rep["sub_refresh"]["ttl"], 1190, 1200, "ttl");
}

#[tokio::test]
async fn sub_refresh_with_already_expired_token_gets_110() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = v2_subscribed_private(&server, 600).await;
    let tok = jwt(&json!({"sub": "alice", "channel": "$g", "exp": now() - 10}));
    assert_eq!(
        ws.call_v2("sub_refresh", json!({"channel": "$g", "token": tok}))
            .await,
        error_reply(3, 110, "expired")
    );
}

#[tokio::test]
async fn sub_refresh_with_token_for_another_channel_closes_3500() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = v2_subscribed_private(&server, 600).await;
    let tok = jwt(&json!({"sub": "alice", "channel": "$other", "exp": now() + 600}));
    ws.cmd_v2("sub_refresh", json!({"channel": "$g", "token": tok}))
        .await;
    expect_close_v2(&mut ws, 3500, "invalid token").await;
}

#[tokio::test]
async fn sub_refresh_with_token_of_another_user_closes_3500() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = v2_subscribed_private(&server, 600).await;
    let tok = jwt(&json!({"sub": "bob", "channel": "$g", "exp": now() + 600}));
    ws.cmd_v2("sub_refresh", json!({"channel": "$g", "token": tok}))
        .await;
    expect_close_v2(&mut ws, 3500, "invalid token").await;
}

#[tokio::test]
async fn sub_refresh_for_channel_not_subscribed_gets_103() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    let tok = jwt(&json!({"sub": "alice", "channel": "$g", "exp": now() + 600}));
    assert_eq!(
        ws.call_v2("sub_refresh", json!({"channel": "$g", "token": tok}))
            .await,
        error_reply(2, 103, "permission denied")
    );
}

#[tokio::test]
async fn refresh_with_valid_token_returns_expires_and_ttl_without_client() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v2(&jwt(&json!({"sub": "alice", "exp": now() + 60})))
        .await;
    let rep = ws
        .call_v2(
            "refresh",
            json!({"token": jwt(&json!({"sub": "alice", "exp": now() + 600}))}),
        )
        .await;
    assert_eq!(rep["id"], 2);
    let r = &rep["refresh"];
    assert_eq!(r["expires"], true, "{rep}");
    assert_int_in(&r["ttl"], 590, 600, "ttl");
    assert!(
        r.get("client").is_none(),
        "v2 refresh result has no client: {rep}"
    );
}

#[tokio::test]
async fn refresh_with_expired_token_closes_3005_connection_expired() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v2(&jwt(&json!({"sub": "alice", "exp": now() + 60})))
        .await;
    ws.cmd_v2(
        "refresh",
        json!({"token": jwt(&json!({"sub": "alice", "exp": now() - 10}))}),
    )
    .await;
    expect_close_v2(&mut ws, 3005, "connection expired").await;
}

#[tokio::test]
async fn refresh_with_invalid_token_closes_3500() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v2(&jwt(&json!({"sub": "alice", "exp": now() + 60})))
        .await;
    ws.cmd_v2(
        "refresh",
        json!({"token": jwt_with("HS256", b"wrong", &json!({"sub": "alice"}))}),
    )
    .await;
    expect_close_v2(&mut ws, 3500, "invalid token").await;
}

#[tokio::test]
async fn connection_not_refreshed_closes_3005_connection_expired() {
    let server = Server::start(json!({"client_expired_close_delay": 1})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let started = Instant::now();
    ws.connect_v2(&jwt(&json!({"sub": "alice", "exp": now() + 2})))
        .await;
    let (c, r) = ws.close_within(Duration::from_secs(10)).await;
    assert_eq!((c, r.as_str()), (3005, "connection expired"));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed too early: {:?}",
        started.elapsed()
    );
}

fn expiry_config() -> Value {
    json!({"client_expired_sub_close_delay": 1, "client_presence_ping_interval": 1})
}

#[tokio::test]
async fn unrefreshed_expired_subscription_gets_unsubscribe_2501_and_connection_stays_open() {
    let server = Server::start(expiry_config()).await;
    let (mut ws, _) = v2_subscribed_private(&server, 2).await;
    let push = ws
        .push_within(Duration::from_secs(10))
        .await
        .expect("an unsubscribe push within 10 s");
    assert_eq!(
        push,
        json!({"push": {"channel": "$g", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}})
    );
    // the connection is still open and usable; the channel no longer delivers
    let rep = ws.subscribe_v2("other").await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    api_publish(&server, "$g", json!({"late": true})).await;
    ws.assert_no_push(Duration::from_millis(400)).await;
    assert!(ws.closed().is_none());
}

#[tokio::test]
async fn refreshed_subscription_is_not_unsubscribed() {
    let server = Server::start(expiry_config()).await;
    let (mut ws, _) = v2_subscribed_private(&server, 2).await;
    let tok = jwt(&json!({"sub": "alice", "channel": "$g", "exp": now() + 600}));
    let rep = ws
        .call_v2("sub_refresh", json!({"channel": "$g", "token": tok}))
        .await;
    assert_eq!(rep["sub_refresh"]["expires"], true, "{rep}");
    ws.assert_no_push(Duration::from_secs(5)).await;
    assert!(ws.closed().is_none());
}

// ---------------------------------------------------------------------------------------------
// presence, history
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn presence_and_presence_stats_shapes() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut a, a_id) = server.v2_client("alice").await;
    let (mut b, b_id) = server.v2_client("bob").await;
    assert!(a.subscribe_v2("room").await["subscribe"].is_object());
    assert!(b.subscribe_v2("room").await["subscribe"].is_object());
    assert_eq!(
        a.call_v2("presence", json!({"channel": "room"})).await,
        json!({"id": 3, "presence": {"presence": {
            a_id.clone(): {"user": "alice", "client": a_id},
            b_id.clone(): {"user": "bob", "client": b_id},
        }}})
    );
    assert_eq!(
        a.call_v2("presence_stats", json!({"channel": "room"}))
            .await,
        json!({"id": 4, "presence_stats": {"num_clients": 2, "num_users": 2}})
    );
}

#[tokio::test]
async fn presence_when_disabled_gets_108() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("room").await["subscribe"].is_object());
    assert_eq!(
        ws.call_v2("presence", json!({"channel": "room"})).await,
        error_reply(3, 108, "not available")
    );
    assert_eq!(
        ws.call_v2("presence_stats", json!({"channel": "room"}))
            .await,
        error_reply(4, 108, "not available")
    );
}

#[tokio::test]
async fn history_when_disabled_gets_108() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("feed").await["subscribe"].is_object());
    assert_eq!(
        ws.call_v2("history", json!({"channel": "feed", "limit": -1}))
            .await,
        error_reply(3, 108, "not available")
    );
}

fn offsets(rep: &Value) -> Vec<u64> {
    rep["history"]["publications"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["offset"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn history_limit_since_and_reverse() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("feed").await["subscribe"].is_object());
    for n in 1..=3 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    // limit absent: no publications, only the stream top
    let rep = ws.call_v2("history", json!({"channel": "feed"})).await;
    let h = &rep["history"];
    assert!(
        h.get("publications").is_none() || h["publications"] == json!([]),
        "limit absent → no publications: {rep}"
    );
    assert_eq!(h["offset"], 3, "{rep}");
    let epoch = h["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("epoch: {rep}"))
        .to_string();
    assert!(!epoch.is_empty());
    // limit 0 is the same
    let rep = ws
        .call_v2("history", json!({"channel": "feed", "limit": 0}))
        .await;
    assert_eq!(offsets(&rep), Vec::<u64>::new(), "{rep}");
    // -1: everything, oldest first
    let rep = ws
        .call_v2("history", json!({"channel": "feed", "limit": -1}))
        .await;
    assert_eq!(offsets(&rep), vec![1, 2, 3], "{rep}");
    assert_eq!(rep["history"]["publications"][0]["data"], json!({"n": 1}));
    assert_eq!(rep["history"]["offset"], 3);
    assert_eq!(rep["history"]["epoch"], json!(epoch));
    // a positive limit
    let rep = ws
        .call_v2("history", json!({"channel": "feed", "limit": 2}))
        .await;
    assert_eq!(offsets(&rep), vec![1, 2], "{rep}");
    // since: after the given offset
    let rep = ws
        .call_v2(
            "history",
            json!({"channel": "feed", "limit": -1, "since": {"offset": 1, "epoch": epoch}}),
        )
        .await;
    assert_eq!(offsets(&rep), vec![2, 3], "{rep}");
    // since + reverse: before it, newest first
    let rep = ws
        .call_v2(
            "history",
            json!({"channel": "feed", "limit": -1, "since": {"offset": 3, "epoch": epoch}, "reverse": true}),
        )
        .await;
    assert_eq!(offsets(&rep), vec![2, 1], "{rep}");
}

#[tokio::test]
async fn recoverable_channel_subscribe_answers_recoverable_offset_epoch_and_recovers_ascending() {
    let server =
        Server::start(json!({"history_size": 10, "history_lifetime": 60, "history_recover": true}))
            .await;
    let (mut ws, _) = server.v2_client("alice").await;
    let rep = ws.subscribe_v2("feed").await;
    let s = &rep["subscribe"];
    assert_eq!(s["recoverable"], true, "{rep}");
    let epoch = s["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("epoch: {rep}"))
        .to_string();
    for n in 1..=3 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let (mut late, _) = server.v2_client("alice").await;
    let rep = late.subscribe_v2("feed").await;
    assert_eq!(rep["subscribe"]["recoverable"], true, "{rep}");
    assert_eq!(rep["subscribe"]["offset"], 3, "{rep}");
    assert_eq!(rep["subscribe"]["epoch"], json!(epoch), "{rep}");
    let (mut again, _) = server.v2_client("alice").await;
    let rep = again
        .call_v2(
            "subscribe",
            json!({"channel": "feed", "flag": 1, "recover": true, "offset": 1, "epoch": epoch}),
        )
        .await;
    let s = &rep["subscribe"];
    assert_eq!(s["recovered"], true, "{rep}");
    let got: Vec<u64> = s["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![2, 3], "ascending: {rep}");
}

// ---------------------------------------------------------------------------------------------
// join / leave (opt-in in v2, §10.8 item 10)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn join_and_leave_only_reach_subscribers_that_asked() {
    let server = Server::start(json!({"join_leave": true})).await;
    let (mut a, _) = server.v2_client("alice").await;
    let rep = a
        .call_v2(
            "subscribe",
            json!({"channel": "room", "flag": 1, "join_leave": true}),
        )
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    // A may or may not see its own join; drop anything already queued
    while a.push_within(Duration::from_millis(300)).await.is_some() {}
    let (mut b, b_id) = server.v2_client("bob").await;
    assert!(b.subscribe_v2("room").await["subscribe"].is_object());
    let info = json!({"user": "bob", "client": b_id});
    assert_eq!(
        a.push().await,
        json!({"push": {"channel": "room", "join": {"info": info}}})
    );
    let (mut c, _) = server.v2_client("carol").await;
    assert!(c.subscribe_v2("room").await["subscribe"].is_object());
    assert_eq!(a.push().await["push"]["join"]["info"]["user"], "carol");
    b.assert_no_push(Duration::from_millis(400)).await; // bob did not ask for join/leave
    assert!(b.call_v2("unsubscribe", json!({"channel": "room"})).await["unsubscribe"].is_object());
    assert_eq!(
        a.push().await,
        json!({"push": {"channel": "room", "leave": {"info": info}}})
    );
}

#[tokio::test]
async fn join_leave_request_is_ignored_when_channel_option_is_off() {
    let server = Server::start(json!({})).await;
    let (mut a, _) = server.v2_client("alice").await;
    let rep = a
        .call_v2(
            "subscribe",
            json!({"channel": "room", "flag": 1, "join_leave": true}),
        )
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
    let (mut b, _) = server.v2_client("bob").await;
    assert!(b.subscribe_v2("room").await["subscribe"].is_object());
    a.assert_no_push(Duration::from_millis(400)).await;
}

// ---------------------------------------------------------------------------------------------
// server-side subscriptions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn token_channels_claim_subscribes_server_side() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws
        .connect_v2(&jwt(&json!({"sub": "alice", "channels": ["news"]})))
        .await;
    assert!(
        res["subs"].get("news").is_some(),
        "connect result lists the server-side sub: {res}"
    );
    api_publish(&server, "news", json!({"s": 1})).await;
    assert_eq!(
        ws.push().await,
        json!({"push": {"channel": "news", "pub": {"data": {"s": 1}}}})
    );
}

// ---------------------------------------------------------------------------------------------
// generation selection (§10.1)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn query_v1_forces_v1_decoding_of_a_v2_looking_connect() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url_with("cf_protocol_version=v1")).await;
    ws.send(&json!({"id": 1, "connect": {"token": conn_token("alice")}}))
        .await;
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3003, V1_BAD_REQUEST));
}

#[tokio::test]
async fn query_v2_forces_v2_decoding_of_a_v1_looking_connect() {
    let server = Server::start(json!({})).await;
    let mut ws = Ws::open(&server.ws_url_with("cf_protocol_version=v2")).await;
    ws.send(&json!({"id": 1, "params": {"token": conn_token("alice")}}))
        .await;
    expect_close_v2(&mut ws, 3501, "bad request").await;
}

#[tokio::test]
async fn query_matching_the_command_shape_connects() {
    let server = Server::start(json!({})).await;
    let mut v1 = Ws::open(&server.ws_url_with("cf_protocol_version=v1")).await;
    assert!(is_uuid_v4(
        v1.connect_v1(&conn_token("alice")).await["client"]
            .as_str()
            .unwrap()
    ));
    let mut v2 = Ws::open(&server.ws_url_with("cf_protocol_version=v2")).await;
    assert!(is_uuid_v4(
        v2.connect_v2(&conn_token("alice")).await["client"]
            .as_str()
            .unwrap()
    ));
}

#[tokio::test]
async fn unknown_protocol_version_in_query_is_rejected_at_handshake() {
    let server = Server::start(json!({})).await;
    let err = match Ws::try_open(&server.ws_url_with("cf_protocol_version=v3")).await {
        Ok(_) => panic!("handshake with cf_protocol_version=v3 should be refused"),
        Err(e) => e,
    };
    assert!(err.contains("400"), "HTTP 400 expected: {err}");
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn v1_and_v2_subscribers_of_one_channel_each_get_their_own_shape() {
    let server = Server::start(json!({})).await;
    let (mut v1, _) = server.v1_client("alice").await;
    let (mut v2, _) = server.v2_client("bob").await;
    assert_eq!(v1.subscribe_v1("mixed").await["result"], json!({}));
    assert!(v2.subscribe_v2("mixed").await["subscribe"].is_object());
    api_publish(&server, "mixed", json!({"m": 1})).await;
    assert_eq!(
        v1.push().await,
        json!({"result": {"channel": "mixed", "data": {"data": {"m": 1}}}})
    );
    assert_eq!(
        v2.push().await,
        json!({"push": {"channel": "mixed", "pub": {"data": {"m": 1}}}})
    );
}

// ---------------------------------------------------------------------------------------------
// token_audience / token_issuer
// ---------------------------------------------------------------------------------------------

/// Opens a v2 connection and connects with `claims`; returns the socket and the reply (or the
/// close as `{"closed", "reason"}`).
async fn v2_connect_claims(server: &Server, claims: &Value) -> (Ws, Value) {
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.cmd_v2("connect", json!({ "token": jwt(claims) })).await;
    let rep = match ws.next_event_within(WAIT).await {
        Some(Event::Value(v)) => v,
        Some(Event::Closed(c, r)) => json!({"closed": c, "reason": r}),
        None => panic!("no answer to connect"),
    };
    (ws, rep)
}

#[tokio::test]
async fn token_audience_refuses_other_or_missing_aud_like_a_bad_signature() {
    let server = Server::start(json!({"token_audience": "rotor"})).await;
    for claims in [
        json!({"sub": "alice", "aud": "other"}),
        json!({"sub": "alice", "aud": ["other", "x"]}),
        json!({"sub": "alice"}),
    ] {
        let (_ws, rep) = v2_connect_claims(&server, &claims).await;
        assert_eq!(
            rep,
            json!({"closed": 3500, "reason": "invalid token"}),
            "{claims}"
        );
    }
    for claims in [
        json!({"sub": "alice", "aud": "rotor"}),
        json!({"sub": "alice", "aud": ["other", "rotor"]}),
    ] {
        let (_ws, rep) = v2_connect_claims(&server, &claims).await;
        assert_eq!(
            rep["connect"]["client"].as_str().map(is_uuid_v4),
            Some(true),
            "{rep}"
        );
    }
}

#[tokio::test]
async fn token_issuer_refuses_other_or_missing_iss() {
    let server = Server::start(json!({"token_issuer": "https://app.example"})).await;
    for claims in [
        json!({"sub": "alice", "iss": "https://evil.example"}),
        json!({"sub": "alice"}),
    ] {
        let (_ws, rep) = v2_connect_claims(&server, &claims).await;
        assert_eq!(
            rep,
            json!({"closed": 3500, "reason": "invalid token"}),
            "{claims}"
        );
    }
    let (_ws, rep) = v2_connect_claims(
        &server,
        &json!({"sub": "alice", "iss": "https://app.example"}),
    )
    .await;
    assert!(rep["connect"].is_object(), "{rep}");
}

#[tokio::test]
async fn token_audience_applies_to_subscription_tokens_like_a_bad_signature() {
    let server = Server::start(json!({"token_audience": "rotor"})).await;
    let (mut ws, rep) = v2_connect_claims(&server, &json!({"sub": "alice", "aud": "rotor"})).await;
    assert!(rep["connect"].is_object(), "{rep}");
    let bad = jwt(&json!({"sub": "alice", "channel": "$g", "aud": "other"}));
    let rep = ws
        .call_v2("subscribe", json!({"channel": "$g", "token": bad}))
        .await;
    // The same answer as for a badly signed subscription token.
    assert_eq!(rep, error_reply(2, 103, "permission denied"));
    let missing = jwt(&json!({"sub": "alice", "channel": "$g"}));
    let rep = ws
        .call_v2("subscribe", json!({"channel": "$g", "token": missing}))
        .await;
    assert_eq!(rep, error_reply(3, 103, "permission denied"));
    ws.assert_open_for(Duration::from_millis(300)).await;
    let good = jwt(&json!({"sub": "alice", "channel": "$g", "aud": ["rotor"]}));
    let rep = ws
        .call_v2("subscribe", json!({"channel": "$g", "token": good}))
        .await;
    assert!(rep["subscribe"].is_object(), "{rep}");
}
