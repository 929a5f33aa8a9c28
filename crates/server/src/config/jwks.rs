//! The token verifier the server installs in the node: the core's verifier for the loaded
//! configuration, with a [`JwksSource`] as the key set of each token block that has a
//! `jwks_public_endpoint` (TOKENS.md §3: JWKS then replaces the block's static keys; the block's
//! audience / issuer / regex / `user_id_claim` rules still apply).
//!
//! Sources live for the process: a `SIGHUP` reload keeps a block's source, with its cache and
//! counters, when its endpoint and both regexes are unchanged (Centrifugo 2.x keeps its manager
//! and ignores a changed endpoint; 6.x rebuilds it and empties the cache), and builds a new one
//! otherwise. The active sources are recorded process-wide for `/metrics` ([`stats`]).

use std::sync::Arc;

use parking_lot::Mutex;
use rotor_core::auth::{KeySet, TokenVerifier, VerifyingKey};
use rotor_core::config::{NodeConfig, TokenKeys};
use rotor_jwks::{validate_template, JwksSettings, JwksSource, JwksStats};

use super::tokens::connection_block;

/// One block's source and what it was built from.
#[derive(Clone)]
struct Active {
    endpoint: String,
    issuer_regex: String,
    audience_regex: String,
    source: JwksSource<VerifyingKey>,
}

/// Sources of the connection block (`token`) and the subscription block (`subscription_token`).
#[derive(Default)]
struct Sources {
    conn: Option<Active>,
    sub: Option<Active>,
}

static ACTIVE: Mutex<Sources> = Mutex::new(Sources {
    conn: None,
    sub: None,
});

/// The source for `block`: `previous` when built from the same endpoint and regexes, else a
/// new one. `None` without an endpoint.
fn source_for(
    block: &TokenKeys,
    prefix: &str,
    previous: Option<&Active>,
) -> Result<Option<Active>, String> {
    if block.jwks_public_endpoint.is_empty() {
        return Ok(None);
    }
    if let Some(p) = previous {
        if p.endpoint == block.jwks_public_endpoint
            && p.issuer_regex == block.issuer_regex
            && p.audience_regex == block.audience_regex
        {
            return Ok(Some(p.clone()));
        }
    }
    let template = validate_template(
        &block.jwks_public_endpoint,
        &block.issuer_regex,
        &block.audience_regex,
    )
    .map_err(|e| format!("{prefix}{e}"))?;
    let urls: Vec<String> = template.urls().iter().map(ToString::to_string).collect();
    tracing::info!(
        endpoint = %block.jwks_public_endpoint,
        urls = %urls.join(" "),
        "JWKS keys for {prefix}: requests go only to these URLs"
    );
    let source = JwksSource::new(template, JwksSettings::default())
        .map_err(|e| format!("{prefix}jwks_public_endpoint: {e}"))?;
    Ok(Some(Active {
        endpoint: block.jwks_public_endpoint.clone(),
        issuer_regex: block.issuer_regex.clone(),
        audience_regex: block.audience_regex.clone(),
        source,
    }))
}

fn key_set(a: &Option<Active>) -> Option<Arc<dyn KeySet>> {
    a.as_ref()
        .map(|a| Arc::new(a.source.clone()) as Arc<dyn KeySet>)
}

/// The verifier for `n`, with JWKS sources for blocks that have an endpoint (kept from the
/// previous call when unchanged). Records the sources for [`stats`] only on success.
///
/// # Errors
/// The configuration does not build a verifier (a message naming the field); at start this
/// was already checked by the config loader, so an error here means a reload went wrong.
pub fn token_verifier(n: &NodeConfig) -> Result<TokenVerifier, String> {
    let mut active = ACTIVE.lock();
    let conn = source_for(&connection_block(n), "token_", active.conn.as_ref());
    let sub = match &n.subscription_token {
        Some(block) => source_for(block, "subscription_token.", active.sub.as_ref()),
        None => Ok(None),
    };
    let (conn, sub) = match (conn, sub) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let verifier = TokenVerifier::try_from_config_with(n, key_set(&conn), key_set(&sub))
        .map_err(|e| e.to_string())?;
    *active = Sources { conn, sub };
    Ok(verifier)
}

/// Counters of the active JWKS sources: `("token" | "subscription_token", endpoint, stats)`.
pub fn stats() -> Vec<(&'static str, String, JwksStats)> {
    let active = ACTIVE.lock();
    let mut out = Vec::new();
    for (block, a) in [("token", &active.conn), ("subscription_token", &active.sub)] {
        if let Some(a) = a {
            out.push((block, a.endpoint.clone(), a.source.stats()));
        }
    }
    out
}
