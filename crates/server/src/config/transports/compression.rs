//! WebSocket permessage-deflate settings (CHANNELS-MODERN.md §2): the 2.x flat keys
//! `websocket_compression`, `websocket_compression_level`, `websocket_compression_min_size`, and
//! the flat names the Centrifugo 6 `websocket.*` / `uni_websocket.*` keys map onto (including
//! `decompressed_message_size_limit`, which 2.x does not have).
//!
//! The level is validated at load: 0–9 as zlib's (0 stores, 1 fastest, 9 smallest) or -1 for
//! zlib's default (6), the levels Go's `compress/flate` takes except its Huffman-only -2, which
//! the deflate library here has no mode for. Centrifugo only logs a bad level per connection;
//! Rotor refuses to start, naming the key.

use super::super::values::{boolean, expected, size, Input};
use super::super::SetError;
use super::TransportSettings;

/// Compression of one WebSocket transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsCompression {
    /// Negotiate permessage-deflate when the client offers it.
    pub enabled: bool,
    /// zlib level, 0–9.
    pub level: u32,
    /// Messages of at most this many bytes go out uncompressed (strict `>` compresses).
    pub min_size: usize,
    /// Bytes a client message may inflate to; 0 = 10 × the transport's message size limit.
    pub decompressed_limit: usize,
}

impl Default for WsCompression {
    fn default() -> Self {
        Self {
            enabled: false,
            level: 1,
            min_size: 0,
            decompressed_limit: 0,
        }
    }
}

impl WsCompression {
    /// The inflated-size limit in force for a transport whose messages may be `message_limit`
    /// bytes on the wire.
    pub fn inflate_limit(&self, message_limit: usize) -> usize {
        if self.decompressed_limit == 0 {
            message_limit.saturating_mul(10)
        } else {
            self.decompressed_limit
        }
    }
}

/// Applies one compression key of the bidirectional (`websocket_*`) or unidirectional
/// (`uni_websocket_*`) WebSocket; [`SetError::Unknown`] for any other key.
pub(crate) fn set(t: &mut TransportSettings, key: &str, i: &Input) -> Result<(), SetError> {
    let (c, rest) = if let Some(rest) = key.strip_prefix("uni_websocket_") {
        (&mut t.uni_websocket.compression, rest)
    } else if let Some(rest) = key.strip_prefix("websocket_") {
        (&mut t.websocket_compression, rest)
    } else {
        return Err(SetError::Unknown);
    };
    match rest {
        "compression" => c.enabled = boolean(i)?,
        "compression_level" => c.level = level(i)?,
        "compression_min_size" => c.min_size = size(i)?,
        "decompressed_message_size_limit" => c.decompressed_limit = size(i)?,
        _ => return Err(SetError::Unknown),
    }
    Ok(())
}

/// A zlib compression level: 0–9, or -1 for the default (6).
fn level(i: &Input) -> Result<u32, String> {
    let n: i64 = match i {
        Input::Json(serde_json::Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("expected an integer level, got {n}"))?,
        Input::Json(v) => return Err(expected("an integer", v)),
        Input::Env(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("expected an integer level, got {s:?}"))?,
    };
    match n {
        -1 => Ok(6),
        0..=9 => Ok(n as u32),
        _ => Err(format!(
            "compression level {n} out of range (valid: 0-9, or -1 for the default)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let j = |v: serde_json::Value| level(&Input::Json(v));
        assert_eq!(j(serde_json::json!(1)), Ok(1));
        assert_eq!(j(serde_json::json!(9)), Ok(9));
        assert_eq!(j(serde_json::json!(-1)), Ok(6));
        assert!(j(serde_json::json!(10)).is_err());
        assert!(j(serde_json::json!(-2)).is_err());
        assert_eq!(level(&Input::Env("3".into())), Ok(3));
    }

    /// Both generations' names land in the same settings (environment values here).
    #[test]
    fn both_generations_and_env() {
        let load = |vars: &[(&str, &str)]| {
            let env: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let c = crate::config::load(None, &env, &Default::default()).expect("loads");
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            let t = c.server.transports;
            (t.websocket_compression, t.uni_websocket.compression)
        };
        let (ws, uni) = load(&[
            ("CENTRIFUGO_WEBSOCKET_COMPRESSION", "true"),
            ("CENTRIFUGO_WEBSOCKET_COMPRESSION_LEVEL", "4"),
            ("CENTRIFUGO_WEBSOCKET_COMPRESSION_MIN_SIZE", "100"),
            (
                "CENTRIFUGO_WEBSOCKET_DECOMPRESSED_MESSAGE_SIZE_LIMIT",
                "5000",
            ),
            ("CENTRIFUGO_UNI_WEBSOCKET_COMPRESSION", "true"),
            ("CENTRIFUGO_UNI_WEBSOCKET_COMPRESSION_LEVEL", "9"),
        ]);
        let want = WsCompression {
            enabled: true,
            level: 4,
            min_size: 100,
            decompressed_limit: 5000,
        };
        assert_eq!(ws, want);
        assert_eq!(
            uni,
            WsCompression {
                enabled: true,
                level: 9,
                ..WsCompression::default()
            }
        );
        let (ws, uni) = load(&[]);
        assert_eq!(
            (ws, uni),
            (WsCompression::default(), WsCompression::default())
        );
    }

    #[test]
    fn inflate_limit_defaults_to_ten_times() {
        let c = WsCompression::default();
        assert_eq!(c.inflate_limit(65536), 655360);
        let c = WsCompression {
            decompressed_limit: 100,
            ..c
        };
        assert_eq!(c.inflate_limit(65536), 100);
    }
}
