//! End-to-end tests of the current HTTP server API (GRPC-API.md §3.2, §3.3) on the real binary:
//! one route per method and `/batch`, the status codes (405 before auth, 401, 404 for PRO and
//! unknown paths, 400 `Bad Request` for bodies of the wrong shape), the transport error mode by
//! config and by header, the result shapes, and the publish options (b64data, tags,
//! skip_history, idempotency_key) as a WebSocket subscriber sees them.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ROUTES: [&str; 14] = [
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "info",
    "rpc",
    "refresh",
    "channels",
    "batch",
];

fn err(code: u64, message: &str) -> Value {
    json!({"code": code, "message": message})
}

fn with_history() -> Value {
    json!({"history_size": 10, "history_lifetime": 60, "presence": true})
}

/// `POST /api/<method>` with extra headers (and the API key).
async fn call_with(
    server: &Server,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    let mut h = vec![("X-API-Key", API_KEY)];
    h.extend_from_slice(headers);
    post(
        &server.http_url(&format!("/api/{method}")),
        &h,
        body.to_string(),
    )
    .await
}

async fn request(server: &Server, method: reqwest::Method, path: &str) -> HttpReply {
    let resp = http()
        .request(method, server.http_url(path))
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    read_reply(resp).await
}

// ---------------------------------------------------------------------------------------------
// Routes and status codes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_route_answers_post_and_only_post() {
    let server = Server::start(json!({})).await;
    for route in ROUTES {
        let path = format!("/api/{route}");
        // The method is checked before the key: no key here.
        for m in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
        ] {
            let r = request(&server, m.clone(), &path).await;
            assert_eq!((r.status, r.body.as_str()), (405, ""), "{m} {path}: {r:?}");
        }
        let r = post(&server.http_url(&path), &[], "{}").await;
        assert_eq!((r.status, r.body.as_str()), (401, ""), "{path} without key");
        let r = call_with(&server, route, &[], "{}").await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/json"),
            "{path}"
        );
        let v = r.json();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        if route == "batch" {
            assert_eq!(v, json!({"replies": []}), "{path}");
        } else {
            // `{}` is a valid body for each; the answer is a result or an API error.
            assert!(keys == ["result"] || keys == ["error"], "{path}: {v}");
        }
    }
}

#[tokio::test]
async fn results_of_methods_without_fields() {
    let server = Server::start(with_history()).await;
    let (_ws, _) = server.v2_client("alice").await;
    for (method, body, want) in [
        ("channels", "{}", json!({"result": {"channels": {}}})),
        (
            "history_remove",
            r#"{"channel":"c"}"#,
            json!({"result": {}}),
        ),
        (
            "presence",
            r#"{"channel":"c"}"#,
            json!({"result": {"presence": {}}}),
        ),
        (
            "presence_stats",
            r#"{"channel":"c"}"#,
            json!({"result": {"num_clients": 0, "num_users": 0}}),
        ),
        (
            "rpc",
            r#"{"method":"x"}"#,
            json!({"error": err(104, "not found")}),
        ),
        (
            "publish",
            r#"{"channel":"nope:c","data":{}}"#,
            json!({"error": err(102, "unknown channel")}),
        ),
        (
            "publish",
            r#"{"channel":"c"}"#,
            json!({"error": err(107, "bad request")}),
        ),
        // Unknown fields are ignored; `null` reads as an empty request.
        (
            "channels",
            r#"{"whatever":1}"#,
            json!({"result": {"channels": {}}}),
        ),
        ("channels", "null", json!({"result": {"channels": {}}})),
    ] {
        let r = call_with(&server, method, &[], body).await;
        assert_eq!((r.status, r.json()), (200, want), "{method} {body}");
    }
}

#[tokio::test]
async fn unknown_and_pro_paths_are_404() {
    let server = Server::start(json!({})).await;
    for path in [
        "/api/connections",
        "/api/update_user_status",
        "/api/get_user_status",
        "/api/delete_user_status",
        "/api/block_user",
        "/api/unblock_user",
        "/api/revoke_token",
        "/api/invalidate_user_tokens",
        "/api/device_register",
        "/api/send_push_notification",
        "/api/rate_limit",
        "/api/nosuchmethod",
        "/api/publish/extra",
        "/api/batch/x",
        "/api/Publish",
    ] {
        let r = call_with(&server, path.trim_start_matches("/api/"), &[], "{}").await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    // The 2.x endpoint is still at the bare prefix.
    let r = api_v1_raw(&server, r#"{"method":"channels","params":{}}"#).await;
    assert_eq!(
        (r.status, r.lines()),
        (200, vec![json!({"result": {"channels": []}})])
    );
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_are_400_bad_request() {
    let server = Server::start(json!({})).await;
    let bad = [
        ("info", ""),
        ("info", "  \n"),
        ("info", "[]"),
        ("info", "{"),
        ("info", "\"x\""),
        ("channels", ""),
        ("channels", "[\"a\"]"),
        ("publish", r#"{"channel":5,"data":{}}"#),
        ("publish", r#"{"channel":"a","data":{}} trailing"#),
        (
            "publish",
            r#"{"channel":"a","skip_history":"yes","data":1}"#,
        ),
        ("broadcast", r#"{"channels":"a","data":1}"#),
        ("history", r#"{"channel":"a","limit":"x"}"#),
        ("disconnect", r#"{"user":"u","disconnect":5}"#),
        ("batch", ""),
        ("batch", "[]"),
        ("batch", r#"{"commands":[{"publish":{"channel":5}}]}"#),
        ("batch", r#"{"commands":{}}"#),
    ];
    for (method, body) in bad {
        let r = call_with(&server, method, &[], body).await;
        assert_eq!(r.status, 400, "{method} {body:?}: {r:?}");
        assert_eq!(r.body.trim(), "Bad Request", "{method} {body:?}");
        assert!(
            r.content_type
                .as_deref()
                .unwrap_or("")
                .starts_with("text/plain"),
            "{r:?}"
        );
    }
    // Not valid UTF-8.
    let resp = http()
        .post(server.http_url("/api/publish"))
        .header("X-API-Key", API_KEY)
        .body(b"{\"channel\":\"\xff\",\"data\":1}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn api_key_sources_and_wrong_keys() {
    let server = Server::start(json!({})).await;
    let url = server.http_url("/api/info");
    for headers in [
        vec![("X-API-Key", "api")],
        vec![("Authorization", "apikey api")],
        vec![("Authorization", "APIKEY api")],
        vec![("Authorization", "ApiKey api")],
    ] {
        let r = post(&url, &headers, "{}").await;
        assert_eq!(r.status, 200, "{headers:?}: {r:?}");
    }
    let r = post(&server.http_url("/api/info?api_key=api"), &[], "{}").await;
    assert_eq!(r.status, 200, "query key: {r:?}");
    for headers in [
        vec![],
        vec![("X-API-Key", "API")],
        vec![("X-API-Key", "ap")],
        vec![("X-API-Key", "apii")],
        vec![("X-API-Key", "")],
        vec![("Authorization", "bearer api")],
        vec![("Authorization", "apikey wrong")],
        vec![("Authorization", "api")],
    ] {
        let r = post(&url, &headers, "{}").await;
        assert_eq!((r.status, r.body.as_str()), (401, ""), "{headers:?}");
    }
    let r = post(&server.http_url("/api/info?api_key=nope"), &[], "{}").await;
    assert_eq!(r.status, 401);
    // 401 comes before the body check.
    let r = post(&url, &[], "not json").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn empty_key_closes_the_api_unless_insecure() {
    let closed = Server::start(json!({"api_key": ""})).await;
    for route in ROUTES {
        for headers in [
            vec![],
            vec![("X-API-Key", "")],
            vec![("Authorization", "apikey ")],
        ] {
            let r = post(&closed.http_url(&format!("/api/{route}")), &headers, "{}").await;
            assert_eq!(
                (r.status, r.body.as_str()),
                (401, ""),
                "{route} {headers:?}"
            );
        }
    }
    let open = Server::start(json!({"api_key": "", "api_insecure": true})).await;
    let r = post(&open.http_url("/api/info"), &[], "{}").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(
        &open.http_url("/api/batch"),
        &[],
        r#"{"commands":[{"info":{}}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// Transport error mode
// ---------------------------------------------------------------------------------------------

/// Calls that fail with each reachable API error code, and the transport-mode status.
async fn assert_transport_errors(server: &Server, headers: &[(&str, &str)]) {
    for (method, body, status, error) in [
        (
            "publish",
            r#"{"channel":"","data":1}"#,
            400,
            err(107, "bad request"),
        ),
        (
            "publish",
            r#"{"channel":"x:a","data":1}"#,
            404,
            err(102, "unknown channel"),
        ),
        (
            "presence",
            r#"{"channel":"nopresence:a"}"#,
            400,
            err(108, "not available"),
        ),
        (
            "history",
            r#"{"channel":"nopresence:a"}"#,
            400,
            err(108, "not available"),
        ),
        ("rpc", r#"{"method":"m"}"#, 404, err(104, "not found")),
        (
            "broadcast",
            r#"{"channels":[],"data":1}"#,
            400,
            err(107, "bad request"),
        ),
    ] {
        let r = call_with(server, method, headers, body).await;
        assert_eq!((r.status, r.json()), (status, error), "{method} {body}");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    // Successes keep their shape.
    let r = call_with(server, "publish", headers, r#"{"channel":"a","data":1}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"result": {}})));
    // Broadcast: per-channel errors stay in the 200 body.
    let r = call_with(
        server,
        "broadcast",
        headers,
        r#"{"channels":["a","x:b"],"data":1}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"result": {"responses": [{"result": {}}, {"error": err(102, "unknown channel")}]}})
        )
    );
    // Never for /batch.
    let r = call_with(
        server,
        "batch",
        headers,
        r#"{"commands":[{"publish":{"channel":"x:a","data":1}},{"rpc":{"method":"m"}}]}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"replies": [{"error": err(102, "unknown channel")}, {"error": err(104, "not found")}]})
        )
    );
}

fn namespaces() -> Value {
    json!({"namespaces": [{"name": "nopresence"}]})
}

#[tokio::test]
async fn transport_error_mode_by_flat_config() {
    let mut extra = namespaces();
    extra["api_error_mode"] = json!("transport");
    let server = Server::start(extra).await;
    assert_transport_errors(&server, &[]).await;
}

#[tokio::test]
async fn transport_error_mode_by_nested_config() {
    let mut extra = namespaces();
    extra["http_api"] = json!({"error_mode": "transport"});
    let server = Server::start(extra).await;
    assert_transport_errors(&server, &[]).await;
}

#[tokio::test]
async fn transport_error_mode_by_header_only_for_that_request() {
    let server = Server::start(namespaces()).await;
    assert_transport_errors(&server, &[("X-Centrifugo-Error-Mode", "transport")]).await;
    for headers in [
        vec![],
        vec![("X-Centrifugo-Error-Mode", "")],
        vec![("X-Centrifugo-Error-Mode", "other")],
    ] {
        let r = call_with(
            &server,
            "publish",
            &headers,
            r#"{"channel":"x:a","data":1}"#,
        )
        .await;
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"error": err(102, "unknown channel")})),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn unknown_error_mode_fails_the_start() {
    for cfg in [
        json!({"api_error_mode": "Transport"}),
        json!({"api_error_mode": "grpc"}),
        json!({"http_api": {"error_mode": "status"}}),
        json!({"api_error_mode": 1}),
    ] {
        let mut full = base_config(free_port());
        for (k, v) in cfg.as_object().unwrap() {
            full[k] = v.clone();
        }
        let (status, out) = run_rotor_with_config_text(&full.to_string(), Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("{cfg}: rotor kept running: {out}"));
        assert!(!status.success(), "{cfg}: {out}");
        assert!(out.contains("error_mode"), "{cfg}: names the key: {out}");
    }
    // The empty mode is the default and valid.
    let server = Server::start(json!({"api_error_mode": ""})).await;
    server.assert_alive();
}

#[test]
fn checkconfig_shows_the_error_mode_from_file_and_env() {
    let dir = std::env::temp_dir().join(format!("rotor-emode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Not config.json: without -c, checkconfig reads only the environment.
    let path = dir.join("emode.json");
    std::fs::write(&path, r#"{"http_api":{"error_mode":"transport"}}"#).unwrap();
    let effective = |args: &[&str], env: &[(&str, &str)]| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let file = path.to_str().unwrap();
    assert_eq!(
        effective(&["checkconfig", "-c", file], &[])["api_error_mode"],
        "transport"
    );
    let env = [("CENTRIFUGO_HTTP_API_ERROR_MODE", "transport")];
    assert_eq!(
        effective(&["checkconfig"], &env)["api_error_mode"],
        "transport"
    );
    assert_eq!(effective(&["checkconfig"], &[])["api_error_mode"], "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("checkconfig")
        .env("CENTRIFUGO_API_ERROR_MODE", "bad")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn custom_handler_prefix_moves_every_route() {
    let server = Server::start(json!({"api_handler_prefix": "/srv/api/"})).await;
    let h = [("X-API-Key", API_KEY)];
    let r = post(&server.http_url("/srv/api/info"), &h, "{}").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(
        &server.http_url("/srv/api/batch"),
        &h,
        r#"{"commands":[{"info":{}}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(&server.http_url("/srv/api/connections"), &h, "{}").await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = post(&server.http_url("/api/info"), &h, "{}").await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = post(
        &server.http_url("/srv/api"),
        &h,
        r#"{"method":"info","params":{}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// Batch
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Result shapes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Publish options
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Connection methods (subscribe, unsubscribe, disconnect, refresh) end to end
// ---------------------------------------------------------------------------------------------

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
