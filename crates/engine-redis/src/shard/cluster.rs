//! Connecting a shard to a Redis Cluster: the slot map from any seed that answers, the
//! cluster data connection, and the PUB/SUB link (classic or sharded).

use redis::{
    Client, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisError, RedisResult, Value,
};

use super::link::Link;
use super::{set_name, DataConn, PushRouter, Session, Shard};
use crate::config::ClusterTarget;

impl Shard {
    pub(super) fn node_client(
        &self,
        c: &ClusterTarget,
        host: &str,
        port: u16,
    ) -> RedisResult<Client> {
        let info = ConnectionAddr::Tcp(host.to_string(), port).into_connection_info()?;
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
        Client::open(info.set_redis_settings(redis))
    }

    pub(super) async fn connect_cluster(
        &self,
        c: &ClusterTarget,
        pushes: PushRouter,
    ) -> RedisResult<Session> {
        // Any seed that answers tells the slot map and whether sharded PUB/SUB exists.
        let mut last_err = None;
        let mut found = None;
        for seed in &c.nodes {
            let Some((host, port)) = seed
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            else {
                continue;
            };
            let attempt = async {
                let client = self.node_client(c, &host, port)?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&self.conn_config())
                    .await?;
                let slots: Value = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut conn)
                    .await?;
                let info: Value = redis::cmd("COMMAND")
                    .arg("INFO")
                    .arg("SPUBLISH")
                    .query_async(&mut conn)
                    .await?;
                let has_spublish = matches!(&info, Value::Array(items) if items.iter().any(|v| !matches!(v, Value::Nil)));
                RedisResult::Ok((host.clone(), port, slots, has_spublish))
            };
            match attempt.await {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some((seed_host, seed_port, slots_value, has_spublish)) = found else {
            return Err(last_err.unwrap_or_else(|| {
                RedisError::from((redis::ErrorKind::Client, "no valid cluster seed address"))
            }));
        };
        let masters = parse_slots(&slots_value, &seed_host)?;

        let mut builder = redis::cluster::ClusterClientBuilder::new(
            c.nodes
                .iter()
                .map(|n| format!("redis://{n}"))
                .collect::<Vec<_>>(),
        )
        .connection_timeout(self.timing.connect)
        .response_timeout(self.timing.read);
        if let Some(p) = &c.password {
            builder = builder.password(p.clone());
        }
        if let Some(u) = &c.username {
            builder = builder.username(u.clone());
        }
        let data = builder.build()?.get_async_connection().await?;

        let sharded = has_spublish && c.sharded_pubsub != Some(false);
        let link = if sharded {
            let mut addrs: Vec<(String, u16)> = Vec::new();
            let mut slots = Vec::new();
            for (lo, hi, host, port) in masters {
                let idx = match addrs.iter().position(|a| a.0 == host && a.1 == port) {
                    Some(i) => i,
                    None => {
                        addrs.push((host.clone(), port));
                        addrs.len() - 1
                    }
                };
                slots.push((lo, hi, idx));
            }
            let mut nodes = Vec::with_capacity(addrs.len());
            for (host, port) in &addrs {
                let client = self.node_client(c, host, *port)?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(
                        &self.conn_config().set_push_sender(pushes.clone()),
                    )
                    .await?;
                set_name(&mut conn, self.client_name.as_deref(), "-pubsub").await;
                nodes.push(conn);
            }
            Link::Sharded { nodes, slots }
        } else {
            let client = self.node_client(c, &seed_host, seed_port)?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(
                    &self.conn_config().set_push_sender(pushes),
                )
                .await?;
            set_name(&mut conn, self.client_name.as_deref(), "-pubsub").await;
            Link::Plain(conn)
        };
        Ok(Session {
            data: DataConn::Cluster(data),
            link,
            sharded,
        })
    }
}

/// Masters from a `CLUSTER SLOTS` reply: (first slot, last slot, host, port). An empty host
/// means the host the reply came from.
fn parse_slots(v: &Value, seed_host: &str) -> RedisResult<Vec<(u16, u16, String, u16)>> {
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
