//! HMAC tokens: structure, header, signature, sizes and hostile input.

use super::{b64, connect, is_invalid, token_with_header, verifier, NOW, SECRET};
use crate::auth::*;
use ::hmac::{Hmac, KeyInit, Mac};
use base64::Engine as _;
use sha2::Sha256;

#[test]
fn valid_hs256_connect_token() {
    let claims = format!(
        r#"{{"sub":"42","exp":{},"info":{{"name":"Alice"}},"channels":["news","$chat"],"iat":1,"jti":"x","aud":"a","iss":"i"}}"#,
        NOW + 100
    );
    let c = connect(&claims).unwrap();
    assert_eq!(c.user, "42");
    assert_eq!(c.exp, Some(NOW + 100));
    assert_eq!(c.info.as_deref(), Some(&br#"{"name":"Alice"}"#[..]));
    assert_eq!(c.channels, vec!["news".to_string(), "$chat".to_string()]);
    assert!(!c.has_channel_claim);
}

#[test]
fn minimal_connect_token_defaults() {
    let c = connect("{}").unwrap();
    assert_eq!(c, ConnectClaims::default());
    let c = connect(r#"{"sub":null,"info":null,"channels":null,"exp":null}"#).unwrap();
    assert_eq!(c, ConnectClaims::default());
}

#[test]
fn valid_hs384_and_hs512() {
    for alg in ["HS256", "HS384", "HS512"] {
        let t = sign_hmac(alg, SECRET, r#"{"sub":"u"}"#).unwrap();
        assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "u");
        let t = sign_hmac(alg, SECRET, r#"{"client":"c","channel":"$x"}"#).unwrap();
        let s = verifier().verify_subscribe(&t, NOW).unwrap();
        assert_eq!(s.channel, "$x");
        assert_eq!(s.client.as_deref(), Some("c"));
    }
    assert_eq!(
        sign_hmac("HS256", SECRET, "{}").unwrap(),
        sign_hs256(SECRET, "{}")
    );
}

#[test]
fn sign_hmac_rejects_unknown_alg() {
    assert_eq!(sign_hmac("RS256", SECRET, "{}"), None);
    assert_eq!(sign_hmac("none", SECRET, "{}"), None);
    assert_eq!(sign_hmac("hs256", SECRET, "{}"), None);
}

#[test]
fn known_hs256_vector() {
    // Independently computed: HMAC-SHA256 over `header.payload` with key "secret".
    let t = sign_hs256(SECRET, r#"{"sub":"1234567890"}"#);
    let input = t.rsplit_once('.').unwrap().0;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"secret").unwrap();
    Mac::update(&mut mac, input.as_bytes());
    assert_eq!(
        t.rsplit_once('.').unwrap().1,
        b64(mac.finalize().into_bytes())
    );
    assert!(t.starts_with(&b64(r#"{"alg":"HS256","typ":"JWT"}"#)));
}

#[test]
fn wrong_secret_is_invalid() {
    let t = sign_hs256("other", r#"{"sub":"42"}"#);
    assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
    assert!(is_invalid(verifier().verify_subscribe(&t, NOW)));
    // Mismatch across HMAC sizes: header says HS512, MAC is HS256.
    let t = token_with_header(r#"{"alg":"HS512"}"#, Alg::Hs256, SECRET, "{}");
    assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
}

#[test]
fn empty_secret_rejects_everything() {
    let v = TokenVerifier::new("");
    for alg in ["HS256", "HS384", "HS512"] {
        let t = sign_hmac(alg, "", r#"{"sub":"42"}"#).unwrap();
        assert!(is_invalid(v.verify_connect(&t, NOW, true)));
        assert!(is_invalid(v.verify_subscribe(&t, NOW)));
    }
    let t = sign_hs256(SECRET, "{}");
    assert!(is_invalid(v.verify_connect(&t, NOW, false)));
}

#[test]
fn alg_none_is_invalid() {
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"42"}"#));
    assert!(is_invalid(verifier().verify_connect(&unsigned, NOW, true)));
    let unsigned2 = format!("{}.{}", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"42"}"#));
    assert!(is_invalid(verifier().verify_connect(&unsigned2, NOW, true)));
    let signed = token_with_header(r#"{"alg":"none"}"#, Alg::Hs256, SECRET, "{}");
    assert!(is_invalid(verifier().verify_connect(&signed, NOW, true)));
}

#[test]
fn asymmetric_and_unknown_algs_are_invalid_against_hmac_key() {
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "ES256", "ES512", "EdDSA", "hs256", "HS1024", "",
        "HS256 ",
    ] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        // MAC'ed with the HMAC secret: classic RS256→HS256 confusion attempt.
        let t = token_with_header(&header, Alg::Hs256, SECRET, r#"{"sub":"42"}"#);
        assert!(
            is_invalid(verifier().verify_connect(&t, NOW, true)),
            "{alg}"
        );
        assert!(is_invalid(verifier().verify_subscribe(&t, NOW)), "{alg}");
    }
}

#[test]
fn header_shape() {
    // `typ` optional and unchecked; other parameters ignored.
    for header in [
        r#"{"alg":"HS256"}"#,
        r#"{"typ":"at+jwt","alg":"HS256","kid":"k1"}"#,
        " { \"alg\" : \"HS256\" } ",
    ] {
        let t = token_with_header(header, Alg::Hs256, SECRET, r#"{"sub":"42"}"#);
        assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "42");
    }
    for header in [
        r#"{}"#,
        r#"{"alg":256}"#,
        r#"{"alg":null}"#,
        r#"["HS256"]"#,
        r#""HS256""#,
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"HS256"} x"#,
        "not json",
    ] {
        let t = token_with_header(header, Alg::Hs256, SECRET, "{}");
        assert!(
            is_invalid(verifier().verify_connect(&t, NOW, true)),
            "{header}"
        );
    }
}

#[test]
fn signature_checked_before_time_claims() {
    let claims = format!(r#"{{"exp":{},"nbf":{}}}"#, NOW - 10, NOW + 10);
    let t = sign_hs256("wrong", &claims);
    assert!(is_invalid(verifier().verify_connect(&t, NOW, true)));
    assert!(is_invalid(verifier().verify_subscribe(&t, NOW)));
    assert_eq!(
        verifier().verify_subscribe(&sign_hs256(SECRET, &claims), NOW),
        Err(TokenError::Expired)
    );
}

#[test]
fn tampered_payload_or_signature_is_invalid() {
    let t = sign_hs256(SECRET, r#"{"sub":"42"}"#);
    let (head, sig) = t.rsplit_once('.').unwrap();
    let header = head.split('.').next().unwrap();
    let forged = format!("{header}.{}.{sig}", b64(r#"{"sub":"admin"}"#));
    assert!(is_invalid(verifier().verify_connect(&forged, NOW, true)));
    // Truncated, empty and extended signatures.
    let short = format!("{head}.{}", &sig[..sig.len() - 4]);
    assert!(is_invalid(verifier().verify_connect(&short, NOW, true)));
    assert!(is_invalid(verifier().verify_connect(
        &format!("{head}."),
        NOW,
        true
    )));
    let long = format!("{head}.{sig}AAAA");
    assert!(is_invalid(verifier().verify_connect(&long, NOW, true)));
}

#[test]
fn padded_segments_are_tolerated() {
    // Header and payload lengths chosen so each base64 segment needs padding.
    let header = r#"{"alg":"HS256"}"#; // 15 bytes → no pad; make it 16
    let header = format!("{header} ");
    let claims = r#"{"sub":"4"}"#; // 11 bytes → one '='
    let input = format!(
        "{}.{}",
        base64::engine::general_purpose::URL_SAFE.encode(&header),
        base64::engine::general_purpose::URL_SAFE.encode(claims)
    );
    assert!(input.contains('='));
    let sig = crate::auth::hmac::sign(Alg::Hs256, SECRET.as_bytes(), input.as_bytes()).unwrap();
    let t = format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE.encode(sig)
    );
    assert_eq!(verifier().verify_connect(&t, NOW, true).unwrap().user, "4");
}
