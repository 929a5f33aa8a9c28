//! The proxy configuration, already read from either generation of Centrifugo keys by the
//! server binary: one [`ProxySettings`] per proxy object, which event uses which, and the RPC
//! routing. [`ProxyConfig::validate`] checks what Centrifugo checks at start-up.

use std::time::Duration;

use rotor_core::backend::BackendStyle;

/// The seven headers Centrifugo 2.x forwards to every proxy (plus `proxy_extra_http_headers`).
pub const LEGACY_DEFAULT_HEADERS: &[&str] = &[
    "origin",
    "user-agent",
    "cookie",
    "authorization",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
];

/// The name of the proxy object that is not in the `proxies` list.
pub const DEFAULT_PROXY: &str = "default";

/// TLS options of an outgoing connection (`http.tls` / `grpc.tls`): the shared client options
/// of rotor-netclient (PEM values are PEM text or a file path, as Centrifugo accepts).
pub use rotor_netclient::TlsOptions as TlsSettings;

/// `http.status_to_code_transforms[]`: a backend HTTP status turned into an error or a
/// disconnect, as if the backend had answered with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTransform {
    pub status_code: u16,
    /// `to_error`: used when `code > 0`.
    pub error_code: u32,
    pub error_message: String,
    pub error_temporary: bool,
    /// `to_disconnect`: used when `code > 0` and there is no error.
    pub disconnect_code: u16,
    pub disconnect_reason: String,
}

/// One proxy object: where to call and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// `default` for the objects under `client.proxy.*`, `channel.proxy.*`, `rpc.proxy` and
    /// for every 2.x proxy; the entry's name in `proxies`.
    pub name: String,
    /// `http://` / `https://` → HTTP; anything else (`grpc://host:port`, `host:port`) → gRPC.
    pub endpoint: String,
    pub timeout: Duration,
    /// Transport headers forwarded (lower-case allow-list). 2.x: the default seven plus
    /// `proxy_extra_http_headers`.
    pub http_headers: Vec<String>,
    /// v2 connect-frame headers forwarded (lower-case allow-list).
    pub emulated_headers: Vec<String>,
    /// Incoming gRPC metadata forwarded (uni-gRPC clients; lower-case allow-list).
    pub grpc_metadata: Vec<String>,
    /// Send payloads as `b64data` with `encoding: "binary"` (6.x `binary_encoding`).
    pub binary_encoding: bool,
    /// Add the connection's `meta` to every request but connect.
    pub include_connection_meta: bool,
    /// `http.static_headers`: fixed headers, lowest precedence.
    pub static_headers: Vec<(String, String)>,
    pub status_transforms: Vec<StatusTransform>,
    pub http_tls: TlsSettings,
    pub grpc_tls: TlsSettings,
    /// `grpc.credentials_key` / `_value`: a metadata pair sent with every call.
    pub grpc_credentials_key: String,
    pub grpc_credentials_value: String,
    pub grpc_compression: bool,
    pub grpc_static_metadata: Vec<(String, String)>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            name: DEFAULT_PROXY.to_string(),
            endpoint: String::new(),
            timeout: Duration::from_secs(1),
            http_headers: Vec::new(),
            emulated_headers: Vec::new(),
            grpc_metadata: Vec::new(),
            binary_encoding: false,
            include_connection_meta: false,
            static_headers: Vec::new(),
            status_transforms: Vec::new(),
            http_tls: TlsSettings::default(),
            grpc_tls: TlsSettings::default(),
            grpc_credentials_key: String::new(),
            grpc_credentials_value: String::new(),
            grpc_compression: false,
            grpc_static_metadata: Vec::new(),
        }
    }
}

impl ProxySettings {
    /// Whether the endpoint is called over HTTP (else gRPC).
    pub fn is_http(&self) -> bool {
        let e = self.endpoint.to_ascii_lowercase();
        e.starts_with("http://") || e.starts_with("https://")
    }
}

/// Where RPCs of one RPC namespace (or of methods without a namespace) go (6.x).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcRoute {
    pub proxy_enabled: bool,
    /// `""` or `default` = `rpc.proxy`; else a name in `proxies`.
    pub proxy_name: String,
}

/// A named RPC namespace (`rpc.namespaces[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcNamespace {
    pub name: String,
    pub route: RpcRoute,
}

/// Every proxy of a node. Events whose proxy is `None` are not proxied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Which generation of keys configured the proxies.
    pub style: BackendStyle,
    pub connect: Option<ProxySettings>,
    pub refresh: Option<ProxySettings>,
    /// The default (`channel.proxy.subscribe` / `proxy_subscribe_endpoint`) proxies of the
    /// channel events; namespaces pick them with `proxy_subscribe` / `subscribe_proxy_enabled`.
    pub subscribe: Option<ProxySettings>,
    pub publish: Option<ProxySettings>,
    pub sub_refresh: Option<ProxySettings>,
    /// The default rpc proxy (`rpc.proxy` / `proxy_rpc_endpoint`).
    pub rpc: Option<ProxySettings>,
    /// The `proxies` list (6.x), referenced by name.
    pub named: Vec<ProxySettings>,
    /// 6.x: RPC methods without a namespace (`rpc.without_namespace`). 2.x: every method goes
    /// to `rpc` when it is set.
    pub rpc_without_namespace: RpcRoute,
    pub rpc_namespaces: Vec<RpcNamespace>,
    /// `rpc.namespace_boundary`, default `:`.
    pub rpc_namespace_boundary: String,
    /// `rpc.ping`: the method `rpc_ping_method` is answered locally with empty data.
    pub rpc_ping: bool,
    pub rpc_ping_method: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            style: BackendStyle::Legacy,
            connect: None,
            refresh: None,
            subscribe: None,
            publish: None,
            sub_refresh: None,
            rpc: None,
            named: Vec::new(),
            rpc_without_namespace: RpcRoute::default(),
            rpc_namespaces: Vec::new(),
            rpc_namespace_boundary: ":".to_string(),
            rpc_ping: false,
            rpc_ping_method: "ping".to_string(),
        }
    }
}

/// A proxy configuration the node cannot run with; the message names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyConfigError {
    #[error("proxy {0:?}: invalid name, must match ^[-a-zA-Z0-9_.]{{2,}}$")]
    BadName(String),
    #[error("proxy name {0:?} is reserved")]
    ReservedName(String),
    #[error("proxy {0:?} is defined twice in proxies")]
    DuplicateName(String),
    #[error("{0}: endpoint is required")]
    NoEndpoint(String),
    #[error("{0}: timeout must be greater than zero")]
    ZeroTimeout(String),
    #[error("{what}: unknown proxy name {name:?} (not in proxies)")]
    UnknownName { what: String, name: String },
    #[error("rpc namespace {0:?}: invalid name, must match ^[-a-zA-Z0-9_.]{{2,}}$")]
    BadRpcNamespace(String),
    #[error("rpc namespace {0:?} is defined twice")]
    DuplicateRpcNamespace(String),
    #[error("{what}: endpoint {endpoint:?}: {message}")]
    BadEndpoint {
        what: String,
        endpoint: String,
        message: String,
    },
}

fn valid_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl ProxyConfig {
    /// Whether anything is proxied at all.
    pub fn is_empty(&self) -> bool {
        self.connect.is_none()
            && self.refresh.is_none()
            && self.subscribe.is_none()
            && self.publish.is_none()
            && self.sub_refresh.is_none()
            && self.rpc.is_none()
            && self.named.is_empty()
            && !self.rpc_ping
    }

    /// The proxy object `name` refers to for an event whose default object is `default`.
    pub fn resolve<'a>(
        &'a self,
        name: &str,
        default: Option<&'a ProxySettings>,
    ) -> Option<&'a ProxySettings> {
        if name.is_empty() || name == DEFAULT_PROXY {
            default
        } else {
            self.named.iter().find(|p| p.name == name)
        }
    }

    /// Checks names, endpoints and timeouts, and that every name in `references` (what refers
    /// to it, the name) exists: namespace `*_proxy_name`s and rpc routes are passed in by the
    /// caller, which knows the channel namespaces.
    pub fn validate(&self, references: &[(String, String)]) -> Result<(), ProxyConfigError> {
        let fixed = [
            ("client.proxy.connect", &self.connect),
            ("client.proxy.refresh", &self.refresh),
            ("channel.proxy.subscribe", &self.subscribe),
            ("channel.proxy.publish", &self.publish),
            ("channel.proxy.sub_refresh", &self.sub_refresh),
            ("rpc.proxy", &self.rpc),
        ];
        for (what, p) in fixed {
            if let Some(p) = p {
                check_settings(what, p)?;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.named {
            if p.name == DEFAULT_PROXY {
                return Err(ProxyConfigError::ReservedName(p.name.clone()));
            }
            if !valid_name(&p.name) {
                return Err(ProxyConfigError::BadName(p.name.clone()));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(ProxyConfigError::DuplicateName(p.name.clone()));
            }
            check_settings(&format!("proxies[{}]", p.name), p)?;
        }
        let mut ns_seen = std::collections::HashSet::new();
        for ns in &self.rpc_namespaces {
            if !valid_name(&ns.name) {
                return Err(ProxyConfigError::BadRpcNamespace(ns.name.clone()));
            }
            if !ns_seen.insert(ns.name.as_str()) {
                return Err(ProxyConfigError::DuplicateRpcNamespace(ns.name.clone()));
            }
        }
        let rpc_refs = std::iter::once(("rpc.without_namespace", &self.rpc_without_namespace))
            .chain(
                self.rpc_namespaces
                    .iter()
                    .map(|n| (n.name.as_str(), &n.route)),
            )
            .filter(|(_, r)| r.proxy_enabled)
            .map(|(what, r)| (format!("rpc namespace {what}"), r.proxy_name.clone()));
        for (what, name) in references.iter().cloned().chain(rpc_refs) {
            let named = !(name.is_empty() || name == DEFAULT_PROXY);
            if named && self.resolve(&name, None).is_none() {
                return Err(ProxyConfigError::UnknownName { what, name });
            }
        }
        Ok(())
    }
}

fn check_settings(what: &str, p: &ProxySettings) -> Result<(), ProxyConfigError> {
    if p.endpoint.is_empty() {
        return Err(ProxyConfigError::NoEndpoint(what.to_string()));
    }
    if p.timeout.is_zero() {
        return Err(ProxyConfigError::ZeroTimeout(what.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(name: &str, endpoint: &str) -> ProxySettings {
        ProxySettings {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            ..ProxySettings::default()
        }
    }

    #[test]
    fn names_are_checked_as_centrifugo_does() {
        let mut c = ProxyConfig {
            named: vec![proxy("a", "http://x")],
            ..ProxyConfig::default()
        };
        assert_eq!(c.validate(&[]), Err(ProxyConfigError::BadName("a".into())));
        c.named = vec![proxy("default", "http://x")];
        assert!(matches!(
            c.validate(&[]),
            Err(ProxyConfigError::ReservedName(_))
        ));
        c.named = vec![proxy("one", "http://x"), proxy("one", "http://y")];
        assert!(matches!(
            c.validate(&[]),
            Err(ProxyConfigError::DuplicateName(_))
        ));
        c.named = vec![proxy("one", "")];
        assert!(matches!(
            c.validate(&[]),
            Err(ProxyConfigError::NoEndpoint(_))
        ));
        c.named = vec![proxy("one", "http://x")];
        assert_eq!(c.validate(&[]), Ok(()));
        let refs = [("namespace chat".to_string(), "two".to_string())];
        assert!(matches!(
            c.validate(&refs),
            Err(ProxyConfigError::UnknownName { .. })
        ));
        let refs = [("namespace chat".to_string(), "one".to_string())];
        assert_eq!(c.validate(&refs), Ok(()));
    }

    #[test]
    fn endpoints_pick_the_transport() {
        assert!(proxy("x1", "http://a/b").is_http());
        assert!(proxy("x1", "HTTPS://a/b").is_http());
        assert!(!proxy("x1", "grpc://a:1").is_http());
        assert!(!proxy("x1", "a:1").is_http());
    }
}
