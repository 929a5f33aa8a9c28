//! The PUB/SUB side of one connected shard session: one connection with SUBSCRIBE (a server,
//! or any node of a cluster in classic mode), or, with sharded PUB/SUB partitions, one
//! connection per cluster master carrying every partition that master owns (node-grouped),
//! with SSUBSCRIBE per partition batch.
//!
//! Sharded: every channel of a partition shares the partition's slot (`{p}`, see `keys`), so
//! one SSUBSCRIBE carries up to [`BATCH`] of them without CROSSSLOT. The slot map comes from
//! `CLUSTER SLOTS`; a `MOVED` reply points the slot at the named node, reloads the map and
//! retries there (an `ASK` sends `ASKING` and retries once there, map unchanged), so the first
//! subscribe after a slot move succeeds. A subscription the server drops because its slot
//! moved is put back on the new owner by [`Sharded::resubscribe`] (the supervisor reports the
//! gap).
//!
//! redis-rs's multiplexed connection counts one reply per command, and a multi-channel
//! SSUBSCRIBE is answered by one confirmation per channel, or by a single error. So a batch
//! goes out as the first channel alone (its one reply is a confirmation or the error: a
//! redirect is then followed safely), and the rest as one command whose confirmations are
//! counted (the node just confirmed it owns the slot). Every reply is checked to be the
//! confirmation of the channel it should confirm; anything else (a slot moving between the
//! two commands, a server `sunsubscribe` taken for a reply) leaves the connection's reply
//! accounting unknown, so it is dropped and the error ends the session (the supervisor
//! reconnects and resubscribes everything, with a gap).

use std::collections::{BTreeMap, HashMap};

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, PushKind, RedisError,
    RedisResult, Value,
};

use super::set_name;
use crate::keys::slot;

/// The PUB/SUB side of one connected session.
pub(super) enum Link {
    /// One connection, SUBSCRIBE/UNSUBSCRIBE (a server, or any node of a cluster without
    /// sharded PUB/SUB: PUBLISH reaches every node there).
    Plain(MultiplexedConnection),
    /// One connection per cluster master, SSUBSCRIBE on the node owning the channel's slot.
    Sharded(Box<Sharded>),
}

/// Channels per SUBSCRIBE / SSUBSCRIBE command.
pub(super) const BATCH: usize = 512;

/// Redirects followed for one batch before giving up.
const REDIRECTS: usize = 5;

/// `host`, `port` of a cluster node.
type Addr = (String, u16);

fn client_error(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Client, what))
}

/// Opens PUB/SUB connections to cluster nodes: the settings (credentials, protocol, TLS) of
/// `template` at another address, with the session's push sender.
pub(super) struct Dialer {
    pub template: ConnectionInfo,
    /// Carries the push sender of the session.
    pub config: AsyncConnectionConfig,
    pub client_name: Option<String>,
}

impl Dialer {
    async fn dial(&self, (host, port): &Addr) -> RedisResult<MultiplexedConnection> {
        let addr = match self.template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        let client = Client::open(self.template.clone().set_addr(addr))?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        set_name(&mut conn, self.client_name.as_deref(), "-pubsub").await;
        Ok(conn)
    }
}

/// Sharded PUB/SUB over node-grouped connections (see the module docs).
pub(super) struct Sharded {
    dialer: Dialer,
    /// (first slot, last slot, master), from `CLUSTER SLOTS`.
    slots: Vec<(u16, u16, Addr)>,
    /// One PUB/SUB connection per master.
    conns: HashMap<Addr, MultiplexedConnection>,
}

impl Sharded {
    /// Connects to every master of `masters` (`(first slot, last slot, host, port)`).
    pub(super) async fn connect(
        dialer: Dialer,
        masters: Vec<(u16, u16, String, u16)>,
    ) -> RedisResult<Sharded> {
        let mut link = Sharded {
            dialer,
            slots: Vec::new(),
            conns: HashMap::new(),
        };
        link.set_map(masters);
        let addrs: Vec<Addr> = link.masters();
        for addr in addrs {
            link.conn(&addr).await?;
        }
        Ok(link)
    }

    fn set_map(&mut self, masters: Vec<(u16, u16, String, u16)>) {
        self.slots = masters
            .into_iter()
            .map(|(lo, hi, host, port)| (lo, hi, (host, port)))
            .collect();
    }

    fn masters(&self) -> Vec<Addr> {
        let mut out: Vec<Addr> = Vec::new();
        for (_, _, a) in &self.slots {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    fn owner(&self, s: u16) -> Option<Addr> {
        self.slots
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&s))
            .map(|(_, _, a)| a.clone())
    }

    /// Points slot `s` at `addr` (a MOVED names the new owner before any map says so).
    fn set_owner(&mut self, s: u16, addr: Addr) {
        let mut next = Vec::with_capacity(self.slots.len() + 2);
        for (lo, hi, a) in self.slots.drain(..) {
            if (lo..=hi).contains(&s) {
                if lo < s {
                    next.push((lo, s - 1, a.clone()));
                }
                if s < hi {
                    next.push((s + 1, hi, a));
                }
            } else {
                next.push((lo, hi, a));
            }
        }
        next.push((s, s, addr));
        next.sort_by_key(|(lo, _, _)| *lo);
        self.slots = next;
    }

    async fn conn(&mut self, addr: &Addr) -> RedisResult<&mut MultiplexedConnection> {
        if !self.conns.contains_key(addr) {
            let conn = self.dialer.dial(addr).await?;
            self.conns.insert(addr.clone(), conn);
        }
        Ok(self.conns.get_mut(addr).expect("inserted above"))
    }

    /// Reloads the slot map from the first node that answers; keeps the old one otherwise.
    /// Connections to nodes that no longer own a slot are closed (the server dropped their
    /// subscriptions with the slots).
    pub(super) async fn refresh(&mut self) -> RedisResult<()> {
        let mut last = None;
        let addrs: Vec<Addr> = self.conns.keys().cloned().collect();
        for addr in addrs {
            let Some(conn) = self.conns.get_mut(&addr) else {
                continue;
            };
            let reply: RedisResult<Value> =
                redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await;
            match reply.and_then(|v| super::cluster::parse_slots(&v, &addr.0)) {
                Ok(masters) => {
                    self.set_map(masters);
                    let keep = self.masters();
                    self.conns.retain(|a, _| keep.contains(a));
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| client_error("no cluster node to ask for the slot map")))
    }

    /// SSUBSCRIBEs (or SUNSUBSCRIBEs) `channels`, grouped by slot, [`BATCH`] a command;
    /// returns once every subscription is confirmed.
    async fn change(&mut self, channels: &[String], subscribe: bool) -> RedisResult<()> {
        let mut by_slot: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for ch in channels {
            by_slot
                .entry(slot(ch.as_bytes()))
                .or_default()
                .push(ch.as_str());
        }
        for (s, chans) in by_slot {
            for chunk in chans.chunks(BATCH) {
                self.change_slot(s, chunk, subscribe).await?;
            }
        }
        Ok(())
    }

    /// One batch of channels of slot `s`, following redirects.
    async fn change_slot(&mut self, s: u16, chunk: &[&str], subscribe: bool) -> RedisResult<()> {
        let mut asking = None;
        for _ in 0..=REDIRECTS {
            let (addr, ask) = match asking.take() {
                Some(a) => (a, true),
                None => (
                    self.owner(s)
                        .ok_or_else(|| client_error("no cluster node serves the slot"))?,
                    false,
                ),
            };
            let e = match self.send(&addr, chunk, subscribe, ask).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let Some(to) = e.redirect_node().and_then(|(to, _)| parse_addr(to)) else {
                return Err(e);
            };
            if !subscribe {
                // The slot left that node, and the node dropped its subscriptions with it.
                return Ok(());
            }
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask) {
                asking = Some(to);
                continue;
            }
            tracing::info!(slot = s, to = %format!("{}:{}", to.0, to.1), "redis slot moved; resubscribing on its new owner");
            // Moves come in batches: reload the whole map, but trust the redirect for this
            // slot (the node asked may not know yet).
            let _ = self.refresh().await;
            self.set_owner(s, to);
        }
        Err(client_error("too many cluster redirects for SSUBSCRIBE"))
    }

    /// Sends one batch on `addr` (see the module docs); a redirect comes back as the error.
    async fn send(
        &mut self,
        addr: &Addr,
        chunk: &[&str],
        subscribe: bool,
        asking: bool,
    ) -> RedisResult<()> {
        let (name, kind) = if subscribe {
            ("SSUBSCRIBE", PushKind::SSubscribe)
        } else {
            ("SUNSUBSCRIBE", PushKind::SUnsubscribe)
        };
        let conn = self.conn(addr).await?;
        if asking {
            redis::cmd("ASKING")
                .query_async::<Value>(&mut *conn)
                .await?;
        }
        let first: Value = redis::cmd(name)
            .arg(chunk[0])
            .query_async(&mut *conn)
            .await?;
        let mut ok = confirms(&first, &kind, chunk[0]);
        if ok && chunk.len() > 1 {
            let rest = &chunk[1..];
            let mut pipe = redis::pipe();
            pipe.cmd(name).arg(rest);
            // One command, one confirmation per channel.
            let replies =
                redis::aio::ConnectionLike::req_packed_commands(&mut *conn, &pipe, 0, rest.len())
                    .await;
            ok = match replies {
                Ok(replies) => {
                    replies.len() == rest.len()
                        && replies
                            .iter()
                            .zip(rest)
                            .all(|(r, ch)| confirms(r, &kind, ch))
                }
                Err(e) => {
                    self.conns.remove(addr);
                    return Err(e);
                }
            };
        }
        if ok {
            return Ok(());
        }
        self.conns.remove(addr);
        Err(client_error(
            "unexpected reply to a shard subscription change",
        ))
    }

    /// Subscribes again to `channels`, whose subscriptions the server dropped (their slot
    /// moved): reloads the slot map and subscribes on the new owners.
    pub(super) async fn resubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        self.refresh().await?;
        self.change(channels, true).await
    }

    async fn ping(&mut self) -> RedisResult<()> {
        let addrs = self.masters();
        for addr in addrs {
            let conn = self.conn(&addr).await?;
            let pong: Value = redis::cmd("PING").query_async(&mut *conn).await?;
            if !matches!(&pong, Value::SimpleString(s) if s == "PONG") {
                self.conns.remove(&addr);
                return Err(client_error("unexpected reply to PING"));
            }
        }
        Ok(())
    }
}

/// Whether `v` is the `kind` confirmation of `channel`.
fn confirms(v: &Value, kind: &PushKind, channel: &str) -> bool {
    match v {
        Value::Push { kind: k, data } => {
            k == kind
                && matches!(data.first(), Some(Value::BulkString(c)) if c == channel.as_bytes())
        }
        _ => false,
    }
}

/// `host:port` of a redirect.
fn parse_addr(s: &str) -> Option<Addr> {
    let (h, p) = s.rsplit_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
}

impl Link {
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
            Link::Sharded(s) => s.change(channels, subscribe).await,
        }
    }

    /// Puts back subscriptions the server dropped because their slot moved.
    pub(super) async fn resubscribe_moved(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Link::Plain(conn) => {
                for chunk in channels.chunks(BATCH) {
                    conn.subscribe(chunk).await?;
                }
                Ok(())
            }
            Link::Sharded(s) => s.resubscribe(channels).await,
        }
    }

    pub(super) async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Link::Plain(conn) => redis::cmd("PING")
                .query_async::<Value>(conn)
                .await
                .map(drop),
            Link::Sharded(s) => s.ping().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(slots: Vec<(u16, u16, &str)>) -> Sharded {
        let template =
            redis::IntoConnectionInfo::into_connection_info("redis://127.0.0.1:1").unwrap();
        let mut s = Sharded {
            dialer: Dialer {
                template,
                config: AsyncConnectionConfig::new(),
                client_name: None,
            },
            slots: Vec::new(),
            conns: HashMap::new(),
        };
        s.set_map(
            slots
                .into_iter()
                .map(|(lo, hi, h)| (lo, hi, h.to_string(), 1))
                .collect(),
        );
        s
    }

    #[test]
    fn a_redirect_repoints_one_slot() {
        let mut s = link(vec![
            (0, 5460, "a"),
            (5461, 10922, "b"),
            (10923, 16383, "c"),
        ]);
        assert_eq!(s.masters().len(), 3);
        assert_eq!(s.owner(100).unwrap().0, "a");
        s.set_owner(100, ("c".into(), 1));
        assert_eq!(s.owner(99).unwrap().0, "a");
        assert_eq!(s.owner(100).unwrap().0, "c");
        assert_eq!(s.owner(101).unwrap().0, "a");
        assert_eq!(s.owner(0).unwrap().0, "a");
        s.set_owner(0, ("b".into(), 1));
        s.set_owner(16383, ("b".into(), 1));
        assert_eq!(s.owner(0).unwrap().0, "b");
        assert_eq!(s.owner(1).unwrap().0, "a");
        assert_eq!(s.owner(16383).unwrap().0, "b");
        assert_eq!(s.owner(16382).unwrap().0, "c");
        // Every slot still has exactly one owner.
        for slot in 0..16384u16 {
            let n = s
                .slots
                .iter()
                .filter(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
                .count();
            assert_eq!(n, 1, "slot {slot}");
        }
    }

    #[test]
    fn confirmations_and_redirect_addresses() {
        let push = |kind: PushKind, ch: &str| Value::Push {
            kind,
            data: vec![Value::BulkString(ch.as_bytes().to_vec()), Value::Int(1)],
        };
        assert!(confirms(
            &push(PushKind::SSubscribe, "x"),
            &PushKind::SSubscribe,
            "x"
        ));
        assert!(!confirms(
            &push(PushKind::SSubscribe, "y"),
            &PushKind::SSubscribe,
            "x"
        ));
        assert!(!confirms(
            &push(PushKind::SUnsubscribe, "x"),
            &PushKind::SSubscribe,
            "x"
        ));
        assert!(!confirms(&Value::Okay, &PushKind::SSubscribe, "x"));
        assert_eq!(
            parse_addr("127.0.0.1:7001"),
            Some(("127.0.0.1".into(), 7001))
        );
        assert_eq!(parse_addr("::1:7001"), Some(("::1".into(), 7001)));
        assert_eq!(parse_addr("nope"), None);
    }
}
