//! The JWS algorithms Rotor verifies (RFC 7518 names, as Centrifugo accepts them).
//!
//! The header `alg` of a token is looked up here first: a name outside this list (`none`,
//! `PS256`, `ES256K`, lower-case spellings, ...) is refused before any key is consulted. A
//! recognised name still only *asks* for a key: it is the key set and the key itself that decide
//! whether they serve that algorithm (see [`super::VerifyingKey::accepts`]).

use std::fmt;

/// A JWS `alg` that Rotor can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// ECDSA on P-256 with SHA-256 (signature: raw `r‖s`, 64 bytes).
    Es256,
    /// ECDSA on P-384 with SHA-384 (raw `r‖s`, 96 bytes).
    Es384,
    /// ECDSA on P-521 with SHA-512 (raw `r‖s`, 132 bytes).
    Es512,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl Alg {
    /// Every algorithm, in a fixed order (used to index per-algorithm tables).
    pub const ALL: [Alg; 10] = [
        Alg::Hs256,
        Alg::Hs384,
        Alg::Hs512,
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Es256,
        Alg::Es384,
        Alg::Es512,
        Alg::EdDsa,
    ];

    /// The algorithm a header `alg` names. Case-sensitive, as RFC 7518 names are; `none`,
    /// RSASSA-PSS (`PS*`) and unknown names give `None`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Self::Hs256,
            "HS384" => Self::Hs384,
            "HS512" => Self::Hs512,
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    /// The RFC 7518 name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
            Self::EdDsa => "EdDSA",
        }
    }

    /// True for the HMAC algorithms, whose key is a shared secret.
    #[must_use]
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::Hs256 | Self::Hs384 | Self::Hs512)
    }

    /// Position in [`Alg::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
