//! Key material: each PEM form, refused forms with their messages, and key checks.

use super::{pem, token, NOW};
use crate::auth::{Alg, EcCurve, KeyKind, KeyProblem, StaticKeySet, TokenVerifier, VerifyingKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

fn kind(name: &str) -> Result<KeyKind, KeyProblem> {
    VerifyingKey::from_pem(pem(name)).map(|k| k.kind())
}

/// The DER inside a one-block PEM fixture.
fn der(name: &str) -> Vec<u8> {
    let body: String = pem(name)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

fn verifies(key: VerifyingKey, token_name: &str) -> bool {
    TokenVerifier::with_keys(StaticKeySet::new().with_key(key))
        .verify_connect(&token(token_name), NOW, true)
        .is_ok()
}

#[test]
fn spki_and_certificate_forms_of_each_kind() {
    for (name, want) in [
        ("rsa.pub.pem", KeyKind::Rsa),
        ("rsa.cert.pem", KeyKind::Rsa),
        ("rsa_other.pub.pem", KeyKind::Rsa),
        ("ec256.pub.pem", KeyKind::Ec(EcCurve::P256)),
        ("ec256.cert.pem", KeyKind::Ec(EcCurve::P256)),
        ("ec384.pub.pem", KeyKind::Ec(EcCurve::P384)),
        ("ec521.pub.pem", KeyKind::Ec(EcCurve::P521)),
        ("ec521.cert.pem", KeyKind::Ec(EcCurve::P521)),
        ("ed25519.pub.pem", KeyKind::Ed25519),
        ("ed25519.cert.pem", KeyKind::Ed25519),
    ] {
        assert_eq!(kind(name), Ok(want), "{name}");
    }
}

#[test]
fn a_certificate_key_verifies_like_the_spki_key() {
    for (cert, tok) in [
        ("rsa.cert.pem", "rs256"),
        ("ec256.cert.pem", "es256"),
        ("ec521.cert.pem", "es512"),
        ("ed25519.cert.pem", "eddsa"),
    ] {
        let key = VerifyingKey::from_pem(pem(cert)).unwrap();
        assert!(verifies(key, tok), "{cert}");
    }
    let other = VerifyingKey::from_pem(pem("rsa_other.pub.pem")).unwrap();
    assert!(!verifies(other, "rs256"));
}

#[test]
fn spki_der_is_accepted_directly() {
    let key = VerifyingKey::from_spki_der(&der("ec384.pub.pem")).unwrap();
    assert!(verifies(key, "es384"));
    let mut trailing = der("ec384.pub.pem");
    trailing.push(0);
    assert!(VerifyingKey::from_spki_der(&trailing).is_err());
    assert!(VerifyingKey::from_spki_der(&[]).is_err());
}

#[test]
fn pkcs1_and_private_keys_are_refused_naming_the_wanted_forms() {
    let e = VerifyingKey::from_pem(pem("rsa.pkcs1.pem")).unwrap_err();
    assert!(matches!(&e, KeyProblem::WrongForm { label, .. } if label == "RSA PUBLIC KEY"));
    let msg = e.to_string();
    assert!(msg.contains("\"PUBLIC KEY\" (SPKI)"), "{msg}");
    assert!(msg.contains("\"CERTIFICATE\" (X.509)"), "{msg}");
    assert!(msg.contains("openssl rsa -RSAPublicKey_in"), "{msg}");
    let e = VerifyingKey::from_pem(pem("ec_private.pem")).unwrap_err();
    assert!(matches!(&e, KeyProblem::WrongForm { label, .. } if label == "PRIVATE KEY"));
    assert!(e.to_string().contains("private key"), "{e}");
    let csr = "-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n";
    let e = VerifyingKey::from_pem(csr).unwrap_err();
    assert!(e.to_string().contains("expected \"PUBLIC KEY\""), "{e}");
}

#[test]
fn not_pem_and_broken_pem_are_refused() {
    for text in [
        "",
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
        "/etc/rotor/key.pem",
    ] {
        assert_eq!(
            VerifyingKey::from_pem(text).unwrap_err(),
            KeyProblem::NotPem,
            "{text:?}"
        );
    }
    let e = VerifyingKey::from_pem(&"x".repeat(300 * 1024)).unwrap_err();
    assert!(matches!(e, KeyProblem::Malformed(_)));
    // A PUBLIC KEY block whose DER is cut short.
    let full = pem("rsa.pub.pem");
    let mut lines: Vec<&str> = full.lines().collect();
    lines.remove(3);
    let cut = lines.join("\n");
    assert!(VerifyingKey::from_pem(&cut).is_err());
    let bad_b64 = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
    assert!(VerifyingKey::from_pem(bad_b64).is_err());
}

#[test]
fn label_is_not_trusted_and_only_the_first_block_counts() {
    // Centrifugo reads the DER whatever the label says.
    let relabelled = pem("ec256.pub.pem").replace("PUBLIC KEY", "CERTIFICATE");
    assert_eq!(
        VerifyingKey::from_pem(&relabelled).map(|k| k.kind()),
        Ok(KeyKind::Ec(EcCurve::P256))
    );
    let chain = format!("{}{}", pem("ec256.cert.pem"), pem("rsa.cert.pem"));
    assert_eq!(
        VerifyingKey::from_pem(&chain).map(|k| k.kind()),
        Ok(KeyKind::Ec(EcCurve::P256))
    );
    let padded = format!("\n  \n{}", pem("rsa.pub.pem"));
    assert_eq!(
        VerifyingKey::from_pem(&padded).map(|k| k.kind()),
        Ok(KeyKind::Rsa)
    );
}

#[test]
fn unusable_keys_are_refused_with_a_reason() {
    assert_eq!(kind("rsa1024.pub.pem"), Err(KeyProblem::RsaSize(1024)));
    let e = kind("ec224.pub.pem").unwrap_err();
    assert!(
        matches!(&e, KeyProblem::UnsupportedCurve(c) if c.contains("P-224")),
        "{e}"
    );
    assert!(e.to_string().contains("P-256 (ES256)"), "{e}");
    let e = kind("secp256k1.pub.pem").unwrap_err();
    assert!(
        matches!(&e, KeyProblem::UnsupportedCurve(c) if c.contains("secp256k1")),
        "{e}"
    );
}

#[test]
fn ec_points_are_checked() {
    for (name, curve, tok) in [
        ("ec256.pub.pem", EcCurve::P256, "es256"),
        ("ec384.pub.pem", EcCurve::P384, "es384"),
        ("ec521.pub.pem", EcCurve::P521, "es512"),
    ] {
        let der = der(name);
        let len = curve.coordinate_len();
        let point = &der[der.len() - (1 + 2 * len)..];
        assert_eq!(point[0], 4, "{name}: uncompressed point expected");
        let (x, y) = (&point[1..=len], &point[1 + len..]);
        assert!(
            verifies(VerifyingKey::ec(curve, x, y).unwrap(), tok),
            "{name}"
        );
        assert!(
            verifies(VerifyingKey::ec_sec1(curve, point).unwrap(), tok),
            "{name}"
        );
        // Off the curve.
        let mut bad_y = y.to_vec();
        bad_y[len - 1] ^= 1;
        assert_eq!(
            VerifyingKey::ec(curve, x, &bad_y).unwrap_err(),
            KeyProblem::InvalidPoint,
            "{name}"
        );
        // Coordinates of the wrong size (e.g. a JWK with a leading zero dropped).
        assert!(VerifyingKey::ec(curve, &x[1..], y).is_err(), "{name}");
        // The point under another curve.
        let other = if curve == EcCurve::P256 {
            EcCurve::P384
        } else {
            EcCurve::P256
        };
        assert!(VerifyingKey::ec_sec1(other, point).is_err(), "{name}");
        // Compressed form is refused.
        let mut compressed = vec![2 + (y[len - 1] & 1)];
        compressed.extend_from_slice(x);
        assert!(VerifyingKey::ec_sec1(curve, &compressed).is_err(), "{name}");
    }
}

#[test]
fn rsa_components_are_checked() {
    let mut n = vec![0xC5u8; 256];
    n[255] |= 1;
    assert!(VerifyingKey::rsa(&n, &[1, 0, 1]).is_ok());
    // Leading zeros do not count toward the size.
    let mut padded = vec![0, 0];
    padded.extend_from_slice(&n);
    assert!(VerifyingKey::rsa(&padded, &[0, 1, 0, 1]).is_ok());
    assert_eq!(
        VerifyingKey::rsa(&n[..128], &[1, 0, 1]).unwrap_err(),
        KeyProblem::RsaSize(1024)
    );
    assert_eq!(
        VerifyingKey::rsa(&[], &[3]).unwrap_err(),
        KeyProblem::RsaSize(0)
    );
    assert_eq!(
        VerifyingKey::rsa(&vec![0xFF; 1025], &[3]).unwrap_err(),
        KeyProblem::RsaSize(8200)
    );
    for e in [&[1u8][..], &[2], &[1, 0, 0], &[2, 0, 0, 0, 1], &[], &[1; 9]] {
        assert_eq!(
            VerifyingKey::rsa(&n, e).unwrap_err(),
            KeyProblem::RsaExponent,
            "{e:?}"
        );
    }
    let mut even = n.clone();
    even[255] &= 0xFE;
    assert!(VerifyingKey::rsa(&even, &[1, 0, 1]).is_err());
}

#[test]
fn ed25519_length_and_alg_pinning() {
    assert_eq!(
        VerifyingKey::ed25519(&[0; 31]).unwrap_err(),
        KeyProblem::Ed25519Length
    );
    let key = VerifyingKey::from_pem(pem("rsa.pub.pem")).unwrap();
    assert!(key.accepts(Alg::Rs384));
    let pinned = key.restricted_to(Alg::Rs256);
    assert!(pinned.accepts(Alg::Rs256) && !pinned.accepts(Alg::Rs384));
    assert!(verifies(pinned.clone(), "rs256"));
    assert!(!verifies(pinned, "rs384"));
    // Pinned to an algorithm of another family: verifies nothing.
    let odd = VerifyingKey::from_pem(pem("rsa.pub.pem"))
        .unwrap()
        .restricted_to(Alg::Hs256);
    assert!(Alg::ALL.iter().all(|a| !odd.accepts(*a)));
}

#[test]
fn alg_table_is_consistent() {
    for (i, alg) in Alg::ALL.iter().enumerate() {
        assert_eq!(alg.index(), i);
        assert_eq!(Alg::from_name(alg.name()), Some(*alg));
    }
    for name in [
        "none", "None", "PS256", "PS384", "PS512", "ES256K", "EdDSA ", "eddsa", "HS1024", "",
    ] {
        assert_eq!(Alg::from_name(name), None, "{name}");
    }
}

#[test]
fn debug_never_prints_key_material() {
    let key = VerifyingKey::hmac(b"hunter2-secret");
    assert!(!format!("{key:?}").contains("hunter2"));
    let set = StaticKeySet::new().with_hmac_secret("hunter2-secret");
    assert!(!format!("{set:?}").contains("hunter2"));
    let v = TokenVerifier::with_keys(set);
    let text = format!("{v:?}");
    assert!(
        !text.contains("hunter2") && text.contains("redacted"),
        "{text}"
    );
}
