//! v6 recovery / positioning namespace options, the start-up checks on them, the v6 options
//! Rotor does not serve (refused unless at their default), and the client limits' keys.

use super::*;
use rotor_core::config::RecoveryMode;

fn ns_options(c: &LoadedConfig, name: &str) -> ChannelOptions {
    c.node
        .namespaces
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("namespace {name} missing"))
        .options
        .clone()
}

#[test]
fn recovery_and_positioning_options_parse() {
    let c = ok(r#"{"channel": {"namespaces": [
        {"name": "aa", "history_size": 5, "history_ttl": "60s", "allow_recovery": true,
         "allow_positioning": true},
        {"name": "bb", "history_size": 5, "history_ttl": "60s", "force_recovery": true,
         "force_recovery_mode": "cache", "auto_cache_recover": true, "force_positioning": true,
         "history_meta_ttl": "120s", "force_push_join_leave": true}
    ]}}"#);
    let a = ns_options(&c, "aa");
    // allow_recovery only lets a client ask: the namespace is not recoverable by itself.
    assert!(a.allow_recovery && a.allow_positioning && !a.history_recover);
    let b = ns_options(&c, "bb");
    assert!(b.history_recover && b.auto_cache_recover && b.force_positioning);
    assert!(b.force_push_join_leave);
    assert_eq!(b.recovery_mode, RecoveryMode::Cache);
    assert_eq!(b.history_meta_ttl, Some(secs(120)));
    assert!(
        c.warnings.iter().all(|w| !w.contains("not supported")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn recovery_options_are_checked_at_start() {
    let e = fail(r#"{"channel": {"namespaces": [{"name": "rr", "force_recovery": true}]}}"#);
    has(&e, "namespace \"rr\"");
    has(&e, "force_recovery needs history_size and history_ttl");
    let e = fail(
        r#"{"channel": {"namespaces": [{"name": "cc", "history_size": 5, "history_ttl": "60s",
        "force_recovery": true, "auto_cache_recover": true}]}}"#,
    );
    has(&e, "namespace \"cc\": auto_cache_recover needs force_recovery on and force_recovery_mode \"cache\"");
    let e = fail(
        r#"{"channel": {"namespaces": [{"name": "c2", "history_size": 5, "history_ttl": "60s",
        "force_recovery_mode": "cache", "auto_cache_recover": true}]}}"#,
    );
    has(
        &e,
        "namespace \"c2\": auto_cache_recover needs force_recovery",
    );
    let e = fail(
        r#"{"channel": {"namespaces": [{"name": "mm", "history_size": 5, "history_ttl": "600s",
        "history_meta_ttl": "60s"}]}}"#,
    );
    has(
        &e,
        "namespace \"mm\": history_meta_ttl (60s) must not be less than history_ttl (600s)",
    );
    let e = fail(r#"{"channel": {"without_namespace": {"force_recovery_mode": "latest"}}}"#);
    has(&e, "unknown recovery mode \"latest\"");
    // history_meta_ttl equal to history_ttl, and unset, are fine.
    ok(
        r#"{"channel": {"namespaces": [{"name": "mm", "history_size": 5, "history_ttl": "60s",
        "history_meta_ttl": "1m"}, {"name": "nn", "history_size": 5, "history_ttl": "60s"}]}}"#,
    );
}

#[test]
fn options_rotor_does_not_serve_are_refused_unless_default() {
    let refused: &[(&str, &str)] = &[
        ("subscription_type", r#""map""#),
        ("subscription_type", r#""shared_poll""#),
        ("proxy_cache_empty", "true"),
        ("subscribe_stream_proxy_name", r#""streams""#),
        ("cache_empty_proxy_name", r#""ce""#),
        ("map_clients_presence_channel_prefix", r#""clients:""#),
        ("map_users_presence_channel_prefix", r#""users:""#),
        ("map", r#"{"mode": "recoverable"}"#),
        ("shared_poll", r#"{"refresh_interval": "5s"}"#),
    ];
    for (key, value) in refused {
        let e = fail(&format!(
            r#"{{"channel": {{"namespaces": [{{"name": "xx", "{key}": {value}}}]}}}}"#
        ));
        has(&e, key);
        has(&e, "namespace \"xx\"");
        has(&e, "is not supported by Rotor");
        let e = fail(&format!(
            r#"{{"channel": {{"without_namespace": {{"{key}": {value}}}}}}}"#
        ));
        has(&e, "is not supported by Rotor");
    }
    // A flat top-level key (2.x / 5.x file) too.
    has(
        &fail(r#"{"subscription_type": "map_users"}"#),
        "is not supported by Rotor",
    );
    has(
        &fail(r#"{"proxy_cache_empty": true}"#),
        "is not supported by Rotor",
    );
    // From the environment too.
    let e = run(
        None,
        &[(
            "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_SUBSCRIPTION_TYPE",
            "map",
        )],
    )
    .unwrap_err();
    has(&e, "is not supported by Rotor");
    // Defaults are accepted without a word.
    let c = ok(
        r#"{"channel": {"namespaces": [{"name": "xx", "subscription_type": "stream",
        "proxy_cache_empty": false, "subscribe_stream_proxy_name": "default",
        "cache_empty_proxy_name": "", "map_clients_presence_channel_prefix": "",
        "map_users_presence_channel_prefix": "", "map": {}, "shared_poll": {"enabled": false}}],
        "without_namespace": {"subscription_type": ""}}}"#,
    );
    let about_them = |w: &&String| {
        [
            "subscription_type",
            "proxy",
            "map",
            "shared_poll",
            "not supported",
        ]
        .iter()
        .any(|k| w.contains(k))
    };
    assert!(
        !c.warnings.iter().any(|w| about_them(&w)),
        "{:?}",
        c.warnings
    );
}

#[test]
fn client_limit_keys_of_both_generations() {
    let c = ok(
        r#"{"client_channel_limit": 3, "client_user_connection_limit": 2,
        "client_queue_max_size": 5000}"#,
    );
    let n = &c.node;
    assert_eq!(
        (n.client_channel_limit, n.client_user_connection_limit),
        (3, 2)
    );
    assert_eq!(n.client_queue_max_size, 5000);
    let c = ok(
        r#"{"client": {"channel_limit": 4, "user_connection_limit": 1,
        "queue_max_size": 6000}}"#,
    );
    let n = &c.node;
    assert_eq!(
        (n.client_channel_limit, n.client_user_connection_limit),
        (4, 1)
    );
    assert_eq!(n.client_queue_max_size, 6000);
    // queue_max_size defaults: 10 MB for a 2.x configuration, 1 MB for a v6 one.
    assert_eq!(
        ok(r#"{"client_channel_limit": 3}"#)
            .node
            .client_queue_max_size,
        10 << 20
    );
    assert_eq!(run(None, &[]).unwrap().node.client_queue_max_size, 10 << 20);
    let v6 = ok(r#"{"client": {"channel_limit": 3}}"#);
    assert_eq!(v6.node.client_queue_max_size, 1 << 20);
    let v6 = run(None, &[("CENTRIFUGO_HTTP_SERVER_PORT", "9000")]).unwrap();
    assert_eq!(v6.node.client_queue_max_size, 1 << 20);
}

#[test]
fn checkconfig_shows_the_recovery_options() {
    let c = ok(
        r#"{"channel": {"namespaces": [{"name": "bb", "history_size": 5,
        "history_ttl": "60s", "force_recovery": true, "force_recovery_mode": "cache",
        "auto_cache_recover": true, "history_meta_ttl": "2m", "allow_positioning": true}]}}"#,
    );
    let v = super::super::effective::effective(&c);
    let ns = &v["namespaces"][0];
    assert_eq!(ns["force_recovery_mode"], json!("cache"), "{ns}");
    assert_eq!(ns["auto_cache_recover"], json!(true), "{ns}");
    assert_eq!(ns["allow_positioning"], json!(true), "{ns}");
    assert_eq!(ns["allow_recovery"], json!(false), "{ns}");
    assert_eq!(ns["history_meta_ttl"], json!("2m0s"), "{ns}");
    assert_eq!(v["history_meta_ttl"], json!(null), "{v}");
    assert_eq!(v["force_recovery_mode"], json!("stream"), "{v}");
}
