//! JWT verification for connection and subscription tokens.
//!
//! Centrifugo clients authenticate with a compact JWS (`header.payload.signature`) signed by
//! the application backend; private-channel subscriptions carry a second, per-channel token.
//! This module verifies both: HMAC (HS256/384/512), RSA PKCS#1 v1.5 (RS256/384/512), ECDSA
//! (ES256/384/512, each curve bound to its algorithm) and Ed25519 (EdDSA), with keys from the
//! configuration (PEM `PUBLIC KEY` or `CERTIFICATE`) or from any [`KeySet`] (the seam a JWKS
//! cache plugs into).
//!
//! Files: `alg.rs` (algorithm names), `jws.rs` (taking a token apart), `key.rs` (one key and
//! the signature primitives, with the backend measurements), `pem.rs` (PEM/SPKI/X.509
//! parsing), `keys.rs` (the key-set seam and the static set), `hmac.rs` (HMAC and token
//! signing), `claims.rs` (claim parsing and checks), `verifier.rs` ([`TokenVerifier`]).
//!
//! Invariants:
//! * Nothing here panics, whatever the input; every failure is a [`TokenError`].
//! * A token is never trusted before its signature is verified: claims are parsed and used
//!   only after a key verified the signature, so an unsigned token can neither be reported
//!   as expired nor reach the claim parser. The one exception is a key set choosing among
//!   configured endpoints with the unverified `iss`/`aud` (see [`KeySet`]).
//! * `alg` comes from the token but only selects among keys the server holds; `none`, PS*,
//!   unknown names and algorithms without a matching key are rejected, and every key refuses
//!   algorithms outside its family and curve, so public key material can never act as an
//!   HMAC secret (algorithm confusion).
//! * Input size and JSON nesting are bounded ([`MAX_TOKEN_LEN`], 127 levels) before any
//!   recursive parsing, so hostile tokens cannot exhaust memory or the stack.
//! * Expiry and not-before failures are both [`TokenError::Expired`] (Centrifugo reports
//!   both as error 109); everything else is [`TokenError::Invalid`].

mod alg;
mod claims;
mod hmac;
mod jws;
mod key;
mod keys;
mod pem;
mod verifier;

#[cfg(test)]
mod tests;

pub use alg::Alg;
pub use claims::{ConnectClaims, SubscribeClaims};
pub use hmac::{sign_hmac, sign_hs256};
pub use key::{EcCurve, KeyError, KeyKind, KeyProblem, VerifyingKey, RSA_MAX_BITS, RSA_MIN_BITS};
pub use keys::{KeyLookup, KeyQuery, KeySet, RefreshError, StaticKeySet};
pub use verifier::TokenVerifier;

/// Longest token accepted, in bytes. Real tokens are a few hundred bytes; the cap keeps a
/// hostile client from making the server decode and hash megabytes per attempt.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

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
