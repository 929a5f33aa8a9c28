//! Client commands of both generations, decoded into one generation-independent form.
//!
//! A v1 command is `{"id","method","params"}` (method a number or a case-insensitive name, absent
//! = connect); a v2 command names its kind by key (`{"id":1,"subscribe":{..}}`), and an empty v2
//! command is a pong. Unknown keys are ignored (current clients send extra fields such as `flag`).
//! Application payloads stay raw JSON text: they are checked for well-formedness here and never
//! parsed again.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

use crate::Generation;

/// Why a command could not be decoded; the session closes the connection as a bad request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("malformed command: {0}")]
    Malformed(String),
    #[error("unknown method {0}")]
    UnknownMethod(String),
}

/// A bare JSON `ConnectRequest`, as the unidirectional transports receive it (no `id`, no
/// `connect` wrapper); JSON `null` or nothing but whitespace is an empty request.
pub fn decode_json_connect_request(bytes: &[u8]) -> Result<ConnectRequest, DecodeError> {
    if bytes.trim_ascii().is_empty() {
        return Err(DecodeError::Malformed("empty connect request".into()));
    }
    serde_json::from_slice::<Option<ConnectRequest>>(bytes)
        .map(Option::unwrap_or_default)
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// A raw JSON payload (publication data, info) kept as the bytes the client sent.
pub type RawJson = bytes::Bytes;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    pub token: String,
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
    pub subs: BTreeMap<String, SubscribeRequest>,
    pub name: String,
    pub version: String,
    /// v2 header emulation: headers the client could not set on its transport.
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    pub channel: String,
    pub token: String,
    pub recover: bool,
    pub seq: u32,
    pub gen: u32,
    pub epoch: String,
    pub offset: u64,
    /// v2: the client asks for join/leave pushes.
    pub join_leave: bool,
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
    /// v2: the delta type asked for (`fossil`; `""` = none).
    pub delta: String,
    /// v2: the tags filter (`tf`): only publications whose tags match are delivered.
    pub tf: Option<crate::filter::FilterNode>,
    /// v2: the client asks for a positioned subscription (granted by `allow_positioning`).
    pub positioned: bool,
    /// v2: the client asks for a recoverable subscription (granted by `allow_recovery`).
    pub recoverable: bool,
    /// v2 `flag` bits: 1 = channel compaction (PRO; ignored), 2 = a failed stream recovery is
    /// error 112 instead of `recovered: false`.
    pub flag: i64,
    /// v2 `type`: 0 stream; 1–4 map / shared-poll subscriptions (not served by Rotor).
    #[serde(rename = "type")]
    pub sub_type: i32,
}

impl SubscribeRequest {
    /// The requested stream position; `seq`/`gen` (v1 legacy) win when set, as in Centrifugo 2.x.
    pub fn position_offset(&self) -> u64 {
        if self.seq > 0 || self.gen > 0 {
            (u64::from(self.gen) << 32) | u64::from(self.seq)
        } else {
            self.offset
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChannelRequest {
    pub channel: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
    pub channel: String,
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
    pub channel: String,
    /// v2: absent/0 = no publications, -1 = all. v1 ignores it (always all).
    pub limit: i64,
    pub since: Option<StreamPosition>,
    pub reverse: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SendRequest {
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RpcRequest {
    #[serde(deserialize_with = "raw_opt")]
    pub data: Option<RawJson>,
    pub method: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    pub token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SubRefreshRequest {
    pub channel: String,
    pub token: String,
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandKind {
    Connect(ConnectRequest),
    Subscribe(SubscribeRequest),
    Unsubscribe(ChannelRequest),
    Publish(PublishRequest),
    Presence(ChannelRequest),
    PresenceStats(ChannelRequest),
    History(HistoryRequest),
    Ping,
    Send(SendRequest),
    Rpc(RpcRequest),
    Refresh(RefreshRequest),
    SubRefresh(SubRefreshRequest),
    /// v2 only: the empty command answering a server ping.
    Pong,
    /// v1: a method number this server does not know (answered with error 104).
    Unknown(u32),
}

impl CommandKind {
    /// Commands that may carry id 0 (no reply expected).
    pub fn allows_zero_id(&self) -> bool {
        matches!(self, CommandKind::Send(_) | CommandKind::Pong)
    }

    /// Name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::Connect(_) => "connect",
            CommandKind::Subscribe(_) => "subscribe",
            CommandKind::Unsubscribe(_) => "unsubscribe",
            CommandKind::Publish(_) => "publish",
            CommandKind::Presence(_) => "presence",
            CommandKind::PresenceStats(_) => "presence_stats",
            CommandKind::History(_) => "history",
            CommandKind::Ping => "ping",
            CommandKind::Send(_) => "send",
            CommandKind::Rpc(_) => "rpc",
            CommandKind::Refresh(_) => "refresh",
            CommandKind::SubRefresh(_) => "sub_refresh",
            CommandKind::Pong => "pong",
            CommandKind::Unknown(_) => "unknown",
        }
    }
}

/// One decoded command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: u32,
    pub kind: CommandKind,
}

/// A v1 method as a number or a name (the 2.x server accepts both).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum MethodField {
    Num(u32),
    Name(String),
}

/// Both generations' envelope keys; which ones are present decides the generation.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope<'a> {
    id: u32,
    method: Option<MethodField>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    connect: Option<&'a RawValue>,
    #[serde(borrow)]
    subscribe: Option<&'a RawValue>,
    #[serde(borrow)]
    unsubscribe: Option<&'a RawValue>,
    #[serde(borrow)]
    publish: Option<&'a RawValue>,
    #[serde(borrow)]
    presence: Option<&'a RawValue>,
    #[serde(borrow)]
    presence_stats: Option<&'a RawValue>,
    #[serde(borrow)]
    history: Option<&'a RawValue>,
    #[serde(borrow)]
    ping: Option<&'a RawValue>,
    #[serde(borrow)]
    send: Option<&'a RawValue>,
    #[serde(borrow)]
    rpc: Option<&'a RawValue>,
    #[serde(borrow)]
    refresh: Option<&'a RawValue>,
    #[serde(borrow)]
    sub_refresh: Option<&'a RawValue>,
}

impl Envelope<'_> {
    fn has_named_command(&self) -> bool {
        self.connect.is_some()
            || self.subscribe.is_some()
            || self.unsubscribe.is_some()
            || self.publish.is_some()
            || self.presence.is_some()
            || self.presence_stats.is_some()
            || self.history.is_some()
            || self.ping.is_some()
            || self.send.is_some()
            || self.rpc.is_some()
            || self.refresh.is_some()
            || self.sub_refresh.is_some()
    }
}

/// Decodes one JSON command. `generation` is `None` for a connection's first command: then the
/// shape decides (a named command key means v2) and the chosen generation is returned with it.
pub fn decode_json_command(
    bytes: &[u8],
    generation: Option<Generation>,
) -> Result<(Generation, Command), DecodeError> {
    if trim_ascii(bytes).first() != Some(&b'{') {
        return Err(DecodeError::Malformed(
            "a command must be a JSON object".into(),
        ));
    }
    let env: Envelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let generation = generation.unwrap_or(if env.has_named_command() {
        Generation::V2
    } else {
        Generation::V1
    });
    let kind = match generation {
        Generation::V1 => decode_v1(&env)?,
        Generation::V2 => decode_v2(&env)?,
    };
    Ok((generation, Command { id: env.id, kind }))
}

fn params<T: serde::de::DeserializeOwned + Default>(
    raw: Option<&RawValue>,
) -> Result<T, DecodeError> {
    match raw {
        None => Ok(T::default()),
        Some(r) if r.get() == "null" => Ok(T::default()),
        Some(r) => serde_json::from_str(r.get()).map_err(|e| DecodeError::Malformed(e.to_string())),
    }
}

fn v1_method_number(m: &Option<MethodField>) -> Result<u32, DecodeError> {
    const NAMES: [&str; 12] = [
        "connect",
        "subscribe",
        "unsubscribe",
        "publish",
        "presence",
        "presence_stats",
        "history",
        "ping",
        "send",
        "rpc",
        "refresh",
        "sub_refresh",
    ];
    match m {
        None => Ok(0),
        Some(MethodField::Num(n)) => Ok(*n),
        Some(MethodField::Name(s)) => NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|p| p as u32)
            .ok_or_else(|| DecodeError::UnknownMethod(s.clone())),
    }
}

fn decode_v1(env: &Envelope<'_>) -> Result<CommandKind, DecodeError> {
    let p = env.params;
    Ok(match v1_method_number(&env.method)? {
        0 => CommandKind::Connect(params(p)?),
        1 => CommandKind::Subscribe(params(p)?),
        2 => CommandKind::Unsubscribe(params(p)?),
        3 => CommandKind::Publish(params(p)?),
        4 => CommandKind::Presence(params(p)?),
        5 => CommandKind::PresenceStats(params(p)?),
        6 => {
            // 2.x history has no paging: whatever a newer client adds is ignored.
            let h: ChannelRequest = params(p)?;
            CommandKind::History(HistoryRequest {
                channel: h.channel,
                limit: -1,
                since: None,
                reverse: false,
            })
        }
        7 => CommandKind::Ping,
        8 => CommandKind::Send(params(p)?),
        9 => CommandKind::Rpc(params(p)?),
        10 => CommandKind::Refresh(params(p)?),
        11 => CommandKind::SubRefresh(params(p)?),
        n => CommandKind::Unknown(n),
    })
}

fn decode_v2(env: &Envelope<'_>) -> Result<CommandKind, DecodeError> {
    Ok(if let Some(r) = env.connect {
        CommandKind::Connect(params(Some(r))?)
    } else if let Some(r) = env.subscribe {
        CommandKind::Subscribe(params(Some(r))?)
    } else if let Some(r) = env.unsubscribe {
        CommandKind::Unsubscribe(params(Some(r))?)
    } else if let Some(r) = env.publish {
        CommandKind::Publish(params(Some(r))?)
    } else if let Some(r) = env.presence {
        CommandKind::Presence(params(Some(r))?)
    } else if let Some(r) = env.presence_stats {
        CommandKind::PresenceStats(params(Some(r))?)
    } else if let Some(r) = env.history {
        CommandKind::History(params(Some(r))?)
    } else if env.ping.is_some() {
        CommandKind::Ping
    } else if let Some(r) = env.send {
        CommandKind::Send(params(Some(r))?)
    } else if let Some(r) = env.rpc {
        CommandKind::Rpc(params(Some(r))?)
    } else if let Some(r) = env.refresh {
        CommandKind::Refresh(params(Some(r))?)
    } else if let Some(r) = env.sub_refresh {
        CommandKind::SubRefresh(params(Some(r))?)
    } else if env.id == 0 {
        CommandKind::Pong
    } else {
        return Err(DecodeError::UnknownMethod("empty command".to_string()));
    })
}

/// Splits a JSON frame into its newline-separated commands, skipping blank lines.
pub fn split_json_frame(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    frame
        .split(|b| *b == b'\n')
        .map(trim_ascii)
        .filter(|l| !l.is_empty())
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Deserializes an optional raw JSON payload, keeping its bytes (`null` = absent).
pub(crate) fn raw_opt<'de, D>(d: D) -> Result<Option<RawJson>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw: Option<Box<RawValue>> = Option::deserialize(d)?;
    Ok(raw.and_then(|r| {
        let s = r.get();
        (s != "null").then(|| bytes::Bytes::copy_from_slice(s.as_bytes()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> (Generation, Command) {
        decode_json_command(s.as_bytes(), None).unwrap()
    }

    #[test]
    fn bare_id_is_v1_connect() {
        let (g, c) = d(r#"{"id":1}"#);
        assert_eq!(g, Generation::V1);
        assert_eq!(c.kind, CommandKind::Connect(ConnectRequest::default()));
    }

    #[test]
    fn v1_method_names_and_numbers() {
        let (_, c) = d(r#"{"id":2,"method":"SUB_REFRESH","params":{"channel":"$a","token":"t"}}"#);
        assert!(matches!(c.kind, CommandKind::SubRefresh(ref r) if r.channel == "$a"));
        let (_, c) =
            d(r#"{"id":3,"method":1,"params":{"channel":"x","recover":true,"seq":5,"gen":1}}"#);
        match c.kind {
            CommandKind::Subscribe(s) => assert_eq!(s.position_offset(), (1 << 32) | 5),
            k => panic!("{k:?}"),
        }
        let (_, c) = d(r#"{"id":3,"method":42}"#);
        assert_eq!(c.kind, CommandKind::Unknown(42));
        assert!(matches!(
            decode_json_command(br#"{"id":3,"method":"nope"}"#, None),
            Err(DecodeError::UnknownMethod(_))
        ));
    }

    #[test]
    fn v2_named_command_and_unknown_fields() {
        let (g, c) = d(r#"{"id":2,"subscribe":{"channel":"chat","flag":1,"join_leave":true}}"#);
        assert_eq!(g, Generation::V2);
        assert!(
            matches!(c.kind, CommandKind::Subscribe(ref s) if s.join_leave && s.channel == "chat")
        );
        let (_, c) = decode_json_command(b"{}", Some(Generation::V2)).unwrap();
        assert_eq!(c.kind, CommandKind::Pong);
    }

    #[test]
    fn publish_data_is_kept_raw() {
        let (_, c) = d(r#"{"id":4,"method":3,"params":{"channel":"c","data":{"b": [1, 2]}}}"#);
        match c.kind {
            CommandKind::Publish(p) => assert_eq!(&p.data.unwrap()[..], br#"{"b": [1, 2]}"#),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn forced_generation_wins_over_shape() {
        // A v2-looking command on a v1 connection is a v1 connect without params.
        let (g, c) =
            decode_json_command(br#"{"id":1,"connect":{}}"#, Some(Generation::V1)).unwrap();
        assert_eq!(g, Generation::V1);
        assert!(matches!(c.kind, CommandKind::Connect(_)));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for s in [
            "",
            "{",
            "[]",
            "null",
            r#"{"id":-1}"#,
            r#"{"id":1,"params":{"token":5}}"#,
        ] {
            assert!(decode_json_command(s.as_bytes(), None).is_err(), "{s}");
        }
    }

    /// Round trip of every command kind through JSON text, in both generations.
    #[test]
    fn every_kind_decodes_in_both_generations() {
        let v1 = [
            (
                r#"{"id":1,"method":0,"params":{"token":"t","name":"js"}}"#,
                "connect",
            ),
            (
                r#"{"id":2,"method":1,"params":{"channel":"c","token":"t","recover":true,"offset":3,"epoch":"e"}}"#,
                "subscribe",
            ),
            (
                r#"{"id":3,"method":2,"params":{"channel":"c"}}"#,
                "unsubscribe",
            ),
            (
                r#"{"id":4,"method":3,"params":{"channel":"c","data":{"x":1}}}"#,
                "publish",
            ),
            (
                r#"{"id":5,"method":4,"params":{"channel":"c"}}"#,
                "presence",
            ),
            (
                r#"{"id":6,"method":5,"params":{"channel":"c"}}"#,
                "presence_stats",
            ),
            (
                r#"{"id":7,"method":6,"params":{"channel":"c","limit":1}}"#,
                "history",
            ),
            (r#"{"id":8,"method":7}"#, "ping"),
            (r#"{"method":8,"params":{"data":"x"}}"#, "send"),
            (
                r#"{"id":9,"method":9,"params":{"data":{},"method":"m"}}"#,
                "rpc",
            ),
            (r#"{"id":10,"method":10,"params":{"token":"t"}}"#, "refresh"),
            (
                r#"{"id":11,"method":11,"params":{"channel":"c","token":"t"}}"#,
                "sub_refresh",
            ),
        ];
        for (s, name) in v1 {
            let (g, c) = decode_json_command(s.as_bytes(), Some(Generation::V1)).unwrap();
            assert_eq!((g, c.kind.name()), (Generation::V1, name), "{s}");
        }
        for name in [
            "connect",
            "subscribe",
            "unsubscribe",
            "publish",
            "presence",
            "presence_stats",
            "history",
            "ping",
            "send",
            "rpc",
            "refresh",
            "sub_refresh",
        ] {
            let s = format!(r#"{{"id":1,"{name}":{{}}}}"#);
            let (g, c) = decode_json_command(s.as_bytes(), None).unwrap();
            assert_eq!((g, c.kind.name()), (Generation::V2, name), "{s}");
        }
    }

    /// Random bytes and mutations of valid commands: errors, never panics.
    #[test]
    fn garbage_never_panics() {
        let seeds: [&[u8]; 4] = [
            br#"{"id":1,"params":{"token":"abc","subs":{"c":{"recover":true}}}}"#,
            br#"{"id":2,"subscribe":{"channel":"$c","token":"t","flag":1,"since":{"offset":1}}}"#,
            br#"{"id":3,"method":"publish","params":{"channel":"c","data":[1,{"a":"\u00e9"}]}}"#,
            b"{}\n{\"id\":4,\"method\":7}\n",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let mut buf: Vec<u8> = if round % 2 == 0 {
                let len = (next() % 64) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                seeds[round / 2 % seeds.len()].to_vec()
            };
            if !buf.is_empty() {
                for _ in 0..(next() % 4) {
                    let i = (next() as usize) % buf.len();
                    buf[i] = next() as u8;
                }
                let cut = (next() as usize) % (buf.len() + 1);
                buf.truncate(cut);
            }
            for line in split_json_frame(&buf) {
                let _ = decode_json_command(line, None);
                let _ = decode_json_command(line, Some(Generation::V1));
                let _ = decode_json_command(line, Some(Generation::V2));
            }
        }
    }

    #[test]
    fn split_skips_blank_lines() {
        let parts: Vec<_> = split_json_frame(b"{\"id\":1}\n\n  {\"id\":2}\r\n").collect();
        assert_eq!(parts, vec![&b"{\"id\":1}"[..], &b"{\"id\":2}"[..]]);
    }
}
