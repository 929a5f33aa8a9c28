//! JWKS key fetching for Rotor's token verifier (Centrifugo's `jwks_public_endpoint`, static or
//! templated per tenant; TOKENS.md §6, §7, §9).
//!
//! An identity provider publishes its public keys as a JWK set at an HTTP(S) URL; tokens name
//! their key with the header `kid`. This crate turns a configured endpoint into a source of
//! verification keys:
//!
//! * [`validate_template`] checks the endpoint at start — with placeholders, that every URL
//!   it can produce comes from literal lists the operator wrote (the CVE-2026-32301 fix), and
//!   builds them all ([`CompiledTemplate`]; module `template`);
//! * [`JwksClient`] fetches one document: timeout, size cap, status 200 only, no redirects
//!   (module `http`);
//! * [`parse_jwk_set`] reads RSA, EC (P-256/384/521) and Ed25519 keys, skipping bad keys one
//!   by one instead of dropping the set (module `jwk`);
//! * [`JwksSource`] caches per (resolved URL, `kid`) (the CVE-2026-49998 fix), refetches on an
//!   unknown `kid` at most once per interval per URL, with single flight and an absolute TTL
//!   (module `source`, which documents the policy and how it differs from Centrifugo);
//! * module `keyset` plugs a `JwksSource<VerifyingKey>` into `rotor_core::auth` as its
//!   `KeySet`.
//!
//! Nothing here panics on network input; every failure of a token is an error the verifier
//! reports as an invalid token.

mod http;
mod jwk;
mod keyset;
mod source;
mod template;

use std::time::Duration;

pub use http::{CaError, FetchError, JwksClient};
pub use jwk::{
    parse_jwk_set, DocumentError, Jwk, JwkCurve, JwkKey, JwkSet, SkipReason, SkippedKey,
    MAX_KEYS_PER_SET,
};
pub use source::{FromJwk, JwksError, JwksSource, JwksStats, Lookup};
pub use template::{
    validate_template, CompiledTemplate, JwksConfigError, ResolveError, Setting, MAX_URLS,
};

/// How a source fetches and caches. [`Default`] gives the values below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// Bound on one whole request, connecting to the last body byte (default 2 s; Centrifugo
    /// makes up to two attempts of 1 s each).
    pub timeout: Duration,
    /// Largest document accepted (default 1 MiB; Centrifugo reads any size).
    pub max_body_bytes: usize,
    /// A fetched set is used this long, then refetched on the next token (default 1 h,
    /// absolute; Centrifugo's hour is sliding).
    pub ttl: Duration,
    /// At most one request per URL in this interval, whatever the number of unknown `kid`s
    /// (default 5 s; Centrifugo has no limit).
    pub min_refetch_interval: Duration,
    /// At most one failure log line per URL in this interval (default 60 s).
    pub log_interval: Duration,
    /// PEM text or file path of the CA that `https` endpoints must chain to; empty = the
    /// system roots.
    pub ca_pem: String,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            max_body_bytes: 1 << 20,
            ttl: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(5),
            log_interval: Duration::from_secs(60),
            ca_pem: String::new(),
        }
    }
}
