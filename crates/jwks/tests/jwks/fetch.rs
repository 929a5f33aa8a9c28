//! One fetch: every key type, per-key skipping, the size cap, the timeout, bad documents and
//! statuses, redirects, TLS, and the algorithm-confusion classes (TOKENS.md §9.3).

use std::time::{Duration, Instant};

use rotor_jwks::{validate_template, FetchError, JwkKey, JwksClient, JwksSettings};
use serde_json::json;
use url::Url;

use crate::support::*;

#[tokio::test]
async fn every_key_type_verifies_from_one_fetch() {
    let server = JwksServer::start().await;
    server.serve_keys(
        "/jwks",
        &[
            jwk("acme_k1"),
            jwk("e256"),
            jwk("e384"),
            jwk("e521"),
            jwk("ed1"),
        ],
    );
    let src = source(&server.url("/jwks"), "", settings());
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    for name in ["e256", "e384", "e521"] {
        assert_eq!(user(&v, &token(name)).await.unwrap(), "erin", "{name}");
    }
    assert_eq!(user(&v, &token("ed1")).await.unwrap(), "eve");
    assert_eq!(server.requests("/jwks"), 1);
    let stats = src.stats();
    assert_eq!((stats.fetches, stats.fetch_failures), (1, 0));
    // One miss (the first token, found after the fetch), then every lookup a hit.
    assert_eq!((stats.cache_hits, stats.cache_misses), (5, 1));
}

#[tokio::test]
async fn one_bad_key_does_not_poison_the_set() {
    let server = JwksServer::start().await;
    let mut off_curve = jwk("e256");
    let y = off_curve["y"].as_str().unwrap().to_owned();
    let flipped = if y.starts_with('A') { "B" } else { "A" };
    off_curve["y"] = json!(format!("{flipped}{}", &y[1..]));
    let keys = [
        jwk_with("acme_k2", json!({"n": "!!!not base64!!!"})),
        jwk_with("acme_k2", json!({"kid": "short", "n": "AQAB"})),
        off_curve,
        jwk_with("e384", json!({"kid": "wrong-alg", "alg": "ES256"})),
        jwk_with("acme_k2", json!({"kid": "ps", "alg": "PS256"})),
        json!({"kty": "XYZ", "kid": "x"}),
        jwk_with("ed1", json!({"kid": "ed448", "crv": "Ed448"})),
        jwk_with("acme_k2", json!({"kid": "enc", "use": "enc"})),
        json!("not an object"),
        jwk("acme_k1"),
        jwk_with("ed1", json!({"use": null})),
    ];
    server.serve_keys("/jwks", &keys);
    let src = source(&server.url("/jwks"), "", settings());
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    assert_eq!(user(&v, &token("ed1")).await.unwrap(), "eve");
    // The P-256 key with a broken point was skipped, so its token finds no key.
    assert_invalid(user(&v, &token("e256")).await);
    assert_eq!(src.stats().keys_skipped, 9);
    assert_eq!(server.requests("/jwks"), 1);
}

#[tokio::test]
async fn oversize_documents_are_refused() {
    let server = JwksServer::start().await;
    let padding = "x".repeat(8 << 10);
    let big = json!({"keys": [jwk("acme_k1")], "padding": padding}).to_string();
    server.route("/sized", Route::Body(big.clone()));
    server.route("/chunked", Route::Chunked(big.clone()));
    let small = JwksSettings {
        max_body_bytes: 4 << 10,
        ..settings()
    };
    for path in ["/sized", "/chunked"] {
        let src = source(&server.url(path), "", small.clone());
        assert_invalid(user(&verifier(&src), &token("acme_k1")).await);
        assert_eq!(src.stats().fetch_failures, 1, "{path}");
        let client = JwksClient::new(&small).unwrap();
        let url = Url::parse(&server.url(path)).unwrap();
        assert_eq!(
            client.fetch(&url).await,
            Err(FetchError::TooLarge(4 << 10)),
            "{path}"
        );
    }
    // The same document is fine under the default cap (1 MiB).
    let src = source(&server.url("/chunked"), "", settings());
    assert_eq!(
        user(&verifier(&src), &token("acme_k1")).await.unwrap(),
        "alice"
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let server = JwksServer::start().await;
    let doc = json!({"keys": [jwk("acme_k1")]}).to_string();
    server.route(
        "/slow",
        Route::Slow(Duration::from_secs(5), Box::new(Route::Body(doc))),
    );
    let quick = JwksSettings {
        timeout: Duration::from_millis(300),
        ..settings()
    };
    let src = source(&server.url("/slow"), "", quick);
    let started = Instant::now();
    assert_invalid(user(&verifier(&src), &token("acme_k1")).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(src.stats().fetch_failures, 1);
    assert_eq!(server.requests("/slow"), 1);
}

#[tokio::test]
async fn bad_documents_statuses_and_redirects_fail_the_fetch() {
    let server = JwksServer::start().await;
    server.route("/text", Route::Body("<html>login</html>".into()));
    server.route("/object", Route::Body(r#"{"keys": {"k1": 1}}"#.into()));
    server.route("/500", Route::Status(500));
    server.route("/204", Route::Status(204));
    server.serve_keys("/elsewhere", &[jwk("acme_k1")]);
    server.route("/moved", Route::Redirect(server.url("/elsewhere")));
    let client = JwksClient::new(&settings()).unwrap();
    let fetch = |path: &str| {
        let url = Url::parse(&server.url(path)).unwrap();
        let client = client.clone();
        async move { client.fetch(&url).await }
    };
    assert!(matches!(fetch("/text").await, Err(FetchError::Document(_))));
    assert!(matches!(
        fetch("/object").await,
        Err(FetchError::Document(_))
    ));
    assert_eq!(fetch("/500").await, Err(FetchError::Status(500)));
    assert_eq!(fetch("/204").await, Err(FetchError::Status(204)));
    assert_eq!(fetch("/missing").await, Err(FetchError::Status(404)));
    // A redirect is not followed: the fetch fails and the target sees nothing.
    assert_eq!(fetch("/moved").await, Err(FetchError::Status(302)));
    assert_eq!(server.requests("/elsewhere"), 0);
    let set = fetch("/elsewhere").await.unwrap();
    assert_eq!(set.keys.len(), 1);
    assert!(matches!(set.keys[0].key, JwkKey::Rsa { .. }));
    // Nothing listens: refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = Url::parse(&format!("http://{closed}/jwks")).unwrap();
    assert!(matches!(
        client.fetch(&url).await,
        Err(FetchError::Request(_))
    ));
}

#[tokio::test]
async fn https_endpoint_is_verified_against_the_configured_ca() {
    let (ca_pem, acceptor) = tls_acceptor();
    let server = JwksServer::start_tls(acceptor).await;
    server.serve_keys("/jwks", &[jwk("acme_k1")]);
    let endpoint = server.url("/jwks");
    assert!(endpoint.starts_with("https://127.0.0.1:"));
    let trusted = JwksSettings {
        ca_pem: ca_pem.clone(),
        ..settings()
    };
    let src = source(&endpoint, "", trusted);
    assert_eq!(
        user(&verifier(&src), &token("acme_k1")).await.unwrap(),
        "alice"
    );
    // Another CA: the handshake fails, the token is refused.
    let (other_ca, _) = tls_acceptor();
    let untrusted = JwksSettings {
        ca_pem: other_ca,
        ..settings()
    };
    let src = source(&endpoint, "", untrusted);
    assert_invalid(user(&verifier(&src), &token("acme_k1")).await);
    assert_eq!(src.stats().fetch_failures, 1);
    assert_eq!(server.requests("/jwks"), 1);
    // A CA setting without a certificate is a start error.
    let bad = JwksSettings {
        ca_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
        ..settings()
    };
    let template = validate_template(&endpoint, "", "").unwrap();
    assert!(rotor_jwks::JwksSource::<rotor_core::auth::VerifyingKey>::new(template, bad).is_err());
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let server = JwksServer::start().await;
    server.serve_keys("/jwks", &[jwk("acme_k1"), jwk("oct_k1")]);
    let src = source(&server.url("/jwks"), "", settings());
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    // HS256 MACed with the RSA key's public modulus; HS256 MACed with the `oct` key's secret.
    assert_invalid(user(&v, &token("hs256_with_rsa_n")).await);
    assert_invalid(user(&v, &token("hs256_with_oct")).await);
    // The JWK says RS256: a correct RS384 signature by the same key is refused.
    assert_invalid(user(&v, &token("acme_k1_rs384")).await);
    // No alg on the JWK: the key serves its family, RS384 included.
    let server2 = JwksServer::start().await;
    server2.serve_keys("/jwks", &[jwk_with("acme_k1", json!({"alg": null}))]);
    let src2 = source(&server2.url("/jwks"), "", settings());
    assert_eq!(
        user(&verifier(&src2), &token("acme_k1_rs384"))
            .await
            .unwrap(),
        "alice"
    );
    // No kid: refused without asking the endpoint.
    let before = server.requests("/jwks");
    assert_invalid(user(&v, &token("acme_no_kid")).await);
    assert_eq!(server.requests("/jwks"), before);
}
