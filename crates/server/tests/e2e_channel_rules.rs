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

#[tokio::test]
async fn tags_filter_delivers_matching_publications_and_keeps_the_position() {
    let s = Server::start(json!({
        "namespaces": [
            {"name": "tf", "allow_tags_filter": true, "history_size": 10,
             "history_ttl": "60s", "force_recovery": true},
            {"name": "plain"}
        ]
    }))
    .await;
    let (mut c, _) = s.v2_client("f").await;
    let tf = json!({"op": "and", "nodes": [
        {"key": "ticker", "cmp": "eq", "val": "AAPL"},
        {"key": "price", "cmp": "gte", "val": "100"}
    ]});
    let r = c
        .call_v2(
            "subscribe",
            json!({"channel": "tf:q", "tf": tf, "recover": false}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    let publish = |tags: Value, n: u64| {
        let s = &s;
        async move {
            let r = api_v2(
                s,
                "publish",
                json!({"channel": "tf:q", "data": {"n": n}, "tags": tags}),
            )
            .await;
            assert!(r.get("error").is_none(), "{r}");
        }
    };
    publish(json!({"ticker": "MSFT", "price": "300"}), 1).await;
    publish(json!({"ticker": "AAPL", "price": "99.5"}), 2).await;
    publish(json!({"ticker": "AAPL", "price": "150"}), 3).await;
    publish(json!({}), 4).await;
    publish(json!({"ticker": "AAPL", "price": "100"}), 5).await;
    // Only 3 and 5 arrive, with their tags; the skipped ones did not break the position
    // (no unsubscribe 2500 for a gap).
    let first = c.push().await;
    assert_eq!(first["push"]["pub"]["data"]["n"], 3, "{first}");
    assert_eq!(first["push"]["pub"]["tags"]["ticker"], "AAPL", "{first}");
    assert_eq!(first["push"]["pub"]["offset"], 3, "{first}");
    let second = c.push().await;
    assert_eq!(second["push"]["pub"]["data"]["n"], 5, "{second}");
    c.assert_no_push(std::time::Duration::from_millis(200))
        .await;

    // Recovery returns only the matching publications after the position.
    let (mut d, _) = s.v2_client("g").await;
    let r = d
        .call_v2(
            "subscribe",
            json!({"channel": "tf:q", "tf": {"key": "price", "cmp": "lt", "val": "100"},
                   "recover": true, "offset": 0, "epoch": first_epoch(&s).await}),
        )
        .await;
    let pubs = r["subscribe"]["publications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ns: Vec<_> = pubs.iter().map(|p| p["data"]["n"].clone()).collect();
    assert_eq!(ns, vec![json!(2)], "{r}");
    assert_eq!(r["subscribe"]["recovered"], true, "{r}");

    // Refusals: not allowed here, invalid trees, with a delta: 107, the connection stays.
    for (channel, tf, delta) in [
        ("plain:q", json!({"key": "a", "cmp": "eq", "val": "b"}), ""),
        ("tf:q2", json!({"key": "a", "cmp": "eq"}), ""),
        ("tf:q3", json!({"op": "not", "nodes": []}), ""),
        ("tf:q4", json!({"key": "a", "cmp": "like", "val": "b"}), ""),
        (
            "tf:q5",
            json!({"key": "a", "cmp": "eq", "val": "b"}),
            "fossil",
        ),
    ] {
        let mut params = json!({"channel": channel, "tf": tf});
        if !delta.is_empty() {
            params["delta"] = json!(delta);
        }
        let r = c.call_v2("subscribe", params).await;
        assert_eq!(code(&r), 107, "{channel}: {r}");
    }
    c.assert_open_for(std::time::Duration::from_millis(100))
        .await;
    // An unknown delta type is a protocol error (3501), as in Centrifugo.
    let id = c
        .cmd_v2("subscribe", json!({"channel": "plain:d", "delta": "zstd"}))
        .await;
    let _ = id;
    let (close, _) = c.expect_close().await;
    assert_eq!(close, 3501);
    s.assert_alive();
}

/// The stream epoch of `tf:q` (from the API's history).
async fn first_epoch(s: &Server) -> String {
    let r = api_v2(s, "history", json!({"channel": "tf:q"})).await;
    r["result"]["epoch"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn history_and_recovery_publication_limits() {
    let s = Server::start(json!({
        "client_history_max_publication_limit": 3,
        "client_recovery_max_publication_limit": 3,
        "history_size": 20,
        "history_lifetime": 60,
        "history_recover": true,
    }))
    .await;
    for n in 1..=5 {
        let r = api_v2(&s, "publish", json!({"channel": "h", "data": {"n": n}})).await;
        assert!(r.get("error").is_none(), "{r}");
    }
    let epoch = api_v2(&s, "history", json!({"channel": "h"})).await["result"]["epoch"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // A v2 client's history: -1 and a larger limit are cut to 3, a smaller one stays.
    let (mut c, _) = s.v2_client("h2").await;
    assert!(c.subscribe_v2("h").await.get("error").is_none());
    for (limit, want) in [(-1, 3), (10, 3), (2, 2)] {
        let r = c
            .call_v2("history", json!({"channel": "h", "limit": limit}))
            .await;
        let pubs = r["history"]["publications"].as_array().map_or(0, Vec::len);
        assert_eq!(pubs, want, "limit {limit}: {r}");
    }
    // A 2.x client's history has no cap (everything, as in 2.x).
    let (mut v1, _) = s.v1_client("h1").await;
    assert!(v1.subscribe_v1("h").await.get("error").is_none());
    let r = v1.call_v1(6, json!({"channel": "h"})).await;
    let pubs = r["result"]["publications"].as_array().map_or(0, Vec::len);
    assert_eq!(pubs, 5, "{r}");
    // Recovery: 5 missed is over the cap: recovered false, none sent; 3 missed is fine.
    let (mut d, _) = s.v2_client("r2").await;
    let r = d
        .call_v2(
            "subscribe",
            json!({"channel": "h", "recover": true, "offset": 0, "epoch": epoch}),
        )
        .await;
    assert_eq!(r["subscribe"]["recovered"], json!(null), "{r}");
    assert_eq!(r["subscribe"].get("publications"), None, "{r}");
    assert_eq!(r["subscribe"]["offset"], 5, "{r}");
    let (mut e, _) = s.v2_client("r3").await;
    let r = e
        .call_v2(
            "subscribe",
            json!({"channel": "h", "recover": true, "offset": 2, "epoch": epoch}),
        )
        .await;
    assert_eq!(r["subscribe"]["recovered"], true, "{r}");
    let pubs = r["subscribe"]["publications"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(pubs, 3, "{r}");
}
