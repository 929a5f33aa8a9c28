//! Loads a Centrifugo configuration into the core's [`NodeConfig`] plus the settings only the
//! server binary needs, so existing Centrifugo deployments can switch without rewriting configs.
//!
//! * Files: JSON, YAML (`.yaml`/`.yml`) or TOML (`.toml`), chosen by extension.
//! * Keys: Centrifugo 2.x flat keys (Rotor's canonical names, legacy aliases accepted), the
//!   renamed flat keys of Centrifugo 4/5 where they map, and Centrifugo 6 nested keys
//!   (`client.token.hmac_secret_key`, ...), detected key by key, so generations may even mix.
//! * Environment: `CENTRIFUGO_<KEY>` / `ROTOR_<KEY>` with the flat key upper-cased, or the
//!   nested path joined with `_` (`CENTRIFUGO_HTTP_SERVER_PORT`), as Centrifugo derives them;
//!   namespace options also as `CENTRIFUGO_CHANNEL_NAMESPACES_<NAME>_<OPTION>`.
//! * Precedence: defaults < file < env (`ROTOR_` over `CENTRIFUGO_`) < CLI flags.
//!
//! The proxies to the application backend are configured with either generation's keys
//! (`config/proxy.rs`) into [`LoadedConfig::proxy`].
//!
//! Keys Centrifugo knows but Rotor does not implement are ignored with a warning naming them;
//! unknown keys are warnings too; a wrong type or an impossible combination is an error naming
//! the key, returned before anything listens.

mod channel;
mod effective;
mod flat;
pub mod formats;
pub mod grpc;
mod jwks;
mod merge;
mod nested;
mod proxy;
pub mod ratelimit;
mod runtime;
mod tokens;
pub mod transports;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rotor_core::config::{ConfigError, NodeConfig};
use serde_json::{Map, Value};

pub use effective::{effective, redact_url};
pub use jwks::{stats as jwks_stats, token_verifier};
pub use runtime::{prepare_first_run, random_secret, watch_sighup};
use values::{boolean, duration, list, non_empty, or_default, port, positive, size, string, Input};
pub use values::{format_duration, parse_duration};

/// Settings used only by the server binary (listeners, HTTP API, logging), never by the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Listen address; `""` binds all interfaces (0.0.0.0), as in Centrifugo.
    pub address: String,
    pub port: u16,
    /// Seam for a separate API/admin/metrics listener (`internal_address`/`internal_port`).
    #[allow(dead_code)]
    pub internal_address: String,
    #[allow(dead_code)]
    pub internal_port: Option<u16>,
    pub api_key: String,
    pub api_insecure: bool,
    pub api_disable: bool,
    /// `http_api.error_mode` / `api_error_mode`: `""` (API errors in a 200 body) or
    /// `"transport"` (API errors as HTTP statuses, GRPC-API.md §3.3).
    pub api_error_mode: String,
    /// Trailing `/` trimmed and a leading `/` ensured, as Centrifugo does.
    pub websocket_handler_prefix: String,
    pub api_handler_prefix: String,
    pub health: bool,
    pub prometheus: bool,
    pub admin: bool,
    /// Lower-cased; one of trace, debug, info, warn, error, fatal, none.
    pub log_level: String,
    pub websocket_disable: bool,
    pub shutdown_timeout: Duration,
    /// `memory` or `redis`.
    pub engine: String,
    /// `None` when not configured: Centrifugo 2.x then accepts every Origin. A configuration
    /// with nested (Centrifugo 4+) keys gets `Some([])` instead: only Origin-less requests.
    pub allowed_origins: Option<Vec<String>>,
    /// Every `redis_*` key as given (file values as JSON, env values as strings); read by the
    /// Redis engine (`crates/server/src/engine.rs`).
    pub redis: Map<String, Value>,
    /// The broker and presence manager keys as given: 2.x `broker` and `nats_*`, v6
    /// `broker.*` and `presence_manager.*` under their flat names (`broker_type`,
    /// `nats_url`, `presence_manager_redis_address`, ...); read by `crates/server/src/engine.rs`.
    pub brokers: Map<String, Value>,
    /// Admin web UI login password and token-signing secret (`admin_password`, `admin_secret`);
    /// `admin_insecure` serves the UI and its API without login.
    pub admin_password: String,
    pub admin_secret: String,
    pub admin_insecure: bool,
    /// TLS on every listener with a PEM certificate chain and key (`tls`, `tls_cert`, `tls_key`).
    pub tls: bool,
    pub tls_cert: String,
    pub tls_key: String,
    /// Rotor: at shutdown, the closes (code 3001) are spread evenly over this window so a fleet
    /// of clients does not reconnect at the same instant (`shutdown_spread`, default 0: all at
    /// once, as Centrifugo). Bounded by `shutdown_timeout`.
    pub shutdown_spread: Duration,
    /// Centrifugo 2.x: a pause after connections are closed, before the process exits.
    pub shutdown_termination_delay: Duration,
    /// `text` (default) or `json` (one JSON object per line).
    pub log_format: String,
    /// SockJS, HTTP-streaming / SSE emulation and the unidirectional transports.
    pub transports: transports::TransportSettings,
    /// The gRPC server API listener (`grpc_api*` keys of every generation).
    pub grpc_api: grpc::GrpcApiSettings,
    /// `client.connection_limit` / `client_connection_limit`: current real-time connections
    /// on this node at most, 0 = off (see `crate::limits`).
    pub client_connection_limit: usize,
    /// `client.connection_rate_limit` / `client_connection_rate_limit`: new real-time
    /// connections per second on this node at most, 0 = off.
    pub client_connection_rate_limit: usize,
    /// `client.rate_limit` (Centrifugo PRO's shape): client command rate limits.
    pub rate_limit: ratelimit::RateLimitSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            address: String::new(),
            port: 8000,
            internal_address: String::new(),
            internal_port: None,
            api_key: String::new(),
            api_insecure: false,
            api_disable: false,
            api_error_mode: String::new(),
            websocket_handler_prefix: "/connection/websocket".to_string(),
            api_handler_prefix: "/api".to_string(),
            health: false,
            prometheus: false,
            admin: false,
            log_level: "info".to_string(),
            websocket_disable: false,
            shutdown_timeout: Duration::from_secs(30),
            engine: "memory".to_string(),
            allowed_origins: None,
            redis: Map::new(),
            brokers: Map::new(),
            admin_password: String::new(),
            admin_secret: String::new(),
            admin_insecure: false,
            tls: false,
            tls_cert: String::new(),
            tls_key: String::new(),
            shutdown_spread: Duration::ZERO,
            shutdown_termination_delay: Duration::ZERO,
            log_format: "text".to_string(),
            transports: transports::TransportSettings::default(),
            grpc_api: grpc::GrpcApiSettings::default(),
            client_connection_limit: 0,
            client_connection_rate_limit: 0,
            rate_limit: ratelimit::RateLimitSettings::default(),
        }
    }
}

/// The result of [`load`]: what the core and the binary need, plus warnings to print at start.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub node: NodeConfig,
    pub server: ServerSettings,
    /// The proxies to the application backend (empty: none), checked as Centrifugo does.
    pub proxy: rotor_proxy::ProxyConfig,
    /// Unknown and not-yet-supported keys, alias conflicts; the binary logs them.
    pub warnings: Vec<String>,
    /// The config file read, if any.
    pub source: Option<PathBuf>,
    /// Set by [`prepare_first_run`]: this run uses a generated secret and API key.
    pub first_run: Option<FirstRun>,
}

/// What a first run without configuration generated besides the secrets in the config.
#[derive(Debug, Clone)]
pub struct FirstRun {
    /// User of [`FirstRun::token`].
    pub user: String,
    /// A connection token signed with the generated secret, without expiry.
    pub token: String,
}

/// Why a configuration could not be loaded; every message names the file or env var at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error("cannot read config file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {} is not valid {format}: {message}", .path.display())]
    Parse {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("config file {}: the top level must be a {format} object", .path.display())]
    NotAnObject { path: PathBuf, format: &'static str },
    /// A key with a wrong type or value; `origin` is e.g. `in file x.json` or `from env X`.
    #[error("config key {key:?}{}: {message} ({origin})", in_namespace(.namespace))]
    Key {
        key: String,
        namespace: Option<String>,
        message: String,
        origin: String,
    },
    /// Rejected by [`NodeConfig::validate`] (the message names the namespace). Not a
    /// `source`: the message already holds it, and a chain would print it twice.
    #[error("invalid configuration ({origin}): {reason}")]
    Invalid { origin: String, reason: ConfigError },
    /// Keys that are fine alone but contradict each other.
    #[error("invalid configuration ({origin}): {message}")]
    Inconsistent { origin: String, message: String },
    /// The proxies cannot run as configured (the message names the key at fault).
    #[error("invalid proxy configuration ({origin}): {message}")]
    Proxy { origin: String, message: String },
}

fn in_namespace(ns: &Option<String>) -> String {
    ns.as_ref()
        .map(|n| format!(" in namespace {n:?}"))
        .unwrap_or_default()
}

/// Flag overrides given on the command line; each Some wins over env and file.
#[derive(Default, Debug, Clone)]
pub struct Overrides {
    pub address: Option<String>,
    pub port: Option<u16>,
    pub api_insecure: Option<bool>,
    pub client_insecure: Option<bool>,
    pub log_level: Option<String>,
    pub engine: Option<String>,
    pub health: Option<bool>,
    pub prometheus: Option<bool>,
    pub admin: Option<bool>,
    pub name: Option<String>,
    pub internal_address: Option<String>,
    pub internal_port: Option<u16>,
    /// 2.x `--grpc_api` (and v6 `--grpc_api.enabled`): start the gRPC API.
    pub grpc_api: Option<bool>,
    pub grpc_api_port: Option<u16>,
    pub grpc_api_tls: Option<bool>,
    pub grpc_api_tls_cert: Option<String>,
    pub grpc_api_tls_key: Option<String>,
    pub grpc_api_tls_disable: Option<bool>,
    /// 2.x `--broker` (only `nats`) and `--nats_url`.
    pub broker: Option<String>,
    pub nats_url: Option<String>,
}

/// Why a key could not be applied: not an implemented key, or a bad value (message only).
pub(crate) enum SetError {
    Unknown,
    Bad(String),
}

impl From<String> for SetError {
    fn from(m: String) -> Self {
        SetError::Bad(m)
    }
}

pub(crate) fn key_err(
    key: &str,
    ns: Option<&str>,
    message: String,
    origin: &str,
) -> ConfigLoadError {
    ConfigLoadError::Key {
        key: key.to_string(),
        namespace: ns.map(str::to_string),
        message,
        origin: origin.to_string(),
    }
}

pub(crate) fn unsupported(key: &str) -> String {
    format!("config key {key:?} is not supported yet; ignored")
}

/// What the keys are applied to; `top` collects the channel options without namespace.
#[derive(Default)]
pub(crate) struct Target {
    node: NodeConfig,
    server: ServerSettings,
    top: channel::ChanAcc,
    proxy: proxy::ProxyAcc,
    tokens: tokens::TokenAcc,
}

/// Applies one top-level key; this match is the list of implemented keys.
pub(crate) fn set_top(t: &mut Target, key: &str, i: &Input) -> Result<(), SetError> {
    let (s, n) = (&mut t.server, &mut t.node);
    match key {
        "address" => s.address = string(i)?,
        "port" => s.port = port(i)?,
        "internal_address" => s.internal_address = string(i)?,
        "internal_port" => s.internal_port = Some(port(i)?),
        "api_key" => s.api_key = string(i)?,
        "api_insecure" => s.api_insecure = boolean(i)?,
        "api_disable" => s.api_disable = boolean(i)?,
        "api_error_mode" => s.api_error_mode = api_error_mode(i)?,
        "websocket_handler_prefix" => s.websocket_handler_prefix = prefix(&string(i)?),
        "api_handler_prefix" => s.api_handler_prefix = prefix(&string(i)?),
        "health" => s.health = boolean(i)?,
        "prometheus" => s.prometheus = boolean(i)?,
        "admin" => s.admin = boolean(i)?,
        "log_level" => s.log_level = string(i)?.to_ascii_lowercase(),
        "websocket_disable" => s.websocket_disable = boolean(i)?,
        "shutdown_timeout" => s.shutdown_timeout = duration(i)?,
        "shutdown_spread" => s.shutdown_spread = duration(i)?,
        "shutdown_termination_delay" => s.shutdown_termination_delay = duration(i)?,
        "admin_password" => s.admin_password = string(i)?,
        "admin_secret" => s.admin_secret = string(i)?,
        "admin_insecure" => s.admin_insecure = boolean(i)?,
        "tls" => s.tls = boolean(i)?,
        "tls_cert" => s.tls_cert = string(i)?,
        "tls_key" => s.tls_key = string(i)?,
        "log_format" => s.log_format = string(i)?.to_ascii_lowercase(),
        "engine" => s.engine = string(i)?.to_ascii_lowercase(),
        "allowed_origins" => s.allowed_origins = Some(list(i)?),
        "name" => n.name = string(i)?,
        "token_hmac_secret_key" => n.token_hmac_secret_key = string(i)?,
        // Exact keys: matched here before the `token_` prefix of not-yet-supported keys.
        "token_audience" => n.token_audience = string(i)?,
        "token_issuer" => n.token_issuer = string(i)?,
        "client_insecure" => n.client_insecure = boolean(i)?,
        "client_anonymous" => n.client_anonymous = boolean(i)?,
        "channel_private_prefix" => n.channel_private_prefix = string(i)?,
        "channel_namespace_boundary" => n.channel_namespace_boundary = non_empty(i)?,
        "channel_user_boundary" => n.channel_user_boundary = non_empty(i)?,
        "channel_user_separator" => n.channel_user_separator = non_empty(i)?,
        "channel_max_length" => n.channel_max_length = size(i)?,
        "client_channel_limit" => n.client_channel_limit = size(i)?,
        "client_history_max_publication_limit" => n.client_history_max_publication_limit = size(i)?,
        "client_recovery_max_publication_limit" => {
            n.client_recovery_max_publication_limit = size(i)?
        }
        "client_user_connection_limit" => n.client_user_connection_limit = size(i)?,
        "client_connection_limit" => s.client_connection_limit = size(i)?,
        "client_connection_rate_limit" => s.client_connection_rate_limit = size(i)?,
        "client_rate_limit" => s.rate_limit = ratelimit::parse(i)?,
        "client_queue_max_size" => n.client_queue_max_size = size(i)?,
        "websocket_message_size_limit" => n.client_request_max_size = or_default(size(i)?, 65536),
        "client_expired_close_delay" => n.client_expired_close_delay = duration(i)?,
        "client_expired_sub_close_delay" => n.client_expired_sub_close_delay = duration(i)?,
        "client_stale_close_delay" => n.client_stale_close_delay = duration(i)?,
        "client_presence_ping_interval" => n.client_presence_ping_interval = positive(i)?,
        "client_presence_expire_interval" => n.client_presence_expire_interval = positive(i)?,
        "client_channel_position_check_delay" => {
            n.client_channel_position_check_delay = positive(i)?
        }
        "websocket_ping_interval" => {
            n.client_ping_interval = or_default(duration(i)?, Duration::from_secs(25))
        }
        "websocket_write_timeout" => {
            n.client_message_write_timeout = or_default(duration(i)?, Duration::from_secs(1))
        }
        // Rotor extension (protocol v2 pong wait), not a Centrifugo 2.x key.
        "client_pong_timeout" => n.client_pong_timeout = positive(i)?,
        "v3_use_offset" => n.v3_use_offset = boolean(i)?,
        "user_subscribe_to_personal" => n.user_subscribe_to_personal = boolean(i)?,
        "user_personal_channel_namespace" => n.user_personal_channel_namespace = string(i)?,
        "user_personal_single_connection" => n.user_personal_single_connection = boolean(i)?,
        "memory_history_meta_ttl" => n.memory_history_meta_ttl = duration(i)?,
        // Broker and presence manager keys: kept raw (see `ServerSettings::brokers`).
        b if b.starts_with("broker")
            || b.starts_with("nats_")
            || b.starts_with("presence_manager_") =>
        {
            s.brokers.insert(b.to_string(), i.to_json());
        }
        // Redis engine keys: kept raw, the engine reads them (see `ServerSettings::redis`).
        redis if redis.starts_with("redis_") => {
            s.redis.insert(redis.to_string(), i.to_json());
        }
        other => {
            match transports::set(&mut s.transports, other, i) {
                Err(SetError::Unknown) => {}
                applied => return applied,
            }
            match grpc::set(&mut s.grpc_api, other, i) {
                Err(SetError::Unknown) => {}
                applied => return applied,
            }
            let token_key = match tokens::set_conn(n, other, i) {
                Err(SetError::Unknown) => t.tokens.set(other, i),
                applied => applied,
            };
            return match token_key {
                Err(SetError::Unknown) => match t.proxy.set(other, i) {
                    Err(SetError::Unknown) => t.top.set(other, i),
                    applied => applied,
                },
                applied => applied,
            };
        }
    }
    Ok(())
}

/// Only `""` and `"transport"` are error modes; anything else fails the start.
fn api_error_mode(i: &Input) -> Result<String, String> {
    let v = string(i)?;
    match v.as_str() {
        "" | "transport" => Ok(v),
        other => Err(format!(
            "unknown HTTP API error mode {other:?} (valid: \"\" or \"transport\")"
        )),
    }
}

fn prefix(s: &str) -> String {
    let t = s.trim_end_matches('/');
    if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// `client.queue_max_size` default of Centrifugo 6 (bytes).
const V6_QUEUE_MAX_SIZE: usize = 1024 * 1024;
/// `channel.history_meta_ttl` default of Centrifugo 6 (720h).
const V6_HISTORY_META_TTL: Duration = Duration::from_secs(720 * 3600);
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal", "none"];
const ENGINES: &[&str] = &["memory", "redis"];
const FLAGS: &str = "from the command line";

/// Loads defaults, then the file at `path`, then `CENTRIFUGO_*`/`ROTOR_*` entries of `env`,
/// then `overrides`, and validates the result the way Centrifugo does at start-up.
pub fn load(
    path: Option<&Path>,
    env: &[(String, String)],
    overrides: &Overrides,
) -> Result<LoadedConfig, ConfigLoadError> {
    let mut layers = merge::Layers::default();
    let file_origin = path.map(|p| format!("in file {}", p.display()));
    if let Some(p) = path {
        layers.file(p)?;
    }
    layers.env(env);
    let merge::Applied {
        target: mut t,
        mut warnings,
        mut origins,
        givens,
    } = layers.apply()?;
    std::mem::take(&mut t.tokens).finish(&mut t.node, &givens, &mut warnings);
    // Centrifugo 6's `client.queue_max_size` defaults to 1 MB (2.x: 10 MB): a configuration
    // written with v6 (nested) keys gets the v6 default.
    if !givens.contains_key("client_queue_max_size") && givens.values().any(|g| g.contains('.')) {
        t.node.client_queue_max_size = V6_QUEUE_MAX_SIZE;
    }
    // Centrifugo 4+ refuses browser (Origin-carrying) connections while `client.allowed_origins`
    // is empty, 2.x accepts them while it is unset: a configuration written with nested keys
    // gets the modern default (TRANSPORTS.md §2.1).
    if t.server.allowed_origins.is_none() && givens.values().any(|g| g.contains('.')) {
        t.server.allowed_origins = Some(Vec::new());
    }
    // Centrifugo 6's `channel.history_meta_ttl` (default 720h) is the stream metadata's
    // lifetime on every engine; 2.x kept it forever unless `*_history_meta_ttl` said otherwise,
    // so every channel ever published to left its meta behind in Redis.
    if givens.values().any(|g| g.contains('.')) {
        if !givens.contains_key("memory_history_meta_ttl") {
            t.node.memory_history_meta_ttl = V6_HISTORY_META_TTL;
        }
        if !t.server.redis.contains_key("redis_history_meta_ttl") {
            let secs = t.node.memory_history_meta_ttl.as_secs();
            t.server
                .redis
                .insert("redis_history_meta_ttl".into(), Value::from(secs));
        }
    }
    warnings.append(&mut t.server.rate_limit.warnings);

    let o = overrides;
    let (s, n) = (&mut t.server, &mut t.node);
    if let Some(v) = &o.log_level {
        s.log_level = v.to_ascii_lowercase();
        origins.insert("log_level".into(), FLAGS.into());
    }
    if let Some(v) = &o.engine {
        s.engine = v.to_ascii_lowercase();
        origins.insert("engine".into(), FLAGS.into());
    }
    for (key, v) in [("broker", &o.broker), ("nats_url", &o.nats_url)] {
        if let Some(v) = v {
            s.brokers
                .insert(key.into(), serde_json::Value::String(v.clone()));
            origins.insert(key.into(), FLAGS.into());
        }
    }
    for (dst, src) in [(&mut s.address, &o.address), (&mut n.name, &o.name)] {
        if let Some(v) = src {
            dst.clone_from(v);
        }
    }
    s.port = o.port.unwrap_or(s.port);
    if let Some(v) = &o.internal_address {
        s.internal_address.clone_from(v);
    }
    s.internal_port = o.internal_port.or(s.internal_port);
    for (dst, src) in [
        (&mut s.api_insecure, o.api_insecure),
        (&mut n.client_insecure, o.client_insecure),
        (&mut s.health, o.health),
        (&mut s.prometheus, o.prometheus),
        (&mut s.admin, o.admin),
        (&mut s.grpc_api.enabled_flat, o.grpc_api),
        (&mut s.grpc_api.tls, o.grpc_api_tls),
        (&mut s.grpc_api.tls_disable, o.grpc_api_tls_disable),
    ] {
        *dst = src.unwrap_or(*dst);
    }
    s.grpc_api.port = o.grpc_api_port.unwrap_or(s.grpc_api.port);
    for (dst, src) in [
        (&mut s.grpc_api.tls_cert, &o.grpc_api_tls_cert),
        (&mut s.grpc_api.tls_key, &o.grpc_api_tls_key),
    ] {
        if let Some(v) = src {
            dst.clone_from(v);
        }
    }

    // `channel.publication_data_format` is the default of every namespace that sets none.
    let format = n.channel_options.publication_data_format;
    for ns in &mut n.namespaces {
        if ns.options.publication_data_format == rotor_core::config::DataFormat::NonEmpty {
            ns.options.publication_data_format = format;
        }
    }

    let origin_of = |key: &str| origins.get(key).cloned().unwrap_or_default();
    if !LOG_LEVELS.contains(&s.log_level.as_str()) {
        let msg = format!(
            "unknown level {:?}, expected {}",
            s.log_level,
            LOG_LEVELS.join("/")
        );
        return Err(key_err("log_level", None, msg, &origin_of("log_level")));
    }
    check_ops(s).map_err(|(key, msg)| key_err(key, None, msg, &origin_of(key)))?;
    transports::check(&s.transports, &s.websocket_handler_prefix)
        .map_err(|(key, msg)| key_err(key, None, msg, &origin_of(key)))?;
    grpc::check(&s.grpc_api).map_err(|(key, msg)| key_err(key, None, msg, &origin_of(key)))?;
    if !ENGINES.contains(&s.engine.as_str()) {
        let msg = format!("unknown engine {:?}, expected memory or redis", s.engine);
        return Err(key_err("engine", None, msg, &origin_of("engine")));
    }
    let origin = file_origin.unwrap_or_else(|| "from env".to_string());
    n.validate().map_err(|reason| ConfigLoadError::Invalid {
        origin: origin.clone(),
        reason,
    })?;
    check_personal(n).map_err(|message| ConfigLoadError::Inconsistent {
        origin: origin.clone(),
        message,
    })?;
    let names = tokens::Named {
        givens: &givens,
        origins: &origins,
        modern: tokens::uses_nested(&givens),
    };
    tokens::check(&t.node, &names)?;
    let proxy = t.proxy.finish(&t.node, &origins, &origin, &mut warnings)?;

    let (node, server, source) = (t.node, t.server, path.map(Path::to_path_buf));
    Ok(LoadedConfig {
        node,
        server,
        proxy,
        warnings,
        source,
        first_run: None,
    })
}

/// Loads the configuration again for a `SIGHUP` reload: the same file and environment rules as
/// [`load`], without command-line overrides (a reload applies the token secret and the channel
/// options, which have no flags).
pub fn reload(
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<LoadedConfig, ConfigLoadError> {
    load(path, env, &Overrides::default())
}

/// Log format and TLS files: checked before anything listens.
fn check_ops(s: &ServerSettings) -> Result<(), (&'static str, String)> {
    if !["text", "json"].contains(&s.log_format.as_str()) {
        let msg = format!("unknown format {:?}, expected text or json", s.log_format);
        return Err(("log_format", msg));
    }
    if s.tls {
        for (key, path) in [("tls_cert", &s.tls_cert), ("tls_key", &s.tls_key)] {
            if path.is_empty() {
                return Err((key, "must be set when tls is on".into()));
            }
        }
    }
    Ok(())
}

/// Centrifugo 2.8 checks on the personal channel namespace (rule.go `Validate`).
fn check_personal(n: &NodeConfig) -> Result<(), String> {
    if !n.user_subscribe_to_personal {
        return Ok(());
    }
    let ns_name = &n.user_personal_channel_namespace;
    let presence = if ns_name.is_empty() {
        n.channel_options.presence
    } else {
        match n.namespaces.iter().find(|ns| &ns.name == ns_name) {
            Some(ns) => ns.options.presence,
            None => return Err(format!("personal channel namespace {ns_name:?} not found")),
        }
    };
    if n.user_personal_single_connection && !presence {
        let at = if ns_name.is_empty() {
            "top level".to_string()
        } else {
            format!("namespace {ns_name:?}")
        };
        return Err(format!(
            "user_personal_single_connection needs presence enabled at {at}"
        ));
    }
    Ok(())
}

/// Human lines for stdout at start: what is missing for clients/backends to connect
/// (no token_hmac_secret_key and neither client_insecure nor client_anonymous → clients cannot connect;
/// no api_key and not api_insecure → HTTP API rejects every request). Empty when nothing is missing.
/// At a first run (see [`prepare_first_run`]) the lines are the generated secrets, a connection
/// token and a `curl` publish example instead.
pub fn missing_for_clients(cfg: &LoadedConfig) -> Vec<String> {
    if let Some(run) = &cfg.first_run {
        return runtime::first_run_lines(cfg, run);
    }
    let (n, s) = (&cfg.node, &cfg.server);
    let mut out = Vec::new();
    if s.websocket_disable {
        out.push("websocket_disable is on: clients have no transport to connect with".to_string());
    } else if !tokens::has_connection_keys(n) && !n.client_insecure && !n.client_anonymous {
        out.push(
            "token_hmac_secret_key is not set (nor token_rsa_public_key, token_ecdsa_public_key, \
             token_jwks_public_endpoint) and neither client_insecure nor client_anonymous is on: \
             clients cannot connect (set token_hmac_secret_key or \
             CENTRIFUGO_TOKEN_HMAC_SECRET_KEY)"
                .to_string(),
        );
    }
    if !s.api_disable && s.api_key.is_empty() && !s.api_insecure {
        out.push(format!(
            "api_key is not set and api_insecure is off: the HTTP API at {} rejects every request \
             (set api_key or CENTRIFUGO_API_KEY)",
            s.api_handler_prefix
        ));
    }
    out
}

#[cfg(test)]
mod tests;
