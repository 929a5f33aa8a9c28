//! Channel options of one options object (the top level or a namespace), in either generation's
//! names. Centrifugo 2.x options apply as they are; the permission options of Centrifugo 4+
//! (`allow_publish_for_client`, `allow_presence_for_subscriber`, ...) combine into them:
//!
//! * any `allow_publish_for_*` → `publish`; `allow_publish_for_subscriber` alone also sets
//!   `subscribe_to_publish` (only subscribers may publish);
//! * an object using the modern names follows the modern default of presence and history
//!   being closed to clients: `presence_disable_for_client` / `history_disable_for_client`
//!   unless an `allow_presence_for_*` / `allow_history_for_*` option is on;
//! * `force_recovery` is `history_recover` (an alias); `allow_recovery` only lets a v2 client
//!   ask for a recoverable subscription;
//! * the v6 options Rotor does not serve (map and shared-poll subscriptions, the cache-empty
//!   and subscribe-stream proxies) are refused when set to anything but their default.
//! * `history_ttl` is `history_lifetime` (an alias, a duration rounded up to whole seconds);
//! * `allow_subscribe_for_anonymous` is `anonymous` (an alias);
//! * the proxy switches: `proxy_subscribe` / `proxy_publish` (2.x, and the 6.x
//!   `subscribe_proxy_enabled` / `publish_proxy_enabled` through aliases),
//!   `sub_refresh_proxy_enabled` and the `*_proxy_name`s (`default` is stored as `""`); a
//!   subscribe stream and Centrifugo 5's `proxy_sub_refresh` are refused when on.

use rotor_core::config::{ChannelOptions, DataFormat, RecoveryMode};

use super::values::{boolean, duration, list, size, string, whole_seconds, Input};
use super::SetError;

/// A `*_proxy_name`: `default` (Centrifugo's default value) is stored as `""`.
fn proxy_name(i: &Input) -> Result<String, String> {
    let name = string(i)?;
    Ok(if name == rotor_proxy::config::DEFAULT_PROXY {
        String::new()
    } else {
        name
    })
}

/// A v6 option Rotor does not serve, set to something other than its default: the start fails
/// (a namespace relying on it could not work).
fn not_served(key: &str, what: &str) -> SetError {
    SetError::Bad(format!(
        "{key} is not supported by Rotor ({what}); remove it or set it to its default"
    ))
}

/// A `map` / `shared_poll` block left at its default: absent, `null`, or an object (or JSON
/// text of one) whose every value is a default (false, 0, "", empty list or block).
fn is_default_block(i: &Input) -> Result<bool, String> {
    fn default(v: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match v {
            V::Null => true,
            V::Bool(b) => !b,
            V::Number(n) => n.as_f64() == Some(0.0),
            V::String(s) => s.is_empty(),
            V::Array(a) => a.is_empty(),
            V::Object(o) => o.values().all(default),
        }
    }
    let v = match i {
        Input::Json(v) => v.clone(),
        Input::Env(s) if s.trim().is_empty() => return Ok(true),
        Input::Env(s) => {
            serde_json::from_str(s).map_err(|e| format!("expected a JSON object: {e}"))?
        }
    };
    if !(v.is_object() || v.is_null()) {
        return Err(super::values::expected("an object", &v));
    }
    Ok(default(&v))
}

/// Options being read from one object; [`ChanAcc::finish`] gives the resulting 2.x options.
#[derive(Debug, Default)]
pub(crate) struct ChanAcc {
    o: ChannelOptions,
    /// Centrifugo 4+ semantics: set by the caller for nested (v6) objects and by any option
    /// name only the modern generations have.
    pub(crate) modern: bool,
    publish_for_client: bool,
    publish_for_subscriber: bool,
    publish_for_anonymous: bool,
    presence_for_client: bool,
    history_for_client: bool,
    subscribe_for_client: bool,
}

impl ChanAcc {
    /// Applies one option under its canonical (alias-resolved) name.
    pub(crate) fn set(&mut self, key: &str, i: &Input) -> Result<(), SetError> {
        let o = &mut self.o;
        match key {
            "publish" => o.publish = boolean(i)?,
            "subscribe_to_publish" => o.subscribe_to_publish = boolean(i)?,
            "anonymous" => o.anonymous = boolean(i)?,
            "presence" => o.presence = boolean(i)?,
            "presence_disable_for_client" => o.presence_disable_for_client = boolean(i)?,
            "join_leave" => o.join_leave = boolean(i)?,
            "history_size" => o.history_size = size(i)?,
            "history_lifetime" => o.history_lifetime = whole_seconds(i)?,
            "history_recover" => o.history_recover = boolean(i)?,
            "history_disable_for_client" => o.history_disable_for_client = boolean(i)?,
            "server_side" => o.server_side = boolean(i)?,
            "proxy_subscribe" => o.proxy_subscribe = boolean(i)?,
            "proxy_publish" => o.proxy_publish = boolean(i)?,
            "sub_refresh_proxy_enabled" => o.proxy_sub_refresh = boolean(i)?,
            "subscribe_proxy_name" => o.subscribe_proxy_name = proxy_name(i)?,
            "publish_proxy_name" => o.publish_proxy_name = proxy_name(i)?,
            "sub_refresh_proxy_name" => o.sub_refresh_proxy_name = proxy_name(i)?,
            "allow_tags_filter" => o.allow_tags_filter = boolean(i)?,
            "channel_regex" => {
                o.channel_regex = rotor_core::channel_regex::ChannelRegex::from_option(&string(i)?)
                    .map_err(SetError::Bad)?;
            }
            "publication_data_format" => {
                let v = string(i)?;
                o.publication_data_format = DataFormat::parse(&v).ok_or_else(|| {
                    SetError::Bad(format!(
                        "unknown format {v:?}, expected \"\", json, json_object or binary"
                    ))
                })?;
            }
            "subscribe_stream_proxy_enabled"
            | "subscribe_stream_proxy_bidirectional"
            | "proxy_subscribe_stream"
            | "proxy_subscribe_stream_bidirectional" => {
                if boolean(i)? {
                    return Err(SetError::Bad(
                        "subscribe stream proxies are not supported by Rotor (a namespace \
                         relying on one cannot work); use subscribe_proxy_enabled"
                            .into(),
                    ));
                }
            }
            "proxy_sub_refresh" => {
                if boolean(i)? {
                    return Err(SetError::Bad(
                        "Centrifugo 3-5 proxy keys are not supported; use \
                         sub_refresh_proxy_enabled with channel.proxy.sub_refresh (Centrifugo 6 \
                         keys)"
                            .into(),
                    ));
                }
            }
            "allow_recovery" => o.allow_recovery = boolean(i)?,
            "force_positioning" => o.force_positioning = boolean(i)?,
            "allow_positioning" => o.allow_positioning = boolean(i)?,
            "force_recovery_mode" => {
                o.recovery_mode = match string(i)?.as_str() {
                    "" | "stream" => RecoveryMode::Stream,
                    "cache" => RecoveryMode::Cache,
                    v => {
                        return Err(SetError::Bad(format!(
                            "unknown recovery mode {v:?}, expected \"\", stream or cache"
                        )))
                    }
                }
            }
            "auto_cache_recover" => o.auto_cache_recover = boolean(i)?,
            "history_meta_ttl" => {
                let d = duration(i)?;
                o.history_meta_ttl = (!d.is_zero()).then_some(d);
            }
            "force_push_join_leave" => o.force_push_join_leave = boolean(i)?,
            "allowed_delta_types" => {
                o.delta_fossil = false;
                for t in list(i)? {
                    match t.as_str() {
                        "fossil" => o.delta_fossil = true,
                        _ => {
                            return Err(SetError::Bad(format!(
                                "unknown delta type {t:?}, expected fossil"
                            )))
                        }
                    }
                }
            }
            "delta_publish" => o.delta_publish = boolean(i)?,
            "subscription_type" => {
                let v = string(i)?;
                if !matches!(v.as_str(), "" | "stream") {
                    return Err(not_served(
                        key,
                        &format!("{v:?} subscriptions (map / shared poll)"),
                    ));
                }
            }
            "proxy_cache_empty" => {
                if boolean(i)? {
                    return Err(not_served(key, "the cache-empty proxy"));
                }
            }
            "subscribe_stream_proxy_name"
            | "cache_empty_proxy_name"
            | "map_clients_presence_channel_prefix"
            | "map_users_presence_channel_prefix" => {
                let v = string(i)?;
                // `default` is Centrifugo's default proxy name.
                let default = v.is_empty()
                    || (key.ends_with("_proxy_name") && v == rotor_proxy::config::DEFAULT_PROXY);
                if !default {
                    return Err(not_served(key, &format!("{v:?}")));
                }
            }
            "map" | "shared_poll" => {
                if !is_default_block(i)? {
                    return Err(not_served(key, "map and shared-poll subscriptions"));
                }
            }
            "allow_subscribe_for_client" => self.subscribe_for_client = boolean(i)?,
            "allow_publish_for_client" => self.publish_for_client = boolean(i)?,
            "allow_publish_for_subscriber" => self.publish_for_subscriber = boolean(i)?,
            "allow_publish_for_anonymous" => self.publish_for_anonymous = boolean(i)?,
            "allow_presence_for_client"
            | "allow_presence_for_subscriber"
            | "allow_presence_for_anonymous" => self.presence_for_client |= boolean(i)?,
            "allow_history_for_client"
            | "allow_history_for_subscriber"
            | "allow_history_for_anonymous" => self.history_for_client |= boolean(i)?,
            // Rotor always lets the listed users into `#` channels (the 2.x rule).
            "allow_user_limited_channels" => drop(boolean(i)?),
            _ => return Err(SetError::Unknown),
        }
        Ok(())
    }

    /// The resulting options; `what` names the object in warnings.
    pub(crate) fn finish(self, what: &str, warnings: &mut Vec<String>) -> ChannelOptions {
        let mut o = self.o;
        let modern_publish =
            self.publish_for_client || self.publish_for_subscriber || self.publish_for_anonymous;
        if modern_publish && !o.publish {
            o.publish = true;
            o.subscribe_to_publish |= !self.publish_for_client && !self.publish_for_anonymous;
        }
        if self.modern {
            if o.presence && !self.presence_for_client {
                o.presence_disable_for_client = true;
            }
            if o.history_enabled() && !self.history_for_client {
                o.history_disable_for_client = true;
            }
            if !self.subscribe_for_client && !o.server_side {
                warnings.push(format!(
                    "{what}: allow_subscribe_for_client is off, but Rotor applies the \
                     Centrifugo 2.x rule: connected clients may subscribe without a \
                     subscription token to channels that do not start with the private prefix"
                ));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(modern: bool, pairs: &[(&str, serde_json::Value)]) -> (ChannelOptions, Vec<String>) {
        let mut acc = ChanAcc {
            modern,
            ..Default::default()
        };
        for (k, v) in pairs {
            assert!(acc.set(k, &Input::Json(v.clone())).is_ok(), "{k}");
        }
        let mut w = Vec::new();
        (acc.finish("x", &mut w), w)
    }

    #[test]
    fn modern_permissions_combine_into_2x_options() {
        let (o, w) = opts(
            true,
            &[
                ("allow_subscribe_for_client", json!(true)),
                ("allow_publish_for_subscriber", json!(true)),
                ("presence", json!(true)),
                ("history_size", json!(10)),
                ("history_lifetime", json!("5m")),
                ("allow_recovery", json!(true)),
            ],
        );
        assert!(w.is_empty(), "{w:?}");
        assert!(o.publish && o.subscribe_to_publish && o.allow_recovery && !o.history_recover);
        assert!(o.presence_disable_for_client && o.history_disable_for_client);
        assert_eq!((o.history_size, o.history_lifetime), (10, 300));

        let (o, w) = opts(
            true,
            &[
                ("allow_publish_for_client", json!(true)),
                ("allow_publish_for_subscriber", json!(true)),
                ("presence", json!(true)),
                ("allow_presence_for_subscriber", json!(true)),
            ],
        );
        assert!(o.publish && !o.subscribe_to_publish && !o.presence_disable_for_client);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("allow_subscribe_for_client is off"), "{w:?}");
    }

    #[test]
    fn classic_objects_keep_2x_defaults() {
        let (o, w) = opts(false, &[("presence", json!(true))]);
        assert!(o.presence && !o.presence_disable_for_client && w.is_empty());
    }
}
