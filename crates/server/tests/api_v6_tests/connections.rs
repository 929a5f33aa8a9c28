//! The connection methods end to end: subscribe and unsubscribe of one client,
//! disconnect with a custom code and a whitelist, refresh with `expired`.

use crate::*;

#[tokio::test]
async fn subscribe_and_unsubscribe_by_client() {
    let server = Server::start(json!({})).await;
    let (mut a1, c1) = server.v2_client("alice").await;
    let (mut a2, _c2) = server.v2_client("alice").await;
    let v = api_v2(
        &server,
        "subscribe",
        json!({"user": "alice", "channel": "srv"}),
    )
    .await;
    assert_eq!(v, json!({"result": {}}));
    for ws in [&mut a1, &mut a2] {
        let p = ws.push().await;
        assert_eq!(p["push"]["channel"], "srv", "{p}");
        assert!(p["push"]["subscribe"].is_object(), "{p}");
    }
    api_v2(
        &server,
        "publish",
        json!({"channel": "srv", "data": {"n": 1}}),
    )
    .await;
    for ws in [&mut a1, &mut a2] {
        assert_eq!(ws.push().await["push"]["pub"]["data"], json!({"n": 1}));
    }
    let v = api_v2(
        &server,
        "unsubscribe",
        json!({"user": "alice", "channel": "srv", "client": c1}),
    )
    .await;
    assert_eq!(v, json!({"result": {}}));
    let p = a1.push().await;
    assert_eq!(p["push"]["unsubscribe"]["code"], 2000, "{p}");
    api_v2(
        &server,
        "publish",
        json!({"channel": "srv", "data": {"n": 2}}),
    )
    .await;
    assert_eq!(a2.push().await["push"]["pub"]["data"], json!({"n": 2}));
    a1.assert_no_push(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn disconnect_with_custom_code_and_whitelist() {
    let server = Server::start(json!({})).await;
    let (mut keep, keep_id) = server.v2_client("bob").await;
    let (mut gone, _) = server.v2_client("bob").await;
    let v = api_v2(
        &server,
        "disconnect",
        json!({"user": "bob", "disconnect": {"code": 4501, "reason": "go away"}, "whitelist": [keep_id]}),
    )
    .await;
    assert_eq!(v, json!({"result": {}}));
    let (code, reason) = gone.expect_close().await;
    assert_eq!((code, reason.as_str()), (4501, "go away"));
    keep.assert_open_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn refresh_expired_closes_the_connection() {
    let server = Server::start(json!({})).await;
    let (mut ws, client) = server.v2_client("carol").await;
    let v = api_v2(
        &server,
        "refresh",
        json!({"user": "carol", "client": client, "expired": true}),
    )
    .await;
    assert_eq!(v, json!({"result": {}}));
    let (code, _) = ws.expect_close().await;
    assert_eq!(code, 3005);
}
