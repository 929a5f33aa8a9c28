//! Tests of the token layer. HMAC tokens are made with Rotor's own signer (HMAC is
//! symmetric and its vector is checked independently); every RSA/ECDSA/EdDSA token comes
//! from `testdata/` (openssl keys, PyJWT/cryptography signatures: see
//! `testdata/make_fixtures.py`), so asymmetric verification is checked against an
//! independent implementation.

mod asymmetric;
mod claims;
mod config;
mod hmac;
mod keyset;
mod pem;
mod regex_rules;

use crate::auth::{sign_hs256, Alg, ConnectClaims, SubscribeClaims, TokenError, TokenVerifier};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;

pub(super) const SECRET: &str = "secret";
pub(super) const NOW: i64 = 1_700_000_000;

pub(super) fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Token with an arbitrary header, MAC'ed with `mac_alg` (to build confusion cases).
pub(super) fn token_with_header(header: &str, mac_alg: Alg, secret: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig =
        crate::auth::hmac::sign(mac_alg, secret.as_bytes(), input.as_bytes()).unwrap_or_default();
    format!("{input}.{}", b64(sig))
}

/// HS256 token with a `kid` header.
pub(super) fn sign_hs256_with_kid(secret: &str, kid: &str, claims: &str) -> String {
    let header = format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#);
    token_with_header(&header, Alg::Hs256, secret, claims)
}

pub(super) fn verifier() -> TokenVerifier {
    TokenVerifier::new(SECRET)
}

pub(super) fn connect(claims: &str) -> Result<ConnectClaims, TokenError> {
    verifier().verify_connect(&sign_hs256(SECRET, claims), NOW, true)
}

pub(super) fn subscribe(claims: &str) -> Result<SubscribeClaims, TokenError> {
    verifier().verify_subscribe(&sign_hs256(SECRET, claims), NOW)
}

pub(super) fn is_invalid<T: fmt::Debug>(r: Result<T, TokenError>) -> bool {
    matches!(r, Err(TokenError::Invalid(_)))
}

/// A fixture token by name (`testdata/tokens.json`).
pub(super) fn token(name: &str) -> String {
    static TOKENS: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    let tokens = TOKENS.get_or_init(|| {
        serde_json::from_str(include_str!("../testdata/tokens.json")).expect("tokens.json")
    });
    tokens
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no fixture token {name}"))
        .to_owned()
}

/// A fixture PEM file by name.
pub(super) fn pem(name: &str) -> &'static str {
    match name {
        "rsa.pub.pem" => include_str!("../testdata/rsa.pub.pem"),
        "rsa.cert.pem" => include_str!("../testdata/rsa.cert.pem"),
        "rsa.pkcs1.pem" => include_str!("../testdata/rsa.pkcs1.pem"),
        "rsa_other.pub.pem" => include_str!("../testdata/rsa_other.pub.pem"),
        "rsa1024.pub.pem" => include_str!("../testdata/rsa1024.pub.pem"),
        "ec256.pub.pem" => include_str!("../testdata/ec256.pub.pem"),
        "ec256.cert.pem" => include_str!("../testdata/ec256.cert.pem"),
        "ec384.pub.pem" => include_str!("../testdata/ec384.pub.pem"),
        "ec521.pub.pem" => include_str!("../testdata/ec521.pub.pem"),
        "ec521.cert.pem" => include_str!("../testdata/ec521.cert.pem"),
        "ec224.pub.pem" => include_str!("../testdata/ec224.pub.pem"),
        "secp256k1.pub.pem" => include_str!("../testdata/secp256k1.pub.pem"),
        "ec_private.pem" => include_str!("../testdata/ec_private.pem"),
        "ed25519.pub.pem" => include_str!("../testdata/ed25519.pub.pem"),
        "ed25519.cert.pem" => include_str!("../testdata/ed25519.cert.pem"),
        _ => panic!("no fixture PEM {name}"),
    }
}
