//! The HTTP proxy transport against a real HTTP server on a free port: the exact JSON bodies
//! and headers the backend receives in both generations of keys, base64 mode, every result
//! field, `error`/`disconnect` passthrough, status transforms, keep-alive reuse, TLS (custom CA,
//! mTLS, insecure), the proxy metrics, and each failure (timeout, 500, closed socket, non-JSON
//! or wrongly typed body, nothing listening), all through the `Backend` methods.

#[path = "http_proxy/backend.rs"]
mod backend;
#[path = "http_proxy/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::{closes_mid_request, never_answers, start, start_with, Seen, TestBackend};
use bytes::Bytes;
use pki::{acceptor, pki, Pki};
use rotor_core::backend::{
    Backend, BackendError, BackendStyle, ConnContext, ConnectEvent, PublishEvent, RpcEvent,
    SubOverride, SubRefreshEvent, SubscribeEvent,
};
use rotor_protocol::{Encoding, Generation};
use rotor_proxy::config::{RpcRoute, StatusTransform, TlsSettings};
use rotor_proxy::{ProxyBackend, ProxyConfig, ProxySettings};
use serde_json::{json, Value};

// ---- the node side ----

fn settings(url: &str) -> ProxySettings {
    ProxySettings {
        endpoint: url.to_string(),
        timeout: Duration::from_secs(2),
        ..ProxySettings::default()
    }
}

/// Every event on its own path of the same server (`/connect`, `/rpc`, ...).
fn config(style: BackendStyle, url: &str, tweak: impl Fn(&mut ProxySettings)) -> ProxyConfig {
    let s = |path: &str| {
        let mut s = settings(&format!("{url}/{path}"));
        tweak(&mut s);
        Some(s)
    };
    ProxyConfig {
        style,
        connect: s("connect"),
        refresh: s("refresh"),
        subscribe: s("subscribe"),
        publish: s("publish"),
        sub_refresh: s("sub_refresh"),
        rpc: s("rpc"),
        rpc_without_namespace: RpcRoute {
            proxy_enabled: true,
            proxy_name: String::new(),
        },
        ..ProxyConfig::default()
    }
}

fn backend(cfg: &ProxyConfig) -> ProxyBackend {
    ProxyBackend::new(cfg).expect("proxy backend")
}

fn pairs(v: &[(&str, &str)]) -> Arc<[(String, String)]> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
        .into()
}

/// A connection as the core hands it over: the headers some proxy asked for.
fn ctx(encoding: Encoding, user: &str) -> ConnContext {
    ConnContext {
        client: Arc::from("client-1"),
        transport: "websocket",
        encoding,
        generation: Generation::V2,
        user: user.to_string(),
        meta: Some(Bytes::from_static(br#"{"tier":"gold"}"#)),
        headers: pairs(&[
            ("cookie", "session=s3cr3t"),
            ("user-agent", "test-agent"),
            ("authorization", "Bearer abc"),
            ("x-custom", "from-transport"),
            ("x-other", "not listed"),
        ]),
        emulated_headers: pairs(&[
            ("x-emulated", "emu"),
            ("x-custom", "from-emulation"),
            ("x-hidden", "not listed"),
        ]),
    }
}

fn json_ctx() -> ConnContext {
    ctx(Encoding::Json, "42")
}

fn ok(body: Value) -> (u16, String) {
    (200, body.to_string())
}

fn by_path(b: &TestBackend, path: &str) -> Seen {
    let all = b.requests();
    all.iter()
        .find(|s| s.path == path)
        .cloned()
        .unwrap_or_else(|| panic!("no request to {path}: {all:#?}"))
}

fn failed<T: std::fmt::Debug>(r: Result<T, BackendError>) {
    assert!(matches!(r, Err(BackendError::Failed)), "{r:?}");
}

// ---- request bodies and headers ----

#[tokio::test]
async fn legacy_connect_sends_the_2x_body_and_the_default_headers() {
    let b = start(|_| ok(json!({"result": {"user": "42"}}))).await;
    let cfg = config(BackendStyle::Legacy, &b.url, |s| {
        s.http_headers = vec!["X-Custom".to_string()];
    });
    let p = backend(&cfg);
    // The extra header is asked for in lower case, as the transports ask.
    assert!(p.wants_header("x-custom") && p.wants_header("cookie"));
    assert!(!p.wants_header("x-other"));
    let ev = ConnectEvent {
        data: Some(Bytes::from_static(br#"{"hello": "world"}"#)),
        name: "js".into(),
        version: "2.8.5".into(),
        channels: vec!["news".into()],
    };
    let grant = p.connect(&json_ctx(), ev).await.expect("connect");
    assert_eq!(grant.map(|g| g.user).as_deref(), Some("42"));
    let seen = b.only();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/connect")
    );
    // 2.x: no `channels`, payload embedded verbatim.
    assert_eq!(
        seen.json(),
        json!({"client": "client-1", "transport": "websocket", "protocol": "json",
               "encoding": "json", "data": {"hello": "world"}, "name": "js", "version": "2.8.5"})
    );
    assert!(
        seen.body.contains(r#""data":{"hello": "world"}"#),
        "{}",
        seen.body
    );
    assert_eq!(seen.header("cookie"), ["session=s3cr3t"]);
    assert_eq!(seen.header("content-type"), ["application/json"]);
    assert_eq!(
        seen.header_names(),
        [
            "authorization",
            "content-type",
            "cookie",
            "user-agent",
            "x-custom"
        ]
    );
}

#[tokio::test]
async fn modern_requests_carry_every_field_and_only_listed_headers() {
    let b = start(|_| ok(json!({}))).await;
    let cfg = config(BackendStyle::Modern, &b.url, |s| {
        s.http_headers = vec!["Authorization".into(), "x-custom".into(), "x-hidden".into()];
        s.emulated_headers = vec!["X-Emulated".into(), "x-custom".into()];
        s.static_headers = vec![
            ("x-static".into(), "fixed".into()),
            ("x-emulated".into(), "static loses".into()),
        ];
        s.include_connection_meta = true;
    });
    let p = backend(&cfg);
    let c = json_ctx();
    let connect = ConnectEvent {
        data: None,
        name: String::new(),
        version: String::new(),
        channels: vec!["news".into(), "chat:1".into()],
    };
    p.connect(&c, connect).await.expect("connect");
    p.refresh(&c).await.expect("refresh");
    let sub = SubscribeEvent {
        channel: "chat:1".into(),
        data: Some(Bytes::from_static(b"[1,2]")),
    };
    p.subscribe("", &c, sub).await.expect("subscribe");
    let publ = PublishEvent {
        channel: "chat:1".into(),
        data: Bytes::from_static(br#"{"text":"hi"}"#),
    };
    p.publish("", &c, publ).await.expect("publish");
    let sr = SubRefreshEvent {
        channel: "chat:1".into(),
    };
    p.sub_refresh("", &c, sr).await.expect("sub_refresh");
    let rpc = RpcEvent {
        method: "getPrice".into(),
        data: Some(Bytes::from_static(br#"{"id":12}"#)),
    };
    p.rpc(&c, rpc).await.expect("rpc");
    let head = json!({"client": "client-1", "transport": "websocket", "protocol": "json",
                      "encoding": "json"});
    let with = |extra: Value| {
        let mut v = head.clone();
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };
    let meta = json!({"tier": "gold"});
    let want = [
        ("/connect", with(json!({"channels": ["news", "chat:1"]}))),
        ("/refresh", with(json!({"user": "42", "meta": meta}))),
        (
            "/subscribe",
            with(json!({"user": "42", "channel": "chat:1", "meta": meta, "data": [1, 2]})),
        ),
        (
            "/publish",
            with(json!({"user": "42", "channel": "chat:1", "data": {"text": "hi"}, "meta": meta})),
        ),
        (
            "/sub_refresh",
            with(json!({"user": "42", "channel": "chat:1", "meta": meta})),
        ),
        (
            "/rpc",
            with(json!({"user": "42", "method": "getPrice", "data": {"id": 12}, "meta": meta})),
        ),
    ];
    assert_eq!(b.requests().len(), want.len());
    for (path, body) in want {
        let seen = by_path(&b, path);
        assert_eq!(seen.json(), body, "{path}");
        assert_eq!(
            seen.header_names(),
            [
                "authorization",
                "content-type",
                "x-custom",
                "x-emulated",
                "x-static"
            ],
            "{path}"
        );
        assert_eq!(seen.header("x-static"), ["fixed"]);
        // Emulated over static, transport over emulated.
        assert_eq!(seen.header("x-emulated"), ["emu"]);
        assert_eq!(seen.header("x-custom"), ["from-transport"]);
        assert_eq!(seen.header("content-type"), ["application/json"]);
    }
}

#[tokio::test]
async fn anonymous_user_is_sent_as_an_empty_string_and_empty_fields_are_omitted() {
    let b = start(|_| ok(json!({}))).await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |_| {}));
    let mut c = ctx(Encoding::Json, "");
    c.meta = None;
    let rpc = RpcEvent {
        method: String::new(),
        data: None,
    };
    assert_eq!(p.rpc(&c, rpc).await, Ok(None));
    assert_eq!(
        b.only().json(),
        json!({"client": "client-1", "transport": "websocket", "protocol": "json",
               "encoding": "json", "user": ""})
    );
}

#[tokio::test]
async fn binary_encoding_sends_b64data_and_reads_b64_fields() {
    let b = start(|s| match s.path.as_str() {
        "/rpc" => ok(json!({"result": {"data": {"ignored": true}, "b64data": "AAEC"}})),
        _ => ok(json!({"result": {"b64data": "cmVwbGFjZWQ="}})),
    })
    .await;
    // 6.x: `binary_encoding` applies to JSON clients too; the payload need not be JSON.
    let p = backend(&config(BackendStyle::Modern, &b.url, |s| {
        s.binary_encoding = true
    }));
    let rpc = RpcEvent {
        method: "m".into(),
        data: Some(Bytes::from_static(b"\x00not json")),
    };
    let got = p.rpc(&json_ctx(), rpc).await.expect("rpc");
    assert_eq!(got.as_deref(), Some(&b"\x00\x01\x02"[..]));
    let seen = b.only();
    assert_eq!(seen.json()["encoding"], "binary");
    assert_eq!(seen.json()["protocol"], "json");
    assert_eq!(seen.json()["b64data"], "AG5vdCBqc29u");
    assert!(seen.json().get("data").is_none());
    b.clear();

    // 2.x: a Protobuf client gets binary mode, and only the `b64*` fields are read.
    let p = backend(&config(BackendStyle::Legacy, &b.url, |_| {}));
    let c = ctx(Encoding::Protobuf, "42");
    let rpc = RpcEvent {
        method: "m".into(),
        data: Some(Bytes::from_static(b"\xff")),
    };
    let got = p.rpc(&c, rpc).await.expect("rpc");
    assert_eq!(got.as_deref(), Some(&b"\x00\x01\x02"[..]));
    let seen = b.only();
    assert_eq!(
        (
            seen.json()["encoding"].clone(),
            seen.json()["protocol"].clone()
        ),
        (json!("binary"), json!("protobuf"))
    );
    assert_eq!(seen.json()["b64data"], "/w==");
    // Publish reads `data` first, then `b64data`.
    let publ = PublishEvent {
        channel: "c".into(),
        data: Bytes::from_static(b"\x01"),
    };
    let g = p.publish("", &c, publ).await.expect("publish");
    assert_eq!(g.data.as_deref(), Some(&b"replaced"[..]));
}

#[tokio::test]
async fn a_non_json_payload_in_json_mode_is_a_failed_call_and_nothing_is_sent() {
    let b = start(|_| ok(json!({}))).await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |_| {}));
    let publ = PublishEvent {
        channel: "c".into(),
        data: Bytes::from_static(b"{not json"),
    };
    failed(p.publish("", &json_ctx(), publ).await);
    // Bad connection meta fails the calls that include it.
    let p2 = backend(&config(BackendStyle::Modern, &b.url, |s| {
        s.include_connection_meta = true;
    }));
    let mut c = json_ctx();
    c.meta = Some(Bytes::from_static(b"\x01\x02"));
    failed(p2.refresh(&c).await);
    assert!(b.requests().is_empty());
}

// ---- results ----

#[tokio::test]
async fn every_result_field_reaches_the_grants() {
    let b = start(|s| match s.path.as_str() {
        "/connect" => ok(json!({"result": {
            "user": "42", "expire_at": 1_900_000_000i64, "info": {"name": "Alice"},
            "data": {"welcome": true}, "channels": ["news"], "meta": {"tier": "gold"},
            "subs": {"chat:1": {"info": {"role": "admin"}, "b64data": "eA==",
                     "override": {"presence": {"value": true}, "force_recovery": {"value": false}}}},
            "caps": [], "unknown_field": 1
        }})),
        "/refresh" => ok(json!({"result": {"expired": false, "expire_at": 1_900_000_600i64,
                                           "b64info": "aW5mbw==", "meta": [1]}})),
        "/subscribe" => ok(json!({"result": {"info": {"i": 1}, "data": "d", "expire_at": 0,
            "override": {"join_leave": {"value": true}, "force_positioning": {"value": true},
                         "force_push_join_leave": {"value": false}}}})),
        "/publish" => ok(json!({"result": {"data": {"text": "edited"}, "skip_history": true}})),
        "/sub_refresh" => ok(json!({"result": {"expired": true, "expire_at": 5, "info": "x"}})),
        _ => ok(json!({"result": {"data": {"price": 2019}}})),
    })
    .await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |_| {}));
    let c = json_ctx();
    let g = p
        .connect(&c, ConnectEvent::default())
        .await
        .expect("connect")
        .expect("grant");
    assert_eq!(g.user, "42");
    assert_eq!(g.expire_at, Some(1_900_000_000));
    assert_eq!(g.info.as_deref(), Some(&br#"{"name":"Alice"}"#[..]));
    assert_eq!(g.data.as_deref(), Some(&br#"{"welcome":true}"#[..]));
    assert_eq!(g.meta.as_deref(), Some(&br#"{"tier":"gold"}"#[..]));
    assert_eq!(g.subs.len(), 2);
    assert_eq!(g.subs[0].channel, "news");
    assert!(g.subs[0].info.is_none());
    assert_eq!(g.subs[1].channel, "chat:1");
    assert_eq!(g.subs[1].info.as_deref(), Some(&br#"{"role":"admin"}"#[..]));
    assert_eq!(g.subs[1].data.as_deref(), Some(&b"x"[..]));
    assert_eq!(
        g.subs[1].overrides,
        SubOverride {
            presence: Some(true),
            force_recovery: Some(false),
            ..SubOverride::default()
        }
    );

    let r = p.refresh(&c).await.expect("refresh").expect("grant");
    assert!(!r.expired);
    assert_eq!(r.expire_at, Some(1_900_000_600));
    assert_eq!(r.info.as_deref(), Some(&b"info"[..]));
    assert_eq!(r.meta.as_deref(), Some(&b"[1]"[..]));

    let sub = SubscribeEvent {
        channel: "chat:1".into(),
        data: None,
    };
    let s = p.subscribe("", &c, sub).await.expect("subscribe");
    assert_eq!(s.info.as_deref(), Some(&br#"{"i":1}"#[..]));
    assert_eq!(s.data.as_deref(), Some(&br#""d""#[..]));
    assert_eq!(s.expire_at, None);
    assert_eq!(
        s.overrides,
        SubOverride {
            join_leave: Some(true),
            force_positioning: Some(true),
            force_push_join_leave: Some(false),
            ..SubOverride::default()
        }
    );

    let publ = PublishEvent {
        channel: "chat:1".into(),
        data: Bytes::from_static(b"{}"),
    };
    let pg = p.publish("", &c, publ).await.expect("publish");
    assert_eq!(pg.data.as_deref(), Some(&br#"{"text":"edited"}"#[..]));
    assert!(pg.skip_history);

    let sr = SubRefreshEvent {
        channel: "chat:1".into(),
    };
    let srg = p
        .sub_refresh("", &c, sr)
        .await
        .expect("sub_refresh")
        .expect("grant");
    assert!(srg.expired);
    assert_eq!(srg.expire_at, Some(5));
    assert_eq!(srg.info.as_deref(), Some(&br#""x""#[..]));

    let rpc = RpcEvent {
        method: "getPrice".into(),
        data: None,
    };
    let data = p.rpc(&c, rpc).await.expect("rpc");
    assert_eq!(data.as_deref(), Some(&br#"{"price":2019}"#[..]));
}

#[tokio::test]
async fn answers_without_result_are_no_result() {
    let b = start(|_| ok(json!({"something": "else"}))).await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |_| {}));
    let c = json_ctx();
    assert!(p
        .connect(&c, ConnectEvent::default())
        .await
        .expect("connect")
        .is_none());
    assert!(p.refresh(&c).await.expect("refresh").is_none());
    let sub = SubscribeEvent {
        channel: "c".into(),
        data: None,
    };
    let s = p.subscribe("", &c, sub).await.expect("subscribe");
    assert!(s.info.is_none() && s.data.is_none());
}

#[tokio::test]
async fn error_and_disconnect_pass_through_except_on_refreshes() {
    let b = start(|s| match s.path.as_str() {
        "/connect" | "/refresh" => ok(json!({
            "result": {"user": "ignored"},
            "error": {"code": 1001, "message": "no"},
            "disconnect": {"code": 4501, "reason": "go away", "reconnect": true}
        })),
        "/rpc" => ok(
            json!({"error": {"code": 1002, "message": "try later", "temporary": true},
                            "result": {"data": 1}}),
        ),
        _ => ok(json!({"error": {"code": 1003, "message": "denied"},
                       "result": {"expired": false, "expire_at": 99}})),
    })
    .await;
    let p = backend(&config(BackendStyle::Legacy, &b.url, |_| {}));
    let c = json_ctx();
    assert_eq!(
        p.connect(&c, ConnectEvent::default()).await.map(|_| ()),
        Err(BackendError::Disconnect {
            code: 4501,
            reason: "go away".into(),
            reconnect: true
        })
    );
    let rpc = RpcEvent {
        method: "m".into(),
        data: None,
    };
    assert_eq!(
        p.rpc(&c, rpc).await,
        Err(BackendError::Error {
            code: 1002,
            message: "try later".into(),
            temporary: true
        })
    );
    let sub = SubscribeEvent {
        channel: "c".into(),
        data: None,
    };
    assert_eq!(
        p.subscribe("", &c, sub).await.map(|_| ()),
        Err(BackendError::Error {
            code: 1003,
            message: "denied".into(),
            temporary: false
        })
    );
    // Refresh and sub_refresh ignore `error` and `disconnect`.
    let r = p.refresh(&c).await.expect("refresh");
    assert!(r.is_some_and(|r| r.expire_at.is_none() && !r.expired));
    let p6 = backend(&config(BackendStyle::Modern, &b.url, |_| {}));
    let sr = SubRefreshEvent {
        channel: "c".into(),
    };
    let g = p6.sub_refresh("", &c, sr).await.expect("sub_refresh");
    assert_eq!(g.and_then(|g| g.expire_at), Some(99));
}

#[tokio::test]
async fn status_transforms_become_answers_and_refreshes_get_no_result() {
    let b = start(|s| match s.path.as_str() {
        "/rpc" | "/refresh" => (403, "forbidden".to_string()),
        "/subscribe" | "/sub_refresh" => (401, String::new()),
        _ => (404, String::new()),
    })
    .await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |s| {
        s.status_transforms = vec![
            StatusTransform {
                status_code: 403,
                error_code: 1403,
                error_message: "forbidden".into(),
                error_temporary: true,
                ..StatusTransform::default()
            },
            StatusTransform {
                status_code: 401,
                disconnect_code: 4401,
                disconnect_reason: "unauthorized".into(),
                ..StatusTransform::default()
            },
        ];
    }));
    let c = json_ctx();
    let rpc = RpcEvent {
        method: "m".into(),
        data: None,
    };
    assert_eq!(
        p.rpc(&c, rpc).await,
        Err(BackendError::Error {
            code: 1403,
            message: "forbidden".into(),
            temporary: true
        })
    );
    let sub = SubscribeEvent {
        channel: "c".into(),
        data: None,
    };
    assert_eq!(
        p.subscribe("", &c, sub).await.map(|_| ()),
        Err(BackendError::Disconnect {
            code: 4401,
            reason: "unauthorized".into(),
            reconnect: false
        })
    );
    assert_eq!(p.refresh(&c).await.map(|r| r.is_none()), Ok(true));
    let sr = SubRefreshEvent {
        channel: "c".into(),
    };
    assert_eq!(
        p.sub_refresh("", &c, sr).await.map(|r| r.is_none()),
        Ok(true)
    );
    // A status without a transform is still a failure.
    failed(p.connect(&c, ConnectEvent::default()).await);
}

// ---- failures ----

#[tokio::test]
async fn bad_answers_are_failed_calls() {
    let b = start(|s| match s.path.as_str() {
        "/connect" => (500, json!({"result": {"user": "x"}}).to_string()),
        "/refresh" => ok_raw("<html>oops</html>"),
        "/subscribe" => ok_raw(""),
        "/publish" => ok(json!({"result": {"skip_history": "yes"}})),
        "/sub_refresh" => ok(json!({"result": {"b64info": "%%%"}})),
        _ => ok(json!({"result": {"user": 5}, "error": {"code": "x"}})),
    })
    .await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |_| {}));
    let c = json_ctx();
    failed(p.connect(&c, ConnectEvent::default()).await);
    failed(p.refresh(&c).await);
    let sub = SubscribeEvent {
        channel: "c".into(),
        data: None,
    };
    failed(p.subscribe("", &c, sub).await);
    let publ = PublishEvent {
        channel: "c".into(),
        data: Bytes::from_static(b"1"),
    };
    failed(p.publish("", &c, publ).await);
    let sr = SubRefreshEvent {
        channel: "c".into(),
    };
    failed(p.sub_refresh("", &c, sr).await);
    let rpc = RpcEvent {
        method: "m".into(),
        data: None,
    };
    failed(p.rpc(&c, rpc).await);
    assert_eq!(b.requests().len(), 6);
}

fn ok_raw(body: &str) -> (u16, String) {
    (200, body.to_string())
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_a_failed_call() {
    // 17 MiB of valid JSON: refused for its size (16 MiB cap), not parsed.
    let big = format!("{{\"result\":{{\"data\":\"{}\"}}}}", "x".repeat(17 << 20));
    let b = start(move |_| ok_raw(&big)).await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |s| {
        s.timeout = std::time::Duration::from_secs(10);
    }));
    let rpc = RpcEvent {
        method: "m".into(),
        data: None,
    };
    failed(p.rpc(&json_ctx(), rpc).await);
    // The same call with a small answer succeeds.
    let small = start(|_| ok(json!({"result": {"data": {"ok": true}}}))).await;
    let p = backend(&config(BackendStyle::Modern, &small.url, |_| {}));
    let rpc = RpcEvent {
        method: "m".into(),
        data: None,
    };
    assert!(p.rpc(&json_ctx(), rpc).await.is_ok());
}

#[tokio::test]
async fn a_backend_that_never_answers_fails_at_the_timeout() {
    let (url, _server) = never_answers().await;
    let timeout = Duration::from_millis(300);
    let p = backend(&config(BackendStyle::Modern, &url, |s| s.timeout = timeout));
    let started = Instant::now();
    failed(p.connect(&json_ctx(), ConnectEvent::default()).await);
    let took = started.elapsed();
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_millis(700), "{took:?}");
}

#[tokio::test]
async fn a_closed_socket_or_nothing_listening_is_a_failed_call() {
    let (url, _server) = closes_mid_request().await;
    let p = backend(&config(BackendStyle::Modern, &url, |_| {}));
    let started = Instant::now();
    failed(p.connect(&json_ctx(), ConnectEvent::default()).await);
    assert!(started.elapsed() < Duration::from_secs(2));

    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    let p = backend(&config(BackendStyle::Modern, &url, |_| {}));
    failed(p.refresh(&json_ctx()).await);
}

// ---- pool, metrics ----

#[tokio::test]
async fn calls_reuse_one_keep_alive_connection() {
    let b = start(|_| ok(json!({"result": {"data": 1}}))).await;
    let p = backend(&config(BackendStyle::Modern, &b.url, |_| {}));
    for _ in 0..5 {
        let rpc = RpcEvent {
            method: "m".into(),
            data: None,
        };
        assert_eq!(
            p.rpc(&json_ctx(), rpc).await,
            Ok(Some(Bytes::from_static(b"1")))
        );
    }
    assert_eq!(b.requests().len(), 5);
    assert_eq!(b.connections(), 1);
}

#[tokio::test]
async fn calls_are_counted_per_type_and_proxy_name() {
    let b = start(|s| match s.path.as_str() {
        "/bad" => (500, String::new()),
        _ => ok(json!({"error": {"code": 1000, "message": "refused"}})),
    })
    .await;
    let named = |name: &str, path: &str| ProxySettings {
        name: name.to_string(),
        ..settings(&format!("{}/{path}", b.url))
    };
    let cfg = ProxyConfig {
        style: BackendStyle::Modern,
        named: vec![named("metrics-ok", "good"), named("metrics-bad", "bad")],
        ..ProxyConfig::default()
    };
    let p = backend(&cfg);
    let c = json_ctx();
    for name in ["metrics-ok", "metrics-bad", "metrics-bad"] {
        let sub = SubscribeEvent {
            channel: "c".into(),
            data: None,
        };
        let _ = p.subscribe(name, &c, sub).await;
    }
    let snap = rotor_proxy::metrics::snapshot();
    let find = |name: &str| {
        snap.iter()
            .find(|s| s.name == name && s.kind == "subscribe")
            .unwrap_or_else(|| panic!("no series for {name}: {snap:#?}"))
    };
    let good = find("metrics-ok");
    // The backend's own error answer is not a failed call.
    assert_eq!(
        (good.protocol, good.duration.count(), good.errors),
        ("http", 1, 0)
    );
    let bad = find("metrics-bad");
    assert_eq!((bad.duration.count(), bad.errors, bad.inflight), (2, 2, 0));
}

// ---- TLS ----

async fn tls_backend(pki: &Pki, client_auth: bool) -> TestBackend {
    let handler: backend::Handler = Arc::new(|_| ok(json!({"result": {"data": "secure"}})));
    start_with(handler, Some(acceptor(pki, client_auth))).await
}

async fn tls_rpc(url: &str, tls: TlsSettings) -> Result<Option<Bytes>, BackendError> {
    let p = backend(&config(BackendStyle::Modern, url, |s| {
        s.http_tls = tls.clone()
    }));
    let rpc = RpcEvent {
        method: "m".into(),
        data: None,
    };
    p.rpc(&json_ctx(), rpc).await
}

#[tokio::test]
async fn https_with_a_custom_ca_a_client_certificate_and_a_server_name() {
    let pki = pki();
    let b = tls_backend(&pki, true).await;
    let dir = std::env::temp_dir().join(format!("rotor-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).expect("write ca");
    let secure = Some(Bytes::from_static(br#""secure""#));
    // CA as a file path, client certificate as PEM text.
    let tls = TlsSettings {
        enabled: true,
        server_ca_pem: ca_file.to_string_lossy().into_owned(),
        cert_pem: pki.client.0.clone(),
        key_pem: pki.client.1.clone(),
        server_name: "backend.test".into(),
        ..TlsSettings::default()
    };
    assert_eq!(tls_rpc(&b.url, tls.clone()).await, Ok(secure.clone()));
    // Without the client certificate the backend refuses the handshake.
    let no_cert = TlsSettings {
        cert_pem: String::new(),
        key_pem: String::new(),
        ..tls.clone()
    };
    failed(tls_rpc(&b.url, no_cert).await);
    // The certificate does not name 127.0.0.1: without server_name, verification fails.
    let wrong_name = TlsSettings {
        server_name: String::new(),
        ..tls
    };
    failed(tls_rpc(&b.url, wrong_name).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn https_to_an_unknown_ca_fails_unless_verification_is_skipped() {
    let pki = pki();
    let b = tls_backend(&pki, false).await;
    // TLS options off: the system roots do not know the test CA.
    failed(tls_rpc(&b.url, TlsSettings::default()).await);
    let insecure = TlsSettings {
        enabled: true,
        insecure_skip_verify: true,
        ..TlsSettings::default()
    };
    let got = tls_rpc(&b.url, insecure).await;
    assert_eq!(got, Ok(Some(Bytes::from_static(br#""secure""#))));
    assert_eq!(b.requests().len(), 1);
}

#[tokio::test]
async fn bad_tls_settings_are_refused_at_start() {
    let cfg = config(BackendStyle::Modern, "https://127.0.0.1:1", |s| {
        s.http_tls = TlsSettings {
            enabled: true,
            server_ca_pem: "/nonexistent/ca.pem".into(),
            ..TlsSettings::default()
        };
    });
    assert!(ProxyBackend::new(&cfg).is_err());
    let cfg = config(BackendStyle::Modern, "https://127.0.0.1:1", |s| {
        s.http_tls = TlsSettings {
            enabled: true,
            insecure_skip_verify: true,
            cert_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            ..TlsSettings::default()
        };
    });
    assert!(ProxyBackend::new(&cfg).is_err());
}
