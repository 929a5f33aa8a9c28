//! HMAC (HS256/384/512): the shared-secret signatures, for verifying and for issuing.
//!
//! Verification compares in constant time (`verify_slice`); a tag of the wrong length fails.
//! Signing exists for tests and the `gentoken` tool only: the server never issues tokens.
//! Centrifugo accepts any non-empty secret, however short, so no length rule is applied.

use super::Alg;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384, Sha512};

/// MAC of `data` under `key` for an HMAC `alg`; `None` for a non-HMAC `alg`.
pub(super) fn sign(alg: Alg, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    match alg {
        Alg::Hs256 => Some(mac_sign::<Hmac<Sha256>>(key, data)),
        Alg::Hs384 => Some(mac_sign::<Hmac<Sha384>>(key, data)),
        Alg::Hs512 => Some(mac_sign::<Hmac<Sha512>>(key, data)),
        _ => None,
    }
}

/// Constant-time check of `tag`; false for a non-HMAC `alg`.
pub(super) fn verify(alg: Alg, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    match alg {
        Alg::Hs256 => mac_verify::<Hmac<Sha256>>(key, data, tag),
        Alg::Hs384 => mac_verify::<Hmac<Sha384>>(key, data, tag),
        Alg::Hs512 => mac_verify::<Hmac<Sha512>>(key, data, tag),
        _ => false,
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

/// Signs `claims_json` (used verbatim as the payload) with HS256. For tests and the
/// `gentoken` tool; the server itself never issues tokens.
#[must_use]
pub fn sign_hs256(secret: &str, claims_json: &str) -> String {
    sign_with(Alg::Hs256, secret, claims_json)
}

/// Signs `claims_json` (verbatim) with `alg` = `HS256`, `HS384` or `HS512`; `None` for any
/// other algorithm name. For tests and tooling.
#[must_use]
pub fn sign_hmac(alg: &str, secret: &str, claims_json: &str) -> Option<String> {
    Alg::from_name(alg)
        .filter(|a| a.is_hmac())
        .map(|alg| sign_with(alg, secret, claims_json))
}

fn sign_with(alg: Alg, secret: &str, claims_json: &str) -> String {
    let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, alg.name());
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
    let signature = sign(alg, secret.as_bytes(), token.as_bytes()).unwrap_or_default();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}
