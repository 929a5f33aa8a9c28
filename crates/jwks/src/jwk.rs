//! JWK set documents (RFC 7517) read into public-key components.
//!
//! A document is `{"keys": [...]}`; anything else (not JSON, no `keys` array) is a
//! [`DocumentError`] and the fetch counts as failed. Each element is then read on its own, so
//! **one unusable key does not poison the set** (Centrifugo drops the whole response when one
//! key does not parse): it is listed in [`JwkSet::skipped`] with the reason, and the other keys
//! stay usable. Keys read:
//!
//! * `kty: "RSA"` with `n`, `e`;
//! * `kty: "EC"` with `crv` `P-256` / `P-384` / `P-521` and `x`, `y` of exactly the curve's
//!   coordinate size;
//! * `kty: "OKP"` with `crv: "Ed25519"` and a 32-byte `x`.
//!
//! Skipped: `oct` (a symmetric key must never verify anything, whatever the token's `alg`),
//! other key types and curves (`Ed448`, `secp256k1`, ...), keys with `use` other than `sig`
//! (`enc` keys are published beside signing keys by most identity providers), keys whose
//! `key_ops` does not contain `verify`, and keys without a non-empty `kid` (tokens are matched
//! to keys by `kid` only, as in Centrifugo). A key without `use` is kept (RFC 7517 makes `use`
//! optional; Centrifugo skips such keys). Members are base64url, with or without padding.
//! Checking that the numbers form a usable key (RSA size, point on the curve) is left to the
//! consumer of the components (see [`crate::FromJwk`]); a key it refuses is skipped the same way.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// base64url, padding optional (RFC 7515 forbids it, but it changes nothing here).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Largest number of keys read from one document; the rest are skipped. Real sets hold a
/// handful; the cap bounds the work a hostile or broken endpoint can cause per fetch.
pub const MAX_KEYS_PER_SET: usize = 256;

/// An elliptic curve with a JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwkCurve {
    /// `P-256` (ES256).
    P256,
    /// `P-384` (ES384).
    P384,
    /// `P-521` (ES512).
    P521,
}

impl JwkCurve {
    /// The curve a JWK `crv` names.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    /// Bytes of one coordinate.
    #[must_use]
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

/// The public components of a key, decoded from base64url.
#[derive(Clone, PartialEq, Eq)]
pub enum JwkKey {
    /// Big-endian modulus and public exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Affine coordinates, each [`JwkCurve::coordinate_len`] bytes.
    Ec {
        curve: JwkCurve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// RFC 8037 public key.
    Ed25519 { x: [u8; 32] },
}

impl fmt::Debug for JwkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { n, .. } => write!(f, "Rsa({} bits)", n.len() * 8),
            Self::Ec { curve, .. } => write!(f, "Ec({curve:?})"),
            Self::Ed25519 { .. } => f.write_str("Ed25519"),
        }
    }
}

/// One usable key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// Position in the document's `keys` array.
    pub index: usize,
    /// Non-empty `kid`.
    pub kid: String,
    /// The JWK `alg`, as written (checked by the consumer: it pins the key to that algorithm).
    pub alg: Option<String>,
    pub key: JwkKey,
}

/// Why a key of a set was left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("not a JSON object with a string kty")]
    Malformed,
    #[error("no kid")]
    NoKid,
    #[error("use {0:?} is not for signatures")]
    NotForSignatures(String),
    #[error("key_ops does not allow verify")]
    NoVerifyOp,
    #[error("symmetric (oct) keys are never used")]
    Symmetric,
    #[error("key type {0:?} is not supported")]
    UnsupportedType(String),
    #[error("curve {0:?} is not supported")]
    UnsupportedCurve(String),
    #[error("member {0:?} is missing")]
    Missing(&'static str),
    #[error("member {0:?} is not base64url")]
    NotBase64(&'static str),
    #[error("member {0:?} has the wrong length")]
    WrongLength(&'static str),
    #[error("more than {MAX_KEYS_PER_SET} keys in the set")]
    TooMany,
    /// Refused by the key's consumer (e.g. an RSA key below 2048 bits, a point off its curve).
    #[error("{0}")]
    Unusable(String),
}

impl SkipReason {
    /// True for keys that are expected in a healthy set and not worth a warning (`enc` keys,
    /// `oct` keys, keys for other operations).
    #[must_use]
    pub fn is_benign(&self) -> bool {
        matches!(
            self,
            Self::NotForSignatures(_) | Self::NoVerifyOp | Self::Symmetric
        )
    }
}

/// A key left out of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the document's `keys` array.
    pub index: usize,
    /// Its `kid`, when it had a readable one.
    pub kid: Option<String>,
    pub reason: SkipReason,
}

/// The keys of one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
    pub skipped: Vec<SkippedKey>,
}

/// A response that is not a JWK set at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("not a JWK set: {0}")]
    NotJwkSet(String),
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// Reads a JWK set document.
///
/// # Errors
/// The body is not JSON or has no `keys` array. Individual bad keys are not errors; they are
/// listed in [`JwkSet::skipped`].
pub fn parse_jwk_set(body: &[u8]) -> Result<JwkSet, DocumentError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| DocumentError::NotJwkSet("body is not UTF-8".into()))?;
    let doc: Document<'_> = serde_json::from_str(text)
        .map_err(|e| DocumentError::NotJwkSet(format!("expected {{\"keys\": [...]}}: {e}")))?;
    let mut set = JwkSet::default();
    for (index, raw) in doc.keys.iter().enumerate() {
        if index >= MAX_KEYS_PER_SET {
            set.skipped.push(SkippedKey {
                index,
                kid: None,
                reason: SkipReason::TooMany,
            });
            break;
        }
        let Ok(jwk) = serde_json::from_str::<RawJwk>(raw.get()) else {
            set.skipped.push(SkippedKey {
                index,
                kid: None,
                reason: SkipReason::Malformed,
            });
            continue;
        };
        let kid = jwk.kid.clone().filter(|k| !k.is_empty());
        match read_key(index, jwk) {
            Ok(key) => set.keys.push(key),
            Err(reason) => set.skipped.push(SkippedKey { index, kid, reason }),
        }
    }
    Ok(set)
}

fn read_key(index: usize, jwk: RawJwk) -> Result<Jwk, SkipReason> {
    if let Some(u) = &jwk.use_ {
        if u != "sig" {
            return Err(SkipReason::NotForSignatures(u.clone()));
        }
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|op| op == "verify") {
            return Err(SkipReason::NoVerifyOp);
        }
    }
    let key = match jwk.kty.as_str() {
        "RSA" => JwkKey::Rsa {
            n: member(jwk.n.as_deref(), "n")?,
            e: member(jwk.e.as_deref(), "e")?,
        },
        "EC" => {
            let crv = jwk.crv.as_deref().ok_or(SkipReason::Missing("crv"))?;
            let curve =
                JwkCurve::from_name(crv).ok_or_else(|| SkipReason::UnsupportedCurve(crv.into()))?;
            let x = member(jwk.x.as_deref(), "x")?;
            let y = member(jwk.y.as_deref(), "y")?;
            if x.len() != curve.coordinate_len() {
                return Err(SkipReason::WrongLength("x"));
            }
            if y.len() != curve.coordinate_len() {
                return Err(SkipReason::WrongLength("y"));
            }
            JwkKey::Ec { curve, x, y }
        }
        "OKP" => {
            let crv = jwk.crv.as_deref().ok_or(SkipReason::Missing("crv"))?;
            if crv != "Ed25519" {
                return Err(SkipReason::UnsupportedCurve(crv.into()));
            }
            let x = member(jwk.x.as_deref(), "x")?;
            let x: [u8; 32] = x.try_into().map_err(|_| SkipReason::WrongLength("x"))?;
            JwkKey::Ed25519 { x }
        }
        "oct" => return Err(SkipReason::Symmetric),
        other => return Err(SkipReason::UnsupportedType(other.into())),
    };
    let kid = jwk.kid.filter(|k| !k.is_empty()).ok_or(SkipReason::NoKid)?;
    Ok(Jwk {
        index,
        kid,
        alg: jwk.alg,
        key,
    })
}

fn member(value: Option<&str>, name: &'static str) -> Result<Vec<u8>, SkipReason> {
    let value = value.ok_or(SkipReason::Missing(name))?;
    let bytes = B64URL
        .decode(value)
        .map_err(|_| SkipReason::NotBase64(name))?;
    if bytes.is_empty() {
        return Err(SkipReason::WrongLength(name));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_skipped_one_by_one() {
        let doc = br#"{"keys":[
            {"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","alg":"RS256","use":"sig"},
            {"kty":"RSA","kid":"bad-n","n":"!!","e":"AQAB"},
            {"kty":"EC","kid":"short","crv":"P-256","x":"AQAB","y":"AQAB"},
            {"kty":"oct","kid":"o","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"enc","n":"AQAB","e":"AQAB","use":"enc"},
            {"kty":"OKP","kid":"ed448","crv":"Ed448","x":"AQAB"},
            {"kty":"RSA","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"ops","n":"AQAB","e":"AQAB","key_ops":["encrypt"]},
            {"kty":"XYZ","kid":"x"},
            5,
            {"kty":"RSA","kid":7,"n":"AQAB","e":"AQAB"},
            {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}
        ]}"#;
        let set = parse_jwk_set(doc).unwrap();
        let kids: Vec<&str> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["r", "ed"]);
        let reasons: Vec<(usize, SkipReason)> = set
            .skipped
            .into_iter()
            .map(|s| (s.index, s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, SkipReason::NotBase64("n")),
                (2, SkipReason::WrongLength("x")),
                (3, SkipReason::Symmetric),
                (4, SkipReason::NotForSignatures("enc".into())),
                (5, SkipReason::UnsupportedCurve("Ed448".into())),
                (6, SkipReason::NoKid),
                (7, SkipReason::NoVerifyOp),
                (8, SkipReason::UnsupportedType("XYZ".into())),
                (9, SkipReason::Malformed),
                (10, SkipReason::Malformed),
            ]
        );
    }

    #[test]
    fn documents_that_are_not_sets_fail_whole() {
        for doc in [
            &b"not json"[..],
            br#"{"keys":{}}"#,
            br#"{"nokeys":[]}"#,
            br#"[]"#,
            b"\xff\xfe",
        ] {
            assert!(parse_jwk_set(doc).is_err(), "{doc:?}");
        }
        assert_eq!(parse_jwk_set(br#"{"keys":[]}"#).unwrap(), JwkSet::default());
    }

    #[test]
    fn key_count_is_capped() {
        let one = r#"{"kty":"OKP","kid":"k","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        let doc = format!(
            r#"{{"keys":[{}]}}"#,
            vec![one; MAX_KEYS_PER_SET + 5].join(",")
        );
        let set = parse_jwk_set(doc.as_bytes()).unwrap();
        assert_eq!(set.keys.len(), MAX_KEYS_PER_SET);
        assert_eq!(set.skipped.len(), 1);
        assert_eq!(set.skipped[0].reason, SkipReason::TooMany);
    }
}
