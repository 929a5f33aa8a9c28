//! A [`JwksSource`] of `rotor_core` [`VerifyingKey`]s is the verifier's [`KeySet`].
//!
//! Keys are converted once per fetch ([`FromJwk`]), with Centrifugo 6.9.1's JWK `alg` rules
//! (TOKENS.md §6): an RSA or EC key with an `alg` is pinned to it (the token's header `alg` must
//! then equal it); without one it serves its family (RS256/384/512 for RSA, the curve's one
//! algorithm for EC); an Ed25519 key always serves EdDSA only and its JWK `alg` is ignored. A key
//! whose `alg` is unknown or does not fit the key (e.g. `ES384` on a P-256 key) is skipped, as are
//! RSA keys outside 2048–8192 bits and EC points off their curve (checked by
//! [`VerifyingKey`]); the rest of the set stays usable.
//!
//! [`KeySet::lookup`] resolves the endpoint from the token's unverified `iss`/`aud` (only for a
//! templated endpoint) and answers from the cache; a token with no `kid`, or whose claims resolve
//! to no configured URL, gets an empty key list (refused, nothing fetched). [`KeySet::refresh`]
//! is [`JwksSource::refetch`], with its per-URL interval and single flight.

use std::sync::Arc;

use rotor_core::auth::{Alg, EcCurve, KeyLookup, KeyQuery, KeySet, RefreshError, VerifyingKey};

use crate::jwk::{Jwk, JwkCurve, JwkKey};
use crate::source::{FromJwk, JwksSource, Lookup};

impl FromJwk for VerifyingKey {
    fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        let key = match &jwk.key {
            JwkKey::Rsa { n, e } => VerifyingKey::rsa(n, e),
            JwkKey::Ec { curve, x, y } => VerifyingKey::ec(core_curve(*curve), x, y),
            JwkKey::Ed25519 { x } => return VerifyingKey::ed25519(x).map_err(|e| e.to_string()),
        }
        .map_err(|e| e.to_string())?;
        let Some(name) = jwk.alg.as_deref().filter(|a| !a.is_empty()) else {
            return Ok(key);
        };
        let alg = Alg::from_name(name).ok_or_else(|| format!("alg {name:?} is not supported"))?;
        if !key.accepts(alg) {
            return Err(format!("alg {name} does not fit {}", key.kind().describe()));
        }
        Ok(key.restricted_to(alg))
    }
}

fn core_curve(curve: JwkCurve) -> EcCurve {
    match curve {
        JwkCurve::P256 => EcCurve::P256,
        JwkCurve::P384 => EcCurve::P384,
        JwkCurve::P521 => EcCurve::P521,
    }
}

impl JwksSource<VerifyingKey> {
    /// The unverified claims the endpoint needs: none for a static endpoint (so the payload
    /// is not even parsed on this path).
    fn claims(&self, query: &KeyQuery<'_>) -> (Option<String>, Vec<String>) {
        if self.template().is_dynamic() {
            query.unverified_issuer_audience()
        } else {
            (None, Vec::new())
        }
    }
}

#[async_trait::async_trait]
impl KeySet for JwksSource<VerifyingKey> {
    fn lookup(&self, query: &KeyQuery<'_>) -> KeyLookup {
        let (iss, aud) = self.claims(query);
        match self.cached(iss.as_deref(), &aud, query.kid()) {
            Lookup::Keys(keys) => KeyLookup::Keys(keys),
            Lookup::Unknown => KeyLookup::Unknown,
            Lookup::Refused(_) => KeyLookup::Keys(Arc::from(Vec::new())),
        }
    }

    async fn refresh(&self, query: &KeyQuery<'_>) -> Result<(), RefreshError> {
        let (iss, aud) = self.claims(query);
        self.refetch(iss.as_deref(), &aud, query.kid())
            .await
            .map_err(|e| RefreshError(e.to_string()))
    }
}
