//! NATS subject names, as Centrifugo names them (`P` = prefix, default `centrifugo`):
//! `P.client.<channel>` carries a channel's publications, joins and leaves, `P.control` the
//! control messages for every node, `P.node.<node>` those for one node (Centrifugo 6).
//!
//! A NATS subject cannot hold every channel name: `*` and `>` are wildcards, whitespace breaks
//! the protocol line, and an empty token (a leading or trailing `.`, or `..`) is refused by the
//! server. Such channels are refused with [`EngineError::BadChannel`] (clients get 107) for
//! subscribe and publish alike, so that a publication never goes where no subscriber can be.

use rotor_core::engine::EngineError;

/// Why a channel or prefix cannot be part of a subject.
fn subject_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Some("is empty");
    }
    if b.iter().any(|c| *c == b'*' || *c == b'>') {
        return Some("contains a NATS wildcard (* or >)");
    }
    if b.iter().any(|c| c.is_ascii_whitespace()) {
        return Some("contains whitespace");
    }
    if b[0] == b'.' || b[b.len() - 1] == b'.' || name.contains("..") {
        return Some("has an empty NATS subject token (leading or trailing '.', or '..')");
    }
    None
}

/// Checks that `channel` can travel on NATS.
pub fn check_channel(channel: &str) -> Result<(), EngineError> {
    match subject_problem(channel) {
        None => Ok(()),
        Some(why) => Err(EngineError::BadChannel(format!(
            "channel {channel:?} {why}; it cannot be a NATS subject"
        ))),
    }
}

/// Checks a configured prefix (the same rules as a channel).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    match subject_problem(prefix) {
        None => Ok(()),
        Some(why) => Err(format!("NATS prefix {prefix:?} {why}")),
    }
}

/// The subjects of one prefix.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// `P.client.`
    client: String,
    control: String,
    node: String,
    sync: String,
}

impl Subjects {
    /// `node` is this node's name (for `P.node.<node>`); `sync_id` names this node's private
    /// round-trip subject. Both are sanitised into one subject token.
    pub fn new(prefix: &str, node: &str, sync_id: &str) -> Self {
        Self {
            client: format!("{prefix}.client."),
            control: format!("{prefix}.control"),
            node: format!("{prefix}.node.{}", token(node)),
            sync: format!("{prefix}.rotor.sync.{}", token(sync_id)),
        }
    }

    /// The subject of a channel already accepted by [`check_channel`].
    pub fn client(&self, channel: &str) -> String {
        let mut s = String::with_capacity(self.client.len() + channel.len());
        s.push_str(&self.client);
        s.push_str(channel);
        s
    }

    /// The channel of a channel subject.
    pub fn channel_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.strip_prefix(self.client.as_str())
    }

    pub fn control(&self) -> &str {
        &self.control
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// This node's round-trip subject (see `sync.rs`).
    pub fn sync(&self) -> &str {
        &self.sync
    }
}

/// `s` as one subject token: every character a subject may not hold in a token becomes `_`.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect();
    if t.is_empty() {
        "_".to_string()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_channels() {
        for ch in [
            "news",
            "chat:room",
            "a.b.c",
            "$user:1",
            "ns:x#42,43",
            "ünï",
            "a-b_c",
        ] {
            assert_eq!(check_channel(ch), Ok(()), "{ch}");
        }
    }

    #[test]
    fn refuses_what_nats_cannot_carry() {
        for ch in [
            "",
            "a*",
            "*",
            "a.>",
            ">",
            "a b",
            "tab\there",
            "nl\n",
            "cr\r",
            ".a",
            "a.",
            "a..b",
            ".",
        ] {
            let err = check_channel(ch).unwrap_err();
            assert!(matches!(err, EngineError::BadChannel(_)), "{ch:?}");
            assert_eq!(err.code(), 107, "{ch:?}");
        }
    }

    #[test]
    fn subjects_follow_centrifugo() {
        let s = Subjects::new("centrifugo", "node.1 a", "u1");
        assert_eq!(s.client("news"), "centrifugo.client.news");
        assert_eq!(s.channel_of("centrifugo.client.a.b"), Some("a.b"));
        assert_eq!(s.channel_of("centrifugo.control"), None);
        assert_eq!(s.control(), "centrifugo.control");
        assert_eq!(s.node(), "centrifugo.node.node_1_a");
        assert_eq!(s.sync(), "centrifugo.rotor.sync.u1");
    }

    #[test]
    fn prefix_rules() {
        assert!(check_prefix("centrifugo").is_ok());
        assert!(check_prefix("my.app").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a.").is_err());
        assert!(check_prefix("a*").is_err());
    }
}
