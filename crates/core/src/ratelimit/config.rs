//! The typed rate-limit configuration the server hands to [`super::RateLimits::new`]: one
//! [`LayerConfig`] per layer (`client_command`, `user_command`, `redis_user_command`) and the
//! per-connection error budget (`client_error`). Only enabled entries are present: a disabled
//! layer is `None`, a disabled command entry is absent.

use super::bucket::Bucket;

/// A client command that can be limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Connect,
    Subscribe,
    Unsubscribe,
    Publish,
    History,
    Presence,
    PresenceStats,
    Refresh,
    SubRefresh,
    Rpc,
}

impl Command {
    pub const COUNT: usize = 10;
    pub const ALL: [Command; Self::COUNT] = [
        Command::Connect,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Publish,
        Command::History,
        Command::Presence,
        Command::PresenceStats,
        Command::Refresh,
        Command::SubRefresh,
        Command::Rpc,
    ];

    /// The configuration key and metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::Subscribe => "subscribe",
            Command::Unsubscribe => "unsubscribe",
            Command::Publish => "publish",
            Command::History => "history",
            Command::Presence => "presence",
            Command::PresenceStats => "presence_stats",
            Command::Refresh => "refresh",
            Command::SubRefresh => "sub_refresh",
            Command::Rpc => "rpc",
        }
    }

    /// The command of configuration key `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Commands on one channel: a namespace override may replace their buckets.
    pub fn is_channel(self) -> bool {
        matches!(
            self,
            Command::Subscribe
                | Command::Unsubscribe
                | Command::Publish
                | Command::History
                | Command::Presence
                | Command::PresenceStats
                | Command::SubRefresh
        )
    }

    /// Counted (tokens taken, hits reported) but never refused: refusing an unsubscribe makes
    /// SDKs reconnect, which costs more than the unsubscribe (as Centrifugo PRO since 6.10).
    pub fn is_accounted_only(self) -> bool {
        self == Command::Unsubscribe
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Buckets of one entry: `None` = the entry is enabled without buckets of its own, so the
/// layer's `default` applies; an empty list = no limit.
pub type Buckets = Option<Vec<Bucket>>;

/// One enabled command entry of a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandRule {
    pub buckets: Buckets,
    /// `namespace_overrides` (channel commands): these buckets replace `buckets` for channels
    /// of the named namespace (`""`: channels without a namespace).
    pub namespace_overrides: Vec<(String, Buckets)>,
    /// `method_overrides` (rpc): these buckets replace `buckets` for the named method.
    pub method_overrides: Vec<(String, Buckets)>,
}

/// One enabled layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerConfig {
    /// Count hits in metrics, never refuse.
    pub dry_run: bool,
    pub commands: Vec<(Command, CommandRule)>,
    /// Buckets for every command without an entry (each command its own limiter).
    pub default: Option<Vec<Bucket>>,
    /// Buckets every command passes after its own (not in `redis_user_command`).
    pub total: Option<Vec<Bucket>>,
}

/// `client_error`: protocol errors per connection; spent → disconnect 3509.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBudget {
    pub dry_run: bool,
    pub buckets: Vec<Bucket>,
}

/// Every layer; `None` = off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub client_command: Option<LayerConfig>,
    pub user_command: Option<LayerConfig>,
    pub redis_user_command: Option<LayerConfig>,
    pub client_error: Option<ErrorBudget>,
}

impl RateLimitConfig {
    /// Nothing is limited: the node does not install a limiter at all.
    pub fn is_off(&self) -> bool {
        self.client_command.is_none()
            && self.user_command.is_none()
            && self.redis_user_command.is_none()
            && self.client_error.is_none()
    }
}
