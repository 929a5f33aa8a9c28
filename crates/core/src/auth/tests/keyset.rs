//! The key-set seam: a kid-keyed set that fetches on a miss (the shape a JWKS cache will
//! have), what a set is shown before the signature, and sets that return the wrong keys.

use super::{is_invalid, pem, sign_hs256_with_kid, token, NOW};
use crate::auth::{
    Alg, KeyLookup, KeyQuery, KeySet, RefreshError, StaticKeySet, TokenError, TokenVerifier,
    VerifyingKey,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// (alg, kid, unverified iss, unverified aud) as a key set was shown them.
type Seen = (Alg, Option<String>, Option<String>, Vec<String>);

/// Keys by `kid`; `refresh` copies from `remote` (a stand-in for an endpoint), or fails.
#[derive(Debug, Default)]
struct KidSet {
    held: Mutex<HashMap<String, VerifyingKey>>,
    remote: Mutex<HashMap<String, VerifyingKey>>,
    down: Mutex<bool>,
    refreshes: AtomicUsize,
    /// What `lookup` was shown: (alg, kid, unverified iss, unverified aud).
    seen: Mutex<Vec<Seen>>,
}

#[async_trait::async_trait]
impl KeySet for KidSet {
    fn lookup(&self, q: &KeyQuery<'_>) -> KeyLookup {
        let (iss, aud) = q.unverified_issuer_audience();
        self.seen
            .lock()
            .push((q.alg(), q.kid().map(str::to_owned), iss, aud));
        let Some(kid) = q.kid() else {
            return KeyLookup::Keys(Arc::from(Vec::new()));
        };
        match self.held.lock().get(kid) {
            Some(key) => KeyLookup::Keys(Arc::from(vec![key.clone()])),
            None => KeyLookup::Unknown,
        }
    }

    async fn refresh(&self, _q: &KeyQuery<'_>) -> Result<(), RefreshError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        if *self.down.lock() {
            return Err(RefreshError("endpoint down".into()));
        }
        let remote = self.remote.lock().clone();
        *self.held.lock() = remote;
        Ok(())
    }
}

fn rsa() -> VerifyingKey {
    VerifyingKey::from_pem(pem("rsa.pub.pem")).unwrap()
}

fn kid_set() -> Arc<KidSet> {
    let set = KidSet::default();
    set.remote.lock().insert("k1".into(), rsa());
    Arc::new(set)
}

/// `Arc<KidSet>` as a key set, so the test keeps a handle on the counters.
#[derive(Debug)]
struct Shared(Arc<KidSet>);

#[async_trait::async_trait]
impl KeySet for Shared {
    fn lookup(&self, q: &KeyQuery<'_>) -> KeyLookup {
        self.0.lookup(q)
    }
    async fn refresh(&self, q: &KeyQuery<'_>) -> Result<(), RefreshError> {
        self.0.refresh(q).await
    }
}

#[tokio::test]
async fn unknown_kid_is_fetched_on_the_async_path_only() {
    let set = kid_set();
    let v = TokenVerifier::with_keys(Shared(set.clone()));
    // Sync path: not held → invalid, no fetch.
    assert_eq!(
        v.verify_connect(&token("rs256_kid"), NOW, true),
        Err(TokenError::Invalid("no key for this token's kid".into()))
    );
    assert_eq!(set.refreshes.load(Ordering::SeqCst), 0);
    // Async path: one refresh, then verified.
    let c = v
        .verify_connect_async(&token("rs256_kid"), NOW, true)
        .await
        .unwrap();
    assert_eq!(c.user, "alice");
    assert_eq!(set.refreshes.load(Ordering::SeqCst), 1);
    // Now held: no further refresh, and the sync path verifies too.
    assert!(v
        .verify_connect_async(&token("rs256_kid"), NOW, true)
        .await
        .is_ok());
    assert!(v.verify_connect(&token("rs256_kid"), NOW, true).is_ok());
    assert_eq!(set.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn kid_matching_nothing_is_refused_after_one_refresh() {
    let set = kid_set();
    let v = TokenVerifier::with_keys(Shared(set.clone()));
    let r = v
        .verify_connect_async(&token("rs256_unknown_kid"), NOW, true)
        .await;
    assert!(is_invalid(r));
    assert_eq!(set.refreshes.load(Ordering::SeqCst), 1);
    // No kid at all: this set has nothing for it, and does not refresh.
    assert!(is_invalid(
        v.verify_connect_async(&token("rs256"), NOW, true).await
    ));
    assert_eq!(set.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failed_refresh_is_invalid_and_cached_keys_keep_working() {
    let set = kid_set();
    let v = TokenVerifier::with_keys(Shared(set.clone()));
    *set.down.lock() = true;
    assert_eq!(
        v.verify_connect_async(&token("rs256_kid"), NOW, true).await,
        Err(TokenError::Invalid(
            "key refresh failed: endpoint down".into()
        ))
    );
    *set.down.lock() = false;
    assert!(v
        .verify_connect_async(&token("rs256_kid"), NOW, true)
        .await
        .is_ok());
    *set.down.lock() = true;
    assert!(v
        .verify_subscribe_async(&token("rs256_kid"), NOW)
        .await
        .is_ok());
}

#[tokio::test]
async fn expired_token_with_a_fetched_key_is_expired() {
    let set = kid_set();
    set.remote
        .lock()
        .insert("h".into(), VerifyingKey::hmac(b"s3"));
    let v = TokenVerifier::with_keys(Shared(set.clone()));
    let t = sign_hs256_with_kid("s3", "h", &format!(r#"{{"sub":"u","exp":{}}}"#, NOW - 1));
    assert_eq!(
        v.verify_connect_async(&t, NOW, true).await,
        Err(TokenError::Expired)
    );
    // Forged with another secret: invalid, never expired.
    let t = sign_hs256_with_kid("other", "h", &format!(r#"{{"sub":"u","exp":{}}}"#, NOW - 1));
    assert!(is_invalid(v.verify_connect_async(&t, NOW, true).await));
}

#[test]
fn the_set_sees_unverified_iss_and_aud_but_forged_tokens_still_fail() {
    let set = kid_set();
    set.held
        .lock()
        .insert("h".into(), VerifyingKey::hmac(b"real"));
    let v = TokenVerifier::with_keys(Shared(set.clone()));
    let claims = r#"{"sub":"u","iss":"https://tenant-a.example","aud":["rotor","x"]}"#;
    let forged = sign_hs256_with_kid("guess", "h", claims);
    assert!(is_invalid(v.verify_connect(&forged, NOW, true)));
    let genuine = sign_hs256_with_kid("real", "h", r#"{"sub":"u","aud":"rotor"}"#);
    assert!(v.verify_connect(&genuine, NOW, true).is_ok());
    let seen = set.seen.lock().clone();
    assert_eq!(
        seen,
        vec![
            (
                Alg::Hs256,
                Some("h".to_string()),
                Some("https://tenant-a.example".to_string()),
                vec!["rotor".to_string(), "x".to_string()]
            ),
            (
                Alg::Hs256,
                Some("h".to_string()),
                None,
                vec!["rotor".to_string()]
            ),
        ]
    );
}

#[test]
fn unverified_claims_of_odd_shapes_give_nothing() {
    for payload in ["", "[]", r#"{"iss":5}"#, r#"{"aud":{"a":1}}"#, "not json"] {
        let q = KeyQuery::new(Alg::Rs256, None, payload);
        assert_eq!(
            q.unverified_issuer_audience(),
            (None, Vec::new()),
            "{payload}"
        );
    }
}

/// A broken set that answers every query with the same keys.
#[derive(Debug)]
struct Always(Vec<VerifyingKey>);

impl KeySet for Always {
    fn lookup(&self, _q: &KeyQuery<'_>) -> KeyLookup {
        KeyLookup::Keys(Arc::from(self.0.clone()))
    }
}

#[test]
fn keys_refuse_algorithms_outside_their_family_whatever_the_set_returns() {
    // A set handing out the RSA key for HS256 (classic confusion): the key refuses.
    let v = TokenVerifier::with_keys(Always(vec![rsa()]));
    assert!(is_invalid(v.verify_connect(
        &token("hs256_with_rsa_pem"),
        NOW,
        true
    )));
    assert!(v.verify_connect(&token("rs256"), NOW, true).is_ok());
    // An HMAC key made of the PEM text verifies the HS256 token but never an RS256 one.
    let pem_as_secret = VerifyingKey::hmac(pem("rsa.pub.pem").as_bytes());
    let v = TokenVerifier::with_keys(Always(vec![pem_as_secret]));
    assert!(is_invalid(v.verify_connect(&token("rs256"), NOW, true)));
    // A P-256 key handed out for ES384/ES512 refuses.
    let p256 = VerifyingKey::from_pem(pem("ec256.pub.pem")).unwrap();
    let v = TokenVerifier::with_keys(Always(vec![p256]));
    assert!(is_invalid(v.verify_connect(
        &token("es384_header_p256_key"),
        NOW,
        true
    )));
    assert!(is_invalid(v.verify_connect(
        &token("es512_header_p256_key"),
        NOW,
        true
    )));
    assert!(v.verify_connect(&token("es256"), NOW, true).is_ok());
}

#[test]
fn several_candidates_are_tried_in_order() {
    let other = VerifyingKey::from_pem(pem("rsa_other.pub.pem")).unwrap();
    let v = TokenVerifier::with_keys(Always(vec![other.clone(), rsa()]));
    assert!(v.verify_connect(&token("rs256"), NOW, true).is_ok());
    let v = TokenVerifier::with_keys(Always(vec![other]));
    assert!(is_invalid(v.verify_connect(&token("rs256"), NOW, true)));
    // A previous-secret style pair of HMAC keys.
    let set = StaticKeySet::new()
        .with_hmac_secret("new")
        .with_hmac_secret("old");
    let v = TokenVerifier::with_keys(set);
    assert!(v
        .verify_connect(&sign_hs256_with_kid("old", "x", "{}"), NOW, true)
        .is_ok());
    assert!(v
        .verify_connect(&sign_hs256_with_kid("new", "x", "{}"), NOW, true)
        .is_ok());
    assert!(is_invalid(v.verify_connect(
        &sign_hs256_with_kid("neither", "x", "{}"),
        NOW,
        true
    )));
}

#[test]
fn async_verification_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let v = TokenVerifier::with_keys(Shared(kid_set()));
    let t = token("rs256_kid");
    let fut = v.verify_connect_async(&t, NOW, true);
    assert_send(&fut);
    let fut2 = v.verify_subscribe_async(&t, NOW);
    assert_send(&fut2);
}
