//! Token keys beyond the HMAC secret, both generations (TOKENS.md §1): the 2.x / v5 flat keys
//! (`token_rsa_public_key`, `token_ecdsa_public_key`, `token_jwks_public_endpoint`,
//! `token_audience_regex`, `token_issuer_regex`, `token_user_id_claim`,
//! `separate_subscription_token_config` + `subscription_token_*`) and the Centrifugo 6 nested
//! ones (`client.token.*`, `client.subscription_token.*`), which `nested.rs` maps onto the flat
//! names. Collected here into the core's [`NodeConfig`] / [`TokenKeys`], then checked once
//! everything is merged ([`check`]): the core verifier must build (PEM, regexes, exact and regex
//! checks of one claim together, `user_id_claim`) and every JWKS endpoint must pass
//! [`rotor_jwks::validate_template`]; an error names the key as the configuration spelled it.
//!
//! Keys still refused or ignored with a warning (flat prefix rules): the previous HMAC key,
//! `insecure_skip_jwks_endpoint_safety_check`, `insecure_skip_token_signature_verify`.

use std::collections::BTreeMap;

use rotor_core::auth::TokenVerifier;
use rotor_core::config::{NodeConfig, TokenKeys};

use super::values::{boolean, string, Input};
use super::{key_err, ConfigLoadError, SetError};

/// The subscription-token block as given (applied to the node only when enabled).
#[derive(Default)]
pub(crate) struct TokenAcc {
    sub_enabled: bool,
    sub: TokenKeys,
    /// Some `subscription_token_*` key is set (for the warning when the block is off).
    sub_keys_set: Vec<String>,
}

fn field<'a>(b: &'a mut TokenKeys, name: &str) -> Option<&'a mut String> {
    Some(match name {
        "hmac_secret_key" => &mut b.hmac_secret_key,
        "rsa_public_key" => &mut b.rsa_public_key,
        "ecdsa_public_key" => &mut b.ecdsa_public_key,
        "jwks_public_endpoint" => &mut b.jwks_public_endpoint,
        "audience" => &mut b.audience,
        "issuer" => &mut b.issuer,
        "audience_regex" => &mut b.audience_regex,
        "issuer_regex" => &mut b.issuer_regex,
        "user_id_claim" => &mut b.user_id_claim,
        _ => return None,
    })
}

/// Applies a connection-block key (`token_*` beyond the secret, audience and issuer, which
/// `set_top` handles).
pub(crate) fn set_conn(n: &mut NodeConfig, key: &str, i: &Input) -> Result<(), SetError> {
    let slot = match key {
        "token_rsa_public_key" => &mut n.token_rsa_public_key,
        "token_ecdsa_public_key" => &mut n.token_ecdsa_public_key,
        "token_jwks_public_endpoint" => &mut n.token_jwks_public_endpoint,
        "token_audience_regex" => &mut n.token_audience_regex,
        "token_issuer_regex" => &mut n.token_issuer_regex,
        "token_user_id_claim" => &mut n.token_user_id_claim,
        _ => return Err(SetError::Unknown),
    };
    *slot = string(i)?;
    Ok(())
}

impl TokenAcc {
    /// Applies `separate_subscription_token_config` or a `subscription_token_*` field.
    pub(crate) fn set(&mut self, key: &str, i: &Input) -> Result<(), SetError> {
        if key == "separate_subscription_token_config" {
            self.sub_enabled = boolean(i)?;
            return Ok(());
        }
        let name = key
            .strip_prefix("subscription_token_")
            .ok_or(SetError::Unknown)?;
        let slot = field(&mut self.sub, name).ok_or(SetError::Unknown)?;
        *slot = string(i)?;
        if !slot.is_empty() {
            self.sub_keys_set.push(key.to_string());
        }
        Ok(())
    }

    /// Puts the subscription block into `n` when enabled; warns about a block set but off.
    /// `givens` names the keys as written.
    pub(crate) fn finish(
        self,
        n: &mut NodeConfig,
        givens: &BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) {
        if self.sub_enabled {
            n.subscription_token = Some(self.sub);
        } else if !self.sub_keys_set.is_empty() {
            let names: Vec<&str> = self
                .sub_keys_set
                .iter()
                .map(|k| givens.get(k).unwrap_or(k).as_str())
                .collect();
            warnings.push(format!(
                "{} set but the separate subscription-token block is off \
                 (separate_subscription_token_config / client.subscription_token.enabled): \
                 ignored, subscription tokens use the connection-token keys",
                names.join(", ")
            ));
        }
    }
}

/// The flat key of a core [`rotor_core::auth::KeyError::field`] (`token_rsa_public_key`,
/// `subscription_token.rsa_public_key` → `subscription_token_rsa_public_key`).
fn flat_of_field(field: &str) -> String {
    field.replace("subscription_token.", "subscription_token_")
}

/// Where a flat key was set: its name as written and origin.
pub(crate) struct Named<'a> {
    pub givens: &'a BTreeMap<String, String>,
    pub origins: &'a BTreeMap<String, String>,
    /// Whether the configuration uses Centrifugo 6 nested token keys (for keys not set, e.g.
    /// the exact audience named by an exclusivity error).
    pub modern: bool,
}

impl Named<'_> {
    /// The name to show for flat key `flat`.
    pub(crate) fn name(&self, flat: &str) -> String {
        if let Some(given) = self.givens.get(flat) {
            return given.clone();
        }
        if self.modern {
            if let Some(rest) = flat.strip_prefix("subscription_token_") {
                return format!("client.subscription_token.{rest}");
            }
            if let Some(rest) = flat.strip_prefix("token_") {
                return format!("client.token.{rest}");
            }
        }
        flat.to_string()
    }

    fn origin(&self, flat: &str) -> String {
        self.origins.get(flat).cloned().unwrap_or_default()
    }
}

/// Whether `givens` holds a Centrifugo 6 token key (`client.token.*`,
/// `client.subscription_token.*`).
pub(crate) fn uses_nested(givens: &BTreeMap<String, String>) -> bool {
    givens
        .values()
        .any(|g| g.starts_with("client.token.") || g.starts_with("client.subscription_token."))
}

/// Checks that the token configuration can run: the core verifier builds and every JWKS
/// endpoint validates.
///
/// # Errors
/// The first problem, naming the key as given.
pub(crate) fn check(n: &NodeConfig, names: &Named<'_>) -> Result<(), ConfigLoadError> {
    if let Err(e) = TokenVerifier::try_from_config(n) {
        let flat = flat_of_field(e.field);
        let problem = match &e.problem {
            rotor_core::auth::KeyProblem::Exclusive(other) => format!(
                "cannot be set together with {} (use one of them)",
                names.name(&flat_of_field(other))
            ),
            p => p.to_string(),
        };
        return Err(key_err(
            &names.name(&flat),
            None,
            problem,
            &names.origin(&flat),
        ));
    }
    for (prefix, block) in blocks(n) {
        if block.jwks_public_endpoint.is_empty() {
            continue;
        }
        if let Err(e) = rotor_jwks::validate_template(
            &block.jwks_public_endpoint,
            &block.issuer_regex,
            &block.audience_regex,
        ) {
            let flat = format!("{prefix}{}", e.setting.key());
            return Err(key_err(
                &names.name(&flat),
                None,
                e.problem,
                &names.origin(&flat),
            ));
        }
    }
    Ok(())
}

/// The connection block and, when enabled, the subscription block, each with its flat prefix.
pub(crate) fn blocks(n: &NodeConfig) -> Vec<(&'static str, TokenKeys)> {
    let mut out = vec![("token_", connection_block(n))];
    if let Some(sub) = &n.subscription_token {
        out.push(("subscription_token_", sub.clone()));
    }
    out
}

/// The connection-token settings of `n` as one block.
pub(crate) fn connection_block(n: &NodeConfig) -> TokenKeys {
    TokenKeys {
        hmac_secret_key: n.token_hmac_secret_key.clone(),
        rsa_public_key: n.token_rsa_public_key.clone(),
        ecdsa_public_key: n.token_ecdsa_public_key.clone(),
        jwks_public_endpoint: n.token_jwks_public_endpoint.clone(),
        audience: n.token_audience.clone(),
        issuer: n.token_issuer.clone(),
        audience_regex: n.token_audience_regex.clone(),
        issuer_regex: n.token_issuer_regex.clone(),
        user_id_claim: n.token_user_id_claim.clone(),
    }
}

/// True when `n` has any way to verify connection tokens.
pub(crate) fn has_connection_keys(n: &NodeConfig) -> bool {
    let b = connection_block(n);
    !(b.hmac_secret_key.is_empty()
        && b.rsa_public_key.trim().is_empty()
        && b.ecdsa_public_key.trim().is_empty()
        && b.jwks_public_endpoint.is_empty())
}
