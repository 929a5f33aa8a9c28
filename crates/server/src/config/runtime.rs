//! Configuration at run time: the first run without any configuration (a secret and an API key
//! generated for this run), and `SIGHUP` reloads of the token settings (secret, audience,
//! issuer) and channel options (the proxies are not reloaded, as in Centrifugo).

use std::path::PathBuf;

use rotor_core::Node;
use rotor_proxy::ProxyConfig;

use super::{reload, FirstRun, LoadedConfig};

/// User of the connection token printed at a first run.
const DEMO_USER: &str = "demo";
/// Channel of the printed publish example (top level: any connected client may subscribe).
const DEMO_CHANNEL: &str = "chat";

/// A fresh random secret: two v4 UUIDs (244 random bits) as hex.
pub fn random_secret() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    a + &b
}

/// When `cfg` came from no file and leaves clients and the API without any way in (no secret,
/// no API key, no insecure or anonymous mode), makes it a working one for this run: generates
/// a token secret and an API key and mints a connection token. Returns whether it did.
pub fn prepare_first_run(cfg: &mut LoadedConfig) -> bool {
    let (n, s) = (&cfg.node, &cfg.server);
    let bare = cfg.source.is_none()
        && n.token_hmac_secret_key.is_empty()
        && s.api_key.is_empty()
        && !n.client_insecure
        && !n.client_anonymous
        && !s.api_insecure
        && !s.api_disable
        && !s.websocket_disable;
    if !bare {
        return false;
    }
    let secret = random_secret();
    let claims = serde_json::json!({ "sub": DEMO_USER }).to_string();
    let token = rotor_core::auth::sign_hs256(&secret, &claims);
    cfg.node.token_hmac_secret_key = secret;
    cfg.server.api_key = random_secret();
    cfg.first_run = Some(FirstRun {
        user: DEMO_USER.to_string(),
        token,
    });
    true
}

/// The lines printed at a first run: the generated secrets, a token and a `curl` publish.
pub(super) fn first_run_lines(cfg: &LoadedConfig, run: &FirstRun) -> Vec<String> {
    let s = &cfg.server;
    let host = match s.address.as_str() {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        a if a.contains(':') && !a.starts_with('[') => format!("[{a}]"),
        a => a.to_string(),
    };
    let scheme = if s.tls { "https" } else { "http" };
    let url = format!(
        "{scheme}://{host}:{}{}/publish",
        s.port, s.api_handler_prefix
    );
    let body = format!(r#"{{"channel":"{DEMO_CHANNEL}","data":{{"text":"hello"}}}}"#);
    vec![
        "no configuration file: this run uses a token secret and an API key generated for it \
         (`rotor genconfig` writes a config.json to keep)"
            .to_string(),
        format!("token_hmac_secret_key: {}", cfg.node.token_hmac_secret_key),
        format!("api_key: {}", s.api_key),
        format!(
            "connection token for user {:?} (subscribe to {DEMO_CHANNEL:?}): {}",
            run.user, run.token
        ),
        format!(
            "publish: curl -sS -X POST -H 'Content-Type: application/json' -H 'X-API-Key: {}' \
             -d '{body}' {url}",
            s.api_key
        ),
    ]
}

/// Reloads the token settings (keys, JWKS sources when their endpoint or regexes changed,
/// claim rules) and the channel options on every `SIGHUP` until the node stops:
/// the file the server started with is read again (with the environment); connections stay.
/// A configuration that does not load is logged and changes nothing.
pub fn watch_sighup(node: Node, cfg: &LoadedConfig) {
    let source = cfg.source.clone();
    let generated = cfg.first_run.is_some();
    tokio::spawn(sighup_loop(node, source, generated, cfg.proxy.clone()));
}

#[cfg(unix)]
async fn sighup_loop(node: Node, source: Option<PathBuf>, generated: bool, proxy: ProxyConfig) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; configuration reload is off");
            return;
        }
    };
    let stop = node.shutdown_token();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        if generated {
            tracing::warn!(
                "SIGHUP: no configuration file to reload (this run uses generated secrets)"
            );
            continue;
        }
        let env: Vec<(String, String)> = std::env::vars().collect();
        match reload(source.as_deref(), &env) {
            Ok(new) => {
                for w in &new.warnings {
                    tracing::warn!("{w}");
                }
                if new.proxy != proxy {
                    tracing::warn!(
                        "SIGHUP: the proxy settings changed; they apply at the next start \
                         (namespaces naming a proxy the running server lacks get error 108)"
                    );
                }
                let verifier = match super::token_verifier(&new.node) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!("configuration not reloaded: {e}");
                        continue;
                    }
                };
                match node.reload_with(&new.node, verifier) {
                    Ok(()) => tracing::info!(
                        "configuration reloaded: token keys (HMAC, RSA, ECDSA, JWKS), audience, \
                         issuer, regexes, user_id_claim and channel options (other settings apply \
                         at the next start)"
                    ),
                    Err(e) => tracing::error!("configuration not reloaded: {e}"),
                }
            }
            Err(e) => tracing::error!("configuration not reloaded: {e}"),
        }
    }
}

#[cfg(not(unix))]
async fn sighup_loop(_node: Node, _source: Option<PathBuf>, _generated: bool, _p: ProxyConfig) {}
