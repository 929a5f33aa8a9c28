//! Token keys of both generations (TOKENS.md §1): every key lands in the node config, errors
//! name the key as the configuration spelled it, and the keys Rotor still lacks warn.

use super::*;

const RSA_PEM: &str = include_str!("../../../../core/src/auth/testdata/rsa.pub.pem");
const EC_PEM: &str = include_str!("../../../../core/src/auth/testdata/ec256.pub.pem");
const PKCS1_PEM: &str = include_str!("../../../../core/src/auth/testdata/rsa.pkcs1.pem");

fn json_file(v: serde_json::Value) -> Result<LoadedConfig, String> {
    from_file(&v.to_string())
}

fn env(vars: &[(&str, &str)]) -> Result<LoadedConfig, String> {
    run(None, vars)
}

#[test]
fn flat_connection_keys_of_2x_and_v5() {
    let c = json_file(json!({
        "token_hmac_secret_key": "s",
        "token_rsa_public_key": RSA_PEM,
        "token_ecdsa_public_key": EC_PEM,
        "token_user_id_claim": "uid",
        "token_audience_regex": "^app-(a|b)$",
        "token_issuer_regex": "^https://idp/(x|y)$",
    }))
    .unwrap();
    let n = &c.node;
    assert_eq!(n.token_rsa_public_key, RSA_PEM);
    assert_eq!(n.token_ecdsa_public_key, EC_PEM);
    assert_eq!(n.token_user_id_claim, "uid");
    assert_eq!(n.token_audience_regex, "^app-(a|b)$");
    assert_eq!(n.token_issuer_regex, "^https://idp/(x|y)$");
    assert_eq!(n.subscription_token, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c =
        json_file(json!({"token_jwks_public_endpoint": "https://idp.example.com/jwks"})).unwrap();
    assert_eq!(
        c.node.token_jwks_public_endpoint,
        "https://idp.example.com/jwks"
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Environment, flat names.
    let c = env(&[
        ("CENTRIFUGO_TOKEN_RSA_PUBLIC_KEY", RSA_PEM),
        ("CENTRIFUGO_TOKEN_USER_ID_CLAIM", "uid"),
        ("CENTRIFUGO_TOKEN_ISSUER_REGEX", "^i$"),
    ])
    .unwrap();
    assert_eq!(c.node.token_rsa_public_key, RSA_PEM);
    assert_eq!(c.node.token_user_id_claim, "uid");
    assert_eq!(c.node.token_issuer_regex, "^i$");
}

#[test]
fn v5_flat_subscription_block() {
    let c = json_file(json!({
        "token_hmac_secret_key": "conn",
        "separate_subscription_token_config": true,
        "subscription_token_hmac_secret_key": "sub",
        "subscription_token_rsa_public_key": RSA_PEM,
        "subscription_token_ecdsa_public_key": EC_PEM,
        "subscription_token_jwks_public_endpoint": "",
        "subscription_token_audience": "aud",
        "subscription_token_issuer_regex": "^iss$",
        "subscription_token_user_id_claim": "user_id",
    }))
    .unwrap();
    let b = c.node.subscription_token.clone().unwrap();
    assert_eq!(b.hmac_secret_key, "sub");
    assert_eq!(b.rsa_public_key, RSA_PEM);
    assert_eq!(b.ecdsa_public_key, EC_PEM);
    assert_eq!(b.audience, "aud");
    assert_eq!(b.issuer_regex, "^iss$");
    assert_eq!(b.user_id_claim, "user_id");
    assert_eq!(c.node.token_hmac_secret_key, "conn");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Keys without the switch: ignored, with a warning that says so.
    let c = json_file(json!({"subscription_token_hmac_secret_key": "sub"})).unwrap();
    assert_eq!(c.node.subscription_token, None);
    has(
        &c.warnings.join("\n"),
        "subscription_token_hmac_secret_key set but the separate subscription-token block is off",
    );
    let c = json_file(json!({"client": {"subscription_token": {"audience": "a"}}})).unwrap();
    has(
        &c.warnings.join("\n"),
        "client.subscription_token.audience set but the separate",
    );
}

#[test]
fn v6_nested_blocks_file_and_env() {
    let c = load_text(
        "yaml",
        &format!(
            "client:\n  token:\n    hmac_secret_key: s\n    rsa_public_key: |\n{}    \
             ecdsa_public_key: ''\n    jwks_public_endpoint: ''\n    audience_regex: '^a$'\n    \
             issuer: iss\n    user_id_claim: uid\n  subscription_token:\n    enabled: true\n    \
             jwks_public_endpoint: https://idp.example.com/{{{{tenant}}}}/jwks\n    \
             issuer_regex: '^https://idp.example.com/(?P<tenant>acme|globex)$'\n    \
             audience: subs\n    user_id_claim: sid\n    hmac_secret_key: ss\n",
            RSA_PEM
                .lines()
                .map(|l| format!("      {l}\n"))
                .collect::<String>()
        ),
        &[],
    )
    .unwrap();
    let n = &c.node;
    assert_eq!(n.token_hmac_secret_key, "s");
    assert_eq!(n.token_rsa_public_key.trim(), RSA_PEM.trim());
    assert_eq!(n.token_audience_regex, "^a$");
    assert_eq!(n.token_issuer, "iss");
    assert_eq!(n.token_user_id_claim, "uid");
    let b = n.subscription_token.clone().unwrap();
    assert_eq!(
        b.jwks_public_endpoint,
        "https://idp.example.com/{{tenant}}/jwks"
    );
    assert_eq!(
        b.issuer_regex,
        "^https://idp.example.com/(?P<tenant>acme|globex)$"
    );
    assert_eq!(
        (&*b.audience, &*b.user_id_claim, &*b.hmac_secret_key),
        ("subs", "sid", "ss")
    );
    // Nothing inherited: the block has no RSA key although the connection block has one.
    assert!(b.rsa_public_key.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let c = env(&[
        ("CENTRIFUGO_CLIENT_TOKEN_ECDSA_PUBLIC_KEY", EC_PEM),
        ("CENTRIFUGO_CLIENT_TOKEN_ISSUER_REGEX", "^i$"),
        (
            "CENTRIFUGO_CLIENT_TOKEN_JWKS_PUBLIC_ENDPOINT",
            "http://127.0.0.1:1/jwks",
        ),
        ("CENTRIFUGO_CLIENT_SUBSCRIPTION_TOKEN_ENABLED", "true"),
        (
            "CENTRIFUGO_CLIENT_SUBSCRIPTION_TOKEN_RSA_PUBLIC_KEY",
            RSA_PEM,
        ),
        ("CENTRIFUGO_CLIENT_SUBSCRIPTION_TOKEN_AUDIENCE_REGEX", "x"),
        ("CENTRIFUGO_CLIENT_SUBSCRIPTION_TOKEN_ISSUER", "i"),
    ])
    .unwrap();
    let n = &c.node;
    assert_eq!(n.token_ecdsa_public_key, EC_PEM);
    assert_eq!(n.token_issuer_regex, "^i$");
    assert_eq!(n.token_jwks_public_endpoint, "http://127.0.0.1:1/jwks");
    let b = n.subscription_token.clone().unwrap();
    assert_eq!(
        (&*b.rsa_public_key, &*b.audience_regex, &*b.issuer),
        (RSA_PEM, "x", "i")
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // enabled: false → no block.
    let c = json_file(json!({"client": {"subscription_token": {"enabled": false}}})).unwrap();
    assert_eq!(c.node.subscription_token, None);
}

#[test]
fn exact_and_regex_of_one_claim_together_are_errors() {
    let e = json_file(json!({"token_audience": "a", "token_audience_regex": "a"})).unwrap_err();
    has(&e, r#"config key "token_audience_regex""#);
    has(&e, "cannot be set together with token_audience");
    let e =
        json_file(json!({"client": {"token": {"issuer": "a", "issuer_regex": "a"}}})).unwrap_err();
    has(&e, r#"config key "client.token.issuer_regex""#);
    has(&e, "cannot be set together with client.token.issuer");
    let e = json_file(json!({"client": {"subscription_token": {"enabled": true,
        "audience": "a", "audience_regex": "b"}}}))
    .unwrap_err();
    has(
        &e,
        r#"config key "client.subscription_token.audience_regex""#,
    );
    has(
        &e,
        "cannot be set together with client.subscription_token.audience",
    );
    let e = env(&[
        ("CENTRIFUGO_SEPARATE_SUBSCRIPTION_TOKEN_CONFIG", "true"),
        ("CENTRIFUGO_SUBSCRIPTION_TOKEN_ISSUER", "a"),
        ("CENTRIFUGO_SUBSCRIPTION_TOKEN_ISSUER_REGEX", "a"),
    ])
    .unwrap_err();
    has(&e, r#"config key "subscription_token_issuer_regex""#);
    has(&e, "from env CENTRIFUGO_SUBSCRIPTION_TOKEN_ISSUER_REGEX");
}

#[test]
fn unusable_values_are_errors_naming_the_key() {
    let e = json_file(json!({"token_rsa_public_key": PKCS1_PEM})).unwrap_err();
    has(&e, r#"config key "token_rsa_public_key""#);
    has(&e, "\"PUBLIC KEY\" (SPKI) or \"CERTIFICATE\" (X.509)");
    let e = json_file(json!({"client": {"token": {"ecdsa_public_key": RSA_PEM}}})).unwrap_err();
    has(&e, r#"config key "client.token.ecdsa_public_key""#);
    has(&e, "an RSA key where an ECDSA key");
    let e = json_file(json!({"token_rsa_public_key": "not a key"})).unwrap_err();
    has(&e, "not PEM text");
    let e = json_file(json!({"client": {"token": {"issuer_regex": "(unclosed"}}})).unwrap_err();
    has(&e, r#"config key "client.token.issuer_regex""#);
    has(&e, "not a valid regular expression");
    let e = json_file(json!({"token_audience_regex": "["})).unwrap_err();
    has(&e, r#"config key "token_audience_regex""#);
    let e = json_file(json!({"token_user_id_claim": "a.b"})).unwrap_err();
    has(&e, r#"config key "token_user_id_claim""#);
    has(&e, "^[a-zA-Z_]+$");
    let e = json_file(json!({"client": {"subscription_token": {"enabled": true,
        "user_id_claim": "1"}}}))
    .unwrap_err();
    has(
        &e,
        r#"config key "client.subscription_token.user_id_claim""#,
    );
    let e = json_file(json!({"token_hmac_secret_key": RSA_PEM})).unwrap_err();
    has(&e, r#"config key "token_hmac_secret_key""#);
    // Wrong types.
    has(
        &json_file(json!({"token_rsa_public_key": 5})).unwrap_err(),
        "token_rsa_public_key",
    );
    has(
        &json_file(json!({"client": {"subscription_token": {"enabled": "x"}}})).unwrap_err(),
        "client.subscription_token.enabled",
    );
}

#[test]
fn jwks_endpoints_are_checked_at_load() {
    let e = json_file(json!({"token_jwks_public_endpoint": "ftp://idp/jwks"})).unwrap_err();
    has(&e, r#"config key "token_jwks_public_endpoint""#);
    // A placeholder fed by a free-text group (CVE-2026-32301): refused, naming the regex.
    let e = json_file(json!({"client": {"token": {
        "jwks_public_endpoint": "https://idp.example.com/{{tenant}}/jwks",
        "issuer_regex": "^https://idp/(?P<tenant>.+)$"}}}))
    .unwrap_err();
    has(&e, r#"config key "client.token.issuer_regex""#);
    let e = json_file(json!({
        "token_jwks_public_endpoint": "https://idp.example.com/{{tenant}}/jwks"}))
    .unwrap_err();
    has(&e, r#"config key "token_jwks_public_endpoint""#);
    // The subscription block's endpoint is checked too.
    let e = json_file(json!({"separate_subscription_token_config": true,
        "subscription_token_jwks_public_endpoint": "https://idp/{{t}}",
        "subscription_token_audience_regex": "(?P<t>[a-z]+)"}))
    .unwrap_err();
    has(&e, r#"config key "subscription_token_audience_regex""#);
    // A literal list is fine.
    let c = json_file(json!({"client": {"token": {
        "jwks_public_endpoint": "https://idp.example.com/{{tenant}}/jwks",
        "issuer_regex": "^https://idp\\.example\\.com/(?P<tenant>acme|globex)$"}}}))
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn keys_not_implemented_still_warn() {
    let c = json_file(json!({"client": {
        "token": {"hmac_secret_key": "s", "hmac_previous_secret_key": "old",
            "insecure_skip_jwks_endpoint_safety_check": true},
        "insecure_skip_token_signature_verify": true,
        "subscription_token": {"enabled": true, "hmac_previous_secret_key": "old"}}}))
    .unwrap();
    let w = c.warnings.join("\n");
    for key in [
        "client.token.hmac_previous_secret_key",
        "client.token.insecure_skip_jwks_endpoint_safety_check",
        "client.insecure_skip_token_signature_verify",
        "client.subscription_token.hmac_previous_secret_key",
    ] {
        has(
            &w,
            &format!("config key {key:?} is not supported yet; ignored"),
        );
    }
    assert_eq!(c.warnings.len(), 4, "{w}");
    // Nothing about the implemented keys.
    let c = json_file(json!({"token_rsa_public_key": RSA_PEM, "token_issuer_regex": "x"})).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn missing_keys_line_counts_public_keys_and_jwks() {
    let c = json_file(json!({"token_rsa_public_key": RSA_PEM, "api_key": "k"})).unwrap();
    assert!(
        missing_for_clients(&c).is_empty(),
        "{:?}",
        missing_for_clients(&c)
    );
    let c = json_file(json!({"client": {"token": {
        "jwks_public_endpoint": "https://idp.example.com/jwks"}}, "api_key": "k"}))
    .unwrap();
    assert!(missing_for_clients(&c).is_empty());
    let c = json_file(json!({"api_key": "k"})).unwrap();
    has(
        &missing_for_clients(&c).join("\n"),
        "token_hmac_secret_key is not set (nor token_rsa_public_key",
    );
}
