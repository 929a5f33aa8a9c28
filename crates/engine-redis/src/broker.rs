//! [`RedisBroker`]: the [`Broker`] on Redis. See the crate docs for the design; this file maps
//! each trait method onto a script or command on the channel's shard.
//!
//! Stream semantics match the memory engine's (offsets from 1 without gaps, epoch fixed at
//! stream creation and stable across reads before the first publish, history expiring as a
//! whole `history_lifetime` after the last publish, metadata outliving it), with one deliberate
//! difference: a `since` position carrying a non-empty epoch other than the stream's reads as
//! "from the start". Its offset belongs to a stream that no longer exists, so a client that
//! recovers from it gets everything the new stream still holds (together with
//! `recovered: false`) rather than an arbitrary tail.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use redis::Value;
use rotor_core::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryFilter, HistoryPage, PublishOptions,
    StreamPosition,
};
use rotor_protocol::ClientInfo;

use crate::scripts::scripts;
use crate::shard::{Conn, Shard};
use crate::{wire, Core};

/// Length of a generated epoch.
const EPOCH_LEN: usize = 8;

fn new_epoch() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), EPOCH_LEN)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The metadata TTL in seconds for a call carrying the namespace's `history_meta_ttl`
/// (`None`: the engine's `redis_history_meta_ttl`). Redis expires in whole seconds: a
/// fractional TTL is rounded up, so it is never shorter than asked and never 0 (= forever).
fn meta_ttl_secs(namespace: Option<Duration>, default_secs: u64) -> u64 {
    match namespace {
        None => default_secs,
        Some(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
    }
}

/// The history script's reply: top offset, epoch, then (offset, body) pairs.
pub(crate) fn history_page(reply: Vec<Value>) -> Result<HistoryPage, EngineError> {
    let mut items = reply.into_iter();
    let top = items
        .next()
        .as_ref()
        .and_then(text)
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| malformed("history"))?;
    let epoch = items
        .next()
        .as_ref()
        .and_then(text)
        .ok_or_else(|| malformed("history"))?;
    let mut publications = Vec::new();
    while let (Some(offset), Some(body)) = (items.next(), items.next()) {
        let offset: u64 = text(&offset)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| malformed("history"))?;
        let Value::BulkString(body) = body else {
            return Err(malformed("history"));
        };
        let publication =
            wire::decode_body(&Bytes::from(body), offset).ok_or_else(|| malformed("history"))?;
        publications.push(publication);
    }
    Ok(HistoryPage {
        publications,
        position: StreamPosition { offset: top, epoch },
    })
}

/// The publish script's reply (offset text, epoch) as a position.
pub(crate) fn publish_position(offset: &str, epoch: String) -> Result<StreamPosition, EngineError> {
    let offset = offset.parse().map_err(|_| malformed("publish"))?;
    Ok(StreamPosition { offset, epoch })
}

fn malformed(what: &str) -> EngineError {
    EngineError::Internal(format!("unexpected reply from redis to {what}"))
}

/// Publications, joins, leaves, history and control over Redis.
pub struct RedisBroker {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("shards", &self.core.shards.len())
            .finish()
    }
}

impl RedisBroker {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Sends `message` to PUB/SUB channel `pubsub` on `shard` (no history): one PUBLISH (or
    /// SPUBLISH), answered once Redis has taken it. No script: Redis spends about a third
    /// less CPU per publication on a plain PUBLISH than on an EVALSHA running it (delivery
    /// included; bench/brokers/README.md). With classic PUB/SUB on a cluster it goes to one
    /// node (`Conn::broadcast`); otherwise the cluster connection routes it by its channel,
    /// to the master of the channel's slot (which SPUBLISH needs).
    async fn broadcast(
        &self,
        shard: &Shard,
        pubsub: &str,
        message: Vec<u8>,
    ) -> Result<(), EngineError> {
        let conn = shard.conn()?;
        let mut cmd = redis::cmd(conn.publish_command());
        cmd.arg(pubsub).arg(message);
        let sent = match conn.broadcast.clone() {
            Some(mut node) => cmd.query_async::<Value>(&mut node).await,
            None => cmd.query_async::<Value>(&mut conn.data.clone()).await,
        };
        sent.map(drop).map_err(|e| shard.fail(&conn, e))
    }

    async fn join_leave(
        &self,
        channel: &str,
        info: ClientInfo,
        leave: bool,
    ) -> Result<(), EngineError> {
        let pubsub = self.core.names.client_channel(channel);
        let message = wire::join_leave_message(&info, leave);
        self.broadcast(self.core.shard(channel), &pubsub, message)
            .await
    }

    async fn run_history(
        &self,
        shard: &Shard,
        conn: &Conn,
        channel: &str,
        filter: &HistoryFilter,
    ) -> Result<Vec<Value>, EngineError> {
        let names = &self.core.names;
        let (since, since_epoch) = match &filter.since {
            Some(p) => (p.offset.to_string(), p.epoch.as_str()),
            None => (String::new(), ""),
        };
        let limit: i64 = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut data = conn.data.clone();
        let mut inv = scripts().history.prepare_invoke();
        inv.key(names.stream(channel))
            .key(names.meta(channel))
            .arg(since)
            .arg(since_epoch)
            .arg(limit)
            .arg(if filter.reverse { "1" } else { "0" })
            .arg(new_epoch())
            .arg(meta_ttl_secs(
                filter.history_meta_ttl,
                self.core.meta_ttl_secs,
            ));
        if conn.cluster {
            inv.arg("1");
        }
        inv.invoke_async(&mut data)
            .await
            .map_err(|e| shard.fail(conn, e))
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn set_handler(&self, handler: Arc<dyn BrokerEventHandler>) {
        *self.core.dispatcher.handler.write() = Some(handler);
    }

    /// One publish script run (a plain broadcast for a channel without history and without an
    /// idempotency key): the script checks the idempotency key and, with history, the version,
    /// so repeats and outdated versions are dropped atomically, on every node alike. Marked
    /// `delta` with history, the script also reads the stream's last entry before the append
    /// and broadcasts it with the publication (see [`wire`]), so every node's handler gets the
    /// exact predecessor as `prev_data`; an unmarked publish runs exactly as before.
    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        info: Option<Arc<ClientInfo>>,
        opts: PublishOptions,
    ) -> Result<StreamPosition, EngineError> {
        let names = &self.core.names;
        let shard = self.core.shard(channel);
        let body = wire::body(info.as_deref(), opts.tags.as_deref(), &data);
        let pubsub = names.client_channel(channel);
        let history = opts.keeps_history();
        if !history && opts.idempotency_key.is_none() {
            let message = wire::publication_message(0, "", &body);
            self.broadcast(shard, &pubsub, message).await?;
            return Ok(StreamPosition::default());
        }
        let conn = shard.conn()?;
        let mut redis_conn = conn.data.clone();
        let mut inv = scripts().publish.prepare_invoke();
        inv.key(names.stream(channel)).key(names.meta(channel));
        if let Some(key) = &opts.idempotency_key {
            inv.key(names.idempotency(channel, key));
        }
        let window_ms = u64::try_from(opts.idempotent_ttl().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        inv.arg(body)
            .arg(if history { opts.history_size } else { 0 })
            .arg(opts.history_lifetime)
            .arg(meta_ttl_secs(
                opts.history_meta_ttl,
                self.core.meta_ttl_secs,
            ))
            .arg(new_epoch())
            .arg(conn.publish_command())
            .arg(pubsub)
            .arg(window_ms)
            .arg(opts.version)
            .arg(&opts.version_epoch);
        if opts.delta && history {
            // Only then does the script read the predecessor (and send a `d` message).
            inv.arg("1");
        } else if conn.cluster {
            inv.arg("0");
        }
        if conn.cluster {
            // The script checks which master wrote the stream (a failover: new epoch).
            inv.arg("1");
        }
        let (offset, epoch, _outcome): (String, String, String) = inv
            .invoke_async(&mut redis_conn)
            .await
            .map_err(|e| shard.fail(&conn, e))?;
        publish_position(&offset, epoch)
    }

    async fn publish_join(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        self.join_leave(channel, info, false).await
    }

    async fn publish_leave(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        self.join_leave(channel, info, true).await
    }

    /// Returns once Redis confirmed the subscription, so nothing published after this call
    /// returns can be missed.
    async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        let pubsub = self.core.names.client_channel(channel);
        self.core.shard(channel).subscribe(&pubsub).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        let pubsub = self.core.names.client_channel(channel);
        self.core.shard(channel).unsubscribe(&pubsub);
        self.core.dispatcher.epochs.lock().remove(channel);
        Ok(())
    }

    async fn history(
        &self,
        channel: &str,
        filter: HistoryFilter,
    ) -> Result<HistoryPage, EngineError> {
        let shard = self.core.shard(channel);
        let conn = shard.conn()?;
        let reply = self.run_history(shard, &conn, channel, &filter).await?;
        history_page(reply)
    }

    /// Deletes the stream, keeping offset and epoch.
    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        let shard = self.core.shard(channel);
        let conn = shard.conn()?;
        let mut data = conn.data.clone();
        redis::cmd("DEL")
            .arg(self.core.names.stream(channel))
            .query_async::<Value>(&mut data)
            .await
            .map(drop)
            .map_err(|e| shard.fail(&conn, e))
    }

    async fn publish_control(&self, data: Bytes) -> Result<(), EngineError> {
        let shard = self.core.control_shard();
        let pubsub = self.core.names.control_channel().to_string();
        self.broadcast(shard, &pubsub, wire::control_message(&data))
            .await
    }

    fn is_healthy(&self) -> bool {
        self.core.is_ready()
    }
}
