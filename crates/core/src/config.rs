//! Typed node configuration: what the server binary hands to [`crate::Node`].
//!
//! The binary owns parsing (file / env / flags, Centrifugo key names); this module only holds
//! the validated result, with Centrifugo 2.x defaults, so the core never sees raw config maps.

use std::time::Duration;

/// Options a channel gets from the top level or from its namespace (no inheritance between them,
/// as in Centrifugo 2.x).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    pub publish: bool,
    pub subscribe_to_publish: bool,
    pub anonymous: bool,
    pub presence: bool,
    pub presence_disable_for_client: bool,
    pub join_leave: bool,
    pub history_size: usize,
    /// Seconds; history disappears this long after the channel's last publication.
    pub history_lifetime: u64,
    pub history_recover: bool,
    pub history_disable_for_client: bool,
    pub server_side: bool,
    /// Subscribes go to the backend's subscribe proxy (2.x `proxy_subscribe`, 6.x
    /// `subscribe_proxy_enabled`).
    pub proxy_subscribe: bool,
    /// Client publications go to the backend's publish proxy.
    pub proxy_publish: bool,
    /// 6.x `sub_refresh_proxy_enabled`: subscriptions with an expiry are refreshed by the
    /// server through the backend.
    pub proxy_sub_refresh: bool,
    /// 6.x `*_proxy_name`: which proxy object (`""` = the default one).
    pub subscribe_proxy_name: String,
    pub publish_proxy_name: String,
    pub sub_refresh_proxy_name: String,
    /// 6.x `channel_regex`: a client's channel must match it (the part after the namespace);
    /// `None`: v2 clients' channel names must be ASCII.
    pub channel_regex: Option<crate::channel_regex::ChannelRegex>,
    /// 6.x `publication_data_format`: what publication data is accepted.
    pub publication_data_format: DataFormat,
    /// 6.x `allow_tags_filter`: v2 clients may subscribe with a tags filter (`tf`).
    pub allow_tags_filter: bool,
    /// 6.x `allow_recovery`: a v2 client may ask for a recoverable subscription
    /// (`recoverable: true`); `history_recover` (`force_recovery`) makes every one recoverable.
    /// History permission grants the ask too (`client::recovery`).
    pub allow_recovery: bool,
    /// 6.x `force_positioning`: every subscription is positioned (offsets checked, no gap
    /// goes unnoticed), recoverable or not.
    pub force_positioning: bool,
    /// 6.x `allow_positioning`: a v2 client may ask for a positioned subscription.
    pub allow_positioning: bool,
    /// 6.x `force_recovery_mode`: what a recovery returns.
    pub recovery_mode: RecoveryMode,
    /// 6.x `auto_cache_recover`: every subscribe recovers (cache mode), asked or not.
    pub auto_cache_recover: bool,
    /// 6.x `history_meta_ttl` of the namespace; `None`: the engine's global value.
    pub history_meta_ttl: Option<Duration>,
    /// 6.x `force_push_join_leave`: every subscriber gets join/leave pushes.
    pub force_push_join_leave: bool,
    /// 6.x `allowed_delta_types: ["fossil"]`: v2 subscribers may negotiate Fossil deltas.
    pub delta_fossil: bool,
    /// 6.x `delta_publish`: every publication to the channel is marked for delta delivery
    /// (client publishes too), as if published with the API's `delta: true`.
    pub delta_publish: bool,
}

/// 6.x `force_recovery_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// `""` / `stream`: every missed publication, or `recovered: false`.
    #[default]
    Stream,
    /// `cache`: only the latest publication (or none when the client has it).
    Cache,
}

impl ChannelOptions {
    /// History is kept only when both size and lifetime are set.
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && self.history_lifetime > 0
    }
}

/// `publication_data_format` (Centrifugo 6.5+): checked on client publish, API publish and
/// broadcast; a refusal is error 107.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DataFormat {
    /// `""`: any data but empty.
    #[default]
    NonEmpty,
    /// `json`: valid JSON.
    Json,
    /// `json_object`: a JSON object.
    JsonObject,
    /// `binary`: anything, empty included.
    Binary,
}

impl DataFormat {
    /// The option's value; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" => Self::NonEmpty,
            "json" => Self::Json,
            "json_object" => Self::JsonObject,
            "binary" => Self::Binary,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NonEmpty => "",
            Self::Json => "json",
            Self::JsonObject => "json_object",
            Self::Binary => "binary",
        }
    }

    /// Whether `data` is acceptable publication data in this format.
    pub fn accepts(self, data: &[u8]) -> bool {
        match self {
            Self::NonEmpty => !data.is_empty(),
            Self::Binary => true,
            Self::Json => serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
            Self::JsonObject => {
                data.trim_ascii_start().first() == Some(&b'{')
                    && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
            }
        }
    }
}

/// A named namespace (`ns:channel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub options: ChannelOptions,
}

/// Everything the core needs to run a node. `Default` gives Centrifugo 2.x defaults.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name shown in `info`.
    pub name: String,
    /// Version string sent in connect/refresh results.
    pub version: String,

    /// HMAC secret for connection and subscription JWTs (`token_hmac_secret_key`, legacy `secret`).
    pub token_hmac_secret_key: String,
    /// `token_audience`: when set, a token's `aud` must contain it; empty = not checked.
    pub token_audience: String,
    /// `token_issuer`: when set, a token's `iss` must equal it; empty = not checked.
    pub token_issuer: String,
    /// `token_rsa_public_key`: PEM (`PUBLIC KEY` or `CERTIFICATE`) for RS256/384/512; empty = none.
    pub token_rsa_public_key: String,
    /// `token_ecdsa_public_key`: PEM (`PUBLIC KEY` or `CERTIFICATE`) on P-256, P-384 or P-521,
    /// verifying ES256, ES384 or ES512 respectively; empty = none.
    pub token_ecdsa_public_key: String,
    /// `token_user_id_claim`: top-level claim holding the user ID instead of `sub`; empty = `sub`.
    pub token_user_id_claim: String,
    /// `token_jwks_public_endpoint`: JWKS URL (may hold `{{name}}` placeholders). When set,
    /// connection tokens are verified only with keys from it (the static keys above are not
    /// used); the node then needs a key set installed (the server builds it with rotor-jwks),
    /// else every connection token is refused.
    pub token_jwks_public_endpoint: String,
    /// `token_audience_regex`: when set, one element of `aud` must match it (unanchored unless
    /// the pattern anchors itself, as in Centrifugo); exclusive with `token_audience`.
    pub token_audience_regex: String,
    /// `token_issuer_regex`: when set, `iss` must match it (unanchored unless anchored);
    /// exclusive with `token_issuer`.
    pub token_issuer_regex: String,
    /// The separate subscription-token block (v6 `client.subscription_token` with `enabled`,
    /// v5 `separate_subscription_token_config`). `None`: subscription tokens use the
    /// connection-token settings above. `Some`: only this block, nothing inherited.
    pub subscription_token: Option<TokenKeys>,
    /// `client_insecure`: no token needed, `exp` ignored, anyone may subscribe and publish.
    pub client_insecure: bool,
    /// `client_anonymous`: connect without a token as user `""`.
    pub client_anonymous: bool,

    pub channel_private_prefix: String,
    pub channel_namespace_boundary: String,
    pub channel_user_boundary: String,
    pub channel_user_separator: String,
    pub channel_max_length: usize,

    /// 6.x `client.history_max_publication_limit`: the most publications a v2 client's
    /// `history` returns (its limit -1 = all, or a larger one, is cut to this); 0 = no cap.
    pub client_history_max_publication_limit: usize,
    /// 6.x `client.recovery_max_publication_limit`: a v2 recovery that would return more
    /// publications than this answers `recovered: false` with none; 0 = no cap.
    pub client_recovery_max_publication_limit: usize,
    /// Subscriptions one connection may have (106 beyond; v2 server-side ones beyond: 3505);
    /// 0 = no limit.
    pub client_channel_limit: usize,
    /// Connections one user may have on this node (3504 / 3013 beyond); 0 = no limit.
    pub client_user_connection_limit: usize,
    /// Bytes queued to one connection before it is closed as slow (3008).
    pub client_queue_max_size: usize,
    /// Largest inbound WebSocket message (`client_request_max_size` /
    /// `websocket_message_size_limit`).
    pub client_request_max_size: usize,

    pub client_expired_close_delay: Duration,
    pub client_expired_sub_close_delay: Duration,
    pub client_stale_close_delay: Duration,
    pub client_presence_ping_interval: Duration,
    pub client_presence_expire_interval: Duration,
    pub client_channel_position_check_delay: Duration,
    /// WebSocket ping interval (v1: control ping frames; v2: application ping `{}`).
    pub client_ping_interval: Duration,
    /// v2 only: how long to wait for the client's pong after a ping.
    pub client_pong_timeout: Duration,
    pub client_message_write_timeout: Duration,

    /// `v3_use_offset`: v1 connections see `offset` instead of `seq`/`gen`.
    pub v3_use_offset: bool,

    pub user_subscribe_to_personal: bool,
    pub user_personal_channel_namespace: String,
    pub user_personal_single_connection: bool,

    /// Top-level channel options (channels without a namespace).
    pub channel_options: ChannelOptions,
    pub namespaces: Vec<Namespace>,

    /// How long memory-engine stream metadata (offset, epoch) outlives its history; 0 = forever.
    pub memory_history_meta_ttl: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "rotor".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            token_hmac_secret_key: String::new(),
            token_audience: String::new(),
            token_issuer: String::new(),
            token_rsa_public_key: String::new(),
            token_ecdsa_public_key: String::new(),
            token_user_id_claim: String::new(),
            token_jwks_public_endpoint: String::new(),
            token_audience_regex: String::new(),
            token_issuer_regex: String::new(),
            subscription_token: None,
            client_insecure: false,
            client_anonymous: false,
            channel_private_prefix: "$".to_string(),
            channel_namespace_boundary: ":".to_string(),
            channel_user_boundary: "#".to_string(),
            channel_user_separator: ",".to_string(),
            channel_max_length: 255,
            client_history_max_publication_limit: 300,
            client_recovery_max_publication_limit: 300,
            client_channel_limit: 128,
            client_user_connection_limit: 0,
            client_queue_max_size: 10 * 1024 * 1024,
            client_request_max_size: 65536,
            client_expired_close_delay: Duration::from_secs(25),
            client_expired_sub_close_delay: Duration::from_secs(25),
            client_stale_close_delay: Duration::from_secs(25),
            client_presence_ping_interval: Duration::from_secs(25),
            client_presence_expire_interval: Duration::from_secs(60),
            client_channel_position_check_delay: Duration::from_secs(40),
            client_ping_interval: Duration::from_secs(25),
            client_pong_timeout: Duration::from_secs(8),
            client_message_write_timeout: Duration::from_secs(1),
            v3_use_offset: false,
            user_subscribe_to_personal: false,
            user_personal_channel_namespace: String::new(),
            user_personal_single_connection: false,
            channel_options: ChannelOptions::default(),
            namespaces: Vec::new(),
            memory_history_meta_ttl: Duration::ZERO,
        }
    }
}

/// One block of token verification settings (v6 `client.token` / `client.subscription_token`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenKeys {
    /// HS256/384/512 secret; empty = none.
    pub hmac_secret_key: String,
    /// PEM for RS256/384/512; empty = none.
    pub rsa_public_key: String,
    /// PEM for ES256/384/512 (by curve); empty = none.
    pub ecdsa_public_key: String,
    /// Exact `aud` check; empty = none.
    pub audience: String,
    /// Exact `iss` check; empty = none.
    pub issuer: String,
    /// Claim holding the user ID instead of `sub`; empty = `sub`.
    pub user_id_claim: String,
    /// JWKS URL (may be templated); when set, the static keys above are not used.
    pub jwks_public_endpoint: String,
    /// Regex one `aud` element must match; empty = none.
    pub audience_regex: String,
    /// Regex `iss` must match; empty = none.
    pub issuer_regex: String,
}

/// A configuration the node cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid namespace name {0:?}: must match ^[-a-zA-Z0-9_.]{{2,}}$")]
    BadNamespaceName(String),
    #[error("namespace {0:?} is defined twice")]
    DuplicateNamespace(String),
    #[error(
        "{0}: history_recover needs history_size and history_lifetime set (v6 names: \
         force_recovery needs history_size and history_ttl)"
    )]
    RecoverWithoutHistory(String),
    #[error("{0}: auto_cache_recover needs force_recovery on and force_recovery_mode \"cache\"")]
    AutoCacheRecoverWithoutCache(String),
    #[error("{0}: history_meta_ttl ({1}s) must not be less than history_ttl ({2}s)")]
    HistoryMetaTtlTooShort(String, u64, u64),
}

impl NodeConfig {
    /// The channel a user is subscribed to server-side with `user_subscribe_to_personal`:
    /// `#<user>`, or `<namespace>:#<user>` with `user_personal_channel_namespace`.
    pub fn personal_channel(&self, user: &str) -> String {
        if self.user_personal_channel_namespace.is_empty() {
            format!("{}{}", self.channel_user_boundary, user)
        } else {
            format!(
                "{}{}{}{}",
                self.user_personal_channel_namespace,
                self.channel_namespace_boundary,
                self.channel_user_boundary,
                user
            )
        }
    }

    /// Checks what Centrifugo checks at start-up; the error names the namespace at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_options("top-level channel options", &self.channel_options)?;
        let mut seen = std::collections::HashSet::new();
        for ns in &self.namespaces {
            let ok = ns.name.len() >= 2
                && ns
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(ConfigError::BadNamespaceName(ns.name.clone()));
            }
            if !seen.insert(ns.name.as_str()) {
                return Err(ConfigError::DuplicateNamespace(ns.name.clone()));
            }
            check_options(&format!("namespace {:?}", ns.name), &ns.options)?;
        }
        Ok(())
    }
}

fn check_options(what: &str, o: &ChannelOptions) -> Result<(), ConfigError> {
    if o.history_recover && !o.history_enabled() {
        return Err(ConfigError::RecoverWithoutHistory(what.to_string()));
    }
    if o.auto_cache_recover && !(o.history_recover && o.recovery_mode == RecoveryMode::Cache) {
        return Err(ConfigError::AutoCacheRecoverWithoutCache(what.to_string()));
    }
    if let Some(meta) = o.history_meta_ttl {
        // Compared in whole seconds, as history_lifetime is stored (rounded up).
        let meta_secs = meta.as_secs() + u64::from(meta.subsec_nanos() > 0);
        if meta_secs < o.history_lifetime {
            return Err(ConfigError::HistoryMetaTtlTooShort(
                what.to_string(),
                meta_secs,
                o.history_lifetime,
            ));
        }
    }
    Ok(())
}
