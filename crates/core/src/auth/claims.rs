//! Claims of a token whose signature has been verified, reduced to what a session needs.
//!
//! The payload text is parsed here only after [`super::TokenVerifier`] checked the signature.
//! Types are enforced (a wrong-typed `exp`, `sub`, `channels`, ... makes the token invalid:
//! no claim-type confusion), then `aud` / `iss` are compared, then the time claims, so a token
//! for another service is invalid (terminal) rather than expired (which invites a retry).
//! `audience_regex` / `issuer_regex` are matched the way Centrifugo 6 does: unanchored (a
//! pattern anchors itself with `^…$`), `aud` passing when any element matches.
//! `exp`/`nbf` failures are [`TokenError::Expired`]; everything else is
//! [`TokenError::Invalid`]. `user_id_claim` reads the user from another top-level claim the
//! way Centrifugo's gjson lookup does (strings as they are, integers as their digits).

use super::jws::parse_json;
use super::{invalid, TokenError};
use crate::backend::{ServerSub, SubOverride};
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// Claims of a verified connection token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectClaims {
    /// `sub` (or the `user_id_claim` claim): the user ID; `""` (anonymous) when absent.
    pub user: String,
    /// Effective connection expiry (unix seconds): `expire_at` when present (0 means the
    /// connection never expires, reported as `None`), otherwise `exp`; `None` = never.
    pub exp: Option<i64>,
    /// Connection info for `ClientInfo.conn_info`: the exact JSON text of `info`, or the
    /// decoded bytes of `b64info`, which wins when both are present.
    pub info: Option<Bytes>,
    /// `channels`: server-side subscriptions to make at connect.
    pub channels: Vec<String>,
    /// `subs` (v6): server-side subscriptions with their channel info, data and overrides;
    /// when present it wins over `channels`.
    pub subs: Vec<ServerSub>,
    /// The token has a non-empty `channel` claim. Modern Centrifugo (v4+) rejects such a
    /// connection token (it is a subscription token used in the wrong place); the v2
    /// session code applies that rule, the v1 code ignores the claim as 2.x did.
    pub has_channel_claim: bool,
    /// `meta` (Centrifugo v5+): the exact JSON text, to keep on the connection and never
    /// send to it. `None` when absent or `null`.
    pub meta: Option<Bytes>,
}

/// Claims of a verified subscription token. Equality checks against the connection
/// (client ID, channel, user) are left to the caller because their outcome codes differ
/// between protocol generations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeClaims {
    /// `client`: required by v1 (must equal the connection's client ID); optional in v2,
    /// where it must still match when present.
    pub client: Option<String>,
    /// `channel`: must equal the requested channel; `""` when absent (never matches).
    pub channel: String,
    /// `sub` (or the `user_id_claim` claim) when present; v2 requires it to equal the
    /// connection's user.
    pub user: Option<String>,
    /// Channel info (`chan_info`): exact JSON text of `info`, or decoded `b64info` (wins).
    pub info: Option<Bytes>,
    /// Effective subscription expiry (unix seconds): `expire_at` when present (0 → `None`),
    /// otherwise `None` when `eto` is true, otherwise `exp`. `None` = never expires.
    pub exp: Option<i64>,
    /// The raw `exp` claim (truncated to whole seconds), for callers that need the token's
    /// own lifetime rather than the subscription's.
    pub token_exp: Option<i64>,
    /// `data` / `b64data` (v6): sent in the subscribe reply.
    pub data: Option<Bytes>,
    /// `override` (v6): per-subscription presence, join/leave and recovery switches.
    pub overrides: SubOverride,
}

/// The post-signature checks one token block configures.
#[derive(Debug, Clone, Default)]
pub(super) struct ClaimRules {
    /// When non-empty, `aud` must be this string or an array holding it.
    pub audience: String,
    /// When non-empty, `iss` must equal it.
    pub issuer: String,
    /// When non-empty, the claim holding the user ID instead of `sub`.
    pub user_id_claim: String,
    /// When set, one element of `aud` must match (unanchored unless the pattern anchors
    /// itself, as Centrifugo 6 matches).
    pub audience_regex: Option<regex::Regex>,
    /// When set, `iss` must match (unanchored unless anchored).
    pub issuer_regex: Option<regex::Regex>,
}

impl ClaimRules {
    /// `aud` / `iss` against the configured values.
    fn check_aud_iss(
        &self,
        aud: Option<&RawValue>,
        iss: Option<&RawValue>,
    ) -> Result<(), TokenError> {
        if !self.audience.is_empty() && !audience_contains(aud, &self.audience) {
            return Err(invalid("audience mismatch"));
        }
        if !self.issuer.is_empty() && !issuer_is(iss, &self.issuer) {
            return Err(invalid("issuer mismatch"));
        }
        if let Some(re) = &self.audience_regex {
            if !audience_matches(aud, re) {
                return Err(invalid("no aud element matches audience_regex"));
            }
        }
        if let Some(re) = &self.issuer_regex {
            let iss = iss.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
            if !iss.is_some_and(|s| re.is_match(&s)) {
                return Err(invalid("iss does not match issuer_regex"));
            }
        }
        Ok(())
    }

    /// The user from `user_id_claim` when configured, else `sub`.
    fn user(&self, payload: &str, sub: Option<String>) -> Result<Option<String>, TokenError> {
        if self.user_id_claim.is_empty() {
            return Ok(sub);
        }
        claim_as_text(payload, &self.user_id_claim)
    }

    /// Connection claims from a verified payload at `now` (unix seconds). `check_exp =
    /// false` implements `client_insecure` (`exp` ignored, `nbf` still checked).
    pub fn connect(
        &self,
        payload: &str,
        now: i64,
        check_exp: bool,
    ) -> Result<ConnectClaims, TokenError> {
        let wire: ConnectWire<'_> = parse_json(payload, "claims")?;
        self.check_aud_iss(wire.aud, wire.iss)?;
        let info = pick_info(wire.info, wire.b64info.as_deref())?;
        let token_exp = wire.exp.map(|d| d.0);
        if check_exp {
            check_exp_claim(token_exp, now)?;
        }
        check_nbf_claim(wire.nbf.map(|d| d.0), now)?;
        let exp = match wire.expire_at {
            Some(NumericDate(0)) => None,
            Some(NumericDate(at)) => Some(at),
            None => token_exp,
        };
        let mut subs = Vec::new();
        for (channel, sub) in wire.subs.unwrap_or_default() {
            subs.push(ServerSub {
                info: pick_info(sub.info, sub.b64info.as_deref())?,
                data: pick_payload(sub.data, sub.b64data.as_deref(), "bad base64 in b64data")?,
                overrides: sub
                    .overrides
                    .map(OverrideWire::into_override)
                    .unwrap_or_default(),
                channel,
            });
        }
        Ok(ConnectClaims {
            user: self.user(payload, wire.sub)?.unwrap_or_default(),
            exp,
            info,
            channels: wire.channels.unwrap_or_default(),
            subs,
            has_channel_claim: wire.channel.is_some_and(|c| !c.is_empty()),
            meta: wire.meta.map(raw_bytes),
        })
    }

    /// Subscription claims from a verified payload at `now`. `exp` and `nbf` are always
    /// checked, also for `eto` tokens, whose subscription then never expires.
    pub fn subscribe(&self, payload: &str, now: i64) -> Result<SubscribeClaims, TokenError> {
        let wire: SubscribeWire<'_> = parse_json(payload, "claims")?;
        self.check_aud_iss(wire.aud, wire.iss)?;
        let info = pick_info(wire.info, wire.b64info.as_deref())?;
        let token_exp = wire.exp.map(|d| d.0);
        check_exp_claim(token_exp, now)?;
        check_nbf_claim(wire.nbf.map(|d| d.0), now)?;
        let exp = match wire.expire_at {
            Some(NumericDate(0)) => None,
            Some(NumericDate(at)) => Some(at),
            None if wire.eto == Some(true) => None,
            None => token_exp,
        };
        Ok(SubscribeClaims {
            client: wire.client,
            channel: wire.channel.unwrap_or_default(),
            user: self.user(payload, wire.sub)?,
            info,
            exp,
            token_exp,
            data: pick_payload(wire.data, wire.b64data.as_deref(), "bad base64 in b64data")?,
            overrides: wire
                .overrides
                .map(OverrideWire::into_override)
                .unwrap_or_default(),
        })
    }
}

fn raw_bytes(raw: &RawValue) -> Bytes {
    Bytes::copy_from_slice(raw.get().as_bytes())
}

/// `b64info` (standard alphabet, padding optional) wins over `info`. An empty `b64info`
/// counts as absent, as in Centrifugo; a malformed one makes the token invalid.
fn pick_info(info: Option<&RawValue>, b64info: Option<&str>) -> Result<Option<Bytes>, TokenError> {
    pick_payload(info, b64info, "bad base64 in b64info")
}

/// A payload claim and its base64 twin, which wins when non-empty; `bad` names a malformed
/// base64 value.
fn pick_payload(
    json: Option<&RawValue>,
    b64: Option<&str>,
    bad: &'static str,
) -> Result<Option<Bytes>, TokenError> {
    match b64 {
        Some(b64) if !b64.is_empty() => STANDARD_PAD_INDIFFERENT
            .decode(b64)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|_| invalid(bad)),
        _ => Ok(json.map(raw_bytes)),
    }
}

/// One entry of the v6 `subs` connection claim.
#[derive(Deserialize)]
struct SubWire<'a> {
    #[serde(borrow)]
    info: Option<&'a RawValue>,
    b64info: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    b64data: Option<String>,
    #[serde(rename = "override")]
    overrides: Option<OverrideWire>,
}

/// `override`: each switch is `{"value": bool}` (a protobuf BoolValue in JSON).
#[derive(Deserialize)]
struct OverrideWire {
    presence: Option<BoolValue>,
    join_leave: Option<BoolValue>,
    force_recovery: Option<BoolValue>,
    force_positioning: Option<BoolValue>,
    force_push_join_leave: Option<BoolValue>,
}

#[derive(Deserialize)]
struct BoolValue {
    #[serde(default)]
    value: bool,
}

impl OverrideWire {
    fn into_override(self) -> SubOverride {
        let v = |b: Option<BoolValue>| b.map(|b| b.value);
        SubOverride {
            presence: v(self.presence),
            join_leave: v(self.join_leave),
            force_recovery: v(self.force_recovery),
            force_positioning: v(self.force_positioning),
            force_push_join_leave: v(self.force_push_join_leave),
        }
    }
}

/// `aud` (a string, or an array of strings) names `want`. Absent, `null` or any other
/// shape never matches. Parsed only when an audience is configured, so without one an
/// unusual `aud` stays ignored.
fn audience_contains(aud: Option<&RawValue>, want: &str) -> bool {
    match aud.map(|raw| serde_json::from_str::<Audience>(raw.get())) {
        Some(Ok(Audience::One(s))) => s == want,
        Some(Ok(Audience::Many(list))) => list.iter().any(|s| s == want),
        _ => false,
    }
}

/// Some element of `aud` (a string or an array of strings) matches `re`; absent, `null` or
/// another shape never matches.
fn audience_matches(aud: Option<&RawValue>, re: &regex::Regex) -> bool {
    match aud.map(|raw| serde_json::from_str::<Audience>(raw.get())) {
        Some(Ok(Audience::One(s))) => re.is_match(&s),
        Some(Ok(Audience::Many(list))) => list.iter().any(|s| re.is_match(s)),
        _ => false,
    }
}

/// `aud` as RFC 7519 §4.1.3 allows it.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Many(Vec<String>),
}

/// `iss` is exactly the string `want`; absent or not a string never matches.
fn issuer_is(iss: Option<&RawValue>, want: &str) -> bool {
    iss.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .is_some_and(|s| s == want)
}

/// `exp` must be strictly in the future (RFC 7519 §4.1.4).
fn check_exp_claim(exp: Option<i64>, now: i64) -> Result<(), TokenError> {
    match exp {
        Some(exp) if exp <= now => Err(TokenError::Expired),
        _ => Ok(()),
    }
}

/// `nbf` must not be in the future; Centrifugo reports a failure like expiry.
fn check_nbf_claim(nbf: Option<i64>, now: i64) -> Result<(), TokenError> {
    match nbf {
        Some(nbf) if nbf > now => Err(TokenError::Expired),
        _ => Ok(()),
    }
}

/// The top-level claim `name` as text, as Centrifugo's gjson lookup gives it: a string as
/// it is, an integer as its digits, another number in plain decimal, `true`/`false`, an
/// object or array as its JSON text; absent or `null` → `None`. The first occurrence wins.
fn claim_as_text(payload: &str, name: &str) -> Result<Option<String>, TokenError> {
    let raw = parse_json::<FirstClaim<'_>>(payload, "claims")?;
    let Some(raw) = raw.find(name) else {
        return Ok(None);
    };
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'"') => Some(
            serde_json::from_str::<String>(text).map_err(|_| invalid("malformed user claim"))?,
        ),
        Some(b'n') => None,
        Some(b'-' | b'0'..=b'9') => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.bytes().all(|b| b.is_ascii_digit()) {
                Some(text.to_owned())
            } else {
                let v: f64 =
                    serde_json::from_str(text).map_err(|_| invalid("malformed user claim"))?;
                Some(v.to_string())
            }
        }
        _ => Some(text.to_owned()),
    })
}

/// The claims object as (name, raw value) pairs in document order.
struct FirstClaim<'a>(Vec<(String, &'a RawValue)>);

impl<'a> FirstClaim<'a> {
    fn find(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for FirstClaim<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;

        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = FirstClaim<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claims object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    pairs.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(FirstClaim(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor)
    }
}

/// Connection claims as they appear on the wire. Unknown claims (`iat`, `jti`, `caps`,
/// ...) are ignored; JSON `null` counts as absent. `aud` and `iss` are kept raw and
/// interpreted only when an audience / issuer is configured.
#[derive(Deserialize)]
pub(super) struct ConnectWire<'a> {
    sub: Option<String>,
    #[serde(borrow)]
    aud: Option<&'a RawValue>,
    #[serde(borrow)]
    iss: Option<&'a RawValue>,
    #[serde(borrow)]
    info: Option<&'a RawValue>,
    b64info: Option<String>,
    channels: Option<Vec<String>>,
    #[serde(borrow)]
    subs: Option<std::collections::BTreeMap<String, SubWire<'a>>>,
    channel: Option<String>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    expire_at: Option<NumericDate>,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
}

/// Subscription claims as they appear on the wire (2.x and v4+ union).
#[derive(Deserialize)]
struct SubscribeWire<'a> {
    sub: Option<String>,
    #[serde(borrow)]
    aud: Option<&'a RawValue>,
    #[serde(borrow)]
    iss: Option<&'a RawValue>,
    client: Option<String>,
    channel: Option<String>,
    #[serde(borrow)]
    info: Option<&'a RawValue>,
    b64info: Option<String>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    expire_at: Option<NumericDate>,
    eto: Option<bool>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    b64data: Option<String>,
    #[serde(rename = "override")]
    overrides: Option<OverrideWire>,
}

/// A JSON number of seconds; fractions are truncated toward zero and out-of-range values
/// saturate. Strings, booleans and other types are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;

        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(i64::try_from(v).unwrap_or(i64::MAX)))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                // `as` truncates toward zero and saturates; JSON has no NaN/inf.
                Ok(NumericDate(v as i64))
            }
        }

        deserializer.deserialize_any(NumericDateVisitor)
    }
}

/// Unverified `iss` / `aud`, for a key set that must choose among configured endpoints.
pub(super) fn unverified_iss_aud(payload: &str) -> (Option<String>, Vec<String>) {
    #[derive(Deserialize)]
    struct IssAud {
        iss: Option<String>,
        aud: Option<Audience>,
    }
    match parse_json::<IssAud>(payload, "claims") {
        Ok(IssAud { iss, aud }) => (
            iss,
            match aud {
                Some(Audience::One(a)) => vec![a],
                Some(Audience::Many(list)) => list,
                None => Vec::new(),
            },
        ),
        Err(_) => (None, Vec::new()),
    }
}
