//! JWT verification for connection and subscription tokens.
//!
//! Centrifugo clients authenticate with a compact JWS (`header.payload.signature`)
//! signed by the application backend; private-channel subscriptions carry a second,
//! per-channel token. This module verifies both by hand: it splits the token,
//! base64url-decodes each segment (padding tolerated), pins the header `alg` to the key
//! family that is configured, checks the MAC in constant time, and only then parses and
//! type-checks the claims and looks at time claims.
//!
//! Invariants:
//! * Nothing here panics, whatever the input; every failure is a [`TokenError`].
//! * A token is never trusted before its signature is verified: claims are decoded only
//!   after the MAC matched, so an unsigned token can neither be reported as expired nor
//!   reach the claim parser.
//! * `alg` comes from the token but only selects among keys the server holds; `none`,
//!   unknown names, and asymmetric algorithms without a matching key are rejected, so an
//!   HMAC secret can never be used to "verify" an RS*/ES* token (algorithm confusion).
//! * Input size and JSON nesting are bounded ([`MAX_TOKEN_LEN`], 127 levels) before any
//!   recursive parsing, so hostile tokens cannot exhaust memory or the stack.
//! * Expiry and not-before failures are both [`TokenError::Expired`] (Centrifugo reports
//!   both as error 109); everything else is [`TokenError::Invalid`].

use base64::engine::general_purpose::{
    STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT,
};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Sha256, Sha384, Sha512};
use std::fmt;

/// Longest token accepted, in bytes. Real tokens are a few hundred bytes; the cap keeps a
/// hostile client from making the server decode and hash megabytes per attempt.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Deepest JSON nesting accepted in a token's header or claims (the whole document
/// counts, so `info` itself may nest one level less). Equal to the deepest nesting
/// serde_json's default recursion limit admits, so any `info` accepted here can later be
/// parsed by serde_json.
const MAX_JSON_DEPTH: usize = 127;

/// Why a token was refused. The caller maps these to protocol codes: `Expired` is error
/// 109 (the client fetches a fresh token and retries), `Invalid` is terminal (close
/// 3002/3500 on connect, error 103 on subscribe).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// `exp` is not in the future, or `nbf` is still in the future.
    #[error("token expired")]
    Expired,
    /// Anything else: malformed token, unsupported `alg`, bad signature, bad claim type.
    /// The message is for logs; it never echoes token content.
    #[error("invalid token: {0}")]
    Invalid(String),
}

fn invalid(reason: &str) -> TokenError {
    TokenError::Invalid(reason.to_owned())
}

/// Claims of a verified connection token, already reduced to what the session needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectClaims {
    /// `sub`: the user ID; `""` (anonymous) when absent.
    pub user: String,
    /// Effective connection expiry (unix seconds): `expire_at` when present (0 means the
    /// connection never expires, reported as `None`), otherwise `exp`; `None` = never.
    pub exp: Option<i64>,
    /// Connection info for `ClientInfo.conn_info`: the exact JSON text of `info`, or the
    /// decoded bytes of `b64info`, which wins when both are present.
    pub info: Option<Bytes>,
    /// `channels`: server-side subscriptions to make at connect.
    pub channels: Vec<String>,
    /// The token has a non-empty `channel` claim. Modern Centrifugo (v4+) rejects such a
    /// connection token (it is a subscription token used in the wrong place); the v2
    /// session code applies that rule, the v1 code ignores the claim as 2.x did.
    pub has_channel_claim: bool,
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
    /// `sub` when present; v2 requires it to equal the connection's user.
    pub user: Option<String>,
    /// Channel info (`chan_info`): exact JSON text of `info`, or decoded `b64info` (wins).
    pub info: Option<Bytes>,
    /// Effective subscription expiry (unix seconds): `expire_at` when present (0 → `None`),
    /// otherwise `None` when `eto` is true, otherwise `exp`. `None` = never expires.
    pub exp: Option<i64>,
    /// The raw `exp` claim (truncated to whole seconds), for callers that need the token's
    /// own lifetime rather than the subscription's.
    pub token_exp: Option<i64>,
}

/// HMAC variants of JWS (RFC 7518 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HmacAlg {
    Hs256,
    Hs384,
    Hs512,
}

impl HmacAlg {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "HS384" => Some(Self::Hs384),
            "HS512" => Some(Self::Hs512),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
        }
    }

    fn sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Hs256 => mac_sign::<Hmac<Sha256>>(key, data),
            Self::Hs384 => mac_sign::<Hmac<Sha384>>(key, data),
            Self::Hs512 => mac_sign::<Hmac<Sha512>>(key, data),
        }
    }

    /// Constant-time comparison via `verify_slice`; a tag of the wrong length fails.
    fn verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        match self {
            Self::Hs256 => mac_verify::<Hmac<Sha256>>(key, data, tag),
            Self::Hs384 => mac_verify::<Hmac<Sha384>>(key, data, tag),
            Self::Hs512 => mac_verify::<Hmac<Sha512>>(key, data, tag),
        }
    }
}

fn mac_sign<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            Mac::update(&mut mac, data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length; unreachable in practice, but never panic.
        Err(_) => Vec::new(),
    }
}

fn mac_verify<M: Mac + KeyInit>(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            Mac::update(&mut mac, data);
            mac.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

/// The key family a header `alg` asks for. Only HMAC has key material today; the other
/// families are recognised so that adding RSA/ECDSA/JWKS keys later only means filling
/// in their arms in [`TokenVerifier::verified_payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlgFamily {
    Hmac(HmacAlg),
    Rsa,
    RsaPss,
    Ecdsa,
    EdDsa,
}

impl AlgFamily {
    /// Case-sensitive, as RFC 7518 names are; `none` and unknown names → `None`.
    fn from_name(name: &str) -> Option<Self> {
        if let Some(h) = HmacAlg::from_name(name) {
            return Some(Self::Hmac(h));
        }
        match name {
            "RS256" | "RS384" | "RS512" => Some(Self::Rsa),
            "PS256" | "PS384" | "PS512" => Some(Self::RsaPss),
            "ES256" | "ES384" | "ES512" => Some(Self::Ecdsa),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

/// HMAC secret bytes; a newtype so `Debug` can never print it.
#[derive(Clone)]
struct HmacKey(Vec<u8>);

/// Verifies connection and subscription tokens against the server's configured keys.
///
/// Built once from configuration and shared by all sessions (it is immutable). Key
/// families are optional fields so RSA/ECDSA/JWKS can be added without touching callers;
/// a token whose `alg` needs a family that is not configured is invalid.
#[derive(Clone)]
pub struct TokenVerifier {
    hmac: Option<HmacKey>,
    /// `token_audience`: when non-empty, `aud` must be this string or an array holding it.
    audience: String,
    /// `token_issuer`: when non-empty, `iss` must equal it.
    issuer: String,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hmac", &self.hmac.as_ref().map(|_| "<redacted>"))
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl TokenVerifier {
    /// Verifier holding `token_hmac_secret_key`. An empty secret means "no HMAC key", so
    /// every token is invalid rather than accepting tokens signed with an empty key.
    #[must_use]
    pub fn new(hmac_secret: &str) -> Self {
        let hmac = if hmac_secret.is_empty() {
            None
        } else {
            Some(HmacKey(hmac_secret.as_bytes().to_vec()))
        };
        Self {
            hmac,
            audience: String::new(),
            issuer: String::new(),
        }
    }

    /// The verifier the node uses for client tokens: the HMAC secret plus the
    /// `token_audience` / `token_issuer` checks of `cfg`.
    #[must_use]
    pub fn from_config(cfg: &crate::config::NodeConfig) -> Self {
        Self::new(&cfg.token_hmac_secret_key)
            .with_audience(&cfg.token_audience)
            .with_issuer(&cfg.token_issuer)
    }

    /// Requires `aud` to contain `audience` (RFC 7519 §4.1.3: a string or an array of
    /// strings); a token without `aud` is then invalid. Empty = no check.
    #[must_use]
    pub fn with_audience(mut self, audience: &str) -> Self {
        audience.clone_into(&mut self.audience);
        self
    }

    /// Requires `iss` to equal `issuer` exactly; a token without `iss` is then invalid.
    /// Empty = no check.
    #[must_use]
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        issuer.clone_into(&mut self.issuer);
        self
    }

    /// `aud` / `iss` against the configured values. Run before the time claims, as
    /// Centrifugo does, so a token meant for another service is invalid (terminal) rather
    /// than expired (which invites the client to fetch a fresh one and retry).
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
        Ok(())
    }

    /// Verifies a connection token at `now_unix` (seconds).
    ///
    /// `check_exp = false` implements `client_insecure`, which ignores `exp`; `nbf` is
    /// checked regardless. `exp` is checked against the raw claim even when `expire_at`
    /// overrides the connection's effective expiry.
    ///
    /// # Errors
    /// [`TokenError::Expired`] for a stale `exp` (when checked) or a future `nbf`;
    /// [`TokenError::Invalid`] for every other failure.
    pub fn verify_connect(
        &self,
        token: &str,
        now_unix: i64,
        check_exp: bool,
    ) -> Result<ConnectClaims, TokenError> {
        let payload = self.verified_payload(token)?;
        let wire: ConnectWire<'_> = parse_json(&payload, "claims")?;
        self.check_aud_iss(wire.aud, wire.iss)?;
        let info = pick_info(wire.info, wire.b64info.as_deref())?;
        let token_exp = wire.exp.map(|d| d.0);
        if check_exp {
            check_exp_claim(token_exp, now_unix)?;
        }
        check_nbf_claim(wire.nbf.map(|d| d.0), now_unix)?;
        let exp = match wire.expire_at {
            Some(NumericDate(0)) => None,
            Some(NumericDate(at)) => Some(at),
            None => token_exp,
        };
        Ok(ConnectClaims {
            user: wire.sub.unwrap_or_default(),
            exp,
            info,
            channels: wire.channels.unwrap_or_default(),
            has_channel_claim: wire.channel.is_some_and(|c| !c.is_empty()),
        })
    }

    /// Verifies a subscription token at `now_unix` (seconds). `exp` and `nbf` are always
    /// checked here, also for `eto` ("expire token only") tokens, whose subscription then
    /// never expires.
    ///
    /// # Errors
    /// [`TokenError::Expired`] for a stale `exp` or a future `nbf`;
    /// [`TokenError::Invalid`] for every other failure.
    pub fn verify_subscribe(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<SubscribeClaims, TokenError> {
        let payload = self.verified_payload(token)?;
        let wire: SubscribeWire<'_> = parse_json(&payload, "claims")?;
        self.check_aud_iss(wire.aud, wire.iss)?;
        let info = pick_info(wire.info, wire.b64info.as_deref())?;
        let token_exp = wire.exp.map(|d| d.0);
        check_exp_claim(token_exp, now_unix)?;
        check_nbf_claim(wire.nbf.map(|d| d.0), now_unix)?;
        let exp = match wire.expire_at {
            Some(NumericDate(0)) => None,
            Some(NumericDate(at)) => Some(at),
            None if wire.eto == Some(true) => None,
            None => token_exp,
        };
        Ok(SubscribeClaims {
            client: wire.client,
            channel: wire.channel.unwrap_or_default(),
            user: wire.sub,
            info,
            exp,
            token_exp,
        })
    }

    /// Checks structure, header and signature; returns the decoded (still unparsed)
    /// claims text. Nothing from the payload is interpreted before the MAC matched.
    fn verified_payload(&self, token: &str) -> Result<String, TokenError> {
        if token.is_empty() {
            return Err(invalid("empty token"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected three dot-separated segments"));
        };
        let header_bytes = decode_segment(header_b64, "header")?;
        let header_text = utf8(header_bytes, "header")?;
        let header: Header = parse_json(&header_text, "header")?;
        let family = AlgFamily::from_name(&header.alg)
            .ok_or_else(|| invalid("unsupported or disabled algorithm"))?;
        let signature = decode_segment(sig_b64, "signature")?;
        // `header.payload` exactly as received: that is what the issuer signed.
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        match family {
            AlgFamily::Hmac(alg) => {
                let key = self
                    .hmac
                    .as_ref()
                    .ok_or_else(|| invalid("no HMAC secret configured"))?;
                if !alg.verify(&key.0, signing_input.as_bytes(), &signature) {
                    return Err(invalid("signature mismatch"));
                }
            }
            AlgFamily::Rsa | AlgFamily::RsaPss => return Err(invalid("no RSA key configured")),
            AlgFamily::Ecdsa => return Err(invalid("no ECDSA key configured")),
            AlgFamily::EdDsa => return Err(invalid("no EdDSA key configured")),
        }
        let payload_bytes = decode_segment(payload_b64, "payload")?;
        utf8(payload_bytes, "payload")
    }
}

/// Base64url, padding optional (some issuers pad; RFC 7515 says not to).
fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD_INDIFFERENT
        .decode(segment)
        .map_err(|_| TokenError::Invalid(format!("bad base64url in {what}")))
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, TokenError> {
    String::from_utf8(bytes).map_err(|_| TokenError::Invalid(format!("{what} is not UTF-8")))
}

/// Parses a JSON document after an iterative depth check. serde_json limits recursion
/// for typed fields itself, but values it skips (unknown claims, `info` captured as raw
/// text) are walked without a limit; the pre-check makes the bound uniform.
/// Only objects are accepted: serde would also map a JSON array onto a struct
/// positionally, which JWS headers and claims never are.
fn parse_json<'a, T: Deserialize<'a>>(text: &'a str, what: &str) -> Result<T, TokenError> {
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(TokenError::Invalid(format!("{what} is not a JSON object")));
    }
    if !json_depth_within(text.as_bytes(), MAX_JSON_DEPTH) {
        return Err(TokenError::Invalid(format!("{what} nested too deeply")));
    }
    serde_json::from_str(text).map_err(|_| TokenError::Invalid(format!("malformed {what} JSON")))
}

/// True when no `[`/`{` outside string literals nests deeper than `max`. Malformed JSON
/// may pass; the real parser rejects it afterwards.
fn json_depth_within(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// `b64info` (standard alphabet, padding optional) wins over `info`. An empty `b64info`
/// counts as absent, as in Centrifugo; a malformed one makes the token invalid.
fn pick_info(info: Option<&RawValue>, b64info: Option<&str>) -> Result<Option<Bytes>, TokenError> {
    match b64info {
        Some(b64) if !b64.is_empty() => STANDARD_PAD_INDIFFERENT
            .decode(b64)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|_| invalid("bad base64 in b64info")),
        _ => Ok(info.map(|raw| Bytes::copy_from_slice(raw.get().as_bytes()))),
    }
}

/// `aud` (a string, or an array of strings) names `want`. Absent, `null` or any other
/// shape never matches. Parsed only when an audience is configured, so without one an
/// unusual `aud` stays ignored as before.
fn audience_contains(aud: Option<&RawValue>, want: &str) -> bool {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    match aud.map(|raw| serde_json::from_str::<Aud>(raw.get())) {
        Some(Ok(Aud::One(s))) => s == want,
        Some(Ok(Aud::Many(list))) => list.iter().any(|s| s == want),
        _ => false,
    }
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

#[derive(Deserialize)]
struct Header {
    // `typ`, `kid` and other header parameters are not needed and are ignored.
    alg: String,
}

/// Connection claims as they appear on the wire. Unknown claims (`iat`, `jti`, `subs`,
/// `meta`, ...) are ignored; JSON `null` counts as absent. `aud` and `iss` are kept raw and
/// interpreted only when `token_audience` / `token_issuer` is configured.
#[derive(Deserialize)]
struct ConnectWire<'a> {
    sub: Option<String>,
    #[serde(borrow)]
    aud: Option<&'a RawValue>,
    #[serde(borrow)]
    iss: Option<&'a RawValue>,
    #[serde(borrow)]
    info: Option<&'a RawValue>,
    b64info: Option<String>,
    channels: Option<Vec<String>>,
    channel: Option<String>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    expire_at: Option<NumericDate>,
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

/// Signs `claims_json` (used verbatim as the payload) with HS256. For tests and the
/// `gentoken` tool; the server itself never issues tokens.
#[must_use]
pub fn sign_hs256(secret: &str, claims_json: &str) -> String {
    sign_with(HmacAlg::Hs256, secret, claims_json)
}

/// Signs `claims_json` (verbatim) with `alg` = `HS256`, `HS384` or `HS512`; `None` for any
/// other algorithm name. For tests and tooling.
#[must_use]
pub fn sign_hmac(alg: &str, secret: &str, claims_json: &str) -> Option<String> {
    HmacAlg::from_name(alg).map(|alg| sign_with(alg, secret, claims_json))
}

fn sign_with(alg: HmacAlg, secret: &str, claims_json: &str) -> String {
    let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, alg.name());
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
    let signature = alg.sign(secret.as_bytes(), token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "secret";
    const NOW: i64 = 1_700_000_000;

    fn b64(data: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(data)
    }

    /// Token with an arbitrary header, MAC'ed with `mac_alg` (to build confusion cases).
    fn token_with_header(header: &str, mac_alg: HmacAlg, secret: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = mac_alg.sign(secret.as_bytes(), input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(SECRET)
    }

    fn connect(claims: &str) -> Result<ConnectClaims, TokenError> {
        verifier().verify_connect(&sign_hs256(SECRET, claims), NOW, true)
    }

    fn subscribe(claims: &str) -> Result<SubscribeClaims, TokenError> {
        verifier().verify_subscribe(&sign_hs256(SECRET, claims), NOW)
    }

    fn is_invalid<T: fmt::Debug>(r: Result<T, TokenError>) -> bool {
        matches!(r, Err(TokenError::Invalid(_)))
    }

    #[test]
    fn valid_hs256_connect_token() {
        let claims = format!(
            r#"{{"sub":"42","exp":{},"info":{{"name":"Alice"}},"channels":["news","$chat"],"iat":1,"jti":"x","aud":"a","iss":"i"}}"#,
            NOW + 100
        );
        let c = connect(&claims).unwrap();
        assert_eq!(c.user, "42");
        assert_eq!(c.exp, Some(NOW + 100));
        assert_eq!(c.info.as_deref(), Some(&br#"{"name":"Alice"}"#[..]));
        assert_eq!(c.channels, vec!["news".to_string(), "$chat".to_string()]);
        assert!(!c.has_channel_claim);
    }

    #[test]
    fn minimal_connect_token_defaults() {
        let c = connect("{}").unwrap();
        assert_eq!(c, ConnectClaims::default());
        let c = connect(r#"{"sub":null,"info":null,"channels":null,"exp":null}"#).unwrap();
        assert_eq!(c, ConnectClaims::default());
    }

    #[test]
    fn valid_hs384_and_hs512() {
        for alg in ["HS256", "HS384", "HS512"] {
            let t = sign_hmac(alg, SECRET, r#"{"sub":"u"}"#).unwrap();
            assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "u");
            let t = sign_hmac(alg, SECRET, r#"{"client":"c","channel":"$x"}"#).unwrap();
            let s = verifier().verify_subscribe(&t, NOW).unwrap();
            assert_eq!(s.channel, "$x");
            assert_eq!(s.client.as_deref(), Some("c"));
        }
        assert_eq!(
            sign_hmac("HS256", SECRET, "{}").unwrap(),
            sign_hs256(SECRET, "{}")
        );
    }

    #[test]
    fn sign_hmac_rejects_unknown_alg() {
        assert_eq!(sign_hmac("RS256", SECRET, "{}"), None);
        assert_eq!(sign_hmac("none", SECRET, "{}"), None);
        assert_eq!(sign_hmac("hs256", SECRET, "{}"), None);
    }

    #[test]
    fn known_hs256_vector() {
        // Independently computed: HMAC-SHA256 over `header.payload` with key "secret".
        let t = sign_hs256(SECRET, r#"{"sub":"1234567890"}"#);
        let input = t.rsplit_once('.').unwrap().0;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"secret").unwrap();
        Mac::update(&mut mac, input.as_bytes());
        assert_eq!(
            t.rsplit_once('.').unwrap().1,
            b64(mac.finalize().into_bytes())
        );
        assert!(t.starts_with(&b64(r#"{"alg":"HS256","typ":"JWT"}"#)));
    }

    #[test]
    fn wrong_secret_is_invalid() {
        let t = sign_hs256("other", r#"{"sub":"42"}"#);
        assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
        assert!(is_invalid(verifier().verify_subscribe(&t, NOW)));
        // Mismatch across HMAC sizes: header says HS512, MAC is HS256.
        let t = token_with_header(r#"{"alg":"HS512"}"#, HmacAlg::Hs256, SECRET, "{}");
        assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
    }

    #[test]
    fn empty_secret_rejects_everything() {
        let v = TokenVerifier::new("");
        for alg in ["HS256", "HS384", "HS512"] {
            let t = sign_hmac(alg, "", r#"{"sub":"42"}"#).unwrap();
            assert!(is_invalid(v.verify_connect(&t, NOW, true)));
            assert!(is_invalid(v.verify_subscribe(&t, NOW)));
        }
        let t = sign_hs256(SECRET, "{}");
        assert!(is_invalid(v.verify_connect(&t, NOW, false)));
    }

    #[test]
    fn alg_none_is_invalid() {
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"42"}"#));
        assert!(is_invalid(verifier().verify_connect(&unsigned, NOW, true)));
        let unsigned2 = format!("{}.{}", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"42"}"#));
        assert!(is_invalid(verifier().verify_connect(&unsigned2, NOW, true)));
        let signed = token_with_header(r#"{"alg":"none"}"#, HmacAlg::Hs256, SECRET, "{}");
        assert!(is_invalid(verifier().verify_connect(&signed, NOW, true)));
    }

    #[test]
    fn asymmetric_and_unknown_algs_are_invalid_against_hmac_key() {
        for alg in [
            "RS256", "RS384", "RS512", "PS256", "ES256", "ES512", "EdDSA", "hs256", "HS1024", "",
            "HS256 ",
        ] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            // MAC'ed with the HMAC secret: classic RS256→HS256 confusion attempt.
            let t = token_with_header(&header, HmacAlg::Hs256, SECRET, r#"{"sub":"42"}"#);
            assert!(
                is_invalid(verifier().verify_connect(&t, NOW, true)),
                "{alg}"
            );
            assert!(is_invalid(verifier().verify_subscribe(&t, NOW)), "{alg}");
        }
    }

    #[test]
    fn header_shape() {
        // `typ` optional and unchecked; other parameters ignored.
        for header in [
            r#"{"alg":"HS256"}"#,
            r#"{"typ":"at+jwt","alg":"HS256","kid":"k1"}"#,
            " { \"alg\" : \"HS256\" } ",
        ] {
            let t = token_with_header(header, HmacAlg::Hs256, SECRET, r#"{"sub":"42"}"#);
            assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "42");
        }
        for header in [
            r#"{}"#,
            r#"{"alg":256}"#,
            r#"{"alg":null}"#,
            r#"["HS256"]"#,
            r#""HS256""#,
            r#"{"alg":"HS256","alg":"HS256"}"#,
            r#"{"alg":"HS256"} x"#,
            "not json",
        ] {
            let t = token_with_header(header, HmacAlg::Hs256, SECRET, "{}");
            assert!(
                is_invalid(verifier().verify_connect(&t, NOW, true)),
                "{header}"
            );
        }
    }

    #[test]
    fn signature_checked_before_time_claims() {
        let claims = format!(r#"{{"exp":{},"nbf":{}}}"#, NOW - 10, NOW + 10);
        let t = sign_hs256("wrong", &claims);
        assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
        assert!(is_invalid(verifier().verify_subscribe(&t, NOW)));
        assert_eq!(
            verifier().verify_subscribe(&sign_hs256(SECRET, &claims), NOW),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_payload_or_signature_is_invalid() {
        let t = sign_hs256(SECRET, r#"{"sub":"42"}"#);
        let (head, sig) = t.rsplit_once('.').unwrap();
        let header = head.split('.').next().unwrap();
        let forged = format!("{header}.{}.{sig}", b64(r#"{"sub":"admin"}"#));
        assert!(is_invalid(verifier().verify_connect(&forged, NOW, true)));
        // Truncated, empty and extended signatures.
        let short = format!("{head}.{}", &sig[..sig.len() - 4]);
        assert!(is_invalid(verifier().verify_connect(&short, NOW, true)));
        assert!(is_invalid(verifier().verify_connect(
            &format!("{head}."),
            NOW,
            true
        )));
        let long = format!("{head}.{sig}AAAA");
        assert!(is_invalid(verifier().verify_connect(&long, NOW, true)));
    }

    #[test]
    fn padded_segments_are_tolerated() {
        // Header and payload lengths chosen so each base64 segment needs padding.
        let header = r#"{"alg":"HS256"}"#; // 15 bytes → no pad; make it 16
        let header = format!("{header} ");
        let claims = r#"{"sub":"4"}"#; // 11 bytes → one '='
        let input = format!(
            "{}.{}",
            base64::engine::general_purpose::URL_SAFE.encode(&header),
            base64::engine::general_purpose::URL_SAFE.encode(claims)
        );
        assert!(input.contains('='));
        let sig = HmacAlg::Hs256.sign(SECRET.as_bytes(), input.as_bytes());
        let t = format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE.encode(sig)
        );
        assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "4");
    }

    #[test]
    fn connect_expiry() {
        assert_eq!(
            connect(&format!(r#"{{"exp":{NOW}}}"#)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            connect(&format!(r#"{{"exp":{}}}"#, NOW - 1)),
            Err(TokenError::Expired)
        );
        assert_eq!(connect(r#"{"exp":0}"#), Err(TokenError::Expired));
        assert_eq!(
            connect(&format!(r#"{{"exp":{}}}"#, NOW + 1)).unwrap().exp,
            Some(NOW + 1)
        );
        // client_insecure: exp ignored but still reported.
        let t = sign_hs256(SECRET, &format!(r#"{{"exp":{}}}"#, NOW - 1));
        assert_eq!(
            verifier().verify_connect(&t, NOW, false).unwrap().exp,
            Some(NOW - 1)
        );
    }

    #[test]
    fn float_exp_is_truncated() {
        let c = connect(&format!(r#"{{"exp":{}.9}}"#, NOW + 100)).unwrap();
        assert_eq!(c.exp, Some(NOW + 100));
        // NOW + 0.5 truncates to NOW, which is not in the future.
        assert_eq!(
            connect(&format!(r#"{{"exp":{NOW}.5}}"#)),
            Err(TokenError::Expired)
        );
        let c = connect(&format!(r#"{{"exp":{}e0}}"#, NOW + 7)).unwrap();
        assert_eq!(c.exp, Some(NOW + 7));
        // Huge values saturate instead of wrapping into the past.
        assert_eq!(connect(r#"{"exp":1e300}"#).unwrap().exp, Some(i64::MAX));
        assert_eq!(
            connect(r#"{"exp":18446744073709551615}"#).unwrap().exp,
            Some(i64::MAX)
        );
        assert_eq!(connect(r#"{"exp":-1.5}"#), Err(TokenError::Expired));
    }

    #[test]
    fn non_numeric_time_claims_are_invalid() {
        for claims in [
            r#"{"exp":"1800000000"}"#,
            r#"{"exp":true}"#,
            r#"{"exp":[1]}"#,
            r#"{"nbf":"0"}"#,
            r#"{"expire_at":{}}"#,
            r#"{"exp":1e400}"#,
        ] {
            assert!(is_invalid(connect(claims)), "{claims}");
            assert!(is_invalid(subscribe(claims)), "{claims}");
        }
    }

    #[test]
    fn nbf_in_future_is_expired_for_both_kinds() {
        let future = format!(r#"{{"nbf":{}}}"#, NOW + 1);
        assert_eq!(connect(&future), Err(TokenError::Expired));
        let t = sign_hs256(SECRET, &future);
        assert_eq!(
            verifier().verify_connect(&t, NOW, false),
            Err(TokenError::Expired)
        );
        assert_eq!(subscribe(&future), Err(TokenError::Expired));
        let now = format!(r#"{{"nbf":{NOW}}}"#);
        assert!(connect(&now).is_ok());
        assert!(subscribe(&now).is_ok());
    }

    #[test]
    fn subscribe_expiry_and_eto() {
        let s = subscribe(&format!(r#"{{"exp":{}}}"#, NOW + 60)).unwrap();
        assert_eq!((s.exp, s.token_exp), (Some(NOW + 60), Some(NOW + 60)));
        assert_eq!(
            subscribe(&format!(r#"{{"exp":{NOW}}}"#)),
            Err(TokenError::Expired)
        );
        // eto: the subscription never expires, but the token itself must be fresh.
        let s = subscribe(&format!(r#"{{"exp":{},"eto":true}}"#, NOW + 60)).unwrap();
        assert_eq!((s.exp, s.token_exp), (None, Some(NOW + 60)));
        assert_eq!(
            subscribe(&format!(r#"{{"exp":{},"eto":true}}"#, NOW - 1)),
            Err(TokenError::Expired)
        );
        let s = subscribe(&format!(r#"{{"exp":{},"eto":false}}"#, NOW + 60)).unwrap();
        assert_eq!(s.exp, Some(NOW + 60));
        assert!(is_invalid(subscribe(r#"{"eto":"true"}"#)));
        assert!(is_invalid(subscribe(r#"{"eto":1}"#)));
        let s = subscribe("{}").unwrap();
        assert_eq!(s, SubscribeClaims::default());
    }

    #[test]
    fn expire_at_overrides() {
        let c = connect(&format!(
            r#"{{"exp":{},"expire_at":{}}}"#,
            NOW + 10,
            NOW + 500
        ))
        .unwrap();
        assert_eq!(c.exp, Some(NOW + 500));
        let c = connect(&format!(r#"{{"exp":{},"expire_at":0}}"#, NOW + 10)).unwrap();
        assert_eq!(c.exp, None);
        // The token's own exp is still enforced.
        assert_eq!(
            connect(&format!(
                r#"{{"exp":{},"expire_at":{}}}"#,
                NOW - 1,
                NOW + 500
            )),
            Err(TokenError::Expired)
        );
        let s = subscribe(&format!(
            r#"{{"exp":{},"eto":true,"expire_at":{}}}"#,
            NOW + 10,
            NOW + 900
        ))
        .unwrap();
        assert_eq!((s.exp, s.token_exp), (Some(NOW + 900), Some(NOW + 10)));
        let s = subscribe(&format!(r#"{{"exp":{},"expire_at":0}}"#, NOW + 10)).unwrap();
        assert_eq!((s.exp, s.token_exp), (None, Some(NOW + 10)));
    }

    #[test]
    fn b64info_wins_and_is_validated() {
        let c = connect(r#"{"info":{"a":1},"b64info":"aGVsbG8="}"#).unwrap();
        assert_eq!(c.info.as_deref(), Some(&b"hello"[..]));
        let c = connect(r#"{"b64info":"AP8="}"#).unwrap();
        assert_eq!(c.info.as_deref(), Some(&[0u8, 0xff][..]));
        // Unpadded standard base64 is tolerated.
        let s = subscribe(r#"{"b64info":"aGk"}"#).unwrap();
        assert_eq!(s.info.as_deref(), Some(&b"hi"[..]));
        // Empty b64info counts as absent.
        let c = connect(r#"{"info":[1],"b64info":""}"#).unwrap();
        assert_eq!(c.info.as_deref(), Some(&b"[1]"[..]));
        for claims in [
            r#"{"b64info":"!!!"}"#,
            r#"{"b64info":"_-8"}"#,
            r#"{"b64info":"aGVsbG8=x"}"#,
            r#"{"b64info":5}"#,
            r#"{"b64info":["aGk="]}"#,
        ] {
            assert!(is_invalid(connect(claims)), "{claims}");
            assert!(is_invalid(subscribe(claims)), "{claims}");
        }
    }

    #[test]
    fn info_raw_text_preserved_byte_for_byte() {
        let raw = "{\"b\" : [1, 2.50, \"x\\u0041\", 1e3],\n \"a\":null, \"\u{e9}\":{}}";
        let claims = format!(r#"{{"sub":"u","info":{raw}  ,"exp":{}}}"#, NOW + 5);
        let c = connect(&claims).unwrap();
        assert_eq!(c.info.as_deref(), Some(raw.as_bytes()));
        let s = subscribe(&format!(r#"{{"info": {raw}}}"#)).unwrap();
        assert_eq!(s.info.as_deref(), Some(raw.as_bytes()));
        for scalar in ["\"text\"", "42", "true", "[]", "-0.0"] {
            let c = connect(&format!(r#"{{"info":{scalar}}}"#)).unwrap();
            assert_eq!(c.info.as_deref(), Some(scalar.as_bytes()));
        }
        assert_eq!(connect(r#"{"info":null}"#).unwrap().info, None);
    }

    #[test]
    fn claim_types_are_enforced() {
        for claims in [
            r#"{"sub":42}"#,
            r#"{"sub":true}"#,
            r#"{"sub":["a"]}"#,
            r#"{"channels":"news"}"#,
            r#"{"channels":["news",1]}"#,
            r#"{"channels":[null]}"#,
            r#"{"channel":7}"#,
            r#"{"sub":"a","sub":"b"}"#,
        ] {
            assert!(is_invalid(connect(claims)), "{claims}");
        }
        for claims in [
            r#"{"sub":42}"#,
            r#"{"client":1}"#,
            r#"{"channel":{"x":1}}"#,
            r#"{"channel":"a","channel":"b"}"#,
        ] {
            assert!(is_invalid(subscribe(claims)), "{claims}");
        }
        // Claims irrelevant to a token kind are not type-checked for it.
        assert!(connect(r#"{"client":1,"eto":"x","iat":"y","aud":["a"],"iss":7}"#).is_ok());
        assert!(subscribe(r#"{"channels":5,"jti":{}}"#).is_ok());
    }

    #[test]
    fn connect_channel_claim_is_exposed_not_rejected() {
        let c = connect(r#"{"sub":"u","channel":"$private"}"#).unwrap();
        assert!(c.has_channel_claim);
        assert!(!connect(r#"{"channel":""}"#).unwrap().has_channel_claim);
        assert!(!connect(r#"{"channel":null}"#).unwrap().has_channel_claim);
    }

    #[test]
    fn subscribe_claims_v1_and_v2() {
        let s = subscribe(&format!(
            r#"{{"client":"c-1","channel":"$gossips","info":{{"role":"x"}},"exp":{}}}"#,
            NOW + 30
        ))
        .unwrap();
        assert_eq!(s.client.as_deref(), Some("c-1"));
        assert_eq!(s.channel, "$gossips");
        assert_eq!(s.user, None);
        assert_eq!(s.info.as_deref(), Some(&br#"{"role":"x"}"#[..]));
        let s = subscribe(r#"{"sub":"","channel":"news"}"#).unwrap();
        assert_eq!(s.user.as_deref(), Some(""));
        assert_eq!(s.client, None);
    }

    #[test]
    fn oversized_token_is_invalid() {
        let padding = "x".repeat(MAX_TOKEN_LEN);
        let t = sign_hs256(SECRET, &format!(r#"{{"pad":"{padding}"}}"#));
        assert!(t.len() > MAX_TOKEN_LEN);
        assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
        assert!(is_invalid(verifier().verify_subscribe(&t, NOW)));
        let junk = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(is_invalid(verifier().verify_connect(&junk, NOW, true)));
        // Just under the limit is fine.
        let padding = "x".repeat(40_000);
        let t = sign_hs256(SECRET, &format!(r#"{{"sub":"u","pad":"{padding}"}}"#));
        assert!(t.len() <= MAX_TOKEN_LEN);
        assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "u");
    }

    #[test]
    fn deeply_nested_info_is_invalid_without_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for claims in [
            format!(r#"{{"info":{deep}}}"#),
            format!(r#"{{"unknown":{deep}}}"#),
            format!(r#"{{"channels":{deep}}}"#),
            format!(r#"{{"sub":"u","meta":{{"a":{deep}}}}}"#),
        ] {
            assert!(is_invalid(connect(&claims)));
            assert!(is_invalid(subscribe(&claims)));
        }
        let t = token_with_header(
            &format!(r#"{{"alg":"HS256","x":{deep}}}"#),
            HmacAlg::Hs256,
            SECRET,
            "{}",
        );
        assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
        // Brackets inside strings do not count.
        let c = connect(&format!(r#"{{"info":"{deep}"}}"#)).unwrap();
        assert_eq!(c.info.map(|b| b.len()), Some(20_002));
        // Moderate nesting is accepted.
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(connect(&format!(r#"{{"info":{ok}}}"#)).is_ok());
    }

    #[test]
    fn serde_recursion_limit_backs_up_the_depth_scan() {
        // Bypass the pre-scan: serde_json's own limit must reject typed deep values.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let text = format!(r#"{{"channels":{deep}}}"#);
        assert!(serde_json::from_str::<ConnectWire<'_>>(&text).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
        // Anything the scan admits, serde_json can parse as a Value.
        let edge = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(json_depth_within(edge.as_bytes(), MAX_JSON_DEPTH));
        assert!(serde_json::from_str::<serde_json::Value>(&edge).is_ok());
        let over = format!("[{edge}]");
        assert!(!json_depth_within(over.as_bytes(), MAX_JSON_DEPTH));
    }

    #[test]
    fn depth_scan_handles_escapes() {
        assert!(json_depth_within(br#"["\"[[[[", "\\"]"#, 1));
        assert!(!json_depth_within(br#"["\\", [[]]]"#, 2));
        assert!(json_depth_within(br#"{"a":[{}]}"#, 3));
        assert!(!json_depth_within(br#"{"a":[{}]}"#, 2));
    }

    #[test]
    fn garbage_is_invalid() {
        let good_header = b64(r#"{"alg":"HS256"}"#);
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            "abc".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            "a.b.c.d.e".into(),
            "Bearer x.y.z".into(),
            format!("{good_header}.%%%.abc"),
            format!("{good_header}.e30.***"),
            format!("{good_header}.e30.abc="),
            format!("{}.e30.", b64([0xffu8, 0xfe])),
            "\u{0}.\u{0}.\u{0}".into(),
            "é.é.é".into(),
        ];
        for t in &cases {
            assert!(is_invalid(verifier().verify_connect(t, NOW, true)), "{t:?}");
            assert!(is_invalid(verifier().verify_subscribe(t, NOW)), "{t:?}");
        }
        // Correctly signed but unusable payloads.
        for claims in [
            "",
            "null",
            "[]",
            "\"x\"",
            "42",
            "{",
            "{} {}",
            "{\"sub\":\"a\"",
            "nope",
            // Positional struct form that serde would otherwise accept.
            "[\"u\",null,null,null,null,null,null,null]",
            "[null,null,null,null,null,null,null,null,null]",
        ] {
            assert!(is_invalid(connect(claims)), "{claims:?}");
            assert!(is_invalid(subscribe(claims)), "{claims:?}");
        }
        // Signed payload that is not UTF-8.
        let input = format!("{good_header}.{}", b64([b'{', 0xff, b'}']));
        let sig = HmacAlg::Hs256.sign(SECRET.as_bytes(), input.as_bytes());
        let t = format!("{input}.{}", b64(sig));
        assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
    }

    #[test]
    fn debug_does_not_leak_secret() {
        let v = TokenVerifier::new("super-secret-value");
        let s = format!("{v:?}");
        assert!(!s.contains("super-secret-value"), "{s}");
        assert!(s.contains("redacted"));
        assert!(!format!("{:?}", TokenVerifier::new("")).contains("redacted"));
    }

    /// Tiny deterministic PRNG (xorshift64*) so the fuzz loop needs no extra crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let v = verifier();
        let alphabet: Vec<char> = "ABCxyz019-_+/=.. {}[]\":,eyJhbGciOiJIUzI1NiJ9\\\u{0}é\u{1F600}"
            .chars()
            .collect();
        let fragments = [
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"",
            "\"sub\"",
            "\"exp\"",
            "\"nbf\"",
            "\"eto\"",
            "\"info\"",
            "\"b64info\"",
            "\"channels\"",
            "\"channel\"",
            "\"client\"",
            "\"expire_at\"",
            "1",
            "-1",
            "1.5e9",
            "1e999",
            "true",
            "null",
            "\"aGk=\"",
            "\"!\"",
            " ",
            "\\u0000",
            "18446744073709551616",
        ];
        let valid = sign_hs256(SECRET, &format!(r#"{{"sub":"u","exp":{}}}"#, NOW + 9));
        for i in 0..20_000 {
            let token = match i % 3 {
                0 => {
                    let len = rng.below(120);
                    (0..len)
                        .map(|_| alphabet[rng.below(alphabet.len())])
                        .collect()
                }
                1 => {
                    let mut bytes = valid.clone().into_bytes();
                    for _ in 0..=rng.below(4) {
                        let at = rng.below(bytes.len());
                        bytes[at] = b"A_-.=e0xyz"[rng.below(10)];
                    }
                    bytes.truncate(bytes.len() - rng.below(6));
                    String::from_utf8(bytes).unwrap()
                }
                _ => {
                    // Correctly signed random claims: exercises the claim parser.
                    let n = rng.below(14);
                    let claims: String = (0..n).map(|_| rng.pick(&fragments)).collect();
                    let alg = rng.pick(&["HS256", "HS384", "HS512"]);
                    sign_hmac(alg, SECRET, &claims).unwrap()
                }
            };
            let now = NOW + rng.below(20) as i64 - 10;
            let _ = v.verify_connect(&token, now, rng.below(2) == 0);
            let _ = v.verify_subscribe(&token, now);
        }
        // The untouched token still verifies (sanity check for the mutation arm).
        assert!(v.verify_connect(&valid, NOW, true).is_ok());
    }

    fn aud_verifier() -> TokenVerifier {
        verifier().with_audience("rotor")
    }

    fn iss_verifier() -> TokenVerifier {
        verifier().with_issuer("https://issuer.example")
    }

    #[test]
    fn audience_as_string_or_array_containing_it_is_accepted() {
        for claims in [
            r#"{"sub":"u","aud":"rotor"}"#,
            r#"{"sub":"u","aud":["other","rotor"]}"#,
            r#"{"sub":"u","aud":["rotor"]}"#,
        ] {
            let t = sign_hs256(SECRET, claims);
            assert_eq!(
                aud_verifier().verify_connect(&t, NOW, true).unwrap().user,
                "u",
                "{claims}"
            );
            assert!(aud_verifier().verify_subscribe(&t, NOW).is_ok(), "{claims}");
        }
    }

    #[test]
    fn audience_mismatch_or_missing_is_invalid() {
        for claims in [
            r#"{"sub":"u","aud":"other"}"#,
            r#"{"sub":"u","aud":["other","x"]}"#,
            r#"{"sub":"u","aud":[]}"#,
            r#"{"sub":"u","aud":"Rotor"}"#,
            r#"{"sub":"u","aud":"rotor "}"#,
            r#"{"sub":"u"}"#,
            r#"{"sub":"u","aud":null}"#,
            r#"{"sub":"u","aud":1}"#,
            r#"{"sub":"u","aud":{"rotor":true}}"#,
            r#"{"sub":"u","aud":["rotor",1]}"#,
        ] {
            let t = sign_hs256(SECRET, claims);
            assert!(
                is_invalid(aud_verifier().verify_connect(&t, NOW, true)),
                "{claims}"
            );
            assert!(
                is_invalid(aud_verifier().verify_subscribe(&t, NOW)),
                "{claims}"
            );
        }
    }

    #[test]
    fn audience_is_checked_before_expiry() {
        // A token for another audience is refused as invalid even when it is also stale,
        // so the client is not invited to refresh it.
        let claims = format!(r#"{{"sub":"u","aud":"other","exp":{}}}"#, NOW - 10);
        let t = sign_hs256(SECRET, &claims);
        assert!(is_invalid(aud_verifier().verify_connect(&t, NOW, true)));
        assert!(is_invalid(aud_verifier().verify_subscribe(&t, NOW)));
        let claims = format!(r#"{{"sub":"u","aud":"rotor","exp":{}}}"#, NOW - 10);
        let t = sign_hs256(SECRET, &claims);
        assert_eq!(
            aud_verifier().verify_connect(&t, NOW, true),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn issuer_must_equal_exactly() {
        let ok = sign_hs256(SECRET, r#"{"sub":"u","iss":"https://issuer.example"}"#);
        assert_eq!(
            iss_verifier().verify_connect(&ok, NOW, true).unwrap().user,
            "u"
        );
        assert!(iss_verifier().verify_subscribe(&ok, NOW).is_ok());
        for claims in [
            r#"{"sub":"u","iss":"https://other.example"}"#,
            r#"{"sub":"u","iss":"https://issuer.example/"}"#,
            r#"{"sub":"u","iss":["https://issuer.example"]}"#,
            r#"{"sub":"u","iss":null}"#,
            r#"{"sub":"u"}"#,
        ] {
            let t = sign_hs256(SECRET, claims);
            assert!(
                is_invalid(iss_verifier().verify_connect(&t, NOW, true)),
                "{claims}"
            );
            assert!(
                is_invalid(iss_verifier().verify_subscribe(&t, NOW)),
                "{claims}"
            );
        }
    }

    #[test]
    fn audience_and_issuer_unchecked_when_not_configured() {
        // Today's behaviour is kept: without configuration any `aud` / `iss`, even of an
        // unusual type, is ignored.
        for claims in [
            r#"{"sub":"u","aud":"x","iss":"y"}"#,
            r#"{"sub":"u","aud":5,"iss":{"a":1}}"#,
            r#"{"sub":"u"}"#,
        ] {
            let t = sign_hs256(SECRET, claims);
            assert!(verifier().verify_connect(&t, NOW, true).is_ok(), "{claims}");
            let v = verifier().with_audience("").with_issuer("");
            assert!(v.verify_subscribe(&t, NOW).is_ok(), "{claims}");
        }
    }

    #[test]
    fn audience_and_issuer_together() {
        let v = aud_verifier().with_issuer("https://issuer.example");
        let t = sign_hs256(
            SECRET,
            r#"{"sub":"u","aud":"rotor","iss":"https://issuer.example"}"#,
        );
        assert!(v.verify_connect(&t, NOW, true).is_ok());
        let t = sign_hs256(SECRET, r#"{"sub":"u","aud":"rotor"}"#);
        assert!(is_invalid(v.verify_connect(&t, NOW, true)));
        let t = sign_hs256(SECRET, r#"{"sub":"u","iss":"https://issuer.example"}"#);
        assert!(is_invalid(v.verify_connect(&t, NOW, true)));
    }

    #[test]
    fn from_config_carries_audience_and_issuer() {
        let cfg = crate::config::NodeConfig {
            token_hmac_secret_key: SECRET.into(),
            token_audience: "rotor".into(),
            token_issuer: "i".into(),
            ..Default::default()
        };
        let v = TokenVerifier::from_config(&cfg);
        let t = sign_hs256(SECRET, r#"{"sub":"u","aud":"rotor","iss":"i"}"#);
        assert!(v.verify_connect(&t, NOW, true).is_ok());
        let t = sign_hs256(SECRET, r#"{"sub":"u","aud":"other","iss":"i"}"#);
        assert!(is_invalid(v.verify_connect(&t, NOW, true)));
    }

    #[test]
    fn audience_checked_only_after_signature() {
        // A forged token with the right audience is still refused for its signature.
        let t = sign_hs256("other", r#"{"sub":"u","aud":"rotor"}"#);
        assert_eq!(
            aud_verifier().verify_connect(&t, NOW, true),
            Err(TokenError::Invalid("signature mismatch".into()))
        );
    }
}
