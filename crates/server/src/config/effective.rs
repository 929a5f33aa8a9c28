//! The effective configuration as flat Centrifugo 2.x keys, secrets masked: what `checkconfig`
//! prints. The same settings print the same text whatever file format, key generation or
//! environment variables they came from.

use std::time::Duration;

use rotor_core::config::ChannelOptions;
use serde_json::{json, Map, Value};

use super::values::format_duration;
use super::LoadedConfig;

/// How a set secret is shown.
const MASK: &str = "********";

fn secret(s: &str) -> Value {
    if s.is_empty() {
        Value::String(String::new())
    } else {
        Value::String(MASK.into())
    }
}

fn dur(d: Duration) -> Value {
    Value::String(format_duration(d))
}

fn options(o: &ChannelOptions, m: &mut Map<String, Value>) {
    let pairs = [
        ("publish", json!(o.publish)),
        ("subscribe_to_publish", json!(o.subscribe_to_publish)),
        ("anonymous", json!(o.anonymous)),
        ("presence", json!(o.presence)),
        (
            "presence_disable_for_client",
            json!(o.presence_disable_for_client),
        ),
        ("join_leave", json!(o.join_leave)),
        ("history_size", json!(o.history_size)),
        ("history_lifetime", json!(o.history_lifetime)),
        ("history_recover", json!(o.history_recover)),
        (
            "history_disable_for_client",
            json!(o.history_disable_for_client),
        ),
        ("server_side", json!(o.server_side)),
        ("proxy_subscribe", json!(o.proxy_subscribe)),
        ("proxy_publish", json!(o.proxy_publish)),
    ];
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
}

/// The effective configuration of `cfg` (the file it came from is not part of it).
pub fn effective(cfg: &LoadedConfig) -> Value {
    let (n, s) = (&cfg.node, &cfg.server);
    let mut m = Map::new();
    let pairs = [
        ("address", json!(s.address)),
        ("port", json!(s.port)),
        ("internal_address", json!(s.internal_address)),
        ("internal_port", json!(s.internal_port)),
        ("tls", json!(s.tls)),
        ("tls_cert", json!(s.tls_cert)),
        ("tls_key", json!(s.tls_key)),
        ("engine", json!(s.engine)),
        ("name", json!(n.name)),
        ("log_level", json!(s.log_level)),
        ("log_format", json!(s.log_format)),
        ("api_key", secret(&s.api_key)),
        ("api_insecure", json!(s.api_insecure)),
        ("api_disable", json!(s.api_disable)),
        ("api_handler_prefix", json!(s.api_handler_prefix)),
        ("websocket_disable", json!(s.websocket_disable)),
        (
            "websocket_handler_prefix",
            json!(s.websocket_handler_prefix),
        ),
        ("health", json!(s.health)),
        ("prometheus", json!(s.prometheus)),
        ("admin", json!(s.admin)),
        ("admin_password", secret(&s.admin_password)),
        ("admin_secret", secret(&s.admin_secret)),
        ("admin_insecure", json!(s.admin_insecure)),
        ("shutdown_timeout", dur(s.shutdown_timeout)),
        ("shutdown_spread", dur(s.shutdown_spread)),
        (
            "shutdown_termination_delay",
            dur(s.shutdown_termination_delay),
        ),
        ("allowed_origins", json!(s.allowed_origins)),
        ("token_hmac_secret_key", secret(&n.token_hmac_secret_key)),
        ("token_audience", json!(n.token_audience)),
        ("token_issuer", json!(n.token_issuer)),
        ("client_insecure", json!(n.client_insecure)),
        ("client_anonymous", json!(n.client_anonymous)),
        ("channel_private_prefix", json!(n.channel_private_prefix)),
        (
            "channel_namespace_boundary",
            json!(n.channel_namespace_boundary),
        ),
        ("channel_user_boundary", json!(n.channel_user_boundary)),
        ("channel_user_separator", json!(n.channel_user_separator)),
        ("channel_max_length", json!(n.channel_max_length)),
        ("client_channel_limit", json!(n.client_channel_limit)),
        (
            "client_user_connection_limit",
            json!(n.client_user_connection_limit),
        ),
        ("client_queue_max_size", json!(n.client_queue_max_size)),
        (
            "websocket_message_size_limit",
            json!(n.client_request_max_size),
        ),
        (
            "client_expired_close_delay",
            dur(n.client_expired_close_delay),
        ),
        (
            "client_expired_sub_close_delay",
            dur(n.client_expired_sub_close_delay),
        ),
        ("client_stale_close_delay", dur(n.client_stale_close_delay)),
        (
            "client_presence_ping_interval",
            dur(n.client_presence_ping_interval),
        ),
        (
            "client_presence_expire_interval",
            dur(n.client_presence_expire_interval),
        ),
        (
            "client_channel_position_check_delay",
            dur(n.client_channel_position_check_delay),
        ),
        ("websocket_ping_interval", dur(n.client_ping_interval)),
        ("client_pong_timeout", dur(n.client_pong_timeout)),
        (
            "websocket_write_timeout",
            dur(n.client_message_write_timeout),
        ),
        ("v3_use_offset", json!(n.v3_use_offset)),
        (
            "user_subscribe_to_personal",
            json!(n.user_subscribe_to_personal),
        ),
        (
            "user_personal_channel_namespace",
            json!(n.user_personal_channel_namespace),
        ),
        (
            "user_personal_single_connection",
            json!(n.user_personal_single_connection),
        ),
        ("memory_history_meta_ttl", dur(n.memory_history_meta_ttl)),
    ];
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
    options(&n.channel_options, &mut m);
    let namespaces = n.namespaces.iter().map(|ns| {
        let mut o = Map::new();
        o.insert("name".into(), json!(ns.name));
        options(&ns.options, &mut o);
        Value::Object(o)
    });
    m.insert("namespaces".into(), Value::Array(namespaces.collect()));
    let redis = s.redis.iter().map(|(k, v)| {
        let masked = k.contains("password") && !v.as_str().is_some_and(str::is_empty);
        // Env values arrive as strings, file values typed: print scalars one way.
        let v = match v {
            _ if masked => json!(MASK),
            Value::Number(_) | Value::Bool(_) => Value::String(v.to_string()),
            other => other.clone(),
        };
        (k.clone(), v)
    });
    m.insert("redis".into(), Value::Object(redis.collect()));
    Value::Object(m)
}
