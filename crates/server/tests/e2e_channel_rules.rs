//! Centrifugo 6 channel rules a client meets (CHANNELS-MODERN.md §3): `channel_regex` (the part
//! after the namespace, unanchored, Go's ASCII classes), the ASCII rule for v2 clients without a
//! regex, the too-long name (107 for v2, 106 for v1), and `publication_data_format` on client
//! publish, API publish and broadcast. Real binary, real WebSocket clients of both generations.

mod common;

use common::*;
use serde_json::{json, Value};

fn code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or(0)
}

fn rules_config() -> Value {
    json!({
        "channel_max_length": 32,
        "namespaces": [
            {"name": "tick", "channel_regex": "^[A-Z]{1,5}$", "publish": true},
            {"name": "obj", "publication_data_format": "json_object", "publish": true},
            {"name": "bin", "publication_data_format": "binary"},
            {"name": "free", "publish": true}
        ]
    })
}

#[tokio::test]
async fn channel_regex_and_names_in_both_generations() {
    let s = Server::start(rules_config()).await;
    let (mut v2, _) = s.v2_client("u2").await;
    assert!(v2.subscribe_v2("tick:AAPL").await.get("error").is_none());
    // The regex refuses: 107, the connection stays.
    for bad in ["tick:aapl", "tick:TOOLONG", "tick:A1"] {
        let r = v2.subscribe_v2(bad).await;
        assert_eq!(code(&r), 107, "{bad}: {r}");
    }
    // Publish, presence and history are checked too.
    let r = v2
        .call_v2("publish", json!({"channel": "tick:a", "data": {}}))
        .await;
    assert_eq!(code(&r), 107, "{r}");
    let r = v2.call_v2("history", json!({"channel": "tick:a"})).await;
    assert_eq!(code(&r), 107, "{r}");
    // No regex: v2 names must be ASCII; a too long name is 107.
    let r = v2.subscribe_v2("free:naïve").await;
    assert_eq!(code(&r), 107, "{r}");
    let long = format!("free:{}", "x".repeat(40));
    let r = v2.subscribe_v2(&long).await;
    assert_eq!(code(&r), 107, "{r}");
    v2.assert_open_for(std::time::Duration::from_millis(100))
        .await;

    // A 2.x client: the regex applies (the operator asked for it), the ASCII rule does not,
    // a too long name is 106 as in 2.x.
    let (mut v1, _) = s.v1_client("u1").await;
    let r = v1.subscribe_v1("tick:msft").await;
    assert_eq!(code(&r), 107, "{r}");
    let r = v1.subscribe_v1("free:naïve").await;
    assert!(r.get("error").is_none(), "{r}");
    let r = v1.subscribe_v1(&long).await;
    assert_eq!(code(&r), 106, "{r}");
    // The API is not held to the regex (Centrifugo checks it for clients only).
    let r = api_v2(
        &s,
        "publish",
        json!({"channel": "tick:lower", "data": {"x": 1}}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    s.assert_alive();
}

#[tokio::test]
async fn publication_data_format_on_client_and_api_publish() {
    let s = Server::start(rules_config()).await;
    let (mut c, _) = s.v2_client("p").await;
    assert!(c.subscribe_v2("obj:1").await.get("error").is_none());
    // json_object: an array is refused on client publish and on the API, an object passes.
    let r = c
        .call_v2("publish", json!({"channel": "obj:1", "data": [1, 2]}))
        .await;
    assert_eq!(code(&r), 107, "{r}");
    let r = api_v2(&s, "publish", json!({"channel": "obj:1", "data": "text"})).await;
    assert_eq!(r["error"]["code"], 107, "{r}");
    let r = api_v2(
        &s,
        "broadcast",
        json!({"channels": ["obj:1", "free:1"], "data": [1]}),
    )
    .await;
    let responses = r["result"]["responses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(responses.len(), 2, "{r}");
    assert_eq!(responses[0]["error"]["code"], 107, "{r}");
    assert!(responses[1].get("error").is_none(), "{r}");
    let r = api_v2(
        &s,
        "publish",
        json!({"channel": "obj:1", "data": {"ok": true}}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    let push = c.push().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"ok": true}), "{push}");
    // binary: empty data may be published through the API; elsewhere it is 107.
    let r = api_v2(&s, "publish", json!({"channel": "bin:1"})).await;
    assert!(r.get("error").is_none(), "{r}");
    let r = api_v2(&s, "publish", json!({"channel": "free:1"})).await;
    assert_eq!(r["error"]["code"], 107, "{r}");
    s.assert_alive();
}
