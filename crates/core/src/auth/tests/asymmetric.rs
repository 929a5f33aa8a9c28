//! RSA, ECDSA and EdDSA tokens made by PyJWT/cryptography (`testdata/`): every accept and
//! refuse case, against the static key set.

use super::{is_invalid, pem, token, NOW};
use crate::auth::{StaticKeySet, TokenError, TokenVerifier, VerifyingKey};
use std::time::Instant;

/// Far-future `exp` of the fixtures (2100-01-01).
const FAR: i64 = 4_102_444_800;

fn key(name: &str) -> VerifyingKey {
    VerifyingKey::from_pem(pem(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn with(names: &[&str]) -> TokenVerifier {
    let keys = names
        .iter()
        .fold(StaticKeySet::new(), |set, name| set.with_key(key(name)));
    TokenVerifier::with_keys(keys)
}

fn all_keys() -> TokenVerifier {
    with(&[
        "rsa.pub.pem",
        "ec256.pub.pem",
        "ec384.pub.pem",
        "ec521.pub.pem",
        "ed25519.pub.pem",
    ])
}

#[test]
fn every_algorithm_verifies_an_independent_token() {
    let v = all_keys();
    for name in [
        "rs256", "rs384", "rs512", "es256", "es384", "es512", "eddsa",
    ] {
        let c = v
            .verify_connect(&token(name), NOW, true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.user, "alice", "{name}");
        assert_eq!(c.exp, Some(FAR), "{name}");
        assert_eq!(
            c.info.as_deref(),
            Some(&br#"{"name":"Alice"}"#[..]),
            "{name}"
        );
        assert_eq!(c.channels, vec!["news".to_string()], "{name}");
        // `meta` is kept as its exact JSON text.
        assert_eq!(
            c.meta.as_deref(),
            Some(&br#"{"tier":"gold","n":[1,2]}"#[..]),
            "{name}"
        );
    }
}

#[test]
fn subscription_tokens_of_each_family() {
    let v = all_keys();
    for name in ["rs256_sub", "es256_sub", "eddsa_sub"] {
        let s = v
            .verify_subscribe(&token(name), NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.channel, "$gossips", "{name}");
        assert_eq!(s.client.as_deref(), Some("c-1"), "{name}");
        assert_eq!(s.user.as_deref(), Some("alice"), "{name}");
        assert_eq!(s.exp, Some(FAR), "{name}");
    }
}

#[test]
fn expired_and_not_yet_valid_are_expired_only_when_signed() {
    let v = all_keys();
    for name in [
        "rs256_expired",
        "eddsa_expired",
        "es512_expired",
        "es256_nbf_future",
    ] {
        assert_eq!(
            v.verify_connect(&token(name), NOW, true),
            Err(TokenError::Expired),
            "{name}"
        );
    }
    assert_eq!(
        v.verify_subscribe(&token("rs256_expired"), NOW),
        Err(TokenError::Expired)
    );
    // Without the signing key the token is invalid, never "expired".
    let no_rsa = with(&["ec256.pub.pem"]);
    assert!(is_invalid(no_rsa.verify_connect(
        &token("rs256_expired"),
        NOW,
        true
    )));
    let other_rsa = with(&["rsa_other.pub.pem"]);
    assert!(is_invalid(other_rsa.verify_connect(
        &token("rs256_expired"),
        NOW,
        true
    )));
}

#[test]
fn refused_tokens() {
    let v = all_keys().with_audience("").with_issuer("");
    for name in [
        "none",
        "ps256",
        "rs256_lowercase_alg",
        "rs256_other_key",
        "rs256_header_sha384_sig",
        "es256_der_signature",
        "es256_header_p384_key",
        "es384_header_p256_key",
        "es512_header_p256_key",
        "rs256_tampered",
        "es256_tampered",
        "eddsa_tampered",
        "hs256_with_rsa_pem",
        "hs256_secret",
    ] {
        assert!(
            is_invalid(v.verify_connect(&token(name), NOW, true)),
            "{name}"
        );
        assert!(is_invalid(v.verify_subscribe(&token(name), NOW)), "{name}");
    }
}

#[test]
fn alg_confusion_hs256_with_the_public_key_text() {
    let t = token("hs256_with_rsa_pem");
    // RSA key only: the HS slot is empty.
    assert_eq!(
        with(&["rsa.pub.pem"]).verify_connect(&t, NOW, true),
        Err(TokenError::Invalid("no key configured for HS256".into()))
    );
    // RSA key and a real HMAC secret: the MAC does not match the secret.
    let both = TokenVerifier::with_keys(
        StaticKeySet::new()
            .with_key(key("rsa.pub.pem"))
            .with_hmac_secret("rotor-secret"),
    );
    assert_eq!(
        both.verify_connect(&t, NOW, true),
        Err(TokenError::Invalid("signature mismatch".into()))
    );
    // The same verifier accepts a genuine HS256 token (made by PyJWT) and the RS256 one.
    assert!(both
        .verify_connect(&token("hs256_secret"), NOW, true)
        .is_ok());
    assert!(both.verify_connect(&token("rs256"), NOW, true).is_ok());
}

#[test]
fn each_curve_verifies_only_its_algorithm() {
    let p384 = with(&["ec384.pub.pem"]);
    assert!(p384.verify_connect(&token("es384"), NOW, true).is_ok());
    for name in ["es256", "es512", "es256_header_p384_key"] {
        assert!(
            is_invalid(p384.verify_connect(&token(name), NOW, true)),
            "{name}"
        );
    }
    let p256 = with(&["ec256.pub.pem"]);
    assert!(p256.verify_connect(&token("es256"), NOW, true).is_ok());
    for name in [
        "es384",
        "es512",
        "es384_header_p256_key",
        "es512_header_p256_key",
    ] {
        assert!(
            is_invalid(p256.verify_connect(&token(name), NOW, true)),
            "{name}"
        );
    }
    let p521 = with(&["ec521.pub.pem"]);
    assert!(p521.verify_connect(&token("es512"), NOW, true).is_ok());
    assert!(is_invalid(p521.verify_connect(&token("es256"), NOW, true)));
}

#[test]
fn each_family_uses_only_its_own_key() {
    let rsa = with(&["rsa.pub.pem"]);
    let ec = with(&["ec256.pub.pem"]);
    let ed = with(&["ed25519.pub.pem"]);
    assert!(rsa.verify_connect(&token("rs256"), NOW, true).is_ok());
    assert!(is_invalid(rsa.verify_connect(&token("es256"), NOW, true)));
    assert!(is_invalid(rsa.verify_connect(&token("eddsa"), NOW, true)));
    assert!(is_invalid(ec.verify_connect(&token("rs256"), NOW, true)));
    assert!(is_invalid(ec.verify_connect(&token("eddsa"), NOW, true)));
    assert!(ed.verify_connect(&token("eddsa"), NOW, true).is_ok());
    assert!(is_invalid(ed.verify_connect(&token("rs256"), NOW, true)));
    assert!(is_invalid(ed.verify_connect(&token("es256"), NOW, true)));
}

#[test]
fn static_keys_ignore_kid_as_centrifugo_does() {
    let v = with(&["rsa.pub.pem"]);
    assert!(v.verify_connect(&token("rs256_kid"), NOW, true).is_ok());
    assert!(v
        .verify_connect(&token("rs256_unknown_kid"), NOW, true)
        .is_ok());
}

#[test]
fn user_id_claim_reads_another_claim() {
    let v = all_keys().with_user_id_claim("user_id");
    let c = v.verify_connect(&token("es256"), NOW, true).unwrap();
    assert_eq!(c.user, "u-77");
    // A number becomes its digits.
    let v = all_keys().with_user_id_claim("uid");
    assert_eq!(
        v.verify_connect(&token("rs256"), NOW, true).unwrap().user,
        "12345"
    );
    // Absent: anonymous, even though `sub` is set.
    let v = all_keys().with_user_id_claim("missing");
    assert_eq!(
        v.verify_connect(&token("eddsa"), NOW, true).unwrap().user,
        ""
    );
    // Subscription tokens read the same claim.
    let s = v.verify_subscribe(&token("rs256_sub"), NOW).unwrap();
    assert_eq!(s.user, None);
    let v = all_keys().with_user_id_claim("sub");
    let s = v.verify_subscribe(&token("rs256_sub"), NOW).unwrap();
    assert_eq!(s.user.as_deref(), Some("alice"));
}

/// Prints µs per verification for each algorithm with Rotor's backend. Run in release:
/// `cargo test -p rotor-core --release --lib -- --ignored --nocapture verify_timing`.
#[test]
#[ignore = "timing, not a check"]
fn verify_timing() {
    let v = all_keys();
    let hmac = TokenVerifier::new("rotor-secret");
    let cases: [(&str, &TokenVerifier, u32); 7] = [
        ("hs256_secret", &hmac, 20_000),
        ("rs256", &v, 2_000),
        ("rs512", &v, 2_000),
        ("es256", &v, 1_000),
        ("es384", &v, 200),
        ("es512", &v, 200),
        ("eddsa", &v, 1_000),
    ];
    for (name, verifier, n) in cases {
        let t = token(name);
        let start = Instant::now();
        for _ in 0..n {
            assert!(verifier.verify_connect(&t, NOW, true).is_ok());
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("{name:<14} {us:>9.2} µs per verify_connect");
    }
}
