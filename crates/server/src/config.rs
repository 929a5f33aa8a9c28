//! Loads a Centrifugo 2.x configuration into the core's [`NodeConfig`] plus the settings only the
//! server binary needs, so existing Centrifugo deployments can switch without rewriting configs.
//!
//! Precedence: defaults < JSON file < env (`ROTOR_<KEY>` over `CENTRIFUGO_<KEY>`) < CLI flags.
//! Keys keep their Centrifugo 2.x flat names; legacy aliases are accepted. Keys Centrifugo knows
//! but Rotor does not implement yet are ignored with a warning; unknown keys are warnings too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rotor_core::config::{ChannelOptions, ConfigError, Namespace, NodeConfig};
use serde_json::{Map, Value};

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
    /// `None` when not configured: Centrifugo 2.x then accepts every Origin.
    pub allowed_origins: Option<Vec<String>>,
    /// Every `redis_*` key as given (file values as JSON, env values as strings); read by the
    /// Redis engine (`crates/server/src/engine.rs`).
    pub redis: Map<String, Value>,
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
        }
    }
}

/// The result of [`load`]: what the core and the binary need, plus warnings to print at start.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub node: NodeConfig,
    pub server: ServerSettings,
    /// Unknown and not-yet-supported keys, alias conflicts; the binary logs them.
    pub warnings: Vec<String>,
    /// The config file read, if any.
    pub source: Option<PathBuf>,
}

/// Why a configuration could not be loaded; every message names the file or env var at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error("cannot read config file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: only JSON config files are supported for now", .path.display())]
    UnsupportedFormat { path: PathBuf },
    #[error("config file {} is not valid JSON: {source}", .path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("config file {}: the top level must be a JSON object", .path.display())]
    NotAnObject { path: PathBuf },
    /// A key with a wrong type or value; `origin` is e.g. `in file x.json` or `from env X`.
    #[error("config key {key:?}{}: {message} ({origin})", in_namespace(.namespace))]
    Key {
        key: String,
        namespace: Option<String>,
        message: String,
        origin: String,
    },
    /// Rejected by [`NodeConfig::validate`] (the message names the namespace).
    #[error("invalid configuration ({origin}): {source}")]
    Invalid { origin: String, source: ConfigError },
    /// Keys that are fine alone but contradict each other.
    #[error("invalid configuration ({origin}): {message}")]
    Inconsistent { origin: String, message: String },
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
}

/// Legacy 2.x names and the key they stand for; the canonical name wins if both are set.
const ALIASES: &[(&str, &str)] = &[
    ("secret", "token_hmac_secret_key"),
    ("client_request_max_size", "websocket_message_size_limit"),
    ("client_ping_interval", "websocket_ping_interval"),
    ("client_message_write_timeout", "websocket_write_timeout"),
];

/// Centrifugo 2.x keys Rotor accepts but does not implement yet (exact names, then prefixes).
const UNSUPPORTED: &str = "broker client_concurrency debug gomaxprocs log_file pid_file \
    node_info_metrics_aggregate_interval shutdown_termination_delay token_rsa_public_key \
    token_ecdsa_public_key token_jwks_public_endpoint health_handler_prefix \
    prometheus_handler_prefix websocket_read_buffer_size websocket_write_buffer_size \
    websocket_use_write_buffer_pool";
const UNSUPPORTED_PREFIXES: &str =
    "proxy_ tls admin_ grpc_api sockjs_ graphite nats_ websocket_compression";

fn is_unsupported(key: &str) -> bool {
    UNSUPPORTED.split_whitespace().any(|k| k == key)
        || UNSUPPORTED_PREFIXES.split(' ').any(|p| key.starts_with(p))
}

/// Resolves a legacy alias to its canonical key name.
fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == key)
        .map_or(key, |(_, c)| c)
}

/// Why a key could not be applied: not an implemented key, or a bad value (message only).
enum SetError {
    Unknown,
    Bad(String),
}

impl From<String> for SetError {
    fn from(m: String) -> Self {
        SetError::Bad(m)
    }
}

/// A raw value: JSON from the file, or a string from the environment (typed by its key).
enum Input {
    Json(Value),
    Env(String),
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, got {}", type_name(v))
}

fn boolean(i: &Input) -> Result<bool, String> {
    match i {
        Input::Json(Value::Bool(b)) => Ok(*b),
        Input::Json(v) => Err(expected("a boolean", v)),
        Input::Env(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("expected a boolean (true/false/1/0), got {s:?}")),
        },
    }
}

fn uint(i: &Input) -> Result<u64, String> {
    let n = match i {
        Input::Json(Value::Number(n)) => n,
        Input::Json(v) => return Err(expected("an integer", v)),
        Input::Env(s) => {
            let msg = || format!("expected a non-negative integer, got {s:?}");
            return s.trim().parse().map_err(|_| msg());
        }
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        })
        .ok_or_else(|| format!("expected a non-negative integer, got {n}"))
}

fn size(i: &Input) -> Result<usize, String> {
    uint(i).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn port(i: &Input) -> Result<u16, String> {
    let n = uint(i)?;
    u16::try_from(n).map_err(|_| format!("port {n} is out of range"))
}

fn string(i: &Input) -> Result<String, String> {
    match i {
        Input::Json(Value::String(s)) | Input::Env(s) => Ok(s.clone()),
        Input::Json(v) => Err(expected("a string", v)),
    }
}

fn non_empty(i: &Input) -> Result<String, String> {
    Some(string(i)?)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "must not be empty".into())
}

fn list(i: &Input) -> Result<Vec<String>, String> {
    let arr = match i {
        Input::Json(v) => v.clone(),
        Input::Env(s) if s.trim_start().starts_with('[') => serde_json::from_str(s)
            .map_err(|e| format!("expected a JSON array or a comma-separated list: {e}"))?,
        Input::Env(s) => {
            let items = s.split(|c: char| c == ',' || c.is_whitespace());
            return Ok(items
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect());
        }
    };
    let err = || expected("an array of strings", &arr);
    let items = arr.as_array().ok_or_else(err)?;
    let strings = items.iter().map(|v| v.as_str().map(str::to_string));
    strings.collect::<Option<_>>().ok_or_else(err)
}

/// Integer (or fractional) seconds, or a Go duration string.
fn duration(i: &Input) -> Result<Duration, String> {
    let secs = match i {
        Input::Json(Value::Number(n)) => n.as_f64(),
        Input::Json(Value::String(s)) => return parse_duration(s),
        Input::Json(v) => {
            return Err(expected(
                "seconds as an integer or a string like \"25s\"",
                v,
            ));
        }
        Input::Env(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Some(f),
            _ => return parse_duration(s),
        },
    };
    secs.filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "expected a non-negative number of seconds".into())
}

/// A duration where 0 would make a timer spin.
fn positive(i: &Input) -> Result<Duration, String> {
    Some(duration(i)?)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "must be greater than 0".into())
}

/// Centrifugo uses the default when some websocket settings are 0.
fn or_default<T: Default + PartialEq>(v: T, default: T) -> T {
    if v == T::default() {
        default
    } else {
        v
    }
}

/// Parses a Go duration string (`"25s"`, `"1m30s"`, `"500ms"`, `"1.5h"`, `"0"`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| Err(format!("invalid duration {s:?}: {why}"));
    let body = s.trim();
    let body = body.strip_prefix('+').unwrap_or(body);
    if body.starts_with('-') {
        return bad("must not be negative");
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return bad("empty");
    }
    let (mut rest, mut nanos) = (body, 0f64);
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'));
        let (num, tail) = rest.split_at(split.unwrap_or(rest.len()));
        let Ok(value) = num.parse::<f64>() else {
            return bad(&format!("expected a number at {rest:?}"));
        };
        let split = tail.find(|c: char| c.is_ascii_digit() || c == '.');
        let (unit, next) = tail.split_at(split.unwrap_or(tail.len()));
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return bad("missing unit (e.g. \"25s\", \"1m\", \"500ms\")"),
            u => return bad(&format!("unknown unit {u:?}")),
        };
        nanos += value * scale;
        rest = next;
    }
    if nanos > 1e18 {
        return bad("too large");
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

struct Target {
    node: NodeConfig,
    server: ServerSettings,
}

/// Applies one top-level key; this match is the list of implemented keys.
fn set_top(t: &mut Target, key: &str, i: &Input) -> Result<(), SetError> {
    let (s, n) = (&mut t.server, &mut t.node);
    match key {
        "address" => s.address = string(i)?,
        "port" => s.port = port(i)?,
        "internal_address" => s.internal_address = string(i)?,
        "internal_port" => s.internal_port = Some(port(i)?),
        "api_key" => s.api_key = string(i)?,
        "api_insecure" => s.api_insecure = boolean(i)?,
        "api_disable" => s.api_disable = boolean(i)?,
        "websocket_handler_prefix" => s.websocket_handler_prefix = prefix(&string(i)?),
        "api_handler_prefix" => s.api_handler_prefix = prefix(&string(i)?),
        "health" => s.health = boolean(i)?,
        "prometheus" => s.prometheus = boolean(i)?,
        "admin" => s.admin = boolean(i)?,
        "log_level" => s.log_level = string(i)?.to_ascii_lowercase(),
        "websocket_disable" => s.websocket_disable = boolean(i)?,
        "shutdown_timeout" => s.shutdown_timeout = duration(i)?,
        "engine" => s.engine = string(i)?.to_ascii_lowercase(),
        "allowed_origins" => s.allowed_origins = Some(list(i)?),
        "name" => n.name = string(i)?,
        "token_hmac_secret_key" => n.token_hmac_secret_key = string(i)?,
        "client_insecure" => n.client_insecure = boolean(i)?,
        "client_anonymous" => n.client_anonymous = boolean(i)?,
        "channel_private_prefix" => n.channel_private_prefix = string(i)?,
        "channel_namespace_boundary" => n.channel_namespace_boundary = non_empty(i)?,
        "channel_user_boundary" => n.channel_user_boundary = non_empty(i)?,
        "channel_user_separator" => n.channel_user_separator = non_empty(i)?,
        "channel_max_length" => n.channel_max_length = size(i)?,
        "client_channel_limit" => n.client_channel_limit = size(i)?,
        "client_user_connection_limit" => n.client_user_connection_limit = size(i)?,
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
        // Redis engine keys: kept raw, the engine reads them (see `ServerSettings::redis`).
        redis if redis.starts_with("redis_") => {
            let v = match i {
                Input::Json(v) => v.clone(),
                Input::Env(s) => Value::String(s.clone()),
            };
            s.redis.insert(redis.to_string(), v);
        }
        other => return set_channel(&mut n.channel_options, other, i),
    }
    Ok(())
}

/// Applies one channel option; valid at top level and inside each namespace.
fn set_channel(o: &mut ChannelOptions, key: &str, i: &Input) -> Result<(), SetError> {
    match key {
        "publish" => o.publish = boolean(i)?,
        "subscribe_to_publish" => o.subscribe_to_publish = boolean(i)?,
        "anonymous" => o.anonymous = boolean(i)?,
        "presence" => o.presence = boolean(i)?,
        "presence_disable_for_client" => o.presence_disable_for_client = boolean(i)?,
        "join_leave" => o.join_leave = boolean(i)?,
        "history_size" => o.history_size = size(i)?,
        "history_lifetime" => o.history_lifetime = uint(i)?,
        "history_recover" => o.history_recover = boolean(i)?,
        "history_disable_for_client" => o.history_disable_for_client = boolean(i)?,
        "server_side" => o.server_side = boolean(i)?,
        "proxy_subscribe" => o.proxy_subscribe = boolean(i)?,
        "proxy_publish" => o.proxy_publish = boolean(i)?,
        _ => return Err(SetError::Unknown),
    }
    Ok(())
}

fn prefix(s: &str) -> String {
    let t = s.trim_end_matches('/');
    if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// One value from one source; the higher rank (source, env prefix, canonical name) wins.
struct Entry {
    input: Input,
    given: String,
    origin: String,
    rank: (u8, u8, bool),
}

/// The merged raw values, keyed by canonical (lower-cased, alias-resolved) name.
#[derive(Default)]
struct Layers {
    map: BTreeMap<String, Entry>,
    warnings: Vec<String>,
}

impl Layers {
    fn add(&mut self, given: String, input: Input, origin: String, rank: (u8, u8)) {
        let key = canonical(&given.to_ascii_lowercase()).to_string();
        let rank = (rank.0, rank.1, key == given);
        if let Some(old) = self.map.get(&key) {
            if old.rank.0 == rank.0 && old.rank.1 == rank.1 && old.given != given {
                let (a, b) = (&old.given, &given);
                let msg = format!("both {a:?} and {b:?} are set ({origin}); using {key:?}");
                self.warnings.push(msg);
            }
            if old.rank > rank {
                return;
            }
        }
        let e = Entry {
            input,
            given,
            origin,
            rank,
        };
        self.map.insert(key, e);
    }
}

fn key_err(key: &str, ns: Option<&str>, message: String, origin: &str) -> ConfigLoadError {
    ConfigLoadError::Key {
        key: key.to_string(),
        namespace: ns.map(str::to_string),
        message,
        origin: origin.to_string(),
    }
}

fn is_zero(i: &Input) -> bool {
    match i {
        Input::Env(s) | Input::Json(Value::String(s)) => s.is_empty(),
        Input::Json(Value::Null) => true,
        Input::Json(Value::Bool(b)) => !b,
        Input::Json(Value::Number(n)) => n.as_f64() == Some(0.0),
        Input::Json(Value::Array(a)) => a.is_empty(),
        Input::Json(Value::Object(o)) => o.is_empty(),
    }
}

fn unsupported(key: &str) -> String {
    format!("config key {key:?} is not supported yet; ignored")
}

fn parse_namespaces(
    i: &Input,
    origin: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<Namespace>, ConfigLoadError> {
    let err = |ns: Option<&str>, key: &str, msg: String| key_err(key, ns, msg, origin);
    let parsed;
    let v = match i {
        Input::Json(v) => v,
        Input::Env(s) => {
            let msg = |e| format!("expected a JSON array of namespace objects: {e}");
            parsed = serde_json::from_str(s).map_err(|e| err(None, "namespaces", msg(e)))?;
            &parsed
        }
    };
    if v.is_null() {
        return Ok(Vec::new());
    }
    let Value::Array(items) = v else {
        return Err(err(None, "namespaces", expected("an array", v)));
    };
    let mut out = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            let msg = format!("item {idx}: {}", expected("an object", item));
            return Err(err(None, "namespaces", msg));
        };
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => {
                return Err(err(
                    None,
                    "namespaces",
                    format!("item {idx} has no \"name\""),
                ));
            }
            Some(other) => {
                let ns = format!("#{idx}");
                return Err(err(Some(&ns), "name", expected("a string", other)));
            }
        };
        let mut options = ChannelOptions::default();
        for (k, v) in obj.iter().filter(|(k, v)| *k != "name" && !v.is_null()) {
            match set_channel(
                &mut options,
                &k.to_ascii_lowercase(),
                &Input::Json(v.clone()),
            ) {
                Ok(()) => {}
                Err(SetError::Bad(m)) => return Err(err(Some(&name), k, m)),
                Err(SetError::Unknown) => {
                    warnings.push(format!("unknown config key {k:?} in namespace {name:?}"));
                }
            }
        }
        out.push(Namespace { name, options });
    }
    Ok(out)
}

fn read_file(path: &Path) -> Result<Map<String, Value>, ConfigLoadError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ["toml", "yaml", "yml"].contains(&ext.to_ascii_lowercase().as_str()) {
        return Err(ConfigLoadError::UnsupportedFormat { path: path.into() });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigLoadError::Read {
        path: path.into(),
        source,
    })?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ConfigLoadError::NotAnObject { path: path.into() }),
        Err(source) => Err(ConfigLoadError::Parse {
            path: path.into(),
            source,
        }),
    }
}

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal", "none"];
const ENGINES: &[&str] = &["memory", "redis"];
const FLAGS: &str = "from the command line";

/// Loads defaults, then the JSON file at `path`, then `CENTRIFUGO_*`/`ROTOR_*` entries of `env`,
/// then `overrides`, and validates the result the way Centrifugo 2.x does at start-up.
pub fn load(
    path: Option<&Path>,
    env: &[(String, String)],
    overrides: &Overrides,
) -> Result<LoadedConfig, ConfigLoadError> {
    let mut layers = Layers::default();
    let file_origin = path.map(|p| format!("in file {}", p.display()));
    if let (Some(p), Some(origin)) = (path, &file_origin) {
        for (given, value) in read_file(p)? {
            layers.add(given, Input::Json(value), origin.clone(), (0, 0));
        }
    }
    for (var, raw) in env {
        let (rest, prio) = match (var.strip_prefix("ROTOR_"), var.strip_prefix("CENTRIFUGO_")) {
            (Some(r), _) => (r, 1),
            (None, Some(r)) => (r, 0),
            (None, None) => continue,
        };
        let (given, origin) = (rest.to_ascii_lowercase(), format!("from env {var}"));
        layers.add(given, Input::Env(raw.clone()), origin, (1, prio));
    }

    let (node, server) = (NodeConfig::default(), ServerSettings::default());
    let mut t = Target { node, server };
    let mut origins = BTreeMap::new();
    let Layers { map, mut warnings } = layers;
    for (key, e) in map {
        let res = if key == "namespaces" {
            t.node.namespaces = parse_namespaces(&e.input, &e.origin, &mut warnings)?;
            Ok(())
        } else {
            set_top(&mut t, &key, &e.input)
        };
        match res {
            Ok(()) => drop(origins.insert(key, e.origin)),
            // `null` in the file means "not set"; the getter refused it without assigning.
            Err(SetError::Bad(_)) if matches!(e.input, Input::Json(Value::Null)) => {}
            Err(SetError::Bad(m)) => return Err(key_err(&e.given, None, m, &e.origin)),
            Err(SetError::Unknown) if is_unsupported(&key) => {
                if !is_zero(&e.input) {
                    warnings.push(unsupported(&e.given));
                }
            }
            // Other `CENTRIFUGO_*`/`ROTOR_*` variables may belong to something else.
            Err(SetError::Unknown) if e.rank.0 > 0 => {}
            Err(SetError::Unknown) => warnings.push(format!("unknown config key {:?}", e.given)),
        }
    }

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
    for (dst, src) in [(&mut s.address, &o.address), (&mut n.name, &o.name)] {
        if let Some(v) = src {
            dst.clone_from(v);
        }
    }
    s.port = o.port.unwrap_or(s.port);
    for (dst, src) in [
        (&mut s.api_insecure, o.api_insecure),
        (&mut n.client_insecure, o.client_insecure),
        (&mut s.health, o.health),
        (&mut s.prometheus, o.prometheus),
        (&mut s.admin, o.admin),
    ] {
        *dst = src.unwrap_or(*dst);
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
    if !ENGINES.contains(&s.engine.as_str()) {
        let msg = format!("unknown engine {:?}, expected memory or redis", s.engine);
        return Err(key_err("engine", None, msg, &origin_of("engine")));
    }
    let origin = file_origin.unwrap_or_else(|| "from env".to_string());
    n.validate().map_err(|source| ConfigLoadError::Invalid {
        origin: origin.clone(),
        source,
    })?;
    check_personal(n).map_err(|message| ConfigLoadError::Inconsistent { origin, message })?;

    let (node, server, source) = (t.node, t.server, path.map(Path::to_path_buf));
    Ok(LoadedConfig {
        node,
        server,
        warnings,
        source,
    })
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
pub fn missing_for_clients(cfg: &LoadedConfig) -> Vec<String> {
    let (n, s) = (&cfg.node, &cfg.server);
    let mut out = Vec::new();
    if s.websocket_disable {
        out.push("websocket_disable is on: clients have no transport to connect with".to_string());
    } else if n.token_hmac_secret_key.is_empty() && !n.client_insecure && !n.client_anonymous {
        out.push(
            "token_hmac_secret_key is not set and neither client_insecure nor client_anonymous is on: \
             clients cannot connect (set token_hmac_secret_key or CENTRIFUGO_TOKEN_HMAC_SECRET_KEY)"
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
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
            "grpc_api":true,"namespaces":[{"name":"chat","bar":true}]}"#,
        );
        let w = c.warnings.join("\n");
        has(&w, r#"unknown config key "foo""#);
        has(&w, r#"unknown config key "bar" in namespace "chat""#);
        has(&w, r#"config key "grpc_api" is not supported yet"#);
        assert_eq!(c.warnings.len(), 3, "zero values stay silent: {w}");
        // Redis keys are collected for the engine, not warned about.
        assert_eq!(c.server.redis.get("redis_host"), Some(&json!("h")));
    }

    #[test]
    fn wrong_types_name_the_key_and_file() {
        let e = fail(r#"{"port":"8000"}"#);
        let want = r#"config key "port": expected an integer, got string (in file "#;
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
        for ext in ["toml", "yaml", "yml"] {
            let e = run(Some(&file(ext, "")), &[]).unwrap_err();
            has(&e, "only JSON config files are supported for now");
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
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

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
        };
        let c = load(None, &env, &o).unwrap();
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
    fn durations() {
        let ms = |n| Ok(Duration::from_millis(n));
        assert_eq!(parse_duration("25s"), ms(25_000));
        assert_eq!(parse_duration("1m"), ms(60_000));
        assert_eq!(parse_duration("500ms"), ms(500));
        assert_eq!(parse_duration("1h30m"), ms(5_400_000));
        assert_eq!(parse_duration("1.5s"), ms(1_500));
        assert_eq!(parse_duration("+2s"), ms(2_000));
        assert_eq!(parse_duration("0"), ms(0));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        for bad in ["25", "-1s", "5x", "", "s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(duration(&Input::Json(json!(2.5))), ms(2_500));
        assert!(duration(&Input::Json(json!(-1))).is_err());
        assert_eq!(duration(&Input::Env("3".into())), ms(3_000));
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
}
