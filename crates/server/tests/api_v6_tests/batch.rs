//! `/api/batch`: replies keyed by method in command order, sequential and parallel,
//! per-command errors (null 107, no/PRO method 104), and the `centrifugo_api_*` metrics.

use crate::*;

#[tokio::test]
async fn batch_sequential_keeps_order_and_keys_replies_by_method() {
    let server = Server::start(with_history()).await;
    let (mut ws, client) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("room").await["subscribe"].is_object());
    let body = json!({"commands": [
        {"publish": {"channel": "room", "data": {"n": 1}}},
        {"publish": {"channel": "room", "data": {"n": 2}}},
        {"history": {"channel": "room", "limit": -1}},
        {"presence_stats": {"channel": "room"}},
        {"presence": {"channel": "room"}},
        {"broadcast": {"channels": ["room", "other"], "data": {"n": 3}}},
        {"channels": {}},
        null,
        {},
        {"connections": {}},
        {"publish": {"channel": "nope:x", "data": 1}},
        {"history_remove": {"channel": "room"}},
        {"info": {}},
    ]});
    let r = call_with(&server, "batch", &[], &body.to_string()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let replies = v["replies"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(replies.len(), 13, "{v}");
    let epoch = replies[0]["publish"]["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(
        replies[0],
        json!({"publish": {"offset": 1, "epoch": epoch}})
    );
    assert_eq!(
        replies[1],
        json!({"publish": {"offset": 2, "epoch": epoch}})
    );
    assert_eq!(
        replies[2],
        json!({"history": {"publications": [
            {"data": {"n": 1}, "offset": 1}, {"data": {"n": 2}, "offset": 2}
        ], "epoch": epoch, "offset": 2}})
    );
    assert_eq!(
        replies[3],
        json!({"presence_stats": {"num_clients": 1, "num_users": 1}})
    );
    assert_eq!(
        replies[4],
        json!({"presence": {"presence": {client.clone(): {"user": "alice", "client": client}}}})
    );
    let responses = replies[5]["broadcast"]["responses"].as_array().unwrap();
    assert_eq!(responses[0]["result"]["offset"], 3, "{v}");
    assert_eq!(responses[1]["result"]["offset"], 1, "{v}");
    assert_eq!(
        replies[6],
        json!({"channels": {"channels": {"room": {"num_clients": 1}}}})
    );
    assert_eq!(replies[7], json!({"error": err(107, "bad request")}));
    assert_eq!(replies[8], json!({"error": err(104, "not found")}));
    assert_eq!(replies[9], json!({"error": err(104, "not found")}));
    assert_eq!(replies[10], json!({"error": err(102, "unknown channel")}));
    assert_eq!(replies[11], json!({"history_remove": {}}));
    assert_eq!(
        replies[12]["info"]["nodes"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    // The subscriber saw the three publications in order.
    for n in 1..=3 {
        assert_eq!(ws.push().await["push"]["pub"]["data"], json!({"n": n}));
    }
}

#[tokio::test]
async fn batch_parallel_keeps_reply_order() {
    let server = Server::start(with_history()).await;
    // Channel i has i publications (history_size 10 keeps them all), so each history reply tells which command it answers.
    let mut fill = vec![];
    for i in 1..=10 {
        for n in 0..i {
            fill.push(json!({"publish": {"channel": format!("ch{i}"), "data": {"n": n}}}));
        }
    }
    let r = call_with(
        &server,
        "batch",
        &[],
        &json!({"commands": fill, "parallel": true}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let replies = v["replies"].as_array().unwrap();
    assert_eq!(replies.len(), fill.len());
    assert!(
        replies.iter().all(|r| r["publish"]["offset"].is_u64()),
        "{v}"
    );
    let mut commands = vec![];
    for i in (1..=10).rev() {
        commands.push(json!({"history": {"channel": format!("ch{i}"), "limit": 1}}));
        commands.push(json!({"rpc": {"method": "x"}}));
    }
    let r = call_with(
        &server,
        "batch",
        &[],
        &json!({"commands": commands, "parallel": true}).to_string(),
    )
    .await;
    let v = r.json();
    let replies = v["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 20, "{v}");
    for (k, i) in (1..=10u64).rev().enumerate() {
        assert_eq!(replies[2 * k]["history"]["offset"], i, "{v}");
        assert_eq!(
            replies[2 * k]["history"]["publications"][0]["data"],
            json!({"n": 0}),
            "{v}"
        );
        assert_eq!(replies[2 * k + 1], json!({"error": err(104, "not found")}));
    }
}

#[tokio::test]
async fn metrics_count_http_api_calls_and_batches() {
    let server = Server::start(json!({"prometheus": true})).await;
    call_with(&server, "info", &[], "{}").await;
    call_with(&server, "publish", &[], r#"{"channel":"x:a","data":1}"#).await;
    let body = r#"{"commands":[{"info":{}},{"channels":{}}]}"#;
    call_with(&server, "batch", &[], body).await;
    call_with(&server, "batch", &[], body).await;
    let text = http()
        .get(server.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |needle: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let count = |method: &str| {
        sample(&format!(
            "centrifugo_api_command_duration_seconds_count{{protocol=\"http\",method=\"{method}\"}}"
        ))
    };
    assert_eq!(count("batch"), Some(2.0), "{text}");
    // info: once alone, twice inside the batches.
    assert_eq!(count("info"), Some(3.0), "{text}");
    assert_eq!(count("channels"), Some(2.0), "{text}");
    assert_eq!(count("publish"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            "centrifugo_api_command_errors_total{protocol=\"http\",method=\"publish\",error=\"102\"}"
        ),
        Some(1.0),
        "{text}"
    );
}
