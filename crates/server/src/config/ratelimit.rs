//! `client.rate_limit` (Centrifugo PRO's key shape, so a PRO configuration works unchanged):
//!
//! ```json
//! {"client": {"rate_limit": {
//!   "client_command": {"enabled": true, "dry_run": false,
//!     "default": {"enabled": true, "buckets": [{"interval": "1s", "rate": 100}]},
//!     "total": {"enabled": true, "buckets": [{"interval": "1s", "rate": 200}]},
//!     "publish": {"enabled": true, "buckets": [{"interval": "1s", "rate": 5}],
//!       "namespace_overrides": [{"namespace_name": "chat", "enabled": true,
//!                                "buckets": [{"interval": "1s", "rate": 20}]}]},
//!     "rpc": {"enabled": true, "buckets": [...],
//!       "method_overrides": [{"method": "status", "enabled": true, "buckets": [...]}]}},
//!   "user_command": {...same, plus "connect"},
//!   "redis_user_command": {...same, no "total", no "unsubscribe"},
//!   "client_error": {"enabled": true, "total": {"enabled": true, "buckets": [...]}}}}}
//! ```
//!
//! Commands: connect (per-user layers only), subscribe, unsubscribe, publish, history,
//! presence, presence_stats, refresh, sub_refresh, rpc. The whole object is one value: from the
//! environment `CENTRIFUGO_CLIENT_RATE_LIMIT` holds it as JSON text. `client_error` also
//! takes `buckets` directly instead of `total`. Checked at start as PRO does: every bucket's
//! interval between 1s and 1h and a rate above 0 (disabled entries too), a `namespace_name` /
//! `method` in every override, `method_override` (the pre-6.8 map) not together with
//! `method_overrides`, no `unsubscribe` in `redis_user_command`. PRO-only entries Rotor does
//! not implement (`map_publish`, `map_remove`, `track`, `untrack`, `ip_connect`,
//! `disconnect_on_accounted_limit`) are ignored with a warning.

use std::time::Duration;

use rotor_core::ratelimit::config::Buckets;
use rotor_core::ratelimit::{
    Bucket, Command, CommandRule, ErrorBudget, LayerConfig, RateLimitConfig,
};
use serde_json::{Map, Value};

use super::values::{expected, parse_duration, Input};

/// What `client.rate_limit` gave: the limits, and warnings for the binary to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub config: RateLimitConfig,
    pub warnings: Vec<String>,
}

/// PRO entries Rotor does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "map_publish",
    "map_remove",
    "track",
    "untrack",
    "disconnect_on_accounted_limit",
];

const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Parses the `client.rate_limit` value.
pub(crate) fn parse(i: &Input) -> Result<RateLimitSettings, String> {
    let parsed;
    let v = match i {
        Input::Json(v) => v,
        Input::Env(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| format!("expected a JSON object: {e}"))?;
            &parsed
        }
    };
    let mut out = RateLimitSettings::default();
    if v.is_null() {
        return Ok(out);
    }
    let obj = object(v, "client.rate_limit")?;
    for (k, v) in obj {
        let at = format!("client.rate_limit.{k}");
        match k.as_str() {
            "client_command" => {
                out.config.client_command = layer(v, &at, k, &mut out.warnings)?;
            }
            "user_command" => out.config.user_command = layer(v, &at, k, &mut out.warnings)?,
            "redis_user_command" => {
                out.config.redis_user_command = layer(v, &at, k, &mut out.warnings)?;
            }
            "client_error" => out.config.client_error = error_layer(v, &at)?,
            "ip_connect" => {
                if enabled(object(v, &at)?, &at)? {
                    out.warnings
                        .push(format!("config key {at:?} is not supported yet; ignored"));
                }
            }
            _ => out.warnings.push(format!("unknown config key {at:?}")),
        }
    }
    Ok(out)
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at}: {}", expected("an object", v)))
}

fn enabled(obj: &Map<String, Value>, at: &str) -> Result<bool, String> {
    flag(obj, "enabled", at)
}

fn flag(obj: &Map<String, Value>, key: &str, at: &str) -> Result<bool, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{at}.{key}: {}", expected("a boolean", other))),
    }
}

/// `buckets`: `None` when absent.
fn buckets(obj: &Map<String, Value>, at: &str) -> Result<Buckets, String> {
    let v = match obj.get("buckets") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let at = format!("{at}.buckets");
    let list = v
        .as_array()
        .ok_or_else(|| format!("{at}: {}", expected("an array", v)))?;
    let mut out = Vec::with_capacity(list.len());
    for (n, item) in list.iter().enumerate() {
        let at = format!("{at}[{n}]");
        let b = object(item, &at)?;
        let interval = match b.get("interval") {
            Some(Value::String(s)) => {
                parse_duration(s).map_err(|e| format!("{at}.interval: {e}"))?
            }
            None | Some(Value::Null) => return Err(format!("{at}.interval: must be set")),
            Some(other) => {
                let what = "a duration string like \"1s\"";
                return Err(format!("{at}.interval: {}", expected(what, other)));
            }
        };
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(format!(
                "{at}.interval: {interval:?} is out of range (between 1s and 1h)"
            ));
        }
        let rate = match b.get("rate") {
            Some(Value::Number(n)) => n.as_u64().filter(|r| *r > 0 && *r <= u64::from(u32::MAX)),
            _ => None,
        };
        let Some(rate) = rate else {
            return Err(format!(
                "{at}.rate: must be a whole number above 0 (got {})",
                b.get("rate")
                    .map_or("nothing".to_string(), Value::to_string)
            ));
        };
        out.push(Bucket {
            interval,
            rate: rate as u32,
        });
    }
    Ok(Some(out))
}

/// One entry (`default`, `total`, a command): `None` when disabled (buckets still checked).
fn entry(v: &Value, at: &str) -> Result<Option<Buckets>, String> {
    let obj = object(v, at)?;
    let b = buckets(obj, at)?;
    Ok(enabled(obj, at)?.then_some(b))
}

/// A named override list (`namespace_overrides`: `namespace_name`; `method_overrides`:
/// `method`): the enabled ones.
fn overrides(
    obj: &Map<String, Value>,
    key: &str,
    name_key: &str,
    at: &str,
) -> Result<Vec<(String, Buckets)>, String> {
    let v = match obj.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(v) => v,
    };
    let at = format!("{at}.{key}");
    let list = v
        .as_array()
        .ok_or_else(|| format!("{at}: {}", expected("an array", v)))?;
    let mut out = Vec::new();
    for (n, item) in list.iter().enumerate() {
        let at = format!("{at}[{n}]");
        let o = object(item, &at)?;
        let name = match o.get(name_key) {
            Some(Value::String(s)) if !s.is_empty() || name_key == "namespace_name" => s.clone(),
            _ => return Err(format!("{at}.{name_key}: must be set")),
        };
        let b = buckets(o, &at)?;
        if enabled(o, &at)? {
            out.push((name, b));
        }
    }
    Ok(out)
}

fn layer(
    v: &Value,
    at: &str,
    kind: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<LayerConfig>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let obj = object(v, at)?;
    let redis = kind == "redis_user_command";
    let mut l = LayerConfig {
        dry_run: flag(obj, "dry_run", at)?,
        ..Default::default()
    };
    for (k, v) in obj {
        let at = format!("{at}.{k}");
        match k.as_str() {
            "enabled" | "dry_run" => {}
            "default" => l.default = entry(v, &at)?.map(Option::unwrap_or_default),
            "total" if !redis => l.total = entry(v, &at)?.map(Option::unwrap_or_default),
            // The Redis layer always uses the engine's Redis (PRO's `reuse_from_engine`).
            "redis" if redis => {
                let reuse = object(v, &at)?.get("reuse_from_engine");
                if reuse != Some(&Value::Bool(true)) {
                    warnings.push(format!(
                        "{at}: Rotor keeps redis_user_command buckets in the engine's Redis; \
                         the separate Redis settings are ignored"
                    ));
                }
            }
            name if NOT_IMPLEMENTED.contains(&name) => {
                warnings.push(format!("config key {at:?} is not supported yet; ignored"));
            }
            name => {
                let Some(cmd) = Command::from_name(name) else {
                    warnings.push(format!("unknown config key {at:?}"));
                    continue;
                };
                if cmd == Command::Connect && kind == "client_command" {
                    warnings.push(format!(
                        "{at}: connect is limited per user only (user_command, \
                         redis_user_command); ignored here"
                    ));
                    continue;
                }
                if redis && cmd == Command::Unsubscribe {
                    return Err(format!(
                        "{at}: unsubscribe is never refused, so the Redis layer does not limit it"
                    ));
                }
                let o = object(v, &at)?;
                let buckets = buckets(o, &at)?;
                let namespace_overrides = if cmd.is_channel() {
                    overrides(o, "namespace_overrides", "namespace_name", &at)?
                } else {
                    Vec::new()
                };
                let mut method_overrides = Vec::new();
                if cmd == Command::Rpc {
                    method_overrides = overrides(o, "method_overrides", "method", &at)?;
                    if let Some(old) = o.get("method_override").filter(|v| !v.is_null()) {
                        if o.contains_key("method_overrides") {
                            return Err(format!(
                                "{at}: method_override and method_overrides cannot both be set"
                            ));
                        }
                        let map = object(old, &format!("{at}.method_override"))?;
                        for (m, v) in map {
                            let at = format!("{at}.method_override.{m}");
                            if let Some(b) = entry(v, &at)? {
                                method_overrides.push((m.clone(), b));
                            }
                        }
                    }
                }
                if enabled(o, &at)? {
                    l.commands.push((
                        cmd,
                        CommandRule {
                            buckets,
                            namespace_overrides,
                            method_overrides,
                        },
                    ));
                }
            }
        }
    }
    Ok(enabled(obj, at)?.then_some(l))
}

fn error_layer(v: &Value, at: &str) -> Result<Option<ErrorBudget>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let obj = object(v, at)?;
    let own = buckets(obj, at)?;
    let total = match obj.get("total") {
        Some(t) if !t.is_null() => entry(t, &format!("{at}.total"))?,
        _ => None,
    };
    if own.is_some() && total.is_some() {
        return Err(format!("{at}: set buckets or total.buckets, not both"));
    }
    let Some(buckets) = total.flatten().or(own) else {
        return Ok(None);
    };
    let budget = ErrorBudget {
        dry_run: flag(obj, "dry_run", at)?,
        buckets,
    };
    Ok((enabled(obj, at)? && !budget.buckets.is_empty()).then_some(budget))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<RateLimitSettings, String> {
        parse(&Input::Json(v))
    }

    fn secs(s: u64, rate: u32) -> Bucket {
        Bucket {
            interval: Duration::from_secs(s),
            rate,
        }
    }

    #[test]
    fn pro_example_parses() {
        let s = p(json!({
            "client_command": {"enabled": true,
                "total": {"enabled": true, "buckets": [{"interval": "1s", "rate": 20}]},
                "default": {"enabled": true, "buckets": [{"interval": "1s", "rate": 60}]},
                "publish": {"enabled": true, "buckets": [{"interval": "1s", "rate": 1}],
                    "namespace_overrides": [
                        {"namespace_name": "chat", "enabled": true,
                         "buckets": [{"interval": "1s", "rate": 20}]},
                        {"namespace_name": "off", "enabled": false}]},
                "rpc": {"enabled": true, "buckets": [{"interval": "1s", "rate": 10}],
                    "method_overrides": [{"method": "update_user_status", "enabled": true,
                        "buckets": [{"interval": "20s", "rate": 1}]}]},
                "history": {"enabled": false, "buckets": [{"interval": "1s", "rate": 1}]},
                "track": {"enabled": true}},
            "user_command": {"enabled": true, "dry_run": true,
                "connect": {"enabled": true, "buckets": [{"interval": "1m", "rate": 3}]}},
            "client_error": {"enabled": true,
                "total": {"enabled": true, "buckets": [{"interval": "5s", "rate": 20}]}}
        }))
        .unwrap();
        let c = s.config.client_command.unwrap();
        assert_eq!(c.total, Some(vec![secs(1, 20)]));
        assert_eq!(c.default, Some(vec![secs(1, 60)]));
        assert_eq!(c.commands.len(), 2, "history is disabled");
        let (cmd, publish) = &c.commands[0];
        assert_eq!(*cmd, Command::Publish);
        assert_eq!(
            publish.namespace_overrides,
            vec![("chat".to_string(), Some(vec![secs(1, 20)]))]
        );
        let rpc = &c.commands[1].1;
        assert_eq!(
            rpc.method_overrides,
            vec![("update_user_status".to_string(), Some(vec![secs(20, 1)]))]
        );
        let u = s.config.user_command.unwrap();
        assert!(u.dry_run);
        assert_eq!(u.commands[0].0, Command::Connect);
        assert_eq!(u.commands[0].1.buckets, Some(vec![secs(60, 3)]));
        assert_eq!(s.config.client_error.unwrap().buckets, vec![secs(5, 20)]);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("track"));
    }

    #[test]
    fn disabled_layers_are_off_but_still_checked() {
        let s = p(json!({"client_command": {"enabled": false,
            "publish": {"enabled": true, "buckets": [{"interval": "1s", "rate": 1}]}}}))
        .unwrap();
        assert!(s.config.is_off());
        let e = p(json!({"client_command": {"enabled": false,
            "publish": {"enabled": false, "buckets": [{"interval": "0s", "rate": 1}]}}}))
        .unwrap_err();
        assert!(
            e.contains("client.rate_limit.client_command.publish.buckets[0].interval"),
            "{e}"
        );
    }

    #[test]
    fn bad_buckets_are_clear_errors() {
        let bad = |b: Value| {
            p(json!({"user_command": {"enabled": true,
                "default": {"enabled": true, "buckets": [b]}}}))
            .unwrap_err()
        };
        assert!(bad(json!({"interval": "500ms", "rate": 1})).contains("between 1s and 1h"));
        assert!(bad(json!({"interval": "2h", "rate": 1})).contains("between 1s and 1h"));
        assert!(bad(json!({"interval": "abc", "rate": 1})).contains("invalid duration"));
        assert!(bad(json!({"interval": 1, "rate": 1})).contains("duration string"));
        assert!(bad(json!({"interval": "1s", "rate": 0})).contains("rate: must be"));
        assert!(bad(json!({"interval": "1s", "rate": -3})).contains("rate: must be"));
        assert!(bad(json!({"interval": "1s"})).contains("rate: must be"));
        assert!(bad(json!({"rate": 1})).contains("interval: must be set"));
    }

    #[test]
    fn redis_layer_rules() {
        let e = p(json!({"redis_user_command": {"enabled": true,
            "unsubscribe": {"enabled": true, "buckets": [{"interval": "1s", "rate": 1}]}}}))
        .unwrap_err();
        assert!(e.contains("unsubscribe"), "{e}");
        let s = p(json!({"redis_user_command": {"enabled": true,
            "redis": {"reuse_from_engine": true},
            "total": {"enabled": true, "buckets": [{"interval": "1s", "rate": 1}]}}}))
        .unwrap();
        assert_eq!(s.warnings.len(), 1, "total is unknown in the Redis layer");
        assert!(s.config.redis_user_command.is_some());
    }

    #[test]
    fn old_method_override_map_and_env_json() {
        let s = parse(&Input::Env(
            r#"{"client_command": {"enabled": true, "rpc": {"enabled": true,
                "method_override": {"m": {"enabled": true,
                  "buckets": [{"interval": "1s", "rate": 2}]}}}}}"#
                .into(),
        ))
        .unwrap();
        let rpc = &s.config.client_command.unwrap().commands[0].1;
        assert_eq!(
            rpc.method_overrides,
            vec![("m".to_string(), Some(vec![secs(1, 2)]))]
        );
        let e = p(
            json!({"client_command": {"enabled": true, "rpc": {"enabled": true,
            "method_override": {}, "method_overrides": []}}}),
        )
        .unwrap_err();
        assert!(e.contains("cannot both"), "{e}");
        assert!(parse(&Input::Env("nope".into())).is_err());
    }

    #[test]
    fn client_error_takes_buckets_directly_too() {
        let s = p(json!({"client_error": {"enabled": true, "dry_run": true,
            "buckets": [{"interval": "10s", "rate": 5}]}}))
        .unwrap();
        let e = s.config.client_error.unwrap();
        assert!(e.dry_run);
        assert_eq!(e.buckets, vec![secs(10, 5)]);
    }
}
