//! [`JwksSource`]: the keys of one configured JWKS endpoint (static or templated), cached per
//! (resolved URL, `kid`), fetched on demand.
//!
//! Policy (TOKENS.md §6, hardened as §9.4 asks):
//!
//! * **Cache key.** Each URL the template can produce has its own slot, chosen by resolving the
//!   token's `iss`/`aud` *before* the lookup; inside a slot keys are found by `kid`. A key
//!   fetched from tenant A's URL is therefore never a candidate for a token that resolves to
//!   tenant B, even with the same `kid` (CVE-2026-49998: Centrifugo ≤ 6.8.0 cached by `kid`
//!   alone and resolved the URL only on a miss).
//! * **Lookups never do I/O.** [`JwksSource::cached`] answers from memory: the keys, or
//!   [`Lookup::Unknown`] when the `kid` is not in the slot's set or the set is older than the
//!   TTL. The caller then awaits [`JwksSource::refetch`] once and looks again.
//! * **Refetch limit.** A slot is fetched at most once per `min_refetch_interval` (default 5 s),
//!   whatever the number of unknown `kid`s: within the interval a refetch returns at once with
//!   the previous attempt's outcome. Centrifugo fetches for every token with an unknown `kid`
//!   (no negative caching), so a stream of forged tokens turns into a stream of requests to the
//!   identity provider; here it costs one request per interval per URL. The price: a key
//!   published less than an interval after the last fetch is found one interval later.
//! * **Single flight.** Concurrent refetches of one slot wait for one request and share its
//!   outcome.
//! * **Absolute TTL.** A set is used for `ttl` (default 1 h) after it was fetched, then
//!   refetched on the next token. A key removed from the set stops verifying as soon as the set
//!   is refetched (at the TTL, or earlier when an unknown `kid` caused a refetch). Centrifugo's
//!   TTL is sliding (each hit re-arms it), so a removed key stays valid as long as it is used.
//! * **Endpoint down.** A failed fetch keeps the slot's set as it was: cached keys keep working
//!   until their TTL; tokens needing anything else are refused as invalid (never a server
//!   error). Failures are counted and logged at most once per `log_interval` per URL (with the
//!   number of failures not logged), and recovery is logged once.
//! * **Per-key parsing.** A key the consumer refuses (see [`FromJwk`]) is skipped alone; the
//!   rest of the set is used (Centrifugo drops the whole set).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use url::Url;

use crate::http::{CaError, FetchError, JwksClient};
use crate::jwk::{Jwk, JwkSet, SkipReason, SkippedKey};
use crate::template::{CompiledTemplate, ResolveError};
use crate::JwksSettings;

/// Turns a fetched JWK into the key form a verifier uses. A refusal skips that key only.
pub trait FromJwk: Sized + Send + Sync + 'static {
    /// # Errors
    /// The key is unusable (too small, off its curve, an `alg` it cannot serve, ...); the
    /// message is logged.
    fn from_jwk(jwk: &Jwk) -> Result<Self, String>;
}

/// The raw components, as parsed.
impl FromJwk for Jwk {
    fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        Ok(jwk.clone())
    }
}

/// Why a token gets no key. Every variant means "invalid token" to the verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("token has no kid")]
    NoKid,
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("no key with the token's kid at the JWKS endpoint")]
    UnknownKid,
}

/// Answer of [`JwksSource::cached`].
#[derive(Debug, Clone)]
pub enum Lookup<K> {
    /// Keys with the token's `kid` (usually one).
    Keys(Arc<[K]>),
    /// Not held now; [`JwksSource::refetch`] may find it.
    Unknown,
    /// No key can ever be found for this token (no `kid`, or no URL for its claims); do not
    /// refetch.
    Refused(JwksError),
}

/// Counters of a source (all since it was built).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JwksStats {
    /// Requests sent to the endpoint(s).
    pub fetches: u64,
    /// Requests that failed (network, timeout, status, size, not a JWK set).
    pub fetch_failures: u64,
    /// Lookups answered with keys.
    pub cache_hits: u64,
    /// Lookups that found no key (unknown `kid`, no set yet, or set past its TTL).
    pub cache_misses: u64,
    /// Refetches not sent because the URL was fetched less than an interval ago.
    pub refetches_held_back: u64,
    /// Tokens whose claims resolved to no URL (refused without any request).
    pub unresolved: u64,
    /// Keys left out of fetched sets.
    pub keys_skipped: u64,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    held_back: AtomicU64,
    unresolved: AtomicU64,
    keys_skipped: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// A fetched set: keys by `kid`.
struct Fetched<K> {
    at: Instant,
    by_kid: HashMap<String, Arc<[K]>>,
}

#[derive(Default)]
struct SlotState {
    last_attempt: Option<Instant>,
    last_error: Option<FetchError>,
    last_logged: Option<Instant>,
    failures_not_logged: u64,
}

/// One URL's cache.
struct Slot<K> {
    set: ArcSwapOption<Fetched<K>>,
    state: parking_lot::Mutex<SlotState>,
    /// Held while fetching: the single flight.
    flight: tokio::sync::Mutex<()>,
}

struct Inner<K> {
    template: CompiledTemplate,
    client: JwksClient,
    settings: JwksSettings,
    /// Per URL of the template, in [`CompiledTemplate::urls`] order.
    slots: Box<[Slot<K>]>,
    counters: Counters,
}

/// The keys of one JWKS endpoint. Cheap to clone; clones share the cache, so one clone can
/// serve a verifier while another reads [`JwksSource::stats`].
pub struct JwksSource<K: FromJwk> {
    inner: Arc<Inner<K>>,
}

impl<K: FromJwk> Clone for JwksSource<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: FromJwk> std::fmt::Debug for JwksSource<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("endpoint", &self.inner.template.template())
            .field("urls", &self.inner.template.urls().len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<K: FromJwk> JwksSource<K> {
    /// A source for `template` with its own HTTP client.
    ///
    /// # Errors
    /// The client cannot be built (an unusable `ca_pem`).
    pub fn new(template: CompiledTemplate, settings: JwksSettings) -> Result<Self, CaError> {
        let client = JwksClient::new(&settings)?;
        Ok(Self::with_client(template, settings, client))
    }

    /// A source sharing `client` (its timeout and size cap apply, not `settings`').
    #[must_use]
    pub fn with_client(
        template: CompiledTemplate,
        settings: JwksSettings,
        client: JwksClient,
    ) -> Self {
        let slots = template
            .urls()
            .iter()
            .map(|_| Slot {
                set: ArcSwapOption::empty(),
                state: parking_lot::Mutex::new(SlotState::default()),
                flight: tokio::sync::Mutex::new(()),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                template,
                client,
                settings,
                slots,
                counters: Counters::default(),
            }),
        }
    }

    /// The endpoint template.
    #[must_use]
    pub fn template(&self) -> &CompiledTemplate {
        &self.inner.template
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> JwksStats {
        let c = &self.inner.counters;
        JwksStats {
            fetches: c.fetches.load(Relaxed),
            fetch_failures: c.fetch_failures.load(Relaxed),
            cache_hits: c.cache_hits.load(Relaxed),
            cache_misses: c.cache_misses.load(Relaxed),
            refetches_held_back: c.held_back.load(Relaxed),
            unresolved: c.unresolved.load(Relaxed),
            keys_skipped: c.keys_skipped.load(Relaxed),
        }
    }

    /// Which slot a token's (unverified) claims and `kid` go to.
    fn target<'k>(
        &self,
        iss: Option<&str>,
        aud: &[String],
        kid: Option<&'k str>,
    ) -> Result<(usize, &'k str), JwksError> {
        let kid = kid.filter(|k| !k.is_empty()).ok_or(JwksError::NoKid)?;
        match self.inner.template.resolve_index(iss, aud) {
            Ok(index) => Ok((index, kid)),
            Err(e) => {
                inc(&self.inner.counters.unresolved);
                tracing::debug!(endpoint = %self.inner.template.template(), error = %e, "JWKS endpoint not resolved for a token");
                Err(e.into())
            }
        }
    }

    /// The cached keys for a token with these **unverified** `iss`, `aud` and header `kid`.
    /// No I/O.
    pub fn cached(&self, iss: Option<&str>, aud: &[String], kid: Option<&str>) -> Lookup<K> {
        match self.target(iss, aud, kid) {
            Ok((index, kid)) => self.cached_at(index, kid),
            Err(e) => Lookup::Refused(e),
        }
    }

    fn cached_at(&self, index: usize, kid: &str) -> Lookup<K> {
        let Some(slot) = self.inner.slots.get(index) else {
            return Lookup::Refused(JwksError::UnknownKid);
        };
        let guard = slot.set.load();
        let hit = guard
            .as_ref()
            .filter(|set| set.at.elapsed() < self.inner.settings.ttl)
            .and_then(|set| set.by_kid.get(kid));
        match hit {
            Some(keys) => {
                inc(&self.inner.counters.cache_hits);
                Lookup::Keys(Arc::clone(keys))
            }
            None => {
                inc(&self.inner.counters.cache_misses);
                Lookup::Unknown
            }
        }
    }

    /// Fetches the set the token resolves to, unless it was fetched (or tried) less than
    /// `min_refetch_interval` ago or another task is fetching it (then that fetch's outcome is
    /// shared). `Ok` means the set is as fresh as the policy allows, not that it holds `kid`.
    ///
    /// # Errors
    /// No URL for the claims, no `kid`, or the fetch (this one or the held-back previous one)
    /// failed.
    pub async fn refetch(
        &self,
        iss: Option<&str>,
        aud: &[String],
        kid: Option<&str>,
    ) -> Result<(), JwksError> {
        let (index, kid) = self.target(iss, aud, kid)?;
        self.refetch_at(index, kid).await
    }

    /// The keys for a token: from the cache, else after one refetch.
    ///
    /// # Errors
    /// As [`JwksSource::refetch`], and [`JwksError::UnknownKid`] when the set has no such key.
    pub async fn keys(
        &self,
        iss: Option<&str>,
        aud: &[String],
        kid: Option<&str>,
    ) -> Result<Arc<[K]>, JwksError> {
        let (index, kid) = self.target(iss, aud, kid)?;
        if let Lookup::Keys(keys) = self.cached_at(index, kid) {
            return Ok(keys);
        }
        self.refetch_at(index, kid).await?;
        match self.cached_at(index, kid) {
            Lookup::Keys(keys) => Ok(keys),
            Lookup::Refused(e) => Err(e),
            Lookup::Unknown => Err(JwksError::UnknownKid),
        }
    }

    fn holds_fresh(&self, slot: &Slot<K>, kid: &str) -> bool {
        slot.set.load().as_ref().is_some_and(|set| {
            set.at.elapsed() < self.inner.settings.ttl && set.by_kid.contains_key(kid)
        })
    }

    async fn refetch_at(&self, index: usize, kid: &str) -> Result<(), JwksError> {
        let inner = &*self.inner;
        let (Some(slot), Some(url)) = (inner.slots.get(index), inner.template.urls().get(index))
        else {
            return Err(JwksError::UnknownKid);
        };
        let _flight = slot.flight.lock().await;
        if self.holds_fresh(slot, kid) {
            // Fetched while this task waited.
            return Ok(());
        }
        {
            let st = slot.state.lock();
            if let Some(at) = st.last_attempt {
                if at.elapsed() < inner.settings.min_refetch_interval {
                    inc(&inner.counters.held_back);
                    return match &st.last_error {
                        Some(e) => Err(e.clone().into()),
                        None => Ok(()),
                    };
                }
            }
        }
        inc(&inner.counters.fetches);
        let outcome = inner.client.fetch(url).await;
        let now = Instant::now();
        match outcome {
            Ok(doc) => {
                let fetched = self.build(url, doc, now);
                slot.set.store(Some(Arc::new(fetched)));
                let mut st = slot.state.lock();
                st.last_attempt = Some(now);
                if st.last_error.take().is_some() {
                    tracing::info!(url = %url, failures_not_logged = st.failures_not_logged, "JWKS endpoint reachable again");
                    st.failures_not_logged = 0;
                    st.last_logged = None;
                }
                Ok(())
            }
            Err(e) => {
                inc(&inner.counters.fetch_failures);
                let mut st = slot.state.lock();
                st.last_attempt = Some(now);
                st.last_error = Some(e.clone());
                let due = st
                    .last_logged
                    .is_none_or(|t| now.duration_since(t) >= inner.settings.log_interval);
                if due {
                    tracing::warn!(url = %url, error = %e, failures_not_logged = st.failures_not_logged, "JWKS fetch failed: tokens whose key is not cached are refused");
                    st.last_logged = Some(now);
                    st.failures_not_logged = 0;
                } else {
                    st.failures_not_logged += 1;
                }
                Err(e.into())
            }
        }
    }

    /// Converts a fetched document into keys by `kid`, skipping what the consumer refuses.
    fn build(&self, url: &Url, doc: JwkSet, at: Instant) -> Fetched<K> {
        let JwkSet { keys, mut skipped } = doc;
        let mut by_kid: HashMap<String, Vec<K>> = HashMap::new();
        for jwk in &keys {
            match K::from_jwk(jwk) {
                Ok(key) => by_kid.entry(jwk.kid.clone()).or_default().push(key),
                Err(why) => skipped.push(SkippedKey {
                    index: jwk.index,
                    kid: Some(jwk.kid.clone()),
                    reason: SkipReason::Unusable(why),
                }),
            }
        }
        self.inner
            .counters
            .keys_skipped
            .fetch_add(skipped.len() as u64, Relaxed);
        for s in &skipped {
            if s.reason.is_benign() {
                tracing::debug!(url = %url, kid = ?s.kid, reason = %s.reason, "JWKS key not used");
            } else {
                tracing::warn!(url = %url, kid = ?s.kid, reason = %s.reason, "JWKS key skipped (the other keys of the set stay usable)");
            }
        }
        tracing::debug!(url = %url, kids = by_kid.len(), "JWKS fetched");
        Fetched {
            at,
            by_kid: by_kid
                .into_iter()
                .map(|(kid, keys)| (kid, Arc::from(keys)))
                .collect(),
        }
    }
}
