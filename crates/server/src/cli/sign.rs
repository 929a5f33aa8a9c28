//! Token signing for `gentoken` / `gensubtoken` with a private key file: RSA (RS256/384/512,
//! PKCS#1 v1.5), ECDSA (ES256 on P-256, ES384 on P-384, ES512 on P-521; raw `r‖s`
//! signatures as JWS wants) and Ed25519 (EdDSA). The core verifies only; signing lives here,
//! in the tool. Keys are PEM `PRIVATE KEY` (PKCS#8, what `openssl genpkey` writes) or, for
//! RSA, `RSA PRIVATE KEY` (PKCS#1); the algorithm follows from the key unless `--alg` picks
//! another of the key's family.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

/// A private key read from a PEM file.
pub enum PrivateKey {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    P521(Box<p521::ecdsa::SigningKey>),
    Ed25519(Ed25519KeyPair),
}

/// The first PEM block of `text`: (label, DER).
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let start = text
        .find("-----BEGIN ")
        .ok_or("not a PEM file (no -----BEGIN line)")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("malformed PEM header")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or("malformed PEM (no -----END line)")?;
    let b64: String = body[..end].split_whitespace().collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| format!("malformed PEM body: {e}"))?;
    Ok((label, der))
}

impl PrivateKey {
    /// Reads a PEM private key.
    ///
    /// # Errors
    /// Not PEM, an encrypted or unsupported form, or a key of another kind.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let (label, der) = pem_block(text)?;
        let rng = SystemRandom::new();
        match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
                .map(Self::Rsa)
                .map_err(|e| format!("RSA PRIVATE KEY: {e}")),
            "PRIVATE KEY" => {
                if let Ok(k) = RsaKeyPair::from_pkcs8(&der) {
                    return Ok(Self::Rsa(k));
                }
                let p256 = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
                if let Ok(k) = EcdsaKeyPair::from_pkcs8(p256, &der, &rng) {
                    return Ok(Self::P256(k));
                }
                let p384 = &sig::ECDSA_P384_SHA384_FIXED_SIGNING;
                if let Ok(k) = EcdsaKeyPair::from_pkcs8(p384, &der, &rng) {
                    return Ok(Self::P384(k));
                }
                if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                    return Ok(Self::Ed25519(k));
                }
                use p521::pkcs8::DecodePrivateKey as _;
                if let Ok(k) = p521::ecdsa::SigningKey::from_pkcs8_der(&der) {
                    return Ok(Self::P521(Box::new(k)));
                }
                Err("PRIVATE KEY: not an RSA, P-256, P-384, P-521 or Ed25519 key".into())
            }
            "EC PRIVATE KEY" => Err("EC PRIVATE KEY (SEC1) is not read: convert it to PKCS#8 \
                 with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key8.pem`"
                .into()),
            "ENCRYPTED PRIVATE KEY" => Err("the key is encrypted: decrypt it first \
                 (`openssl pkcs8 -in key.pem -out plain.pem`)"
                .into()),
            other => Err(format!(
                "a PEM {other:?} block is not a private key: expected \"PRIVATE KEY\" (PKCS#8) \
                 or \"RSA PRIVATE KEY\""
            )),
        }
    }

    /// The algorithms this key signs; the first is the default.
    pub fn algs(&self) -> &'static [&'static str] {
        match self {
            Self::Rsa(_) => &["RS256", "RS384", "RS512"],
            Self::P256(_) => &["ES256"],
            Self::P384(_) => &["ES384"],
            Self::P521(_) => &["ES512"],
            Self::Ed25519(_) => &["EdDSA"],
        }
    }

    fn signature(&self, alg: &str, input: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        let failed = |e: ring::error::Unspecified| format!("signing failed: {e}");
        match self {
            Self::Rsa(k) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(padding, &rng, input, &mut out).map_err(failed)?;
                Ok(out)
            }
            Self::P256(k) | Self::P384(k) => {
                Ok(k.sign(&rng, input).map_err(failed)?.as_ref().to_vec())
            }
            Self::P521(k) => {
                use p521::ecdsa::signature::Signer as _;
                let s: p521::ecdsa::Signature = k.sign(input);
                Ok(s.to_bytes().to_vec())
            }
            Self::Ed25519(k) => Ok(k.sign(input).as_ref().to_vec()),
        }
    }

    /// A compact JWS of `claims_json` (verbatim), with `alg` (default: the key's first) and
    /// an optional `kid` in the header.
    ///
    /// # Errors
    /// `alg` is not one this key signs.
    pub fn sign(
        &self,
        alg: Option<&str>,
        kid: Option<&str>,
        claims_json: &str,
    ) -> Result<(String, &'static str), String> {
        let algs = self.algs();
        let alg = match alg {
            None => algs.first().copied().unwrap_or("RS256"),
            Some(a) => algs.iter().copied().find(|x| *x == a).ok_or_else(|| {
                format!("--alg {a} does not fit this key: use {}", algs.join(", "))
            })?,
        };
        let mut header = serde_json::json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = serde_json::json!(kid);
        }
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
        let signature = self.signature(alg, token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok((token, alg))
    }
}
