//! The proxy keys of both Centrifugo generations (PROXY.md §2), read into the
//! [`ProxyConfig`] of `rotor-proxy`:
//!
//! * Centrifugo 2.x flat keys: `proxy_<type>_endpoint` and `proxy_<type>_timeout` (seconds,
//!   default 1) for connect, refresh, rpc, subscribe and publish, and
//!   `proxy_extra_http_headers`; an empty endpoint leaves that proxy off.
//! * Centrifugo 6 nested keys: `client.proxy.connect` / `refresh` (on with `enabled`),
//!   `channel.proxy.subscribe` / `publish` / `sub_refresh` and `rpc.proxy` (present when they
//!   have an endpoint), the named `proxies`, and the RPC routes (`rpc.without_namespace`,
//!   `rpc.namespaces`, `rpc.namespace_boundary`, `rpc.ping`). Their nested paths are their key
//!   names in the loader; the environment names are derived from them as Centrifugo does.
//! * The namespace switches (`proxy_subscribe`, `subscribe_proxy_enabled`, `*_proxy_name`, ...)
//!   are channel options (`channel.rs`); [`ProxyAcc::finish`] checks them against the proxies
//!   as Centrifugo checks them at start.
//!
//! Proxy keys of both generations at once are refused, as are, when set, Centrifugo 3–5 flat
//! proxy keys (their meaning is neither layout's) and subscribe streams.

mod fields;
mod lists;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use rotor_core::backend::BackendStyle;
use rotor_core::config::{ChannelOptions, NodeConfig};
use rotor_proxy::config::{RpcNamespace, RpcRoute, DEFAULT_PROXY};
use rotor_proxy::{ProxyConfig, ProxySettings};

use super::values::{boolean, duration, non_empty, string, Input};
use super::{key_err, ConfigLoadError, SetError};
pub(crate) use lists::{parse_named, parse_rpc_namespaces, ListEntry};

/// The proxies of Centrifugo 2.x, in the order of [`ProxyAcc::legacy`].
const LEGACY_KINDS: [&str; 5] = ["connect", "refresh", "rpc", "subscribe", "publish"];

/// The Centrifugo 6 proxy objects not in `proxies`, in the order of [`ProxyAcc::objects`]; the
/// first two are switched on by `enabled`.
const ROOTS: [&str; 6] = [
    "client.proxy.connect",
    "client.proxy.refresh",
    "channel.proxy.subscribe",
    "channel.proxy.publish",
    "channel.proxy.sub_refresh",
    "rpc.proxy",
];

/// Centrifugo 6 RPC keys besides `rpc.proxy` and `rpc.namespaces`. `rpc.ping` is an object
/// (`enabled`, `method`) in Centrifugo 6; a plain boolean is accepted as `enabled`.
const RPC_KEYS: [&str; 6] = [
    "rpc.without_namespace.proxy_enabled",
    "rpc.without_namespace.proxy_name",
    "rpc.namespace_boundary",
    "rpc.ping",
    "rpc.ping.enabled",
    "rpc.ping.method",
];

/// The named lists, parsed with their per-item environment variables (see [`lists`]).
pub(crate) const LISTS: [&str; 2] = ["proxies", "rpc.namespaces"];

/// Flat proxy keys of Centrifugo 3–5 (not in 2.x): refused when set.
const FLAT_3_5: &[&str] = &[
    "proxy_http_headers",
    "proxy_grpc_metadata",
    "proxy_binary_encoding",
    "proxy_include_connection_meta",
    "proxy_static_http_headers",
    "proxy_http_status_code_transforms",
    "proxy_grpc_cert_file",
    "proxy_grpc_compression",
    "proxy_grpc_credentials_key",
    "proxy_grpc_credentials_value",
    "proxy_sub_refresh_endpoint",
    "proxy_sub_refresh_timeout",
    "proxy_subscribe_stream_endpoint",
    "proxy_subscribe_stream_timeout",
    "granular_proxy_mode",
    "connect_proxy_name",
    "refresh_proxy_name",
    "rpc_proxy_name",
    "rpc_namespaces",
    "rpc_namespace_boundary",
    "rpc_ping",
    "rpc_ping_method",
];

const FLAT_3_5_MESSAGE: &str = "Centrifugo 3-5 proxy keys are not supported: use the 2.x keys \
    (proxy_<type>_endpoint, proxy_<type>_timeout, proxy_extra_http_headers) or the Centrifugo 6 \
    keys (client.proxy.*, channel.proxy.*, rpc.*, proxies)";

/// Namespace switches that only Centrifugo 6 names (the 2.x names are their aliases).
const V6_SWITCHES: [&str; 3] = [
    "subscribe_proxy_enabled",
    "publish_proxy_enabled",
    "sub_refresh_proxy_enabled",
];

/// One Centrifugo 6 proxy object as read.
#[derive(Debug, Clone, Default)]
struct Obj {
    enabled: bool,
    s: ProxySettings,
}

/// The proxy keys as applied, before [`ProxyAcc::finish`] checks them and builds the result.
#[derive(Debug, Default)]
pub(crate) struct ProxyAcc {
    /// 2.x: endpoint and timeout per [`LEGACY_KINDS`].
    legacy: [(String, Option<Duration>); 5],
    extra_headers: Vec<String>,
    objects: [Obj; 6],
    rpc_default: RpcRoute,
    rpc_boundary: Option<String>,
    rpc_ping: bool,
    rpc_ping_method: Option<String>,
    pub(crate) named: Vec<ProxySettings>,
    pub(crate) rpc_namespaces: Vec<RpcNamespace>,
    /// The first key of each generation set to something (timeouts alone configure nothing).
    legacy_key: Option<String>,
    modern_key: Option<String>,
    /// A Centrifugo 6 name or section switched a channel proxy on.
    pub(crate) modern_hint: bool,
}

/// `proxy_<kind>_endpoint` / `_timeout`: the kind's index and whether it is the endpoint.
fn legacy_key(key: &str) -> Option<(usize, bool)> {
    let rest = key.strip_prefix("proxy_")?;
    LEGACY_KINDS
        .iter()
        .enumerate()
        .find_map(|(idx, kind)| match rest.strip_prefix(kind)? {
            "_endpoint" => Some((idx, true)),
            "_timeout" => Some((idx, false)),
            _ => None,
        })
}

/// The object of `ROOTS` a nested key is in, and the field inside it.
fn modern_field(key: &str) -> Option<(usize, &str)> {
    ROOTS.iter().enumerate().find_map(|(idx, root)| {
        let field = key.strip_prefix(root)?.strip_prefix('.')?;
        let known = fields::FIELDS.contains(&field) || (idx < 2 && field == "enabled");
        known.then_some((idx, field))
    })
}

/// Whether nested `path` is one of this module's keys (its own name in the loader).
pub(crate) fn is_modern_path(path: &str) -> bool {
    modern_field(path).is_some() || RPC_KEYS.contains(&path) || LISTS.contains(&path)
}

/// Whether nested `path` is a map-valued field of a proxy object (a leaf, not walked into).
pub(crate) fn is_map_leaf(path: &str) -> bool {
    modern_field(path).is_some_and(|(_, f)| fields::ends_in_map_field(f))
}

/// Whether nested `path` is an object holding keys of this module (`client.proxy`,
/// `rpc.proxy.http.tls`, ...).
pub(crate) fn is_section(path: &str) -> bool {
    env_table()
        .iter()
        .any(|(_, p)| p.strip_prefix(path).is_some_and(|r| r.starts_with('.')))
}

/// Every nested path of this module's keys with its environment name.
fn env_table() -> &'static [(String, String)] {
    static TABLE: OnceLock<Vec<(String, String)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut paths: Vec<String> = Vec::new();
        for (idx, root) in ROOTS.iter().enumerate() {
            if idx < 2 {
                paths.push(format!("{root}.enabled"));
            }
            paths.extend(fields::FIELDS.iter().map(|f| format!("{root}.{f}")));
        }
        paths.extend(RPC_KEYS.iter().map(|k| k.to_string()));
        paths.extend(LISTS.iter().map(|k| k.to_string()));
        paths
            .into_iter()
            .map(|p| (super::nested::env_name(&p), p))
            .collect()
    })
}

/// The nested path of a Centrifugo 6 proxy environment variable (its name after the prefix:
/// `CLIENT_PROXY_CONNECT_ENDPOINT` → `client.proxy.connect.endpoint`).
pub(crate) fn env_path(rest: &str) -> Option<String> {
    // `RPC_PING_ENABLED` is Centrifugo's; `RPC_PING` (the boolean form) is accepted too.
    env_table()
        .iter()
        .find(|(name, _)| name == rest)
        .map(|(_, path)| path.clone())
}

/// Whether applying `key` (given as `given`, in a Centrifugo 6 nested object when `nested`)
/// switches a channel proxy on under a Centrifugo 6 name.
pub(crate) fn is_v6_switch(key: &str, given: &str, nested: bool, i: &Input) -> bool {
    let switch = matches!(
        key,
        "proxy_subscribe" | "proxy_publish" | "sub_refresh_proxy_enabled"
    );
    let given = given.to_ascii_lowercase();
    let last = given.rsplit('.').next().unwrap_or_default();
    let v6 = nested || given.starts_with("channel.") || V6_SWITCHES.contains(&last);
    switch && v6 && boolean(i) == Ok(true)
}

/// A proxy name: `default` is stored as `""`.
fn proxy_name(i: &Input) -> Result<String, String> {
    let name = string(i)?;
    Ok(if name == DEFAULT_PROXY {
        String::new()
    } else {
        name
    })
}

impl ProxyAcc {
    fn mark(slot: &mut Option<String>, key: &str) {
        if slot.is_none() {
            *slot = Some(key.to_string());
        }
    }

    /// Applies one key of this module (a flat 2.x key, a refused 3–5 key or a nested path);
    /// `Unknown` for any other key.
    pub(crate) fn set(&mut self, key: &str, i: &Input) -> Result<(), SetError> {
        if let Some((idx, is_endpoint)) = legacy_key(key) {
            if is_endpoint {
                let endpoint = string(i)?.trim().to_string();
                if !endpoint.is_empty() {
                    Self::mark(&mut self.legacy_key, key);
                }
                self.legacy[idx].0 = endpoint;
            } else {
                self.legacy[idx].1 = Some(duration(i)?);
            }
            return Ok(());
        }
        if key == "proxy_extra_http_headers" {
            self.extra_headers = fields::header_names(i)?;
            if !self.extra_headers.is_empty() {
                Self::mark(&mut self.legacy_key, key);
            }
            return Ok(());
        }
        if FLAT_3_5.contains(&key) || key.starts_with("proxy_grpc_tls") {
            if i.is_zero() {
                return Ok(());
            }
            return Err(SetError::Bad(FLAT_3_5_MESSAGE.into()));
        }
        if let Some((idx, field)) = modern_field(key) {
            let obj = &mut self.objects[idx];
            if field == "enabled" {
                obj.enabled = boolean(i)?;
            } else {
                fields::set_field(&mut obj.s, field, i)?;
            }
            if field != "timeout" && !i.is_zero() {
                Self::mark(&mut self.modern_key, key);
            }
            return Ok(());
        }
        match key {
            "rpc.without_namespace.proxy_enabled" => {
                self.rpc_default.proxy_enabled = boolean(i)?;
            }
            "rpc.without_namespace.proxy_name" => {
                self.rpc_default.proxy_name = proxy_name(i)?;
                if self.rpc_default.proxy_name.is_empty() {
                    return Ok(());
                }
            }
            "rpc.namespace_boundary" => {
                self.rpc_boundary = Some(non_empty(i)?);
                return Ok(());
            }
            "rpc.ping" | "rpc.ping.enabled" => self.rpc_ping = boolean(i)?,
            "rpc.ping.method" => {
                self.rpc_ping_method = Some(non_empty(i)?);
                return Ok(());
            }
            _ => return Err(SetError::Unknown),
        }
        if !i.is_zero() {
            Self::mark(&mut self.modern_key, key);
        }
        Ok(())
    }

    /// Checks the proxy keys against each other and against the channel options of `node`,
    /// as Centrifugo does at start, and builds the configuration. `origins` holds where each
    /// key came from; `origin` names the configuration as a whole (file or environment).
    pub(crate) fn finish(
        self,
        node: &NodeConfig,
        origins: &BTreeMap<String, String>,
        origin: &str,
        warnings: &mut Vec<String>,
    ) -> Result<ProxyConfig, ConfigLoadError> {
        let origin_of = |k: &str| origins.get(k).cloned().unwrap_or_else(|| origin.into());
        let named_ref = options(node, BackendStyle::Modern).find_map(|(what, o)| {
            switches(o)
                .into_iter()
                .find(|sw| !sw.name.is_empty())
                .map(|sw| format!("{} in {what}", sw.name_key))
        });
        let modern_key = self
            .modern_key
            .clone()
            .or_else(|| (!self.named.is_empty()).then(|| "proxies".to_string()))
            .or_else(|| (!self.rpc_namespaces.is_empty()).then(|| "rpc.namespaces".to_string()))
            .or(named_ref);
        if let (Some(l), Some(m)) = (&self.legacy_key, &modern_key) {
            return Err(ConfigLoadError::Inconsistent {
                origin: origin_of(l),
                message: format!(
                    "proxy keys of two generations are set: {l:?} (Centrifugo 2.x) and {m:?} \
                     (Centrifugo 6); configure the proxies with one of the two layouts"
                ),
            });
        }
        if self.legacy_key.is_none() && (modern_key.is_some() || self.modern_hint) {
            self.modern(node, origin, warnings)
        } else {
            self.legacy(node, origin, origin_of)
        }
    }

    fn legacy(
        self,
        node: &NodeConfig,
        origin: &str,
        origin_of: impl Fn(&str) -> String,
    ) -> Result<ProxyConfig, ConfigLoadError> {
        let mut cfg = ProxyConfig {
            style: BackendStyle::Legacy,
            ..ProxyConfig::default()
        };
        for (idx, (endpoint, timeout)) in self.legacy.into_iter().enumerate() {
            if endpoint.is_empty() {
                continue;
            }
            let kind = LEGACY_KINDS[idx];
            let timeout = timeout.unwrap_or(Duration::from_secs(1));
            if timeout.is_zero() {
                let key = format!("proxy_{kind}_timeout");
                let msg = "must be greater than 0 (Rotor bounds every proxy call; Centrifugo \
                           2.x waited without a limit)";
                return Err(key_err(&key, None, msg.into(), &origin_of(&key)));
            }
            let s = Some(ProxySettings {
                endpoint,
                timeout,
                http_headers: self.extra_headers.clone(),
                ..ProxySettings::default()
            });
            match kind {
                "connect" => cfg.connect = s,
                "refresh" => cfg.refresh = s,
                "rpc" => cfg.rpc = s,
                "subscribe" => cfg.subscribe = s,
                _ => cfg.publish = s,
            }
        }
        for (what, o) in options(node, BackendStyle::Legacy) {
            if o.proxy_sub_refresh {
                return Err(invalid(
                    origin,
                    format!(
                        "{what}: sub_refresh_proxy_enabled needs channel.proxy.sub_refresh \
                         (Centrifugo 6 keys); Centrifugo 2.x has no sub refresh proxy"
                    ),
                ));
            }
        }
        cfg.validate(&[])
            .map_err(|e| invalid(origin, e.to_string()))?;
        Ok(cfg)
    }

    fn modern(
        self,
        node: &NodeConfig,
        origin: &str,
        warnings: &mut Vec<String>,
    ) -> Result<ProxyConfig, ConfigLoadError> {
        let [connect, refresh, subscribe, publish, sub_refresh, rpc] = self.objects;
        for (what, o) in [
            ("client.proxy.connect", &connect),
            ("client.proxy.refresh", &refresh),
        ] {
            if !o.enabled && !o.s.endpoint.is_empty() {
                warnings.push(format!(
                    "{what}.endpoint is set but {what}.enabled is off: that proxy is not used"
                ));
            }
        }
        let with_endpoint = |o: Obj| (!o.s.endpoint.is_empty()).then_some(o.s);
        let cfg = ProxyConfig {
            style: BackendStyle::Modern,
            connect: connect.enabled.then_some(connect.s),
            refresh: refresh.enabled.then_some(refresh.s),
            subscribe: with_endpoint(subscribe),
            publish: with_endpoint(publish),
            sub_refresh: with_endpoint(sub_refresh),
            rpc: with_endpoint(rpc),
            named: self.named,
            rpc_without_namespace: self.rpc_default,
            rpc_namespaces: self.rpc_namespaces,
            rpc_namespace_boundary: self.rpc_boundary.unwrap_or_else(|| ":".into()),
            rpc_ping: self.rpc_ping,
            rpc_ping_method: self.rpc_ping_method.unwrap_or_else(|| "ping".into()),
        };
        let mut references = Vec::new();
        for (what, o) in options(node, BackendStyle::Modern) {
            for sw in switches(o).into_iter().filter(|sw| sw.on) {
                if !sw.name.is_empty() {
                    references.push((format!("{what} {}", sw.name_key), sw.name.to_string()));
                    continue;
                }
                let default = match sw.event {
                    "subscribe" => &cfg.subscribe,
                    "publish" => &cfg.publish,
                    _ => &cfg.sub_refresh,
                };
                if default.is_none() {
                    let (event, flag) = (sw.event, sw.flag);
                    return Err(invalid(
                        origin,
                        format!(
                            "channel.proxy.{event}: endpoint is required ({what} has {flag} on)"
                        ),
                    ));
                }
            }
        }
        let routes = std::iter::once((
            "rpc.without_namespace".to_string(),
            &cfg.rpc_without_namespace,
        ))
        .chain(
            cfg.rpc_namespaces
                .iter()
                .map(|n| (format!("rpc namespace {:?}", n.name), &n.route)),
        )
        .collect::<Vec<_>>();
        let uses_default = |r: &RpcRoute| r.proxy_enabled && r.proxy_name.is_empty();
        if cfg.rpc.is_none() {
            if let Some((what, _)) = routes.iter().find(|(_, r)| uses_default(r)) {
                return Err(invalid(
                    origin,
                    format!("rpc.proxy: endpoint is required ({what} has proxy_enabled on)"),
                ));
            }
        } else if !routes.iter().any(|(_, r)| uses_default(r)) {
            warnings.push(
                "rpc.proxy is set but neither rpc.without_namespace nor an rpc namespace has \
                 proxy_enabled on with it: clients' rpc calls do not reach it"
                    .to_string(),
            );
        }
        cfg.validate(&references)
            .map_err(|e| invalid(origin, e.to_string()))?;
        Ok(cfg)
    }
}

fn invalid(origin: &str, message: String) -> ConfigLoadError {
    ConfigLoadError::Proxy {
        origin: origin.to_string(),
        message,
    }
}

/// The channel options objects of `node` with what names them in messages.
fn options(
    node: &NodeConfig,
    style: BackendStyle,
) -> impl Iterator<Item = (String, &ChannelOptions)> {
    let top = match style {
        BackendStyle::Modern => "channel.without_namespace",
        BackendStyle::Legacy => "top-level channel options",
    };
    std::iter::once((top.to_string(), &node.channel_options)).chain(
        node.namespaces
            .iter()
            .map(|n| (format!("namespace {:?}", n.name), &n.options)),
    )
}

/// One channel event's switch in one options object.
struct Switch<'a> {
    on: bool,
    name: &'a str,
    event: &'static str,
    flag: &'static str,
    name_key: &'static str,
}

fn switches(o: &ChannelOptions) -> [Switch<'_>; 3] {
    [
        Switch {
            on: o.proxy_subscribe,
            name: &o.subscribe_proxy_name,
            event: "subscribe",
            flag: "subscribe_proxy_enabled",
            name_key: "subscribe_proxy_name",
        },
        Switch {
            on: o.proxy_publish,
            name: &o.publish_proxy_name,
            event: "publish",
            flag: "publish_proxy_enabled",
            name_key: "publish_proxy_name",
        },
        Switch {
            on: o.proxy_sub_refresh,
            name: &o.sub_refresh_proxy_name,
            event: "sub_refresh",
            flag: "sub_refresh_proxy_enabled",
            name_key: "sub_refresh_proxy_name",
        },
    ]
}
