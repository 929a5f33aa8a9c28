//! Cluster auto-detection for plain addresses, as Centrifugo 6 does: an `engine.redis.address`
//! (`redis_address`) that names one node of a Redis Cluster is that cluster, not a standalone
//! Redis (which would answer MOVED for most channels' keys).
//!
//! At start every standalone shard is asked `INFO cluster` once (within the connect timeout);
//! a node answering `cluster_enabled:1` turns its shard into a cluster seeded by that address,
//! with the shard's credentials and TLS. A shard that cannot be reached stays standalone (a
//! warning says detection was not possible): the node starts anyway, as it does when Redis is
//! down, and Centrifugo's own detection has the same limit.

use redis::{ConnectionAddr, ConnectionInfo};

use super::{ClusterTarget, ClusterTls, RedisConfig, ShardTarget, Topology};

/// What `INFO cluster` told about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Cluster,
    Standalone,
    /// Not reachable, or no answer in time.
    Unknown,
}

async fn probe(info: &ConnectionInfo, timeout: std::time::Duration) -> Probe {
    let ask = async {
        let client = redis::Client::open(info.clone())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("INFO")
            .arg("cluster")
            .query_async::<String>(&mut conn)
            .await
    };
    match tokio::time::timeout(timeout, ask).await {
        Ok(Ok(text)) if text.lines().any(|l| l.trim() == "cluster_enabled:1") => Probe::Cluster,
        Ok(Ok(_)) => Probe::Standalone,
        _ => Probe::Unknown,
    }
}

/// The cluster `info` seeds: its address, credentials and TLS.
fn as_cluster(info: &ConnectionInfo, partitions: usize) -> Option<ClusterTarget> {
    let (host, port, tls) = match info.addr() {
        ConnectionAddr::Tcp(h, p) => (h.clone(), *p, None),
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => (host.clone(), *port, Some(ClusterTls::plain(*insecure))),
        _ => return None,
    };
    let r = info.redis_settings();
    Some(ClusterTarget {
        nodes: vec![format!("{host}:{port}")],
        password: r.password().map(str::to_string),
        username: r.username().map(str::to_string),
        tls,
        sharded_pub_sub_partitions: partitions,
    })
}

impl RedisConfig {
    /// Turns every standalone shard whose address is a cluster node into that cluster (see the
    /// module docs), with `redis_sharded_pub_sub_partitions` as a cluster address would have.
    /// Returns the labels of the shards found to be clusters and of those that could not be
    /// asked.
    pub async fn detect_clusters(mut self) -> (Self, Vec<String>, Vec<String>) {
        let Topology::Shards(shards) = &self.topology else {
            return (self, Vec::new(), Vec::new());
        };
        let partitions = self.detected_partitions;
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        let mut out = Vec::with_capacity(shards.len());
        for s in shards {
            let ShardTarget::Direct(info) = s else {
                out.push(s.clone());
                continue;
            };
            match probe(info, self.connect_timeout).await {
                Probe::Cluster => match as_cluster(info, partitions) {
                    Some(mut c) => {
                        if let (Some(tls), ConnectionAddr::TcpTls { tls_params, .. }) =
                            (&mut c.tls, info.addr())
                        {
                            // Certificates of engine.redis.tls were attached to the address.
                            if tls_params.is_some() {
                                tls.certs = self.tls_pem.clone();
                            }
                        }
                        found.push(s.label());
                        out.push(ShardTarget::Cluster(c));
                    }
                    None => out.push(s.clone()),
                },
                Probe::Standalone => out.push(s.clone()),
                Probe::Unknown => {
                    unknown.push(s.label());
                    out.push(s.clone());
                }
            }
        }
        self.topology = match <[ShardTarget; 1]>::try_from(out) {
            Ok([ShardTarget::Cluster(c)]) => Topology::Cluster(c),
            Ok([other]) => Topology::Shards(vec![other]),
            Err(out) => Topology::Shards(out),
        };
        (self, found, unknown)
    }
}
