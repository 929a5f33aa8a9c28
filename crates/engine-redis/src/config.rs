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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterTls {
    /// Do not check certificates (`redis_tls_skip_verify`).
    pub skip_verify: bool,
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
        Ok(Self {
            topology,
            prefix,
            history_meta_ttl,
            connect_timeout,
            read_timeout,
            ping_interval: Duration::from_secs(1),
            client_name: None,
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
                tls: seeds.tls.then_some(ClusterTls { skip_verify: false }),
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
    let tls = ClusterTls { skip_verify };
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
                c.tls = Some(tls);
                Ok(ShardTarget::Cluster(c))
            }
            ShardTarget::Sentinel { .. } => Err(bad(
                "redis_tls: TLS through sentinels is not supported yet (use rediss:// shards)",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Topology::Shards)
}

/// One cluster's seeds as the configuration gives them.
#[derive(Debug, Default)]
struct Seeds {
    nodes: Vec<String>,
    username: Option<String>,
    password: Option<String>,
    tls: bool,
}

/// The clusters a configuration names (see the module docs); empty when it names none.
fn clusters(keys: &Keys<'_>) -> Result<Vec<Seeds>, ConfigError> {
    for key in ["redis_cluster_address", "redis_cluster_addrs"] {
        let groups = keys.groups(key)?;
        if groups.is_empty() {
            continue;
        }
        return groups
            .iter()
            .map(|group| {
                let nodes = group
                    .split(',')
                    .map(|a| strip_scheme(a.trim()).to_string())
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>();
                for n in &nodes {
                    tcp_addr(n, key)?;
                }
                Ok(Seeds {
                    nodes,
                    ..Seeds::default()
                })
            })
            .filter(|s: &Result<Seeds, ConfigError>| {
                s.as_ref().map_or(true, |s| !s.nodes.is_empty())
            })
            .collect();
    }
    for key in ["redis_address", "redis_url"] {
        let list = keys.list(key)?;
        let urls = list.iter().filter(|a| is_cluster_url(a)).count();
        if urls == 0 {
            continue;
        }
        if urls != list.len() {
            return Err(bad(format!(
                "{key}: redis+cluster:// addresses cannot be mixed with plain Redis addresses"
            )));
        }
        return list.iter().map(|a| cluster_url(a, key)).collect();
    }
    Ok(Vec::new())
}

fn is_cluster_url(a: &str) -> bool {
    let a = a.trim().to_ascii_lowercase();
    a.starts_with("redis+cluster://") || a.starts_with("rediss+cluster://")
}

/// `redis+cluster://[user:password@]host:port[/db][?addr=host:port&addr=...]` (Centrifugo 6).
fn cluster_url(a: &str, key: &str) -> Result<Seeds, ConfigError> {
    let a = a.trim();
    let (scheme, rest) = a
        .split_once("://")
        .ok_or_else(|| bad(format!("{key}: invalid address {a:?}")))?;
    let tls = scheme.eq_ignore_ascii_case("rediss+cluster");
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.split('/').next().unwrap_or_default();
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut seeds = Seeds {
        tls,
        ..Seeds::default()
    };
    if let Some(u) = userinfo {
        let (user, pass) = u.split_once(':').unwrap_or((u, ""));
        seeds.username = Some(percent_decode(user)).filter(|s| !s.is_empty());
        seeds.password = Some(percent_decode(pass)).filter(|s| !s.is_empty());
    }
    if !host.is_empty() {
        seeds.nodes.push(host.to_string());
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "addr" {
            seeds.nodes.push(percent_decode(v));
        }
    }
    if seeds.nodes.is_empty() {
        return Err(bad(format!("{key}: {a:?} names no cluster node")));
    }
    for n in &seeds.nodes {
        tcp_addr(n, key)?;
    }
    Ok(seeds)
}

/// Decodes `%XX` escapes (anything malformed stays as it is).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Typed reads over the raw map.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(bad(format!("{key}: expected a string, got {other}"))),
        }
    }

    /// A JSON array of strings/numbers, or a comma-separated string; blanks dropped.
    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(bad(format!("{key}: expected strings, got {other}"))),
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                let v: Value = serde_json::from_str(s)
                    .map_err(|e| bad(format!("{key}: not a JSON array: {e}")))?;
                let map = Map::from_iter([(key.to_string(), v)]);
                return Keys(&map).list(key);
            }
            Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
            Some(Value::Number(n)) => vec![n.to_string()],
            Some(other) => return Err(bad(format!("{key}: expected a list, got {other}"))),
        };
        Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// Cluster groups: a JSON array (one element per cluster), or a string with clusters
    /// separated by whitespace (the 2.x environment form); a group is comma-separated seeds.
    fn groups(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                let v: Value = serde_json::from_str(s)
                    .map_err(|e| bad(format!("{key}: not a JSON array: {e}")))?;
                let map = Map::from_iter([(key.to_string(), v)]);
                return Keys(&map).groups(key);
            }
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(_)) => self.list_items(key)?,
            Some(other) => return Err(bad(format!("{key}: expected a list, got {other}"))),
        };
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// The elements of a JSON array of strings/numbers.
    fn list_items(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(bad(format!("{key}: expected strings, got {other}"))),
                })
                .collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn opt_boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" | "" => Ok(Some(false)),
                _ => Err(bad(format!("{key}: expected a boolean, got {s:?}"))),
            },
            Some(other) => Err(bad(format!("{key}: expected a boolean, got {other}"))),
        }
    }

    /// A non-negative integer (number or numeric string), at most 16384.
    fn count(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        let err = |v: &dyn std::fmt::Display| {
            bad(format!("{key}: expected a whole number 0..=16384, got {v}"))
        };
        let n = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| err(n))?,
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| err(s))?,
            Some(other) => return Err(err(other)),
        };
        if n > 16384 {
            return Err(err(&n));
        }
        Ok(Some(n as usize))
    }

    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        Ok(self.opt_boolean(key)?.unwrap_or(false))
    }

    /// Seconds (number or numeric string) or a Go duration string (`"500ms"`, `"5s"`, `"1m"`).
    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let err = |v: &dyn std::fmt::Display| bad(format!("{key}: expected a duration, got {v}"));
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| Some(Duration::from_secs_f64(f)))
                .ok_or_else(|| err(n)),
            Some(Value::String(s)) => {
                let t = s.trim();
                if let Ok(f) = t.parse::<f64>() {
                    if f.is_finite() && f >= 0.0 {
                        return Ok(Some(Duration::from_secs_f64(f)));
                    }
                    return Err(err(s));
                }
                go_duration(t).map(Some).ok_or_else(|| err(s))
            }
            Some(other) => Err(err(other)),
        }
    }
}

/// A Go duration string such as `1m30s` or `250ms`.
fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        let tail = &rest[num_end..];
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let scale = match &tail[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &tail[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Result<RedisConfig, ConfigError> {
        RedisConfig::from_map(v.as_object().unwrap())
    }

    fn addrs(c: &RedisConfig) -> Vec<String> {
        match &c.topology {
            Topology::Shards(s) => s.iter().map(ShardTarget::label).collect(),
            Topology::Cluster(c) => c.nodes.clone(),
        }
    }

    #[test]
    fn defaults_to_one_local_shard() {
        let c = cfg(json!({})).unwrap();
        assert_eq!(addrs(&c), ["127.0.0.1:6379"]);
        assert_eq!(c.prefix, "centrifugo");
        assert_eq!(c.history_meta_ttl, Duration::ZERO);
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.read_timeout, Duration::from_secs(5));
    }

    #[test]
    fn host_and_port_lists_shard_like_2x() {
        let c = cfg(json!({"redis_host": "10.0.0.1", "redis_port": "6379,6380"})).unwrap();
        assert_eq!(addrs(&c), ["10.0.0.1:6379", "10.0.0.1:6380"]);
        let c = cfg(json!({"redis_host": "a,b", "redis_port": 7000})).unwrap();
        assert_eq!(addrs(&c), ["a:7000", "b:7000"]);
        let c = cfg(json!({"redis_host": "a,b", "redis_port": "1,2"})).unwrap();
        assert_eq!(addrs(&c), ["a:1", "b:2"]);
        assert!(cfg(json!({"redis_host": "a,b,c", "redis_port": "1,2"})).is_err());
        assert!(cfg(json!({"redis_port": "x"})).is_err());
    }

    #[test]
    fn address_lists_urls_passwords_and_dbs() {
        let c = cfg(
            json!({"redis_address": ["127.0.0.1:7001", "redis://127.0.0.1:7002/3"],
            "redis_password": "pw", "redis_prefix": "p"}),
        )
        .unwrap();
        assert_eq!(addrs(&c), ["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert_eq!(c.prefix, "p");
        let Topology::Shards(shards) = &c.topology else {
            panic!()
        };
        for (shard, db) in shards.iter().zip([0, 3]) {
            let ShardTarget::Direct(info) = shard else {
                panic!()
            };
            assert_eq!(info.redis_settings().password(), Some("pw"));
            assert_eq!(info.redis_settings().db(), db);
        }
        let c = cfg(json!({"redis_url": "redis://h1:1,redis://h2:2", "redis_db": "1,2"})).unwrap();
        assert_eq!(addrs(&c), ["h1:1", "h2:2"]);
        assert!(cfg(json!({"redis_address": "a:1,b:2", "redis_db": "1,2,3"})).is_err());
        // TLS: rediss:// URLs and redis_tls (standalone shards); not yet through sentinels.
        assert!(cfg(json!({"redis_address": "rediss://a:1"})).is_ok());
        let c =
            cfg(json!({"redis_tls": true, "redis_tls_skip_verify": true, "redis_address": "a:1"}))
                .unwrap();
        let Topology::Shards(s) = &c.topology else {
            panic!("shards expected")
        };
        assert!(matches!(&s[0], ShardTarget::Direct(i)
            if matches!(i.addr(), ConnectionAddr::TcpTls { insecure: true, .. })));
        assert!(cfg(
            json!({"redis_tls": true, "redis_master_name": "m", "redis_sentinels": "a:1"})
        )
        .is_err());
    }

    #[test]
    fn sentinel_and_cluster() {
        let c = cfg(json!({"redis_master_name": "m1,m2", "redis_sentinels": "127.0.0.1:26379"}))
            .unwrap();
        assert_eq!(addrs(&c), ["sentinel master m1", "sentinel master m2"]);
        assert!(cfg(json!({"redis_master_name": "m"})).is_err());
        let c = cfg(json!({"redis_cluster_addrs": "127.0.0.1:7000,127.0.0.1:7001"})).unwrap();
        assert_eq!(addrs(&c), ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert_eq!(c.num_shards(), 1);
        let c = cfg(json!({"redis_cluster_address": ["redis://127.0.0.1:7000"]})).unwrap();
        assert_eq!(addrs(&c), ["127.0.0.1:7000"]);
    }

    fn cluster(v: Value) -> ClusterTarget {
        match cfg(v).unwrap().topology {
            Topology::Cluster(c) => c,
            Topology::Shards(s) => panic!("one cluster expected, got {s:?}"),
        }
    }

    fn clusters(v: Value) -> Vec<ClusterTarget> {
        match cfg(v).unwrap().topology {
            Topology::Shards(s) => s
                .into_iter()
                .map(|t| match t {
                    ShardTarget::Cluster(c) => c,
                    other => panic!("cluster shards expected, got {other:?}"),
                })
                .collect(),
            Topology::Cluster(c) => panic!("several clusters expected, got {c:?}"),
        }
    }

    #[test]
    fn cluster_address_forms_of_every_generation() {
        let three = ["a:1", "b:2", "c:3"];
        // 2.x: one element holding comma-separated seeds = one cluster.
        for key in ["redis_cluster_addrs", "redis_cluster_address"] {
            assert_eq!(cluster(json!({key: ["a:1,b:2,c:3"]})).nodes, three);
            assert_eq!(cluster(json!({key: ["a:1, b:2 ,c:3"]})).nodes, three);
            // A string (environment): clusters separated by spaces.
            assert_eq!(cluster(json!({key: "a:1,b:2,c:3"})).nodes, three);
            assert_eq!(
                cluster(json!({key: "[\"redis://a:1,b:2\"]"})).nodes,
                ["a:1", "b:2"]
            );
            // Several elements = several clusters, sharded by channel.
            let cs = clusters(json!({key: ["a:1,b:2", "c:3"]}));
            assert_eq!(cs.len(), 2);
            assert_eq!(cs[0].nodes, ["a:1", "b:2"]);
            assert_eq!(cs[1].nodes, ["c:3"]);
            let cs = clusters(json!({key: "a:1,b:2 c:3,d:4"}));
            assert_eq!(cs[1].nodes, ["c:3", "d:4"]);
            assert!(cfg(json!({key: ["a:1,nope"]})).is_err());
        }
        // v6: redis+cluster:// in engine.redis.address (= redis_address).
        let c = cluster(json!({"redis_address": "redis+cluster://a:1?addr=b:2&addr=c:3"}));
        assert_eq!(c.nodes, three);
        assert_eq!(c.tls, None);
        assert_eq!(c.password, None);
        let c = cluster(json!({
            "redis_address": ["rediss+cluster://us%40r:p%3Ass@a:1/0?addr=b:2&foo=1"],
            "redis_password": "other"}));
        assert_eq!(c.nodes, ["a:1", "b:2"]);
        assert_eq!(c.username.as_deref(), Some("us@r"));
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert_eq!(c.tls, Some(ClusterTls { skip_verify: false }));
        let cs = clusters(json!({"redis_address": [
            "redis+cluster://a:1?addr=b:2", "redis+cluster://c:3"]}));
        assert_eq!(cs.len(), 2);
        assert!(cfg(json!({"redis_address": ["redis+cluster://a:1", "b:2"]})).is_err());
        assert!(cfg(json!({"redis_address": "redis+cluster://"})).is_err());
        // v6 cluster_address (= redis_cluster_address): comma-separated seeds per shard.
        assert_eq!(
            cluster(json!({"redis_cluster_address": ["a:1,b:2,c:3"]})).nodes,
            three
        );
        // Credentials and TLS for a cluster.
        let c = cluster(
            json!({"redis_cluster_address": "a:1", "redis_password": "pw",
            "redis_user": "u", "redis_tls": true, "redis_tls_skip_verify": true}),
        );
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.tls, Some(ClusterTls { skip_verify: true }));
        for c in clusters(json!({"redis_cluster_address": ["a:1", "b:2"], "redis_tls": true})) {
            assert_eq!(c.tls, Some(ClusterTls { skip_verify: false }));
        }
        // Sharded PUB/SUB needs one cluster.
        assert!(cfg(json!({"redis_cluster_address": ["a:1", "b:2"],
            "redis_sharded_pub_sub_partitions": 8}))
        .is_err());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41é"), "%zzAé");
    }

    #[test]
    fn sharded_pub_sub_partitions() {
        let parts = |v: Value| match cfg(v).unwrap().topology {
            Topology::Cluster(c) => c.sharded_pub_sub_partitions,
            Topology::Shards(_) => panic!("cluster expected"),
        };
        let seeds = "127.0.0.1:7000";
        assert_eq!(
            parts(json!({"redis_cluster_address": seeds})),
            0,
            "classic default"
        );
        assert_eq!(
            parts(json!({"redis_cluster_address": seeds, "redis_sharded_pub_sub_partitions": 64})),
            64
        );
        assert_eq!(
            parts(json!({"redis_cluster_address": seeds, "redis_sharded_pub_sub_partitions": "8"})),
            8
        );
        assert_eq!(
            parts(json!({"redis_cluster_address": seeds, "redis_cluster_sharded_pubsub": true})),
            DEFAULT_PARTITIONS
        );
        assert_eq!(
            parts(json!({"redis_cluster_address": seeds, "redis_cluster_sharded_pubsub": false})),
            0
        );
        for bad_value in [json!(-1), json!("x"), json!(1.5), json!(20000)] {
            let e = cfg(json!({"redis_cluster_address": seeds,
                "redis_sharded_pub_sub_partitions": bad_value}))
            .unwrap_err();
            assert!(e.0.contains("redis_sharded_pub_sub_partitions"), "{e}");
        }
        let e = cfg(json!({"redis_address": "a:1", "redis_sharded_pub_sub_partitions": 16}))
            .unwrap_err();
        assert!(e.0.contains("needs a Redis Cluster"), "{e}");
        assert!(
            cfg(json!({"redis_address": "a:1", "redis_sharded_pub_sub_partitions": 0})).is_ok()
        );
    }

    #[test]
    fn durations_and_env_strings() {
        let c = cfg(
            json!({"redis_history_meta_ttl": "1m30s", "redis_connect_timeout": "250ms",
            "redis_read_timeout": 2}),
        )
        .unwrap();
        assert_eq!(c.history_meta_ttl, Duration::from_secs(90));
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.read_timeout, Duration::from_secs(2));
        let c = cfg(json!({"redis_sequence_ttl": "3600"})).unwrap();
        assert_eq!(c.history_meta_ttl, Duration::from_secs(3600));
        assert!(cfg(json!({"redis_read_timeout": "soon"})).is_err());
        let c = cfg(json!({"redis_address": "[\"a:1\",\"b:2\"]"})).unwrap();
        assert_eq!(addrs(&c), ["a:1", "b:2"]);
    }
}
