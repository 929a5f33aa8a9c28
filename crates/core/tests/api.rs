//! The server API's effect on connections, as clients see it: a real in-process node, sessions
//! connected with tokens over both protocol generations, and the pushes and close frames they
//! receive after `subscribe`, `unsubscribe`, `disconnect` and `refresh` in the rules of each API
//! generation; plus the checks and answers of `history`, `channels` and `info`.

use std::time::Duration;

use bytes::Bytes;
use rotor_core::api::{ApiError, ApiGeneration, ApiProtocol, ApiResult};
use rotor_core::auth::sign_hs256;
use rotor_core::transport::UNI_SSE;
use rotor_core::writer::{CloseFrame, WriterStep};
use rotor_core::{ChannelOptions, Namespace, Node, NodeConfig, Session};
use rotor_protocol::api::{
    decode_api_params, ApiCommand, ChannelsParams, DisconnectParams, HistoryParams, RefreshParams,
    SubscribeParams, UnsubscribeParams,
};
use rotor_protocol::{ConnectRequest, Encoding, Generation};
use serde_json::{json, Value};

const V1: ApiGeneration = ApiGeneration::V1;
const V2: ApiGeneration = ApiGeneration::V2;

fn config() -> NodeConfig {
    NodeConfig {
        token_hmac_secret_key: "secret".into(),
        client_presence_ping_interval: Duration::from_millis(500),
        client_expired_sub_close_delay: Duration::ZERO,
        channel_options: ChannelOptions {
            publish: true,
            ..Default::default()
        },
        namespaces: vec![
            Namespace {
                name: "chat".into(),
                options: ChannelOptions {
                    presence: true,
                    join_leave: true,
                    ..Default::default()
                },
            },
            Namespace {
                name: "pos".into(),
                options: ChannelOptions {
                    history_size: 10,
                    history_lifetime: 300,
                    ..Default::default()
                },
            },
            Namespace {
                name: "hist".into(),
                options: ChannelOptions {
                    history_size: 10,
                    history_lifetime: 300,
                    history_recover: true,
                    ..Default::default()
                },
            },
        ],
        ..Default::default()
    }
}

fn node() -> Node {
    let node = Node::new(config()).expect("valid config");
    node.start();
    node
}

fn token(user: &str) -> String {
    sign_hs256("secret", &json!({ "sub": user }).to_string())
}

/// Everything queued within 100 ms: JSON lines, and the close frame if one came.
async fn drain(s: &Session) -> (Vec<Value>, Option<Option<CloseFrame>>) {
    drain_for(s, Duration::from_millis(100)).await
}

async fn drain_for(s: &Session, wait: Duration) -> (Vec<Value>, Option<Option<CloseFrame>>) {
    let mut lines = Vec::new();
    loop {
        let mut out = Vec::new();
        let step = tokio::time::timeout(wait, s.shared().queue.next(&mut out));
        let Ok(step) = step.await else {
            return (lines, None);
        };
        for m in &out {
            for l in m.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_slice(l).expect("JSON line"));
            }
        }
        if let WriterStep::Close(f) = step {
            return (lines, Some(f));
        }
    }
}

/// A connected JSON session of `user` in generation `g` (connect reply drained).
async fn connect(node: &Node, g: Generation, user: &str) -> Session {
    let mut s = node.new_session(Some(g), Encoding::Json);
    let frame = match g {
        Generation::V1 => json!({"id": 1, "params": {"token": token(user)}}),
        Generation::V2 => json!({"id": 1, "connect": {"token": token(user)}}),
    };
    assert!(s.handle_frame(frame.to_string().as_bytes()).await);
    let (lines, close) = drain(&s).await;
    assert!(close.is_none() && lines.len() == 1, "{lines:?}");
    s
}

async fn call(node: &Node, g: ApiGeneration, cmd: ApiCommand) -> Result<ApiResult, ApiError> {
    node.api_execute(g, ApiProtocol::Http, cmd).await
}

/// A command from its JSON params, as the HTTP API decodes it.
fn cmd(method: &str, params: Value) -> ApiCommand {
    decode_api_params(method, params.to_string().as_bytes())
        .expect("decodes")
        .expect("a method")
}

fn subscribe(params: Value) -> ApiCommand {
    cmd("subscribe", params)
}

fn close_of(close: Option<Option<CloseFrame>>) -> (u16, String) {
    let f = close.expect("closed").expect("with a close frame");
    (f.code, f.reason)
}

#[tokio::test]
async fn subscribe_pushes_to_every_connection_of_the_user_in_its_generation() {
    let node = node();
    let a = connect(&node, Generation::V2, "42").await;
    let b = connect(&node, Generation::V1, "42").await;
    let other = connect(&node, Generation::V2, "7").await;
    let r = call(
        &node,
        V2,
        subscribe(json!({"channel": "chat:r", "user": "42", "data": {"x": 1}})),
    )
    .await;
    assert_eq!(r, Ok(ApiResult::Subscribe));
    let (lines, _) = drain(&a).await;
    assert_eq!(
        lines,
        vec![json!({"push": {"channel": "chat:r", "subscribe": {"data": {"x": 1}}}})]
    );
    // v1 clients get join pushes where the channel emits them (their own join included).
    let (lines, _) = drain(&b).await;
    assert_eq!(
        lines[0],
        json!({"result": {"type": 5, "channel": "chat:r", "data": {}}})
    );
    assert_eq!(lines[1]["result"]["type"], 1, "{lines:?}");
    assert!(drain(&other).await.0.is_empty());
    // Both now receive the channel's publications.
    node.api_publish_data("chat:r", Bytes::from_static(b"{\"n\":1}"))
        .await
        .expect("published");
    let (lines, _) = drain(&a).await;
    assert_eq!(
        lines[0]["push"]["pub"]["data"],
        json!({"n": 1}),
        "{lines:?}"
    );
    let (lines, _) = drain(&b).await;
    assert_eq!(
        lines[0]["result"]["data"]["data"],
        json!({"n": 1}),
        "{lines:?}"
    );
    // A second subscribe to the same channel pushes nothing.
    call(
        &node,
        V2,
        subscribe(json!({"channel": "chat:r", "user": "42"})),
    )
    .await
    .expect("ok");
    assert!(drain(&a).await.0.is_empty());
}

#[tokio::test]
async fn subscribe_checks_channel_and_base64_and_reaches_anonymous_connections() {
    let node = node();
    let anon = connect(&node, Generation::V2, "").await;
    let bad = [
        (json!({"channel": "", "user": "42"}), 107),
        (json!({"channel": "nope:x", "user": "42"}), 102),
        (json!({"channel": "chat:r", "b64data": "%%"}), 107),
        (json!({"channel": "chat:r", "b64info": "%%"}), 107),
    ];
    for (params, code) in bad {
        let r = call(&node, V2, subscribe(params.clone())).await;
        assert_eq!(r.err().map(|e| e.code), Some(code), "{params}");
    }
    assert!(
        drain(&anon).await.0.is_empty(),
        "a failed call pushes nothing"
    );
    // No user = the anonymous connections; b64data reaches the client decoded.
    let data = "eyJrIjoyfQ=="; // {"k":2}
    call(
        &node,
        V2,
        subscribe(json!({"channel": "chat:r", "b64data": data})),
    )
    .await
    .expect("ok");
    let (lines, _) = drain(&anon).await;
    assert_eq!(
        lines[0]["push"]["subscribe"]["data"],
        json!({"k": 2}),
        "{lines:?}"
    );
}

#[tokio::test]
async fn subscribe_filters_by_client_and_session() {
    let node = node();
    let a = connect(&node, Generation::V2, "42").await;
    let b = connect(&node, Generation::V2, "42").await;
    let mut sse = node.new_session_on(&UNI_SSE, Some(Generation::V2), Encoding::Json);
    let req = ConnectRequest {
        token: token("42"),
        ..Default::default()
    };
    assert!(sse.connect_unidirectional(req).await.is_ok());
    drain(&sse).await;
    let session = sse.shared().session_id().expect("a session").to_string();

    let params = json!({"channel": "chat:1", "user": "42", "client": b.shared().id()});
    call(&node, V2, subscribe(params)).await.expect("ok");
    assert!(drain(&a).await.0.is_empty());
    assert_eq!(drain(&b).await.0.len(), 1);
    assert!(drain(&sse).await.0.is_empty());

    // A session filter matches the unidirectional connection only (WebSocket has none).
    let params = json!({"channel": "chat:2", "user": "42", "session": session});
    call(&node, V2, subscribe(params)).await.expect("ok");
    assert!(drain(&a).await.0.is_empty());
    assert!(drain(&b).await.0.is_empty());
    let (lines, _) = drain(&sse).await;
    assert_eq!(lines[0]["push"]["channel"], "chat:2", "{lines:?}");
    assert_eq!(sse.shared().channels(), vec!["chat:2".to_string()]);
}

#[tokio::test]
async fn subscribe_override_and_info_apply_to_that_subscription_only() {
    let node = node();
    let a = connect(&node, Generation::V2, "42").await;
    let b = connect(&node, Generation::V2, "7").await;
    let no_presence = json!({"channel": "chat:r", "user": "42",
        "override": {"presence": {"value": false}}});
    call(&node, V2, subscribe(no_presence)).await.expect("ok");
    let with_info = json!({"channel": "chat:r", "user": "7", "info": {"role": "mod"}});
    call(&node, V2, subscribe(with_info)).await.expect("ok");
    drain(&a).await;
    drain(&b).await;
    let presence = call(&node, V2, cmd("presence", json!({"channel": "chat:r"})))
        .await
        .expect("presence");
    let ApiResult::Presence(list) = presence else {
        panic!("{presence:?}");
    };
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].user, "7");
    assert_eq!(
        list[0].chan_info.as_deref(),
        Some(&b"{\"role\":\"mod\"}"[..])
    );
    // force_recovery on a channel with history makes the subscription recoverable.
    let params = json!({"channel": "news", "user": "42",
        "override": {"force_recovery": {"value": true}}});
    call(&node, V2, subscribe(params)).await.expect("ok");
    let (lines, _) = drain(&a).await;
    assert!(
        lines[0]["push"]["subscribe"].get("recoverable").is_none(),
        "{lines:?}"
    );
    let params = json!({"channel": "hist:1", "user": "42",
        "override": {"force_positioning": {"value": true}}});
    call(&node, V2, subscribe(params)).await.expect("ok");
    let (lines, _) = drain(&a).await;
    let push = &lines[0]["push"]["subscribe"];
    assert_eq!(push["recoverable"], true, "{lines:?}");
    assert_eq!(push["positioned"], true, "{lines:?}");
    // Positioning without recovery on a channel with history.
    node.api_publish_data("pos:1", Bytes::from_static(b"{}"))
        .await
        .expect("published");
    let params = json!({"channel": "pos:1", "user": "42",
        "override": {"force_positioning": {"value": true}}});
    call(&node, V2, subscribe(params)).await.expect("ok");
    let (lines, _) = drain(&a).await;
    let push = &lines[0]["push"]["subscribe"];
    assert_eq!(push["positioned"], true, "{lines:?}");
    assert_eq!(push["offset"], 1, "{lines:?}");
    assert!(push.get("recoverable").is_none(), "{lines:?}");
    node.api_publish_data("pos:1", Bytes::from_static(b"{}"))
        .await
        .expect("published");
    let (lines, _) = drain(&a).await;
    assert_eq!(lines[0]["push"]["pub"]["offset"], 2, "{lines:?}");
    let params = json!({"channel": "hist:2", "user": "42",
        "override": {"force_recovery": {"value": false}}});
    call(&node, V2, subscribe(params)).await.expect("ok");
    let (lines, _) = drain(&a).await;
    assert!(
        lines[0]["push"]["subscribe"].get("recoverable").is_none(),
        "{lines:?}"
    );
}

#[tokio::test]
async fn subscribe_join_leave_overrides() {
    let node = node();
    let watcher = connect(&node, Generation::V2, "1").await;
    let quiet = connect(&node, Generation::V2, "2").await;
    let loud = connect(&node, Generation::V2, "3").await;
    // v2 subscribers of the API get join/leave pushes only when forced.
    let params = json!({"channel": "chat:j", "user": "1",
        "override": {"force_push_join_leave": {"value": true}}});
    call(&node, V2, subscribe(params)).await.expect("ok");
    let (lines, _) = drain(&watcher).await;
    assert_eq!(lines.len(), 2, "its own join: {lines:?}");
    let params = json!({"channel": "chat:j", "user": "2",
        "override": {"join_leave": {"value": false}}});
    call(&node, V2, subscribe(params)).await.expect("ok");
    assert!(drain(&watcher).await.0.is_empty(), "no join for user 2");
    call(
        &node,
        V2,
        subscribe(json!({"channel": "chat:j", "user": "3"})),
    )
    .await
    .expect("ok");
    let (lines, _) = drain(&watcher).await;
    assert_eq!(lines[0]["push"]["join"]["info"]["user"], "3", "{lines:?}");
    assert_eq!(drain(&quiet).await.0.len(), 1, "the subscribe push only");
    assert_eq!(drain(&loud).await.0.len(), 1, "the subscribe push only");
    call(
        &node,
        V2,
        cmd("unsubscribe", json!({"channel": "chat:j", "user": "3"})),
    )
    .await
    .expect("ok");
    let (lines, _) = drain(&watcher).await;
    assert_eq!(lines[0]["push"]["leave"]["info"]["user"], "3", "{lines:?}");
}

#[tokio::test]
async fn subscribe_recover_since_sends_the_missed_publications_after_the_push() {
    let node = node();
    let mut positions = Vec::new();
    for n in 1..=3 {
        let data = Bytes::from(format!("{{\"n\":{n}}}"));
        positions.push(
            node.api_publish_data("hist:r", data)
                .await
                .expect("published"),
        );
    }
    let epoch = positions[0].epoch.clone();
    let a = connect(&node, Generation::V2, "42").await;
    let params = json!({"channel": "hist:r", "user": "42",
        "recover_since": {"offset": 1, "epoch": epoch}});
    call(&node, V2, subscribe(params)).await.expect("ok");
    let (lines, _) = drain(&a).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["push"]["subscribe"]["offset"], 3);
    assert_eq!(lines[1]["push"]["pub"]["data"], json!({"n": 2}));
    assert_eq!(lines[2]["push"]["pub"]["data"], json!({"n": 3}));
    // The next live publication follows without a gap.
    node.api_publish_data("hist:r", Bytes::from_static(b"{\"n\":4}"))
        .await
        .expect("published");
    let (lines, close) = drain(&a).await;
    assert!(close.is_none());
    assert_eq!(lines[0]["push"]["pub"]["offset"], 4, "{lines:?}");
}

#[tokio::test]
async fn an_expired_server_side_subscription_closes_the_connection_with_3006() {
    let node = node();
    let a = connect(&node, Generation::V2, "42").await;
    let b = connect(&node, Generation::V1, "42").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let params = json!({"channel": "chat:r", "user": "42", "expire_at": now + 1});
    call(&node, V2, subscribe(params)).await.expect("ok");
    let (lines, close) = drain_for(&a, Duration::from_secs(4)).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(close_of(close), (3006, "subscription expired".into()));
    let (_, close) = drain_for(&b, Duration::from_secs(1)).await;
    assert_eq!(
        close_of(close),
        (
            3006,
            r#"{"reason":"subscription expired","reconnect":true}"#.into()
        )
    );
    // An expiry already past subscribes nobody.
    let c = connect(&node, Generation::V2, "43").await;
    let params = json!({"channel": "chat:r", "user": "43", "expire_at": now - 10});
    call(&node, V2, subscribe(params)).await.expect("ok");
    assert!(drain(&c).await.0.is_empty());
}

#[tokio::test]
async fn unsubscribe_in_both_generations() {
    let node = node();
    let a = connect(&node, Generation::V2, "42").await;
    let b = connect(&node, Generation::V1, "42").await;
    for ch in ["chat:1", "chat:2"] {
        call(&node, V2, subscribe(json!({"channel": ch, "user": "42"})))
            .await
            .expect("ok");
    }
    drain(&a).await;
    drain(&b).await;
    let unsub = |p: Value| cmd("unsubscribe", p);
    // 2.x needs a user; both check the namespace.
    let r = call(&node, V1, unsub(json!({"channel": "chat:1"}))).await;
    assert_eq!(r.err().map(|e| e.code), Some(107));
    for g in [V1, V2] {
        let r = call(&node, g, unsub(json!({"channel": "nope:1", "user": "42"}))).await;
        assert_eq!(r.err().map(|e| e.code), Some(102));
    }
    // Only client b.
    let params = json!({"channel": "chat:1", "user": "42", "client": b.shared().id()});
    call(&node, V2, unsub(params)).await.expect("ok");
    assert!(drain(&a).await.0.is_empty());
    let (lines, _) = drain(&b).await;
    assert_eq!(
        lines,
        vec![json!({"result": {"type": 3, "channel": "chat:1", "data": {}}})]
    );
    assert_eq!(b.shared().channels(), vec!["chat:2".to_string()]);
    // Current API, empty channel: a push with an empty channel, nothing removed.
    call(
        &node,
        V2,
        unsub(json!({"user": "42", "client": a.shared().id()})),
    )
    .await
    .expect("ok");
    let (lines, _) = drain(&a).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["push"]["unsubscribe"]["code"], 2000, "{lines:?}");
    let channel = lines[0]["push"].get("channel").and_then(Value::as_str);
    assert_eq!(channel.unwrap_or_default(), "", "{lines:?}");
    assert_eq!(a.shared().channels().len(), 2);
    // 2.x, empty channel: the same (PROTOCOL.md §8.1: nothing is unsubscribed, each
    // connection gets an unsubscribe push without a channel).
    call(&node, V1, unsub(json!({"user": "42"})))
        .await
        .expect("ok");
    let (lines, _) = drain(&b).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["result"]["type"], 3, "{lines:?}");
    assert_eq!(lines[0]["result"].get("channel"), None, "{lines:?}");
    assert_eq!(b.shared().channels(), vec!["chat:2".to_string()]);
    assert_eq!(drain(&a).await.0.len(), 1);
    assert_eq!(a.shared().channels().len(), 2);
    // By name, 2.x removes the channel from every connection of the user.
    for ch in a
        .shared()
        .channels()
        .into_iter()
        .chain(b.shared().channels())
    {
        call(&node, V1, unsub(json!({"user": "42", "channel": ch})))
            .await
            .expect("ok");
    }
    drain(&a).await;
    drain(&b).await;
    assert!(a.shared().channels().is_empty());
    assert!(b.shared().channels().is_empty());
    // 2.x knows no client filter: a `client` in its request is ignored.
    call(
        &node,
        V2,
        subscribe(json!({"channel": "chat:3", "user": "42"})),
    )
    .await
    .expect("ok");
    let params = json!({"channel": "chat:3", "user": "42", "client": b.shared().id()});
    call(&node, V1, unsub(params)).await.expect("ok");
    assert!(a.shared().channels().is_empty());
    assert!(b.shared().channels().is_empty());
    drain(&a).await;
    drain(&b).await;
    // Current API without a user: the anonymous connections.
    let anon = connect(&node, Generation::V2, "").await;
    call(&node, V2, subscribe(json!({"channel": "chat:1"})))
        .await
        .expect("ok");
    call(&node, V2, unsub(json!({"channel": "chat:1"})))
        .await
        .expect("ok");
    let (lines, _) = drain(&anon).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["push"]["channel"], "chat:1");
}

#[tokio::test]
async fn disconnect_default_custom_and_whitelist() {
    let node = node();
    let disconnect = |p: Value| cmd("disconnect", p);
    let r = call(&node, V1, disconnect(json!({}))).await;
    assert_eq!(r.err().map(|e| e.code), Some(107), "2.x needs a user");

    // Absent `disconnect`: force disconnect in each client's generation.
    let a = connect(&node, Generation::V2, "42").await;
    let b = connect(&node, Generation::V1, "42").await;
    let spared = connect(&node, Generation::V2, "42").await;
    let params = json!({"user": "42", "whitelist": [spared.shared().id()]});
    call(&node, V2, disconnect(params)).await.expect("ok");
    assert_eq!(
        close_of(drain(&a).await.1),
        (3503, "force disconnect".into())
    );
    assert_eq!(
        close_of(drain(&b).await.1),
        (
            3012,
            r#"{"reason":"force disconnect","reconnect":false}"#.into()
        )
    );
    assert!(drain(&spared).await.1.is_none(), "whitelisted");
    // 2.x API: the same closes; it knows no `client`, `whitelist` or `disconnect`.
    let params = json!({"user": "42", "whitelist": [spared.shared().id()],
        "disconnect": {"code": 4000, "reason": "x"}});
    call(&node, V1, disconnect(params)).await.expect("ok");
    assert_eq!(
        close_of(drain(&spared).await.1),
        (3503, "force disconnect".into())
    );

    // Custom code and reason: exact for v2, with reconnect from the code's range for v1.
    for (code, reconnect) in [(4000, true), (4500, false), (3600, false), (3100, true)] {
        let a = connect(&node, Generation::V2, "9").await;
        let b = connect(&node, Generation::V1, "9").await;
        let params = json!({"user": "9", "disconnect": {"code": code, "reason": "bye"}});
        call(&node, V2, disconnect(params)).await.expect("ok");
        assert_eq!(close_of(drain(&a).await.1), (code, "bye".into()));
        let want = format!(r#"{{"reason":"bye","reconnect":{reconnect}}}"#);
        assert_eq!(close_of(drain(&b).await.1), (code, want));
    }
    // A code that is no close code: the default.
    let a = connect(&node, Generation::V2, "9").await;
    let params = json!({"user": "9", "disconnect": {"code": 70000, "reason": "x"}});
    call(&node, V2, disconnect(params)).await.expect("ok");
    assert_eq!(close_of(drain(&a).await.1).0, 3503);

    // Client filter, and a session filter that no WebSocket connection has.
    let a = connect(&node, Generation::V2, "5").await;
    let b = connect(&node, Generation::V2, "5").await;
    let params = json!({"user": "5", "session": "s-1"});
    call(&node, V2, disconnect(params)).await.expect("ok");
    assert!(drain(&a).await.1.is_none());
    let params = json!({"user": "5", "client": b.shared().id()});
    call(&node, V2, disconnect(params)).await.expect("ok");
    assert!(drain(&a).await.1.is_none());
    assert_eq!(close_of(drain(&b).await.1).0, 3503);
}

#[tokio::test]
async fn refresh_expires_extends_and_replaces_info() {
    let node = node();
    let refresh = |p: Value| cmd("refresh", p);
    let a = connect(&node, Generation::V2, "42").await;
    let b = connect(&node, Generation::V1, "42").await;
    let other = connect(&node, Generation::V2, "42").await;
    let params = json!({"user": "42", "expired": true, "client": a.shared().id()});
    call(&node, V2, refresh(params)).await.expect("ok");
    assert_eq!(
        close_of(drain(&a).await.1),
        (3005, "connection expired".into())
    );
    let params = json!({"user": "42", "expired": true, "client": b.shared().id()});
    call(&node, V2, refresh(params)).await.expect("ok");
    assert_eq!(
        close_of(drain(&b).await.1),
        (3005, r#"{"reason":"expired","reconnect":true}"#.into())
    );
    assert!(drain(&other).await.1.is_none());

    // A later expiry: a refresh push for v2, and new info seen in presence.
    call(
        &node,
        V2,
        subscribe(json!({"channel": "chat:r", "user": "42"})),
    )
    .await
    .expect("ok");
    drain(&other).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let params = json!({"user": "42", "expire_at": now + 100, "info": {"v": 2}});
    call(&node, V2, refresh(params)).await.expect("ok");
    let (lines, close) = drain(&other).await;
    assert!(close.is_none());
    let push = &lines[0]["push"]["refresh"];
    assert_eq!(push["expires"], true, "{lines:?}");
    let ttl = push["ttl"].as_u64().expect("ttl");
    assert!((98..=100).contains(&ttl), "{ttl}");
    let presence = call(&node, V2, cmd("presence", json!({"channel": "chat:r"})))
        .await
        .expect("presence");
    let ApiResult::Presence(list) = presence else {
        panic!("{presence:?}");
    };
    assert_eq!(list[0].conn_info.as_deref(), Some(&b"{\"v\":2}"[..]));
    // An expiry already past closes as expired.
    call(
        &node,
        V2,
        refresh(json!({"user": "42", "expire_at": now - 5})),
    )
    .await
    .expect("ok");
    assert_eq!(close_of(drain(&other).await.1).0, 3005);
}

#[tokio::test]
async fn refresh_push_reaches_protobuf_clients() {
    use prost::Message;
    let node = node();
    let mut s = node.new_session(Some(Generation::V2), Encoding::Protobuf);
    let connect = rotor_protocol::protobuf::v2::Command {
        id: 1,
        connect: Some(rotor_protocol::protobuf::v2::ConnectRequest {
            token: token("42"),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(
        s.handle_frame(&connect.encode_length_delimited_to_vec())
            .await
    );
    let mut out = Vec::new();
    s.shared().queue.next(&mut out).await;
    let params = RefreshParams {
        user: "42".into(),
        expire_at: 4_000_000_000,
        ..Default::default()
    };
    call(&node, V2, ApiCommand::Refresh(params))
        .await
        .expect("ok");
    let mut out = Vec::new();
    let step = tokio::time::timeout(Duration::from_secs(1), s.shared().queue.next(&mut out));
    assert!(matches!(step.await, Ok(WriterStep::Data)));
    let reply = rotor_protocol::protobuf::v2::Reply::decode_length_delimited(&out[0][..])
        .expect("a delimited Reply");
    let refresh = reply.push.and_then(|p| p.refresh).expect("refresh push");
    assert!(refresh.expires);
    assert!(refresh.ttl > 0);
}

#[tokio::test]
async fn history_position_checks_of_the_current_api() {
    let node = node();
    let top = node
        .api_publish_data("hist:h", Bytes::from_static(b"{}"))
        .await
        .expect("published");
    node.api_publish_data("hist:h", Bytes::from_static(b"{}"))
        .await
        .expect("published");
    let history = |p: Value| cmd("history", p);
    let wrong = json!({"channel": "hist:h", "limit": -1, "since": {"offset": 1, "epoch": "x"}});
    let r = call(&node, V2, history(wrong)).await;
    assert_eq!(r.err().map(|e| e.code), Some(112));
    let reverse = json!({"channel": "hist:h", "limit": -1, "reverse": true,
        "since": {"offset": 0, "epoch": top.epoch}});
    let r = call(&node, V2, history(reverse)).await;
    assert_eq!(r.err().map(|e| e.code), Some(100));
    let good = json!({"channel": "hist:h", "limit": -1,
        "since": {"offset": 1, "epoch": top.epoch}});
    let Ok(ApiResult::History(page)) = call(&node, V2, history(good)).await else {
        panic!("history");
    };
    assert_eq!(page.publications.len(), 1);
    // No limit: only the position in the current API, everything in 2.x.
    let params = HistoryParams {
        channel: "hist:h".into(),
        ..Default::default()
    };
    let Ok(ApiResult::History(page)) = call(&node, V2, ApiCommand::History(params.clone())).await
    else {
        panic!("history");
    };
    assert!(page.publications.is_empty());
    assert_eq!(page.position.offset, 2);
    let Ok(ApiResult::History(page)) = call(&node, V1, ApiCommand::History(params)).await else {
        panic!("history");
    };
    assert_eq!(page.publications.len(), 2);
}

#[tokio::test]
async fn channels_glob_patterns_and_info_num_subs() {
    let node = node();
    let _a = connect(&node, Generation::V2, "42").await;
    let _b = connect(&node, Generation::V1, "42").await;
    for ch in ["chat:a", "chat:b", "news", "hist:1"] {
        call(&node, V2, subscribe(json!({"channel": ch, "user": "42"})))
            .await
            .expect("ok");
    }
    let names = |r: Result<ApiResult, ApiError>| match r {
        Ok(ApiResult::Channels(list)) => list,
        other => panic!("{other:?}"),
    };
    let channels = |p: &str| {
        ApiCommand::Channels(ChannelsParams {
            pattern: p.to_string(),
        })
    };
    let all = names(call(&node, V2, channels("")).await);
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|(_, n)| *n == 2), "{all:?}");
    let chat = names(call(&node, V2, channels("chat:*")).await);
    assert_eq!(chat, vec![("chat:a".into(), 2), ("chat:b".into(), 2)]);
    let alt = names(call(&node, V2, channels("{news,hist:?}")).await);
    assert_eq!(alt, vec![("hist:1".into(), 2), ("news".into(), 2)]);
    let class = names(call(&node, V2, channels("chat:[!a]")).await);
    assert_eq!(class, vec![("chat:b".into(), 2)]);
    let star = names(call(&node, V2, channels("*a*")).await);
    assert_eq!(star.len(), 2, "{star:?}");
    for bad in ["chat:[", "{a,b", "x\\"] {
        let r = call(&node, V2, channels(bad)).await;
        assert_eq!(r.err().map(|e| e.code), Some(100), "{bad}");
    }
    let Ok(ApiResult::Info(nodes)) = call(&node, V2, ApiCommand::Info).await else {
        panic!("info");
    };
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].num_subs, 8);
    assert_eq!(nodes[0].num_channels, 4);
    assert_eq!(nodes[0].num_clients, 2);
}

#[tokio::test]
async fn typed_params_reach_the_same_methods() {
    // The gRPC transports build typed params instead of JSON: same outcome.
    let node = node();
    let a = connect(&node, Generation::V2, "42").await;
    let sub = SubscribeParams {
        channel: "chat:t".into(),
        user: "42".into(),
        ..Default::default()
    };
    call(&node, V2, ApiCommand::Subscribe(sub))
        .await
        .expect("ok");
    let unsub = UnsubscribeParams {
        channel: "chat:t".into(),
        user: "42".into(),
        ..Default::default()
    };
    call(&node, V2, ApiCommand::Unsubscribe(unsub))
        .await
        .expect("ok");
    let (lines, _) = drain(&a).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let disc = DisconnectParams {
        user: "42".into(),
        ..Default::default()
    };
    call(&node, V2, ApiCommand::Disconnect(disc))
        .await
        .expect("ok");
    assert_eq!(close_of(drain(&a).await.1).0, 3503);
}
