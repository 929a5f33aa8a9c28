//! [`NatsConfig`]: the NATS broker's settings, read from the raw `nats_*` keys the server's
//! configuration collects (Centrifugo 2.x flat keys, and the v6 `broker.nats.*` keys mapped
//! onto them: `broker.nats.url` → `nats_url`, `broker.nats.tls.enabled` → `nats_tls_enabled`).
//!
//! Durations are whole seconds as numbers (2.x) or duration strings (`"1s"`, `"500ms"`, v6).
//!
//! TLS (v6 `broker.nats.tls`, flat `nats_tls_<field>`; 2.x has no NATS TLS keys): with
//! `enabled` the connection must run TLS, verified against `server_ca_pem` (or the system
//! roots), with a client certificate when `cert_pem`/`key_pem` are set; `server_name` is the
//! name the certificate is verified against (SNI still carries the URL's host: async-nats
//! cannot send another), `insecure_skip_verify` accepts any certificate, `client_ca_pem` has no
//! effect on a client. PEM values are PEM text or a file path; they are read here, so a bad one
//! fails at start naming its key. A `tls://` URL asks for TLS by itself (system roots).
//!
//! What Rotor does not build is refused with a message naming the key: subscriptions with
//! wildcards (`allow_wildcards`) and raw mode (`raw_mode.enabled`).

use std::time::Duration;

use rotor_netclient::{client_config_named, TlsError, TlsOptions};
use serde_json::{Map, Value};

use crate::subject::check_prefix;

/// Centrifugo's defaults.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_PREFIX: &str = "centrifugo";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A configuration the broker cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Bad { key: String, message: String },
    #[error("{key}: {what} is not supported by Rotor's NATS broker")]
    Unsupported { key: String, what: String },
}

/// The NATS broker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// One or more server URLs, comma-separated as nats.go accepts them.
    pub urls: Vec<String>,
    pub prefix: String,
    /// Connect timeout.
    pub dial_timeout: Duration,
    /// How long a publish waits for NATS to confirm it before failing.
    pub write_timeout: Duration,
    /// This node's name (for `P.node.<name>` and the NATS connection name).
    pub node_name: String,
    /// TLS to NATS when `enabled` (checked by [`NatsConfig::from_map`]).
    pub tls: TlsOptions,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            urls: vec![DEFAULT_URL.to_string()],
            prefix: DEFAULT_PREFIX.to_string(),
            dial_timeout: DEFAULT_TIMEOUT,
            write_timeout: DEFAULT_TIMEOUT,
            node_name: String::new(),
            tls: TlsOptions::default(),
        }
    }
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Bad {
        key: key.to_string(),
        message: message.into(),
    }
}

fn text(key: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(bad(key, "expected a string")),
    }
}

fn flag(key: &str, v: &Value) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "0" => Ok(false),
            "true" | "1" => Ok(true),
            _ => Err(bad(key, format!("expected a boolean, got {s:?}"))),
        },
        _ => Err(bad(key, "expected a boolean")),
    }
}

/// Seconds as a number, or a duration string (`1s`, `500ms`, `1m30s`, `2` = seconds).
pub fn duration(key: &str, v: &Value) -> Result<Duration, ConfigError> {
    let err = || {
        bad(
            key,
            format!("expected seconds or a duration like \"1s\", got {v}"),
        )
    };
    match v {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(err),
        Value::String(s) => parse_duration(s.trim()).ok_or_else(err),
        _ => Err(err()),
    }
}

fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return Some(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += Duration::from_secs_f64(n * scale);
    }
    Some(total)
}

impl NatsConfig {
    /// Reads the `nats_*` keys of `keys` (other keys are ignored).
    pub fn from_map(keys: &Map<String, Value>) -> Result<Self, ConfigError> {
        let mut c = NatsConfig::default();
        for (key, v) in keys {
            let Some(name) = key.strip_prefix("nats_") else {
                continue;
            };
            match name {
                "url" => {
                    let urls: Vec<String> = text(key, v)?
                        .split(',')
                        .map(|u| u.trim().to_string())
                        .filter(|u| !u.is_empty())
                        .collect();
                    if !urls.is_empty() {
                        c.urls = urls;
                    }
                }
                "prefix" => {
                    let p = text(key, v)?;
                    if !p.is_empty() {
                        check_prefix(&p).map_err(|m| bad(key, m))?;
                        c.prefix = p;
                    }
                }
                "dial_timeout" => c.dial_timeout = or_default(duration(key, v)?),
                "write_timeout" => c.write_timeout = or_default(duration(key, v)?),
                "allow_wildcards" if flag(key, v)? => {
                    return Err(unsupported(key, "subscribing to wildcard channels"));
                }
                "raw_mode_enabled" if flag(key, v)? => {
                    return Err(unsupported(key, "raw mode"));
                }
                "tls" => match v {
                    // A flat config may give the TLS object as one value.
                    Value::Object(fields) => {
                        for (field, v) in fields {
                            let key = format!("nats_tls_{}", field.to_ascii_lowercase());
                            tls_field(&mut c.tls, &key, v)?;
                        }
                    }
                    _ => c.tls.enabled = flag(key, v)?,
                },
                _ if name.starts_with("tls_") => tls_field(&mut c.tls, key, v)?,
                // Off, or details of a mode that is off (raw_mode_prefix, ...).
                _ if name.starts_with("raw_mode_") || name == "allow_wildcards" => {}
                _ => return Err(bad(key, "unknown NATS broker option")),
            }
        }
        if c.tls.enabled {
            c.tls_config()?;
        }
        Ok(c)
    }

    /// The rustls configuration of [`tls`](Self::tls) (whether or not it is enabled).
    ///
    /// # Errors
    /// A PEM value that cannot be read or used, half a client certificate, an invalid
    /// `server_name`, no system roots without `server_ca_pem`: named by their key.
    pub fn tls_config(&self) -> Result<rotor_netclient::rustls::ClientConfig, ConfigError> {
        client_config_named(&self.tls).map_err(tls_error)
    }

    pub fn with_node_name(mut self, name: &str) -> Self {
        self.node_name = name.to_string();
        self
    }
}

/// One field of the TLS object, under its flat key `nats_tls_<field>`.
fn tls_field(tls: &mut TlsOptions, key: &str, v: &Value) -> Result<(), ConfigError> {
    let field = key.strip_prefix("nats_tls_").unwrap_or(key);
    match field {
        "enabled" => tls.enabled = flag(key, v)?,
        "insecure_skip_verify" => tls.insecure_skip_verify = flag(key, v)?,
        "cert_pem" => tls.cert_pem = text(key, v)?,
        "key_pem" => tls.key_pem = text(key, v)?,
        "server_ca_pem" => tls.server_ca_pem = text(key, v)?,
        "server_name" => tls.server_name = text(key, v)?,
        // Verifies the clients of a TLS server; a NATS client has none.
        "client_ca_pem" => {
            text(key, v)?;
        }
        _ => return Err(bad(key, "unknown NATS TLS option")),
    }
    Ok(())
}

/// A TLS field's flat and v6 names: `nats_tls_cert_pem (broker.nats.tls.cert_pem)`.
fn tls_key(field: &str) -> String {
    format!("nats_tls_{field} (broker.nats.tls.{field})")
}

fn tls_error(e: TlsError) -> ConfigError {
    let (field, message) = match &e {
        TlsError::Read {
            field,
            path,
            reason,
        } => (*field, format!("cannot read {path:?}: {reason}")),
        TlsError::Pem { field, reason } => (*field, reason.clone()),
        TlsError::NoCertificate { field } => (*field, "no certificate found".to_owned()),
        TlsError::HalfClientCert => (
            "cert_pem",
            format!(
                "a client certificate needs both {} and {}",
                tls_key("cert_pem"),
                tls_key("key_pem")
            ),
        ),
        TlsError::ClientCert(reason) => ("key_pem", format!("client certificate: {reason}")),
        TlsError::NoSystemRoots(reason) => (
            "server_ca_pem",
            format!("empty, and no system CA certificates could be loaded: {reason}"),
        ),
        TlsError::ServerName { name, reason } => ("server_name", format!("{name:?}: {reason}")),
        TlsError::Versions(_) => ("enabled", e.to_string()),
    };
    ConfigError::Bad {
        key: tls_key(field),
        message,
    }
}

fn or_default(d: Duration) -> Duration {
    if d.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        d
    }
}

fn unsupported(key: &str, what: &str) -> ConfigError {
    ConfigError::Unsupported {
        key: key.to_string(),
        what: what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_are_centrifugos() {
        let c = NatsConfig::from_map(&Map::new()).unwrap();
        assert_eq!(c.urls, vec!["nats://127.0.0.1:4222"]);
        assert_eq!(c.prefix, "centrifugo");
        assert_eq!(
            (c.dial_timeout, c.write_timeout),
            (DEFAULT_TIMEOUT, DEFAULT_TIMEOUT)
        );
        // An empty url (2.x default "") means the default too.
        let c = NatsConfig::from_map(&map(json!({"nats_url": ""}))).unwrap();
        assert_eq!(c.urls, vec![DEFAULT_URL]);
    }

    #[test]
    fn both_generations_values() {
        let c = NatsConfig::from_map(&map(json!({
            "nats_url": "nats://a:1, nats://b:2", "nats_prefix": "app",
            "nats_dial_timeout": 3, "nats_write_timeout": "250ms",
            "nats_allow_wildcards": false, "nats_raw_mode_enabled": "false",
            "nats_raw_mode_prefix": "x", "nats_tls_enabled": false,
        })))
        .unwrap();
        assert_eq!(c.urls, vec!["nats://a:1", "nats://b:2"]);
        assert_eq!(c.prefix, "app");
        assert_eq!(c.dial_timeout, Duration::from_secs(3));
        assert_eq!(c.write_timeout, Duration::from_millis(250));
        let c = NatsConfig::from_map(&map(json!({"nats_write_timeout": "1m30s"}))).unwrap();
        assert_eq!(c.write_timeout, Duration::from_secs(90));
        let c = NatsConfig::from_map(&map(json!({"nats_dial_timeout": "2"}))).unwrap();
        assert_eq!(c.dial_timeout, Duration::from_secs(2));
    }

    #[test]
    fn refuses_what_is_not_built() {
        for (k, v) in [
            ("nats_allow_wildcards", json!(true)),
            ("nats_raw_mode_enabled", json!("true")),
        ] {
            let mut m = Map::new();
            m.insert(k.into(), v);
            let err = NatsConfig::from_map(&m).unwrap_err();
            assert!(matches!(err, ConfigError::Unsupported { .. }), "{k}: {err}");
            assert!(err.to_string().contains(k), "{err}");
        }
        for (k, v) in [
            ("nats_prefix", json!("a.")),
            ("nats_prefix", json!("a b")),
            ("nats_write_timeout", json!("soon")),
            ("nats_dial_timeout", json!(-1)),
            ("nats_urll", json!("x")),
        ] {
            let mut m = Map::new();
            m.insert(k.into(), v);
            assert!(
                matches!(NatsConfig::from_map(&m), Err(ConfigError::Bad { .. })),
                "{k}"
            );
        }
    }

    fn ca_pem() -> String {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("ca")
            .pem()
    }

    #[test]
    fn tls_keys_flat_and_as_one_object() {
        let ca = ca_pem();
        let c = NatsConfig::from_map(&map(json!({
            "nats_url": "tls://nats.internal:4222",
            "nats_tls_enabled": "true", "nats_tls_server_ca_pem": ca,
            "nats_tls_server_name": "nats.internal", "nats_tls_client_ca_pem": "ignored",
            "nats_tls_insecure_skip_verify": false,
        })))
        .unwrap();
        assert!(c.tls.enabled);
        assert_eq!(
            (c.tls.server_ca_pem.as_str(), c.tls.server_name.as_str()),
            (ca.as_str(), "nats.internal")
        );
        let o = NatsConfig::from_map(&map(json!({
            "nats_url": "tls://nats.internal:4222",
            "nats_tls": {"enabled": true, "server_ca_pem": ca, "server_name": "nats.internal",
                         "client_ca_pem": "ignored"},
        })))
        .unwrap();
        assert_eq!(o, c);
        // Off: the details are kept but not read.
        let c = NatsConfig::from_map(&map(json!({
            "nats_tls_enabled": false, "nats_tls_cert_pem": "/no/such/file",
        })))
        .unwrap();
        assert!(!c.tls.enabled);
    }

    #[test]
    fn bad_tls_values_name_their_key() {
        let ca = ca_pem();
        for (extra, key) in [
            (
                json!({"nats_tls_server_ca_pem": "/no/such/ca.pem"}),
                "nats_tls_server_ca_pem",
            ),
            (
                json!({"nats_tls_server_ca_pem": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"}),
                "nats_tls_server_ca_pem",
            ),
            (
                json!({"nats_tls_server_ca_pem": ca, "nats_tls_cert_pem": ca}),
                "nats_tls_cert_pem",
            ),
            (
                json!({"nats_tls_server_ca_pem": ca, "nats_tls_cert_pem": ca, "nats_tls_key_pem": "/no/key.pem"}),
                "nats_tls_key_pem",
            ),
            (
                json!({"nats_tls_server_ca_pem": ca, "nats_tls_server_name": "not a name"}),
                "nats_tls_server_name",
            ),
            (json!({"nats_tls_enabled": "maybe"}), "nats_tls_enabled"),
            (json!({"nats_tls_ca": "x"}), "nats_tls_ca"),
            (
                json!({"nats_tls": {"server_ca_pem": 5}}),
                "nats_tls_server_ca_pem",
            ),
        ] {
            let mut m = map(extra.clone());
            m.entry("nats_tls_enabled").or_insert(json!(true));
            let err = NatsConfig::from_map(&m).unwrap_err();
            assert!(matches!(err, ConfigError::Bad { .. }), "{extra}: {err}");
            assert!(err.to_string().starts_with(key), "{extra}: {err}");
        }
        let m = map(
            json!({"nats_tls_enabled": true, "nats_tls_key_pem": "/no/key.pem",
                            "nats_tls_server_ca_pem": ca}),
        );
        let err = NatsConfig::from_map(&m).unwrap_err().to_string();
        assert!(
            err.contains("broker.nats.tls.cert_pem") && err.contains("key_pem"),
            "{err}"
        );
    }
}
