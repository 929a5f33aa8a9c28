//! The cache policy: hits, refetch on an unknown kid, the per-URL refetch interval under a
//! storm of unknown kids, single flight, rotation, the TTL, and the endpoint going down.

use std::sync::Arc;
use std::time::Duration;

use rotor_jwks::{JwksError, JwksSettings};
use serde_json::json;

use crate::support::*;

fn short(interval_ms: u64) -> JwksSettings {
    JwksSettings {
        min_refetch_interval: Duration::from_millis(interval_ms),
        ..settings()
    }
}

/// A token with an unknown kid and no valid signature, as an attacker sends them.
fn unknown_kid(i: usize) -> String {
    forged(
        json!({"alg": "RS256", "typ": "JWT", "kid": format!("storm-{i}")}),
        json!({"sub": "mallory"}),
    )
}

#[tokio::test]
async fn a_cached_key_needs_no_second_request() {
    let server = JwksServer::start().await;
    server.serve_keys("/jwks", &[jwk("acme_k1")]);
    let src = source(&server.url("/jwks"), "", settings());
    let v = verifier(&src);
    // The synchronous path never fetches: refused until the key is cached.
    assert_invalid(user_now(&v, &token("acme_k1")));
    assert_eq!(server.requests("/jwks"), 0);
    for _ in 0..10 {
        assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    }
    assert_eq!(user_now(&v, &token("acme_k1")).unwrap(), "alice");
    assert_eq!(server.requests("/jwks"), 1);
    let stats = src.stats();
    assert_eq!(stats.fetches, 1);
    // Misses: the synchronous attempt and the first async lookup (found after the fetch).
    assert_eq!((stats.cache_hits, stats.cache_misses), (11, 2));
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_per_interval() {
    let server = JwksServer::start().await;
    server.serve_keys("/jwks", &[jwk("acme_k1")]);
    let src = source(&server.url("/jwks"), "", short(1000));
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    // The provider publishes k2. Right after the last fetch the refetch is held back...
    server.serve_keys("/jwks", &[jwk("acme_k1"), jwk("acme_k2")]);
    assert_invalid(user(&v, &token("acme_k2")).await);
    assert_eq!(server.requests("/jwks"), 1);
    assert_eq!(src.stats().refetches_held_back, 1);
    // ...and once the interval has passed, the unknown kid causes one refetch.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(user(&v, &token("acme_k2")).await.unwrap(), "carol");
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    assert_eq!(server.requests("/jwks"), 2);
}

#[tokio::test]
async fn a_storm_of_unknown_kids_costs_one_request_per_interval() {
    let server = JwksServer::start().await;
    server.serve_keys("/jwks", &[jwk("acme_k1")]);
    let src = source(&server.url("/jwks"), "", short(2000));
    let v = Arc::new(verifier(&src));
    let storm = |from: usize| {
        let mut tasks = tokio::task::JoinSet::new();
        for i in from..from + 200 {
            let v = Arc::clone(&v);
            tasks.spawn(async move { user(&v, &unknown_kid(i)).await });
        }
        tasks.join_all()
    };
    for r in storm(0).await {
        assert_invalid(r);
    }
    assert_eq!(server.requests("/jwks"), 1);
    // Sequential ones within the interval are held back too.
    for i in 200..300 {
        assert_invalid(user(&v, &unknown_kid(i)).await);
    }
    assert_eq!(server.requests("/jwks"), 1);
    // The real key still verifies from the cache meanwhile.
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for r in storm(1000).await {
        assert_invalid(r);
    }
    assert_eq!(server.requests("/jwks"), 2);
    let stats = src.stats();
    assert_eq!(stats.fetches, 2);
    assert!(stats.refetches_held_back >= 498, "{stats:?}");
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let server = JwksServer::start().await;
    let doc = json!({"keys": [jwk("acme_k1")]}).to_string();
    server.route(
        "/jwks",
        Route::Slow(Duration::from_millis(300), Box::new(Route::Body(doc))),
    );
    let src = source(&server.url("/jwks"), "", settings());
    let v = Arc::new(verifier(&src));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let v = Arc::clone(&v);
        tasks.spawn(async move { user(&v, &token("acme_k1")).await });
    }
    for r in tasks.join_all().await {
        assert_eq!(r.unwrap(), "alice");
    }
    assert_eq!(server.requests("/jwks"), 1);
}

#[tokio::test]
async fn rotation_finds_the_new_kid_and_drops_the_removed_one() {
    let server = JwksServer::start().await;
    server.serve_keys("/jwks", &[jwk("acme_k1")]);
    let src = source(&server.url("/jwks"), "", short(200));
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    // The provider rotates: k2 in, k1 out.
    server.serve_keys("/jwks", &[jwk("acme_k2")]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(user(&v, &token("acme_k2")).await.unwrap(), "carol");
    assert_eq!(server.requests("/jwks"), 2);
    // The refetch replaced the set: k1 no longer verifies.
    assert_invalid(user(&v, &token("acme_k1")).await);
    assert_invalid(user_now(&v, &token("acme_k1")));
}

#[tokio::test]
async fn past_the_ttl_the_set_is_refetched_and_removed_keys_stop() {
    let server = JwksServer::start().await;
    server.serve_keys("/jwks", &[jwk("acme_k1")]);
    let s = JwksSettings {
        ttl: Duration::from_millis(1500),
        ..short(100)
    };
    let src = source(&server.url("/jwks"), "", s);
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    server.serve_keys("/jwks", &[jwk("acme_k2")]);
    // Within the TTL the cached key is used without asking.
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    assert_eq!(server.requests("/jwks"), 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_invalid(user(&v, &token("acme_k1")).await);
    assert_eq!(server.requests("/jwks"), 2);
    assert_eq!(user(&v, &token("acme_k2")).await.unwrap(), "carol");
}

#[tokio::test]
async fn endpoint_down_cached_keys_work_uncached_fail_and_recovery_is_seen() {
    let server = JwksServer::start().await;
    server.serve_keys("/jwks", &[jwk("acme_k1")]);
    let src = source(&server.url("/jwks"), "", short(1000));
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");

    server.down();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    assert_invalid(user(&v, &token("acme_k2")).await);
    assert_eq!(src.stats().fetch_failures, 1);
    // Within the interval the failure is answered from memory: no new attempt.
    assert_invalid(user(&v, &token("acme_k2")).await);
    let err = src
        .keys(None, &[], Some("k2"))
        .await
        .expect_err("endpoint is down");
    assert!(matches!(err, JwksError::Fetch(_)), "{err}");
    assert_eq!(src.stats().fetch_failures, 1);

    server.serve_keys("/jwks", &[jwk("acme_k1"), jwk("acme_k2")]);
    server.up();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(user(&v, &token("acme_k2")).await.unwrap(), "carol");
    let stats = src.stats();
    assert_eq!((stats.fetches, stats.fetch_failures), (3, 1));
    assert_eq!(server.requests("/jwks"), 2);
}

#[tokio::test]
async fn endpoint_down_from_the_start_refuses_tokens_with_one_attempt_per_interval() {
    let server = JwksServer::start().await;
    let url = server.url("/jwks");
    server.down();
    let src = source(&url, "", short(2000));
    let v = verifier(&src);
    for _ in 0..20 {
        assert_invalid(user(&v, &token("acme_k1")).await);
    }
    let stats = src.stats();
    assert_eq!((stats.fetches, stats.fetch_failures), (1, 1));
    assert_eq!(stats.refetches_held_back, 19);
}
