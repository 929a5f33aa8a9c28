//! Unit tests of the loader: key sets, formats, environment, precedence, errors.

use super::*;
use rotor_core::config::ChannelOptions;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

mod grpc;
mod proxy;
mod recovery;
mod tokens;
mod transports;

fn file(ext: &str, text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("rotor-cfg-{}-{n}.{ext}", std::process::id());
    let p = std::env::temp_dir().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(path: Option<&Path>, vars: &[(&str, &str)]) -> Result<LoadedConfig, String> {
    let env: Vec<_> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(path, &env, &Overrides::default()).map_err(|e| e.to_string())
}

fn from_file(text: &str) -> Result<LoadedConfig, String> {
    let path = file("json", text);
    let result = run(Some(&path), &[]);
    let _ = std::fs::remove_file(path);
    result
}

fn ok(text: &str) -> LoadedConfig {
    from_file(text).unwrap()
}

fn fail(text: &str) -> String {
    from_file(text).unwrap_err()
}

#[track_caller]
fn has(text: &str, want: &str) {
    assert!(text.contains(want), "{want:?} not in {text:?}");
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn defaults_without_file_or_env() {
    let c = run(None, &[]).unwrap();
    let s = &c.server;
    assert_eq!(*s, ServerSettings::default());
    assert_eq!((s.port, &*s.engine, &*s.address), (8000, "memory", ""));
    assert_eq!(s.websocket_handler_prefix, "/connection/websocket");
    assert_eq!(s.shutdown_timeout, secs(30));
    assert_eq!(c.node.client_ping_interval, secs(25));
    assert_eq!(c.node.channel_options, ChannelOptions::default());
    assert!(c.node.namespaces.is_empty() && c.warnings.is_empty());
    assert!(c.source.is_none());
}

#[test]
fn server_keys() {
    let c = ok(r#"{"address":"127.0.0.1","port":9001,"internal_port":9002,
        "internal_address":"::1","api_key":"k","api_insecure":true,"api_disable":true,
        "websocket_handler_prefix":"/ws/","api_handler_prefix":"api","health":true,
        "prometheus":true,"admin":true,"log_level":"DEBUG","websocket_disable":true,
        "shutdown_timeout":5,"engine":"redis","allowed_origins":["http://a"]}"#);
    let s = &c.server;
    assert_eq!((&*s.address, s.port), ("127.0.0.1", 9001));
    assert_eq!((&*s.internal_address, s.internal_port), ("::1", Some(9002)));
    assert!(s.api_insecure && s.api_disable && s.health);
    assert!(s.prometheus && s.admin && s.websocket_disable);
    assert_eq!(s.websocket_handler_prefix, "/ws");
    assert_eq!((&*s.api_handler_prefix, &*s.api_key), ("/api", "k"));
    assert_eq!((&*s.log_level, &*s.engine), ("debug", "redis"));
    assert_eq!(s.shutdown_timeout, secs(5));
    assert_eq!(s.allowed_origins, Some(vec!["http://a".into()]));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn node_and_client_keys() {
    let c = ok(
        r#"{"name":"n1","token_hmac_secret_key":"s","client_insecure":true,
        "client_anonymous":true,"channel_private_prefix":"!","channel_namespace_boundary":"/",
        "channel_user_boundary":"@","channel_user_separator":";","channel_max_length":100,
        "client_channel_limit":5,"client_user_connection_limit":2,"client_queue_max_size":1000,
        "websocket_message_size_limit":2048,"client_expired_close_delay":1,
        "client_expired_sub_close_delay":"2s","client_stale_close_delay":3,
        "client_presence_ping_interval":4,"client_presence_expire_interval":"1m",
        "client_channel_position_check_delay":"1m30s","websocket_ping_interval":"500ms",
        "websocket_write_timeout":2,"client_pong_timeout":3,"v3_use_offset":true,
        "user_subscribe_to_personal":true,"user_personal_channel_namespace":"",
        "user_personal_single_connection":false,"memory_history_meta_ttl":"1h"}"#,
    );
    let n = &c.node;
    assert_eq!((&*n.name, &*n.token_hmac_secret_key), ("n1", "s"));
    assert!(n.client_insecure && n.client_anonymous);
    assert!(n.v3_use_offset && n.user_subscribe_to_personal);
    assert_eq!(n.channel_private_prefix, "!");
    assert_eq!(n.channel_namespace_boundary, "/");
    assert_eq!(n.channel_user_boundary, "@");
    assert_eq!(n.channel_user_separator, ";");
    assert_eq!(n.channel_max_length, 100);
    assert_eq!(n.client_channel_limit, 5);
    assert_eq!(n.client_user_connection_limit, 2);
    assert_eq!(n.client_queue_max_size, 1000);
    assert_eq!(n.client_request_max_size, 2048);
    assert_eq!(n.client_expired_close_delay, secs(1));
    assert_eq!(n.client_expired_sub_close_delay, secs(2));
    assert_eq!(n.client_stale_close_delay, secs(3));
    assert_eq!(n.client_presence_ping_interval, secs(4));
    assert_eq!(n.client_presence_expire_interval, secs(60));
    assert_eq!(n.client_channel_position_check_delay, secs(90));
    assert_eq!(n.client_message_write_timeout, secs(2));
    assert_eq!(n.client_pong_timeout, secs(3));
    assert_eq!(n.memory_history_meta_ttl, secs(3600));
    assert_eq!(n.client_ping_interval.as_millis(), 500);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn channel_options_and_namespaces_do_not_inherit() {
    let c = ok(
        r#"{"publish":true,"subscribe_to_publish":true,"anonymous":true,
        "presence":true,"presence_disable_for_client":true,"join_leave":true,
        "history_size":10,"history_lifetime":300,"history_recover":true,
        "history_disable_for_client":true,"server_side":true,"proxy_subscribe":true,
        "proxy_publish":true,
        "namespaces":[{"name":"chat","presence":true,"history_size":5},{"name":"news"}]}"#,
    );
    let o = &c.node.channel_options;
    assert!(o.publish && o.subscribe_to_publish && o.anonymous);
    assert!(o.presence && o.presence_disable_for_client && o.join_leave);
    assert!(o.history_recover && o.history_disable_for_client);
    assert!(o.server_side && o.proxy_subscribe && o.proxy_publish);
    assert_eq!((o.history_size, o.history_lifetime), (10, 300));
    let chat = &c.node.namespaces[0];
    let mut expect = ChannelOptions::default();
    (expect.presence, expect.history_size) = (true, 5);
    assert_eq!((&*chat.name, &chat.options), ("chat", &expect));
    let news = &c.node.namespaces[1];
    assert_eq!(news.options, ChannelOptions::default());
}

#[test]
fn legacy_aliases_and_zero_defaults() {
    let c = ok(r#"{"secret":"old","client_request_max_size":1024,
        "client_ping_interval":10,"client_message_write_timeout":3}"#);
    assert_eq!(c.node.token_hmac_secret_key, "old");
    assert_eq!(c.node.client_request_max_size, 1024);
    assert_eq!(c.node.client_ping_interval, secs(10));
    assert_eq!(c.node.client_message_write_timeout, secs(3));
    assert!(c.warnings.is_empty());
    // Both names in one source: the canonical one wins, with a warning.
    let c = ok(r#"{"token_hmac_secret_key":"new","secret":"old"}"#);
    assert_eq!(c.node.token_hmac_secret_key, "new");
    has(&c.warnings.join("\n"), r#"both "secret" and "#);
    // 0 means the default for these websocket settings, as in Centrifugo.
    let c = ok(r#"{"websocket_ping_interval":0,"websocket_message_size_limit":0}"#);
    assert_eq!(c.node.client_ping_interval, secs(25));
    assert_eq!(c.node.client_request_max_size, 65536);
    // Keys are case-insensitive (as with viper); null means "not set".
    let c = ok(r#"{"Port":9005,"api_key":null}"#);
    assert_eq!((c.server.port, &*c.server.api_key), (9005, ""));
}

#[test]
fn unknown_and_unsupported_keys_warn() {
    let c = ok(
        r#"{"foo":1,"redis_host":"h","tls":false,"admin_password":"",
        "graphite":true,"namespaces":[{"name":"chat","bar":true}]}"#,
    );
    let w = c.warnings.join("\n");
    has(&w, r#"unknown config key "foo""#);
    has(&w, r#"unknown config key "bar" in namespace "chat""#);
    has(&w, r#"config key "graphite" is not supported yet"#);
    assert_eq!(c.warnings.len(), 3, "zero values stay silent: {w}");
    // Redis keys are collected for the engine, not warned about.
    assert_eq!(c.server.redis.get("redis_host"), Some(&json!("h")));
}

#[test]
fn wrong_types_name_the_key_and_file() {
    let e = fail(r#"{"port":true}"#);
    let want = r#"config key "port": expected an integer, got boolean (in file "#;
    assert!(e.starts_with(want) && e.ends_with(".json)"), "{e}");
    let cases = [
        (
            r#"{"publish":"true"}"#,
            r#""publish": expected a boolean, got string"#,
        ),
        (r#"{"history_size":-1}"#, "non-negative"),
        (r#"{"port":70000}"#, "out of range"),
        (
            r#"{"allowed_origins":"*"}"#,
            r#""allowed_origins": expected an array"#,
        ),
        (
            r#"{"client_ping_interval":true}"#,
            r#"key "client_ping_interval""#,
        ),
        (r#"{"channel_user_boundary":""}"#, "must not be empty"),
        (r#"{"client_presence_ping_interval":0}"#, "greater than 0"),
        (r#"{"namespaces":{}}"#, r#""namespaces": expected an array"#),
        (r#"{"namespaces":[{"presence":true}]}"#, "no \"name\""),
        (
            r#"{"namespaces":[{"name":1}]}"#,
            r##"key "name" in namespace "#0""##,
        ),
        (
            r#"{"engine":"nats"}"#,
            r#"config key "engine": unknown engine"#,
        ),
        (r#"{"log_level":"loud"}"#, r#"config key "log_level""#),
    ];
    for (text, want) in cases {
        has(&fail(text), want);
    }
    let e = fail(r#"{"namespaces":[{"name":"chat","history_size":"10"}]}"#);
    has(
        &e,
        r#"key "history_size" in namespace "chat": expected an integer"#,
    );
}

#[test]
fn file_errors_name_the_file() {
    let missing = std::env::temp_dir().join("rotor-cfg-does-not-exist.json");
    has(
        &run(Some(&missing), &[]).unwrap_err(),
        "rotor-cfg-does-not-exist.json",
    );
    let bad = file("json", "{nope");
    let e = run(Some(&bad), &[]).unwrap_err();
    has(&e, &format!("{} is not valid JSON", bad.display()));
    has(
        &run(Some(&file("json", "[]")), &[]).unwrap_err(),
        "JSON object",
    );
    let bad = file("yaml", "a: [1,\n  b: {");
    has(&run(Some(&bad), &[]).unwrap_err(), "is not valid YAML");
    let bad = file("toml", "port = \n[x");
    let e = run(Some(&bad), &[]).unwrap_err();
    has(&e, "is not valid TOML");
    assert!(!e.contains('\n'), "one line: {e}");
    has(
        &run(Some(&file("yml", "- a\n- b\n")), &[]).unwrap_err(),
        "must be a YAML object",
    );
    // Empty YAML and TOML files are empty configurations.
    for ext in ["toml", "yaml", "yml"] {
        assert!(run(Some(&file(ext, "")), &[]).is_ok(), "{ext}");
    }
}

#[test]
fn env_overrides_file_and_parses_types() {
    let text = r#"{"port":9000,"presence":false,"secret":"f","client_ping_interval":3}"#;
    let path = file("json", text);
    let vars = [
        ("CENTRIFUGO_PORT", "9100"),
        ("ROTOR_PORT", "9200"),
        ("CENTRIFUGO_PRESENCE", "1"),
        ("CENTRIFUGO_HISTORY_SIZE", "10"),
        ("CENTRIFUGO_HISTORY_LIFETIME", "60"),
        ("CENTRIFUGO_HISTORY_RECOVER", "TRUE"),
        ("CENTRIFUGO_TOKEN_HMAC_SECRET_KEY", "e"),
        ("CENTRIFUGO_WEBSOCKET_PING_INTERVAL", "7"),
        ("CENTRIFUGO_SHUTDOWN_TIMEOUT", "1m"),
        ("CENTRIFUGO_ALLOWED_ORIGINS", "http://a, http://b"),
        (
            "CENTRIFUGO_NAMESPACES",
            r#"[{"name":"ns1","publish":true}]"#,
        ),
        ("CENTRIFUGO_SOMETHING_ELSE", "x"),
        ("PATH", "/bin"),
        // Set by cargo for `cargo test`/`run` (build.rs): not configuration, no warning.
        ("ROTOR_BUILD_COMMIT", "abc1234"),
    ];
    let c = run(Some(&path), &vars).unwrap();
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    assert_eq!(c.server.port, 9200);
    let o = &c.node.channel_options;
    assert!(o.presence && o.history_recover);
    assert_eq!((o.history_size, o.history_lifetime), (10, 60));
    assert_eq!(c.node.token_hmac_secret_key, "e");
    assert_eq!(c.node.client_ping_interval, secs(7));
    assert_eq!(c.server.shutdown_timeout, secs(60));
    let origins = c.server.allowed_origins.unwrap();
    assert_eq!(origins, ["http://a", "http://b"]);
    assert_eq!(c.node.namespaces[0].name, "ns1");
    assert!(c.node.namespaces[0].options.publish);
    assert_eq!(
        c.warnings,
        ["unknown config key \"something_else\" (from env CENTRIFUGO_SOMETHING_ELSE)"]
    );

    let e = run(None, &[("CENTRIFUGO_PUBLISH", "yes")]).unwrap_err();
    has(
        &e,
        r#"config key "publish": expected a boolean (true/false/1/0), got "yes""#,
    );
    has(&e, "(from env CENTRIFUGO_PUBLISH)");
    has(
        &run(None, &[("ROTOR_PORT", "http")]).unwrap_err(),
        "ROTOR_PORT",
    );
    let e = run(None, &[("CENTRIFUGO_NAMESPACES", "{")]).unwrap_err();
    has(&e, r#"config key "namespaces""#);
    let c = run(
        None,
        &[("CENTRIFUGO_REDIS_HOST", "r"), ("ROTOR_REDIS_PORT", "7000")],
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.server.redis.get("redis_host"), Some(&json!("r")));
    assert_eq!(c.server.redis.get("redis_port"), Some(&json!("7000")));
}

#[test]
fn flags_win_over_env() {
    let env = [("CENTRIFUGO_PORT", "9100"), ("CENTRIFUGO_ENGINE", "redis")];
    let env = env.map(|(k, v)| (k.to_string(), v.to_string()));
    let o = Overrides {
        address: Some("0.0.0.0".into()),
        port: Some(7000),
        api_insecure: Some(true),
        client_insecure: Some(true),
        log_level: Some("error".into()),
        engine: Some("memory".into()),
        health: Some(true),
        prometheus: Some(true),
        admin: Some(true),
        name: Some("flag".into()),
        internal_address: Some("127.0.0.2".into()),
        internal_port: Some(7001),
        grpc_api: Some(true),
        grpc_api_port: Some(7002),
        grpc_api_tls: None,
        grpc_api_tls_cert: Some("c.pem".into()),
        grpc_api_tls_key: Some("k.pem".into()),
        grpc_api_tls_disable: Some(true),
        broker: Some("nats".into()),
        nats_url: Some("nats://10.0.0.1:4333".into()),
    };
    let c = load(None, &env, &o).unwrap();
    assert_eq!(c.server.brokers.get("broker"), Some(&json!("nats")));
    assert_eq!(
        c.server.brokers.get("nats_url"),
        Some(&json!("nats://10.0.0.1:4333"))
    );
    let g = &c.server.grpc_api;
    assert!(g.enabled_flat && g.tls_disable && !g.tls);
    assert_eq!(
        (g.port, &*g.tls_cert, &*g.tls_key),
        (7002, "c.pem", "k.pem")
    );
    let s = &c.server;
    assert_eq!((s.port, &*s.address), (7000, "0.0.0.0"));
    assert_eq!((&*s.engine, &*s.log_level), ("memory", "error"));
    assert!(s.api_insecure && s.health && s.prometheus && s.admin);
    assert!(c.node.client_insecure && c.node.name == "flag");
    let bad = Overrides {
        engine: Some("x".into()),
        ..Default::default()
    };
    let e = load(None, &[], &bad).unwrap_err().to_string();
    has(&e, "(from the command line)");
}

#[test]
fn validation_errors_name_the_namespace() {
    let e = fail(r#"{"namespaces":[{"name":"chat","history_recover":true}]}"#);
    assert!(e.starts_with("invalid configuration (in file "), "{e}");
    has(&e, r#"namespace "chat": history_recover needs"#);
    has(&fail(r#"{"namespaces":[{"name":"a b"}]}"#), r#""a b""#);
    let e = fail(r#"{"namespaces":[{"name":"ab"},{"name":"ab"}]}"#);
    has(&e, r#"namespace "ab" is defined twice"#);
    has(&fail(r#"{"history_recover":true}"#), "top-level");
    let e = fail(
        r#"{"user_subscribe_to_personal":true,
        "user_personal_channel_namespace":"p"}"#,
    );
    has(&e, r#"personal channel namespace "p" not found"#);
    let e = fail(
        r#"{"user_subscribe_to_personal":true,
        "user_personal_single_connection":true}"#,
    );
    has(&e, "needs presence enabled at top level");
    ok(
        r#"{"user_subscribe_to_personal":true,"user_personal_channel_namespace":"pp",
        "user_personal_single_connection":true,
        "namespaces":[{"name":"pp","presence":true}]}"#,
    );
}

#[test]
fn durations_need_units() {
    has(&fail(r#"{"shutdown_timeout":"25"}"#), "missing unit");
}

#[test]
fn missing_for_clients_lines() {
    let lines = missing_for_clients(&run(None, &[]).unwrap());
    assert_eq!(lines.len(), 2, "{lines:?}");
    has(&lines[0], "token_hmac_secret_key is not set");
    has(&lines[0], "clients cannot connect");
    has(&lines[1], "the HTTP API at /api rejects every request");
    for text in [
        r#"{"token_hmac_secret_key":"s","api_key":"k"}"#,
        r#"{"client_anonymous":true,"api_insecure":true}"#,
        r#"{"client_insecure":true,"api_disable":true}"#,
    ] {
        assert!(missing_for_clients(&ok(text)).is_empty(), "{text}");
    }
    let c = ok(r#"{"websocket_disable":true,"api_key":"k"}"#);
    let lines = missing_for_clients(&c);
    assert_eq!(lines.len(), 1, "{lines:?}");
    has(&lines[0], "websocket_disable");
}

fn load_text(ext: &str, text: &str, vars: &[(&str, &str)]) -> Result<LoadedConfig, String> {
    let path = file(ext, text);
    let result = run(Some(&path), vars);
    let _ = std::fs::remove_file(path);
    result
}

const V6_YAML: &str = r#"
http_server:
  address: 127.0.0.1
  port: 9100
  internal_port: "9101"
log:
  level: debug
engine:
  type: memory
http_api:
  key: api-key
  insecure: false
admin:
  enabled: true
  password: pw
  secret: sec
prometheus:
  enabled: true
health:
  enabled: true
node:
  name: n6
shutdown:
  timeout: 5s
client:
  token:
    hmac_secret_key: s3cret
  allowed_origins: ["http://a"]
  ping_interval: 20s
  pong_timeout: 5s
  expired_close_delay: 10s
  channel_limit: 64
  queue_max_size: 2048
  user_connection_limit: 3
  presence_update_interval: 15s
  subscribe_to_user_personal_channel:
    enabled: true
    personal_channel_namespace: personal
channel:
  private_prefix: "!"
  max_length: 100
  without_namespace:
    allow_subscribe_for_client: true
    allow_publish_for_subscriber: true
    presence: true
    allow_presence_for_subscriber: true
    join_leave: true
    history_size: 10
    history_ttl: 300s
    force_recovery: true
    allow_history_for_subscriber: true
  namespaces:
    - name: chat
      allow_subscribe_for_client: true
      allow_publish_for_client: true
      allow_history_for_client: true
      history_size: 5
      history_ttl: 1m
    - name: personal
      allow_subscribe_for_client: true
      presence: true
websocket:
  message_size_limit: 4096
  write_timeout: 2s
"#;

const FLAT_2X: &str = r#"{
  "address": "127.0.0.1", "port": 9100, "internal_port": 9101, "log_level": "debug",
  "engine": "memory", "api_key": "api-key", "api_insecure": false, "admin": true,
  "admin_password": "pw", "admin_secret": "sec", "prometheus": true, "health": true,
  "name": "n6", "shutdown_timeout": 5, "token_hmac_secret_key": "s3cret",
  "allowed_origins": ["http://a"], "websocket_ping_interval": 20, "client_pong_timeout": 5,
  "client_expired_close_delay": 10, "client_channel_limit": 64, "client_queue_max_size": 2048,
  "client_user_connection_limit": 3, "client_presence_ping_interval": 15,
  "user_subscribe_to_personal": true, "user_personal_channel_namespace": "personal",
  "channel_private_prefix": "!", "channel_max_length": 100,
  "publish": true, "subscribe_to_publish": true, "presence": true, "join_leave": true,
  "history_size": 10, "history_lifetime": 300, "history_recover": true,
  "namespaces": [
    {"name": "chat", "publish": true, "history_size": 5, "history_lifetime": 60},
    {"name": "personal", "presence": true, "presence_disable_for_client": true}
  ],
  "websocket_message_size_limit": 4096, "websocket_write_timeout": 2,
  "memory_history_meta_ttl": "720h", "redis_history_meta_ttl": "2592000"
}"#;

#[test]
fn v6_nested_yaml_equals_2x_json() {
    let v6 = load_text("yaml", V6_YAML, &[]).unwrap();
    assert!(v6.warnings.is_empty(), "{:?}", v6.warnings);
    let v2 = load_text("json", FLAT_2X, &[]).unwrap();
    assert!(v2.warnings.is_empty(), "{:?}", v2.warnings);
    assert_eq!(effective(&v6), effective(&v2));
    let (n, s) = (&v6.node, &v6.server);
    assert_eq!(
        (&*s.address, s.port, s.internal_port),
        ("127.0.0.1", 9100, Some(9101))
    );
    assert_eq!(
        (&*n.token_hmac_secret_key, &*s.api_key),
        ("s3cret", "api-key")
    );
    assert_eq!(n.client_ping_interval, secs(20));
    let o = &n.channel_options;
    assert!(o.publish && o.subscribe_to_publish && o.history_recover);
    assert!(!o.presence_disable_for_client && !o.history_disable_for_client);
    assert_eq!(o.history_lifetime, 300);
    assert_eq!(n.namespaces[0].options.history_lifetime, 60);
    // v6 closes presence to clients unless an allow_presence_for_* option is on.
    assert!(n.namespaces[1].options.presence_disable_for_client);
}

#[test]
fn toml_file_reads_like_the_others() {
    let text = r#"
token_hmac_secret_key = "s"
port = 9200
[client]
allowed_origins = ["http://b"]
[channel.without_namespace]
presence = true
[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
history_size = 3
history_ttl = "30s"
"#;
    let c = load_text("toml", text, &[]).unwrap();
    assert_eq!(c.node.token_hmac_secret_key, "s");
    assert_eq!(c.server.port, 9200);
    assert_eq!(c.server.allowed_origins, Some(vec!["http://b".into()]));
    assert!(c.node.channel_options.presence_disable_for_client);
    let chat = &c.node.namespaces[0].options;
    assert_eq!((chat.history_size, chat.history_lifetime), (3, 30));
    // The top level is modern (nested) and has no allow_subscribe_for_client: one warning.
    let w = c.warnings.join("\n");
    has(
        &w,
        "channel options without namespace: allow_subscribe_for_client is off",
    );
    assert_eq!(c.warnings.len(), 1, "{w}");
}

#[test]
fn v6_environment_names() {
    let vars = [
        ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "e6"),
        ("CENTRIFUGO_HTTP_SERVER_PORT", "9300"),
        ("CENTRIFUGO_HTTP_API_KEY", "k6"),
        ("CENTRIFUGO_CLIENT_ALLOWED_ORIGINS", "http://a http://b"),
        ("CENTRIFUGO_CLIENT_PING_INTERVAL", "10s"),
        ("CENTRIFUGO_LOG_LEVEL", "warn"),
        ("CENTRIFUGO_ENGINE_TYPE", "memory"),
        (
            "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_SUBSCRIBE_FOR_CLIENT",
            "true",
        ),
        ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_HISTORY_SIZE", "4"),
        ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_HISTORY_TTL", "1m"),
        ("CENTRIFUGO_CHANNEL_NAMESPACES", "chat my-news"),
        (
            "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_ALLOW_SUBSCRIBE_FOR_CLIENT",
            "true",
        ),
        ("CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_PRESENCE", "true"),
        (
            "ROTOR_CHANNEL_NAMESPACES_CHAT_ALLOW_PRESENCE_FOR_CLIENT",
            "t",
        ),
        (
            "CENTRIFUGO_CHANNEL_NAMESPACES_MY_NEWS_ALLOW_SUBSCRIBE_FOR_CLIENT",
            "1",
        ),
        (
            "CENTRIFUGO_CHANNEL_NAMESPACES_MY_NEWS_ALLOW_PUBLISH_FOR_SUBSCRIBER",
            "1",
        ),
        ("CENTRIFUGO_CHANNEL_NAMESPACES_NOPE_PRESENCE", "1"),
        ("CENTRIFUGO_ENGINE_REDIS_ADDRESS", "redis://r:6379"),
        ("CENTRIFUGO_GRPC_API_ENABLED", "true"),
        ("CENTRIFUGO_CLIENT_FOO", "1"),
        ("CENTRIFUGO_SERVICE_HOST", "10.0.0.1"),
        ("ROTOR_LOG", "debug"),
    ];
    let c = run(None, &vars).unwrap();
    let (n, s) = (&c.node, &c.server);
    assert_eq!(
        (&*n.token_hmac_secret_key, &*s.api_key, s.port),
        ("e6", "k6", 9300)
    );
    assert_eq!(
        s.allowed_origins,
        Some(vec!["http://a".into(), "http://b".into()])
    );
    assert_eq!((n.client_ping_interval, &*s.log_level), (secs(10), "warn"));
    let o = &n.channel_options;
    assert_eq!((o.history_size, o.history_lifetime), (4, 60));
    assert!(o.history_disable_for_client);
    let names: Vec<_> = n.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["chat", "my-news"]);
    let chat = &n.namespaces[0].options;
    assert!(chat.presence && !chat.presence_disable_for_client && !chat.publish);
    let news = &n.namespaces[1].options;
    assert!(news.publish && news.subscribe_to_publish);
    assert_eq!(s.redis.get("redis_address"), Some(&json!("redis://r:6379")));
    let w = c.warnings.join("\n");
    assert!(s.grpc_api.enabled() && !s.grpc_api.inherits_http_tls());
    assert!(!w.contains("grpc_api"), "{w}");
    has(
        &w,
        r#"unknown config key "client_foo" (from env CENTRIFUGO_CLIENT_FOO)"#,
    );
    has(
        &w,
        r#"unknown config key "channel_namespaces_nope_presence" (from env CENTRIFUGO_CHANNEL_NAMESPACES_NOPE_PRESENCE)"#,
    );
    assert_eq!(c.warnings.len(), 2, "{w}");

    let c = run(None, &[("CENTRIFUGO_PORT", "tcp://10.0.0.1:8000")]).unwrap();
    assert_eq!(c.server.port, 8000);
    has(&c.warnings.join("\n"), "ignored CENTRIFUGO_PORT=");
    let e = run(None, &[("CENTRIFUGO_HTTP_SERVER_PORT", "eighty")]).unwrap_err();
    has(
        &e,
        r#"config key "http_server.port": expected a non-negative integer"#,
    );
    has(&e, "(from env CENTRIFUGO_HTTP_SERVER_PORT)");
    let vars = [
        ("CENTRIFUGO_CHANNEL_NAMESPACES", "chat"),
        ("CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_HISTORY_SIZE", "many"),
    ];
    let e = run(None, &vars).unwrap_err();
    has(
        &e,
        r#"config key "history_size" in namespace "chat": expected a non-negative"#,
    );
    has(&e, "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_HISTORY_SIZE");
}

#[test]
fn v4_v5_flat_renamed_keys() {
    let c = ok(r#"{"ping_interval":"10s","pong_timeout":"4s",
        "allow_anonymous_connect_without_token":true,"client_presence_update_interval":"9s",
        "global_history_meta_ttl":"1h","allow_subscribe_for_client":true,
        "allow_publish_for_client":true,"presence":true,"history_size":2,"history_ttl":"5s",
        "force_recovery":true,
        "namespaces":[{"name":"old","presence":true},
            {"name":"new","presence":true,"allow_subscribe_for_client":true}]}"#);
    let n = &c.node;
    assert!(n.client_anonymous);
    assert_eq!(
        (n.client_ping_interval, n.client_pong_timeout),
        (secs(10), secs(4))
    );
    assert_eq!(n.client_presence_ping_interval, secs(9));
    assert_eq!(n.memory_history_meta_ttl, secs(3600));
    let o = &n.channel_options;
    assert!(o.publish && !o.subscribe_to_publish && o.history_recover);
    assert!(o.presence_disable_for_client && o.history_disable_for_client);
    // A namespace with only 2.x names keeps 2.x defaults; one with modern names does not.
    assert!(!n.namespaces[0].options.presence_disable_for_client);
    assert!(n.namespaces[1].options.presence_disable_for_client);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = ok(r#"{"force_positioning":true,"channel_regex":"^a$",
        "namespaces":[{"name":"xx","allow_subscribe_for_client":true,"delta_publish":true,
        "subscribe_proxy_name":"default"}]}"#);
    let w = c.warnings.join("\n");
    assert!(!w.contains("not supported"), "{w}");
    assert!(c.node.channel_options.force_positioning);
    assert!(c.node.namespaces[0].options.delta_publish);
    assert_eq!(c.warnings.len(), 1, "{w}");
    let re = c.node.channel_options.channel_regex.as_ref();
    assert_eq!(re.map(|r| r.as_str()), Some("^a$"));
}

#[test]
fn channel_regex_and_publication_data_format() {
    use rotor_core::config::DataFormat;
    let c = ok(r#"{"channel":{"publication_data_format":"json",
        "without_namespace":{"channel_regex":"^[a-z]+$"},
        "namespaces":[{"name":"aa"},{"name":"bb","publication_data_format":"binary",
        "channel_regex":"\\d"}]}}"#);
    let n = &c.node;
    assert_eq!(n.channel_options.publication_data_format, DataFormat::Json);
    assert!(n.channel_options.channel_regex.is_some());
    // The global format is the default of a namespace that sets none.
    assert_eq!(
        n.namespaces[0].options.publication_data_format,
        DataFormat::Json
    );
    assert!(n.namespaces[0].options.channel_regex.is_none());
    assert_eq!(
        n.namespaces[1].options.publication_data_format,
        DataFormat::Binary
    );
    let e = fail(r#"{"namespaces":[{"name":"x","channel_regex":"(?=a)"}]}"#);
    has(&e, "channel_regex");
    let e = fail(r#"{"publication_data_format":"xml"}"#);
    has(&e, "publication_data_format");
}

#[test]
fn v6_unknown_unsupported_and_wrong_types() {
    let c = load_text(
        "yaml",
        "client:\n  foo: 1\n  proxy:\n    connect:\n      endpoint: http://x\n\
         graphite:\n  enabled: true\nchannel:\n  without_namespace:\n    \
         allow_subscribe_for_client: true\n    bar: 2\n  namespaces:\n  - name: ns\n    \
         allow_subscribe_for_client: true\n    baz: 3\n",
        &[],
    )
    .unwrap();
    let w = c.warnings.join("\n");
    has(&w, r#"unknown config key "client.foo""#);
    // A proxy object is read now; one that is not switched on says so.
    has(
        &w,
        "client.proxy.connect.endpoint is set but client.proxy.connect.enabled is off",
    );
    has(&w, r#"config key "graphite" is not supported yet"#);
    has(&w, r#"unknown config key "channel.without_namespace.bar""#);
    has(&w, r#"unknown config key "baz" in namespace "ns""#);
    assert_eq!(c.warnings.len(), 5, "{w}");

    let e = load_text("yaml", "http_server:\n  port: [1]\n", &[]).unwrap_err();
    has(
        &e,
        r#"config key "http_server.port": expected an integer, got array (in file "#,
    );
    let e = load_text("yaml", "client: 5\n", &[]).unwrap_err();
    has(
        &e,
        r#"config key "client": expected an object, got integer"#,
    );
    let e = load_text(
        "toml",
        "[channel.without_namespace]\npresence = \"yes\"\n",
        &[],
    )
    .unwrap_err();
    has(
        &e,
        r#"config key "channel.without_namespace.presence": expected a boolean"#,
    );
    let e = load_text(
        "yaml",
        "channel:\n  without_namespace:\n    force_recovery: true\n",
        &[],
    )
    .unwrap_err();
    has(
        &e,
        "history_recover needs history_size and history_lifetime",
    );
    // Both generations naming one setting in one file: the flat name wins, with a warning.
    let c = load_text("yaml", "port: 9001\nhttp_server:\n  port: 9002\n", &[]).unwrap();
    assert_eq!(c.server.port, 9001);
    has(
        &c.warnings.join("\n"),
        r#"both "http_server.port" and "port" are set"#,
    );
}

#[test]
fn first_run_generates_secrets_and_examples() {
    let mut c = run(None, &[]).unwrap();
    assert!(prepare_first_run(&mut c));
    assert_eq!(c.node.token_hmac_secret_key.len(), 64);
    assert_eq!(c.server.api_key.len(), 64);
    assert_ne!(c.node.token_hmac_secret_key, c.server.api_key);
    let lines = missing_for_clients(&c);
    let all = lines.join("\n");
    has(&all, &c.node.token_hmac_secret_key);
    has(&all, "connection token for user \"demo\"");
    has(&all, "curl -sS -X POST");
    has(&all, "http://127.0.0.1:8000/api/publish");
    // A config file, a secret or an insecure mode means it is not a first run.
    let mut c = ok("{}");
    assert!(!prepare_first_run(&mut c));
    let mut c = run(None, &[("CENTRIFUGO_CLIENT_INSECURE", "true")]).unwrap();
    assert!(!prepare_first_run(&mut c));
}

#[test]
fn effective_configuration_masks_secrets() {
    let c = ok(
        r#"{"token_hmac_secret_key":"s","api_key":"","redis_password":"p",
        "redis_port":6379}"#,
    );
    let e = effective(&c);
    assert_eq!(e["token_hmac_secret_key"], json!("********"));
    assert_eq!(e["api_key"], json!(""));
    assert_eq!(
        e["redis"],
        json!({"redis_password": "********", "redis_port": "6379"})
    );
    assert_eq!(e["shutdown_timeout"], json!("30s"));
    assert!(!e.to_string().contains("\"s\""));
}

#[test]
fn token_audience_and_issuer_are_applied_not_warned() {
    let c = ok(r#"{"token_audience":"rotor","token_issuer":"https://i.example"}"#);
    assert_eq!(c.node.token_audience, "rotor");
    assert_eq!(c.node.token_issuer, "https://i.example");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let e = effective(&c);
    assert_eq!(e["token_audience"], json!("rotor"));
    assert_eq!(e["token_issuer"], json!("https://i.example"));
    // Centrifugo 6 nested names and the environment reach the same settings.
    let c = run(
        None,
        &[
            ("CENTRIFUGO_CLIENT_TOKEN_AUDIENCE", "a6"),
            ("CENTRIFUGO_TOKEN_ISSUER", "i4"),
        ],
    )
    .unwrap();
    assert_eq!(
        (&*c.node.token_audience, &*c.node.token_issuer),
        ("a6", "i4")
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = load_text(
        "yaml",
        "client:\n  token:\n    audience: a\n    issuer: i\n",
        &[],
    )
    .unwrap();
    assert_eq!((&*c.node.token_audience, &*c.node.token_issuer), ("a", "i"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // A wrong type is an error naming the key.
    has(&fail(r#"{"token_audience":["a"]}"#), "token_audience");
}

#[test]
fn history_meta_ttl_defaults_per_generation() {
    let meta = |c: &LoadedConfig| {
        (
            c.node.memory_history_meta_ttl,
            c.server.redis.get("redis_history_meta_ttl").cloned(),
        )
    };
    // 2.x: kept forever unless set (Redis reads its own key).
    let c = run(Some(&file("json", r#"{"engine": "redis"}"#)), &[]).unwrap();
    assert_eq!(meta(&c), (Duration::ZERO, None));
    // Centrifugo 6: 720h on every engine.
    let c = run(Some(&file("yaml", "engine:\n  type: redis\n")), &[]).unwrap();
    assert_eq!(
        meta(&c),
        (secs(720 * 3600), Some(serde_json::json!(720 * 3600)))
    );
    // Set: the same value on both.
    let text = "engine:\n  type: redis\nchannel:\n  history_meta_ttl: 1h\n";
    let c = run(Some(&file("yaml", text)), &[]).unwrap();
    assert_eq!(meta(&c), (secs(3600), Some(serde_json::json!(3600))));
}

#[test]
fn effective_config_shows_engine_and_broker_keys_with_secrets_masked() {
    let text = r#"{
      "engine": {"type": "redis", "redis": {"address": "redis://:redispw@10.0.0.1:6379",
        "tls": {"enabled": true, "key_pem": "-----BEGIN PRIVATE KEY-----\nsecretkey\n-----END PRIVATE KEY-----\n",
                "cert_pem": "/etc/rotor/client.pem"}}},
      "broker": {"enabled": true, "type": "nats", "nats": {"url": "nats://u:natspw@n1:4222,nats://n2:4222"}}
    }"#;
    let c = load_text("json", text, &[]).unwrap();
    let out = effective(&c).to_string();
    for secret in ["redispw", "natspw", "secretkey"] {
        assert!(!out.contains(secret), "{secret} shown: {out}");
    }
    let e = effective(&c);
    assert_eq!(
        e["redis"]["redis_address"],
        json!("redis://:********@10.0.0.1:6379")
    );
    assert_eq!(
        e["redis"]["redis_tls_cert_pem"],
        json!("/etc/rotor/client.pem")
    );
    assert_eq!(e["brokers"]["broker_type"], json!("nats"));
    assert_eq!(
        e["brokers"]["nats_url"],
        json!("nats://u:********@n1:4222,nats://n2:4222")
    );
}
