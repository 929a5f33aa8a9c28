//! Flat key names: Centrifugo 2.x keys (Rotor's canonical names), their legacy aliases, the
//! renamed flat keys of Centrifugo 4/5 (PROTOCOL.md §10.6) that map onto them, and the keys
//! Rotor recognises but does not implement.

/// Other names and the canonical key they stand for; the canonical name wins if both are set.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    // Centrifugo 2.x legacy names.
    ("secret", "token_hmac_secret_key"),
    ("client_request_max_size", "websocket_message_size_limit"),
    ("client_ping_interval", "websocket_ping_interval"),
    ("client_message_write_timeout", "websocket_write_timeout"),
    // Centrifugo 4/5 flat names with the same meaning.
    ("ping_interval", "websocket_ping_interval"),
    ("pong_timeout", "client_pong_timeout"),
    ("allow_anonymous_connect_without_token", "client_anonymous"),
    (
        "client_presence_update_interval",
        "client_presence_ping_interval",
    ),
    ("global_history_meta_ttl", "memory_history_meta_ttl"),
    // Channel options (top level and namespaces), Centrifugo 4/5/6 names.
    ("history_ttl", "history_lifetime"),
    ("force_recovery", "history_recover"),
    ("allow_subscribe_for_anonymous", "anonymous"),
    ("subscribe_proxy_enabled", "proxy_subscribe"),
    ("publish_proxy_enabled", "proxy_publish"),
    // gRPC API: the 5.x `*_pem` names (path, PEM or base64 PEM) of the 2.x TLS keys.
    ("grpc_api_tls_cert_pem", "grpc_api_tls_cert"),
    ("grpc_api_tls_key_pem", "grpc_api_tls_key"),
    ("grpc_api_tls_client_ca_pem", "grpc_api_tls_client_ca"),
];

/// Resolves an alias to its canonical key name.
pub(crate) fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == key)
        .map_or(key, |(_, c)| c)
}

/// Centrifugo 2.x channel options (top level and per namespace).
pub(crate) const CHANNEL_OPTIONS_2X: &[&str] = &[
    "publish",
    "subscribe_to_publish",
    "anonymous",
    "presence",
    "presence_disable_for_client",
    "join_leave",
    "history_size",
    "history_lifetime",
    "history_recover",
    "history_disable_for_client",
    "server_side",
    "proxy_subscribe",
    "proxy_publish",
];

/// Channel options of Centrifugo 4+ that Rotor maps onto the 2.x options (some through
/// [`ALIASES`]). Any of them in an options object switches it to the modern permission model:
/// presence and history calls need an `allow_*_for_*` option.
pub(crate) const CHANNEL_OPTIONS_MODERN: &[&str] = &[
    "history_ttl",
    "force_recovery",
    "allow_recovery",
    "allow_subscribe_for_anonymous",
    "allow_subscribe_for_client",
    "allow_publish_for_anonymous",
    "allow_publish_for_subscriber",
    "allow_publish_for_client",
    "allow_presence_for_anonymous",
    "allow_presence_for_subscriber",
    "allow_presence_for_client",
    "allow_history_for_anonymous",
    "allow_history_for_subscriber",
    "allow_history_for_client",
    "allow_user_limited_channels",
    "subscribe_proxy_enabled",
    "publish_proxy_enabled",
    "sub_refresh_proxy_enabled",
    "channel_regex",
    "publication_data_format",
    "allow_tags_filter",
    "subscribe_proxy_name",
    "publish_proxy_name",
    "sub_refresh_proxy_name",
    // Recognised to be refused when on (see `ChanAcc::set`): a subscribe stream cannot be
    // served, and Centrifugo 5's `proxy_sub_refresh` belongs to its flat proxy keys.
    "subscribe_stream_proxy_enabled",
    "subscribe_stream_proxy_bidirectional",
    "proxy_subscribe_stream",
    "proxy_subscribe_stream_bidirectional",
    "proxy_sub_refresh",
    "force_push_join_leave",
    "history_meta_ttl",
    "force_positioning",
    "allow_positioning",
    "force_recovery_mode",
    "auto_cache_recover",
    "allowed_delta_types",
    "delta_publish",
];

/// Channel options of Centrifugo 6 that Rotor does not serve: accepted at their defaults,
/// refused at start otherwise (`ChanAcc::set`); never ignored in silence.
pub(crate) const CHANNEL_OPTIONS_UNSUPPORTED: &[&str] = &[
    "proxy_cache_empty",
    "subscribe_stream_proxy_name",
    "cache_empty_proxy_name",
    "map_clients_presence_channel_prefix",
    "map_users_presence_channel_prefix",
    "subscription_type",
    "map",
    "shared_poll",
];

/// Every channel option name Rotor recognises (for per-namespace environment variables).
pub(crate) fn all_channel_options() -> impl Iterator<Item = &'static str> {
    CHANNEL_OPTIONS_2X
        .iter()
        .chain(CHANNEL_OPTIONS_MODERN)
        .chain(CHANNEL_OPTIONS_UNSUPPORTED)
        .copied()
}

pub(crate) fn is_channel_option(key: &str) -> bool {
    all_channel_options().any(|k| k == key)
}

/// A channel option name that exists only in Centrifugo 4+.
pub(crate) fn is_modern_channel_option(key: &str) -> bool {
    CHANNEL_OPTIONS_MODERN.contains(&key) || CHANNEL_OPTIONS_UNSUPPORTED.contains(&key)
}

/// Flat keys (Centrifugo 2.x and 4/5) Rotor accepts but does not implement yet: exact names.
const UNSUPPORTED: &str = "client_concurrency debug gomaxprocs log_file pid_file \
    node_info_metrics_aggregate_interval shutdown_termination_delay health_handler_prefix \
    prometheus_handler_prefix websocket_read_buffer_size websocket_write_buffer_size \
    websocket_use_write_buffer_pool tls_external tls_cert_pem tls_key_pem tls_root_ca \
    tls_root_ca_pem tls_client_ca tls_client_ca_pem tls_server_name tls_insecure_skip_verify \
    admin_handler_prefix admin_web_path admin_web_proxy_address admin_external api_external \
    client_insecure_skip_token_signature_verify \
    client_user_id_http_header global_presence_ttl \
    global_redis_presence_user_mapping disallow_anonymous_connection_tokens \
    client_channel_position_max_time_lag \
    client_connect_include_server_time usage_stats_disable enable_unreleased_features http3 \
    consumers \
    use_client_protocol_v1_by_default disable_client_protocol_v1 \
    uni_websocket_read_buffer_size uni_websocket_write_buffer_size \
    uni_websocket_use_write_buffer_pool sockjs_write_buffer_size sockjs_read_buffer_size";

/// Flat key prefixes Rotor accepts but does not implement yet. (`proxy_*` and `rpc_*` keys are
/// the proxy module's: applied, refused, or unknown.)
const UNSUPPORTED_PREFIXES: &str = "token_ subscription_token_ grpc_api graphite \
    tarantool_ opentelemetry tls_autocert \
    webtransport swagger client_connect_code_ uni_grpc_tls_root_ca \
    uni_grpc_tls_client_ca";

/// A key Centrifugo knows that Rotor ignores (with a warning when it is set).
pub(crate) fn is_unsupported(key: &str) -> bool {
    UNSUPPORTED.split_whitespace().any(|k| k == key)
        || UNSUPPORTED_PREFIXES
            .split_whitespace()
            .any(|p| key.starts_with(p))
}

/// Tooling variables that share the `ROTOR_` prefix without being configuration keys.
pub(crate) fn is_tooling_env(var: &str) -> bool {
    const EXACT: &[&str] = &["ROTOR_LOG", "ROTOR_BIN"];
    const PREFIXES: &[&str] = &[
        "ROTOR_TEST_",
        "ROTOR_PROPERTY_",
        "ROTOR_REQUIRE_",
        "ROTOR_BENCH_",
        // The build's own variables (build.rs): cargo also sets them for `cargo run`/`test`.
        "ROTOR_BUILD_",
    ];
    EXACT.contains(&var) || PREFIXES.iter().any(|p| var.starts_with(p))
}

/// Variables Kubernetes injects for a service named like the prefix (`CENTRIFUGO_PORT_8000_TCP`,
/// `CENTRIFUGO_SERVICE_HOST`): not configuration, never warned about. `CENTRIFUGO_VAR_*` are
/// Centrifugo's own substitution variables.
pub(crate) fn is_injected_env(var: &str) -> bool {
    var.starts_with("CENTRIFUGO_VAR_")
        || var.contains("_SERVICE_")
        || var.contains("_PORT_")
        || var.ends_with("_PORT")
}
