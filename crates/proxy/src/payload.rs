//! How payloads travel to and from a proxy, the one place for PROXY.md §0 D3–D4: whether a
//! request carries `data` (raw JSON, verbatim) or `b64data` (standard base64 with padding), and
//! which of a result's `info`/`b64info`, `data`/`b64data` fields is read. Shared by the HTTP and
//! gRPC callers.

use base64::Engine as _;
use bytes::Bytes;
use rotor_core::backend::{BackendStyle, ConnContext};
use rotor_protocol::Encoding;

use crate::config::ProxySettings;

/// Whether requests to this proxy carry `b64data` + `encoding: "binary"`. 2.x follows the
/// client's transport encoding; 6.x the proxy's `binary_encoding`, for every client.
pub(crate) fn binary(style: BackendStyle, s: &ProxySettings, ctx: &ConnContext) -> bool {
    match style {
        BackendStyle::Legacy => ctx.encoding == Encoding::Protobuf,
        BackendStyle::Modern => s.binary_encoding,
    }
}

/// The request's `encoding` field.
pub(crate) fn encoding_name(binary: bool) -> &'static str {
    if binary {
        "binary"
    } else {
        "json"
    }
}

/// The request's `protocol` field.
pub(crate) fn protocol_name(ctx: &ConnContext) -> &'static str {
    match ctx.encoding {
        Encoding::Json => "json",
        Encoding::Protobuf => "protobuf",
    }
}

/// Base64 of a payload for a `b64*` field.
pub(crate) fn to_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Which result field wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// connect, refresh, subscribe, rpc, sub_refresh.
    Standard,
    /// publish: `data` first in both generations.
    Publish,
}

/// Reads a result payload from its JSON-valued field (`json`: the raw JSON text over HTTP, the
/// bytes field over gRPC; empty or `null` = absent) and its base64 field, per the generation's
/// rule. A bad base64 is a failed call (the message says which field).
pub(crate) fn pick(
    style: BackendStyle,
    ctx: &ConnContext,
    pick: Pick,
    json: Option<&[u8]>,
    b64: Option<&str>,
    field: &str,
) -> Result<Option<Bytes>, String> {
    let json = json.filter(|j| !j.is_empty() && *j != b"null");
    let b64 = b64.filter(|b| !b.is_empty());
    let decode = |b: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| format!("b64{field}: invalid base64: {e}"))
    };
    let from_json = |j: &[u8]| Ok(Some(Bytes::copy_from_slice(j)));
    match (style, pick) {
        (_, Pick::Publish) => match (json, b64) {
            (Some(j), _) => from_json(j),
            (None, Some(b)) => decode(b),
            (None, None) => Ok(None),
        },
        (BackendStyle::Legacy, Pick::Standard) => match ctx.encoding {
            Encoding::Json => json.map_or(Ok(None), from_json),
            Encoding::Protobuf => b64.map_or(Ok(None), decode),
        },
        (BackendStyle::Modern, Pick::Standard) => match (b64, json) {
            (Some(b), _) => decode(b),
            (None, Some(j)) => from_json(j),
            (None, None) => Ok(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::Generation;
    use std::sync::Arc;

    fn ctx(encoding: Encoding) -> ConnContext {
        ConnContext {
            client: Arc::from("c"),
            transport: "websocket",
            encoding,
            generation: Generation::V2,
            user: String::new(),
            meta: None,
            headers: Arc::from(Vec::new()),
            emulated_headers: Arc::from(Vec::new()),
        }
    }

    #[test]
    fn legacy_reads_the_field_of_the_clients_encoding_only() {
        let j = ctx(Encoding::Json);
        let p = ctx(Encoding::Protobuf);
        let l = BackendStyle::Legacy;
        let got = pick(
            l,
            &j,
            Pick::Standard,
            Some(b"{\"a\":1}"),
            Some("eA=="),
            "info",
        );
        assert_eq!(got, Ok(Some(Bytes::from_static(b"{\"a\":1}"))));
        let got = pick(
            l,
            &p,
            Pick::Standard,
            Some(b"{\"a\":1}"),
            Some("eA=="),
            "info",
        );
        assert_eq!(got, Ok(Some(Bytes::from_static(b"x"))));
        assert_eq!(
            pick(l, &p, Pick::Standard, Some(b"{}"), None, "info"),
            Ok(None)
        );
    }

    #[test]
    fn modern_prefers_base64_and_publish_prefers_data() {
        let j = ctx(Encoding::Json);
        let m = BackendStyle::Modern;
        let got = pick(m, &j, Pick::Standard, Some(b"{}"), Some("eA=="), "data");
        assert_eq!(got, Ok(Some(Bytes::from_static(b"x"))));
        let got = pick(m, &j, Pick::Publish, Some(b"{}"), Some("eA=="), "data");
        assert_eq!(got, Ok(Some(Bytes::from_static(b"{}"))));
        assert_eq!(
            pick(m, &j, Pick::Standard, Some(b"null"), None, "data"),
            Ok(None)
        );
        assert!(pick(m, &j, Pick::Standard, None, Some("%%%"), "data").is_err());
    }

    #[test]
    fn request_encoding_follows_the_generation_of_the_keys() {
        let s = ProxySettings {
            binary_encoding: true,
            ..ProxySettings::default()
        };
        assert!(!binary(BackendStyle::Legacy, &s, &ctx(Encoding::Json)));
        assert!(binary(BackendStyle::Legacy, &s, &ctx(Encoding::Protobuf)));
        assert!(binary(BackendStyle::Modern, &s, &ctx(Encoding::Json)));
        let plain = ProxySettings::default();
        assert!(!binary(
            BackendStyle::Modern,
            &plain,
            &ctx(Encoding::Protobuf)
        ));
    }
}
