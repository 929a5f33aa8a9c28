//! End-to-end tests of the current HTTP server API (GRPC-API.md §3.2, §3.3) on the real binary:
//! one route per method and `/batch`, the status codes (405 before auth, 401, 404 for PRO and
//! unknown paths, 400 `Bad Request` for bodies of the wrong shape), the transport error mode by
//! config and by header, the result shapes, and the publish options (b64data, tags,
//! skip_history, idempotency_key) as a WebSocket subscriber sees them.

mod api_v6_tests;
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
    // Over the 2 MiB body limit: 413 with the key, 401 without (the key is checked first).
    let big = format!(r#"{{"channel":"a","data":"{}"}}"#, "x".repeat(3 << 20));
    let r = call_with(&server, "publish", &[], &big).await;
    assert_eq!(r.status, 413, "oversized body");
    let r = post(&server.http_url("/api/batch"), &[], big).await;
    assert_eq!(r.status, 401, "oversized body without key");
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
