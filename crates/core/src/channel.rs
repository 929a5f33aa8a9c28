//! Channel names and the rules they imply: namespace resolution (the prefix before the first
//! boundary, after stripping the private prefix), private (`$`) and user-limited (`#`) channels.

use crate::config::{ChannelOptions, NodeConfig};

/// Resolves channel names against the configured namespaces.
#[derive(Debug, Clone)]
pub struct ChannelRules {
    private_prefix: String,
    ns_boundary: String,
    user_boundary: String,
    user_separator: String,
    top: ChannelOptions,
    namespaces: Vec<(String, ChannelOptions)>,
}

impl ChannelRules {
    pub fn new(cfg: &NodeConfig) -> Self {
        Self {
            private_prefix: cfg.channel_private_prefix.clone(),
            ns_boundary: cfg.channel_namespace_boundary.clone(),
            user_boundary: cfg.channel_user_boundary.clone(),
            user_separator: cfg.channel_user_separator.clone(),
            top: cfg.channel_options.clone(),
            namespaces: cfg
                .namespaces
                .iter()
                .map(|n| (n.name.clone(), n.options.clone()))
                .collect(),
        }
    }

    /// Whether subscribing needs a subscription token.
    /// Whether a client may name `channel` in a command (error 107 otherwise): it must match
    /// the namespace's `channel_regex` (both generations: the operator asked for it); without
    /// one, v2 clients' names must be ASCII (Centrifugo 6), v1 clients' may be anything (2.x).
    pub fn name_allowed(&self, channel: &str, opts: &ChannelOptions, v2: bool) -> bool {
        match &opts.channel_regex {
            Some(re) => re.is_match(crate::channel_regex::channel_part(
                channel,
                &self.private_prefix,
                &self.ns_boundary,
            )),
            None => !v2 || crate::channel_regex::valid_without_regex(channel),
        }
    }

    pub fn is_private(&self, channel: &str) -> bool {
        !self.private_prefix.is_empty() && channel.starts_with(&self.private_prefix)
    }

    /// The namespace name of `channel` ("" for top level).
    pub fn namespace_name<'a>(&self, channel: &'a str) -> &'a str {
        let ch = if self.is_private(channel) {
            &channel[self.private_prefix.len()..]
        } else {
            channel
        };
        if self.ns_boundary.is_empty() {
            return "";
        }
        match ch.find(&self.ns_boundary) {
            Some(i) => &ch[..i],
            None => "",
        }
    }

    /// The options that apply to `channel`; `None` when its namespace is not configured (102).
    pub fn options(&self, channel: &str) -> Option<&ChannelOptions> {
        let ns = self.namespace_name(channel);
        if ns.is_empty() {
            return Some(&self.top);
        }
        self.namespaces
            .iter()
            .find(|(n, _)| n == ns)
            .map(|(_, o)| o)
    }

    /// Whether the channel names the users allowed in it (`dialog#42,43`).
    pub fn is_user_limited(&self, channel: &str) -> bool {
        !self.user_boundary.is_empty() && channel.contains(&self.user_boundary)
    }

    /// For a user-limited channel: is `user` one of the listed users? An empty user never is.
    pub fn user_allowed(&self, channel: &str, user: &str) -> bool {
        let Some(i) = channel.rfind(&self.user_boundary) else {
            return true;
        };
        if user.is_empty() {
            return false;
        }
        let list = &channel[i + self.user_boundary.len()..];
        if self.user_separator.is_empty() {
            return list == user;
        }
        list.split(self.user_separator.as_str()).any(|u| u == user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Namespace;

    fn rules() -> ChannelRules {
        let cfg = NodeConfig {
            namespaces: vec![Namespace {
                name: "chat".into(),
                options: ChannelOptions {
                    presence: true,
                    ..Default::default()
                },
            }],
            ..Default::default()
        };
        ChannelRules::new(&cfg)
    }

    #[test]
    fn namespaces_resolve_after_private_prefix() {
        let r = rules();
        assert_eq!(r.namespace_name("$chat:room"), "chat");
        assert_eq!(r.namespace_name("chat:room"), "chat");
        assert_eq!(r.namespace_name("news"), "");
        assert!(r.options("$chat:room").unwrap().presence);
        assert!(!r.options("news").unwrap().presence);
        assert!(r.options("nope:x").is_none());
    }

    #[test]
    fn user_limited() {
        let r = rules();
        assert!(r.is_user_limited("dialog#42,43"));
        assert!(r.user_allowed("dialog#42,43", "43"));
        assert!(!r.user_allowed("dialog#42,43", "4"));
        assert!(!r.user_allowed("#42", ""));
        assert!(r.user_allowed("chat:#42", "42"));
    }

    #[test]
    fn empty_private_prefix_disables_private_channels() {
        let cfg = NodeConfig {
            channel_private_prefix: String::new(),
            ..Default::default()
        };
        assert!(!ChannelRules::new(&cfg).is_private("$x"));
    }
}
