//! Centrifugo 6 nested keys (`client.token.hmac_secret_key`, `http_server.port`, ...), from
//! files (nested objects) and from the environment (the path joined with `_`, upper-cased,
//! after `CENTRIFUGO_`: `CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY`). Each nested path maps onto
//! the flat key Rotor uses for the same setting (the Centrifugo 2.x name, or the 4/5 flat name
//! where 2.x had none), so both generations merge into one set of keys with one precedence.
//!
//! Key names are those of Centrifugo 6's `internal/configtypes`.

use serde_json::{Map, Value};

use super::{flat, proxy};

/// Nested path → flat key. Whether the flat key is implemented is decided by the flat rules, so
/// a setting has one behaviour whichever generation names it.
const MAP: &[(&str, &str)] = &[
    ("http_server.address", "address"),
    ("http_server.port", "port"),
    ("http_server.internal_address", "internal_address"),
    ("http_server.internal_port", "internal_port"),
    ("http_server.tls.enabled", "tls"),
    ("http_server.tls.cert_pem", "tls_cert"),
    ("http_server.tls.key_pem", "tls_key"),
    ("http_server.tls.server_ca_pem", "tls_root_ca_pem"),
    ("http_server.tls.client_ca_pem", "tls_client_ca_pem"),
    (
        "http_server.tls.insecure_skip_verify",
        "tls_insecure_skip_verify",
    ),
    ("http_server.tls.server_name", "tls_server_name"),
    ("http_server.tls_external", "tls_external"),
    ("log.level", "log_level"),
    ("log.file", "log_file"),
    ("engine.type", "engine"),
    ("http_api.key", "api_key"),
    ("http_api.insecure", "api_insecure"),
    ("http_api.disabled", "api_disable"),
    ("http_api.handler_prefix", "api_handler_prefix"),
    ("http_api.external", "api_external"),
    ("http_api.error_mode", "api_error_mode"),
    ("websocket.disabled", "websocket_disable"),
    ("websocket.handler_prefix", "websocket_handler_prefix"),
    (
        "websocket.message_size_limit",
        "websocket_message_size_limit",
    ),
    ("websocket.write_timeout", "websocket_write_timeout"),
    ("websocket.compression", "websocket_compression"),
    (
        "websocket.compression_min_size",
        "websocket_compression_min_size",
    ),
    ("websocket.compression_level", "websocket_compression_level"),
    (
        "websocket.decompressed_message_size_limit",
        "websocket_decompressed_message_size_limit",
    ),
    ("websocket.read_buffer_size", "websocket_read_buffer_size"),
    ("websocket.write_buffer_size", "websocket_write_buffer_size"),
    (
        "websocket.use_write_buffer_pool",
        "websocket_use_write_buffer_pool",
    ),
    ("admin.enabled", "admin"),
    ("admin.password", "admin_password"),
    ("admin.secret", "admin_secret"),
    ("admin.insecure", "admin_insecure"),
    ("admin.handler_prefix", "admin_handler_prefix"),
    ("admin.web_path", "admin_web_path"),
    ("admin.web_proxy_address", "admin_web_proxy_address"),
    ("admin.external", "admin_external"),
    ("prometheus.enabled", "prometheus"),
    ("prometheus.handler_prefix", "prometheus_handler_prefix"),
    ("health.enabled", "health"),
    ("health.handler_prefix", "health_handler_prefix"),
    ("node.name", "name"),
    (
        "node.info_metrics_aggregate_interval",
        "node_info_metrics_aggregate_interval",
    ),
    ("shutdown.timeout", "shutdown_timeout"),
    ("pid_file", "pid_file"),
    ("enable_unreleased_features", "enable_unreleased_features"),
    ("client.token.hmac_secret_key", "token_hmac_secret_key"),
    ("client.token.rsa_public_key", "token_rsa_public_key"),
    ("client.token.ecdsa_public_key", "token_ecdsa_public_key"),
    (
        "client.token.jwks_public_endpoint",
        "token_jwks_public_endpoint",
    ),
    ("client.token.audience", "token_audience"),
    ("client.token.audience_regex", "token_audience_regex"),
    ("client.token.issuer", "token_issuer"),
    ("client.token.issuer_regex", "token_issuer_regex"),
    ("client.token.user_id_claim", "token_user_id_claim"),
    (
        "client.subscription_token.enabled",
        "separate_subscription_token_config",
    ),
    (
        "client.subscription_token.hmac_secret_key",
        "subscription_token_hmac_secret_key",
    ),
    (
        "client.subscription_token.rsa_public_key",
        "subscription_token_rsa_public_key",
    ),
    (
        "client.subscription_token.ecdsa_public_key",
        "subscription_token_ecdsa_public_key",
    ),
    (
        "client.subscription_token.jwks_public_endpoint",
        "subscription_token_jwks_public_endpoint",
    ),
    (
        "client.subscription_token.audience",
        "subscription_token_audience",
    ),
    (
        "client.subscription_token.audience_regex",
        "subscription_token_audience_regex",
    ),
    (
        "client.subscription_token.issuer",
        "subscription_token_issuer",
    ),
    (
        "client.subscription_token.issuer_regex",
        "subscription_token_issuer_regex",
    ),
    (
        "client.subscription_token.user_id_claim",
        "subscription_token_user_id_claim",
    ),
    (
        "client.subscription_token.hmac_previous_secret_key",
        "subscription_token_hmac_previous_secret_key",
    ),
    (
        "client.subscription_token.hmac_previous_secret_key_valid_until",
        "subscription_token_hmac_previous_secret_key_valid_until",
    ),
    (
        "client.subscription_token.insecure_skip_jwks_endpoint_safety_check",
        "subscription_token_insecure_skip_jwks_endpoint_safety_check",
    ),
    (
        "client.token.hmac_previous_secret_key",
        "token_hmac_previous_secret_key",
    ),
    (
        "client.token.hmac_previous_secret_key_valid_until",
        "token_hmac_previous_secret_key_valid_until",
    ),
    (
        "client.token.insecure_skip_jwks_endpoint_safety_check",
        "token_insecure_skip_jwks_endpoint_safety_check",
    ),
    ("client.allowed_origins", "allowed_origins"),
    ("client.insecure", "client_insecure"),
    (
        "client.allow_anonymous_connect_without_token",
        "client_anonymous",
    ),
    (
        "client.disallow_anonymous_connection_tokens",
        "disallow_anonymous_connection_tokens",
    ),
    ("client.ping_interval", "websocket_ping_interval"),
    ("client.pong_timeout", "client_pong_timeout"),
    ("client.expired_close_delay", "client_expired_close_delay"),
    (
        "client.expired_sub_close_delay",
        "client_expired_sub_close_delay",
    ),
    ("client.stale_close_delay", "client_stale_close_delay"),
    ("client.channel_limit", "client_channel_limit"),
    ("client.queue_max_size", "client_queue_max_size"),
    (
        "client.presence_update_interval",
        "client_presence_ping_interval",
    ),
    ("client.concurrency", "client_concurrency"),
    (
        "client.channel_position_check_delay",
        "client_channel_position_check_delay",
    ),
    (
        "client.channel_position_max_time_lag",
        "client_channel_position_max_time_lag",
    ),
    ("client.connection_limit", "client_connection_limit"),
    // One value, parsed whole by config/ratelimit.rs.
    ("client.rate_limit", "client_rate_limit"),
    (
        "client.user_connection_limit",
        "client_user_connection_limit",
    ),
    (
        "client.connection_rate_limit",
        "client_connection_rate_limit",
    ),
    (
        "client.connect_include_server_time",
        "client_connect_include_server_time",
    ),
    (
        "client.history_max_publication_limit",
        "client_history_max_publication_limit",
    ),
    (
        "client.recovery_max_publication_limit",
        "client_recovery_max_publication_limit",
    ),
    (
        "client.insecure_skip_token_signature_verify",
        "client_insecure_skip_token_signature_verify",
    ),
    ("client.user_id_http_header", "client_user_id_http_header"),
    (
        "client.subscribe_to_user_personal_channel.enabled",
        "user_subscribe_to_personal",
    ),
    (
        "client.subscribe_to_user_personal_channel.personal_channel_namespace",
        "user_personal_channel_namespace",
    ),
    (
        "client.subscribe_to_user_personal_channel.single_connection",
        "user_personal_single_connection",
    ),
    ("channel.private_prefix", "channel_private_prefix"),
    ("channel.namespace_boundary", "channel_namespace_boundary"),
    ("channel.user_boundary", "channel_user_boundary"),
    ("channel.user_separator", "channel_user_separator"),
    ("channel.max_length", "channel_max_length"),
    ("channel.history_meta_ttl", "memory_history_meta_ttl"),
    ("channel.publication_data_format", "publication_data_format"),
    ("channel.namespaces", "namespaces"),
    // Transports (config/transports.rs): each maps onto its Centrifugo 5 flat name.
    ("http_stream.enabled", "http_stream"),
    ("http_stream.handler_prefix", "http_stream_handler_prefix"),
    (
        "http_stream.max_request_body_size",
        "http_stream_max_request_body_size",
    ),
    ("sse.enabled", "sse"),
    ("sse.handler_prefix", "sse_handler_prefix"),
    ("sse.max_request_body_size", "sse_max_request_body_size"),
    ("emulation.handler_prefix", "emulation_handler_prefix"),
    (
        "emulation.max_request_body_size",
        "emulation_max_request_body_size",
    ),
    ("uni_websocket.enabled", "uni_websocket"),
    (
        "uni_websocket.handler_prefix",
        "uni_websocket_handler_prefix",
    ),
    (
        "uni_websocket.message_size_limit",
        "uni_websocket_message_size_limit",
    ),
    ("uni_websocket.write_timeout", "uni_websocket_write_timeout"),
    (
        "uni_websocket.join_push_messages",
        "uni_websocket_join_push_messages",
    ),
    (
        "uni_websocket.disable_closing_handshake",
        "uni_websocket_disable_closing_handshake",
    ),
    (
        "uni_websocket.disable_disconnect_push",
        "uni_websocket_disable_disconnect_push",
    ),
    ("uni_websocket.compression", "uni_websocket_compression"),
    (
        "uni_websocket.compression_level",
        "uni_websocket_compression_level",
    ),
    (
        "uni_websocket.compression_min_size",
        "uni_websocket_compression_min_size",
    ),
    (
        "uni_websocket.decompressed_message_size_limit",
        "uni_websocket_decompressed_message_size_limit",
    ),
    (
        "uni_websocket.read_buffer_size",
        "uni_websocket_read_buffer_size",
    ),
    (
        "uni_websocket.write_buffer_size",
        "uni_websocket_write_buffer_size",
    ),
    (
        "uni_websocket.use_write_buffer_pool",
        "uni_websocket_use_write_buffer_pool",
    ),
    ("uni_sse.enabled", "uni_sse"),
    ("uni_sse.handler_prefix", "uni_sse_handler_prefix"),
    (
        "uni_sse.max_request_body_size",
        "uni_sse_max_request_body_size",
    ),
    (
        "uni_sse.connect_code_to_http_response",
        "uni_sse_connect_code_to_http_response",
    ),
    ("uni_http_stream.enabled", "uni_http_stream"),
    (
        "uni_http_stream.handler_prefix",
        "uni_http_stream_handler_prefix",
    ),
    (
        "uni_http_stream.max_request_body_size",
        "uni_http_stream_max_request_body_size",
    ),
    (
        "uni_http_stream.connect_code_to_http_response",
        "uni_http_stream_connect_code_to_http_response",
    ),
    ("uni_grpc.enabled", "uni_grpc"),
    ("uni_grpc.address", "uni_grpc_address"),
    ("uni_grpc.port", "uni_grpc_port"),
    (
        "uni_grpc.max_receive_message_size",
        "uni_grpc_max_receive_message_size",
    ),
    ("uni_grpc.tls.enabled", "uni_grpc_tls"),
    ("uni_grpc.tls.cert_pem", "uni_grpc_tls_cert"),
    ("uni_grpc.tls.key_pem", "uni_grpc_tls_key"),
    ("uni_grpc.tls.server_ca_pem", "uni_grpc_tls_root_ca"),
    ("uni_grpc.tls.client_ca_pem", "uni_grpc_tls_client_ca"),
    ("grpc_api.enabled", "grpc_api_enabled"),
    ("grpc_api.address", "grpc_api_address"),
    ("grpc_api.port", "grpc_api_port"),
    ("grpc_api.key", "grpc_api_key"),
    ("grpc_api.insecure", "grpc_api_insecure"),
    ("grpc_api.reflection", "grpc_api_reflection"),
    ("grpc_api.error_mode", "grpc_api_error_mode"),
    (
        "grpc_api.max_receive_message_size",
        "grpc_api_max_receive_message_size",
    ),
    ("grpc_api.tls.enabled", "grpc_api_tls"),
    ("grpc_api.tls.cert_pem", "grpc_api_tls_cert_pem"),
    ("grpc_api.tls.key_pem", "grpc_api_tls_key_pem"),
    ("grpc_api.tls.client_ca_pem", "grpc_api_tls_client_ca_pem"),
    ("grpc_api.tls.server_ca_pem", "grpc_api_tls_root_ca_pem"),
    (
        "grpc_api.tls.insecure_skip_verify",
        "grpc_api_tls_insecure_skip_verify",
    ),
    ("grpc_api.tls.server_name", "grpc_api_tls_server_name"),
];

/// Objects that are one value (a leaf), not a section: parsed whole by their flat key.
const OBJECT_LEAVES: &[&str] = &[
    "client.rate_limit",
    "uni_sse.connect_code_to_http_response",
    "uni_http_stream.connect_code_to_http_response",
    // v6 blocks Rotor does not serve: checked whole (refused unless at their default).
    "channel.without_namespace.map",
    "channel.without_namespace.shared_poll",
];

/// Nested subtrees Rotor recognises but does not implement; each is reported once, as a whole.
const SUBTREES: &[&str] = &[
    "http_server.tls_autocert",
    "http_server.internal_tls",
    "http_server.http3",
    "http_server.h2c_external",
    "client.connect_code_to_unidirectional_disconnect",
    // Channel proxies Rotor does not run (the others are the proxy module's keys).
    "channel.proxy.subscribe_stream",
    "channel.proxy.map_publish",
    "channel.proxy.map_remove",
    "channel.proxy.shared_poll_refresh",
    "prometheus.instrument_http_handlers",
    "prometheus.recovered_publications_histogram",
    "prometheus.native_histograms",
    "broker.redis",
    "map_broker",
    "controller",
    "shared_poll",
    "consumers",
    "webtransport",
    "swagger",
    "debug",
    "init",
    "opentelemetry",
    "graphite",
    "usage_stats",
];

/// `engine.redis.<key>` keys renamed on their way to the `redis_*` keys of the Redis engine.
const REDIS_RENAMES: &[(&str, &str)] = &[
    ("sentinel_address", "redis_sentinels"),
    ("sentinel_master_name", "redis_master_name"),
];

/// Top-level names that are a Centrifugo 6 section when their value is an object. Some are also
/// flat keys with a scalar value (`engine: "redis"`, `admin: true`), which stay flat.
const SECTIONS: &[&str] = &[
    "http_server",
    "log",
    "engine",
    "broker",
    "presence_manager",
    "map_broker",
    "controller",
    "shared_poll",
    "client",
    "channel",
    "rpc",
    "proxies",
    "http_api",
    "grpc_api",
    "consumers",
    "websocket",
    "sse",
    "http_stream",
    "webtransport",
    "uni_sse",
    "uni_http_stream",
    "uni_websocket",
    "uni_grpc",
    "emulation",
    "admin",
    "prometheus",
    "health",
    "swagger",
    "debug",
    "init",
    "opentelemetry",
    "graphite",
    "usage_stats",
    "node",
    "shutdown",
];

/// Sections whose name is not also a flat key: any value there is nested configuration.
const ONLY_SECTIONS: &[&str] = &[
    "http_server",
    "log",
    "presence_manager",
    "map_broker",
    "controller",
    "shared_poll",
    "client",
    "channel",
    "rpc",
    "proxies",
    "http_api",
    "consumers",
    "websocket",
    "emulation",
    "init",
    "usage_stats",
    "node",
    "shutdown",
];

/// What a nested path means to Rotor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Nested {
    /// The flat key it maps onto.
    Key(String),
    /// A Centrifugo 6 subtree Rotor does not implement.
    Unsupported,
    /// Not a Centrifugo 6 key.
    Unknown,
}

/// Whether top-level `key` (lower-cased) with `value` is a Centrifugo 6 section.
pub(crate) fn is_section(key: &str, value: &Value) -> bool {
    SECTIONS.contains(&key) && value.is_object()
        || ONLY_SECTIONS.contains(&key)
        || SUBTREES.contains(&key)
}

/// The leaves under section `key`: `(path, value)`, paths lower-cased and joined with `.`.
/// Arrays, scalars, known subtrees and `channel.without_namespace` options are leaves.
pub(crate) fn flatten(key: &str, value: Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    walk(key.to_string(), value, &mut out);
    out
}

fn walk(path: String, value: Value, out: &mut Vec<(String, Value)>) {
    if SUBTREES.contains(&path.as_str())
        || proxy::is_map_leaf(&path)
        || OBJECT_LEAVES.contains(&path.as_str())
    {
        out.push((path, value));
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(format!("{path}.{}", k.to_ascii_lowercase()), v, out);
            }
        }
        Value::Null if ONLY_SECTIONS.contains(&path.as_str()) => {}
        leaf => out.push((path, leaf)),
    }
}

/// What the nested `path` maps to.
pub(crate) fn resolve(path: &str) -> Nested {
    if let Some((_, key)) = MAP.iter().find(|(p, _)| *p == path) {
        return Nested::Key((*key).to_string());
    }
    if proxy::is_modern_path(path) {
        // The proxy module's keys keep their nested path as their name.
        return Nested::Key(path.to_string());
    }
    if let Some(opt) = path.strip_prefix("channel.without_namespace.") {
        if flat::is_channel_option(opt) {
            return Nested::Key(opt.to_string());
        }
        return Nested::Unknown;
    }
    if let Some(k) = path.strip_prefix("engine.redis.") {
        if let Some((_, renamed)) = REDIS_RENAMES.iter().find(|(from, _)| *from == k) {
            return Nested::Key((*renamed).to_string());
        }
        if let Some(key) = redis_tls_key(k) {
            return Nested::Key(key);
        }
        if !k.is_empty() && !k.contains('.') {
            return Nested::Key(format!("redis_{k}"));
        }
    }
    if let Some(key) = broker_key(path) {
        return Nested::Key(key);
    }
    let under = |root: &str| path == root || path.starts_with(&format!("{root}."));
    if SUBTREES.iter().any(|root| under(root)) {
        return Nested::Unsupported;
    }
    Nested::Unknown
}

/// The NATS broker's and the presence manager's v6 keys, onto Rotor's flat names:
/// `broker.enabled`/`broker.type` → `broker_enabled`/`broker_type`, `broker.nats.<a.b>` →
/// `nats_<a_b>` (the 2.x names where 2.x has them), `presence_manager.{enabled,type}` →
/// `presence_manager_{enabled,type}`, `presence_manager.redis.<k>` →
/// `presence_manager_redis_<k>` (read by `crates/server/src/engine.rs`).
fn broker_key(path: &str) -> Option<String> {
    if let Some(k) = path.strip_prefix("broker.") {
        return match k {
            "enabled" | "type" => Some(format!("broker_{k}")),
            _ => k
                .strip_prefix("nats.")
                .filter(|n| !n.is_empty())
                .map(|n| format!("nats_{}", n.replace('.', "_"))),
        };
    }
    let k = path.strip_prefix("presence_manager.")?;
    match k {
        "enabled" | "type" => Some(format!("presence_manager_{k}")),
        _ => {
            let r = k.strip_prefix("redis.").filter(|r| !r.is_empty())?;
            if let Some(key) = redis_tls_key(r) {
                return Some(format!("presence_manager_{key}"));
            }
            if r.contains('.') {
                return None;
            }
            Some(match REDIS_RENAMES.iter().find(|(from, _)| *from == r) {
                Some((_, renamed)) => format!("presence_manager_{renamed}"),
                None => format!("presence_manager_redis_{r}"),
            })
        }
    }
}

/// A field of v6 `engine.redis.tls` (`tls.<field>` from a file, `tls_<field>` from the
/// environment) onto the Redis engine's key: `enabled` → `redis_tls`, `insecure_skip_verify` →
/// `redis_tls_skip_verify` (the 2.x names), the others `redis_tls_<field>`.
fn redis_tls_key(k: &str) -> Option<String> {
    let field = k.strip_prefix("tls.").or_else(|| k.strip_prefix("tls_"))?;
    Some(match field {
        "enabled" => "redis_tls".to_string(),
        "insecure_skip_verify" => "redis_tls_skip_verify".to_string(),
        "server_ca_pem" | "cert_pem" | "key_pem" | "server_name" | "client_ca_pem" => {
            format!("redis_tls_{field}")
        }
        _ => return None,
    })
}

/// The environment name of a nested path (after the `CENTRIFUGO_`/`ROTOR_` prefix).
pub(crate) fn env_name(path: &str) -> String {
    path.replace(['.', '-'], "_").to_ascii_uppercase()
}

/// The nested path an environment variable (its name after the prefix) stands for, if it is a
/// Centrifugo 6 name. Subtrees Rotor does not implement match by prefix.
pub(crate) fn env_path(rest: &str) -> Option<String> {
    if let Some((path, _)) = MAP.iter().find(|(p, _)| env_name(p) == rest) {
        return Some((*path).to_string());
    }
    if let Some(path) = proxy::env_path(rest) {
        return Some(path);
    }
    if let Some(opt) = rest.strip_prefix("CHANNEL_WITHOUT_NAMESPACE_") {
        let opt = opt.to_ascii_lowercase();
        return Some(format!("channel.without_namespace.{opt}"));
    }
    if let Some(k) = rest.strip_prefix("ENGINE_REDIS_") {
        return Some(format!("engine.redis.{}", k.to_ascii_lowercase()));
    }
    match rest {
        "BROKER_ENABLED" | "BROKER_TYPE" | "PRESENCE_MANAGER_ENABLED" | "PRESENCE_MANAGER_TYPE" => {
            let (root, k) = rest.rsplit_once('_').unwrap_or((rest, ""));
            return Some(format!(
                "{}.{}",
                root.to_ascii_lowercase(),
                k.to_ascii_lowercase()
            ));
        }
        _ => {}
    }
    for (var, root) in [
        ("BROKER_NATS_", "broker.nats."),
        ("PRESENCE_MANAGER_REDIS_", "presence_manager.redis."),
    ] {
        if let Some(k) = rest.strip_prefix(var).filter(|k| !k.is_empty()) {
            return Some(format!("{root}{}", k.to_ascii_lowercase()));
        }
    }
    let roots = SUBTREES.iter();
    roots
        .filter(|root| {
            let name = env_name(root);
            rest == name || rest.starts_with(&format!("{name}_"))
        })
        .map(|root| (*root).to_string())
        .next()
}

/// The environment name of option `opt` of namespace `name` (after the prefix), as Centrifugo 6
/// derives it: `CHANNEL_NAMESPACES_<NAME>_<OPTION>`, with `.` and `-` in the name as `_`.
pub(crate) fn namespace_env_name(name: &str, opt: &str) -> String {
    list_env_name("channel.namespaces", name, opt)
}

/// The environment name of field `field` of item `name` of the named list at `list`
/// (`channel.namespaces`, `rpc.namespaces`, `proxies`), after the prefix.
pub(crate) fn list_env_name(list: &str, name: &str, field: &str) -> String {
    env_name(&format!("{list}.{name}.{field}"))
}

/// Namespaces given in the environment as space-separated names (`CHANNEL_NAMESPACES="a b"`):
/// one object per name, options then come from per-namespace variables.
pub(crate) fn namespaces_from_names(text: &str) -> Value {
    let items = text.split_whitespace().map(|name| {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(name.to_string()));
        Value::Object(m)
    });
    Value::Array(items.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_resolve_to_flat_keys() {
        let key = |p: &str| resolve(p);
        let k = |s: &str| Nested::Key(s.into());
        assert_eq!(
            key("client.token.hmac_secret_key"),
            k("token_hmac_secret_key")
        );
        assert_eq!(key("http_server.port"), k("port"));
        assert_eq!(key("channel.without_namespace.presence"), k("presence"));
        assert_eq!(
            key("channel.without_namespace.history_ttl"),
            k("history_ttl")
        );
        assert_eq!(key("channel.without_namespace.port"), Nested::Unknown);
        assert_eq!(key("engine.redis.address"), k("redis_address"));
        assert_eq!(key("engine.redis.sentinel_address"), k("redis_sentinels"));
        assert_eq!(key("engine.redis.tls.enabled"), k("redis_tls"));
        assert_eq!(key("engine.redis.tls_enabled"), k("redis_tls"));
        assert_eq!(
            key("engine.redis.tls.insecure_skip_verify"),
            k("redis_tls_skip_verify")
        );
        assert_eq!(
            key("engine.redis.tls.server_ca_pem"),
            k("redis_tls_server_ca_pem")
        );
        assert_eq!(
            key("presence_manager.redis.tls.cert_pem"),
            k("presence_manager_redis_tls_cert_pem")
        );
        assert_eq!(key("engine.redis.tls.nonsense"), Nested::Unknown);
        assert_eq!(
            key("client.proxy.connect.endpoint"),
            k("client.proxy.connect.endpoint")
        );
        assert_eq!(
            key("channel.proxy.subscribe_stream.endpoint"),
            Nested::Unsupported
        );
        assert_eq!(key("client.proxy.connect.nope"), Nested::Unknown);
        assert_eq!(key("consumers"), Nested::Unsupported);
        assert_eq!(key("client.nope"), Nested::Unknown);
    }

    #[test]
    fn env_names_are_paths_joined_with_underscores() {
        let p = |s: &str| env_path(s);
        assert_eq!(
            p("CLIENT_TOKEN_HMAC_SECRET_KEY").as_deref(),
            Some("client.token.hmac_secret_key")
        );
        assert_eq!(p("HTTP_SERVER_PORT").as_deref(), Some("http_server.port"));
        assert_eq!(
            p("CHANNEL_WITHOUT_NAMESPACE_PRESENCE").as_deref(),
            Some("channel.without_namespace.presence")
        );
        assert_eq!(p("GRPC_API_PORT").as_deref(), Some("grpc_api.port"));
        assert_eq!(
            p("CLIENT_PROXY_CONNECT_HTTP_TLS_SERVER_NAME").as_deref(),
            Some("client.proxy.connect.http.tls.server_name")
        );
        assert_eq!(p("PROXIES").as_deref(), Some("proxies"));
        assert_eq!(p("PROXIES_ONE_ENDPOINT"), None);
        assert_eq!(p("PORT"), None);
        assert_eq!(
            namespace_env_name("my-chat.v2", "presence"),
            "CHANNEL_NAMESPACES_MY_CHAT_V2_PRESENCE"
        );
    }

    #[test]
    fn sections_and_leaves() {
        assert!(is_section("client", &json!({})));
        assert!(is_section("client", &json!(null)));
        assert!(is_section("admin", &json!({"enabled": true})));
        assert!(!is_section("admin", &json!(true)));
        assert!(!is_section("engine", &json!("redis")));
        let leaves = flatten(
            "client",
            json!({"token": {"hmac_secret_key": "s"}, "subscription_token": {"x": 1},
                "proxy": {"connect": {"http": {"static_headers": {"a": "b"}}}},
                "allowed_origins": ["a"]}),
        );
        let paths: Vec<_> = leaves.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "client.allowed_origins",
                "client.proxy.connect.http.static_headers",
                "client.subscription_token.x",
                "client.token.hmac_secret_key"
            ]
        );
    }
}
