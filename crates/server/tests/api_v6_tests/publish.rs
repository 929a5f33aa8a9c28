//! Publish and broadcast options (b64data, tags, skip_history, idempotency_key) as a v2
//! WebSocket subscriber and the history see them.

use crate::*;

#[tokio::test]
async fn publish_b64data_tags_and_skip_history() {
    let server = Server::start(with_history()).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("feed").await["subscribe"].is_object());
    // {"x":1} as base64; b64data wins over data.
    let v = api_v2(
        &server,
        "publish",
        json!({"channel": "feed", "data": {"ignored": true}, "b64data": "eyJ4IjoxfQ==",
               "tags": {"kind": "news", "lang": "en"}}),
    )
    .await;
    assert_eq!(v["result"]["offset"], 1, "{v}");
    let push = ws.push().await;
    assert_eq!(
        push["push"]["pub"],
        json!({"data": {"x": 1}, "offset": 1, "tags": {"kind": "news", "lang": "en"}}),
        "{push}"
    );
    // skip_history: delivered, not stored, no position in the result.
    let v = api_v2(
        &server,
        "publish",
        json!({"channel": "feed", "data": {"y": 2}, "skip_history": true}),
    )
    .await;
    assert_eq!(v, json!({"result": {}}));
    assert_eq!(ws.push().await["push"]["pub"]["data"], json!({"y": 2}));
    let h = api_v2(&server, "history", json!({"channel": "feed", "limit": -1})).await;
    assert_eq!(
        h["result"]["publications"],
        json!([{"data": {"x": 1}, "offset": 1, "tags": {"kind": "news", "lang": "en"}}]),
        "{h}"
    );
    assert_eq!(h["result"]["offset"], 1, "{h}");
    // Bad base64 is a bad request.
    let v = api_v2(
        &server,
        "publish",
        json!({"channel": "feed", "b64data": "!!"}),
    )
    .await;
    assert_eq!(v, json!({"error": err(107, "bad request")}));
}

#[tokio::test]
async fn broadcast_b64data_tags_and_skip_history() {
    let server = Server::start(with_history()).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("a").await["subscribe"].is_object());
    assert!(ws.subscribe_v2("b").await["subscribe"].is_object());
    let v = api_v2(
        &server,
        "broadcast",
        json!({"channels": ["a", "b"], "b64data": "eyJ4IjoxfQ==", "tags": {"t": "1"}}),
    )
    .await;
    assert_eq!(
        v["result"]["responses"].as_array().map(|r| r
            .iter()
            .map(|x| x["result"]["offset"].clone())
            .collect::<Vec<_>>()),
        Some(vec![json!(1), json!(1)]),
        "{v}"
    );
    let mut got = [ws.push().await, ws.push().await];
    got.sort_by_key(|p| p["push"]["channel"].as_str().unwrap_or("").to_string());
    for (p, ch) in got.iter().zip(["a", "b"]) {
        assert_eq!(p["push"]["channel"], ch);
        assert_eq!(
            p["push"]["pub"],
            json!({"data": {"x": 1}, "offset": 1, "tags": {"t": "1"}}),
            "{p}"
        );
    }
    let v = api_v2(
        &server,
        "broadcast",
        json!({"channels": ["a", "b"], "data": 2, "skip_history": true}),
    )
    .await;
    assert_eq!(
        v,
        json!({"result": {"responses": [{"result": {}}, {"result": {}}]}})
    );
    for ch in ["a", "b"] {
        let h = api_v2(&server, "history", json!({"channel": ch, "limit": -1})).await;
        assert_eq!(h["result"]["offset"], 1, "{ch}: {h}");
    }
}

#[tokio::test]
async fn idempotency_key_publishes_once_and_answers_the_same_offset() {
    let server = Server::start(with_history()).await;
    let (mut ws, _) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("feed").await["subscribe"].is_object());
    let body = json!({"channel": "feed", "data": {"n": 1}, "idempotency_key": "k1"});
    let first = api_v2(&server, "publish", body.clone()).await;
    let second = api_v2(&server, "publish", body).await;
    assert_eq!(first["result"]["offset"], 1, "{first}");
    assert_eq!(second, first, "the repeat answers the first result");
    assert_eq!(ws.push().await["push"]["pub"]["data"], json!({"n": 1}));
    ws.assert_no_push(Duration::from_millis(300)).await;
    // Another key publishes.
    let third = api_v2(
        &server,
        "publish",
        json!({"channel": "feed", "data": {"n": 2}, "idempotency_key": "k2"}),
    )
    .await;
    assert_eq!(third["result"]["offset"], 2, "{third}");
    // Broadcast with a key: once per channel.
    let b = json!({"channels": ["feed"], "data": {"n": 3}, "idempotency_key": "k3"});
    let r1 = api_v2(&server, "broadcast", b.clone()).await;
    let r2 = api_v2(&server, "broadcast", b).await;
    assert_eq!(r1, r2);
    let h = api_v2(&server, "history", json!({"channel": "feed", "limit": -1})).await;
    assert_eq!(h["result"]["offset"], 3, "{h}");
}
