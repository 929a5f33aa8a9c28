//! [`RedisRateLimiter`]: the [`SharedLimiter`] behind `redis_user_command`, on the engine's
//! Redis. One Lua call (`lua/rate_limit.lua`) per command takes a token from every bucket of
//! one limiter of one user, all or nothing, on the Redis clock. A limiter is one hash,
//! `<prefix>.ratelimit.{<user>}.<limiter>` (`{#<hash>}` instead when the user ID holds a `}`):
//! the hash tag keeps a user's limiters in one Cluster slot, and the user picks the shard.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use redis::Script;
use rotor_core::ratelimit::{Bucket, SharedLimiter};

use crate::{keys, Core, RedisEngine};

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("../lua/rate_limit.lua")))
}

/// Per-user token buckets kept in Redis, shared by every node on the same Redis.
pub struct RedisRateLimiter {
    core: Arc<Core>,
    prefix: String,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").finish()
    }
}

impl RedisRateLimiter {
    /// A limiter on `engine`'s shards, its keys under `prefix` (the engine's `redis_prefix`).
    pub fn new(engine: &RedisEngine, prefix: &str) -> Self {
        Self {
            core: engine.core.clone(),
            prefix: prefix.to_string(),
        }
    }

    /// The hash of limiter `name` of `user`.
    pub fn key(&self, user: &str, name: &str) -> String {
        if user.contains('}') {
            let h = keys::fnv1a(user.as_bytes());
            format!("{}.ratelimit.{{#{h:016x}}}.{name}", self.prefix)
        } else {
            format!("{}.ratelimit.{{{user}}}.{name}", self.prefix)
        }
    }
}

#[async_trait]
impl SharedLimiter for RedisRateLimiter {
    async fn take(&self, user: &str, name: &str, buckets: &[Bucket]) -> Result<bool, String> {
        let shard = self.core.shard(user);
        let conn = shard.conn().map_err(|e| e.to_string())?;
        let mut data = conn.data.clone();
        let mut inv = script().prepare_invoke();
        inv.key(self.key(user, name)).arg(buckets.len());
        for b in buckets {
            let ms = u64::try_from(b.interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            inv.arg(ms).arg(b.rate);
        }
        let taken: i64 = inv
            .invoke_async(&mut data)
            .await
            .map_err(|e| shard.fail(&conn, e).to_string())?;
        Ok(taken == 1)
    }
}
