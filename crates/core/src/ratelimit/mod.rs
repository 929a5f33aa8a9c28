//! Rate limits of client commands (the open counterpart of Centrifugo PRO's, with its config
//! shape): token buckets per connection (`client_command`), per user in node memory
//! (`user_command`), per user across nodes through a [`SharedLimiter`] (`redis_user_command`),
//! and a per-connection error budget (`client_error`).
//!
//! Semantics, exactly:
//! * A bucket `{interval, rate}` holds at most `rate` tokens (burst = rate) and starts full;
//!   it refills continuously at `rate` per `interval`, fractions included (they accumulate; a
//!   command needs one whole token). Integer arithmetic, no drift (see [`bucket`]).
//! * An entry's `buckets` must all have a token. A command without its own entry uses
//!   `default`, as a limiter of its own (`default` does not cap commands together); `total`
//!   is checked after the command's limiter and caps all commands of the key together.
//! * Namespace overrides (`namespace_overrides` of a channel command) and rpc
//!   `method_overrides` replace the command's buckets; an override without buckets uses
//!   `default`.
//! * A refused command takes nothing in the layer that refused it (neither its own limiter nor
//!   `total`); layers that passed before it keep what they took. Order: `client_command`,
//!   `user_command`, `redis_user_command`; the first refusal ends the check.
//! * `connect` is limited only per user (after the credentials are known); anonymous
//!   connections (empty user) skip both per-user layers. `unsubscribe` is counted but never
//!   refused, and the Redis layer does not look at it.
//! * A refusal is error 111 "too many requests" (temporary for v2 clients; v1 errors carry
//!   code and message only); unidirectional transports turn it into disconnect 3013.
//! * `client_error`: every error reply but 100 (internal) takes a token of the connection's
//!   budget; none left → disconnect 3509 "too many errors" (do not reconnect).
//! * `dry_run` (per layer): buckets are checked and drained as when enforcing, hits are
//!   counted, nothing is refused.
//! * A Redis failure lets the command through (logged): the limiter fails open.
//!
//! Per-user state lives in 16 shards; a user idle for the longest configured interval has
//! every bucket full again, so its entry is dropped (swept at most once per such interval per
//! shard): memory is bounded by the users active within that interval.
//!
//! A node without limits holds no [`RateLimits`] (an `Option` check per command).

pub mod bucket;
pub mod config;
mod layer;
mod metrics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use parking_lot::Mutex;

pub use bucket::Bucket;
pub use config::{Command, CommandRule, ErrorBudget, LayerConfig, RateLimitConfig};
use layer::{KeyState, Layer, Verdict};
pub use metrics::{over_limit_counts, OverLimit};

/// A bucket store shared by every node (Redis): one call per command.
#[async_trait]
pub trait SharedLimiter: Send + Sync {
    /// Takes one token from every bucket of limiter `name` of `user` if each has one (all or
    /// nothing); `Ok(true)` when it did.
    async fn take(&self, user: &str, name: &str, buckets: &[Bucket]) -> Result<bool, String>;
}

/// Which layer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    ClientCommand,
    UserCommand,
    RedisUserCommand,
    ClientError,
}

impl LayerKind {
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::ClientCommand => "client_command",
            LayerKind::UserCommand => "user_command",
            LayerKind::RedisUserCommand => "redis_user_command",
            LayerKind::ClientError => "client_error",
        }
    }
}

const USER_SHARDS: usize = 16;

#[derive(Default)]
struct UserShard {
    users: HashMap<Box<str>, KeyState>,
    last_sweep: u64,
}

/// The node's rate limits; built once at start.
pub struct RateLimits {
    client: Option<Layer>,
    user: Option<(Layer, Vec<Mutex<UserShard>>)>,
    redis: Option<(Layer, Arc<dyn SharedLimiter>)>,
    errors: Option<(bool, Vec<Bucket>)>,
    started: Instant,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("client", &self.client.is_some())
            .field("user", &self.user.is_some())
            .field("redis", &self.redis.is_some())
            .field("errors", &self.errors.is_some())
            .finish()
    }
}

/// The per-connection state (held by the session, touched only by its reader task).
#[derive(Debug, Default)]
pub struct ConnLimiter {
    commands: KeyState,
    errors: Option<bucket::BucketSet>,
}

/// Why [`RateLimits::new`] refused.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error(
        "redis_user_command is enabled but the engine has no shared store (use the redis engine)"
    )]
    NoSharedStore,
}

impl RateLimits {
    /// The limits of `cfg`; `None` when nothing is enabled. `shared` backs
    /// `redis_user_command`.
    pub fn new(
        cfg: &RateLimitConfig,
        shared: Option<Arc<dyn SharedLimiter>>,
    ) -> Result<Option<Self>, RateLimitError> {
        if cfg.is_off() {
            return Ok(None);
        }
        let redis = match (&cfg.redis_user_command, shared) {
            (None, _) => None,
            (Some(l), Some(s)) => Some((Layer::compile(l), s)),
            (Some(_), None) => return Err(RateLimitError::NoSharedStore),
        };
        Ok(Some(Self {
            client: cfg.client_command.as_ref().map(Layer::compile),
            user: cfg.user_command.as_ref().map(|l| {
                let shards = (0..USER_SHARDS).map(|_| Mutex::default()).collect();
                (Layer::compile(l), shards)
            }),
            redis,
            errors: cfg
                .client_error
                .as_ref()
                .filter(|e| !e.buckets.is_empty())
                .map(|e| (e.dry_run, e.buckets.clone())),
            started: Instant::now(),
        }))
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Number of users with per-user state (tests, diagnostics).
    pub fn tracked_users(&self) -> usize {
        self.user.as_ref().map_or(0, |(_, shards)| {
            shards.iter().map(|s| s.lock().users.len()).sum()
        })
    }

    /// Whether a per-user layer is on (only then does a check need the user ID).
    pub fn per_user(&self) -> bool {
        self.user.is_some() || self.redis.is_some()
    }

    /// Whether any layer names namespace overrides for `cmd` (the caller then passes the
    /// channel's namespace to [`RateLimits::check`]).
    pub fn wants_namespace(&self, cmd: Command) -> bool {
        self.client
            .as_ref()
            .is_some_and(|l| l.has_namespace_overrides(cmd))
            || self
                .user
                .as_ref()
                .is_some_and(|(l, _)| l.has_namespace_overrides(cmd))
            || self
                .redis
                .as_ref()
                .is_some_and(|(l, _)| l.has_namespace_overrides(cmd))
    }

    /// Checks `cmd` through every layer; `false` = refuse with 111. `user` empty = anonymous.
    /// `namespace`: the channel's namespace when [`RateLimits::wants_namespace`].
    pub async fn check(
        &self,
        conn: &mut ConnLimiter,
        user: &str,
        cmd: Command,
        namespace: Option<&str>,
        method: &str,
    ) -> bool {
        self.check_at(conn, user, cmd, namespace, method, self.now())
            .await
    }

    /// [`RateLimits::check`] at monotonic time `now` (ns since the limiter was built).
    pub async fn check_at(
        &self,
        conn: &mut ConnLimiter,
        user: &str,
        cmd: Command,
        namespace: Option<&str>,
        method: &str,
        now: u64,
    ) -> bool {
        if cmd != Command::Connect {
            if let Some(l) = &self.client {
                if !decide(l, LayerKind::ClientCommand, cmd, || {
                    l.check(
                        &mut conn.commands,
                        cmd,
                        l.resolve(cmd, namespace, method),
                        now,
                    )
                }) {
                    return false;
                }
            }
        }
        if user.is_empty() {
            return true;
        }
        if let Some((l, shards)) = &self.user {
            if l.limits(cmd) {
                let slot = l.resolve(cmd, namespace, method);
                let ok = decide(l, LayerKind::UserCommand, cmd, || {
                    check_user(l, shards, user, cmd, slot, now)
                });
                if !ok {
                    return false;
                }
            }
        }
        if let Some((l, shared)) = &self.redis {
            if cmd.is_accounted_only() {
                return true;
            }
            if let Some(slot) = l.resolve(cmd, namespace, method) {
                let s = &l.slots[slot as usize];
                let verdict = match shared.take(user, &s.name, &s.buckets).await {
                    Ok(true) => Verdict::Pass,
                    Ok(false) => Verdict::Hit,
                    Err(e) => {
                        tracing::warn!(error = %e, "redis rate limit check failed; allowing");
                        Verdict::Pass
                    }
                };
                return decide(l, LayerKind::RedisUserCommand, cmd, || verdict);
            }
        }
        true
    }

    /// Counts one error reply (code 100 is not counted). `true` = the budget is spent:
    /// disconnect with 3509.
    pub fn count_error(&self, conn: &mut ConnLimiter, code: u32) -> bool {
        self.count_error_at(conn, code, self.now())
    }

    /// [`RateLimits::count_error`] at monotonic time `now`.
    pub fn count_error_at(&self, conn: &mut ConnLimiter, code: u32, now: u64) -> bool {
        let Some((dry_run, buckets)) = &self.errors else {
            return false;
        };
        if code == 100 {
            return false;
        }
        let set = conn
            .errors
            .get_or_insert_with(|| bucket::BucketSet::new(buckets, now));
        if set.try_take(buckets, now) {
            return false;
        }
        metrics::hit(LayerKind::ClientError, metrics::ERROR_LABEL, *dry_run);
        !*dry_run
    }
}

/// Runs a layer's check, counts a hit; `false` = refuse.
fn decide(l: &Layer, kind: LayerKind, cmd: Command, check: impl FnOnce() -> Verdict) -> bool {
    match check() {
        Verdict::Pass => true,
        Verdict::Hit => {
            metrics::hit(kind, cmd.index(), l.dry_run);
            l.dry_run || cmd.is_accounted_only()
        }
    }
}

fn shard_of(user: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % USER_SHARDS as u64) as usize
}

fn check_user(
    l: &Layer,
    shards: &[Mutex<UserShard>],
    user: &str,
    cmd: Command,
    slot: Option<u16>,
    now: u64,
) -> Verdict {
    let mut shard = shards[shard_of(user)].lock();
    if now.saturating_sub(shard.last_sweep) >= l.longest {
        // Entries idle for the longest interval are full again: dropping them changes nothing.
        let longest = l.longest;
        shard
            .users
            .retain(|_, st| now.saturating_sub(st.last) < longest);
        shard.last_sweep = now;
    }
    if let Some(st) = shard.users.get_mut(user) {
        return l.check(st, cmd, slot, now);
    }
    let mut st = KeyState::default();
    let v = l.check(&mut st, cmd, slot, now);
    shard.users.insert(user.into(), st);
    v
}

#[cfg(test)]
mod tests;
