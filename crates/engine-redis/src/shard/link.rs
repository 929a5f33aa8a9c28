//! The PUB/SUB side of one connected shard session: one connection with SUBSCRIBE (a server,
//! or any node of a cluster in classic mode), or one connection per cluster master with
//! SSUBSCRIBE on the node that owns each channel's slot (sharded PUB/SUB).

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;
use redis::{RedisError, RedisResult, Value};

use crate::keys::slot;

/// The PUB/SUB side of one connected session.
pub(super) enum Link {
    /// One connection, SUBSCRIBE/UNSUBSCRIBE (a server, or any node of a cluster without
    /// sharded PUB/SUB: PUBLISH reaches every node there).
    Plain(MultiplexedConnection),
    /// One connection per cluster master, SSUBSCRIBE on the node owning the channel's slot.
    Sharded {
        nodes: Vec<MultiplexedConnection>,
        /// (first slot, last slot, index in `nodes`).
        slots: Vec<(u16, u16, usize)>,
    },
}

/// Channels per SUBSCRIBE command.
pub(super) const BATCH: usize = 512;

impl Link {
    fn node_of(slots: &[(u16, u16, usize)], channel: &str) -> Option<usize> {
        let s = slot(channel.as_bytes());
        slots
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&s))
            .map(|(_, _, n)| *n)
    }

    pub(super) async fn change(&mut self, channels: &[String], subscribe: bool) -> RedisResult<()> {
        match self {
            Link::Plain(conn) => {
                for chunk in channels.chunks(BATCH) {
                    if subscribe {
                        conn.subscribe(chunk).await?;
                    } else {
                        conn.unsubscribe(chunk).await?;
                    }
                }
                Ok(())
            }
            Link::Sharded { nodes, slots } => {
                let mut per_node: HashMap<usize, Vec<&String>> = HashMap::new();
                for ch in channels {
                    let node = Self::node_of(slots, ch).ok_or_else(|| {
                        RedisError::from((
                            redis::ErrorKind::Client,
                            "no cluster node serves the slot",
                        ))
                    })?;
                    per_node.entry(node).or_default().push(ch);
                }
                let name = if subscribe {
                    "SSUBSCRIBE"
                } else {
                    "SUNSUBSCRIBE"
                };
                for (node, chans) in per_node {
                    for chunk in chans.chunks(BATCH) {
                        // One channel per command: a multi-channel SSUBSCRIBE must stay in one
                        // slot, and each command is then answered by exactly one confirmation.
                        let mut pipe = redis::pipe();
                        for ch in chunk {
                            pipe.cmd(name).arg(ch.as_str());
                        }
                        let _: Value = pipe.query_async(&mut nodes[node]).await?;
                    }
                }
                Ok(())
            }
        }
    }

    pub(super) async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Link::Plain(conn) => redis::cmd("PING")
                .query_async::<Value>(conn)
                .await
                .map(drop),
            Link::Sharded { nodes, .. } => {
                for conn in nodes {
                    redis::cmd("PING").query_async::<Value>(conn).await?;
                }
                Ok(())
            }
        }
    }
}
