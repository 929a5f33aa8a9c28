//! Server HTTP API requests: the 2.x `/api` envelope (`{"method","params"}`, batches separated
//! by newlines) and the current per-method bodies of `/api/<method>`. Both decode into
//! [`ApiCommand`]; the server encodes results in the shape of the endpoint that was called.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::command::{raw_opt, DecodeError, MethodField, RawJson, StreamPosition};

/// Declares a request struct with the publish options shared by `publish` and `broadcast`
/// (written out in each: serde's `flatten` cannot carry raw JSON values).
macro_rules! with_publish_fields {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(default)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            #[serde(deserialize_with = "raw_opt")]
            pub data: Option<RawJson>,
            /// Base64 of binary data; when not empty it wins over `data`.
            pub b64data: String,
            pub skip_history: bool,
            pub tags: BTreeMap<String, String>,
            /// A repeated key within the idempotency window publishes once and answers the
            /// first result.
            pub idempotency_key: String,
            /// Publish as a delta against the channel's previous publication (subscribers
            /// that negotiated delta compression).
            pub delta: bool,
            /// Publication version: one not above the last seen (in the same
            /// `version_epoch`) is suppressed in channels with history.
            pub version: u64,
            pub version_epoch: String,
        }

        impl $name {
            /// The publish options, apart from the channel(s).
            pub fn fields(&self) -> PublishFields {
                PublishFields {
                    data: self.data.clone(),
                    b64data: self.b64data.clone(),
                    skip_history: self.skip_history,
                    tags: self.tags.clone(),
                    idempotency_key: self.idempotency_key.clone(),
                    delta: self.delta,
                    version: self.version,
                    version_epoch: self.version_epoch.clone(),
                }
            }
        }
    };
}

/// Publish options shared by `publish` and `broadcast` (current API; `/api` and the 2.x
/// gRPC service use only `data`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishFields {
    pub data: Option<RawJson>,
    pub b64data: String,
    pub skip_history: bool,
    pub tags: BTreeMap<String, String>,
    pub idempotency_key: String,
    pub delta: bool,
    pub version: u64,
    pub version_epoch: String,
}

impl PublishFields {
    /// The payload: `b64data` decoded when set, else `data`. Bad base64 is an error.
    pub fn payload(&self) -> Result<Option<RawJson>, DecodeError> {
        decode_b64(&self.b64data).map(|b| b.or_else(|| self.data.clone()))
    }
}

/// Decodes standard base64 (`""` → `None`).
pub fn decode_b64(s: &str) -> Result<Option<RawJson>, DecodeError> {
    use base64::Engine;
    if s.is_empty() {
        return Ok(None);
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|v| Some(RawJson::from(v)))
        .map_err(|e| DecodeError::Malformed(format!("bad base64: {e}")))
}

with_publish_fields!(PublishParams {
    pub channel: String,
});

with_publish_fields!(BroadcastParams {
    pub channels: Vec<String>,
});

/// `{"value": bool}` (protobuf `BoolValue`): present = override, absent = channel default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BoolValue {
    pub value: bool,
}

/// Subscribe `override`: channel options replaced for this subscription only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SubscribeOverride {
    pub presence: Option<BoolValue>,
    pub join_leave: Option<BoolValue>,
    pub force_recovery: Option<BoolValue>,
    pub force_positioning: Option<BoolValue>,
    pub force_push_join_leave: Option<BoolValue>,
}

/// Current API `subscribe`: subscribe a user's connections to a channel at runtime.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SubscribeParams {
    pub channel: String,
    pub user: String,
    /// Unix seconds when the subscription expires; 0 = never.
    pub expire_at: i64,
    /// Channel info for the new subscriptions (raw JSON); `b64info` wins when set.
    #[serde(deserialize_with = "raw_opt")]
    pub info: Option<RawJson>,
    pub b64info: String,
    /// Only this connection of the user.
    pub client: String,
    /// Custom data in the subscribe push; `b64data` wins when set.
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
    pub b64data: String,
    /// Recover from this position instead of starting at the stream top.
    pub recover_since: Option<StreamPosition>,
    #[serde(rename = "override")]
    pub override_: Option<SubscribeOverride>,
    /// Only the connection with this session.
    pub session: String,
}

/// `unsubscribe` (both APIs); `client` and `session` are current-API filters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UnsubscribeParams {
    pub channel: String,
    pub user: String,
    pub client: String,
    pub session: String,
}

/// The code and reason a current-API `disconnect` closes connections with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DisconnectSpec {
    pub code: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DisconnectParams {
    pub user: String,
    /// Absent: `force disconnect` (3503 for v2 clients).
    pub disconnect: Option<DisconnectSpec>,
    pub client: String,
    /// Client IDs spared.
    pub whitelist: Vec<String>,
    pub session: String,
}

/// Current API `refresh`: extend (or end) a user's connections.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RefreshParams {
    pub user: String,
    pub client: String,
    /// Close the connections as expired (3005).
    pub expired: bool,
    /// New expiry, Unix seconds; 0 = the connection no longer expires (as Centrifuge).
    pub expire_at: i64,
    /// New connection info (raw JSON).
    #[serde(deserialize_with = "raw_opt")]
    pub info: Option<RawJson>,
    pub session: String,
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

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RpcParams {
    pub method: String,
    #[serde(deserialize_with = "raw_opt")]
    pub params: Option<RawJson>,
}

/// One server API call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiCommand {
    Publish(PublishParams),
    Broadcast(BroadcastParams),
    Subscribe(SubscribeParams),
    Unsubscribe(UnsubscribeParams),
    Disconnect(DisconnectParams),
    Presence(ChannelParams),
    PresenceStats(ChannelParams),
    History(HistoryParams),
    HistoryRemove(ChannelParams),
    Channels(ChannelsParams),
    Info,
    Rpc(RpcParams),
    Refresh(RefreshParams),
}

impl ApiCommand {
    /// The method's name as routes, batch keys and metrics spell it.
    pub fn method(&self) -> &'static str {
        match self {
            ApiCommand::Publish(_) => "publish",
            ApiCommand::Broadcast(_) => "broadcast",
            ApiCommand::Subscribe(_) => "subscribe",
            ApiCommand::Unsubscribe(_) => "unsubscribe",
            ApiCommand::Disconnect(_) => "disconnect",
            ApiCommand::Presence(_) => "presence",
            ApiCommand::PresenceStats(_) => "presence_stats",
            ApiCommand::History(_) => "history",
            ApiCommand::HistoryRemove(_) => "history_remove",
            ApiCommand::Channels(_) => "channels",
            ApiCommand::Info => "info",
            ApiCommand::Rpc(_) => "rpc",
            ApiCommand::Refresh(_) => "refresh",
        }
    }
}

/// The methods a current-API batch command may name, in `Command` field order (4..16).
pub const BATCH_METHODS: [&str; 13] = [
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "info",
    "rpc",
    "refresh",
    "channels",
];

/// One entry of a batch: a command, or why it cannot run (answered in its reply).
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // built once per batch command, never stored in bulk
pub enum BatchEntry {
    Command(ApiCommand),
    /// `null` in the list: error 107.
    Null,
    /// No known method field set (empty, or only a PRO / unknown one): error 104.
    NoMethod,
}

/// `POST /api/batch`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchRequest {
    pub commands: Vec<BatchEntry>,
    pub parallel: bool,
}

/// Decodes a batch body. A command whose set field does not decode fails the whole body.
pub fn decode_batch(body: &[u8]) -> Result<BatchRequest, DecodeError> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        commands: Vec<Option<BTreeMap<&'a str, &'a RawValue>>>,
        #[serde(default)]
        parallel: bool,
    }
    let raw: Raw<'_> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let mut commands = Vec::with_capacity(raw.commands.len());
    for c in raw.commands {
        let Some(fields) = c else {
            commands.push(BatchEntry::Null);
            continue;
        };
        let found = BATCH_METHODS.iter().find_map(|m| {
            fields
                .get(m)
                .filter(|v| v.get() != "null")
                .map(|v| (*m, v.get().as_bytes()))
        });
        commands.push(match found {
            Some((method, params)) => match decode_api_params(method, params)? {
                Some(cmd) => BatchEntry::Command(cmd),
                None => BatchEntry::NoMethod,
            },
            None => BatchEntry::NoMethod,
        });
    }
    Ok(BatchRequest {
        commands,
        parallel: raw.parallel,
    })
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
        "rpc" => ApiCommand::Rpc(p(params)?),
        "refresh" => ApiCommand::Refresh(p(params)?),
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

#[cfg(test)]
mod current_tests {
    use super::*;

    #[test]
    fn publish_fields_flattened_keep_raw_data() {
        let c = decode_api_params(
            "publish",
            br#"{"channel":"a","data":{"x":[1, 2]},"tags":{"k":"v"},"idempotency_key":"i","delta":true}"#,
        )
        .unwrap();
        let Some(ApiCommand::Publish(p)) = c else {
            panic!("{c:?}")
        };
        assert_eq!(&p.data.unwrap()[..], br#"{"x":[1, 2]}"#);
        assert_eq!(p.tags.get("k").map(String::as_str), Some("v"));
        assert!(p.delta);
        let c = decode_api_params("broadcast", br#"{"channels":["a"],"b64data":"aGk="}"#)
            .unwrap()
            .unwrap();
        let ApiCommand::Broadcast(b) = c else {
            panic!()
        };
        assert_eq!(&b.fields().payload().unwrap().unwrap()[..], b"hi");
        assert!(
            decode_api_params("publish", br#"{"channel":"a","b64data":"!!"}"#)
                .unwrap()
                .map(|c| match c {
                    ApiCommand::Publish(p) => p.fields().payload().is_err(),
                    _ => false,
                })
                .unwrap()
        );
        assert!(decode_api_params("publish", br#"{"channel":"a","skip_history":"x"}"#).is_err());
    }

    #[test]
    fn batch_entries() {
        let b = decode_batch(
            br#"{"commands":[{"publish":{"channel":"a","data":1}},null,{},{"connections":{}},{"info":{}}],"parallel":true}"#,
        )
        .unwrap();
        assert!(b.parallel);
        assert!(matches!(
            b.commands[0],
            BatchEntry::Command(ApiCommand::Publish(_))
        ));
        assert_eq!(b.commands[1], BatchEntry::Null);
        assert_eq!(b.commands[2], BatchEntry::NoMethod);
        assert_eq!(b.commands[3], BatchEntry::NoMethod);
        assert_eq!(b.commands[4], BatchEntry::Command(ApiCommand::Info));
        assert!(decode_batch(br#"{"commands":[{"publish":{"channel":5}}]}"#).is_err());
    }
}
