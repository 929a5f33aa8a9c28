//! Server HTTP API requests: the 2.x `/api` envelope (`{"method","params"}`, batches separated
//! by newlines) and the current per-method bodies of `/api/<method>`. Both decode into
//! [`ApiCommand`]; the server encodes results in the shape of the endpoint that was called.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::command::{raw_opt, DecodeError, MethodField, RawJson, StreamPosition};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PublishParams {
    pub channel: String,
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
    pub skip_history: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BroadcastParams {
    pub channels: Vec<String>,
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
    pub skip_history: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UserChannelParams {
    pub user: String,
    pub channel: String,
    /// Current API: only this connection of the user.
    pub client: String,
}

/// Current API `subscribe`: subscribe a user's connections to a channel at runtime.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SubscribeParams {
    pub user: String,
    pub channel: String,
    pub client: String,
    /// Channel info for the new subscriptions (raw JSON).
    #[serde(deserialize_with = "raw_opt")]
    pub info: Option<RawJson>,
    /// Recover from this position instead of starting at the stream top.
    pub recover_since: Option<StreamPosition>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DisconnectParams {
    pub user: String,
    pub client: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChannelParams {
    pub channel: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HistoryParams {
    pub channel: String,
    /// Current API: absent/0 = only the stream top, -1 = all. `/api` (2.x) always returns all.
    pub limit: i64,
    pub since: Option<StreamPosition>,
    pub reverse: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChannelsParams {
    pub pattern: String,
}

/// One server API call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiCommand {
    Publish(PublishParams),
    Broadcast(BroadcastParams),
    Subscribe(SubscribeParams),
    Unsubscribe(UserChannelParams),
    Disconnect(DisconnectParams),
    Presence(ChannelParams),
    PresenceStats(ChannelParams),
    History(HistoryParams),
    HistoryRemove(ChannelParams),
    Channels(ChannelsParams),
    Info,
    Rpc,
}

/// Method names in `/api` numbering order (2.x `MethodType`).
pub const API_METHODS: [&str; 11] = [
    "publish",
    "broadcast",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "channels",
    "info",
    "rpc",
];

/// Decodes the params of `method` (a lower-case name). `Ok(None)` = no such method.
pub fn decode_api_params(method: &str, params: &[u8]) -> Result<Option<ApiCommand>, DecodeError> {
    fn p<T: serde::de::DeserializeOwned + Default>(b: &[u8]) -> Result<T, DecodeError> {
        let t = std::str::from_utf8(b)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?
            .trim();
        if t.is_empty() || t == "null" {
            return Ok(T::default());
        }
        serde_json::from_str(t).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
    Ok(Some(match method {
        "publish" => ApiCommand::Publish(p(params)?),
        "broadcast" => ApiCommand::Broadcast(p(params)?),
        "subscribe" => ApiCommand::Subscribe(p(params)?),
        "unsubscribe" => ApiCommand::Unsubscribe(p(params)?),
        "disconnect" => ApiCommand::Disconnect(p(params)?),
        "presence" => ApiCommand::Presence(p(params)?),
        "presence_stats" => ApiCommand::PresenceStats(p(params)?),
        "history" => ApiCommand::History(p(params)?),
        "history_remove" => ApiCommand::HistoryRemove(p(params)?),
        "channels" => ApiCommand::Channels(p(params)?),
        "info" => ApiCommand::Info,
        "rpc" => ApiCommand::Rpc,
        _ => return Ok(None),
    }))
}

#[derive(Deserialize)]
struct LegacyEnvelope<'a> {
    #[serde(default)]
    id: u32,
    #[serde(default)]
    method: Option<MethodField>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// One command of a 2.x `/api` body.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyApiCommand {
    pub id: u32,
    /// `None` when the method is unknown (answered with error 104).
    pub command: Option<ApiCommand>,
}

/// Decodes one line of a 2.x `/api` body. An undecodable line fails the whole request (400).
pub fn decode_legacy_api_command(line: &[u8]) -> Result<LegacyApiCommand, DecodeError> {
    let env: LegacyEnvelope<'_> =
        serde_json::from_slice(line).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let name = match env.method {
        None => Some("publish".to_string()),
        Some(MethodField::Num(n)) => API_METHODS.get(n as usize).map(|s| s.to_string()),
        Some(MethodField::Name(s)) => Some(s.to_ascii_lowercase()),
    };
    let params = env.params.map(|r| r.get().as_bytes()).unwrap_or(b"");
    let command = match name {
        Some(n) => decode_api_params(&n, params)?,
        None => None,
    };
    Ok(LegacyApiCommand {
        id: env.id,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_publish_by_name_and_number() {
        let c = decode_legacy_api_command(
            br#"{"method":"publish","params":{"channel":"news","data":{"x":1}}}"#,
        )
        .unwrap();
        match c.command {
            Some(ApiCommand::Publish(p)) => {
                assert_eq!(p.channel, "news");
                assert_eq!(&p.data.unwrap()[..], br#"{"x":1}"#);
            }
            other => panic!("{other:?}"),
        }
        let c =
            decode_legacy_api_command(br#"{"id":3,"method":5,"params":{"channel":"c"}}"#).unwrap();
        assert_eq!(c.id, 3);
        assert!(matches!(c.command, Some(ApiCommand::PresenceStats(_))));
    }

    #[test]
    fn unknown_method_is_not_a_decode_error() {
        let c = decode_legacy_api_command(br#"{"method":"nope","params":{}}"#).unwrap();
        assert_eq!(c.command, None);
        assert_eq!(decode_api_params("nope", b"{}"), Ok(None));
    }

    #[test]
    fn malformed_is_error() {
        assert!(decode_legacy_api_command(b"{").is_err());
        assert!(decode_api_params("publish", br#"{"channel":5}"#).is_err());
    }
}
