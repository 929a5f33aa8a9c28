//! `TokenVerifier::try_from_config` / `from_config`: the NodeConfig token fields, start-up
//! errors named by field, and the separate subscription-token block.

use super::{is_invalid, pem, token, NOW};
use crate::auth::{sign_hs256, KeyError, KeyProblem, TokenVerifier};
use crate::config::{NodeConfig, TokenKeys};

fn cfg() -> NodeConfig {
    NodeConfig {
        token_hmac_secret_key: "rotor-secret".into(),
        token_rsa_public_key: pem("rsa.pub.pem").into(),
        token_ecdsa_public_key: pem("ec256.cert.pem").into(),
        ..Default::default()
    }
}

fn err(cfg: &NodeConfig) -> KeyError {
    TokenVerifier::try_from_config(cfg).unwrap_err()
}

#[test]
fn all_configured_families_verify() {
    let v = TokenVerifier::try_from_config(&cfg()).unwrap();
    for name in ["hs256_secret", "rs256", "rs384", "rs512", "es256"] {
        assert!(v.verify_connect(&token(name), NOW, true).is_ok(), "{name}");
    }
    for name in [
        "es384",
        "es512",
        "eddsa",
        "rs256_other_key",
        "hs256_with_rsa_pem",
    ] {
        assert!(
            is_invalid(v.verify_connect(&token(name), NOW, true)),
            "{name}"
        );
    }
    // Without a separate block, subscription tokens use the same keys.
    assert!(v.verify_subscribe(&token("rs256_sub"), NOW).is_ok());
    assert!(v.verify_subscribe(&token("es256_sub"), NOW).is_ok());
    // P-384 / P-521 in the ECDSA slot select ES384 / ES512.
    let mut c = cfg();
    c.token_ecdsa_public_key = pem("ec521.pub.pem").into();
    let v = TokenVerifier::try_from_config(&c).unwrap();
    assert!(v.verify_connect(&token("es512"), NOW, true).is_ok());
    assert!(is_invalid(v.verify_connect(&token("es256"), NOW, true)));
}

#[test]
fn unusable_keys_are_start_errors_naming_the_field() {
    let mut c = cfg();
    c.token_rsa_public_key = pem("rsa.pkcs1.pem").into();
    let e = err(&c);
    assert_eq!(e.field, "token_rsa_public_key");
    let text = e.to_string();
    assert!(text.starts_with("token_rsa_public_key: "), "{text}");
    assert!(
        text.contains("\"PUBLIC KEY\" (SPKI) or \"CERTIFICATE\" (X.509)"),
        "{text}"
    );

    let mut c = cfg();
    c.token_rsa_public_key = pem("ec256.pub.pem").into();
    assert_eq!(
        err(&c).problem,
        KeyProblem::WrongType {
            found: "a P-256 ECDSA key",
            wanted: "an RSA key"
        }
    );
    let mut c = cfg();
    c.token_ecdsa_public_key = pem("rsa.cert.pem").into();
    let e = err(&c);
    assert_eq!(e.field, "token_ecdsa_public_key");
    assert!(matches!(
        e.problem,
        KeyProblem::WrongType {
            found: "an RSA key",
            ..
        }
    ));
    // Centrifugo has no PEM option for Ed25519: refused in either slot.
    c.token_ecdsa_public_key = pem("ed25519.pub.pem").into();
    assert!(matches!(
        err(&c).problem,
        KeyProblem::WrongType {
            found: "an Ed25519 key",
            ..
        }
    ));
    c.token_ecdsa_public_key = pem("ec224.pub.pem").into();
    assert!(matches!(err(&c).problem, KeyProblem::UnsupportedCurve(_)));
    c.token_ecdsa_public_key = "not a key".into();
    assert_eq!(err(&c).problem, KeyProblem::NotPem);
}

#[test]
fn an_hmac_secret_that_is_a_public_key_is_refused() {
    let mut c = cfg();
    c.token_hmac_secret_key = pem("rsa.pub.pem").into();
    let e = err(&c);
    assert_eq!(e.field, "token_hmac_secret_key");
    assert_eq!(e.problem, KeyProblem::HmacSecretIsPublicKey);
    // The lenient constructor leaves it out: the confusion token fails, RS256 still works.
    let v = TokenVerifier::from_config(&c);
    assert!(is_invalid(v.verify_connect(
        &token("hs256_with_rsa_pem"),
        NOW,
        true
    )));
    assert!(v.verify_connect(&token("rs256"), NOW, true).is_ok());
}

#[test]
fn lenient_from_config_drops_only_the_bad_key() {
    let mut c = cfg();
    c.token_rsa_public_key = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into();
    assert_eq!(err(&c).field, "token_rsa_public_key");
    let v = TokenVerifier::from_config(&c);
    assert!(v.verify_connect(&token("hs256_secret"), NOW, true).is_ok());
    assert!(v.verify_connect(&token("es256"), NOW, true).is_ok());
    assert!(is_invalid(v.verify_connect(&token("rs256"), NOW, true)));
}

#[test]
fn user_id_claim_from_config() {
    let mut c = cfg();
    c.token_user_id_claim = "user_id".into();
    let v = TokenVerifier::try_from_config(&c).unwrap();
    assert_eq!(
        v.verify_connect(&token("rs256"), NOW, true).unwrap().user,
        "u-77"
    );
    for bad in ["user-id", "a.b", "sub ", "ид"] {
        c.token_user_id_claim = bad.into();
        let e = err(&c);
        assert_eq!(e.field, "token_user_id_claim", "{bad}");
        assert_eq!(e.problem, KeyProblem::BadClaimName(bad.into()), "{bad}");
    }
}

#[test]
fn subscription_block_inherits_nothing() {
    let mut c = cfg();
    c.token_audience = "rotor".into();
    c.subscription_token = Some(TokenKeys {
        rsa_public_key: pem("rsa.cert.pem").into(),
        ..Default::default()
    });
    let v = TokenVerifier::try_from_config(&c).unwrap();
    // Subscription tokens: only the block's RSA key, and no audience check.
    assert_eq!(
        v.verify_subscribe(&token("rs256_sub"), NOW)
            .unwrap()
            .channel,
        "$gossips"
    );
    assert!(is_invalid(v.verify_subscribe(&token("es256_sub"), NOW)));
    let hs = sign_hs256("rotor-secret", r#"{"sub":"alice","channel":"$gossips"}"#);
    assert!(is_invalid(v.verify_subscribe(&hs, NOW)));
    // Connection tokens keep the connection block (with its audience check).
    let conn = sign_hs256("rotor-secret", r#"{"sub":"alice","aud":"rotor"}"#);
    assert!(v.verify_connect(&conn, NOW, true).is_ok());
    assert!(is_invalid(v.verify_connect(&token("rs256"), NOW, true)));
    // An empty block: every subscription token fails.
    c.subscription_token = Some(TokenKeys::default());
    let v = TokenVerifier::try_from_config(&c).unwrap();
    assert!(is_invalid(v.verify_subscribe(&token("rs256_sub"), NOW)));
    assert!(is_invalid(v.verify_subscribe(&hs, NOW)));
}

#[test]
fn subscription_block_has_its_own_claims_rules_and_field_names() {
    let mut c = cfg();
    c.subscription_token = Some(TokenKeys {
        hmac_secret_key: "sub-secret".into(),
        audience: "subs".into(),
        user_id_claim: "uid".into(),
        ..Default::default()
    });
    let v = TokenVerifier::try_from_config(&c).unwrap();
    let t = sign_hs256("sub-secret", r#"{"uid":7,"aud":"subs","channel":"$c"}"#);
    assert_eq!(
        v.verify_subscribe(&t, NOW).unwrap().user.as_deref(),
        Some("7")
    );
    let t = sign_hs256("sub-secret", r#"{"uid":7,"channel":"$c"}"#);
    assert!(is_invalid(v.verify_subscribe(&t, NOW)));
    // The connection block's user stays `sub`.
    let conn = sign_hs256("rotor-secret", r#"{"sub":"alice","uid":7}"#);
    assert_eq!(v.verify_connect(&conn, NOW, true).unwrap().user, "alice");

    let block = c.subscription_token.as_mut().unwrap();
    block.ecdsa_public_key = pem("rsa.pub.pem").into();
    assert_eq!(err(&c).field, "subscription_token.ecdsa_public_key");
    let block = c.subscription_token.as_mut().unwrap();
    block.ecdsa_public_key.clear();
    block.user_id_claim = "a-b".into();
    assert_eq!(err(&c).field, "subscription_token.user_id_claim");
    let block = c.subscription_token.as_mut().unwrap();
    block.user_id_claim.clear();
    block.hmac_secret_key = pem("ec256.cert.pem").into();
    assert_eq!(err(&c).field, "subscription_token.hmac_secret_key");
}

#[test]
fn builder_user_id_claim_and_subscription_verifier() {
    let sub = TokenVerifier::new("s").with_user_id_claim("uid");
    let v = TokenVerifier::new("c").with_subscription_verifier(sub);
    let t = sign_hs256("s", r#"{"uid":"u1","channel":"x"}"#);
    assert_eq!(
        v.verify_subscribe(&t, NOW).unwrap().user.as_deref(),
        Some("u1")
    );
    assert!(is_invalid(v.verify_connect(&t, NOW, true)));
}
