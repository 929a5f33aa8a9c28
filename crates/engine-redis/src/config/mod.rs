//! The Redis engine's settings, read from the `redis_*` keys of a Centrifugo configuration
//! (PROTOCOL.md §9) as the server collected them: JSON values from the file, strings from
//! `CENTRIFUGO_REDIS_*` environment variables. Every key accepts both.
//!
//! Which Redis the engine talks to, first match wins:
//! 1. A Redis Cluster: `redis_cluster_address` (3.x–5.x, and v6 `engine.redis.cluster_address`)
//!    or `redis_cluster_addrs` (2.x), where **each element is one cluster** given as
//!    comma-separated seeds (a string: clusters separated by spaces, as the 2.x environment
//!    form); or `redis_address` entries that are `redis+cluster://h:p?addr=h2:p2&addr=h3:p3`
//!    URLs (v6; `rediss+cluster://` for TLS). Several clusters are shards (client-side, by
//!    channel), like several `redis_address` entries.
//! 2. `redis_master_name` (+ `redis_sentinels`): one shard per master name, each found through
//!    the sentinels.
//! 3. `redis_address`: one shard per address (`host:port` or a `redis://` URL).
//! 4. `redis_url`: one shard per URL.
//! 5. `redis_host` × `redis_port` (2.x): comma-separated lists; a single value applies to every
//!    shard, otherwise the lists pair up by position.
//!
//! `redis_password` and `redis_db` are lists in the same way (one value for all shards, or one
//! per shard). Lists are JSON arrays or comma-separated strings.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use serde_json::{Map, Value};

/// A configuration the engine cannot run with; the message names the key.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("redis config: {0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Where one shard lives.
#[derive(Debug, Clone)]
pub enum ShardTarget {
    /// A Redis server at a fixed address.
    Direct(ConnectionInfo),
    /// One Redis Cluster among several (client-side sharding over clusters).
    Cluster(ClusterTarget),
    /// The current master of `master_name`, as the sentinels report it.
    Sentinel {
        master_name: String,
        sentinels: Vec<ConnectionAddr>,
        sentinel_password: Option<String>,
        password: Option<String>,
        username: Option<String>,
        db: i64,
    },
}

impl ShardTarget {
    /// A short name for logs (no credentials).
    pub fn label(&self) -> String {
        match self {
            ShardTarget::Direct(info) => addr_label(info.addr()),
            ShardTarget::Sentinel { master_name, .. } => format!("sentinel master {master_name}"),
            ShardTarget::Cluster(c) => c.label(),
        }
    }
}

fn addr_label(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(h, p) => format!("{h}:{p}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (tls)"),
        ConnectionAddr::Unix(path) => path.display().to_string(),
        other => format!("{other:?}"),
    }
}

/// A Redis Cluster: seed nodes and credentials.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    /// Seed nodes, `host:port`. The engine learns every other master and replica from them.
    pub nodes: Vec<String>,
    pub password: Option<String>,
    pub username: Option<String>,
    /// TLS to every node (`redis_tls`, or a `rediss+cluster://` address).
    pub tls: Option<ClusterTls>,
    /// Sharded PUB/SUB partitions (`redis_sharded_pub_sub_partitions`; `true` for
    /// `redis_cluster_sharded_pubsub` = [`DEFAULT_PARTITIONS`]); 0 = classic PUBLISH/SUBSCRIBE,
    /// the default, as in OSS Centrifugo.
    pub sharded_pub_sub_partitions: usize,
}

/// TLS settings of a cluster's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// Do not check certificates (`redis_tls_skip_verify`).
    pub skip_verify: bool,
    /// The CA and client certificate of `engine.redis.tls`; `None`: system roots, no client
    /// certificate.
    pub certs: Option<TlsPem>,
}

/// Partitions of `redis_cluster_sharded_pubsub: true` (the count Centrifugo PRO recommends).
pub const DEFAULT_PARTITIONS: usize = 128;

impl ClusterTarget {
    /// A short name for logs (no credentials).
    pub fn label(&self) -> String {
        format!("cluster {}", self.nodes.join(","))
    }
}

/// Shards or one cluster.
#[derive(Debug, Clone)]
pub enum Topology {
    Shards(Vec<ShardTarget>),
    Cluster(ClusterTarget),
}

/// Everything the engine needs.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub topology: Topology,
    /// Prefix of every key and PUB/SUB channel (`redis_prefix`, default `centrifugo`).
    pub prefix: String,
    /// How long a stream's offset and epoch outlive its last publication (zero = forever).
    pub history_meta_ttl: Duration,
    pub connect_timeout: Duration,
    /// How long a command may take before the connection counts as broken.
    pub read_timeout: Duration,
    /// How often the PUB/SUB connection is pinged to detect a silent outage.
    pub ping_interval: Duration,
    /// `CLIENT SETNAME` of the connections (`<name>` for data, `<name>-pubsub`), so
    /// `CLIENT LIST` shows which node holds which; `None` = unnamed.
    pub client_name: Option<String>,
    /// The certificates of `engine.redis.tls`, for clusters found by
    /// [`RedisConfig::detect_clusters`].
    pub tls_pem: Option<TlsPem>,
    /// Sharded PUB/SUB partitions a cluster found by [`RedisConfig::detect_clusters`] gets.
    pub detected_partitions: usize,
}

impl RedisConfig {
    /// A single Redis at `addr` (`host:port`), default settings.
    pub fn single(addr: &str) -> Result<Self, ConfigError> {
        let mut map = Map::new();
        map.insert("redis_address".into(), Value::String(addr.into()));
        Self::from_map(&map)
    }

    /// Reads the `redis_*` keys (other keys are ignored). `memory_history_meta_ttl` is not a
    /// Redis key; `redis_history_meta_ttl` (2.5+) and `redis_sequence_ttl` (2.3+) are.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ConfigError> {
        let keys = Keys(map);
        let tls = keys.boolean("redis_tls")?;
        let tls_skip_verify = keys.boolean("redis_tls_skip_verify")?;
        let prefix = keys.string("redis_prefix")?.unwrap_or_default();
        let prefix = if prefix.is_empty() {
            "centrifugo".to_string()
        } else {
            prefix
        };
        let history_meta_ttl = match keys.duration("redis_history_meta_ttl")? {
            Some(d) => d,
            None => keys.duration("redis_sequence_ttl")?.unwrap_or_default(),
        };
        let connect_timeout = keys
            .duration("redis_connect_timeout")?
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        let read_timeout = keys
            .duration("redis_read_timeout")?
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(5));
        let mut topology = topology(&keys)?;
        if tls {
            topology = with_tls(topology, tls_skip_verify)?;
        }
        let tls_pem = tls::read(&keys)?;
        if let Some(pem) = &tls_pem {
            topology = tls::apply(topology, pem)?;
        }
        let detected_partitions = match keys.count("redis_sharded_pub_sub_partitions")? {
            Some(n) => n,
            None if keys.boolean("redis_cluster_sharded_pubsub")? => DEFAULT_PARTITIONS,
            None => 0,
        };
        Ok(Self {
            topology,
            prefix,
            history_meta_ttl,
            connect_timeout,
            read_timeout,
            ping_interval: Duration::from_secs(1),
            client_name: None,
            tls_pem,
            detected_partitions,
        })
    }

    /// Names the connections after `node` (see [`RedisConfig::client_name`]).
    pub fn with_client_name(mut self, node: &str) -> Self {
        let clean: String = node
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.client_name = (!clean.is_empty()).then(|| format!("rotor-{clean}"));
        self
    }

    /// How many shards (a cluster counts as one).
    pub fn num_shards(&self) -> usize {
        match &self.topology {
            Topology::Shards(s) => s.len(),
            Topology::Cluster(_) => 1,
        }
    }
}

fn topology(keys: &Keys<'_>) -> Result<Topology, ConfigError> {
    let username = keys.string("redis_user")?.filter(|s| !s.is_empty());
    let clusters = clusters(keys)?;
    if !clusters.is_empty() {
        let passwords = keys.list("redis_password")?;
        if passwords.len() > 1 {
            return Err(bad("redis_password: a cluster takes one password"));
        }
        let password = passwords.into_iter().next().filter(|p| !p.is_empty());
        let partitions = match keys.count("redis_sharded_pub_sub_partitions")? {
            Some(n) => n,
            None if keys.boolean("redis_cluster_sharded_pubsub")? => DEFAULT_PARTITIONS,
            None => 0,
        };
        if partitions > 0 && clusters.len() > 1 {
            return Err(bad(
                "redis_sharded_pub_sub_partitions: sharded PUB/SUB over several clusters \
                 (client-side sharding) is not supported; give one cluster",
            ));
        }
        let mut targets: Vec<ClusterTarget> = clusters
            .into_iter()
            .map(|seeds| ClusterTarget {
                nodes: seeds.nodes,
                // Credentials in a URL win over the separate keys.
                password: seeds.password.or_else(|| password.clone()),
                username: seeds.username.or_else(|| username.clone()),
                tls: seeds.tls.then(|| ClusterTls::plain(false)),
                sharded_pub_sub_partitions: partitions,
            })
            .collect();
        if targets.len() == 1 {
            return Ok(Topology::Cluster(targets.remove(0)));
        }
        return Ok(Topology::Shards(
            targets.into_iter().map(ShardTarget::Cluster).collect(),
        ));
    }
    if keys.count("redis_sharded_pub_sub_partitions")?.unwrap_or(0) > 0
        || keys.boolean("redis_cluster_sharded_pubsub")?
    {
        return Err(bad(
            "redis_sharded_pub_sub_partitions: sharded PUB/SUB needs a Redis Cluster \
             (redis_cluster_address); this configuration names standalone Redis or sentinels",
        ));
    }

    let masters = keys.list("redis_master_name")?;
    if !masters.is_empty() {
        let sentinels = keys.list("redis_sentinels")?;
        if sentinels.is_empty() {
            return Err(bad("redis_master_name is set but redis_sentinels is empty"));
        }
        let sentinels = sentinels
            .iter()
            .map(|s| tcp_addr(strip_scheme(s), "redis_sentinels"))
            .collect::<Result<Vec<_>, _>>()?;
        let n = masters.len();
        let passwords = per_shard(keys.list("redis_password")?, n, "redis_password")?;
        let dbs = per_shard(keys.list("redis_db")?, n, "redis_db")?;
        let sentinel_password = keys
            .string("redis_sentinel_password")?
            .filter(|s| !s.is_empty());
        let mut shards = Vec::with_capacity(n);
        for (i, master_name) in masters.into_iter().enumerate() {
            shards.push(ShardTarget::Sentinel {
                master_name,
                sentinels: sentinels.clone(),
                sentinel_password: sentinel_password.clone(),
                password: passwords[i].clone().filter(|p| !p.is_empty()),
                username: username.clone(),
                db: parse_db(dbs[i].as_deref())?,
            });
        }
        return Ok(Topology::Shards(shards));
    }

    let mut infos: Vec<ConnectionInfo> = Vec::new();
    for key in ["redis_address", "redis_url"] {
        let list = keys.list(key)?;
        if list.is_empty() {
            continue;
        }
        for a in &list {
            let url = if a.contains("://") {
                a.clone()
            } else {
                format!("redis://{a}")
            };
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| bad(format!("{key}: invalid address {a:?}: {e}")))?;
            infos.push(info);
        }
        break;
    }
    if infos.is_empty() {
        let hosts = keys.list("redis_host")?;
        let ports = keys.list("redis_port")?;
        let hosts = if hosts.is_empty() {
            vec!["127.0.0.1".to_string()]
        } else {
            hosts
        };
        let ports = if ports.is_empty() {
            vec!["6379".to_string()]
        } else {
            ports
        };
        let n = hosts.len().max(ports.len());
        let hosts = per_shard(hosts.into_iter().map(Some).collect(), n, "redis_host")?;
        let ports = per_shard(ports.into_iter().map(Some).collect(), n, "redis_port")?;
        for i in 0..n {
            let host = hosts[i].clone().unwrap_or_default();
            let port = ports[i].clone().unwrap_or_default();
            let port: u16 = port
                .trim()
                .parse()
                .map_err(|_| bad(format!("redis_port: invalid port {port:?}")))?;
            infos.push(
                ConnectionAddr::Tcp(host, port)
                    .into_connection_info()
                    .map_err(|e| bad(e.to_string()))?,
            );
        }
    }
    // Passwords and databases from their own keys win over none in the URL.
    let n = infos.len();
    let passwords = per_shard(keys.list("redis_password")?, n, "redis_password")?;
    let dbs = per_shard(keys.list("redis_db")?, n, "redis_db")?;
    let mut shards = Vec::with_capacity(n);
    for (i, info) in infos.into_iter().enumerate() {
        let current = info.redis_settings().clone();
        let mut redis = RedisConnectionInfo::default().set_db(current.db());
        if let Some(p) = current.password() {
            redis = redis.set_password(p);
        }
        if let Some(u) = current.username() {
            redis = redis.set_username(u);
        }
        if let Some(p) = passwords[i].as_deref().filter(|p| !p.is_empty()) {
            redis = redis.set_password(p);
        }
        if let Some(u) = &username {
            redis = redis.set_username(u);
        }
        if let Some(db) = dbs[i].as_deref() {
            redis = redis.set_db(parse_db(Some(db))?);
        }
        shards.push(ShardTarget::Direct(info.set_redis_settings(redis)));
    }
    Ok(Topology::Shards(shards))
}

/// `redis_tls`: every standalone shard and every cluster node talks TLS (certificates checked
/// against the system's roots unless `redis_tls_skip_verify`). Sentinel over TLS is not built.
fn with_tls(topology: Topology, skip_verify: bool) -> Result<Topology, ConfigError> {
    let tls = ClusterTls::plain(skip_verify);
    let shards = match topology {
        Topology::Cluster(mut c) => {
            c.tls = Some(tls);
            return Ok(Topology::Cluster(c));
        }
        Topology::Shards(shards) => shards,
    };
    shards
        .into_iter()
        .map(|s| match s {
            ShardTarget::Direct(info) => {
                let addr = match info.addr().clone() {
                    ConnectionAddr::Tcp(host, port) => ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: skip_verify,
                        tls_params: None,
                    },
                    other => other,
                };
                Ok(ShardTarget::Direct(info.set_addr(addr)))
            }
            ShardTarget::Cluster(mut c) => {
                c.tls = Some(tls.clone());
                Ok(ShardTarget::Cluster(c))
            }
            ShardTarget::Sentinel { .. } => Err(bad(
                "redis_tls: TLS through sentinels is not supported yet (use rediss:// shards)",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Topology::Shards)
}

fn parse_db(s: Option<&str>) -> Result<i64, ConfigError> {
    match s.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| bad(format!("redis_db: invalid database {v:?}"))),
    }
}

/// `list` spread over `n` shards: empty → all `None`, one value → everywhere, `n` values →
/// one each; anything else is an error.
fn per_shard(
    list: Vec<impl Into<Option<String>>>,
    n: usize,
    key: &str,
) -> Result<Vec<Option<String>>, ConfigError> {
    let list: Vec<Option<String>> = list.into_iter().map(Into::into).collect();
    match list.len() {
        0 => Ok(vec![None; n]),
        1 => Ok(vec![list[0].clone(); n]),
        len if len == n => Ok(list),
        len => Err(bad(format!(
            "{key}: {len} values for {n} shards (give one, or one per shard)"
        ))),
    }
}

fn strip_scheme(a: &str) -> &str {
    a.strip_prefix("redis://")
        .or_else(|| a.strip_prefix("rediss://"))
        .unwrap_or(a)
        .trim_end_matches('/')
}

fn tcp_addr(a: &str, key: &str) -> Result<ConnectionAddr, ConfigError> {
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| bad(format!("{key}: expected host:port, got {a:?}")))?;
    let port = port
        .parse()
        .map_err(|_| bad(format!("{key}: invalid port in {a:?}")))?;
    Ok(ConnectionAddr::Tcp(host.to_string(), port))
}

mod cluster;
mod detect;
mod keys;
#[cfg(test)]
mod tests;
mod tls;

use cluster::clusters;
use keys::Keys;
pub use tls::TlsPem;
