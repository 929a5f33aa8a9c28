//! The key-set seam: where the verifier gets the keys that may verify a token.
//!
//! Verification runs in a fixed order, and the contract of [`KeySet`] follows from it:
//!
//! 1. The token is taken apart without trusting anything in it (header `alg` and `kid`, the
//!    payload text, the signature).
//! 2. The verifier asks the key set for candidate keys with a [`KeyQuery`]: the header `alg`
//!    and `kid`, and — only for a set that must choose among endpoints the operator
//!    configured — the **unverified** `iss` / `aud` ([`KeyQuery::unverified_issuer_audience`]).
//! 3. The signature is checked with the candidates, each of which refuses an `alg` it does
//!    not serve ([`VerifyingKey::accepts`]).
//! 4. Only then are the claims parsed and used (audience, issuer, user, expiry).
//!
//! Rules for implementations:
//! * `alg` only *selects* among keys the set holds. Never turn token content into key
//!   material, and never return HMAC secrets for non-HS algorithms or public keys for HS*
//!   (the keys refuse such a pairing anyway).
//! * Unverified claims may pick an endpoint only out of a fixed set of URLs the operator
//!   listed (CVE-2026-32301: a URL built from free claim text lets a forged token make the
//!   server fetch anything and trust an attacker's key). A cache must be keyed by the
//!   resolved URL *and* the `kid` (CVE-2026-49998: keyed by `kid` alone, one tenant's key
//!   verified another tenant's tokens).
//! * [`KeySet::lookup`] never blocks or does I/O: it answers from what the set holds. A set
//!   that can fetch (JWKS) answers [`KeyLookup::Unknown`] for a key it does not hold; the
//!   asynchronous verification path then awaits [`KeySet::refresh`] once and looks up again,
//!   while the synchronous path refuses the token. Rate limits on refetching belong in
//!   `refresh`.
//!
//! [`StaticKeySet`] is the configured set: the HMAC secret and the PEM keys, chosen by `alg`
//! alone (Centrifugo ignores `kid` for static keys).

use super::claims::unverified_iss_aud;
use super::{Alg, KeyKind, VerifyingKey};
use std::fmt;
use std::sync::Arc;

/// What the verifier asks a key set: everything in it is unverified.
#[derive(Debug, Clone, Copy)]
pub struct KeyQuery<'a> {
    alg: Alg,
    kid: Option<&'a str>,
    payload: &'a str,
}

impl<'a> KeyQuery<'a> {
    /// A query for a token with header `alg` and `kid` and decoded payload text `payload`.
    #[must_use]
    pub fn new(alg: Alg, kid: Option<&'a str>, payload: &'a str) -> Self {
        Self { alg, kid, payload }
    }

    /// The header `alg` (already one Rotor knows).
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The header `kid`, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&'a str> {
        self.kid
    }

    /// The token's `iss` and `aud` (an `aud` string becomes a one-element list), **not
    /// verified**: for choosing among endpoints the operator configured, nothing else. A
    /// malformed payload gives `(None, [])`; the verifier refuses it after the signature.
    #[must_use]
    pub fn unverified_issuer_audience(&self) -> (Option<String>, Vec<String>) {
        unverified_iss_aud(self.payload)
    }
}

/// A key set's answer.
#[derive(Debug, Clone)]
pub enum KeyLookup {
    /// Keys to try, in order, until one verifies. Empty: nothing can verify this token (it
    /// is refused; no refresh is attempted).
    Keys(Arc<[VerifyingKey]>),
    /// The set does not hold a key for this query now but might after
    /// [`KeySet::refresh`] (e.g. an unknown `kid` in a JWKS cache).
    Unknown,
}

/// Why a refresh found nothing usable (logged; the token is refused as invalid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key refresh failed: {0}")]
pub struct RefreshError(pub String);

/// A source of verification keys. See the module documentation for the contract.
#[async_trait::async_trait]
pub trait KeySet: Send + Sync + fmt::Debug {
    /// Candidate keys for `query`, from what the set holds; no I/O.
    fn lookup(&self, query: &KeyQuery<'_>) -> KeyLookup;

    /// Fetches what [`KeySet::lookup`] answered [`KeyLookup::Unknown`] for. The default does
    /// nothing (a set that cannot fetch).
    ///
    /// # Errors
    /// The fetch failed; the token is refused.
    async fn refresh(&self, query: &KeyQuery<'_>) -> Result<(), RefreshError> {
        let _ = query;
        Ok(())
    }
}

/// Configured keys, chosen by `alg` alone: the HMAC secret for HS*, the RSA key for RS*, an
/// ECDSA key for the algorithm of its curve, an Ed25519 key for EdDSA.
#[derive(Clone)]
pub struct StaticKeySet {
    /// Per [`Alg::index`]: the keys that accept that algorithm, in the order added.
    by_alg: [Arc<[VerifyingKey]>; Alg::ALL.len()],
    kinds: Vec<KeyKind>,
}

impl Default for StaticKeySet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StaticKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hmac = self.kinds.contains(&KeyKind::Hmac).then_some("<redacted>");
        let public: Vec<&KeyKind> = self.kinds.iter().filter(|k| **k != KeyKind::Hmac).collect();
        f.debug_struct("StaticKeySet")
            .field("hmac", &hmac)
            .field("public", &public)
            .finish()
    }
}

impl StaticKeySet {
    /// A set without keys: every token is refused.
    #[must_use]
    pub fn new() -> Self {
        Self {
            by_alg: std::array::from_fn(|_| Arc::from(Vec::new())),
            kinds: Vec::new(),
        }
    }

    /// Adds `key` for every algorithm it accepts (after the keys already there).
    #[must_use]
    pub fn with_key(mut self, key: VerifyingKey) -> Self {
        for alg in Alg::ALL {
            if key.accepts(alg) {
                let slot = &mut self.by_alg[alg.index()];
                let mut keys = slot.to_vec();
                keys.push(key.clone());
                *slot = keys.into();
            }
        }
        self.kinds.push(key.kind());
        self
    }

    /// Adds an HMAC secret; an empty secret adds nothing (so no token verifies against an
    /// empty key).
    #[must_use]
    pub fn with_hmac_secret(self, secret: &str) -> Self {
        if secret.is_empty() {
            self
        } else {
            self.with_key(VerifyingKey::hmac(secret.as_bytes()))
        }
    }

    /// True when the set holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The kinds of keys held, in the order added.
    #[must_use]
    pub fn kinds(&self) -> &[KeyKind] {
        &self.kinds
    }
}

impl KeySet for StaticKeySet {
    fn lookup(&self, query: &KeyQuery<'_>) -> KeyLookup {
        let keys = self.by_alg.get(query.alg().index()).cloned();
        KeyLookup::Keys(keys.unwrap_or_else(|| Arc::from(Vec::new())))
    }
}
