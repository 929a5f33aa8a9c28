//! Builds the node on the engine the configuration names: `memory` (in process) or `redis`
//! (several nodes as one service, `rotor-engine-redis`, configured by the `redis_*` keys),
//! optionally with PUB/SUB on NATS (`rotor-broker-nats`), and installs the client command
//! rate limits (`client.rate_limit`; `redis_user_command` keeps its buckets in the Redis
//! engine).
//!
//! Broker and presence, as Centrifugo combines them (BROKERS.md §1.3, §2):
//!
//! | configuration | PUB/SUB | presence | history |
//! |---|---|---|---|
//! | 2.x `engine: memory` + `broker: nats` | NATS | none (108) | 108 |
//! | 2.x `engine: redis` + `broker: nats` | NATS | Redis (the engine's) | 108 |
//! | v6 `broker.type: nats` + `presence_manager.type: redis` | NATS | Redis (its own address) | 108 |
//! | v6 `broker.type: nats`, engine redis, no presence manager | NATS | Redis (the engine's) | 108 |
//! | v6 `broker.type: nats`, engine memory, no presence manager | NATS | this node only (warned) | 108 |
//!
//! What Rotor does not build is refused at start: `broker.type` redis/postgres/redisnats, NATS
//! raw mode, wildcards and TLS.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rotor_broker_nats::{NatsBroker, NatsConfig};
use rotor_core::config::ChannelOptions;
use rotor_core::engine::{Broker, NoPresence, PresenceManager};
use rotor_core::memory::MemoryPresence;
use rotor_core::ratelimit::{RateLimits, SharedLimiter};
use rotor_core::Node;
use rotor_engine_redis::{RedisConfig, RedisEngine, RedisRateLimiter};
use serde_json::{Map, Value};

use crate::config::LoadedConfig;

/// How long start-up waits for Redis before serving anyway (`/health` answers 503 until every
/// shard is connected, and engine operations fail meanwhile).
const REDIS_START_WAIT: Duration = Duration::from_secs(3);
/// The same for NATS.
const NATS_START_WAIT: Duration = Duration::from_secs(3);

/// The node for `cfg`, its engine started. Must run inside the Tokio runtime.
pub async fn build_node(cfg: &LoadedConfig) -> anyhow::Result<Node> {
    let (node, shared) = build_engine(cfg).await?;
    let limits = RateLimits::new(&cfg.server.rate_limit.config, shared)
        .context("invalid configuration (client.rate_limit)")?;
    if let Some(limits) = limits {
        let _ = node.set_rate_limits(Arc::new(limits));
    }
    Ok(node)
}

/// Which separate broker and presence manager the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// `Some("nats")` when PUB/SUB goes to NATS.
    pub broker: Option<String>,
    /// Given with 2.x keys (`broker: nats`), not the v6 `broker` section.
    pub legacy: bool,
    /// `presence_manager.type` when `presence_manager.enabled`.
    pub presence: Option<String>,
}

fn text(m: &Map<String, Value>, k: &str) -> String {
    match m.get(k) {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn flag(m: &Map<String, Value>, k: &str) -> anyhow::Result<bool> {
    Ok(match m.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "0" => false,
            "true" | "1" => true,
            _ => anyhow::bail!("invalid configuration: {k} must be a boolean, got {s:?}"),
        },
        Some(v) => anyhow::bail!("invalid configuration: {k} must be a boolean, got {v}"),
    })
}

/// Reads every broker, presence and Redis setting the node would use, without connecting
/// (`rotor checkconfig`): what would stop the node at start fails here too.
pub fn check(cfg: &LoadedConfig) -> anyhow::Result<()> {
    let split = split(&cfg.server.brokers)?;
    if split.broker.is_some() {
        NatsConfig::from_map(&cfg.server.brokers).context("invalid configuration (NATS broker)")?;
        if split.presence.as_deref() == Some("redis") {
            RedisConfig::from_map(&presence_redis_keys(&cfg.server.brokers))?;
        }
    }
    if cfg.server.engine == "redis" {
        RedisConfig::from_map(&cfg.server.redis)?;
    }
    Ok(())
}

/// Reads and checks the broker and presence manager keys.
pub fn split(keys: &Map<String, Value>) -> anyhow::Result<Split> {
    let legacy = text(keys, "broker");
    let broker = if !legacy.is_empty() {
        if legacy != "nats" {
            anyhow::bail!(
                "invalid configuration: broker {legacy:?} is not available; the only separate \
                 broker is \"nats\""
            );
        }
        Some(legacy.clone())
    } else if flag(keys, "broker_enabled")? {
        match text(keys, "broker_type").as_str() {
            "nats" => Some("nats".to_string()),
            "" | "memory" => None,
            t @ ("redis" | "postgres" | "redisnats") => anyhow::bail!(
                "invalid configuration: broker.type {t:?} is not supported by Rotor (use \
                 broker.type \"nats\", or engine.type \"redis\" for Redis PUB/SUB and history)"
            ),
            t => anyhow::bail!(
                "invalid configuration: unknown broker.type {t:?} (valid: memory, nats)"
            ),
        }
    } else {
        None
    };
    let presence = if flag(keys, "presence_manager_enabled")? {
        match text(keys, "presence_manager_type").as_str() {
            t @ ("memory" | "redis") => Some(t.to_string()),
            "" => anyhow::bail!(
                "invalid configuration: presence_manager.enabled needs presence_manager.type \
                 (memory or redis)"
            ),
            t => anyhow::bail!(
                "invalid configuration: unknown presence_manager.type {t:?} (valid: memory, redis)"
            ),
        }
    } else {
        None
    };
    Ok(Split {
        broker,
        legacy: !legacy.is_empty(),
        presence,
    })
}

/// The `presence_manager_redis_*` keys as the Redis engine's `redis_*` keys.
fn presence_redis_keys(keys: &Map<String, Value>) -> Map<String, Value> {
    keys.iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("presence_manager_")?;
            rest.starts_with("redis_")
                .then(|| (rest.to_string(), v.clone()))
        })
        .collect()
}

fn wants_position(o: &ChannelOptions) -> bool {
    o.history_recover || o.force_positioning || o.allow_recovery || o.allow_positioning
}

/// Warns once, naming them, about namespaces asking for recovery or positioning on a broker
/// without history (their subscribes answer 108).
fn warn_history_less(cfg: &LoadedConfig) {
    let mut names: Vec<String> = Vec::new();
    if wants_position(&cfg.node.channel_options) {
        names.push("(top level)".to_string());
    }
    for ns in &cfg.node.namespaces {
        if wants_position(&ns.options) {
            names.push(ns.name.clone());
        }
    }
    if !names.is_empty() {
        tracing::warn!(
            namespaces = %names.join(", "),
            "these namespaces ask for recovery or positioning, but the NATS broker keeps no \
             history: such subscriptions fail with 108 \"not available\""
        );
    }
}

async fn start_redis(keys: &Map<String, Value>, cfg: &LoadedConfig) -> anyhow::Result<RedisEngine> {
    let redis = RedisConfig::from_map(keys)?.with_client_name(&cfg.node.name);
    // A plain address of a cluster node is that cluster (Centrifugo 6 detects it the same way).
    let (redis, clusters, unknown) = redis.detect_clusters().await;
    for c in &clusters {
        tracing::info!(address = %c, "this address is a Redis Cluster node: used as the cluster's seed");
    }
    if !unknown.is_empty() {
        tracing::warn!(
            shards = ?unknown,
            "redis not reachable at start: whether these addresses are cluster nodes could not \
             be checked; used as standalone Redis"
        );
    }
    let engine = RedisEngine::start(redis);
    if !engine.wait_ready(REDIS_START_WAIT).await {
        tracing::warn!(
            shards = ?engine.unready_shards(),
            "redis is not reachable yet; serving anyway, /health answers 503 until it is"
        );
    }
    Ok(engine)
}

async fn build_engine(
    cfg: &LoadedConfig,
) -> anyhow::Result<(Node, Option<Arc<dyn SharedLimiter>>)> {
    let split = split(&cfg.server.brokers)?;
    if split.broker.is_some() {
        return build_nats(cfg, &split).await;
    }
    if let Some(p) = &split.presence {
        tracing::warn!(
            presence_manager = %p,
            "presence_manager is used only together with a separate broker (broker.type \
             nats); ignored"
        );
    }
    match cfg.server.engine.as_str() {
        "memory" => Ok((
            Node::new(cfg.node.clone()).context("invalid configuration")?,
            None,
        )),
        "redis" => {
            let engine = start_redis(&cfg.server.redis, cfg).await?;
            let shared = redis_limiter(cfg, &engine);
            let node = Node::with_engine(
                cfg.node.clone(),
                engine.broker.clone(),
                engine.presence.clone(),
            )
            .context("invalid configuration")?;
            Ok((node, shared))
        }
        other => anyhow::bail!("engine {other:?} is not available; use \"memory\" or \"redis\""),
    }
}

fn redis_limiter(cfg: &LoadedConfig, engine: &RedisEngine) -> Option<Arc<dyn SharedLimiter>> {
    let prefix = RedisConfig::from_map(&cfg.server.redis)
        .map(|c| c.prefix)
        .unwrap_or_default();
    cfg.server
        .rate_limit
        .config
        .redis_user_command
        .as_ref()
        .map(|_| Arc::new(RedisRateLimiter::new(engine, &prefix)) as Arc<dyn SharedLimiter>)
}

/// PUB/SUB on NATS; presence per the table in the module docs.
async fn build_nats(
    cfg: &LoadedConfig,
    split: &Split,
) -> anyhow::Result<(Node, Option<Arc<dyn SharedLimiter>>)> {
    let nats = NatsConfig::from_map(&cfg.server.brokers)
        .context("invalid configuration (NATS broker)")?
        .with_node_name(&cfg.node.name);
    let urls = nats.urls.join(",");
    let prefix = nats.prefix.clone();
    let broker = NatsBroker::start(nats)
        .await
        .context("cannot start the NATS broker")?;
    if !broker.wait_ready(NATS_START_WAIT).await {
        tracing::warn!(
            url = %urls,
            "NATS is not reachable yet; serving anyway, /health answers 503 until it is"
        );
    }
    warn_history_less(cfg);
    let mut shared = None;
    let presence: Arc<dyn PresenceManager> = match split.presence.as_deref() {
        Some("redis") => {
            let engine = start_redis(&presence_redis_keys(&cfg.server.brokers), cfg).await?;
            engine.presence.clone()
        }
        Some(_) => {
            tracing::warn!(
                "presence_manager.type memory: presence is node-local, each node answers for \
                 its own clients only"
            );
            Arc::new(MemoryPresence::new())
        }
        None if cfg.server.engine == "redis" => {
            let engine = start_redis(&cfg.server.redis, cfg).await?;
            shared = redis_limiter(cfg, &engine);
            engine.presence.clone()
        }
        None if split.legacy => {
            tracing::warn!(
                "engine memory with broker nats: no presence manager, presence and \
                 presence_stats answer 108 \"not available\" (as Centrifugo 2.x); use engine \
                 redis for presence across nodes"
            );
            Arc::new(NoPresence)
        }
        None => {
            tracing::warn!(
                "broker.type nats without presence_manager and with engine memory: presence \
                 is node-local, each node answers for its own clients only (as Centrifugo 6); \
                 set presence_manager.type redis for presence across nodes"
            );
            Arc::new(MemoryPresence::new())
        }
    };
    tracing::info!(url = %urls, prefix = %prefix, "PUB/SUB on NATS; history is not available");
    let broker: Arc<dyn Broker> = Arc::new(broker);
    let node =
        Node::with_engine(cfg.node.clone(), broker, presence).context("invalid configuration")?;
    Ok((node, shared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: Value) -> anyhow::Result<Split> {
        split(v.as_object().unwrap())
    }

    #[test]
    fn generations_and_refusals() {
        assert_eq!(s(json!({})).unwrap().broker, None);
        let legacy = s(json!({"broker": "nats"})).unwrap();
        assert_eq!(
            (legacy.broker.as_deref(), legacy.legacy),
            (Some("nats"), true)
        );
        let v6 = s(json!({"broker_enabled": true, "broker_type": "nats",
            "presence_manager_enabled": "true", "presence_manager_type": "redis"}))
        .unwrap();
        assert_eq!(v6.broker.as_deref(), Some("nats"));
        assert!(!v6.legacy);
        assert_eq!(v6.presence.as_deref(), Some("redis"));
        // Not enabled: no separate broker (Centrifugo 6 ignores the type).
        assert_eq!(s(json!({"broker_type": "nats"})).unwrap().broker, None);
        for bad in [
            json!({"broker": "redis"}),
            json!({"broker_enabled": true, "broker_type": "postgres"}),
            json!({"broker_enabled": true, "broker_type": "redisnats"}),
            json!({"broker_enabled": true, "broker_type": "kafka"}),
            json!({"presence_manager_enabled": true, "presence_manager_type": "x"}),
        ] {
            assert!(s(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn presence_manager_redis_keys_become_engine_keys() {
        let m = json!({"presence_manager_redis_address": "redis://x:1", "nats_url": "n",
            "presence_manager_redis_sentinels": "a"});
        let k = presence_redis_keys(m.as_object().unwrap());
        assert_eq!(k.get("redis_address"), Some(&json!("redis://x:1")));
        assert_eq!(k.get("redis_sentinels"), Some(&json!("a")));
        assert_eq!(k.len(), 2);
    }
}
