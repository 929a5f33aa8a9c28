//! `audience_regex` / `issuer_regex` (Centrifugo 6 matching: unanchored unless the pattern
//! anchors itself, any `aud` element), their start-up errors, and a block with a JWKS endpoint
//! (static keys unused, an installed key set with the block's rules).

use super::{is_invalid, pem, token, NOW};
use crate::auth::{sign_hs256, KeyProblem, KeySet, StaticKeySet, TokenVerifier};
use crate::config::{NodeConfig, TokenKeys};
use std::sync::Arc;

fn hs(cfg: impl FnOnce(&mut NodeConfig)) -> TokenVerifier {
    let mut c = NodeConfig {
        token_hmac_secret_key: "k".into(),
        ..Default::default()
    };
    cfg(&mut c);
    TokenVerifier::try_from_config(&c).unwrap()
}

fn ok(v: &TokenVerifier, claims: &str) -> bool {
    v.verify_connect(&sign_hs256("k", claims), NOW, true)
        .is_ok()
}

#[test]
fn audience_regex_needs_one_matching_element() {
    let v = hs(|c| c.token_audience_regex = "^app-(one|two)$".into());
    assert!(ok(&v, r#"{"sub":"u","aud":"app-one"}"#));
    assert!(ok(&v, r#"{"sub":"u","aud":["x","app-two"]}"#));
    assert!(!ok(&v, r#"{"sub":"u","aud":["x","app-three"]}"#));
    assert!(!ok(&v, r#"{"sub":"u","aud":"xapp-one"}"#));
    assert!(!ok(&v, r#"{"sub":"u"}"#));
    assert!(!ok(&v, r#"{"sub":"u","aud":5}"#));
    // Unanchored: a pattern without ^…$ matches a substring, as in Centrifugo.
    let v = hs(|c| c.token_audience_regex = "app".into());
    assert!(ok(&v, r#"{"sub":"u","aud":"my-app-1"}"#));
}

#[test]
fn issuer_regex_must_match_iss() {
    let v = hs(|c| c.token_issuer_regex = r"^https://idp\.example\.com/(acme|globex)$".into());
    assert!(ok(
        &v,
        r#"{"sub":"u","iss":"https://idp.example.com/acme"}"#
    ));
    assert!(!ok(
        &v,
        r#"{"sub":"u","iss":"https://idp.example.com/initech"}"#
    ));
    assert!(!ok(
        &v,
        r#"{"sub":"u","iss":"https://idp.example.com/acme/x"}"#
    ));
    assert!(!ok(&v, r#"{"sub":"u"}"#));
    assert!(!ok(
        &v,
        r#"{"sub":"u","iss":["https://idp.example.com/acme"]}"#
    ));
    // Subscription tokens get the same rules without a separate block.
    let sub = sign_hs256(
        "k",
        r#"{"sub":"u","channel":"$c","iss":"https://idp.example.com/acme"}"#,
    );
    assert!(v.verify_subscribe(&sub, NOW).is_ok());
    let sub = sign_hs256("k", r#"{"sub":"u","channel":"$c","iss":"nope"}"#);
    assert!(is_invalid(v.verify_subscribe(&sub, NOW)));
}

#[test]
fn bad_regex_and_exclusive_keys_are_start_errors() {
    let mut c = NodeConfig {
        token_issuer_regex: "(".into(),
        ..Default::default()
    };
    let e = TokenVerifier::try_from_config(&c).unwrap_err();
    assert_eq!(e.field, "token_issuer_regex");
    assert!(matches!(e.problem, KeyProblem::BadRegex(_)), "{e}");
    c.token_issuer_regex = "x".into();
    c.token_issuer = "y".into();
    let e = TokenVerifier::try_from_config(&c).unwrap_err();
    assert_eq!(e.field, "token_issuer_regex");
    assert_eq!(e.problem, KeyProblem::Exclusive("token_issuer"));
    let c = NodeConfig {
        subscription_token: Some(TokenKeys {
            audience: "a".into(),
            audience_regex: "a".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = TokenVerifier::try_from_config(&c).unwrap_err();
    assert_eq!(e.field, "subscription_token.audience_regex");
    assert!(e.to_string().contains("subscription_token.audience"), "{e}");
}

#[test]
fn jwks_endpoint_replaces_static_keys_and_keeps_the_block_rules() {
    let mut c = NodeConfig {
        token_rsa_public_key: pem("rsa.pub.pem").into(),
        token_jwks_public_endpoint: "https://idp.example.com/jwks".into(),
        ..Default::default()
    };
    // Without an installed key set the static RSA key is not used.
    let v = TokenVerifier::try_from_config(&c).unwrap();
    assert!(is_invalid(v.verify_connect(&token("rs256"), NOW, true)));
    // The installed set verifies, and the block's rules still apply to its tokens.
    let set = || -> Option<Arc<dyn KeySet>> {
        let key = crate::auth::VerifyingKey::from_pem(pem("rsa.pub.pem")).unwrap();
        Some(Arc::new(StaticKeySet::new().with_key(key)))
    };
    let v = TokenVerifier::try_from_config_with(&c, set(), None).unwrap();
    assert!(v.verify_connect(&token("rs256"), NOW, true).is_ok());
    c.token_issuer_regex = "^never$".into();
    let v = TokenVerifier::try_from_config_with(&c, set(), None).unwrap();
    assert!(is_invalid(v.verify_connect(&token("rs256"), NOW, true)));
    // A subscription block with its own endpoint: its own set only.
    c.token_issuer_regex.clear();
    c.subscription_token = Some(TokenKeys {
        jwks_public_endpoint: "https://idp.example.com/sub".into(),
        ..Default::default()
    });
    let v = TokenVerifier::try_from_config_with(&c, set(), None).unwrap();
    assert!(is_invalid(v.verify_subscribe(&token("rs256_sub"), NOW)));
    let v = TokenVerifier::try_from_config_with(&c, None, set()).unwrap();
    assert!(v.verify_subscribe(&token("rs256_sub"), NOW).is_ok());
    assert!(is_invalid(v.verify_connect(&token("rs256"), NOW, true)));
}
