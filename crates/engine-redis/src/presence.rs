//! [`RedisPresence`]: the [`PresenceManager`] on Redis. Per channel a hash (client ID → encoded
//! info) and a sorted set (client ID → expiry, unix seconds from the Redis clock); reads drop
//! expired entries first. Both keys expire with the newest entry, so the entries of a node that
//! died vanish `client_presence_expire_interval` after its last refresh, and a channel nobody
//! is in leaves no keys behind.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use rotor_core::engine::{EngineError, PresenceManager, PresenceStats};
use rotor_protocol::ClientInfo;

use crate::scripts::scripts;
use crate::{wire, Core};

/// The presence script's reply (client ID, encoded info pairs) as the channel's clients;
/// entries that do not decode are skipped with a warning.
pub(crate) fn presence_list(channel: &str, flat: Vec<Value>) -> Vec<ClientInfo> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(_client), Some(info)) = (it.next(), it.next()) {
        let Value::BulkString(info) = info else {
            continue;
        };
        match wire::decode_info(&Bytes::from(info)) {
            Some(i) => out.push(i),
            None => tracing::warn!(channel, "malformed presence entry in redis"),
        }
    }
    out
}

/// Presence over Redis.
pub struct RedisPresence {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence").finish()
    }
}

impl RedisPresence {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Runs a presence script on the channel's shard.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        channel: &str,
        args: &[&[u8]],
    ) -> Result<T, EngineError> {
        let shard = self.core.shard(channel);
        let conn = shard.conn()?;
        let mut data = conn.data.clone();
        let names = &self.core.names;
        let mut inv = script.prepare_invoke();
        inv.key(names.presence_expire(channel))
            .key(names.presence_data(channel));
        for a in args {
            inv.arg(*a);
        }
        inv.invoke_async(&mut data)
            .await
            .map_err(|e| shard.fail(&conn, e))
    }
}

#[async_trait]
impl PresenceManager for RedisPresence {
    async fn add_presence(
        &self,
        channel: &str,
        info: ClientInfo,
        expire_secs: u64,
    ) -> Result<(), EngineError> {
        let ttl = expire_secs.to_string();
        let encoded = wire::info(&info);
        let args: [&[u8]; 3] = [ttl.as_bytes(), info.client.as_bytes(), &encoded];
        self.run::<Value>(&scripts().presence_add, channel, &args)
            .await
            .map(drop)
    }

    async fn remove_presence(&self, channel: &str, client_id: &str) -> Result<(), EngineError> {
        self.run::<Value>(&scripts().presence_remove, channel, &[client_id.as_bytes()])
            .await
            .map(drop)
    }

    async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, EngineError> {
        let flat: Vec<Value> = self.run(&scripts().presence_get, channel, &[]).await?;
        Ok(presence_list(channel, flat))
    }

    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, EngineError> {
        let (num_clients, num_users): (u32, u32) =
            self.run(&scripts().presence_stats, channel, &[]).await?;
        Ok(PresenceStats {
            num_clients,
            num_users,
        })
    }

    fn is_healthy(&self) -> bool {
        self.core.is_ready()
    }
}
