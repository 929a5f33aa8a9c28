//! The fields of one Centrifugo 6 proxy object (`client.proxy.connect`, `channel.proxy.*`,
//! `rpc.proxy`, an entry of `proxies`), by their path inside the object: typed readers for
//! each, and the walk that turns a file's object into those paths.

use rotor_proxy::config::{StatusTransform, TlsSettings};
use rotor_proxy::ProxySettings;
use serde_json::{Map, Value};

use super::super::values::{boolean, duration, expected, list, string, uint, Input};
use super::super::SetError;

/// Every field of a proxy object (Centrifugo 6 `configtypes.Proxy`), relative to the object.
pub(crate) const FIELDS: &[&str] = &[
    "endpoint",
    "timeout",
    "http_headers",
    "emulated_headers",
    "grpc_metadata",
    "binary_encoding",
    "include_connection_meta",
    "http.static_headers",
    "http.status_to_code_transforms",
    "http.tls.enabled",
    "http.tls.cert_pem",
    "http.tls.key_pem",
    "http.tls.server_ca_pem",
    "http.tls.client_ca_pem",
    "http.tls.insecure_skip_verify",
    "http.tls.server_name",
    "grpc.tls.enabled",
    "grpc.tls.cert_pem",
    "grpc.tls.key_pem",
    "grpc.tls.server_ca_pem",
    "grpc.tls.client_ca_pem",
    "grpc.tls.insecure_skip_verify",
    "grpc.tls.server_name",
    "grpc.credentials_key",
    "grpc.credentials_value",
    "grpc.compression",
    "grpc.static_metadata",
];

/// Fields whose value is a map of names to values: one leaf, not walked into.
const MAP_FIELDS: &[&str] = &["http.static_headers", "grpc.static_metadata"];

/// Whether `path` (inside a proxy object or as a whole nested path) ends in a map field.
pub(crate) fn ends_in_map_field(path: &str) -> bool {
    MAP_FIELDS
        .iter()
        .any(|f| path == *f || path.ends_with(&format!(".{f}")))
}

/// The leaves of a proxy object from a file: `(field path, value)`, names lower-cased.
pub(crate) fn leaves(obj: &Map<String, Value>) -> Vec<(String, Value)> {
    fn walk(path: String, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) if !ends_in_map_field(&path) => {
                for (k, v) in m {
                    let k = k.to_ascii_lowercase();
                    let p = if path.is_empty() {
                        k
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(p, v, out);
                }
            }
            leaf => out.push((path, leaf.clone())),
        }
    }
    let mut out = Vec::new();
    walk(String::new(), &Value::Object(obj.clone()), &mut out);
    out
}

/// Applies one field (a path from [`FIELDS`]) to `s`.
pub(crate) fn set_field(s: &mut ProxySettings, field: &str, i: &Input) -> Result<(), SetError> {
    match field {
        "endpoint" => s.endpoint = string(i)?.trim().to_string(),
        "timeout" => s.timeout = duration(i)?,
        "http_headers" => s.http_headers = header_names(i)?,
        "emulated_headers" => s.emulated_headers = header_names(i)?,
        "grpc_metadata" => s.grpc_metadata = header_names(i)?,
        "binary_encoding" => s.binary_encoding = boolean(i)?,
        "include_connection_meta" => s.include_connection_meta = boolean(i)?,
        "http.static_headers" => s.static_headers = string_map(i)?,
        "http.status_to_code_transforms" => s.status_transforms = transforms(i)?,
        "grpc.credentials_key" => s.grpc_credentials_key = string(i)?,
        "grpc.credentials_value" => s.grpc_credentials_value = string(i)?,
        "grpc.compression" => s.grpc_compression = boolean(i)?,
        "grpc.static_metadata" => s.grpc_static_metadata = string_map(i)?,
        other => {
            if let Some(f) = other.strip_prefix("http.tls.") {
                return tls_field(&mut s.http_tls, f, i);
            }
            if let Some(f) = other.strip_prefix("grpc.tls.") {
                return tls_field(&mut s.grpc_tls, f, i);
            }
            return Err(SetError::Unknown);
        }
    }
    Ok(())
}

fn tls_field(t: &mut TlsSettings, field: &str, i: &Input) -> Result<(), SetError> {
    match field {
        "enabled" => t.enabled = boolean(i)?,
        "cert_pem" => t.cert_pem = string(i)?,
        "key_pem" => t.key_pem = string(i)?,
        "server_ca_pem" => t.server_ca_pem = string(i)?,
        // Verifies clients of a TLS server: nothing to do for an outgoing connection (Centrifugo
        // accepts it there too, with no effect).
        "client_ca_pem" => drop(string(i)?),
        "insecure_skip_verify" => t.insecure_skip_verify = boolean(i)?,
        "server_name" => t.server_name = string(i)?,
        _ => return Err(SetError::Unknown),
    }
    Ok(())
}

/// An allow-list of header (or metadata) names, lower-cased: matched case-insensitively.
pub(crate) fn header_names(i: &Input) -> Result<Vec<String>, String> {
    Ok(list(i)?
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect())
}

/// A value that may come from the environment as JSON text.
fn json_of(i: &Input, what: &str) -> Result<Value, String> {
    match i {
        Input::Json(v) => Ok(v.clone()),
        Input::Env(s) if s.trim().is_empty() => Ok(Value::Null),
        Input::Env(s) => {
            serde_json::from_str(s).map_err(|e| format!("expected {what} as JSON: {e}"))
        }
    }
}

/// A map of names to string values: an object (`{"x-key": "v"}`), or a list of
/// `{"key": ..., "value": ...}` objects, as Centrifugo 6 accepts; from the environment JSON.
/// Sorted by name.
fn string_map(i: &Input) -> Result<Vec<(String, String)>, String> {
    let v = json_of(i, "an object")?;
    let mut out = std::collections::BTreeMap::new();
    match &v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                let Some(s) = v.as_str() else {
                    return Err(format!("{k:?}: {}", expected("a string", v)));
                };
                out.insert(k.clone(), s.to_string());
            }
        }
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                let key = item.get("key").and_then(Value::as_str);
                let value = item.get("value").and_then(Value::as_str);
                let (Some(k), Some(v)) = (key, value) else {
                    return Err(format!(
                        "item {idx}: expected an object with string \"key\" and \"value\""
                    ));
                };
                if out.insert(k.to_string(), v.to_string()).is_some() {
                    return Err(format!("item {idx}: duplicate key {k:?}"));
                }
            }
        }
        other => return Err(expected("an object", other)),
    }
    Ok(out.into_iter().collect())
}

/// Longest error message / disconnect reason of a transform (a WebSocket close reason).
const TRANSFORM_TEXT_MAX: usize = 123;

/// `http.status_to_code_transforms`, checked as Centrifugo checks them at start.
fn transforms(i: &Input) -> Result<Vec<StatusTransform>, String> {
    let v = json_of(i, "an array")?;
    let items = match &v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(expected("an array", other)),
    };
    let mut out = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let at = |m: String| format!("status_to_code_transforms[{idx}]: {m}");
        let Some(obj) = item.as_object() else {
            return Err(at(expected("an object", item)));
        };
        let num = |v: Option<&Value>, what: &str| -> Result<u64, String> {
            match v {
                None | Some(Value::Null) => Ok(0),
                Some(v) => uint(&Input::Json(v.clone())).map_err(|m| at(format!("{what}: {m}"))),
            }
        };
        let text = |v: Option<&Value>, what: &str| -> Result<String, String> {
            let s = match v {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => return Err(at(format!("{what}: {}", expected("a string", other)))),
            };
            if !s.is_ascii() {
                return Err(at(format!("{what} must be ASCII")));
            }
            if s.len() > TRANSFORM_TEXT_MAX {
                let max = TRANSFORM_TEXT_MAX;
                return Err(at(format!("{what} can be up to {max} characters long")));
            }
            Ok(s)
        };
        let to_error = obj.get("to_error");
        let to_disconnect = obj.get("to_disconnect");
        let status = num(obj.get("status_code"), "status_code")?;
        let error_code = num(to_error.and_then(|e| e.get("code")), "to_error.code")?;
        let disconnect_code = num(
            to_disconnect.and_then(|d| d.get("code")),
            "to_disconnect.code",
        )?;
        let temporary = match to_error.and_then(|e| e.get("temporary")) {
            None | Some(Value::Null) => false,
            Some(v) => boolean(&Input::Json(v.clone()))
                .map_err(|m| at(format!("to_error.temporary: {m}")))?,
        };
        if status == 0 {
            return Err(at("status_code should be set".into()));
        }
        if error_code == 0 && disconnect_code == 0 {
            return Err(at("no error or disconnect code set".into()));
        }
        if error_code > 0 && disconnect_code > 0 {
            return Err(at(
                "only an error or a disconnect code can be set, not both".into(),
            ));
        }
        out.push(StatusTransform {
            status_code: u16::try_from(status)
                .map_err(|_| at("status_code is out of range".into()))?,
            error_code: u32::try_from(error_code)
                .map_err(|_| at("to_error.code is out of range".into()))?,
            error_message: text(to_error.and_then(|e| e.get("message")), "to_error.message")?,
            error_temporary: temporary,
            disconnect_code: u16::try_from(disconnect_code)
                .map_err(|_| at("to_disconnect.code is out of range".into()))?,
            disconnect_reason: text(
                to_disconnect.and_then(|d| d.get("reason")),
                "to_disconnect.reason",
            )?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(s: &mut ProxySettings, field: &str, v: Value) -> Result<(), String> {
        set_field(s, field, &Input::Json(v)).map_err(|e| match e {
            SetError::Unknown => "unknown".to_string(),
            SetError::Bad(m) => m,
        })
    }

    #[test]
    fn maps_take_both_shapes_and_env_json() {
        let mut s = ProxySettings::default();
        set(&mut s, "http.static_headers", json!({"b": "2", "a": "1"})).unwrap();
        assert_eq!(
            s.static_headers,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        set(
            &mut s,
            "grpc.static_metadata",
            json!([{"key": "k", "value": "v"}]),
        )
        .unwrap();
        assert_eq!(s.grpc_static_metadata, [("k".into(), "v".into())]);
        let env = Input::Env(r#"{"x":"y"}"#.into());
        assert!(set_field(&mut s, "http.static_headers", &env).is_ok());
        assert_eq!(s.static_headers, [("x".into(), "y".into())]);
        let e = set(&mut s, "http.static_headers", json!({"a": 1})).unwrap_err();
        assert!(e.contains("expected a string"), "{e}");
        let e = set(
            &mut s,
            "grpc.static_metadata",
            json!([{"key": "k"}, {"key": "k"}]),
        )
        .unwrap_err();
        assert!(e.contains("item 0"), "{e}");
    }

    #[test]
    fn transforms_are_checked_as_centrifugo_does() {
        let mut s = ProxySettings::default();
        let ok = json!([
            {"status_code": 404, "to_error": {"code": 1404, "message": "nf", "temporary": true}},
            {"status_code": 403, "to_disconnect": {"code": 4403, "reason": "no"}}
        ]);
        set(&mut s, "http.status_to_code_transforms", ok).unwrap();
        assert_eq!(s.status_transforms.len(), 2);
        let t = &s.status_transforms[0];
        assert_eq!(
            (t.status_code, t.error_code, &*t.error_message),
            (404, 1404, "nf")
        );
        assert!(t.error_temporary);
        let d = &s.status_transforms[1];
        assert_eq!((d.disconnect_code, &*d.disconnect_reason), (4403, "no"));
        let cases = [
            (
                json!([{"to_error": {"code": 1}}]),
                "status_code should be set",
            ),
            (json!([{"status_code": 500}]), "no error or disconnect code"),
            (
                json!([{"status_code": 500, "to_error": {"code": 1}, "to_disconnect": {"code": 4000}}]),
                "not both",
            ),
            (
                json!([{"status_code": 500, "to_disconnect": {"code": 70000}}]),
                "out of range",
            ),
            (json!({"status_code": 500}), "expected an array"),
        ];
        for (v, want) in cases {
            let e = set(&mut s, "http.status_to_code_transforms", v).unwrap_err();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn leaves_stop_at_maps_and_lists() {
        let obj = json!({"Endpoint": "http://x", "http": {"static_headers": {"A": "b"},
            "tls": {"enabled": true}}, "http_headers": ["Cookie"]});
        let mut got: Vec<_> = leaves(obj.as_object().unwrap())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "endpoint",
                "http.static_headers",
                "http.tls.enabled",
                "http_headers"
            ]
        );
        let mut s = ProxySettings::default();
        set(&mut s, "http_headers", json!(["Cookie", "X-Real-IP"])).unwrap();
        assert_eq!(s.http_headers, ["cookie", "x-real-ip"]);
        assert_eq!(set(&mut s, "http.nope", json!(1)).unwrap_err(), "unknown");
    }
}
