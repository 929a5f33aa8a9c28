//! Connecting a shard to a Redis Cluster: the slot map from any known node that answers, the
//! cluster data connection, the PUB/SUB link (classic or sharded), and the watch that tells the
//! supervisor when the cluster changed under the session.
//!
//! Seeds: the configured nodes are only where discovery starts. Every master and replica a
//! `CLUSTER SLOTS` reply names is remembered ([`Shard::learn`]), and the next connect tries the
//! node that answered last first, then every other known node, so losing the configured seed
//! (say, a master that dies) does not cut the node off.
//!
//! A session is only started on a healthy cluster: the node asked says `cluster_state:ok` and
//! every master of its slot map answers PING. While a master is down and not yet replaced, the
//! connect fails, the shard stays unready (`/health` 503, operations refused) and the
//! supervisor retries; once a replica is promoted, the session starts and the supervisor
//! reports the reconnect (every channel is checked: a failover may have lost publications).
//!
//! While a session runs, [`ClusterWatch::check`] (on every PUB/SUB ping) PINGs every master on
//! connections of its own, checks `cluster_state`, and compares the set of masters with the
//! session's: a master that stops answering, a cluster that goes down, or a changed master set
//! (a failover) ends the session, so the supervisor reconnects and reports the gap. A slot that
//! moves between the same masters does not (the sharded link follows it, see link.rs).

use std::collections::BTreeSet;

use redis::aio::MultiplexedConnection;
use redis::{
    Client, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisError, RedisResult, Value,
};

use super::link::{Dialer, Link, Sharded};
use super::{set_name, DataConn, PushRouter, Session, Shard};
use crate::config::ClusterTarget;

/// `(first slot, last slot, master host, master port)` ranges of a `CLUSTER SLOTS` reply.
pub(super) type SlotMap = Vec<(u16, u16, String, u16)>;

fn client_error(what: &'static str, detail: String) -> RedisError {
    RedisError::from((redis::ErrorKind::Client, what, detail))
}

fn host_port(a: &str) -> Option<(String, u16)> {
    let (h, p) = a.rsplit_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
}

/// What a session watches (see the module docs).
pub(super) struct ClusterWatch {
    /// One plain connection per master, for PINGs and topology reads.
    probes: Vec<(String, MultiplexedConnection)>,
    /// The masters of the slot map the session started with.
    masters: BTreeSet<String>,
}

/// Masters of a slot map, as `host:port`.
fn master_set(map: &SlotMap) -> BTreeSet<String> {
    map.iter().map(|(_, _, h, p)| format!("{h}:{p}")).collect()
}

impl ClusterWatch {
    /// `Err(reason)` when the session must end; `Ok(nodes)` = every node the cluster named.
    pub(super) async fn check(&mut self) -> Result<Vec<String>, String> {
        for (addr, conn) in &mut self.probes {
            let pong: RedisResult<Value> = redis::cmd("PING").query_async(conn).await;
            if let Err(e) = pong {
                return Err(format!("cluster master {addr} does not answer: {e}"));
            }
        }
        let Some((addr, conn)) = self.probes.first_mut() else {
            return Ok(Vec::new());
        };
        let (map, nodes) = read_topology(conn, &addr.clone())
            .await
            .map_err(|e| e.to_string())?;
        let now = master_set(&map);
        if now != self.masters {
            return Err(format!(
                "cluster masters changed (failover): {:?} -> {:?}",
                self.masters, now
            ));
        }
        Ok(nodes)
    }
}

/// `cluster_state:ok` check, then the slot map and every node (masters and replicas) it names.
async fn read_topology(
    conn: &mut MultiplexedConnection,
    addr: &str,
) -> RedisResult<(SlotMap, Vec<String>)> {
    let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(conn).await?;
    if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
        return Err(RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
            "cluster is down",
            format!("{addr} reports cluster_state other than ok"),
        )));
    }
    let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let host = host_port(addr).map(|(h, _)| h).unwrap_or_default();
    let map = parse_slots(&slots, &host)?;
    let nodes = slot_nodes(&slots, &host);
    Ok((map, nodes))
}

impl Shard {
    pub(super) fn node_client(
        &self,
        c: &ClusterTarget,
        host: &str,
        port: u16,
    ) -> RedisResult<Client> {
        let addr = match &c.tls {
            Some(tls) => ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: tls.skip_verify,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(host.to_string(), port),
        };
        let info = addr.into_connection_info()?;
        let mut redis = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        if let Some(p) = &c.password {
            redis = redis.set_password(p);
        }
        if let Some(u) = &c.username {
            redis = redis.set_username(u);
        }
        let info = info.set_redis_settings(redis);
        match c.tls.as_ref().and_then(|t| t.certs.as_ref()) {
            Some(pem) => Client::build_with_tls(info, pem.certificates()),
            None => Client::open(info),
        }
    }

    /// Nodes to try, the one that answered last first, then the rest of the known ones.
    fn seeds(&self, c: &ClusterTarget) -> Vec<String> {
        let mut known = self.known.lock();
        for n in &c.nodes {
            if !known.contains(n) {
                known.push(n.clone());
            }
        }
        known.clone()
    }

    /// Remembers `nodes` as seeds; `good` answered and goes first.
    pub(super) fn learn(&self, good: Option<&str>, nodes: &[String]) {
        let mut known = self.known.lock();
        for n in nodes {
            if !known.contains(n) {
                known.push(n.clone());
            }
        }
        if let Some(g) = good {
            if let Some(i) = known.iter().position(|n| n == g) {
                let n = known.remove(i);
                known.insert(0, n);
            }
        }
    }

    pub(super) async fn connect_cluster(
        &self,
        c: &ClusterTarget,
        pushes: PushRouter,
    ) -> RedisResult<Session> {
        // Any known node that answers tells the slot map and whether sharded PUB/SUB exists.
        let mut last_err = None;
        let mut found = None;
        for seed in self.seeds(c) {
            let Some((host, port)) = host_port(&seed) else {
                continue;
            };
            let attempt = async {
                let client = self.node_client(c, &host, port)?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&self.conn_config())
                    .await?;
                let (map, nodes) = read_topology(&mut conn, &seed).await?;
                let info: Value = redis::cmd("COMMAND")
                    .arg("INFO")
                    .arg("SPUBLISH")
                    .query_async(&mut conn)
                    .await?;
                let has_spublish = matches!(&info, Value::Array(items) if items.iter().any(|v| !matches!(v, Value::Nil)));
                RedisResult::Ok((host.clone(), port, map, nodes, has_spublish))
            };
            match attempt.await {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(e) => {
                    tracing::debug!(shard = %self.label, node = %seed, error = %e, "cluster node unusable");
                    last_err = Some(e);
                }
            }
        }
        let Some((seed_host, seed_port, masters, nodes, has_spublish)) = found else {
            return Err(last_err.unwrap_or_else(|| {
                RedisError::from((redis::ErrorKind::Client, "no valid cluster seed address"))
            }));
        };
        let seed = format!("{seed_host}:{seed_port}");
        self.learn(Some(&seed), &nodes);

        // Every master must answer: a dead one (not yet replaced) fails its slots.
        let mut probes = Vec::new();
        for m in master_set(&masters) {
            let Some((host, port)) = host_port(&m) else {
                continue;
            };
            let mut conn = self
                .node_client(c, &host, port)?
                .get_multiplexed_async_connection_with_config(&self.conn_config())
                .await
                .map_err(|e| client_error("cluster master unreachable", format!("{m}: {e}")))?;
            let _: Value = redis::cmd("PING").query_async(&mut conn).await?;
            set_name(&mut conn, self.client_name.as_deref(), "-probe").await;
            probes.push((m, conn));
        }
        let watch = ClusterWatch {
            masters: master_set(&masters),
            probes,
        };

        // The data connection: every known node is a seed (live ones first). Few, short
        // retries: a command on an unserved slot fails fast and the supervisor takes over.
        let scheme = match &c.tls {
            Some(_) => "rediss",
            None => "redis",
        };
        let mut initial: Vec<String> = vec![seed.clone()];
        initial.extend(master_set(&masters).into_iter().filter(|m| *m != seed));
        let mut builder = redis::cluster::ClusterClientBuilder::new(
            initial
                .iter()
                .map(|n| format!("{scheme}://{n}"))
                .collect::<Vec<_>>(),
        )
        .connection_timeout(self.timing.connect)
        .response_timeout(self.timing.read)
        .retries(3)
        .min_retry_wait(20)
        .max_retry_wait(200);
        if let Some(tls) = &c.tls {
            builder = builder.tls(if tls.skip_verify {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            });
            if let Some(pem) = &tls.certs {
                builder = builder.certs(pem.certificates());
            }
        }
        if let Some(p) = &c.password {
            builder = builder.password(p.clone());
        }
        if let Some(u) = &c.username {
            builder = builder.username(u.clone());
        }
        let data = builder.build()?.get_async_connection().await?;

        // Sharded PUB/SUB (partitions, node-grouped connections): see link.rs.
        let sharded = c.sharded_pub_sub_partitions > 0;
        if sharded && !has_spublish {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "sharded PUB/SUB",
                "redis_sharded_pub_sub_partitions is set but the cluster has no SPUBLISH \
                 (needs Redis 7+); remove the option or upgrade Redis"
                    .to_string(),
            )));
        }
        let mut broadcast = None;
        let link = if sharded {
            let dialer = Dialer {
                template: self
                    .node_client(c, &seed_host, seed_port)?
                    .get_connection_info()
                    .clone(),
                config: self.conn_config().set_push_sender(pushes),
                client_name: self.client_name.clone(),
            };
            Link::Sharded(Box::new(Sharded::connect(dialer, masters).await?))
        } else {
            // Classic: PUBLISH reaches every node, so any live node serves (the one that
            // answered first).
            let client = self.node_client(c, &seed_host, seed_port)?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(
                    &self.conn_config().set_push_sender(pushes),
                )
                .await?;
            set_name(&mut conn, self.client_name.as_deref(), "-pubsub").await;
            // Broadcasts go to that node too (see `Conn::broadcast`). A broadcast failing on
            // it makes the shard reconnect like any data command does (`Shard::fail`).
            let mut publish = client
                .get_multiplexed_async_connection_with_config(&self.conn_config())
                .await?;
            set_name(&mut publish, self.client_name.as_deref(), "-publish").await;
            broadcast = Some(publish);
            Link::Plain(conn)
        };
        Ok(Session {
            data: DataConn::Cluster(data),
            link,
            sharded,
            cluster: Some(watch),
            broadcast,
        })
    }
}

/// Every node (masters and replicas) of a `CLUSTER SLOTS` reply, as `host:port`.
fn slot_nodes(v: &Value, seed_host: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Value::Array(ranges) = v else {
        return out;
    };
    for r in ranges {
        let Value::Array(parts) = r else { continue };
        for node in parts.iter().skip(2) {
            let Value::Array(n) = node else { continue };
            let host = match n.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = n.get(1) else {
                continue;
            };
            let host = if host.is_empty() || host == "?" {
                seed_host.to_string()
            } else {
                host
            };
            let a = format!("{host}:{port}");
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// Masters from a `CLUSTER SLOTS` reply: (first slot, last slot, host, port). An empty host
/// means the host the reply came from.
pub(super) fn parse_slots(v: &Value, seed_host: &str) -> RedisResult<SlotMap> {
    let bad = || RedisError::from((redis::ErrorKind::Client, "unexpected CLUSTER SLOTS reply"));
    let Value::Array(ranges) = v else {
        return Err(bad());
    };
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    for r in ranges {
        let Value::Array(parts) = r else {
            return Err(bad());
        };
        let (Some(lo), Some(hi), Some(Value::Array(master))) = (
            parts.first().and_then(int),
            parts.get(1).and_then(int),
            parts.get(2),
        ) else {
            return Err(bad());
        };
        let host = master.first().and_then(text).ok_or_else(bad)?;
        let port = master.get(1).and_then(int).ok_or_else(bad)?;
        let host = if host.is_empty() || host == "?" {
            seed_host.to_string()
        } else {
            host
        };
        out.push((lo as u16, hi as u16, host, port as u16));
    }
    if out.is_empty() {
        return Err(RedisError::from((
            redis::ErrorKind::Client,
            "cluster has no slots assigned",
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn slots_reply_masters_and_every_node() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                node("10.0.0.1", 7000),
                node("10.0.0.2", 7001),
            ]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                node("", 7002),
                node("10.0.0.1", 7000),
            ]),
        ]);
        let map = parse_slots(&reply, "seed").unwrap();
        assert_eq!(
            map,
            vec![
                (0, 8191, "10.0.0.1".to_string(), 7000),
                (8192, 16383, "seed".to_string(), 7002)
            ]
        );
        assert_eq!(
            slot_nodes(&reply, "seed"),
            ["10.0.0.1:7000", "10.0.0.2:7001", "seed:7002"]
        );
        assert_eq!(
            master_set(&map).into_iter().collect::<Vec<_>>(),
            ["10.0.0.1:7000", "seed:7002"]
        );
        assert!(parse_slots(&Value::Array(vec![]), "s").is_err());
    }
}
