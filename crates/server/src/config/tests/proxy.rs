//! Unit tests of the proxy keys: every key of both generations lands in the `ProxyConfig` or
//! the channel options, from files and from the environment; what Centrifugo refuses at start
//! is refused with the key named; nothing about proxies is "not supported yet".

use super::*;
use rotor_core::backend::BackendStyle;
use rotor_proxy::config::{RpcNamespace, RpcRoute, StatusTransform, TlsSettings};
use rotor_proxy::ProxySettings;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[track_caller]
fn no_proxy_warnings(c: &LoadedConfig) {
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn centrifugo_2x_flat_keys() {
    let c = ok(r#"{
        "proxy_connect_endpoint": "http://app/connect", "proxy_connect_timeout": 0.5,
        "proxy_refresh_endpoint": "http://app/refresh", "proxy_refresh_timeout": 3,
        "proxy_rpc_endpoint": "http://app/rpc",
        "proxy_subscribe_endpoint": "grpc://app:9000", "proxy_subscribe_timeout": "2s",
        "proxy_publish_endpoint": "", "proxy_publish_timeout": 4,
        "proxy_extra_http_headers": ["X-B3-TraceId", "X-App"],
        "proxy_subscribe": true,
        "namespaces": [{"name": "chat", "proxy_publish": true, "proxy_subscribe": false}]
    }"#);
    no_proxy_warnings(&c);
    let p = &c.proxy;
    assert_eq!(p.style, BackendStyle::Legacy);
    let extra = vec!["x-b3-traceid".to_string(), "x-app".to_string()];
    let want = |endpoint: &str, timeout| ProxySettings {
        endpoint: endpoint.into(),
        timeout,
        http_headers: extra.clone(),
        ..ProxySettings::default()
    };
    assert_eq!(p.connect, Some(want("http://app/connect", ms(500))));
    assert_eq!(p.refresh, Some(want("http://app/refresh", secs(3))));
    assert_eq!(p.rpc, Some(want("http://app/rpc", secs(1))));
    assert_eq!(p.subscribe, Some(want("grpc://app:9000", secs(2))));
    // An empty endpoint leaves that proxy off, whatever its timeout.
    assert_eq!(p.publish, None);
    assert!(p.named.is_empty() && p.sub_refresh.is_none() && !p.rpc_ping);
    let top = &c.node.channel_options;
    assert!(top.proxy_subscribe && !top.proxy_publish);
    let chat = &c.node.namespaces[0].options;
    assert!(chat.proxy_publish && !chat.proxy_subscribe);
}

#[test]
fn centrifugo_2x_environment() {
    let vars = [
        ("CENTRIFUGO_PROXY_CONNECT_ENDPOINT", "http://app/connect"),
        ("CENTRIFUGO_PROXY_CONNECT_TIMEOUT", "2.5"),
        ("CENTRIFUGO_PROXY_RPC_ENDPOINT", "http://app/rpc"),
        ("ROTOR_PROXY_RPC_TIMEOUT", "1.5"),
        ("CENTRIFUGO_PROXY_EXTRA_HTTP_HEADERS", "X-Token X-App"),
        ("CENTRIFUGO_PROXY_SUBSCRIBE", "true"),
    ];
    let c = run(None, &vars).unwrap();
    no_proxy_warnings(&c);
    let p = &c.proxy;
    assert_eq!(p.style, BackendStyle::Legacy);
    let connect = p.connect.as_ref().unwrap();
    assert_eq!(
        (&*connect.endpoint, connect.timeout),
        ("http://app/connect", ms(2500))
    );
    assert_eq!(connect.http_headers, ["x-token", "x-app"]);
    assert_eq!(p.rpc.as_ref().unwrap().timeout, ms(1500));
    assert!(c.node.channel_options.proxy_subscribe);
    // The file's value loses to the environment's.
    let path = file(
        "json",
        r#"{"proxy_connect_endpoint": "http://file/connect"}"#,
    );
    let c = run(Some(&path), &vars).unwrap();
    assert_eq!(c.proxy.connect.unwrap().endpoint, "http://app/connect");
}

#[test]
fn centrifugo_2x_rules() {
    // A namespace may route to a proxy that is not configured: clients get 108, as in 2.x.
    let c = ok(r#"{"namespaces": [{"name": "chat", "proxy_subscribe": true}]}"#);
    assert!(c.proxy.is_empty());
    assert!(c.node.namespaces[0].options.proxy_subscribe);
    // Rotor bounds every call.
    let e = fail(r#"{"proxy_rpc_endpoint": "http://a", "proxy_rpc_timeout": 0}"#);
    has(
        &e,
        r#"config key "proxy_rpc_timeout": must be greater than 0"#,
    );
    // 2.x has no sub refresh proxy.
    let e = fail(r#"{"proxy_subscribe_endpoint": "http://a", "sub_refresh_proxy_enabled": true}"#);
    has(
        &e,
        "sub_refresh_proxy_enabled needs channel.proxy.sub_refresh",
    );
    has(
        &fail(r#"{"proxy_connect_endpoint": 5}"#),
        "proxy_connect_endpoint",
    );
    has(
        &fail(r#"{"proxy_connect_timeout": "soon"}"#),
        "proxy_connect_timeout",
    );
}

const V6_FULL: &str = r#"
client:
  proxy:
    connect:
      enabled: true
      endpoint: http://app/connect
      timeout: 500ms
      http_headers: [Cookie, Authorization]
      emulated_headers: [X-Emulated]
      grpc_metadata: [X-Meta]
      binary_encoding: true
      include_connection_meta: true
      http:
        static_headers: {X-Static: s1}
        status_to_code_transforms:
          - {status_code: 404, to_error: {code: 1404, message: not found, temporary: true}}
          - {status_code: 403, to_disconnect: {code: 4403, reason: forbidden}}
        tls:
          enabled: true
          cert_pem: /c.pem
          key_pem: /k.pem
          server_ca_pem: /ca.pem
          client_ca_pem: /cca.pem
          insecure_skip_verify: true
          server_name: app.local
    refresh:
      enabled: true
      endpoint: grpc://app:9000
      grpc:
        tls: {enabled: true, server_name: g.local}
        credentials_key: authorization
        credentials_value: secret-token
        compression: true
        static_metadata: [{key: x-m, value: v1}]
channel:
  proxy:
    subscribe:
      endpoint: http://app/subscribe
    publish:
      endpoint: http://app/publish
      timeout: 2s
    sub_refresh:
      endpoint: http://app/sub_refresh
  without_namespace:
    allow_subscribe_for_client: true
    subscribe_proxy_enabled: true
    publish_proxy_enabled: true
    publish_proxy_name: default
  namespaces:
    - name: chat
      allow_subscribe_for_client: true
      subscribe_proxy_enabled: true
      subscribe_proxy_name: other
      sub_refresh_proxy_enabled: true
      sub_refresh_proxy_name: other
      publish_proxy_name: other
rpc:
  proxy:
    endpoint: http://app/rpc
  without_namespace:
    proxy_enabled: true
  namespaces:
    - {name: billing, proxy_enabled: true, proxy_name: other}
    - {name: off, proxy_enabled: false}
  namespace_boundary: "."
  ping:
    enabled: true
    method: health
proxies:
  - name: other
    endpoint: http://other/
    timeout: 3s
    http_headers: [X-Other]
"#;

#[test]
fn centrifugo_6_nested_keys() {
    let c = load_text("yaml", V6_FULL, &[]).unwrap();
    no_proxy_warnings(&c);
    let p = &c.proxy;
    assert_eq!(p.style, BackendStyle::Modern);
    let connect = ProxySettings {
        endpoint: "http://app/connect".into(),
        timeout: ms(500),
        http_headers: vec!["cookie".into(), "authorization".into()],
        emulated_headers: vec!["x-emulated".into()],
        grpc_metadata: vec!["x-meta".into()],
        binary_encoding: true,
        include_connection_meta: true,
        static_headers: vec![("X-Static".into(), "s1".into())],
        status_transforms: vec![
            StatusTransform {
                status_code: 404,
                error_code: 1404,
                error_message: "not found".into(),
                error_temporary: true,
                ..StatusTransform::default()
            },
            StatusTransform {
                status_code: 403,
                disconnect_code: 4403,
                disconnect_reason: "forbidden".into(),
                ..StatusTransform::default()
            },
        ],
        http_tls: TlsSettings {
            enabled: true,
            cert_pem: "/c.pem".into(),
            key_pem: "/k.pem".into(),
            server_ca_pem: "/ca.pem".into(),
            insecure_skip_verify: true,
            server_name: "app.local".into(),
        },
        ..ProxySettings::default()
    };
    assert_eq!(p.connect, Some(connect));
    let refresh = ProxySettings {
        endpoint: "grpc://app:9000".into(),
        grpc_tls: TlsSettings {
            enabled: true,
            server_name: "g.local".into(),
            ..TlsSettings::default()
        },
        grpc_credentials_key: "authorization".into(),
        grpc_credentials_value: "secret-token".into(),
        grpc_compression: true,
        grpc_static_metadata: vec![("x-m".into(), "v1".into())],
        ..ProxySettings::default()
    };
    assert_eq!(p.refresh, Some(refresh));
    let plain = |e: &str| ProxySettings {
        endpoint: e.into(),
        ..ProxySettings::default()
    };
    assert_eq!(p.subscribe, Some(plain("http://app/subscribe")));
    let publish = ProxySettings {
        timeout: secs(2),
        ..plain("http://app/publish")
    };
    assert_eq!(p.publish, Some(publish));
    assert_eq!(p.sub_refresh, Some(plain("http://app/sub_refresh")));
    assert_eq!(p.rpc, Some(plain("http://app/rpc")));
    let other = ProxySettings {
        name: "other".into(),
        timeout: secs(3),
        http_headers: vec!["x-other".into()],
        ..plain("http://other/")
    };
    assert_eq!(p.named, [other]);
    let route = |on: bool, name: &str| RpcRoute {
        proxy_enabled: on,
        proxy_name: name.into(),
    };
    assert_eq!(p.rpc_without_namespace, route(true, ""));
    let ns = |name: &str, route| RpcNamespace {
        name: name.into(),
        route,
    };
    assert_eq!(
        p.rpc_namespaces,
        [
            ns("billing", route(true, "other")),
            ns("off", route(false, ""))
        ]
    );
    assert_eq!(p.rpc_namespace_boundary, ".");
    assert!(p.rpc_ping);
    assert_eq!(p.rpc_ping_method, "health");
    // The namespace switches are channel options; `default` is the unnamed proxy.
    let top = &c.node.channel_options;
    assert!(top.proxy_subscribe && top.proxy_publish && !top.proxy_sub_refresh);
    assert_eq!(top.publish_proxy_name, "");
    let chat = &c.node.namespaces[0].options;
    assert!(chat.proxy_subscribe && chat.proxy_sub_refresh && !chat.proxy_publish);
    assert_eq!(chat.subscribe_proxy_name, "other");
    assert_eq!(chat.sub_refresh_proxy_name, "other");
    assert_eq!(chat.publish_proxy_name, "other");
    // A channel proxy object is only there with an endpoint; an off connect proxy is None.
    let c = load_text(
        "yaml",
        "client:\n  proxy:\n    connect:\n      timeout: 2s\nchannel:\n  proxy:\n    \
         subscribe:\n      timeout: 2s\n",
        &[],
    )
    .unwrap();
    assert!(c.proxy.is_empty(), "{:?}", c.proxy);
    no_proxy_warnings(&c);
    // `rpc.ping: true` is taken as `rpc.ping.enabled`.
    let c = load_text("yaml", "rpc:\n  ping: true\n", &[]).unwrap();
    assert!(c.proxy.rpc_ping && !c.proxy.is_empty());
    assert_eq!(c.proxy.rpc_ping_method, "ping");
}

#[test]
fn centrifugo_6_environment() {
    let vars = [
        ("CENTRIFUGO_CLIENT_PROXY_CONNECT_ENABLED", "true"),
        (
            "CENTRIFUGO_CLIENT_PROXY_CONNECT_ENDPOINT",
            "http://env/connect",
        ),
        ("CENTRIFUGO_CLIENT_PROXY_CONNECT_TIMEOUT", "2s"),
        (
            "CENTRIFUGO_CLIENT_PROXY_CONNECT_HTTP_HEADERS",
            "Cookie X-Real-Ip",
        ),
        (
            "CENTRIFUGO_CLIENT_PROXY_CONNECT_HTTP_STATIC_HEADERS",
            r#"{"X-S":"1"}"#,
        ),
        ("CENTRIFUGO_CLIENT_PROXY_CONNECT_HTTP_TLS_ENABLED", "true"),
        (
            "CENTRIFUGO_CLIENT_PROXY_CONNECT_HTTP_STATUS_TO_CODE_TRANSFORMS",
            r#"[{"status_code":404,"to_error":{"code":1404}}]"#,
        ),
        ("CENTRIFUGO_CLIENT_PROXY_REFRESH_ENABLED", "1"),
        ("CENTRIFUGO_CLIENT_PROXY_REFRESH_ENDPOINT", "app:9000"),
        ("CENTRIFUGO_CLIENT_PROXY_REFRESH_GRPC_CREDENTIALS_KEY", "k"),
        (
            "CENTRIFUGO_CHANNEL_PROXY_SUBSCRIBE_ENDPOINT",
            "http://env/sub",
        ),
        (
            "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_SUBSCRIBE_PROXY_ENABLED",
            "true",
        ),
        ("CENTRIFUGO_CHANNEL_NAMESPACES", "chat"),
        (
            "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_SUBSCRIBE_FOR_CLIENT",
            "1",
        ),
        (
            "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_ALLOW_SUBSCRIBE_FOR_CLIENT",
            "1",
        ),
        (
            "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_PUBLISH_PROXY_ENABLED",
            "true",
        ),
        (
            "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_PUBLISH_PROXY_NAME",
            "named-one",
        ),
        ("CENTRIFUGO_PROXIES", "named-one two"),
        ("CENTRIFUGO_PROXIES_NAMED_ONE_ENDPOINT", "http://env/one"),
        ("ROTOR_PROXIES_NAMED_ONE_TIMEOUT", "4s"),
        ("CENTRIFUGO_PROXIES_NAMED_ONE_TIMEOUT", "9s"),
        ("CENTRIFUGO_PROXIES_TWO_ENDPOINT", "grpc://env:1"),
        ("CENTRIFUGO_PROXIES_TWO_GRPC_COMPRESSION", "true"),
        ("CENTRIFUGO_RPC_PROXY_ENDPOINT", "http://env/rpc"),
        ("CENTRIFUGO_RPC_WITHOUT_NAMESPACE_PROXY_ENABLED", "true"),
        ("CENTRIFUGO_RPC_NAMESPACES", "billing"),
        ("CENTRIFUGO_RPC_NAMESPACES_BILLING_PROXY_ENABLED", "true"),
        ("CENTRIFUGO_RPC_NAMESPACES_BILLING_PROXY_NAME", "two"),
        ("CENTRIFUGO_RPC_NAMESPACE_BOUNDARY", "/"),
        ("CENTRIFUGO_RPC_PING_ENABLED", "true"),
        ("CENTRIFUGO_RPC_PING_METHOD", "p"),
        ("CENTRIFUGO_PROXIES_NOPE_ENDPOINT", "http://x"),
    ];
    let c = run(None, &vars).unwrap();
    let w = c.warnings.join("\n");
    has(&w, r#"unknown config key "proxies_nope_endpoint""#);
    assert_eq!(c.warnings.len(), 1, "{w}");
    let p = &c.proxy;
    assert_eq!(p.style, BackendStyle::Modern);
    let connect = p.connect.as_ref().unwrap();
    assert_eq!(
        (&*connect.endpoint, connect.timeout),
        ("http://env/connect", secs(2))
    );
    assert_eq!(connect.http_headers, ["cookie", "x-real-ip"]);
    assert_eq!(connect.static_headers, [("X-S".into(), "1".into())]);
    assert!(connect.http_tls.enabled);
    assert_eq!(connect.status_transforms[0].error_code, 1404);
    let refresh = p.refresh.as_ref().unwrap();
    assert_eq!(
        (&*refresh.endpoint, &*refresh.grpc_credentials_key),
        ("app:9000", "k")
    );
    assert_eq!(p.subscribe.as_ref().unwrap().endpoint, "http://env/sub");
    let names: Vec<_> = p.named.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["named-one", "two"]);
    assert_eq!(
        (&*p.named[0].endpoint, p.named[0].timeout),
        ("http://env/one", secs(4))
    );
    assert!(p.named[1].grpc_compression);
    assert_eq!(p.rpc.as_ref().unwrap().endpoint, "http://env/rpc");
    assert!(p.rpc_without_namespace.proxy_enabled);
    assert_eq!(p.rpc_namespaces[0].route.proxy_name, "two");
    assert_eq!(p.rpc_namespace_boundary, "/");
    assert!(p.rpc_ping);
    assert_eq!(p.rpc_ping_method, "p");
    assert!(c.node.channel_options.proxy_subscribe);
    let chat = &c.node.namespaces[0].options;
    assert!(chat.proxy_publish);
    assert_eq!(chat.publish_proxy_name, "named-one");

    // The named list as JSON, as Centrifugo accepts list values from the environment; the
    // environment's field wins over the file's.
    let path = file(
        "yaml",
        "client:\n  proxy:\n    connect:\n      enabled: true\n      endpoint: http://file\n",
    );
    let vars = [
        (
            "CENTRIFUGO_PROXIES",
            r#"[{"name":"js","endpoint":"http://js","timeout":"2s"}]"#,
        ),
        ("CENTRIFUGO_CLIENT_PROXY_CONNECT_ENDPOINT", "http://env"),
    ];
    let c = run(Some(&path), &vars).unwrap();
    assert_eq!(c.proxy.connect.unwrap().endpoint, "http://env");
    assert_eq!(
        (&*c.proxy.named[0].name, c.proxy.named[0].timeout),
        ("js", secs(2))
    );
    let e = run(None, &[("CENTRIFUGO_PROXIES", "[{")]).unwrap_err();
    has(
        &e,
        r#"config key "proxies": expected a JSON array of objects"#,
    );
    let e = run(None, &[("CENTRIFUGO_CLIENT_PROXY_CONNECT_ENABLED", "sure")]).unwrap_err();
    has(
        &e,
        r#"config key "client.proxy.connect.enabled": expected a boolean"#,
    );
    has(&e, "(from env CENTRIFUGO_CLIENT_PROXY_CONNECT_ENABLED)");
}

fn fail6(yaml: &str) -> String {
    load_text("yaml", yaml, &[]).unwrap_err()
}

#[test]
fn centrifugo_6_start_up_checks_name_the_key() {
    let connect = "client:\n  proxy:\n    connect:\n      enabled: true\n";
    has(
        &fail6(connect),
        "client.proxy.connect: endpoint is required",
    );
    let zero =
        "client:\n  proxy:\n    refresh:\n      enabled: true\n      endpoint: http://a\n      \
                timeout: \"0\"\n";
    has(
        &fail6(zero),
        "client.proxy.refresh: timeout must be greater than zero",
    );
    let named = |list: &str, ns: &str| {
        format!(
            "proxies:\n{list}channel:\n  namespaces:\n    - name: chat\n      \
             allow_subscribe_for_client: true\n{ns}"
        )
    };
    let one = "  - {name: one, endpoint: http://one}\n";
    let unknown = named(
        one,
        "      subscribe_proxy_enabled: true\n      subscribe_proxy_name: two\n",
    );
    let e = fail6(&unknown);
    has(
        &e,
        r#"namespace "chat" subscribe_proxy_name: unknown proxy name "two""#,
    );
    has(&e, "invalid proxy configuration (in file ");
    // A name on a namespace whose switch is off is not looked up.
    let off = named(one, "      subscribe_proxy_name: two\n");
    assert!(load_text("yaml", &off, &[]).is_ok());
    has(
        &fail6(&named("  - {name: a, endpoint: http://a}\n", "")),
        r#"proxy "a": invalid name"#,
    );
    has(
        &fail6(&named("  - {name: default, endpoint: http://a}\n", "")),
        r#"proxy name "default" is reserved"#,
    );
    let twice = "  - {name: one, endpoint: http://a}\n  - {name: one, endpoint: http://b}\n";
    has(&fail6(&named(twice, "")), r#"proxy "one" is defined twice"#);
    has(
        &fail6(&named("  - {name: one}\n", "")),
        "proxies[one]: endpoint is required",
    );
    has(
        &fail6(&named("  - {endpoint: http://a}\n", "")),
        r#"config key "proxies": item 0 has no "name""#,
    );
    let bad_field = named("  - {name: one, endpoint: http://a, timeout: later}\n", "");
    has(&fail6(&bad_field), r#"config key "proxies[one].timeout""#);
    // 6.x refuses a switched-on channel proxy that is not configured (2.x would answer 108).
    let e = fail6("channel:\n  without_namespace:\n    publish_proxy_enabled: true\n");
    has(
        &e,
        "channel.proxy.publish: endpoint is required (channel.without_namespace has \
         publish_proxy_enabled on)",
    );
    let e =
        fail6("channel:\n  namespaces:\n    - name: chat\n      sub_refresh_proxy_enabled: true\n");
    has(
        &e,
        r#"channel.proxy.sub_refresh: endpoint is required (namespace "chat""#,
    );
    // RPC routes.
    let e = fail6("rpc:\n  without_namespace:\n    proxy_enabled: true\n");
    has(
        &e,
        "rpc.proxy: endpoint is required (rpc.without_namespace has proxy_enabled on)",
    );
    let e = fail6(
        "rpc:\n  namespaces:\n    - {name: billing, proxy_enabled: true, proxy_name: nope}\n",
    );
    has(&e, r#"unknown proxy name "nope""#);
    has(
        &fail6("rpc:\n  namespaces:\n    - {name: b}\n"),
        r#"rpc namespace "b": invalid name"#,
    );
    has(
        &fail6("rpc:\n  namespace_boundary: \"\"\n"),
        r#""rpc.namespace_boundary": must not be empty"#,
    );
    let transform =
        "client:\n  proxy:\n    connect:\n      enabled: true\n      endpoint: http://a\n      \
                     http:\n        status_to_code_transforms: [{status_code: 500}]\n";
    has(
        &fail6(transform),
        "status_to_code_transforms[0]: no error or disconnect code set",
    );
}

#[test]
fn both_generations_at_once_are_refused() {
    let e = fail(
        r#"{"proxy_connect_endpoint": "http://a",
        "client": {"proxy": {"connect": {"enabled": true, "endpoint": "http://b"}}}}"#,
    );
    has(
        &e,
        r#"proxy keys of two generations are set: "proxy_connect_endpoint" (Centrifugo 2.x)"#,
    );
    has(&e, r#""client.proxy.connect.enabled" (Centrifugo 6)"#);
    let e = run(
        None,
        &[
            ("CENTRIFUGO_PROXY_RPC_ENDPOINT", "http://a"),
            ("CENTRIFUGO_PROXIES", "one"),
            ("CENTRIFUGO_PROXIES_ONE_ENDPOINT", "http://b"),
        ],
    )
    .unwrap_err();
    has(
        &e,
        r#""proxy_rpc_endpoint" (Centrifugo 2.x) and "proxies" (Centrifugo 6)"#,
    );
    let e = fail(
        r#"{"proxy_subscribe_endpoint": "http://a",
        "namespaces": [{"name": "chat", "proxy_subscribe": true, "subscribe_proxy_name": "x"}]}"#,
    );
    has(
        &e,
        r#""subscribe_proxy_name in namespace \"chat\"" (Centrifugo 6)"#,
    );
    // The 6.x switch names alone are aliases of the 2.x ones: a 2.x layout still.
    let c = ok(r#"{"proxy_subscribe_endpoint": "http://a", "subscribe_proxy_enabled": true}"#);
    assert_eq!(c.proxy.style, BackendStyle::Legacy);
    assert!(c.node.channel_options.proxy_subscribe);
    // Timeouts alone configure nothing: no conflict.
    let c = ok(r#"{"proxy_connect_timeout": 2,
        "client": {"proxy": {"connect": {"enabled": true, "endpoint": "http://b"}}}}"#);
    assert_eq!(c.proxy.style, BackendStyle::Modern);
}

#[test]
fn subscribe_streams_and_3_to_5_keys_are_refused_when_set() {
    for opt in [
        "subscribe_stream_proxy_enabled",
        "subscribe_stream_proxy_bidirectional",
        "proxy_subscribe_stream",
    ] {
        let e = fail(&format!(
            r#"{{"namespaces": [{{"name": "chat", "{opt}": true}}]}}"#
        ));
        has(
            &e,
            &format!(r#"config key "{opt}" in namespace "chat": subscribe stream"#),
        );
        has(&e, "not supported");
        let e = fail(&format!(r#"{{"{opt}": true}}"#));
        has(&e, "subscribe stream proxies are not supported");
    }
    let e = fail6("channel:\n  without_namespace:\n    subscribe_stream_proxy_enabled: true\n");
    has(
        &e,
        r#""channel.without_namespace.subscribe_stream_proxy_enabled""#,
    );
    // Off, they are fine; the stream proxy object alone is only warned about.
    let c = load_text(
        "yaml",
        "channel:\n  proxy:\n    subscribe_stream:\n      endpoint: grpc://a:1\n  \
         without_namespace:\n    allow_subscribe_for_client: true\n    \
         subscribe_stream_proxy_enabled: false\n",
        &[],
    )
    .unwrap();
    let w = c.warnings.join("\n");
    has(
        &w,
        r#"config key "channel.proxy.subscribe_stream" is not supported yet"#,
    );
    assert_eq!(c.warnings.len(), 1, "{w}");
    for key in [
        r#""proxy_http_headers": ["Cookie"]"#,
        r#""proxy_grpc_metadata": ["x"]"#,
        r#""proxy_binary_encoding": true"#,
        r#""proxy_sub_refresh_endpoint": "http://a""#,
        r#""proxy_grpc_tls_cert": "x""#,
        r#""granular_proxy_mode": true"#,
        r#""connect_proxy_name": "x""#,
        r#""rpc_namespaces": [{"name": "x"}]"#,
        r#""rpc_ping": true"#,
    ] {
        let e = fail(&format!("{{{key}}}"));
        let name = key.split('"').nth(1).unwrap();
        has(
            &e,
            &format!(r#"config key "{name}": Centrifugo 3-5 proxy keys are not supported"#),
        );
    }
    let e = fail(r#"{"namespaces": [{"name": "chat", "proxy_sub_refresh": true}]}"#);
    has(&e, "Centrifugo 3-5 proxy keys are not supported");
    let c = ok(r#"{"proxy_binary_encoding": false, "granular_proxy_mode": false}"#);
    assert!(
        c.warnings.is_empty() && c.proxy.is_empty(),
        "{:?}",
        c.warnings
    );
}

#[test]
fn proxy_keys_never_warn_not_supported() {
    let c = load_text("yaml", V6_FULL, &[]).unwrap();
    assert!(
        !c.warnings.iter().any(|w| w.contains("not supported")),
        "{:?}",
        c.warnings
    );
    let c = ok(
        r#"{"proxy_connect_endpoint": "http://a", "proxy_extra_http_headers": ["X"],
        "namespaces": [{"name": "chat", "proxy_publish": true}]}"#,
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // `null` sections are not set.
    let c = load_text(
        "yaml",
        "client:\n  proxy: null\nrpc:\n  proxy:\n    http: null\n  ping: null\n",
        &[],
    )
    .unwrap();
    assert!(
        c.warnings.is_empty() && c.proxy.is_empty(),
        "{:?}",
        c.warnings
    );
    // Unknown proxy keys are unknown, not "not supported".
    let c = ok(r#"{"proxy_conect_endpoint": "http://a"}"#);
    has(
        &c.warnings.join("\n"),
        r#"unknown config key "proxy_conect_endpoint""#,
    );
    let c = load_text(
        "yaml",
        "client:\n  proxy:\n    connect:\n      enabled: true\n      endpoint: http://a\n      \
         foo: 1\nproxies:\n  - {name: one, endpoint: http://b, bar: 2}\nrpc:\n  baz: 3\n  \
         proxy:\n    endpoint: http://r\n",
        &[],
    )
    .unwrap();
    let w = c.warnings.join("\n");
    has(&w, r#"unknown config key "client.proxy.connect.foo""#);
    has(&w, r#"unknown config key "bar" in proxies[one]"#);
    has(&w, r#"unknown config key "rpc.baz""#);
    has(
        &w,
        "rpc.proxy is set but neither rpc.without_namespace nor an rpc namespace",
    );
    assert_eq!(c.warnings.len(), 4, "{w}");
}

#[test]
fn effective_configuration_shows_the_proxies() {
    let e = effective(&ok("{}"));
    assert_eq!(e["proxy"]["generation"], json!("none"));
    assert_eq!(e["proxy"]["connect"], Value::Null);
    let c = ok(r#"{"proxy_connect_endpoint": "http://u:pw@app/connect",
        "proxy_extra_http_headers": ["X-App"]}"#);
    let e = effective(&c);
    let p = &e["proxy"];
    assert_eq!(p["generation"], json!("2.x"));
    assert_eq!(
        p["connect"]["endpoint"],
        json!("http://u:********@app/connect")
    );
    assert_eq!(p["connect"]["transport"], json!("http"));
    assert_eq!(p["connect"]["timeout"], json!("1s"));
    let headers = p["connect"]["http_headers"].as_array().unwrap();
    assert!(headers.contains(&json!("cookie")) && headers.contains(&json!("x-app")));
    assert!(!e.to_string().contains("pw@"));
    let c = load_text("yaml", V6_FULL, &[]).unwrap();
    let e = effective(&c);
    let p = &e["proxy"];
    assert_eq!(p["generation"], json!("6.x"));
    assert_eq!(p["refresh"]["transport"], json!("grpc"));
    assert_eq!(p["refresh"]["grpc"]["credentials_value"], json!("********"));
    assert_eq!(
        p["connect"]["http"]["static_headers"]["X-Static"],
        json!("********")
    );
    assert_eq!(p["connect"]["http"]["tls"]["key_pem"], json!("********"));
    assert_eq!(p["proxies"][0]["name"], json!("other"));
    assert_eq!(p["rpc_namespaces"][0]["proxy_name"], json!("other"));
    assert_eq!(p["rpc_without_namespace"]["proxy_name"], json!("default"));
    assert_eq!(p["rpc_ping_method"], json!("health"));
    assert_eq!(e["namespaces"][0]["subscribe_proxy_name"], json!("other"));
    assert_eq!(e["subscribe_proxy_name"], json!(""));
    let text = e.to_string();
    assert!(
        !text.contains("secret-token") && !text.contains("\"s1\""),
        "{text}"
    );
}
