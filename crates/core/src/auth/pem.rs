//! Public keys from PEM text: the forms Centrifugo's `token_rsa_public_key` /
//! `token_ecdsa_public_key` accept.
//!
//! Only the first PEM block is read and its label is not trusted (as in Centrifugo): its DER
//! is tried as a `SubjectPublicKeyInfo` (`PUBLIC KEY`) and then as an X.509 certificate
//! (`CERTIFICATE`), whose subject key is taken. Anything else (`RSA PUBLIC KEY` PKCS#1, private
//! keys, CSRs, ...) is refused with a message naming the wanted forms. DER parsing is
//! `x509-parser`'s; this module only maps its result onto a [`VerifyingKey`].

use super::key::{KeyProblem, VerifyingKey};
use super::EcCurve;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Largest PEM text accepted (a certificate chain is a few KiB).
const MAX_PEM_LEN: usize = 256 * 1024;

impl VerifyingKey {
    /// The public key in the first PEM block of `text`: a `PUBLIC KEY` (SPKI) or a
    /// `CERTIFICATE` (X.509), holding an RSA, ECDSA (P-256/P-384/P-521) or Ed25519 key.
    ///
    /// # Errors
    /// Not PEM, another PEM form (with a hint for PKCS#1 and private keys), or a key that
    /// cannot be used (see [`KeyProblem`]).
    pub fn from_pem(text: &str) -> Result<Self, KeyProblem> {
        if text.len() > MAX_PEM_LEN {
            return Err(KeyProblem::Malformed("PEM text (too long)"));
        }
        let (_, pem) = x509_parser::pem::parse_x509_pem(text.trim_start().as_bytes())
            .map_err(|_| KeyProblem::NotPem)?;
        if let Ok((rest, spki)) = SubjectPublicKeyInfo::from_der(&pem.contents) {
            if rest.is_empty() {
                return Self::from_spki(&spki);
            }
        }
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(&pem.contents) {
            return Self::from_spki(cert.public_key());
        }
        let hint = match pem.label.as_str() {
            "PUBLIC KEY" => return Err(KeyProblem::Malformed("SPKI public key")),
            "CERTIFICATE" => return Err(KeyProblem::Malformed("X.509 certificate")),
            "RSA PUBLIC KEY" => {
                "; convert this PKCS#1 key with `openssl rsa -RSAPublicKey_in -in key.pem -pubout`"
            }
            label if label.contains("PRIVATE KEY") => {
                "; this is a private key: give its public key (`openssl pkey -in key.pem -pubout`)"
            }
            _ => "",
        };
        Err(KeyProblem::WrongForm {
            label: pem.label,
            hint,
        })
    }

    /// The public key of a DER `SubjectPublicKeyInfo`.
    ///
    /// # Errors
    /// Malformed DER or a key that cannot be used.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyProblem> {
        match SubjectPublicKeyInfo::from_der(der) {
            Ok(([], spki)) => Self::from_spki(&spki),
            _ => Err(KeyProblem::Malformed("SPKI public key")),
        }
    }

    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyProblem> {
        let oid = &spki.algorithm.algorithm;
        if *oid == OID_PKCS1_RSAENCRYPTION {
            return match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => Self::rsa(rsa.modulus, rsa.exponent),
                _ => Err(KeyProblem::Malformed("RSA public key")),
            };
        }
        if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or(KeyProblem::Malformed(
                    "EC key parameters (named curve expected)",
                ))?;
            let curve = if curve_oid == OID_EC_P256 {
                EcCurve::P256
            } else if curve_oid == OID_NIST_EC_P384 {
                EcCurve::P384
            } else if curve_oid == OID_NIST_EC_P521 {
                EcCurve::P521
            } else {
                return Err(KeyProblem::UnsupportedCurve(curve_name(
                    &curve_oid.to_id_string(),
                )));
            };
            return Self::ec_sec1(curve, &spki.subject_public_key.data);
        }
        if *oid == OID_SIG_ED25519 {
            return Self::ed25519(&spki.subject_public_key.data);
        }
        Err(KeyProblem::UnsupportedAlgorithm(algorithm_name(
            &oid.to_id_string(),
        )))
    }
}

fn curve_name(oid: &str) -> String {
    let name = match oid {
        "1.3.132.0.33" => "P-224",
        "1.3.132.0.10" => "secp256k1",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        _ => return format!("with OID {oid}"),
    };
    format!("{name} ({oid})")
}

fn algorithm_name(oid: &str) -> String {
    let name = match oid {
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.3.101.110" | "1.3.101.111" => "X25519/X448",
        _ => return format!("with OID {oid}"),
    };
    format!("{name} ({oid})")
}
