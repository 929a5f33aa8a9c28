//! Typed readers for raw configuration values: JSON values from a file (JSON, YAML and TOML
//! all arrive as JSON values) or strings from the environment, typed by the key that reads them.

use std::time::Duration;

use serde_json::Value;

/// A raw value: JSON from the file, or a string from the environment (typed by its key).
#[derive(Debug, Clone)]
pub(crate) enum Input {
    Json(Value),
    Env(String),
}

impl Input {
    /// The value as JSON (an environment string stays a string).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Input::Json(v) => v.clone(),
            Input::Env(s) => Value::String(s.clone()),
        }
    }

    /// Unset-like: empty, zero, false, null. Such values of keys Rotor ignores stay silent.
    pub(crate) fn is_zero(&self) -> bool {
        match self {
            Input::Env(s) | Input::Json(Value::String(s)) => s.is_empty(),
            Input::Json(Value::Null) => true,
            Input::Json(Value::Bool(b)) => !b,
            Input::Json(Value::Number(n)) => n.as_f64() == Some(0.0),
            Input::Json(Value::Array(a)) => a.is_empty(),
            Input::Json(Value::Object(o)) => o.is_empty(),
        }
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
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

pub(crate) fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, got {}", type_name(v))
}

/// A boolean; from the environment the spellings Go's `strconv.ParseBool` accepts.
pub(crate) fn boolean(i: &Input) -> Result<bool, String> {
    match i {
        Input::Json(Value::Bool(b)) => Ok(*b),
        Input::Json(v) => Err(expected("a boolean", v)),
        Input::Env(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Ok(true),
            "false" | "0" | "f" => Ok(false),
            _ => Err(format!("expected a boolean (true/false/1/0), got {s:?}")),
        },
    }
}

pub(crate) fn uint(i: &Input) -> Result<u64, String> {
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

pub(crate) fn size(i: &Input) -> Result<usize, String> {
    uint(i).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A port: an integer, or a string of digits (Centrifugo reads `port` as a string).
pub(crate) fn port(i: &Input) -> Result<u16, String> {
    let n = match i {
        Input::Json(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("expected a port number, got {s:?}"))?,
        other => uint(other)?,
    };
    u16::try_from(n).map_err(|_| format!("port {n} is out of range"))
}

pub(crate) fn string(i: &Input) -> Result<String, String> {
    match i {
        Input::Json(Value::String(s)) | Input::Env(s) => Ok(s.clone()),
        Input::Json(v) => Err(expected("a string", v)),
    }
}

pub(crate) fn non_empty(i: &Input) -> Result<String, String> {
    Some(string(i)?)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "must not be empty".into())
}

/// An array of strings; from the environment a JSON array or items separated by commas or
/// spaces (Centrifugo 6 separates list items in env values by spaces).
pub(crate) fn list(i: &Input) -> Result<Vec<String>, String> {
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
pub(crate) fn duration(i: &Input) -> Result<Duration, String> {
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

/// A duration in whole seconds, rounded up (`history_ttl: "500ms"` keeps history 1 s).
pub(crate) fn whole_seconds(i: &Input) -> Result<u64, String> {
    let d = duration(i)?;
    Ok(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// A duration where 0 would make a timer spin.
pub(crate) fn positive(i: &Input) -> Result<Duration, String> {
    Some(duration(i)?)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "must be greater than 0".into())
}

/// Centrifugo uses the default when some websocket settings are 0.
pub(crate) fn or_default<T: Default + PartialEq>(v: T, default: T) -> T {
    if v == T::default() {
        default
    } else {
        v
    }
}

/// Parses a Go duration string (`"25s"`, `"1m30s"`, `"500ms"`, `"1.5h"`, `"0"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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

/// Formats a duration the way Go prints one (`"25s"`, `"1m30s"`, `"500ms"`, `"0s"`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos as f64 / 1e6));
    }
    let total = d.as_secs();
    let (h, m) = (total / 3600, (total / 60) % 60);
    let s = (total % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_fraction(s)));
    out
}

fn trim_fraction(f: f64) -> String {
    let s = format!("{f:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_like_go() {
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
        assert_eq!(whole_seconds(&Input::Json(json!("1500ms"))), Ok(2));
        assert_eq!(whole_seconds(&Input::Json(json!(300))), Ok(300));
    }

    #[test]
    fn durations_print_like_go() {
        let f = |ms| format_duration(Duration::from_millis(ms));
        assert_eq!(f(0), "0s");
        assert_eq!(f(25_000), "25s");
        assert_eq!(f(90_000), "1m30s");
        assert_eq!(f(500), "500ms");
        assert_eq!(f(1_500), "1.5s");
        assert_eq!(f(3_600_000), "1h0m0s");
        assert_eq!(format_duration(Duration::from_micros(10)), "10µs");
    }

    #[test]
    fn ports_and_booleans() {
        assert_eq!(port(&Input::Json(json!("8000"))), Ok(8000));
        assert_eq!(port(&Input::Json(json!(8001))), Ok(8001));
        assert!(port(&Input::Json(json!("http"))).is_err());
        assert!(port(&Input::Json(json!(true))).is_err());
        assert_eq!(boolean(&Input::Env("T".into())), Ok(true));
        assert_eq!(boolean(&Input::Env("0".into())), Ok(false));
        assert!(boolean(&Input::Env("yes".into())).is_err());
    }
}
