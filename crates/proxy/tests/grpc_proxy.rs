//! The gRPC proxy transport against a real tonic server implementing `CentrifugoProxy` on a
//! free port: what the backend receives (request fields, metadata), how every result field,
//! `error` and `disconnect` come back through the `Backend` methods, base64 mode, TLS, and
//! failures (server down, a slow handler past the timeout, a status error).

#[path = "grpc_proxy/backend.rs"]
mod backend;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::{serve, serve_on, serve_tls, Seen};
use bytes::Bytes;
use rotor_core::backend::{
    Backend, BackendError, BackendStyle, ConnContext, ConnectEvent, PublishEvent, RpcEvent,
    SubOverride, SubRefreshEvent, SubscribeEvent,
};
use rotor_protocol::{Encoding, Generation};
use rotor_proxy::config::{RpcRoute, TlsSettings};
use rotor_proxy::proto;
use rotor_proxy::{ProxyBackend, ProxyConfig, ProxySettings};
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::Code;

// ---- the node side ----

fn settings(addr: SocketAddr) -> ProxySettings {
    ProxySettings {
        endpoint: format!("grpc://{addr}"),
        timeout: Duration::from_secs(2),
        ..ProxySettings::default()
    }
}

/// Every event on the same proxy object (6.x keys).
fn config(s: ProxySettings) -> ProxyConfig {
    ProxyConfig {
        style: BackendStyle::Modern,
        connect: Some(s.clone()),
        refresh: Some(s.clone()),
        subscribe: Some(s.clone()),
        publish: Some(s.clone()),
        sub_refresh: Some(s.clone()),
        rpc: Some(s),
        rpc_without_namespace: RpcRoute {
            proxy_enabled: true,
            proxy_name: String::new(),
        },
        ..ProxyConfig::default()
    }
}

fn pairs(v: &[(&str, &str)]) -> Arc<[(String, String)]> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
        .into()
}

fn ctx(user: &str) -> ConnContext {
    ConnContext {
        client: Arc::from("client-1"),
        transport: "websocket",
        encoding: Encoding::Json,
        generation: Generation::V2,
        user: user.to_string(),
        meta: Some(Bytes::from_static(br#"{"tier":"gold"}"#)),
        headers: pairs(&[
            ("authorization", "Bearer abc"),
            ("x-custom", "from-transport"),
            ("x-other", "not allowed"),
        ]),
        emulated_headers: pairs(&[("x-emulated", "emu"), ("x-hidden", "not allowed")]),
    }
}

fn md(map: &MetadataMap, key: &str) -> Option<String> {
    map.get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn bool_value(v: bool) -> Option<proto::BoolValue> {
    Some(proto::BoolValue { value: v })
}

fn connect_event() -> ConnectEvent {
    ConnectEvent {
        data: Some(b(r#"{"hello":1}"#)),
        name: "js".to_string(),
        version: "5.0".to_string(),
        channels: vec!["news".to_string()],
    }
}

// ---- tests ----

#[tokio::test]
async fn connect_sends_the_request_and_metadata_and_reads_every_result_field() {
    let srv = serve().await;
    let s = ProxySettings {
        http_headers: vec!["authorization".into(), "x-custom".into()],
        emulated_headers: vec!["x-emulated".into()],
        grpc_static_metadata: vec![
            ("x-static".into(), "fixed".into()),
            ("x-custom".into(), "static-loses".into()),
        ],
        grpc_credentials_key: "X-Api-Key".into(),
        grpc_credentials_value: "secret".into(),
        ..settings(srv.addr)
    };
    let backend = ProxyBackend::new(&config(s)).unwrap();
    let mut subs = std::collections::BTreeMap::new();
    subs.insert(
        "chat:1".to_string(),
        proto::SubscribeOptions {
            info: b(r#"{"ch":"info"}"#),
            data: b(r#"{"ch":"data"}"#),
            r#override: Some(proto::SubscribeOptionOverride {
                presence: bool_value(true),
                join_leave: bool_value(false),
                force_recovery: None,
                force_positioning: bool_value(true),
                force_push_join_leave: None,
            }),
            ..Default::default()
        },
    );
    srv.state.script(|s| {
        s.connect.result = Some(proto::ConnectResult {
            user: "42".into(),
            expire_at: 1_900_000_000,
            info: b(r#"{"name":"Alice"}"#),
            data: b(r#"{"welcome":true}"#),
            channels: vec!["news".into(), "chat:1".into()],
            subs,
            meta: b(r#"{"role":"admin"}"#),
            ..Default::default()
        })
    });

    let grant = backend
        .connect(&ctx(""), connect_event())
        .await
        .unwrap()
        .expect("a result");

    let (meta, seen) = srv.state.last();
    let Seen::Connect(req) = seen else {
        panic!("not a connect: {seen:?}")
    };
    assert_eq!(req.client, "client-1");
    assert_eq!(req.transport, "websocket");
    assert_eq!(req.protocol, "json");
    assert_eq!(req.encoding, "json");
    assert_eq!(req.data, b(r#"{"hello":1}"#));
    assert_eq!(req.b64data, "");
    assert_eq!(req.name, "js");
    assert_eq!(req.version, "5.0");
    assert_eq!(req.channels, vec!["news".to_string()]);

    assert_eq!(md(&meta, "authorization").as_deref(), Some("Bearer abc"));
    assert_eq!(md(&meta, "x-custom").as_deref(), Some("from-transport"));
    assert_eq!(meta.get_all("x-custom").iter().count(), 1);
    assert_eq!(md(&meta, "x-other"), None);
    assert_eq!(md(&meta, "x-emulated").as_deref(), Some("emu"));
    assert_eq!(md(&meta, "x-hidden"), None);
    assert_eq!(md(&meta, "x-static").as_deref(), Some("fixed"));
    assert_eq!(md(&meta, "x-api-key").as_deref(), Some("secret"));
    assert!(meta.get("grpc-timeout").is_some(), "deadline sent");
    assert_eq!(md(&meta, "grpc-encoding"), None, "no compression asked");

    assert_eq!(grant.user, "42");
    assert_eq!(grant.expire_at, Some(1_900_000_000));
    assert_eq!(grant.info, Some(b(r#"{"name":"Alice"}"#)));
    assert_eq!(grant.data, Some(b(r#"{"welcome":true}"#)));
    assert_eq!(grant.meta, Some(b(r#"{"role":"admin"}"#)));
    let chans: Vec<&str> = grant.subs.iter().map(|s| s.channel.as_str()).collect();
    assert_eq!(chans, ["news", "chat:1"]);
    let news = &grant.subs[0];
    assert_eq!((news.info.clone(), news.data.clone()), (None, None));
    assert_eq!(news.overrides, SubOverride::default());
    let chat = &grant.subs[1];
    assert_eq!(chat.info, Some(b(r#"{"ch":"info"}"#)));
    assert_eq!(chat.data, Some(b(r#"{"ch":"data"}"#)));
    assert_eq!(
        chat.overrides,
        SubOverride {
            presence: Some(true),
            join_leave: Some(false),
            force_recovery: None,
            force_positioning: Some(true),
            force_push_join_leave: None,
        }
    );
}

#[tokio::test]
async fn connect_without_result_and_with_zero_expiry() {
    let srv = serve().await;
    let backend = ProxyBackend::new(&config(settings(srv.addr))).unwrap();
    // An empty answer: no credentials.
    let got = backend.connect(&ctx(""), connect_event()).await.unwrap();
    assert!(got.is_none());
    srv.state.script(|s| {
        s.connect.result = Some(proto::ConnectResult {
            user: String::new(),
            ..Default::default()
        })
    });
    let grant = backend
        .connect(&ctx(""), ConnectEvent::default())
        .await
        .unwrap()
        .expect("a result");
    assert_eq!(grant.user, "");
    assert_eq!(grant.expire_at, None);
    assert_eq!((grant.info, grant.data, grant.meta), (None, None, None));
    assert!(grant.subs.is_empty());
    let Seen::Connect(req) = srv.state.last().1 else {
        panic!("not a connect")
    };
    assert_eq!((req.data.len(), req.b64data.as_str()), (0, ""));
}

#[tokio::test]
async fn the_other_events_send_their_fields_and_read_their_results() {
    let srv = serve().await;
    let s = ProxySettings {
        include_connection_meta: true,
        ..settings(srv.addr)
    };
    let backend = ProxyBackend::new(&config(s)).unwrap();
    let meta = b(r#"{"tier":"gold"}"#);
    srv.state.script(|s| {
        s.refresh.result = Some(proto::RefreshResult {
            expired: false,
            expire_at: 1_800_000_000,
            info: b(r#"{"r":1}"#),
            meta: b(r#"{"new":"meta"}"#),
            ..Default::default()
        });
        s.subscribe.result = Some(proto::SubscribeResult {
            expire_at: 1_700_000_000,
            info: b(r#"{"s":"info"}"#),
            data: b(r#"{"s":"data"}"#),
            r#override: Some(proto::SubscribeOptionOverride {
                join_leave: bool_value(true),
                force_recovery: bool_value(false),
                force_push_join_leave: bool_value(true),
                ..Default::default()
            }),
            ..Default::default()
        });
        s.publish.result = Some(proto::PublishResult {
            data: b(r#"{"p":"new"}"#),
            skip_history: true,
            ..Default::default()
        });
        s.sub_refresh.result = Some(proto::SubRefreshResult {
            expired: true,
            expire_at: 0,
            info: b(r#"{"sr":1}"#),
            ..Default::default()
        });
        s.rpc.result = Some(proto::RpcResult {
            data: b(r#"{"price":2019}"#),
            ..Default::default()
        });
    });
    let c = ctx("42");

    let r = backend.refresh(&c).await.unwrap().expect("refresh result");
    assert!(!r.expired);
    assert_eq!(r.expire_at, Some(1_800_000_000));
    assert_eq!(r.info, Some(b(r#"{"r":1}"#)));
    assert_eq!(r.meta, Some(b(r#"{"new":"meta"}"#)));
    let Seen::Refresh(req) = srv.state.last().1 else {
        panic!("not a refresh")
    };
    assert_eq!(
        (
            req.client.as_str(),
            req.transport.as_str(),
            req.user.as_str()
        ),
        ("client-1", "websocket", "42")
    );
    assert_eq!(
        (req.protocol.as_str(), req.encoding.as_str()),
        ("json", "json")
    );
    assert_eq!(req.meta, meta);

    let ev = SubscribeEvent {
        channel: "chat:1".into(),
        data: Some(b(r#"{"want":"x"}"#)),
    };
    let g = backend.subscribe("", &c, ev).await.unwrap();
    assert_eq!(g.info, Some(b(r#"{"s":"info"}"#)));
    assert_eq!(g.data, Some(b(r#"{"s":"data"}"#)));
    assert_eq!(g.expire_at, Some(1_700_000_000));
    assert_eq!(
        g.overrides,
        SubOverride {
            presence: None,
            join_leave: Some(true),
            force_recovery: Some(false),
            force_positioning: None,
            force_push_join_leave: Some(true),
        }
    );
    let Seen::Subscribe(req) = srv.state.last().1 else {
        panic!("not a subscribe")
    };
    assert_eq!((req.user.as_str(), req.channel.as_str()), ("42", "chat:1"));
    assert_eq!(req.data, b(r#"{"want":"x"}"#));
    assert_eq!((req.b64data.as_str(), req.token.as_str()), ("", ""));
    assert_eq!(req.meta, meta);

    let ev = PublishEvent {
        channel: "chat:1".into(),
        data: b(r#"{"text":"hi"}"#),
    };
    let g = backend.publish("", &c, ev).await.unwrap();
    assert_eq!(g.data, Some(b(r#"{"p":"new"}"#)));
    assert!(g.skip_history);
    let Seen::Publish(req) = srv.state.last().1 else {
        panic!("not a publish")
    };
    assert_eq!((req.user.as_str(), req.channel.as_str()), ("42", "chat:1"));
    assert_eq!(req.data, b(r#"{"text":"hi"}"#));
    assert_eq!(req.meta, meta);

    let ev = SubRefreshEvent {
        channel: "chat:1".into(),
    };
    let g = backend
        .sub_refresh("", &c, ev)
        .await
        .unwrap()
        .expect("sub_refresh result");
    assert!(g.expired);
    assert_eq!(g.expire_at, None);
    assert_eq!(g.info, Some(b(r#"{"sr":1}"#)));
    let Seen::SubRefresh(req) = srv.state.last().1 else {
        panic!("not a sub_refresh")
    };
    assert_eq!((req.user.as_str(), req.channel.as_str()), ("42", "chat:1"));
    assert_eq!(req.meta, meta);

    let ev = RpcEvent {
        method: "getPrice".into(),
        data: Some(b(r#"{"id":12}"#)),
    };
    let data = backend.rpc(&c, ev).await.unwrap();
    assert_eq!(data, Some(b(r#"{"price":2019}"#)));
    let Seen::Rpc(req) = srv.state.last().1 else {
        panic!("not an rpc")
    };
    assert_eq!((req.user.as_str(), req.method.as_str()), ("42", "getPrice"));
    assert_eq!(req.data, b(r#"{"id":12}"#));
    assert_eq!(req.meta, meta);

    // Without include_connection_meta no meta travels; an anonymous user is sent as "".
    let plain = ProxyBackend::new(&config(settings(srv.addr))).unwrap();
    plain.refresh(&ctx("")).await.unwrap();
    let Seen::Refresh(req) = srv.state.last().1 else {
        panic!("not a refresh")
    };
    assert_eq!((req.user.as_str(), req.meta.len()), ("", 0));
    // A subscribe answered without a result is allowed with nothing set.
    srv.state.script(|s| s.subscribe.result = None);
    let ev = SubscribeEvent {
        channel: "chat:2".into(),
        data: None,
    };
    let g = plain.subscribe("", &c, ev).await.unwrap();
    assert_eq!((g.info, g.data, g.expire_at), (None, None, None));
}

#[tokio::test]
async fn error_and_disconnect_reach_the_client_in_centrifugos_order() {
    let srv = serve().await;
    let backend = ProxyBackend::new(&config(settings(srv.addr))).unwrap();
    let error = Some(proto::Error {
        code: 1001,
        message: "not allowed".into(),
        temporary: true,
    });
    let disconnect = Some(proto::Disconnect {
        code: 4501,
        reason: "go away".into(),
    });
    let ok = Some(proto::ConnectResult {
        user: "42".into(),
        ..Default::default()
    });
    srv.state.script(|s| {
        s.connect.result = ok.clone();
        s.connect.error = error.clone();
    });
    let got = backend.connect(&ctx(""), connect_event()).await;
    assert_eq!(
        got.err(),
        Some(BackendError::Error {
            code: 1001,
            message: "not allowed".into(),
            temporary: true
        })
    );
    srv.state
        .script(|s| s.connect.disconnect = disconnect.clone());
    let got = backend.connect(&ctx(""), connect_event()).await;
    assert_eq!(
        got.err(),
        Some(BackendError::Disconnect {
            code: 4501,
            reason: "go away".into(),
            reconnect: false
        })
    );

    srv.state.script(|s| {
        s.subscribe.error = error.clone();
        s.publish.disconnect = disconnect.clone();
        s.rpc.error = error.clone();
        s.rpc.result = Some(proto::RpcResult {
            data: b("{}"),
            ..Default::default()
        });
        // Refresh and sub_refresh ignore both.
        s.refresh.error = error.clone();
        s.refresh.disconnect = disconnect.clone();
        s.sub_refresh.disconnect = disconnect.clone();
    });
    let c = ctx("42");
    let sub = SubscribeEvent {
        channel: "a".into(),
        data: None,
    };
    assert!(matches!(
        backend.subscribe("", &c, sub).await,
        Err(BackendError::Error { code: 1001, .. })
    ));
    let publ = PublishEvent {
        channel: "a".into(),
        data: b("{}"),
    };
    assert!(matches!(
        backend.publish("", &c, publ).await,
        Err(BackendError::Disconnect { code: 4501, .. })
    ));
    let rpc = RpcEvent {
        method: "m".into(),
        data: None,
    };
    assert!(matches!(
        backend.rpc(&c, rpc).await,
        Err(BackendError::Error { code: 1001, .. })
    ));
    assert!(backend.refresh(&c).await.unwrap().is_none());
    let ev = SubRefreshEvent {
        channel: "a".into(),
    };
    assert!(backend.sub_refresh("", &c, ev).await.unwrap().is_none());
    // A refresh result next to an error is still used.
    srv.state.script(|s| {
        s.refresh.result = Some(proto::RefreshResult {
            expire_at: 1_800_000_000,
            ..Default::default()
        })
    });
    let r = backend.refresh(&c).await.unwrap().expect("result");
    assert_eq!(r.expire_at, Some(1_800_000_000));
}

#[tokio::test]
async fn binary_encoding_sends_and_reads_the_b64_fields() {
    let srv = serve().await;
    let s = ProxySettings {
        binary_encoding: true,
        ..settings(srv.addr)
    };
    let backend = ProxyBackend::new(&config(s)).unwrap();
    srv.state.script(|s| {
        s.connect.result = Some(proto::ConnectResult {
            user: "7".into(),
            // 6.x: a non-empty b64 field wins over the bytes field.
            info: b("ignored"),
            b64info: "AAEC".into(),
            b64data: "/w==".into(),
            ..Default::default()
        });
        s.publish.result = Some(proto::PublishResult {
            // Publish reads `data` first.
            data: b("raw"),
            b64data: "AAEC".into(),
            ..Default::default()
        });
        s.rpc.result = Some(proto::RpcResult {
            b64data: "not base64!".into(),
            ..Default::default()
        });
    });
    let ev = ConnectEvent {
        data: Some(Bytes::from_static(&[0, 1, 2])),
        ..ConnectEvent::default()
    };
    let g = backend
        .connect(&ctx(""), ev)
        .await
        .unwrap()
        .expect("result");
    assert_eq!(g.info, Some(Bytes::from_static(&[0, 1, 2])));
    assert_eq!(g.data, Some(Bytes::from_static(&[255])));
    let Seen::Connect(req) = srv.state.last().1 else {
        panic!("not a connect")
    };
    assert_eq!(req.encoding, "binary");
    assert_eq!(req.protocol, "json");
    assert_eq!((req.data.len(), req.b64data.as_str()), (0, "AAEC"));

    let ev = PublishEvent {
        channel: "c".into(),
        data: Bytes::from_static(&[255]),
    };
    let g = backend.publish("", &ctx("7"), ev).await.unwrap();
    assert_eq!(g.data, Some(b("raw")));
    let Seen::Publish(req) = srv.state.last().1 else {
        panic!("not a publish")
    };
    assert_eq!((req.data.len(), req.b64data.as_str()), (0, "/w=="));

    // A bad base64 answer is a failed call.
    let ev = RpcEvent {
        method: "m".into(),
        data: None,
    };
    assert_eq!(backend.rpc(&ctx("7"), ev).await, Err(BackendError::Failed));
    let Seen::Rpc(req) = srv.state.last().1 else {
        panic!("not an rpc")
    };
    assert_eq!((req.data.len(), req.b64data.as_str()), (0, ""));
}

#[tokio::test]
async fn each_proxy_forwards_only_its_own_headers() {
    let srv = serve().await;
    let mut cfg = config(ProxySettings {
        http_headers: vec!["authorization".into()],
        ..settings(srv.addr)
    });
    cfg.named = vec![ProxySettings {
        name: "second".into(),
        http_headers: vec!["x-custom".into()],
        grpc_static_metadata: vec![("x-proxy".into(), "second".into())],
        ..settings(srv.addr)
    }];
    let backend = ProxyBackend::new(&cfg).unwrap();
    let ev = || SubscribeEvent {
        channel: "c".into(),
        data: None,
    };
    backend.subscribe("", &ctx("1"), ev()).await.unwrap();
    let (meta, _) = srv.state.last();
    assert_eq!(md(&meta, "authorization").as_deref(), Some("Bearer abc"));
    assert_eq!(md(&meta, "x-custom"), None);
    assert_eq!(md(&meta, "x-proxy"), None);
    // Emulated headers need `emulated_headers`, even when named in `http_headers`.
    assert_eq!(md(&meta, "x-emulated"), None);
    backend.subscribe("second", &ctx("1"), ev()).await.unwrap();
    let (meta, _) = srv.state.last();
    assert_eq!(md(&meta, "authorization"), None);
    assert_eq!(md(&meta, "x-custom").as_deref(), Some("from-transport"));
    assert_eq!(md(&meta, "x-proxy").as_deref(), Some("second"));
}

#[tokio::test]
async fn compression_sends_gzip() {
    let srv = serve().await;
    let s = ProxySettings {
        grpc_compression: true,
        ..settings(srv.addr)
    };
    let backend = ProxyBackend::new(&config(s)).unwrap();
    srv.state.script(|s| {
        s.rpc.result = Some(proto::RpcResult {
            data: Bytes::from(vec![b'7'; 4096]),
            ..Default::default()
        })
    });
    let ev = RpcEvent {
        method: "m".into(),
        data: Some(Bytes::from(vec![b'1'; 4096])),
    };
    let got = backend.rpc(&ctx("1"), ev).await.unwrap();
    assert_eq!(got, Some(Bytes::from(vec![b'7'; 4096])));
    let (meta, seen) = srv.state.last();
    assert_eq!(md(&meta, "grpc-encoding").as_deref(), Some("gzip"));
    let Seen::Rpc(req) = seen else {
        panic!("not an rpc")
    };
    assert_eq!(req.data, Bytes::from(vec![b'1'; 4096]));
}

#[tokio::test]
async fn a_backend_that_is_down_fails_fast_and_is_reached_once_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let s = ProxySettings {
        timeout: Duration::from_secs(5),
        ..settings(addr)
    };
    let backend = ProxyBackend::new(&config(s)).unwrap();
    let started = Instant::now();
    let got = backend.connect(&ctx(""), connect_event()).await;
    assert_eq!(got.err(), Some(BackendError::Failed));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused connection took {:?}",
        started.elapsed()
    );

    let srv = serve_on(TcpListener::bind(addr).await.unwrap()).await;
    srv.state.script(|s| {
        s.connect.result = Some(proto::ConnectResult {
            user: "back".into(),
            ..Default::default()
        })
    });
    let grant = backend
        .connect(&ctx(""), connect_event())
        .await
        .unwrap()
        .expect("result");
    assert_eq!(grant.user, "back");
}

#[tokio::test]
async fn a_slow_backend_fails_at_the_timeout() {
    let srv = serve().await;
    srv.state.script(|s| s.delay = Duration::from_secs(3));
    let timeout = Duration::from_millis(300);
    let s = ProxySettings {
        timeout,
        ..settings(srv.addr)
    };
    let backend = ProxyBackend::new(&config(s)).unwrap();
    let started = Instant::now();
    let got = backend.connect(&ctx(""), connect_event()).await;
    let took = started.elapsed();
    assert_eq!(got.err(), Some(BackendError::Failed));
    assert!(
        took >= Duration::from_millis(250),
        "gave up early: {took:?}"
    );
    assert!(took < timeout + Duration::from_millis(500), "took {took:?}");
    assert_eq!(srv.state.count(), 1, "the call reached the backend");
    let ev = RpcEvent {
        method: "m".into(),
        data: None,
    };
    let started = Instant::now();
    assert_eq!(backend.rpc(&ctx("1"), ev).await, Err(BackendError::Failed));
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
}

#[tokio::test]
async fn a_status_error_is_a_failed_call() {
    let srv = serve().await;
    srv.state
        .script(|s| s.status = Some((Code::PermissionDenied, "no".into())));
    let backend = ProxyBackend::new(&config(settings(srv.addr))).unwrap();
    assert_eq!(
        backend.connect(&ctx(""), connect_event()).await.err(),
        Some(BackendError::Failed)
    );
    let ev = SubscribeEvent {
        channel: "c".into(),
        data: None,
    };
    assert_eq!(
        backend.subscribe("", &ctx("1"), ev).await.err(),
        Some(BackendError::Failed)
    );
    // Refresh fails too (the node retries later) rather than expiring the connection.
    assert_eq!(
        backend.refresh(&ctx("1")).await.err(),
        Some(BackendError::Failed)
    );
}

fn tls_settings(addr: SocketAddr, tls: TlsSettings) -> ProxySettings {
    ProxySettings {
        grpc_tls: TlsSettings {
            enabled: true,
            ..tls
        },
        ..settings(addr)
    }
}

#[tokio::test]
async fn tls_with_the_backends_ca_and_a_client_certificate() {
    let (srv, pki) = serve_tls(true).await;
    srv.state.script(|s| {
        s.connect.result = Some(proto::ConnectResult {
            user: "tls".into(),
            ..Default::default()
        })
    });
    let good = TlsSettings {
        server_ca_pem: pki.server_cert.clone(),
        cert_pem: pki.client_cert.clone(),
        key_pem: pki.client_key.clone(),
        server_name: "localhost".into(),
        ..TlsSettings::default()
    };
    let backend = ProxyBackend::new(&config(tls_settings(srv.addr, good.clone()))).unwrap();
    let grant = backend
        .connect(&ctx(""), connect_event())
        .await
        .unwrap()
        .expect("result");
    assert_eq!(grant.user, "tls");

    // The certificate is for localhost, not for the address dialled.
    let no_name = TlsSettings {
        server_name: String::new(),
        ..good.clone()
    };
    let backend = ProxyBackend::new(&config(tls_settings(srv.addr, no_name))).unwrap();
    let got = backend.connect(&ctx(""), connect_event()).await;
    assert_eq!(got.err(), Some(BackendError::Failed));

    // Without a client certificate the backend refuses the handshake.
    let no_client = TlsSettings {
        cert_pem: String::new(),
        key_pem: String::new(),
        ..good
    };
    let backend = ProxyBackend::new(&config(tls_settings(srv.addr, no_client))).unwrap();
    let got = backend.connect(&ctx(""), connect_event()).await;
    assert_eq!(got.err(), Some(BackendError::Failed));
    assert_eq!(srv.state.count(), 1);
}

#[tokio::test]
async fn tls_insecure_skip_verify_accepts_any_certificate() {
    let (srv, _pki) = serve_tls(false).await;
    let tls = TlsSettings {
        insecure_skip_verify: true,
        ..TlsSettings::default()
    };
    let backend = ProxyBackend::new(&config(tls_settings(srv.addr, tls))).unwrap();
    assert!(backend
        .connect(&ctx(""), connect_event())
        .await
        .unwrap()
        .is_none());
    assert_eq!(srv.state.count(), 1);
    // Plaintext to a TLS backend fails as a call, not at start.
    let backend = ProxyBackend::new(&config(settings(srv.addr))).unwrap();
    let started = Instant::now();
    let got = backend.connect(&ctx(""), connect_event()).await;
    assert_eq!(got.err(), Some(BackendError::Failed));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn bad_grpc_settings_are_refused_at_start() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let half = TlsSettings {
        cert_pem: "-----BEGIN CERTIFICATE-----".into(),
        ..TlsSettings::default()
    };
    let err = ProxyBackend::new(&config(tls_settings(addr, half))).unwrap_err();
    assert!(err.to_string().contains("grpc.tls"), "{err}");
    let missing = TlsSettings {
        server_ca_pem: "/nonexistent/ca.pem".into(),
        ..TlsSettings::default()
    };
    let err = ProxyBackend::new(&config(tls_settings(addr, missing))).unwrap_err();
    assert!(err.to_string().contains("server_ca_pem"), "{err}");
    let s = ProxySettings {
        endpoint: "grpc://".into(),
        ..settings(addr)
    };
    assert!(ProxyBackend::new(&config(s)).is_err());
    let s = ProxySettings {
        grpc_credentials_key: "bad key".into(),
        ..settings(addr)
    };
    let err = ProxyBackend::new(&config(s)).unwrap_err();
    assert!(err.to_string().contains("credentials_key"), "{err}");
}
