//! Templated endpoints, one per tenant: regressions for CVE-2026-49998 (a key cached for one
//! tenant verifying another tenant's token under the same kid) and CVE-2026-32301 (claims read
//! before the signature choosing the URL).

use rotor_core::auth::VerifyingKey;
use rotor_jwks::{validate_template, Jwk, JwkKey, JwksSource, Setting};
use serde_json::json;

use crate::support::*;

const TEMPLATE_PATH: &str = "/{{tenant}}/jwks.json";

/// Tenants acme and globex, both publishing a key under kid `k1` (different keys).
async fn two_tenants() -> JwksServer {
    let server = JwksServer::start().await;
    server.serve_keys("/acme/jwks.json", &[jwk("acme_k1")]);
    server.serve_keys("/globex/jwks.json", &[jwk("globex_k1")]);
    server
}

#[tokio::test]
async fn a_tenant_key_never_verifies_another_tenant_token_with_the_same_kid() {
    let server = two_tenants().await;
    let src = source(&server.url(TEMPLATE_PATH), ISSUER_REGEX, settings());
    let v = verifier(&src);
    assert_eq!(user(&v, &token("acme_k1")).await.unwrap(), "alice");
    // Claims tenant globex, kid k1, signed with acme's k1 (cached now): refused, and it was
    // globex's own set that got fetched for it.
    assert_invalid(user(&v, &token("globex_k1_signed_by_acme")).await);
    assert_eq!(server.requests("/globex/jwks.json"), 1);
    assert_eq!(user(&v, &token("globex_k1")).await.unwrap(), "bob");
    // With both sets cached, still refused; acme's token still verifies.
    assert_invalid(user(&v, &token("globex_k1_signed_by_acme")).await);
    assert_invalid(user_now(&v, &token("globex_k1_signed_by_acme")));
    assert_eq!(user_now(&v, &token("acme_k1")).unwrap(), "alice");
    assert_eq!(server.requests("/acme/jwks.json"), 1);
    assert_eq!(server.requests("/globex/jwks.json"), 1);
}

#[tokio::test]
async fn the_resolved_url_is_the_cache_key() {
    let server = two_tenants().await;
    let template = validate_template(&server.url(TEMPLATE_PATH), ISSUER_REGEX, "").unwrap();
    let src: JwksSource<Jwk> = JwksSource::new(template, settings()).unwrap();
    let acme = Some("https://idp.example.com/acme");
    let globex = Some("https://idp.example.com/globex");
    let n_of = |keys: &[Jwk]| match &keys[0].key {
        JwkKey::Rsa { n, .. } => n.clone(),
        other => panic!("{other:?}"),
    };
    let a = src.keys(acme, &[], Some("k1")).await.unwrap();
    let b = src.keys(globex, &[], Some("k1")).await.unwrap();
    assert_ne!(n_of(&a), n_of(&b));
    // Asked in the other order, from the cache: the same answers.
    assert_eq!(
        n_of(&src.keys(globex, &[], Some("k1")).await.unwrap()),
        n_of(&b)
    );
    assert_eq!(
        n_of(&src.keys(acme, &[], Some("k1")).await.unwrap()),
        n_of(&a)
    );
    assert_eq!(server.total_requests(), 2);
}

#[tokio::test]
async fn claims_outside_the_lists_never_cause_a_request() {
    let server = two_tenants().await;
    // Were any of these fetched, acme's key would be served there and the token would pass.
    for path in [
        "/evil/jwks.json",
        "/jwks.json",
        "/latest/meta-data/",
        "/admin/jwks.json",
    ] {
        server.serve_keys(path, &[jwk("acme_k1")]);
    }
    let unanchored = r"idp\.example\.com/(?P<tenant>acme|globex)";
    for regex in [ISSUER_REGEX, unanchored] {
        let src = source(&server.url(TEMPLATE_PATH), regex, settings());
        let v = verifier(&src);
        // Signed with acme's real key, claiming tenants nobody listed.
        assert_invalid(user(&v, &token("evil_k1")).await);
        assert_invalid(user(&v, &token("ssrf_k1")).await);
        for iss in [
            "https://idp.example.com/evil",
            "https://idp.example.com/acme/../admin",
            "https://idp.example.com/acme%2F..%2Fadmin",
            "https://idp.example.com/ACME",
            "https://idp.example.com/globex?x=1",
            "https://idp.example.com/acme#frag",
            "https://idp.example.com/ acme",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let t = forged(
                json!({"alg": "RS256", "kid": "k1"}),
                json!({"sub": "mallory", "iss": iss}),
            );
            assert_invalid(user(&v, &t).await);
        }
        let t = forged(
            json!({"alg": "RS256", "kid": "k1"}),
            json!({"sub": "mallory"}),
        );
        assert_invalid(user(&v, &t).await);
        if regex == ISSUER_REGEX {
            assert_eq!(server.total_requests(), 0);
            assert_eq!(src.stats().unresolved, 11);
        }
    }
    // The unanchored gate finds a listed tenant inside some hostile issuers ("…/acme/../admin",
    // "…/globex?x=1"): those went to that tenant's own URL and failed its signature check.
    // Nothing else was ever asked.
    for path in [
        "/evil/jwks.json",
        "/jwks.json",
        "/latest/meta-data/",
        "/admin/jwks.json",
    ] {
        assert_eq!(server.requests(path), 0, "{path}");
    }
    assert_eq!(server.requests("/acme/jwks.json"), 1);
    assert_eq!(server.requests("/globex/jwks.json"), 1);
    assert_eq!(server.total_requests(), 2);
}

#[tokio::test]
async fn tenant_from_the_audience() {
    let server = two_tenants().await;
    let template = validate_template(
        &server.url(TEMPLATE_PATH),
        "",
        r"^tenant-(?P<tenant>acme|globex)$",
    )
    .unwrap();
    let src: JwksSource<VerifyingKey> = JwksSource::new(template, settings()).unwrap();
    let v = verifier(&src);
    assert_eq!(user(&v, &token("aud_globex_k1")).await.unwrap(), "bob");
    // No matching aud element: refused without a request.
    assert_invalid(user(&v, &token("acme_k1")).await);
    assert_eq!(server.requests("/globex/jwks.json"), 1);
    assert_eq!(server.requests("/acme/jwks.json"), 0);
}

#[tokio::test]
async fn unsafe_templates_refuse_to_start_and_literal_lists_start() {
    let server = two_tenants().await;
    let endpoint = server.url(TEMPLATE_PATH);
    for regex in [
        r"^https://idp\.example\.com/(?P<tenant>.+)$",
        r"^https://idp\.example\.com/(?P<tenant>[a-z]+)$",
        r"^https://idp\.example\.com/(?P<tenant>\w+)$",
        r"^https://idp\.example\.com/(?P<tenant>acme|globex|.*)$",
        r"(?i)^https://idp\.example\.com/(?P<tenant>acme|globex)$",
        r"^https://idp\.example\.com/(?P<tenant>acme|evil\.com/x)$",
    ] {
        let e = validate_template(&endpoint, regex, "").expect_err(regex);
        assert_eq!(e.setting, Setting::IssuerRegex, "{regex}");
        assert!(e.to_string().starts_with("issuer_regex: "), "{e}");
    }
    let e = validate_template(&server.url("/{{tenant}}/{{region}}"), ISSUER_REGEX, "")
        .expect_err("region is filled by nothing");
    assert_eq!(e.setting, Setting::Endpoint);
    let t = validate_template(&endpoint, ISSUER_REGEX, "").unwrap();
    let urls: Vec<String> = t.urls().iter().map(ToString::to_string).collect();
    assert_eq!(
        urls,
        [
            server.url("/acme/jwks.json"),
            server.url("/globex/jwks.json")
        ]
    );
    // Starting asks nothing of the endpoint.
    assert_eq!(server.total_requests(), 0);
}
