//! End-to-end tests of the Centrifugo 6 token claims that carry per-subscription options: a
//! connection token's `subs` (server-side subscriptions with channel info, data and
//! overrides; it wins over `channels`) and a subscription token's `data` and `override`
//! (TOKENS.md §4.3).

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn connection_token_subs_win_over_channels_and_carry_info_data_and_overrides() {
    let server = Server::start(json!({"presence": true})).await;
    let token = jwt(&json!({
        "sub": "alice",
        "channels": ["ignored"],
        "subs": {
            "news": {"info": {"role": "reader"}, "data": {"welcome": 1}},
            "quiet": {"b64data": "eyJ4Ijo1fQ==", "override": {"presence": {"value": false}}}
        }
    }));
    let mut ws = Ws::open(&server.ws_url()).await;
    let rep = ws.connect_v2(&token).await;
    let subs = &rep["subs"];
    assert_eq!(subs["news"]["data"], json!({"welcome": 1}), "{rep}");
    assert_eq!(subs["quiet"]["data"], json!({"x": 5}), "{rep}");
    assert!(
        subs.get("ignored").is_none(),
        "subs wins over channels: {rep}"
    );
    let client = rep["client"].as_str().unwrap_or_default().to_string();
    // The channel info is this subscriber's in presence; the override kept it out of "quiet".
    let news = api_v2(&server, "presence", json!({"channel": "news"})).await;
    assert_eq!(
        news["result"]["presence"][&client]["chan_info"],
        json!({"role": "reader"}),
        "{news}"
    );
    let quiet = api_v2(&server, "presence", json!({"channel": "quiet"})).await;
    assert_eq!(quiet["result"]["presence"], json!({}), "{quiet}");
}

#[tokio::test]
async fn subscription_token_data_reaches_the_reply_and_override_applies() {
    let server = Server::start(json!({"presence": true, "join_leave": true})).await;
    let (mut ws, client) = server.v2_client("alice").await;
    let token = jwt(&json!({
        "sub": "alice", "channel": "$room", "data": {"hello": "room"},
        "override": {"presence": {"value": false}}
    }));
    let rep = ws
        .call_v2("subscribe", json!({"channel": "$room", "token": token}))
        .await;
    assert_eq!(rep["subscribe"]["data"], json!({"hello": "room"}), "{rep}");
    let p = api_v2(&server, "presence", json!({"channel": "$room"})).await;
    assert!(p["result"]["presence"].get(&client).is_none(), "{p}");
    // A malformed b64data makes the token invalid (v2: closed 3500).
    let bad = jwt(&json!({"sub": "alice", "channel": "$other", "b64data": "%%%"}));
    ws.cmd_v2("subscribe", json!({"channel": "$other", "token": bad}))
        .await;
    let rep = ws
        .next_event_within(std::time::Duration::from_secs(5))
        .await;
    match rep {
        Some(Event::Value(v)) => assert_eq!(v["error"]["code"], 103, "{v}"),
        other => panic!("expected a 103 reply, got {other:?}"),
    }
}
