//! Result shapes of §3.2: NodeResult and ClientInfo fields, history with limit, since,
//! reverse, and 112 (416 in the transport error mode).

use crate::*;

#[tokio::test]
async fn info_node_result_and_presence_client_info() {
    let server = Server::start(json!({"presence": true})).await;
    let (mut ws, client) = server.v2_client("alice").await;
    assert!(ws.subscribe_v2("room").await["subscribe"].is_object());
    let v = api_v2(&server, "info", json!({})).await;
    let node = &v["result"]["nodes"][0];
    let keys: Vec<&str> = node
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "uid",
        "name",
        "version",
        "num_clients",
        "num_users",
        "num_channels",
        "num_subs",
    ] {
        assert!(keys.contains(&k), "{k} in {node}");
    }
    assert!(
        !keys.contains(&"metrics") && !keys.contains(&"process"),
        "{node}"
    );
    assert!(
        keys.iter().all(|k| [
            "uid",
            "name",
            "version",
            "num_clients",
            "num_users",
            "num_channels",
            "num_subs",
            "uptime"
        ]
        .contains(k)),
        "{node}"
    );
    assert_eq!(
        (
            &node["num_clients"],
            &node["num_users"],
            &node["num_channels"],
            &node["num_subs"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1)),
        "{node}"
    );
    // ClientInfo always carries user and client (an anonymous user is "").
    let v = api_v2(&server, "presence", json!({"channel": "room"})).await;
    assert_eq!(
        v,
        json!({"result": {"presence": {client.clone(): {"user": "alice", "client": client}}}})
    );
}

#[tokio::test]
async fn history_shapes_limit_since_reverse() {
    let server = Server::start(with_history()).await;
    // No stream yet: empty publications, but epoch and offset are there.
    let v = api_v2(&server, "history", json!({"channel": "feed"})).await;
    let res = &v["result"];
    assert_eq!(res["publications"], json!([]), "{v}");
    assert_eq!(res["offset"], 0, "{v}");
    assert!(res["epoch"].is_string(), "{v}");
    for n in 1..=5 {
        api_v2(
            &server,
            "publish",
            json!({"channel": "feed", "data": {"n": n}}),
        )
        .await;
    }
    let data = |v: &Value| -> Vec<Value> {
        v["result"]["publications"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|p| p["data"]["n"].clone())
            .collect()
    };
    // Default: no publications, only the stream top.
    let v = api_v2(&server, "history", json!({"channel": "feed"})).await;
    assert_eq!(data(&v), Vec::<Value>::new(), "{v}");
    assert_eq!(v["result"]["offset"], 5);
    let epoch = v["result"]["epoch"].as_str().unwrap().to_string();
    assert!(!epoch.is_empty());
    let all = api_v2(&server, "history", json!({"channel": "feed", "limit": -1})).await;
    assert_eq!(data(&all), [1, 2, 3, 4, 5].map(|n| json!(n)));
    assert_eq!(
        all["result"]["publications"][0],
        json!({"data": {"n": 1}, "offset": 1})
    );
    let v = api_v2(&server, "history", json!({"channel": "feed", "limit": 2})).await;
    assert_eq!(data(&v), [json!(1), json!(2)]);
    let v = api_v2(
        &server,
        "history",
        json!({"channel": "feed", "limit": 2, "reverse": true}),
    )
    .await;
    assert_eq!(data(&v), [json!(5), json!(4)]);
    let v = api_v2(
        &server,
        "history",
        json!({"channel": "feed", "limit": -1, "since": {"offset": 3, "epoch": epoch}}),
    )
    .await;
    assert_eq!(data(&v), [json!(4), json!(5)], "{v}");
    let v = api_v2(
        &server,
        "history",
        json!({"channel": "feed", "limit": -1, "since": {"offset": 4, "epoch": epoch}, "reverse": true}),
    )
    .await;
    assert_eq!(data(&v), [json!(3), json!(2), json!(1)], "{v}");
}

#[tokio::test]
async fn history_since_another_epoch_is_112_and_416_in_transport_mode() {
    let server = Server::start(with_history()).await;
    api_v2(&server, "publish", json!({"channel": "feed", "data": 1})).await;
    let body = json!({"channel": "feed", "limit": -1, "since": {"offset": 1, "epoch": "not-it"}})
        .to_string();
    let r = call_with(&server, "history", &[], &body).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"error": err(112, "unrecoverable position")}))
    );
    let r = call_with(
        &server,
        "history",
        &[("X-Centrifugo-Error-Mode", "transport")],
        &body,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (416, err(112, "unrecoverable position"))
    );
}
