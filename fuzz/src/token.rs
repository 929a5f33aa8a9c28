//! Connection and subscription tokens (`rotor_core::auth`): the compact JWS parser, the
//! signature check, the claim parser and checks, and the PEM/SPKI key parser.

use std::sync::OnceLock;

use rotor_core::auth::{sign_hmac, StaticKeySet, TokenVerifier, VerifyingKey};

use crate::split_mode;

const SECRET: &str = "fuzz-secret";
const OTHER: &str = "fuzz-other-secret";
/// "Now" for the claim checks: fixed, so a run is reproducible.
const NOW: i64 = 1_750_000_000;

const TESTDATA: &[&str] = &[
    include_str!("../../crates/core/src/auth/testdata/rsa.pub.pem"),
    include_str!("../../crates/core/src/auth/testdata/ec256.pub.pem"),
    include_str!("../../crates/core/src/auth/testdata/ec384.pub.pem"),
    include_str!("../../crates/core/src/auth/testdata/ec521.pub.pem"),
    include_str!("../../crates/core/src/auth/testdata/ed25519.pub.pem"),
];

/// The verifiers: every key kind with [`SECRET`], and one holding only [`OTHER`].
fn verifiers() -> &'static (TokenVerifier, TokenVerifier) {
    static V: OnceLock<(TokenVerifier, TokenVerifier)> = OnceLock::new();
    V.get_or_init(|| {
        let mut keys = StaticKeySet::new().with_hmac_secret(SECRET);
        for pem in TESTDATA {
            keys = keys.with_key(VerifyingKey::from_pem(pem).expect("testdata key"));
        }
        (TokenVerifier::with_keys(keys), TokenVerifier::new(OTHER))
    })
}

/// Mode byte:
/// * 0: the rest is a token, verified as a connection and as a subscription token. A token
///   the right verifier accepts must be refused by a verifier with another secret (a JWT is
///   never accepted without the right signature).
/// * 1–3: the rest is a claims object, signed HS256/384/512 with the right secret, so the
///   claim parser and checks see every input. Then: the other secret refuses it, a changed
///   signature or `alg: none` header is refused, and verifying twice gives the same result.
/// * 4: the rest is PEM text for the key parser; 5: DER (SubjectPublicKeyInfo).
pub fn jwt(data: &[u8]) {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    let (right, other) = verifiers();
    match mode % 6 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            if right.verify_connect(token, NOW, true).is_ok() {
                assert!(other.verify_connect(token, NOW, true).is_err());
            }
            if right.verify_subscribe(token, NOW).is_ok() {
                assert!(other.verify_subscribe(token, NOW).is_err());
            }
        }
        m @ 1..=3 => {
            let Ok(claims) = std::str::from_utf8(rest) else {
                return;
            };
            let alg = ["HS256", "HS384", "HS512"][usize::from(m - 1)];
            let Some(token) = sign_hmac(alg, SECRET, claims) else {
                return;
            };
            signed(right, other, &token);
        }
        4 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = VerifyingKey::from_pem(text);
            }
        }
        _ => {
            let _ = VerifyingKey::from_spki_der(rest);
        }
    }
}

fn signed(right: &TokenVerifier, other: &TokenVerifier, token: &str) {
    let connect = right.verify_connect(token, NOW, true);
    assert_eq!(connect, right.verify_connect(token, NOW, true));
    let lenient = right.verify_connect(token, NOW, false);
    if connect.is_ok() {
        assert!(lenient.is_ok(), "valid with exp checks, invalid without");
    }
    let subscribe = right.verify_subscribe(token, NOW);
    assert_eq!(subscribe, right.verify_subscribe(token, NOW));
    for t in forgeries(token) {
        assert!(right.verify_connect(&t, NOW, false).is_err(), "forged: {t}");
        assert!(right.verify_subscribe(&t, NOW).is_err(), "forged: {t}");
    }
    assert!(other.verify_connect(token, NOW, false).is_err());
    assert!(other.verify_subscribe(token, NOW).is_err());
}

/// `token` with its signature's first character changed, and with an `alg: none` header.
fn forgeries(token: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(dot) = token.rfind('.') {
        let (head, sig) = token.split_at(dot + 1);
        if let Some(c) = sig.chars().next() {
            let swapped = if c == 'A' { 'B' } else { 'A' };
            out.push(format!("{head}{swapped}{}", &sig[c.len_utf8()..]));
        }
        // {"alg":"none","typ":"JWT"}, no signature.
        if let Some(first) = head.find('.') {
            let body = &head[first + 1..];
            out.push(format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{body}"));
        }
    }
    out
}
