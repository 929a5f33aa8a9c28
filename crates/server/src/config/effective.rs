//! The effective configuration as flat Centrifugo 2.x keys, secrets masked: what `checkconfig`
//! prints. The same settings print the same text whatever file format, key generation or
//! environment variables they came from. The proxies, which the two generations lay out
//! differently, are one `proxy` object in Rotor's own shape (PROXY.md §2), with credentials,
//! private keys, static header values and URL passwords masked.

use std::time::Duration;

use rotor_core::backend::BackendStyle;
use rotor_core::config::ChannelOptions;
use rotor_proxy::config::{RpcRoute, TlsSettings, DEFAULT_PROXY, LEGACY_DEFAULT_HEADERS};
use rotor_proxy::{ProxyConfig, ProxySettings};
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
        ("sub_refresh_proxy_enabled", json!(o.proxy_sub_refresh)),
        ("subscribe_proxy_name", json!(o.subscribe_proxy_name)),
        ("publish_proxy_name", json!(o.publish_proxy_name)),
        ("sub_refresh_proxy_name", json!(o.sub_refresh_proxy_name)),
        (
            "channel_regex",
            json!(o.channel_regex.as_ref().map_or("", |r| r.as_str())),
        ),
        (
            "publication_data_format",
            json!(o.publication_data_format.as_str()),
        ),
        ("allow_tags_filter", json!(o.allow_tags_filter)),
        ("allow_recovery", json!(o.allow_recovery)),
        ("force_positioning", json!(o.force_positioning)),
        ("allow_positioning", json!(o.allow_positioning)),
        (
            "force_recovery_mode",
            json!(match o.recovery_mode {
                rotor_core::config::RecoveryMode::Stream => "stream",
                rotor_core::config::RecoveryMode::Cache => "cache",
            }),
        ),
        ("auto_cache_recover", json!(o.auto_cache_recover)),
        (
            "history_meta_ttl",
            o.history_meta_ttl.map_or(Value::Null, dur),
        ),
        ("force_push_join_leave", json!(o.force_push_join_leave)),
    ];
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
}

/// The separate subscription-token block with its HMAC secret masked; `null` when off.
fn subscription_block(n: &rotor_core::config::NodeConfig) -> Value {
    match &n.subscription_token {
        None => Value::Null,
        Some(b) => json!({
            "hmac_secret_key": secret(&b.hmac_secret_key),
            "rsa_public_key": b.rsa_public_key,
            "ecdsa_public_key": b.ecdsa_public_key,
            "jwks_public_endpoint": b.jwks_public_endpoint,
            "audience": b.audience,
            "issuer": b.issuer,
            "audience_regex": b.audience_regex,
            "issuer_regex": b.issuer_regex,
            "user_id_claim": b.user_id_claim,
        }),
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
        ("api_error_mode", json!(s.api_error_mode)),
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
        ("token_rsa_public_key", json!(n.token_rsa_public_key)),
        ("token_ecdsa_public_key", json!(n.token_ecdsa_public_key)),
        (
            "token_jwks_public_endpoint",
            json!(n.token_jwks_public_endpoint),
        ),
        ("token_audience_regex", json!(n.token_audience_regex)),
        ("token_issuer_regex", json!(n.token_issuer_regex)),
        ("token_user_id_claim", json!(n.token_user_id_claim)),
        (
            "separate_subscription_token_config",
            json!(n.subscription_token.is_some()),
        ),
        ("subscription_token", subscription_block(n)),
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
            "client_history_max_publication_limit",
            json!(n.client_history_max_publication_limit),
        ),
        (
            "client_recovery_max_publication_limit",
            json!(n.client_recovery_max_publication_limit),
        ),
        (
            "client_user_connection_limit",
            json!(n.client_user_connection_limit),
        ),
        ("client_connection_limit", json!(s.client_connection_limit)),
        (
            "client_connection_rate_limit",
            json!(s.client_connection_rate_limit),
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
    m.insert("redis".into(), raw_keys(&s.redis));
    m.insert("brokers".into(), raw_keys(&s.brokers));
    m.insert("proxy".into(), proxy(&cfg.proxy));
    transports(&s.transports, &mut m);
    grpc_api(&s.grpc_api, &mut m);
    Value::Object(m)
}

/// The gRPC API settings as their flat keys; the key masked, and a private key given inline
/// (PEM or base64 rather than a path) masked too.
fn grpc_api(g: &super::grpc::GrpcApiSettings, m: &mut Map<String, Value>) {
    let inline = |v: &str| v.trim_start().starts_with("-----BEGIN") || v.len() > 256;
    let tls_key = if inline(&g.tls_key) {
        json!(MASK)
    } else {
        json!(g.tls_key)
    };
    let pairs = [
        ("grpc_api", json!(g.enabled())),
        ("grpc_api_address", json!(g.address)),
        ("grpc_api_port", json!(g.port)),
        ("grpc_api_key", secret(&g.key)),
        ("grpc_api_insecure", json!(g.insecure)),
        ("grpc_api_tls", json!(g.tls)),
        ("grpc_api_tls_cert", json!(g.tls_cert)),
        ("grpc_api_tls_key", tls_key),
        ("grpc_api_tls_client_ca", json!(g.tls_client_ca)),
        ("grpc_api_tls_disable", json!(g.tls_disable)),
        ("grpc_api_reflection", json!(g.reflection)),
        ("grpc_api_error_mode", json!(g.error_mode)),
        ("grpc_api_max_receive_message_size", json!(g.max_receive())),
    ];
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
}

/// The transport settings as their flat keys (Centrifugo 2.x `sockjs_*`, 5.x names for the rest).
fn transports(t: &super::transports::TransportSettings, m: &mut Map<String, Value>) {
    let codes = |c: &Option<Vec<super::transports::CodeToHttp>>| match c {
        None => json!({"enabled": false}),
        Some(list) => json!({
            "enabled": true,
            "transforms": list.iter().map(|t| json!({
                "code": t.code,
                "to": {"status_code": t.status_code, "body": t.body},
            })).collect::<Vec<_>>(),
        }),
    };
    let (w, g) = (&t.uni_websocket, &t.uni_grpc);
    let pairs = [
        ("sockjs_disable", json!(!t.sockjs.enabled)),
        ("sockjs_handler_prefix", json!(t.sockjs.handler_prefix)),
        ("sockjs_url", json!(t.sockjs.url)),
        ("sockjs_heartbeat_delay", dur(t.sockjs.heartbeat_delay)),
        ("sockjs_jsessionid", json!(t.sockjs.jsessionid)),
        ("sockjs_disconnect_delay", dur(t.sockjs.disconnect_delay)),
        ("http_stream", json!(t.http_stream.enabled)),
        (
            "http_stream_handler_prefix",
            json!(t.http_stream.handler_prefix),
        ),
        (
            "http_stream_max_request_body_size",
            json!(t.http_stream.max_request_body_size),
        ),
        ("sse", json!(t.sse.enabled)),
        ("sse_handler_prefix", json!(t.sse.handler_prefix)),
        (
            "sse_max_request_body_size",
            json!(t.sse.max_request_body_size),
        ),
        (
            "emulation_handler_prefix",
            json!(t.emulation.handler_prefix),
        ),
        (
            "emulation_max_request_body_size",
            json!(t.emulation.max_request_body_size),
        ),
        ("uni_websocket", json!(w.enabled)),
        ("uni_websocket_handler_prefix", json!(w.handler_prefix)),
        (
            "uni_websocket_message_size_limit",
            json!(w.message_size_limit),
        ),
        ("uni_websocket_write_timeout", dur(w.write_timeout)),
        (
            "uni_websocket_join_push_messages",
            json!(w.join_push_messages),
        ),
        (
            "uni_websocket_disable_closing_handshake",
            json!(w.disable_closing_handshake),
        ),
        (
            "uni_websocket_disable_disconnect_push",
            json!(w.disable_disconnect_push),
        ),
        ("uni_sse", json!(t.uni_sse.enabled)),
        ("uni_sse_handler_prefix", json!(t.uni_sse.handler_prefix)),
        (
            "uni_sse_max_request_body_size",
            json!(t.uni_sse.max_request_body_size),
        ),
        (
            "uni_sse_connect_code_to_http_response",
            codes(&t.uni_sse.connect_code_to_http_response),
        ),
        ("uni_http_stream", json!(t.uni_http_stream.enabled)),
        (
            "uni_http_stream_handler_prefix",
            json!(t.uni_http_stream.handler_prefix),
        ),
        (
            "uni_http_stream_max_request_body_size",
            json!(t.uni_http_stream.max_request_body_size),
        ),
        (
            "uni_http_stream_connect_code_to_http_response",
            codes(&t.uni_http_stream.connect_code_to_http_response),
        ),
        ("uni_grpc", json!(g.enabled)),
        ("uni_grpc_address", json!(g.address)),
        ("uni_grpc_port", json!(g.port)),
        (
            "uni_grpc_max_receive_message_size",
            json!(g.max_receive_message_size),
        ),
        ("uni_grpc_tls", json!(g.tls)),
        ("uni_grpc_tls_cert", json!(g.tls_cert)),
        ("uni_grpc_tls_key", json!(g.tls_key)),
    ];
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
    for (prefix, c) in [
        ("websocket", &t.websocket_compression),
        ("uni_websocket", &w.compression),
    ] {
        m.insert(format!("{prefix}_compression"), json!(c.enabled));
        m.insert(format!("{prefix}_compression_level"), json!(c.level));
        m.insert(format!("{prefix}_compression_min_size"), json!(c.min_size));
        m.insert(
            format!("{prefix}_decompressed_message_size_limit"),
            json!(c.decompressed_limit),
        );
    }
}

/// Keys the server passes on as read (the Redis engine's, the NATS broker's and the presence
/// manager's): passwords, inline private keys and URL passwords masked; scalars printed one way
/// (env values arrive as strings, file values typed).
fn raw_keys(keys: &Map<String, Value>) -> Value {
    let url = |v: &str| {
        v.split(',')
            .map(|part| redact_url(part.trim()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let printed = keys.iter().map(|(k, v)| {
        let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
        let inline = v
            .as_str()
            .is_some_and(|t| t.contains("-----BEGIN") || t.len() > 256);
        let v = match v {
            _ if !empty && (k.contains("password") || (k.ends_with("key_pem") && inline)) => {
                json!(MASK)
            }
            // PEM text of a certificate is not secret, but long: shown as set.
            Value::String(t) if t.contains("-----BEGIN") => json!("(PEM text)"),
            Value::String(t) if t.contains("://") => Value::String(url(t)),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|e| match e.as_str() {
                        Some(t) if t.contains("://") => Value::String(url(t)),
                        _ => e.clone(),
                    })
                    .collect(),
            ),
            Value::Number(_) | Value::Bool(_) => Value::String(v.to_string()),
            other => other.clone(),
        };
        (k.clone(), v)
    });
    Value::Object(printed.collect())
}

/// `scheme://user:password@host` with the password masked.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:{MASK}@{host}{path}")
        }
        None => url.to_string(),
    }
}

fn tls(t: &TlsSettings) -> Value {
    json!({
        "enabled": t.enabled,
        "cert_pem": t.cert_pem,
        "key_pem": secret(&t.key_pem),
        "server_ca_pem": t.server_ca_pem,
        "insecure_skip_verify": t.insecure_skip_verify,
        "server_name": t.server_name,
    })
}

/// Names with their values masked (static headers often carry credentials).
fn masked_map(pairs: &[(String, String)]) -> Value {
    let m = pairs.iter().map(|(k, v)| (k.clone(), secret(v)));
    Value::Object(m.collect())
}

fn settings(p: &ProxySettings, style: BackendStyle) -> Value {
    let headers: Vec<&str> = match style {
        // What is forwarded: the seven default headers of 2.x, then the extra ones.
        BackendStyle::Legacy => LEGACY_DEFAULT_HEADERS
            .iter()
            .copied()
            .chain(p.http_headers.iter().map(String::as_str))
            .collect(),
        BackendStyle::Modern => p.http_headers.iter().map(String::as_str).collect(),
    };
    let transforms = p.status_transforms.iter().map(|t| {
        json!({
            "status_code": t.status_code,
            "to_error": {"code": t.error_code, "message": t.error_message,
                "temporary": t.error_temporary},
            "to_disconnect": {"code": t.disconnect_code, "reason": t.disconnect_reason},
        })
    });
    json!({
        "name": p.name,
        "endpoint": redact_url(&p.endpoint),
        "transport": if p.is_http() { "http" } else { "grpc" },
        "timeout": dur(p.timeout),
        "http_headers": headers,
        "emulated_headers": p.emulated_headers,
        "grpc_metadata": p.grpc_metadata,
        "binary_encoding": p.binary_encoding,
        "include_connection_meta": p.include_connection_meta,
        "http": {
            "static_headers": masked_map(&p.static_headers),
            "status_to_code_transforms": transforms.collect::<Vec<_>>(),
            "tls": tls(&p.http_tls),
        },
        "grpc": {
            "tls": tls(&p.grpc_tls),
            "credentials_key": p.grpc_credentials_key,
            "credentials_value": secret(&p.grpc_credentials_value),
            "compression": p.grpc_compression,
            "static_metadata": masked_map(&p.grpc_static_metadata),
        },
    })
}

fn route(r: &RpcRoute) -> Value {
    let name = if r.proxy_name.is_empty() {
        DEFAULT_PROXY
    } else {
        &r.proxy_name
    };
    json!({"proxy_enabled": r.proxy_enabled, "proxy_name": name})
}

/// The proxies: which generation's keys set them up (`none` without any), each proxy object
/// (`null` when off), the named ones and the RPC routing.
fn proxy(c: &ProxyConfig) -> Value {
    let style = c.style;
    let one = |p: &Option<ProxySettings>| p.as_ref().map_or(Value::Null, |p| settings(p, style));
    let generation = match style {
        _ if c.is_empty() => "none",
        BackendStyle::Legacy => "2.x",
        BackendStyle::Modern => "6.x",
    };
    let namespaces = c.rpc_namespaces.iter().map(|n| {
        let mut v = route(&n.route);
        v["name"] = json!(n.name);
        v
    });
    json!({
        "generation": generation,
        "connect": one(&c.connect),
        "refresh": one(&c.refresh),
        "subscribe": one(&c.subscribe),
        "publish": one(&c.publish),
        "sub_refresh": one(&c.sub_refresh),
        "rpc": one(&c.rpc),
        "proxies": c.named.iter().map(|p| settings(p, style)).collect::<Vec<_>>(),
        "rpc_without_namespace": route(&c.rpc_without_namespace),
        "rpc_namespaces": namespaces.collect::<Vec<_>>(),
        "rpc_namespace_boundary": c.rpc_namespace_boundary,
        "rpc_ping": c.rpc_ping,
        "rpc_ping_method": c.rpc_ping_method,
    })
}
