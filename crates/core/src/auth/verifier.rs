//! [`TokenVerifier`]: connection and subscription tokens checked against the configured keys.
//!
//! A verifier holds one profile (key set + claim rules) for connection tokens and, when the
//! subscription-token block is configured (Centrifugo 6 `client.subscription_token`), a
//! separate one for subscription tokens that inherits nothing; otherwise subscription tokens
//! use the connection profile. Each verification takes the token apart ([`super::jws`]), asks
//! the profile's [`KeySet`] for candidates, checks the signature, and only then parses the
//! claims ([`super::claims`]). It is immutable and shared by all sessions; the node swaps in
//! a new one on reload.

use super::claims::{ClaimRules, ConnectClaims, SubscribeClaims};
use super::jws::{self, Compact};
use super::keys::{KeyLookup, KeyQuery, KeySet, StaticKeySet};
use super::{invalid, KeyError, KeyKind, KeyProblem, TokenError, VerifyingKey};
use crate::config::{NodeConfig, TokenKeys};
use std::fmt;
use std::sync::Arc;

/// Verifies connection and subscription tokens against the server's configured keys.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    conn: Profile,
    /// `None`: subscription tokens use `conn`.
    sub: Option<Profile>,
}

#[derive(Clone)]
struct Profile {
    keys: Arc<dyn KeySet>,
    rules: ClaimRules,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("keys", &self.keys)
            .field("audience", &self.rules.audience)
            .field("issuer", &self.rules.issuer)
            .field("user_id_claim", &self.rules.user_id_claim)
            .finish()
    }
}

/// Config field names of one token block, for [`KeyError::field`].
struct Fields {
    hmac: &'static str,
    rsa: &'static str,
    ecdsa: &'static str,
    audience: &'static str,
    issuer: &'static str,
    audience_regex: &'static str,
    issuer_regex: &'static str,
    user_id_claim: &'static str,
}

const CONN_FIELDS: Fields = Fields {
    hmac: "token_hmac_secret_key",
    rsa: "token_rsa_public_key",
    ecdsa: "token_ecdsa_public_key",
    audience: "token_audience",
    issuer: "token_issuer",
    audience_regex: "token_audience_regex",
    issuer_regex: "token_issuer_regex",
    user_id_claim: "token_user_id_claim",
};

const SUB_FIELDS: Fields = Fields {
    hmac: "subscription_token.hmac_secret_key",
    rsa: "subscription_token.rsa_public_key",
    ecdsa: "subscription_token.ecdsa_public_key",
    audience: "subscription_token.audience",
    issuer: "subscription_token.issuer",
    audience_regex: "subscription_token.audience_regex",
    issuer_regex: "subscription_token.issuer_regex",
    user_id_claim: "subscription_token.user_id_claim",
};

/// Compiles an `audience_regex` / `issuer_regex` value (empty = none).
fn compile_regex(
    pattern: &str,
    field: &'static str,
    errors: &mut Vec<KeyError>,
) -> Option<regex::Regex> {
    if pattern.is_empty() {
        return None;
    }
    match regex::Regex::new(pattern) {
        Ok(re) => Some(re),
        Err(e) => {
            errors.push(KeyError {
                field,
                problem: KeyProblem::BadRegex(e.to_string()),
            });
            None
        }
    }
}

impl Profile {
    fn of(keys: Arc<dyn KeySet>) -> Self {
        Self {
            keys,
            rules: ClaimRules::default(),
        }
    }

    /// The profile of one config block; each unusable item is left out and reported.
    /// `keys_override` replaces the block's static keys (a JWKS key set); a block with a
    /// `jwks_public_endpoint` and no override gets an empty set (every token refused), as
    /// static keys are never used beside JWKS (Centrifugo 6.5+).
    fn from_block(
        block: &TokenKeys,
        fields: &Fields,
        keys_override: Option<Arc<dyn KeySet>>,
        errors: &mut Vec<KeyError>,
    ) -> Self {
        let mut keys = StaticKeySet::new();
        if looks_like_public_key(&block.hmac_secret_key) {
            errors.push(KeyError {
                field: fields.hmac,
                problem: KeyProblem::HmacSecretIsPublicKey,
            });
        } else {
            keys = keys.with_hmac_secret(&block.hmac_secret_key);
        }
        let slots = [
            (&block.rsa_public_key, fields.rsa, true),
            (&block.ecdsa_public_key, fields.ecdsa, false),
        ];
        for (pem, field, want_rsa) in slots {
            if pem.trim().is_empty() {
                continue;
            }
            match pem_for_slot(pem, want_rsa) {
                Ok(key) => keys = keys.with_key(key),
                Err(problem) => errors.push(KeyError { field, problem }),
            }
        }
        let mut user_id_claim = block.user_id_claim.clone();
        if !user_id_claim.is_empty()
            && !user_id_claim
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            errors.push(KeyError {
                field: fields.user_id_claim,
                problem: KeyProblem::BadClaimName(user_id_claim),
            });
            user_id_claim = String::new();
        }
        for (exact, regex, exact_field, regex_field) in [
            (
                &block.audience,
                &block.audience_regex,
                fields.audience,
                fields.audience_regex,
            ),
            (
                &block.issuer,
                &block.issuer_regex,
                fields.issuer,
                fields.issuer_regex,
            ),
        ] {
            if !exact.is_empty() && !regex.is_empty() {
                errors.push(KeyError {
                    field: regex_field,
                    problem: KeyProblem::Exclusive(exact_field),
                });
            }
        }
        let audience_regex = compile_regex(&block.audience_regex, fields.audience_regex, errors);
        let issuer_regex = compile_regex(&block.issuer_regex, fields.issuer_regex, errors);
        let keys: Arc<dyn KeySet> = match keys_override {
            Some(set) => set,
            None if !block.jwks_public_endpoint.is_empty() => Arc::new(StaticKeySet::new()),
            None => Arc::new(keys),
        };
        Self {
            keys,
            rules: ClaimRules {
                audience: block.audience.clone(),
                issuer: block.issuer.clone(),
                user_id_claim,
                audience_regex,
                issuer_regex,
            },
        }
    }

    /// Checks the signature of `c` with the keys of `lookup` (the key set's answer for it).
    fn check(&self, c: &Compact<'_>, lookup: KeyLookup) -> Result<(), TokenError> {
        let keys = match lookup {
            KeyLookup::Keys(keys) => keys,
            KeyLookup::Unknown => return Err(invalid("no key for this token's kid")),
        };
        if keys.is_empty() {
            return Err(TokenError::Invalid(format!(
                "no key configured for {}",
                c.alg
            )));
        }
        let input = c.signing_input.as_bytes();
        if keys.iter().any(|k| k.verify(c.alg, input, &c.signature)) {
            Ok(())
        } else {
            Err(invalid("signature mismatch"))
        }
    }

    /// The payload text of a token whose signature verified; nothing from the payload is
    /// interpreted before that (except by a key set, see [`KeyQuery`]).
    fn verified_payload(&self, token: &str) -> Result<String, TokenError> {
        let c = jws::split(token)?;
        let lookup = self.keys.lookup(&query(&c));
        self.check(&c, lookup)?;
        Ok(c.payload)
    }

    /// As [`Profile::verified_payload`], letting the key set fetch a key it does not hold.
    async fn verified_payload_async(&self, token: &str) -> Result<String, TokenError> {
        let c = jws::split(token)?;
        let q = query(&c);
        let mut lookup = self.keys.lookup(&q);
        if matches!(lookup, KeyLookup::Unknown) {
            self.keys
                .refresh(&q)
                .await
                .map_err(|e| TokenError::Invalid(e.to_string()))?;
            lookup = self.keys.lookup(&q);
        }
        self.check(&c, lookup)?;
        Ok(c.payload)
    }
}

fn query<'a>(c: &'a Compact<'_>) -> KeyQuery<'a> {
    KeyQuery::new(c.alg, c.kid.as_deref(), &c.payload)
}

/// A PEM key for the RSA slot (`want_rsa`) or the ECDSA slot; another kind is refused at
/// start, as in Centrifugo.
fn pem_for_slot(pem: &str, want_rsa: bool) -> Result<VerifyingKey, KeyProblem> {
    let key = VerifyingKey::from_pem(pem)?;
    let fits = match key.kind() {
        KeyKind::Rsa => want_rsa,
        KeyKind::Ec(_) => !want_rsa,
        KeyKind::Hmac | KeyKind::Ed25519 => false,
    };
    if fits {
        Ok(key)
    } else {
        Err(KeyProblem::WrongType {
            found: key.kind().describe(),
            wanted: if want_rsa {
                "an RSA key"
            } else {
                "an ECDSA key (P-256, P-384 or P-521)"
            },
        })
    }
}

/// An HMAC secret that is PEM public-key material: anyone could sign with it.
fn looks_like_public_key(secret: &str) -> bool {
    secret.contains("-----BEGIN")
        && (secret.contains("PUBLIC KEY") || secret.contains("CERTIFICATE"))
}

impl TokenVerifier {
    /// Verifier holding only the HMAC secret `hmac_secret`. An empty secret means "no HMAC
    /// key", so every token is invalid rather than accepting tokens signed with an empty key.
    #[must_use]
    pub fn new(hmac_secret: &str) -> Self {
        Self::with_keys(StaticKeySet::new().with_hmac_secret(hmac_secret))
    }

    /// Verifier using `keys` for both token kinds, with no audience/issuer checks.
    #[must_use]
    pub fn with_keys(keys: impl KeySet + 'static) -> Self {
        Self {
            conn: Profile::of(Arc::new(keys)),
            sub: None,
        }
    }

    /// The verifier the node uses: the connection block (`token_hmac_secret_key`,
    /// `token_rsa_public_key`, `token_ecdsa_public_key`, `token_audience`, `token_issuer`,
    /// `token_audience_regex`, `token_issuer_regex`, `token_user_id_claim`) and, when set, the
    /// separate `subscription_token` block. A block with a JWKS endpoint gets an empty key set
    /// here (see [`TokenVerifier::try_from_config_with`] for installing the JWKS keys).
    ///
    /// # Errors
    /// The first unusable item (a PEM that does not parse or holds the wrong kind of key, an
    /// HMAC secret that is a public key, a bad `user_id_claim`, a regex that does not compile,
    /// an exact and a regex check of the same claim), named by its field.
    pub fn try_from_config(cfg: &NodeConfig) -> Result<Self, KeyError> {
        Self::try_from_config_with(cfg, None, None)
    }

    /// As [`TokenVerifier::try_from_config`], with `conn_keys` / `sub_keys` replacing the
    /// static keys of the connection / subscription block (a JWKS key set built by the
    /// server); the block's claim rules (audience, issuer, regexes, user claim) still apply.
    /// `sub_keys` is ignored without a subscription block.
    ///
    /// # Errors
    /// As [`TokenVerifier::try_from_config`].
    pub fn try_from_config_with(
        cfg: &NodeConfig,
        conn_keys: Option<Arc<dyn KeySet>>,
        sub_keys: Option<Arc<dyn KeySet>>,
    ) -> Result<Self, KeyError> {
        let (verifier, errors) = Self::build(cfg, conn_keys, sub_keys);
        match errors.into_iter().next() {
            None => Ok(verifier),
            Some(first) => Err(first),
        }
    }

    /// As [`TokenVerifier::try_from_config`], but never fails: an unusable item is left out
    /// (logged at error level), so tokens needing it are refused as invalid. For callers
    /// that validated the config with `try_from_config` at start.
    #[must_use]
    pub fn from_config(cfg: &NodeConfig) -> Self {
        Self::from_config_with(cfg, None, None)
    }

    /// As [`TokenVerifier::try_from_config_with`], never failing (see
    /// [`TokenVerifier::from_config`]).
    #[must_use]
    pub fn from_config_with(
        cfg: &NodeConfig,
        conn_keys: Option<Arc<dyn KeySet>>,
        sub_keys: Option<Arc<dyn KeySet>>,
    ) -> Self {
        let (verifier, errors) = Self::build(cfg, conn_keys, sub_keys);
        for e in errors {
            tracing::error!(error = %e, "token key ignored");
        }
        verifier
    }

    fn build(
        cfg: &NodeConfig,
        conn_keys: Option<Arc<dyn KeySet>>,
        sub_keys: Option<Arc<dyn KeySet>>,
    ) -> (Self, Vec<KeyError>) {
        let mut errors = Vec::new();
        let conn_block = TokenKeys {
            hmac_secret_key: cfg.token_hmac_secret_key.clone(),
            rsa_public_key: cfg.token_rsa_public_key.clone(),
            ecdsa_public_key: cfg.token_ecdsa_public_key.clone(),
            audience: cfg.token_audience.clone(),
            issuer: cfg.token_issuer.clone(),
            user_id_claim: cfg.token_user_id_claim.clone(),
            jwks_public_endpoint: cfg.token_jwks_public_endpoint.clone(),
            audience_regex: cfg.token_audience_regex.clone(),
            issuer_regex: cfg.token_issuer_regex.clone(),
        };
        let conn = Profile::from_block(&conn_block, &CONN_FIELDS, conn_keys, &mut errors);
        let sub = cfg
            .subscription_token
            .as_ref()
            .map(|block| Profile::from_block(block, &SUB_FIELDS, sub_keys, &mut errors));
        (Self { conn, sub }, errors)
    }

    /// Requires `aud` to contain `audience` (RFC 7519 §4.1.3: a string or an array of
    /// strings); a token without `aud` is then invalid. Empty = no check. Applies to
    /// connection tokens, and to subscription tokens unless they have their own block.
    #[must_use]
    pub fn with_audience(mut self, audience: &str) -> Self {
        audience.clone_into(&mut self.conn.rules.audience);
        self
    }

    /// Requires `iss` to equal `issuer` exactly; a token without `iss` is then invalid.
    /// Empty = no check. Scope as [`TokenVerifier::with_audience`].
    #[must_use]
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        issuer.clone_into(&mut self.conn.rules.issuer);
        self
    }

    /// Reads the user ID from the top-level claim `claim` instead of `sub` (empty = `sub`).
    /// Scope as [`TokenVerifier::with_audience`].
    #[must_use]
    pub fn with_user_id_claim(mut self, claim: &str) -> Self {
        claim.clone_into(&mut self.conn.rules.user_id_claim);
        self
    }

    /// Verifies subscription tokens with `sub`'s connection-token settings (keys, audience,
    /// issuer, user claim) instead of this verifier's: the separate subscription-token block.
    #[must_use]
    pub fn with_subscription_verifier(mut self, sub: TokenVerifier) -> Self {
        self.sub = Some(sub.conn);
        self
    }

    fn sub_profile(&self) -> &Profile {
        self.sub.as_ref().unwrap_or(&self.conn)
    }

    /// Verifies a connection token at `now_unix` (seconds).
    ///
    /// `check_exp = false` implements `client_insecure`, which ignores `exp`; `nbf` is
    /// checked regardless. `exp` is checked against the raw claim even when `expire_at`
    /// overrides the connection's effective expiry. A key set that would need to fetch is
    /// not waited for (the token is invalid); see [`TokenVerifier::verify_connect_async`].
    ///
    /// # Errors
    /// [`TokenError::Expired`] for a stale `exp` (when checked) or a future `nbf`;
    /// [`TokenError::Invalid`] for every other failure.
    pub fn verify_connect(
        &self,
        token: &str,
        now_unix: i64,
        check_exp: bool,
    ) -> Result<ConnectClaims, TokenError> {
        let payload = self.conn.verified_payload(token)?;
        self.conn.rules.connect(&payload, now_unix, check_exp)
    }

    /// As [`TokenVerifier::verify_connect`], awaiting the key set's refresh when it does not
    /// hold the token's key.
    ///
    /// # Errors
    /// As [`TokenVerifier::verify_connect`]; a failed refresh is [`TokenError::Invalid`].
    pub async fn verify_connect_async(
        &self,
        token: &str,
        now_unix: i64,
        check_exp: bool,
    ) -> Result<ConnectClaims, TokenError> {
        let payload = self.conn.verified_payload_async(token).await?;
        self.conn.rules.connect(&payload, now_unix, check_exp)
    }

    /// Verifies a subscription token at `now_unix` (seconds). `exp` and `nbf` are always
    /// checked here, also for `eto` ("expire token only") tokens, whose subscription then
    /// never expires.
    ///
    /// # Errors
    /// [`TokenError::Expired`] for a stale `exp` or a future `nbf`;
    /// [`TokenError::Invalid`] for every other failure.
    pub fn verify_subscribe(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<SubscribeClaims, TokenError> {
        let profile = self.sub_profile();
        let payload = profile.verified_payload(token)?;
        profile.rules.subscribe(&payload, now_unix)
    }

    /// As [`TokenVerifier::verify_subscribe`], awaiting the key set's refresh when needed.
    ///
    /// # Errors
    /// As [`TokenVerifier::verify_subscribe`].
    pub async fn verify_subscribe_async(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<SubscribeClaims, TokenError> {
        let profile = self.sub_profile();
        let payload = profile.verified_payload_async(token).await?;
        profile.rules.subscribe(&payload, now_unix)
    }
}
