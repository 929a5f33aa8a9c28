//! The JSON bodies of the HTTP proxy (PROXY.md §3.2–§3.3): the request of each event, and the
//! reading of an answer's `{result, error, disconnect}` envelope into the core's grants.
//!
//! Requests embed payloads verbatim as raw JSON (`data`, `meta`) or as standard base64
//! (`b64data`); a payload that is not JSON in JSON mode fails the call rather than sending broken
//! JSON. Answers are read field by field, so a wrongly typed field fails the call with a message
//! that names it (`result.user: invalid type: ...`); unknown fields are ignored and `null`
//! reads as absent, as Go's decoder does.

use std::collections::BTreeMap;

use bytes::Bytes;
use rotor_core::backend::{
    BackendError, BackendStyle, ConnContext, ConnectGrant, PublishGrant, RefreshGrant, ServerSub,
    SubOverride, SubRefreshGrant, SubscribeGrant,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::payload::{self, Pick};

/// The fields every request starts with.
#[derive(Serialize)]
pub(crate) struct Head<'a> {
    pub client: &'a str,
    pub transport: &'a str,
    pub protocol: &'a str,
    pub encoding: &'a str,
}

impl<'a> Head<'a> {
    pub(crate) fn new(ctx: &'a ConnContext, binary: bool) -> Self {
        Self {
            client: &ctx.client,
            transport: ctx.transport,
            protocol: payload::protocol_name(ctx),
            encoding: payload::encoding_name(binary),
        }
    }
}

/// A payload as a request carries it: `data` (raw JSON) or `b64data`; both absent when empty.
#[derive(Serialize, Default)]
pub(crate) struct Payload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b64data: Option<String>,
}

/// Raw JSON text checked for validity (`None` when empty).
pub(crate) fn raw_json<'a>(
    bytes: Option<&'a [u8]>,
    field: &str,
) -> Result<Option<&'a RawValue>, String> {
    match bytes {
        None => Ok(None),
        Some([]) => Ok(None),
        Some(b) => serde_json::from_slice::<&RawValue>(b)
            .map(Some)
            .map_err(|e| format!("{field} is not valid JSON, cannot send it in JSON mode: {e}")),
    }
}

impl<'a> Payload<'a> {
    pub(crate) fn new(binary: bool, bytes: Option<&'a [u8]>) -> Result<Self, String> {
        match bytes {
            None => Ok(Self::default()),
            Some([]) => Ok(Self::default()),
            Some(b) if binary => Ok(Self {
                data: None,
                b64data: Some(payload::to_b64(b)),
            }),
            Some(b) => Ok(Self {
                data: raw_json(Some(b), "data")?,
                b64data: None,
            }),
        }
    }
}

fn is_empty(s: &&str) -> bool {
    s.is_empty()
}

#[derive(Serialize)]
pub(crate) struct ConnectRequest<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    #[serde(flatten)]
    pub payload: Payload<'a>,
    #[serde(skip_serializing_if = "is_empty")]
    pub name: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    pub version: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub channels: &'a [String],
}

#[derive(Serialize)]
pub(crate) struct RefreshRequest<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct SubscribeRequest<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub user: &'a str,
    pub channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a RawValue>,
    #[serde(flatten)]
    pub payload: Payload<'a>,
}

#[derive(Serialize)]
pub(crate) struct PublishRequest<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub user: &'a str,
    pub channel: &'a str,
    #[serde(flatten)]
    pub payload: Payload<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct RpcRequest<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub user: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    pub method: &'a str,
    #[serde(flatten)]
    pub payload: Payload<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a RawValue>,
}

#[derive(Serialize)]
pub(crate) struct SubRefreshRequest<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub user: &'a str,
    pub channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a RawValue>,
}

/// A request body.
pub(crate) fn encode<T: Serialize>(req: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(req).map_err(|e| format!("cannot encode the request: {e}"))
}

/// One JSON object of an answer, its fields still raw; `path` names it in messages.
pub(crate) struct Fields<'a> {
    path: String,
    map: BTreeMap<String, &'a RawValue>,
}

impl<'a> Fields<'a> {
    fn parse(path: String, raw: &'a RawValue) -> Result<Self, String> {
        let map = serde_json::from_str::<BTreeMap<String, &'a RawValue>>(raw.get())
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(Self { path, map })
    }

    /// A field's raw value; `null` reads as absent.
    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.map.get(key).copied().filter(|v| v.get() != "null")
    }

    fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn get<T: DeserializeOwned + Default>(&self, key: &str) -> Result<T, String> {
        match self.raw(key) {
            None => Ok(T::default()),
            Some(v) => {
                serde_json::from_str(v.get()).map_err(|e| format!("{}: {e}", self.name(key)))
            }
        }
    }

    fn object(&self, key: &str) -> Result<Option<Fields<'a>>, String> {
        self.raw(key)
            .map(|v| Fields::parse(self.name(key), v))
            .transpose()
    }

    /// `expire_at`: 0 = never.
    fn expire_at(&self) -> Result<Option<i64>, String> {
        let v: i64 = self.get("expire_at")?;
        Ok((v != 0).then_some(v))
    }

    /// A payload from its JSON field and its `b64` field, by the generation's rule (D4).
    fn payload(
        &self,
        style: BackendStyle,
        ctx: &ConnContext,
        pick: Pick,
        field: &str,
    ) -> Result<Option<Bytes>, String> {
        let json = self.raw(field).map(|v| v.get().as_bytes());
        let b64: String = self.get(&format!("b64{field}"))?;
        payload::pick(style, ctx, pick, json, Some(b64.as_str()), field)
            .map_err(|e| format!("{}.{e}", self.path))
    }

    /// A raw JSON field kept as bytes (`meta`).
    fn raw_bytes(&self, key: &str) -> Option<Bytes> {
        self.raw(key)
            .map(|v| Bytes::copy_from_slice(v.get().as_bytes()))
    }
}

/// What an answer says, after the envelope is checked.
pub(crate) enum Answer<'a> {
    /// `error` or `disconnect`.
    Refused(BackendError),
    Result(Fields<'a>),
    /// Neither a result nor a refusal.
    Nothing,
}

/// Reads the envelope. `refusals`: whether `disconnect` and `error` are honoured (refresh and
/// sub_refresh ignore them). An empty or non-JSON body, or a non-object, is an error.
pub(crate) fn answer(body: &[u8], refusals: bool) -> Result<Answer<'_>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("empty response body".to_string());
    }
    let root: &RawValue =
        serde_json::from_slice(body).map_err(|e| format!("response body is not JSON: {e}"))?;
    if root.get() == "null" {
        return Ok(Answer::Nothing);
    }
    let env = Fields::parse("response".to_string(), root)?;
    if refusals {
        if let Some(d) = env.object("disconnect")? {
            let code: u32 = d.get("code")?;
            let code = u16::try_from(code)
                .map_err(|_| format!("{}: {code} is out of range", d.name("code")))?;
            return Ok(Answer::Refused(BackendError::Disconnect {
                code,
                reason: d.get("reason")?,
                reconnect: d.get("reconnect")?,
            }));
        }
        if let Some(e) = env.object("error")? {
            return Ok(Answer::Refused(BackendError::Error {
                code: e.get("code")?,
                message: e.get("message")?,
                temporary: e.get("temporary")?,
            }));
        }
    }
    match env.object("result")? {
        Some(r) => Ok(Answer::Result(r)),
        None => Ok(Answer::Nothing),
    }
}

fn overrides(f: Option<Fields<'_>>) -> Result<SubOverride, String> {
    let Some(f) = f else {
        return Ok(SubOverride::default());
    };
    let one = |key: &str| -> Result<Option<bool>, String> {
        f.object(key)?.map(|v| v.get::<bool>("value")).transpose()
    };
    Ok(SubOverride {
        presence: one("presence")?,
        join_leave: one("join_leave")?,
        force_recovery: one("force_recovery")?,
        force_positioning: one("force_positioning")?,
        force_push_join_leave: one("force_push_join_leave")?,
    })
}

pub(crate) fn connect_result(
    style: BackendStyle,
    ctx: &ConnContext,
    r: &Fields<'_>,
) -> Result<ConnectGrant, String> {
    let mut subs: Vec<ServerSub> = r
        .get::<Vec<String>>("channels")?
        .into_iter()
        .map(|channel| ServerSub {
            channel,
            ..ServerSub::default()
        })
        .collect();
    if let Some(map) = r.raw("subs") {
        let map = serde_json::from_str::<BTreeMap<String, Option<&RawValue>>>(map.get())
            .map_err(|e| format!("{}: {e}", r.name("subs")))?;
        for (channel, opts) in map {
            let path = format!("{}[{channel:?}]", r.name("subs"));
            let sub = match opts.filter(|v| v.get() != "null") {
                None => ServerSub {
                    channel,
                    ..ServerSub::default()
                },
                Some(v) => {
                    let o = Fields::parse(path, v)?;
                    ServerSub {
                        info: o.payload(style, ctx, Pick::Standard, "info")?,
                        data: o.payload(style, ctx, Pick::Standard, "data")?,
                        overrides: overrides(o.object("override")?)?,
                        channel,
                    }
                }
            };
            // A channel in both lists takes its `subs` options.
            match subs.iter_mut().find(|s| s.channel == sub.channel) {
                Some(s) => *s = sub,
                None => subs.push(sub),
            }
        }
    }
    Ok(ConnectGrant {
        user: r.get("user")?,
        expire_at: r.expire_at()?,
        info: r.payload(style, ctx, Pick::Standard, "info")?,
        data: r.payload(style, ctx, Pick::Standard, "data")?,
        subs,
        meta: r.raw_bytes("meta"),
    })
}

pub(crate) fn refresh_result(
    style: BackendStyle,
    ctx: &ConnContext,
    r: &Fields<'_>,
) -> Result<RefreshGrant, String> {
    Ok(RefreshGrant {
        expired: r.get("expired")?,
        expire_at: r.expire_at()?,
        info: r.payload(style, ctx, Pick::Standard, "info")?,
        meta: r.raw_bytes("meta"),
    })
}

pub(crate) fn subscribe_result(
    style: BackendStyle,
    ctx: &ConnContext,
    r: &Fields<'_>,
) -> Result<SubscribeGrant, String> {
    Ok(SubscribeGrant {
        info: r.payload(style, ctx, Pick::Standard, "info")?,
        data: r.payload(style, ctx, Pick::Standard, "data")?,
        expire_at: r.expire_at()?,
        overrides: overrides(r.object("override")?)?,
    })
}

pub(crate) fn publish_result(
    style: BackendStyle,
    ctx: &ConnContext,
    r: &Fields<'_>,
) -> Result<PublishGrant, String> {
    Ok(PublishGrant {
        data: r.payload(style, ctx, Pick::Publish, "data")?,
        skip_history: r.get("skip_history")?,
    })
}

pub(crate) fn sub_refresh_result(
    style: BackendStyle,
    ctx: &ConnContext,
    r: &Fields<'_>,
) -> Result<SubRefreshGrant, String> {
    Ok(SubRefreshGrant {
        expired: r.get("expired")?,
        expire_at: r.expire_at()?,
        info: r.payload(style, ctx, Pick::Standard, "info")?,
    })
}

pub(crate) fn rpc_result(
    style: BackendStyle,
    ctx: &ConnContext,
    r: &Fields<'_>,
) -> Result<Option<Bytes>, String> {
    r.payload(style, ctx, Pick::Standard, "data")
}

/// Fuzz entry (FUZZING.md, target `proxy_response`): reads `body` as the answer of every call
/// kind and both key styles, as [`super::HttpProxy`] does; how many of the decoders accepted it.
#[doc(hidden)]
pub fn fuzz_answer(body: &[u8], binary: bool) -> usize {
    let ctx = ConnContext {
        client: std::sync::Arc::from("c1"),
        transport: "websocket",
        encoding: if binary {
            rotor_protocol::Encoding::Protobuf
        } else {
            rotor_protocol::Encoding::Json
        },
        generation: rotor_protocol::Generation::V2,
        user: "u".to_string(),
        meta: None,
        headers: std::sync::Arc::from(Vec::new()),
        emulated_headers: std::sync::Arc::from(Vec::new()),
    };
    let mut ok = 0;
    for refusals in [true, false] {
        let Ok(Answer::Result(r)) = answer(body, refusals) else {
            continue;
        };
        for style in [BackendStyle::Legacy, BackendStyle::Modern] {
            ok += usize::from(connect_result(style, &ctx, &r).is_ok());
            ok += usize::from(refresh_result(style, &ctx, &r).is_ok());
            ok += usize::from(subscribe_result(style, &ctx, &r).is_ok());
            ok += usize::from(publish_result(style, &ctx, &r).is_ok());
            ok += usize::from(sub_refresh_result(style, &ctx, &r).is_ok());
            ok += usize::from(rpc_result(style, &ctx, &r).is_ok());
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::{Encoding, Generation};
    use std::sync::Arc;

    fn ctx(encoding: Encoding) -> ConnContext {
        ConnContext {
            client: Arc::from("c1"),
            transport: "websocket",
            encoding,
            generation: Generation::V2,
            user: "u".to_string(),
            meta: None,
            headers: Arc::from(Vec::new()),
            emulated_headers: Arc::from(Vec::new()),
        }
    }

    fn result(body: &str) -> Result<ConnectGrant, String> {
        match answer(body.as_bytes(), true)? {
            Answer::Result(r) => connect_result(BackendStyle::Modern, &ctx(Encoding::Json), &r),
            _ => Err("no result".into()),
        }
    }

    #[test]
    fn payloads_are_verbatim_json_or_base64() {
        let p = Payload::new(false, Some(b" {\"a\": [1, 2]} ")).unwrap_or_default();
        assert_eq!(p.data.map(|d| d.get()), Some("{\"a\": [1, 2]}"));
        let p = Payload::new(true, Some(b"\x00\x01")).unwrap_or_default();
        assert_eq!(p.b64data.as_deref(), Some("AAE="));
        assert!(Payload::new(false, Some(b"{broken")).is_err());
        let p = Payload::new(false, Some(b"")).unwrap_or_default();
        assert!(p.data.is_none() && p.b64data.is_none());
    }

    #[test]
    fn envelope_order_is_disconnect_error_result() {
        let body = br#"{"result":{"user":"x"},"error":{"code":1000,"message":"no"},
            "disconnect":{"code":4000,"reason":"bye","reconnect":true}}"#;
        match answer(body, true) {
            Ok(Answer::Refused(BackendError::Disconnect {
                code: 4000,
                reason,
                reconnect: true,
            })) => assert_eq!(reason, "bye"),
            _ => panic!("disconnect expected"),
        }
        let body =
            br#"{"result":{"user":"x"},"error":{"code":1000,"message":"no","temporary":true}}"#;
        assert!(matches!(
            answer(body, true),
            Ok(Answer::Refused(BackendError::Error {
                code: 1000,
                temporary: true,
                ..
            }))
        ));
        assert!(matches!(answer(body, false), Ok(Answer::Result(_))));
        assert!(matches!(answer(b"{}", true), Ok(Answer::Nothing)));
        assert!(matches!(answer(b"null", true), Ok(Answer::Nothing)));
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        let err = |b: &str| result(b).err().unwrap_or_default();
        assert_eq!(err(""), "empty response body");
        assert!(err("<html>").starts_with("response body is not JSON"));
        assert!(err("[1]").starts_with("response: invalid type"));
        assert!(err(r#"{"result":{"user":5}}"#).starts_with("response.result.user: invalid type"));
        assert!(err(r#"{"result":{"expire_at":"x"}}"#).starts_with("response.result.expire_at"));
        assert!(err(r#"{"result":{"b64info":"%%"}}"#).starts_with("response.result.b64info"));
        assert!(err(r#"{"error":{"code":-1}}"#).starts_with("response.error.code"));
        assert!(err(r#"{"disconnect":{"code":70000}}"#).contains("out of range"));
    }

    #[test]
    fn connect_result_reads_every_field() {
        let g = result(
            r#"{"result":{"user":"42","expire_at":1700000000,"info":{"n":1},"data":"hi",
            "channels":["a","b"],"meta":{"m":true},"unknown":1,
            "subs":{"b":{"info":{"i":2},"b64data":"eA==","override":{"presence":{"value":true},
            "join_leave":{"value":false},"force_recovery":null}},"c":{}}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(g.user, "42");
        assert_eq!(g.expire_at, Some(1_700_000_000));
        assert_eq!(g.info.as_deref(), Some(&b"{\"n\":1}"[..]));
        assert_eq!(g.data.as_deref(), Some(&b"\"hi\""[..]));
        assert_eq!(g.meta.as_deref(), Some(&b"{\"m\":true}"[..]));
        let chans: Vec<&str> = g.subs.iter().map(|s| s.channel.as_str()).collect();
        assert_eq!(chans, ["a", "b", "c"]);
        let b = &g.subs[1];
        assert_eq!(b.info.as_deref(), Some(&b"{\"i\":2}"[..]));
        assert_eq!(b.data.as_deref(), Some(&b"x"[..]));
        assert_eq!(b.overrides.presence, Some(true));
        assert_eq!(b.overrides.join_leave, Some(false));
        assert_eq!(b.overrides.force_recovery, None);
        let g = result(r#"{"result":{"expire_at":0}}"#).unwrap_or_default();
        assert_eq!(g.expire_at, None);
        assert_eq!(g.user, "");
    }
}
