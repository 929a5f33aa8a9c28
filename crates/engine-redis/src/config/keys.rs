//! Typed reads of the raw `redis_*` map: JSON values from a file, strings from the
//! environment, both accepted for every key; Go-style durations.

use super::*;

/// Typed reads over the raw map.
pub(super) struct Keys<'a>(pub(super) &'a Map<String, Value>);

impl Keys<'_> {
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(bad(format!("{key}: expected a string, got {other}"))),
        }
    }

    /// A JSON array of strings/numbers, or a comma-separated string; blanks dropped.
    pub(super) fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(bad(format!("{key}: expected strings, got {other}"))),
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                let v: Value = serde_json::from_str(s)
                    .map_err(|e| bad(format!("{key}: not a JSON array: {e}")))?;
                let map = Map::from_iter([(key.to_string(), v)]);
                return Keys(&map).list(key);
            }
            Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
            Some(Value::Number(n)) => vec![n.to_string()],
            Some(other) => return Err(bad(format!("{key}: expected a list, got {other}"))),
        };
        Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// Cluster groups: a JSON array (one element per cluster), or a string with clusters
    /// separated by whitespace (the 2.x environment form); a group is comma-separated seeds.
    pub(super) fn groups(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                let v: Value = serde_json::from_str(s)
                    .map_err(|e| bad(format!("{key}: not a JSON array: {e}")))?;
                let map = Map::from_iter([(key.to_string(), v)]);
                return Keys(&map).groups(key);
            }
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(_)) => self.list_items(key)?,
            Some(other) => return Err(bad(format!("{key}: expected a list, got {other}"))),
        };
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// The elements of a JSON array of strings/numbers.
    pub(super) fn list_items(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(bad(format!("{key}: expected strings, got {other}"))),
                })
                .collect(),
            _ => Ok(Vec::new()),
        }
    }

    pub(super) fn opt_boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" | "" => Ok(Some(false)),
                _ => Err(bad(format!("{key}: expected a boolean, got {s:?}"))),
            },
            Some(other) => Err(bad(format!("{key}: expected a boolean, got {other}"))),
        }
    }

    /// A non-negative integer (number or numeric string), at most 16384.
    pub(super) fn count(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        let err = |v: &dyn std::fmt::Display| {
            bad(format!("{key}: expected a whole number 0..=16384, got {v}"))
        };
        let n = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| err(n))?,
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| err(s))?,
            Some(other) => return Err(err(other)),
        };
        if n > 16384 {
            return Err(err(&n));
        }
        Ok(Some(n as usize))
    }

    pub(super) fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        Ok(self.opt_boolean(key)?.unwrap_or(false))
    }

    /// Seconds (number or numeric string) or a Go duration string (`"500ms"`, `"5s"`, `"1m"`).
    pub(super) fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let err = |v: &dyn std::fmt::Display| bad(format!("{key}: expected a duration, got {v}"));
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| Some(Duration::from_secs_f64(f)))
                .ok_or_else(|| err(n)),
            Some(Value::String(s)) => {
                let t = s.trim();
                if let Ok(f) = t.parse::<f64>() {
                    if f.is_finite() && f >= 0.0 {
                        return Ok(Some(Duration::from_secs_f64(f)));
                    }
                    return Err(err(s));
                }
                go_duration(t).map(Some).ok_or_else(|| err(s))
            }
            Some(other) => Err(err(other)),
        }
    }
}

/// A Go duration string such as `1m30s` or `250ms`.
pub(super) fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        let tail = &rest[num_end..];
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let scale = match &tail[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &tail[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}
