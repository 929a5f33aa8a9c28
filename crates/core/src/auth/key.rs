//! One verification key and the signature primitives behind it.
//!
//! A [`VerifyingKey`] is an HMAC secret, an RSA public key, an ECDSA public key on P-256,
//! P-384 or P-521, or an Ed25519 public key, optionally pinned to one [`Alg`] (a JWK's `alg`).
//! [`VerifyingKey::accepts`] binds each key to its algorithms: an RSA key serves RS256/384/512
//! only (PKCS#1 v1.5; never PS*), an EC key only the algorithm of its curve (P-256 → ES256,
//! P-384 → ES384, P-521 → ES512, as Centrifugo 6), an Ed25519 key only EdDSA, and an HMAC
//! secret only HS*. So public key material can never become an HMAC secret, whatever a key set
//! returns. ECDSA signatures are JOSE raw `r‖s` of exactly twice the coordinate size; DER is
//! refused. Keys are checked when built (sizes, exponent, point on the curve), so a bad key
//! is reported at start, not at the first token.
//!
//! Backend, chosen by measurement. µs per signature check (token fixtures of `testdata/`,
//! 2048-bit RSA; release build; best of 4 runs on this 2-core machine while other builds ran,
//! so absolute figures are noisy, ratios less so). Method: a scratch program outside the
//! workspace timing `ring::signature::UnparsedPublicKey::verify` / `RsaPublicKeyComponents`,
//! `p521::ecdsa::VerifyingKey::verify` and `jsonwebtoken::crypto::verify` (12.0.0, one build
//! per backend feature) over the same tokens. `verify_timing` in `tests/asymmetric.rs`
//! (ignored; run with `--release -- --ignored --nocapture`) times the whole
//! `verify_connect` with this module's choice.
//!
//! | alg   | ring 0.17 | jsonwebtoken 12 `rust_crypto` | jsonwebtoken 12 `aws_lc_rs` |
//! |-------|----------:|------------------------------:|----------------------------:|
//! | HS256 | 0.40 (hmac crate: 0.41) | 0.40 | 0.82 |
//! | RS256 | 22 | 99 | 25 |
//! | ES256 | 72 | 294 | 67 |
//! | ES384 | 844 | 912 | 221 |
//! | EdDSA | 51 | 36 | 38 |
//! | ES512 | — (RustCrypto `p521` 0.14: 782) | — (no ES512) | — (no ES512) |
//!
//! Choice: **ring** for RS*, ES256, ES384 and EdDSA, **`p521`** for ES512, the `hmac` crate
//! (unchanged) for HS*. ring is already compiled into the workspace (rustls uses it), has
//! assembly for RSA and P-256 and matches aws-lc-rs on the two algorithms identity providers
//! use (RS256, ES256), 4× faster than jsonwebtoken's pure-Rust backend there. aws-lc-rs would
//! win on ES384 (4×) and ring loses 1.4× to ed25519-dalek on EdDSA, but neither is worth a
//! second crypto library with a C build on 2-core CI. jsonwebtoken 12 also lacks ES512 and
//! needs Rust 1.88 (the workspace declares 1.85). Only the primitives are used; token
//! parsing and claims stay Rotor's own.

use super::hmac;
use super::Alg;
use p521::ecdsa::signature::Verifier as _;
use ring::signature::{self as rs, RsaPublicKeyComponents, UnparsedPublicKey};
use std::fmt;

/// Smallest RSA modulus accepted, in bits (ring's PKCS#1 verifiers need 2048). A deliberate
/// difference: Centrifugo (Go) also takes 1024-bit keys; Rotor refuses them at start.
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const RSA_MAX_BITS: usize = 8192;

/// An elliptic curve that has a JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// NIST P-256 (secp256r1): ES256.
    P256,
    /// NIST P-384 (secp384r1): ES384.
    P384,
    /// NIST P-521 (secp521r1): ES512.
    P521,
}

impl EcCurve {
    /// The one algorithm a key on this curve verifies.
    #[must_use]
    pub fn alg(self) -> Alg {
        match self {
            Self::P256 => Alg::Es256,
            Self::P384 => Alg::Es384,
            Self::P521 => Alg::Es512,
        }
    }

    /// Bytes of one coordinate (and of `r` or `s` in a signature).
    #[must_use]
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The JWK `crv` name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }
}

/// The family of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Hmac,
    Rsa,
    Ec(EcCurve),
    Ed25519,
}

impl KeyKind {
    /// "an RSA key", "a P-256 ECDSA key", ... for messages.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Hmac => "an HMAC secret",
            Self::Rsa => "an RSA key",
            Self::Ec(EcCurve::P256) => "a P-256 ECDSA key",
            Self::Ec(EcCurve::P384) => "a P-384 ECDSA key",
            Self::Ec(EcCurve::P521) => "a P-521 ECDSA key",
            Self::Ed25519 => "an Ed25519 key",
        }
    }
}

/// Why key material cannot be used. Messages say what is wanted instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("not PEM text: expected a \"-----BEGIN PUBLIC KEY-----\" (SPKI) or \"-----BEGIN CERTIFICATE-----\" (X.509) block")]
    NotPem,
    #[error("a PEM {label:?} block is not accepted: expected \"PUBLIC KEY\" (SPKI) or \"CERTIFICATE\" (X.509){hint}")]
    WrongForm { label: String, hint: &'static str },
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("{found} where {wanted} is wanted")]
    WrongType {
        found: &'static str,
        wanted: &'static str,
    },
    #[error("public key algorithm {0} is not supported: use RSA, ECDSA (P-256, P-384, P-521) or Ed25519")]
    UnsupportedAlgorithm(String),
    #[error("EC curve {0} is not supported: use P-256 (ES256), P-384 (ES384) or P-521 (ES512)")]
    UnsupportedCurve(String),
    #[error("EC public key is not a valid uncompressed point on its curve")]
    InvalidPoint,
    #[error("RSA key of {0} bits: {RSA_MIN_BITS} to {RSA_MAX_BITS} bits are accepted")]
    RsaSize(usize),
    #[error("RSA public exponent unusable: it must be odd, at least 3 and below 2^33")]
    RsaExponent,
    #[error("Ed25519 public key must be 32 bytes")]
    Ed25519Length,
    #[error("an HMAC secret must not be a public key or certificate: anyone holding it could sign tokens")]
    HmacSecretIsPublicKey,
    #[error("claim name {0:?} must match ^[a-zA-Z_]+$")]
    BadClaimName(String),
    #[error("not a valid regular expression: {0}")]
    BadRegex(String),
    #[error("cannot be set together with {0} (use one of them)")]
    Exclusive(&'static str),
}

/// A configuration value that cannot be used, named by its [`crate::config::NodeConfig`]
/// field (`subscription_token.` prefixed for the subscription-token block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct KeyError {
    pub field: &'static str,
    pub problem: KeyProblem,
}

/// A key that verifies token signatures. Cheap to clone (ECDSA/RSA material is small; P-521
/// keys are boxed). `Debug` never prints an HMAC secret.
#[derive(Clone)]
pub struct VerifyingKey {
    material: Material,
    only: Option<Alg>,
}

#[derive(Clone)]
enum Material {
    Hmac(Box<[u8]>),
    /// Big-endian modulus and exponent without leading zeros.
    Rsa {
        n: Box<[u8]>,
        e: Box<[u8]>,
    },
    /// Uncompressed SEC1 points (`04‖x‖y`), validated on the curve.
    P256(Box<[u8]>),
    P384(Box<[u8]>),
    P521(Box<p521::ecdsa::VerifyingKey>),
    Ed25519([u8; 32]),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kind", &self.kind())
            .field("only", &self.only)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An HMAC secret for HS256/384/512.
    #[must_use]
    pub fn hmac(secret: &[u8]) -> Self {
        Self::of(Material::Hmac(secret.into()))
    }

    /// An RSA public key from its big-endian modulus and exponent (a JWK's `n` and `e`,
    /// decoded). Leading zero bytes are ignored.
    ///
    /// # Errors
    /// Modulus outside 2048..=8192 bits or even; exponent even, below 3 or ≥ 2^33.
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyProblem> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = match n.first() {
            Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
            None => 0,
        };
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(KeyProblem::RsaSize(bits));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err(KeyProblem::Malformed("RSA modulus (even)"));
        }
        let e_value = if e.len() <= 8 {
            e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        } else {
            u64::MAX
        };
        if !(3..1 << 33).contains(&e_value) || e_value & 1 == 0 {
            return Err(KeyProblem::RsaExponent);
        }
        Ok(Self::of(Material::Rsa {
            n: n.into(),
            e: e.into(),
        }))
    }

    /// An ECDSA public key from its affine coordinates (a JWK's `x` and `y`, decoded), each
    /// exactly [`EcCurve::coordinate_len`] bytes.
    ///
    /// # Errors
    /// A coordinate of another length, or a point not on the curve.
    pub fn ec(curve: EcCurve, x: &[u8], y: &[u8]) -> Result<Self, KeyProblem> {
        let len = curve.coordinate_len();
        if x.len() != len || y.len() != len {
            return Err(KeyProblem::InvalidPoint);
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Self::ec_sec1(curve, &point)
    }

    /// An ECDSA public key from an uncompressed SEC1 point (`04‖x‖y`), as SPKI holds it.
    ///
    /// # Errors
    /// Another encoding (compressed points included), or a point not on the curve.
    pub fn ec_sec1(curve: EcCurve, point: &[u8]) -> Result<Self, KeyProblem> {
        if point.len() != 1 + 2 * curve.coordinate_len() || point.first() != Some(&4) {
            return Err(KeyProblem::InvalidPoint);
        }
        let material = match curve {
            EcCurve::P256 => {
                check_point(&ring::agreement::ECDH_P256, point)?;
                Material::P256(point.into())
            }
            EcCurve::P384 => {
                check_point(&ring::agreement::ECDH_P384, point)?;
                Material::P384(point.into())
            }
            EcCurve::P521 => Material::P521(Box::new(
                p521::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| KeyProblem::InvalidPoint)?,
            )),
        };
        Ok(Self::of(material))
    }

    /// An Ed25519 public key (32 bytes, RFC 8032 encoding).
    ///
    /// # Errors
    /// Any other length.
    pub fn ed25519(public: &[u8]) -> Result<Self, KeyProblem> {
        let key: [u8; 32] = public.try_into().map_err(|_| KeyProblem::Ed25519Length)?;
        Ok(Self::of(Material::Ed25519(key)))
    }

    /// Pins the key to one algorithm (a JWK's `alg`): it then verifies nothing else. Pinning
    /// to an algorithm the key cannot serve leaves a key that verifies nothing.
    #[must_use]
    pub fn restricted_to(mut self, alg: Alg) -> Self {
        self.only = Some(alg);
        self
    }

    fn of(material: Material) -> Self {
        Self {
            material,
            only: None,
        }
    }

    /// The key's family (and curve).
    #[must_use]
    pub fn kind(&self) -> KeyKind {
        match &self.material {
            Material::Hmac(_) => KeyKind::Hmac,
            Material::Rsa { .. } => KeyKind::Rsa,
            Material::P256(_) => KeyKind::Ec(EcCurve::P256),
            Material::P384(_) => KeyKind::Ec(EcCurve::P384),
            Material::P521(_) => KeyKind::Ec(EcCurve::P521),
            Material::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// Whether this key may verify a token of `alg` (family, curve and pin).
    #[must_use]
    pub fn accepts(&self, alg: Alg) -> bool {
        if self.only.is_some_and(|only| only != alg) {
            return false;
        }
        match self.kind() {
            KeyKind::Hmac => alg.is_hmac(),
            KeyKind::Rsa => matches!(alg, Alg::Rs256 | Alg::Rs384 | Alg::Rs512),
            KeyKind::Ec(curve) => curve.alg() == alg,
            KeyKind::Ed25519 => alg == Alg::EdDsa,
        }
    }

    /// Checks `signature` over `message` for a token of `alg`. False when the key does not
    /// [accept](Self::accepts) `alg`, and for every malformed signature.
    #[must_use]
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        match &self.material {
            Material::Hmac(secret) => hmac::verify(alg, secret, message, signature),
            Material::Rsa { n, e } => {
                let params = match alg {
                    Alg::Rs256 => &rs::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &rs::RSA_PKCS1_2048_8192_SHA384,
                    _ => &rs::RSA_PKCS1_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            Material::P256(point) => {
                signature.len() == 64
                    && UnparsedPublicKey::new(&rs::ECDSA_P256_SHA256_FIXED, point)
                        .verify(message, signature)
                        .is_ok()
            }
            Material::P384(point) => {
                signature.len() == 96
                    && UnparsedPublicKey::new(&rs::ECDSA_P384_SHA384_FIXED, point)
                        .verify(message, signature)
                        .is_ok()
            }
            Material::P521(key) => {
                signature.len() == 132
                    && p521::ecdsa::Signature::from_slice(signature)
                        .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            Material::Ed25519(public) => {
                signature.len() == 64
                    && UnparsedPublicKey::new(&rs::ED25519, public)
                        .verify(message, signature)
                        .is_ok()
            }
        }
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.get(start..).unwrap_or_default()
}

/// ring validates a peer's public point fully (on the curve, not the identity) before an
/// ECDH agreement; an agreement with a throwaway key is its public way to run that check.
fn check_point(alg: &'static ring::agreement::Algorithm, point: &[u8]) -> Result<(), KeyProblem> {
    let rng = ring::rand::SystemRandom::new();
    let mine = ring::agreement::EphemeralPrivateKey::generate(alg, &rng)
        .map_err(|_| KeyProblem::InvalidPoint)?;
    let peer = ring::agreement::UnparsedPublicKey::new(alg, point);
    ring::agreement::agree_ephemeral(mine, &peer, |_| ()).map_err(|_| KeyProblem::InvalidPoint)
}
