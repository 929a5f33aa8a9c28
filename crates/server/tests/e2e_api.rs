//! End-to-end tests of the server HTTP API: the 2.x endpoint `POST /api` with
//! `{"method":..,"params":..}` commands and newline-separated replies (PROTOCOL.md §8.1), and the
//! current per-method endpoint `POST /api/<method>` (§8.2, §10.8 items 11–12). Effects are
//! checked on real WebSocket clients of both generations.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn api_error(code: u64, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

fn sorted_strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("array expected: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// /api (2.x shapes)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn api_publish_returns_empty_reply_and_delivers_without_info() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("news").await["result"], json!({}));
    let r = api_v1_raw(
        &server,
        r#"{"method":"publish","params":{"channel":"news","data":{"text":"hi"}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.lines(), vec![json!({})]);
    assert!(
        r.body.ends_with('\n'),
        "each reply is followed by \\n: {:?}",
        r.body
    );
    assert!(
        r.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("application/json"),
        "JSON request → JSON response: {r:?}"
    );
    assert_eq!(
        ws.push().await,
        json!({"result": {"channel": "news", "data": {"data": {"text": "hi"}}}})
    );
}

#[tokio::test]
async fn api_publication_data_is_passed_through_byte_for_byte() {
    // `data` is embedded raw: key order, number spelling and big integers survive untouched.
    let server = Server::start(json!({})).await;
    let (mut v1, _) = server.v1_client("alice").await;
    let (mut v2, _) = server.v2_client("bob").await;
    assert_eq!(v1.subscribe_v1("raw").await["result"], json!({}));
    assert!(v2.subscribe_v2("raw").await["subscribe"].is_object());
    let data = r#"{"z":1,"a":[1.50,2e3,-0],"big":123456789012345678901234567890,"s":"\u00e9\n"}"#;
    let body = format!(r#"{{"method":"publish","params":{{"channel":"raw","data":{data}}}}}"#);
    assert_eq!(api_v1_raw(&server, &body).await.lines(), vec![json!({})]);
    v1.push().await;
    v2.push().await;
    assert!(
        v1.frames.iter().any(|f| f.contains(data)),
        "v1 frame embeds data verbatim: {:?}",
        v1.frames
    );
    assert!(
        v2.frames.iter().any(|f| f.contains(data)),
        "v2 frame embeds data verbatim: {:?}",
        v2.frames
    );
}

#[tokio::test]
async fn api_echoes_non_zero_command_id() {
    let server = Server::start(json!({})).await;
    let r = api_v1_raw(
        &server,
        r#"{"id":7,"method":"publish","params":{"channel":"news","data":{}}}"#,
    )
    .await;
    assert_eq!(r.lines(), vec![json!({"id": 7})]);
}

#[tokio::test]
async fn api_method_may_be_a_number_or_a_name_in_any_case() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("news").await["result"], json!({}));
    for body in [
        r#"{"method":0,"params":{"channel":"news","data":1}}"#,
        r#"{"method":"PUBLISH","params":{"channel":"news","data":2}}"#,
        r#"{"method":"Publish","params":{"channel":"news","data":3}}"#,
    ] {
        let r = api_v1_raw(&server, body).await;
        assert_eq!((r.status, r.lines()), (200, vec![json!({})]), "{body}");
    }
    for n in 1..=3 {
        assert_eq!(ws.push().await["result"]["data"]["data"], n);
    }
}

#[tokio::test]
async fn api_publish_with_missing_channel_or_data_gets_107() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "publish", json!({"data": {}})).await,
        vec![api_error(107, "bad request")]
    );
    assert_eq!(
        api_v1(&server, "publish", json!({"channel": "news"})).await,
        vec![api_error(107, "bad request")]
    );
}

#[tokio::test]
async fn api_publish_to_unknown_namespace_gets_102_namespace_not_found() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "publish", json!({"channel": "nope:x", "data": {}})).await,
        vec![api_error(102, "namespace not found")]
    );
}

#[tokio::test]
async fn api_broadcast_delivers_to_every_channel() {
    let server = Server::start(json!({})).await;
    let (mut a, _) = server.v1_client("alice").await;
    let (mut b, _) = server.v2_client("bob").await;
    assert_eq!(a.subscribe_v1("one").await["result"], json!({}));
    assert!(b.subscribe_v2("two").await["subscribe"].is_object());
    assert_eq!(
        api_v1(
            &server,
            "broadcast",
            json!({"channels": ["one", "two"], "data": {"b": 1}})
        )
        .await,
        vec![json!({})]
    );
    assert_eq!(
        a.push().await,
        json!({"result": {"channel": "one", "data": {"data": {"b": 1}}}})
    );
    assert_eq!(
        b.push().await,
        json!({"push": {"channel": "two", "pub": {"data": {"b": 1}}}})
    );
}

#[tokio::test]
async fn api_broadcast_with_no_channels_gets_107() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "broadcast", json!({"channels": [], "data": {}})).await,
        vec![api_error(107, "bad request")]
    );
}

#[tokio::test]
async fn api_unsubscribe_sends_unsub_push_and_stops_delivery() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    let (mut other, _) = server.v1_client("bob").await;
    assert_eq!(ws.subscribe_v1("news").await["result"], json!({}));
    assert_eq!(other.subscribe_v1("news").await["result"], json!({}));
    assert_eq!(
        api_v1(
            &server,
            "unsubscribe",
            json!({"user": "alice", "channel": "news"})
        )
        .await,
        vec![json!({})]
    );
    assert_eq!(
        ws.push().await,
        json!({"result": {"type": 3, "channel": "news", "data": {}}})
    );
    api_publish(&server, "news", json!({"after": true})).await;
    ws.assert_no_push(Duration::from_millis(400)).await;
    assert_eq!(
        other.push().await["result"]["data"]["data"],
        json!({"after": true}),
        "bob stays subscribed"
    );
}

#[tokio::test]
async fn api_unsubscribe_sends_unsubscribe_push_2000_to_v2_client() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("news").await["subscribe"].is_object());
    assert_eq!(
        api_v1(
            &server,
            "unsubscribe",
            json!({"user": "alice", "channel": "news"})
        )
        .await,
        vec![json!({})]
    );
    let push = ws.push().await;
    assert_eq!(push["push"]["channel"], "news", "{push}");
    assert_eq!(
        push["push"]["unsubscribe"]["code"], 2000,
        "server unsubscribe: {push}"
    );
    ws.assert_open_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn api_unsubscribe_without_user_gets_107() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "unsubscribe", json!({"channel": "news"})).await,
        vec![api_error(107, "bad request")]
    );
}

#[tokio::test]
async fn api_disconnect_closes_every_v1_connection_of_the_user_3012() {
    let server = Server::start(json!({})).await;
    let (mut a1, _) = server.v1_client("alice").await;
    let (mut a2, _) = server.v1_client("alice").await;
    let (mut bob, _) = server.v1_client("bob").await;
    assert_eq!(
        api_v1(&server, "disconnect", json!({"user": "alice"})).await,
        vec![json!({})]
    );
    for ws in [&mut a1, &mut a2] {
        let (c, r) = ws.expect_close().await;
        assert_eq!((c, r.as_str()), (3012, V1_FORCE_DISCONNECT));
    }
    bob.assert_open_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn api_disconnect_closes_v2_client_3503_force_disconnect() {
    let server = Server::start(json!({})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert_eq!(
        api_v1(&server, "disconnect", json!({"user": "alice"})).await,
        vec![json!({})]
    );
    let (c, r) = ws.expect_close().await;
    assert_eq!((c, r.as_str()), (3503, "force disconnect"));
}

#[tokio::test]
async fn api_disconnect_without_user_gets_107() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "disconnect", json!({})).await,
        vec![api_error(107, "bad request")]
    );
}

#[tokio::test]
async fn api_presence_and_presence_stats() {
    let server = Server::start(json!({"presence": true})).await;
    let mut a = Ws::open(&server.ws_url()).await;
    let a_id = a
        .connect_v1(&jwt(&json!({"sub": "alice", "info": {"n": "A"}})))
        .await["client"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut a2, a2_id) = server.v2_client("alice").await;
    assert_eq!(a.subscribe_v1("room").await["result"], json!({}));
    assert!(a2.subscribe_v2("room").await["subscribe"].is_object());
    assert_eq!(
        api_v1(&server, "presence", json!({"channel": "room"})).await,
        vec![json!({"result": {"presence": {
            a_id.clone(): {"user": "alice", "client": a_id, "conn_info": {"n": "A"}},
            a2_id.clone(): {"user": "alice", "client": a2_id},
        }}})]
    );
    assert_eq!(
        api_v1(&server, "presence_stats", json!({"channel": "room"})).await,
        vec![json!({"result": {"num_clients": 2, "num_users": 1}})]
    );
    assert_eq!(
        api_v1(&server, "presence", json!({"channel": "empty"})).await,
        vec![json!({"result": {"presence": {}}})]
    );
    assert_eq!(
        api_v1(&server, "presence_stats", json!({"channel": "empty"})).await,
        vec![json!({"result": {"num_clients": 0, "num_users": 0}})]
    );
}

#[tokio::test]
async fn api_presence_when_disabled_gets_108() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "presence", json!({"channel": "room"})).await,
        vec![api_error(108, "not available")]
    );
    assert_eq!(
        api_v1(&server, "presence_stats", json!({"channel": "room"})).await,
        vec![api_error(108, "not available")]
    );
}

#[tokio::test]
async fn api_history_returns_publications_oldest_first() {
    let server =
        Server::start(json!({"history_size": 10, "history_lifetime": 60, "publish": true})).await;
    for n in 1..=2 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let (mut ws, client) = server.v1_client("alice").await;
    assert_eq!(
        ws.call_v1(3, json!({"channel": "feed", "data": {"n": 3}}))
            .await["result"],
        json!({})
    );
    let lines = api_v1(&server, "history", json!({"channel": "feed"})).await;
    assert_eq!(
        lines,
        vec![json!({"result": {"publications": [
            {"data": {"n": 1}},
            {"data": {"n": 2}},
            {"data": {"n": 3}, "info": {"user": "alice", "client": client}},
        ]}})],
        "2.x API publications have only uid/data/info"
    );
}

#[tokio::test]
async fn api_history_when_disabled_gets_108() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "history", json!({"channel": "feed"})).await,
        vec![api_error(108, "not available")]
    );
    assert_eq!(
        api_v1(&server, "history_remove", json!({"channel": "feed"})).await,
        vec![api_error(108, "not available")]
    );
}

#[tokio::test]
async fn api_history_remove_empties_history() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    api_publish(&server, "feed", json!({"n": 1})).await;
    assert_eq!(
        api_v1(&server, "history_remove", json!({"channel": "feed"})).await,
        vec![json!({})]
    );
    assert_eq!(
        api_v1(&server, "history", json!({"channel": "feed"})).await,
        vec![json!({"result": {"publications": []}})]
    );
}

#[tokio::test]
async fn api_channels_lists_active_channels() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "channels", json!({})).await,
        vec![json!({"result": {"channels": []}})]
    );
    let (mut a, _) = server.v1_client("alice").await;
    let (mut b, _) = server.v2_client("bob").await;
    assert_eq!(a.subscribe_v1("one").await["result"], json!({}));
    assert!(b.subscribe_v2("two").await["subscribe"].is_object());
    assert!(b.subscribe_v2("one").await["subscribe"].is_object());
    let lines = api_v1(&server, "channels", json!({})).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(
        sorted_strings(&lines[0]["result"]["channels"]),
        ["one", "two"]
    );
}

#[tokio::test]
async fn api_info_reports_this_node() {
    let server = Server::start(json!({})).await;
    let (mut a, _) = server.v1_client("alice").await;
    let (mut b, _) = server.v2_client("alice").await;
    assert_eq!(a.subscribe_v1("one").await["result"], json!({}));
    assert!(b.subscribe_v2("one").await["subscribe"].is_object());
    let lines = api_v1(&server, "info", json!({})).await;
    let nodes = lines[0]["result"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(nodes.len(), 1, "{lines:?}");
    let n = &nodes[0];
    for key in [
        "uid",
        "name",
        "version",
        "num_clients",
        "num_users",
        "num_channels",
        "uptime",
    ] {
        assert!(n.get(key).is_some(), "node info has {key}: {n}");
    }
    assert_eq!(n["num_clients"], 2, "{n}");
    assert_eq!(n["num_users"], 1, "{n}");
    assert_eq!(n["num_channels"], 1, "{n}");
}

#[tokio::test]
async fn api_newline_separated_batch_gets_newline_separated_results() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut ws, _) = server.v1_client("alice").await;
    assert_eq!(ws.subscribe_v1("room").await["result"], json!({}));
    let body = [
        r#"{"method":"publish","params":{"channel":"room","data":{"x":1}}}"#,
        r#"{"method":"presence_stats","params":{"channel":"room"}}"#,
        r#"{"method":"nosuchmethod","params":{}}"#,
        r#"{"id":4,"method":"publish","params":{"channel":"nope:room","data":{}}}"#,
    ]
    .join("\n");
    let r = api_v1_raw(&server, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.lines(),
        vec![
            json!({}),
            json!({"result": {"num_clients": 1, "num_users": 1}}),
            api_error(104, "method not found"),
            json!({"id": 4, "error": {"code": 102, "message": "namespace not found"}}),
        ]
    );
    assert_eq!(
        r.body.matches('\n').count(),
        4,
        "one line per command: {:?}",
        r.body
    );
    assert_eq!(ws.push().await["result"]["data"]["data"], json!({"x": 1}));
}

#[tokio::test]
async fn api_unknown_method_gets_104() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "nosuchmethod", json!({})).await,
        vec![api_error(104, "method not found")]
    );
}

#[tokio::test]
async fn api_rpc_without_extensions_gets_104() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v1(&server, "rpc", json!({"method": "x", "params": {}})).await,
        vec![api_error(104, "method not found")]
    );
}

#[tokio::test]
async fn api_wrong_or_missing_key_gets_401_with_empty_body() {
    let server = Server::start(json!({})).await;
    let url = server.http_url("/api");
    let body = r#"{"method":"channels","params":{}}"#;
    for headers in [
        vec![("Authorization", "apikey wrong")],
        vec![],
        vec![("Authorization", "bearer api")],
    ] {
        let r = post(&url, &headers, body).await;
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
        assert_eq!(r.body, "", "{headers:?}");
    }
    let r = post(&server.http_url("/api?api_key=wrong"), &[], body).await;
    assert_eq!((r.status, r.body.as_str()), (401, ""));
}

#[tokio::test]
async fn api_accepts_key_in_query_x_api_key_header_and_any_scheme_case() {
    let server = Server::start(json!({})).await;
    let body = r#"{"method":"channels","params":{}}"#;
    let ok = json!({"result": {"channels": []}});
    let r = post(&server.http_url("/api?api_key=api"), &[], body).await;
    assert_eq!(
        (r.status, r.lines()),
        (200, vec![ok.clone()]),
        "query api_key"
    );
    let r = post(&server.http_url("/api"), &[("X-API-Key", "api")], body).await;
    assert_eq!(
        (r.status, r.lines()),
        (200, vec![ok.clone()]),
        "X-API-Key on /api"
    );
    let r = post(
        &server.http_url("/api"),
        &[("Authorization", "APIKEY api")],
        body,
    )
    .await;
    assert_eq!(
        (r.status, r.lines()),
        (200, vec![ok]),
        "scheme is case-insensitive"
    );
}

#[tokio::test]
async fn api_insecure_accepts_requests_without_key() {
    let server = Server::start(json!({"api_insecure": true})).await;
    let body = r#"{"method":"channels","params":{}}"#;
    let r = post(&server.http_url("/api"), &[], body).await;
    assert_eq!(
        (r.status, r.lines()),
        (200, vec![json!({"result": {"channels": []}})])
    );
    let r = post(&server.http_url("/api/channels"), &[], "{}").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"result": {"channels": {}}}))
    );
}

#[tokio::test]
async fn api_without_configured_key_refuses_everything() {
    let server = Server::start(json!({"api_key": ""})).await;
    let body = r#"{"method":"channels","params":{}}"#;
    for headers in [
        vec![("Authorization", "apikey ")],
        vec![("X-API-Key", "")],
        vec![],
    ] {
        let r = post(&server.http_url("/api"), &headers, body).await;
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
    }
}

#[tokio::test]
async fn api_malformed_body_gets_400_with_json_error() {
    let server = Server::start(json!({})).await;
    let r = api_v1_raw(&server, r#"{"method":"publish","params":"#).await;
    assert_eq!(r.status, 400, "{r:?}");
    let v = r.json();
    assert!(v.get("error").is_some(), "a JSON error: {v}");
    server.assert_serves_fresh_client().await;
}

#[tokio::test]
async fn api_empty_body_gets_400() {
    let server = Server::start(json!({})).await;
    let r = api_v1_raw(&server, "").await;
    assert_eq!(r.status, 400, "{r:?}");
}

#[tokio::test]
async fn api_get_is_405() {
    let server = Server::start(json!({})).await;
    let resp = http()
        .get(server.http_url("/api"))
        .header("Authorization", "apikey api")
        .send()
        .await
        .expect("GET /api");
    assert_eq!(resp.status().as_u16(), 405);
}

// ---------------------------------------------------------------------------------------------
// /api/<method> (current shapes)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn api_method_publish_returns_result_and_delivers() {
    let server = Server::start(json!({})).await;
    let (mut v1, _) = server.v1_client("alice").await;
    let (mut v2, _) = server.v2_client("bob").await;
    assert_eq!(v1.subscribe_v1("news").await["result"], json!({}));
    assert!(v2.subscribe_v2("news").await["subscribe"].is_object());
    assert_eq!(
        api_v2(
            &server,
            "publish",
            json!({"channel": "news", "data": {"n": 1}})
        )
        .await,
        json!({"result": {}})
    );
    assert_eq!(
        v1.push().await,
        json!({"result": {"channel": "news", "data": {"data": {"n": 1}}}})
    );
    assert_eq!(
        v2.push().await,
        json!({"push": {"channel": "news", "pub": {"data": {"n": 1}}}})
    );
}

#[tokio::test]
async fn api_method_publish_with_history_returns_offset_and_epoch() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let r1 = api_v2(&server, "publish", json!({"channel": "feed", "data": 1})).await;
    let r2 = api_v2(&server, "publish", json!({"channel": "feed", "data": 2})).await;
    assert_eq!(r1["result"]["offset"], 1, "{r1}");
    assert_eq!(r2["result"]["offset"], 2, "{r2}");
    let epoch = r1["result"]["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("epoch: {r1}"));
    assert!(!epoch.is_empty());
    assert_eq!(r2["result"]["epoch"], r1["result"]["epoch"]);
}

#[tokio::test]
async fn api_method_errors_have_current_shapes() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v2(&server, "publish", json!({"data": {}})).await,
        api_error(107, "bad request")
    );
    assert_eq!(
        api_v2(&server, "publish", json!({"channel": "nope:x", "data": {}})).await,
        api_error(102, "unknown channel")
    );
    assert_eq!(
        api_v2(&server, "presence", json!({"channel": "x"})).await,
        api_error(108, "not available")
    );
}

#[tokio::test]
async fn api_method_broadcast_returns_responses_array() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("b").await["subscribe"].is_object());
    let r = api_v2(
        &server,
        "broadcast",
        json!({"channels": ["a", "b"], "data": {"x": 1}}),
    )
    .await;
    let responses = r["result"]["responses"]
        .as_array()
        .unwrap_or_else(|| panic!("responses: {r}"));
    assert_eq!(responses.len(), 2, "{r}");
    for resp in responses {
        assert!(resp["result"].is_object(), "{r}");
        assert_eq!(resp["result"]["offset"], 1, "{r}");
    }
    assert_eq!(ws.push().await["push"]["pub"]["data"], json!({"x": 1}));
}

#[tokio::test]
async fn api_method_channels_is_a_map_with_num_clients() {
    let server = Server::start(json!({})).await;
    assert_eq!(
        api_v2(&server, "channels", json!({})).await,
        json!({"result": {"channels": {}}})
    );
    let (mut a, _) = server.v1_client("alice").await;
    let (mut b, _) = server.v2_client("bob").await;
    assert_eq!(a.subscribe_v1("one").await["result"], json!({}));
    assert!(b.subscribe_v2("one").await["subscribe"].is_object());
    assert!(b.subscribe_v2("two").await["subscribe"].is_object());
    assert_eq!(
        api_v2(&server, "channels", json!({})).await,
        json!({"result": {"channels": {"one": {"num_clients": 2}, "two": {"num_clients": 1}}}})
    );
}

#[tokio::test]
async fn api_method_info_has_nodes() {
    let server = Server::start(json!({})).await;
    let (_ws, _) = server.v2_client("alice").await;
    let r = api_v2(&server, "info", json!({})).await;
    let nodes = r["result"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("nodes: {r}"));
    assert_eq!(nodes.len(), 1, "{r}");
    assert!(
        nodes[0]["uid"].is_string()
            && nodes[0]["name"].is_string()
            && nodes[0]["version"].is_string(),
        "{r}"
    );
    assert_eq!(nodes[0]["num_clients"], 1, "{r}");
}

#[tokio::test]
async fn api_method_presence_presence_stats_and_history() {
    let server =
        Server::start(json!({"presence": true, "history_size": 10, "history_lifetime": 60})).await;
    let (mut ws, client) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("room").await["subscribe"].is_object());
    assert_eq!(
        api_v2(&server, "presence", json!({"channel": "room"})).await,
        json!({"result": {"presence": {client.clone(): {"user": "alice", "client": client}}}})
    );
    assert_eq!(
        api_v2(&server, "presence", json!({"channel": "empty"})).await,
        json!({"result": {"presence": {}}})
    );
    assert_eq!(
        api_v2(&server, "presence_stats", json!({"channel": "room"})).await,
        json!({"result": {"num_clients": 1, "num_users": 1}})
    );
    for n in 1..=3 {
        api_v2(
            &server,
            "publish",
            json!({"channel": "room", "data": {"n": n}}),
        )
        .await;
    }
    let h = api_v2(&server, "history", json!({"channel": "room", "limit": -1})).await;
    let pubs = h["result"]["publications"]
        .as_array()
        .unwrap_or_else(|| panic!("{h}"));
    let got: Vec<(Value, Value)> = pubs
        .iter()
        .map(|p| (p["data"].clone(), p["offset"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!({"n": 1}), json!(1)),
            (json!({"n": 2}), json!(2)),
            (json!({"n": 3}), json!(3))
        ],
        "{h}"
    );
    assert_eq!(h["result"]["offset"], 3, "{h}");
    assert!(h["result"]["epoch"].is_string(), "{h}");
    assert_eq!(
        api_v2(&server, "history_remove", json!({"channel": "room"})).await,
        json!({"result": {}})
    );
    let h = api_v2(&server, "history", json!({"channel": "room", "limit": -1})).await;
    assert!(
        h["result"].get("publications").is_none() || h["result"]["publications"] == json!([]),
        "history removed: {h}"
    );
}

#[tokio::test]
async fn api_method_unsubscribe_and_disconnect() {
    let server = Server::start(json!({})).await;
    let (mut v1, _) = server.v1_client("alice").await;
    let (mut v2, _) = server.v2_client("alice").await;
    assert_eq!(v1.subscribe_v1("room").await["result"], json!({}));
    assert!(v2.subscribe_v2("room").await["subscribe"].is_object());
    assert_eq!(
        api_v2(
            &server,
            "unsubscribe",
            json!({"user": "alice", "channel": "room"})
        )
        .await,
        json!({"result": {}})
    );
    assert_eq!(
        v1.push().await,
        json!({"result": {"type": 3, "channel": "room", "data": {}}})
    );
    assert_eq!(v2.push().await["push"]["unsubscribe"]["code"], 2000);
    assert_eq!(
        api_v2(&server, "disconnect", json!({"user": "alice"})).await,
        json!({"result": {}})
    );
    let (c, r) = v1.expect_close().await;
    assert_eq!((c, r.as_str()), (3012, V1_FORCE_DISCONNECT));
    let (c, r) = v2.expect_close().await;
    assert_eq!((c, r.as_str()), (3503, "force disconnect"));
}

#[tokio::test]
async fn api_method_unknown_is_404() {
    let server = Server::start(json!({})).await;
    let r = api_v2_raw(&server, "nosuchmethod", "{}").await;
    assert_eq!(r.status, 404, "{r:?}");
}

#[tokio::test]
async fn api_method_auth_accepts_x_api_key_authorization_and_query() {
    let server = Server::start(json!({})).await;
    let url = server.http_url("/api/channels");
    let ok = json!({"result": {"channels": {}}});
    let r = post(&url, &[("X-API-Key", "api")], "{}").await;
    assert_eq!((r.status, r.json()), (200, ok.clone()));
    let r = post(&url, &[("Authorization", "apikey api")], "{}").await;
    assert_eq!(
        (r.status, r.json()),
        (200, ok.clone()),
        "Authorization: apikey on /api/<method>"
    );
    let r = post(&server.http_url("/api/channels?api_key=api"), &[], "{}").await;
    assert_eq!((r.status, r.json()), (200, ok));
    for headers in [vec![("X-API-Key", "wrong")], vec![]] {
        let r = post(&url, &headers, "{}").await;
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
    }
}

#[tokio::test]
async fn api_method_malformed_body_gets_400() {
    let server = Server::start(json!({})).await;
    let r = api_v2_raw(&server, "publish", r#"{"channel":"#).await;
    assert_eq!(r.status, 400, "{r:?}");
    // GRPC-API.md §3.3: plain text, as Go's http.Error writes it.
    assert_eq!(r.body.trim(), "Bad Request", "{r:?}");
}
